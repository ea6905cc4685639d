//! Restoring over a live volume, dry runs, and diffs between snapshots.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::*;

const PAGE: usize = 8192;

/// A database-like file: pages of structured rows with a little randomness.
fn database(pages: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(pages * PAGE);
    for p in 0..pages {
        let noise = random_bytes(p as u64, 64);
        let mut page = format!("page {p:08} ").into_bytes();
        while page.len() < PAGE {
            page.extend_from_slice(
                format!(
                    "row {} {:02x}{:02x};",
                    page.len(),
                    noise[page.len() % 64],
                    p % 251
                )
                .as_bytes(),
            );
        }
        page.truncate(PAGE);
        out.extend_from_slice(&page);
    }
    out
}

/// Rewrite every `step`-th page in place with new content.
fn rewrite_pages(path: &std::path::Path, pages: usize, step: usize) -> usize {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut n = 0;
    for p in (7..pages).step_by(step) {
        let page = random_bytes(1_000_000 + p as u64, PAGE);
        f.write_all_at(&page, (p * PAGE) as u64).unwrap();
        n += 1;
    }
    n
}

#[test]
fn restoring_yesterday_over_today_writes_about_the_changed_bytes() {
    let env = Env::new();
    let vol = env.path("vol");
    let pages = 4096; // 32 MiB
    let original = database(pages);
    write(&vol.join("db/data.db"), &original);
    write(&vol.join("conf/app.conf"), "mode = fast\n");
    let yesterday = env.backup(&vol, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Today: 1% of the pages rewritten, a config changed, a file added.
    let changed_pages = rewrite_pages(&vol.join("db/data.db"), pages, 100);
    write(&vol.join("conf/app.conf"), "mode = safe\n");
    write(&vol.join("new.txt"), "only today");
    env.backup(&vol, &[]);

    // A dry run says what would change and touches nothing.
    let before = fs::read(vol.join("db/data.db")).unwrap();
    let dry = env.json([
        "restore",
        &yesterday,
        "--target",
        vol.to_str().unwrap(),
        "--delete",
        "--dry-run",
    ]);
    let planned: Vec<(String, String)> = dry["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["action"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        planned.contains(&("write".into(), "db/data.db".into())),
        "{planned:?}"
    );
    assert!(
        planned.contains(&("write".into(), "conf/app.conf".into())),
        "{planned:?}"
    );
    assert!(
        planned.contains(&("delete".into(), "new.txt".into())),
        "{planned:?}"
    );
    assert_eq!(planned.len(), 3, "{planned:?}");
    assert_eq!(
        fs::read(vol.join("db/data.db")).unwrap(),
        before,
        "dry run wrote"
    );
    assert!(vol.join("new.txt").exists(), "dry run deleted");

    // The real restore writes about the changed pages, not the whole file.
    let out = env.json([
        "restore",
        &yesterday,
        "--target",
        vol.to_str().unwrap(),
        "--delete",
        "--verify",
    ]);
    let written = out["bytes_written"].as_u64().unwrap();
    let changed = (changed_pages * PAGE) as u64;
    assert!(
        written >= changed,
        "wrote {written} bytes, {changed} changed"
    );
    assert!(
        written < (original.len() / 8) as u64,
        "wrote {written} of {} bytes for {changed} changed bytes",
        original.len()
    );
    assert_eq!(out["deleted"], 1);
    assert_eq!(out["verified"].as_u64().unwrap(), 2);
    assert_eq!(fs::read(vol.join("db/data.db")).unwrap(), original);
    assert_eq!(
        fs::read_to_string(vol.join("conf/app.conf")).unwrap(),
        "mode = fast\n"
    );
    assert!(!vol.join("new.txt").exists());

    // Now identical: a second restore writes nothing.
    let again = env.json([
        "restore",
        &yesterday,
        "--target",
        vol.to_str().unwrap(),
        "--delete",
    ]);
    assert_eq!(again["bytes_written"], 0);
    assert_eq!(again["files_written"], 0);
}

#[test]
fn diff_lists_added_removed_modified_and_metadata_changes() {
    let env = Env::new();
    let vol = env.path("vol");
    write(&vol.join("keep/same.txt"), "same");
    write(&vol.join("gone.txt"), "bye");
    write(&vol.join("big.bin"), random_bytes(1, 1 << 20));
    write(&vol.join("mode.txt"), "mode");
    for i in 0..50 {
        write(&vol.join(format!("untouched/f{i}")), format!("{i}"));
    }
    let a = env.backup(&vol, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(vol.join("gone.txt")).unwrap();
    write(&vol.join("new/added.txt"), "hello");
    let f = fs::OpenOptions::new()
        .write(true)
        .open(vol.join("big.bin"))
        .unwrap();
    f.write_all_at(&random_bytes(2, 100), 500_000).unwrap();
    chmod(&vol.join("mode.txt"), 0o600);
    let b = env.backup(&vol, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let d = env.json(["diff", &a, &b]);
    let mut got: Vec<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("added", "new/"),
        ("added", "new/added.txt"),
        ("metadata", "mode.txt"),
        ("modified", "big.bin"),
        ("removed", "gone.txt"),
    ];
    for (k, p) in want {
        assert!(
            got.contains(&(k.to_string(), p.to_string())),
            "missing {k} {p} in {got:?}"
        );
    }
    assert!(
        !got.iter()
            .any(|(_, p)| p.starts_with("untouched") || p.starts_with("keep")),
        "{got:?}"
    );
    let modified = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "big.bin")
        .unwrap();
    let bytes = modified["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < 600_000, "modified bytes {bytes}");
    assert_eq!(d["summary"]["removed"], 1);
    assert_eq!(d["summary"]["bytes_removed"], 3);

    // Text output uses restic's markers.
    let text = stdout(&env.ok(["diff", &a, &b]));
    assert!(text.contains("+  new/added.txt"), "{text}");
    assert!(text.contains("-  gone.txt"), "{text}");
    assert!(text.contains("M  big.bin"), "{text}");
    assert!(text.contains("U  mode.txt"), "{text}");

    // Same snapshot twice: nothing.
    let none = env.json(["diff", &a, &a]);
    assert_eq!(none["changes"].as_array().unwrap().len(), 0);
}
