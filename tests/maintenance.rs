//! prune, check and repair index: space comes back, nothing a snapshot or a
//! running backup needs is ever deleted, damage is named, the index can be
//! rebuilt from the packs.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Stdio;

use common::*;

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn packs(repo: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in fs::read_dir(repo.join("packs")).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

/// Drop a snapshot the way `forget` does: delete its object.
fn drop_snapshot(env: &Env, id: &str) {
    fs::remove_file(env.repo.join("snapshots").join(id)).unwrap();
}

fn id_of(v: &serde_json::Value) -> String {
    v["snapshot_id"].as_str().unwrap().to_string()
}

#[test]
fn prune_frees_unreferenced_data_and_restores_stay_exact() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("old.bin"), random_bytes(1, 4 << 20));
    write(&src.join("keep.bin"), random_bytes(2, 2 << 20));
    let first = id_of(&env.backup(&src, &[]));
    fs::remove_file(src.join("old.bin")).unwrap();
    env.backup(&src, &[]);
    drop_snapshot(&env, &first);
    let before = dir_size(&env.repo);

    let dry = env.json(["prune", "--dry-run"]);
    assert!(
        dry["report"]["packs_unused"].as_u64().unwrap() >= 1,
        "{dry}"
    );
    assert_eq!(
        dir_size(&env.repo),
        before,
        "dry run changed the repository"
    );

    let r = env.json(["prune"]);
    assert!(r["report"]["packs_deleted"].as_u64().unwrap() >= 1, "{r}");
    let after = dir_size(&env.repo);
    assert!(
        after + (3 << 20) < before,
        "freed only {} bytes",
        before - after
    );
    env.ok(["check", "--read-data"]);
    let out = env.path("out");
    env.restore("latest", &out, &["--verify"]);
    assert_trees_equal(&src, &out);
    // Nothing left behind: no plan, no lock.
    assert!(fs::read_dir(env.repo.join("plans")).map_or(true, |mut d| d.next().is_none()));
    assert!(fs::read_dir(env.repo.join("locks")).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn prune_repacks_a_pack_that_is_mostly_unused() {
    let env = Env::new();
    let src = env.path("src");
    let mut data = random_bytes(3, 4 << 20);
    write(&src.join("f.bin"), &data);
    let first = id_of(&env.backup(&src, &[]));
    // Rewrite the last three quarters: most of the first pack is now unused.
    data[(1 << 20)..].copy_from_slice(&random_bytes(4, 3 << 20));
    write(&src.join("f.bin"), &data);
    env.backup(&src, &[]);
    drop_snapshot(&env, &first);
    let r = env.json(["prune", "--max-unused", "5%"]);
    assert!(r["report"]["packs_repacked"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["report"]["blobs_repacked"].as_u64().unwrap() >= 1, "{r}");
    env.ok(["check", "--read-data"]);
    let out = env.path("out");
    env.restore("latest", &out, &["--verify"]);
    assert_eq!(fs::read(out.join("f.bin")).unwrap(), data);
}

fn write_lock(env: &Env, run: &str, time: &str) {
    let lock = serde_json::json!({ "run": run, "host": "other", "pid": 1, "time": time });
    write(
        &env.repo.join(format!("locks/{run}-00000000")),
        lock.to_string(),
    );
}

/// Locks are written by hand, so the repository is a plaintext one (in an
/// encrypted one a lock that cannot be read counts as alive).
#[test]
fn prune_defers_deletion_while_a_backup_runs_and_ignores_stale_locks() {
    let env = Env::new();
    env.ok(["init", "--insecure-no-encryption"]);
    let src = env.path("src");
    write(&src.join("a"), random_bytes(5, 1 << 20));
    let first = id_of(&env.backup(&src, &[]));
    write(&src.join("a"), random_bytes(6, 1 << 20));
    env.backup(&src, &[]);
    drop_snapshot(&env, &first);
    let packs_before = packs(&env.repo).len();

    // A backup that started before the prune may reference anything it saw.
    let now = chrono_now();
    write_lock(&env, "running", &now);
    write_lock(&env, "crashed", "2020-01-01T00:00:00Z");
    let r = env.json(["prune"]);
    assert_eq!(r["report"]["packs_deleted"], 0, "{r}");
    assert!(r["report"]["packs_deferred"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(
        r["report"]["blocking_backups"], 1,
        "only the fresh lock blocks: {r}"
    );
    assert_eq!(packs(&env.repo).len(), packs_before);
    // Restores keep working meanwhile.
    env.restore("latest", &env.path("out1"), &["--verify"]);

    // Once that backup is gone, the next prune carries the plan out.
    fs::remove_file(env.repo.join("locks/running-00000000")).unwrap();
    let r = env.json(["prune"]);
    assert!(r["report"]["packs_deleted"].as_u64().unwrap() >= 1, "{r}");
    assert!(packs(&env.repo).len() < packs_before);
    env.ok(["check", "--read-data"]);
    env.restore("latest", &env.path("out2"), &["--verify"]);
}

fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // RFC 3339 without a date library: days since the epoch to a civil date.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[test]
fn backup_and_prune_racing_never_lose_data() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..40 {
        write(
            &src.join(format!("f{i:02}")),
            random_bytes(100 + i, 64 << 10),
        );
    }
    env.ok(["init"]);
    for round in 0..12u64 {
        // Make the tree's data unreferenced (but still stored), then back it
        // up again while a prune wants to delete exactly that data.
        let snaps = env.snapshots();
        let gone = id_of(&env.backup(&src, &["--volume", "race"]));
        for s in snaps {
            drop_snapshot(&env, s["id"].as_str().unwrap());
        }
        drop_snapshot(&env, &gone);
        write(&src.join("changing"), format!("round {round}"));
        let mut backup = env.cmd();
        backup
            .args([
                "backup",
                src.to_str().unwrap(),
                "--volume",
                "race",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut prune = env.cmd();
        prune
            .arg("prune")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let b = backup.spawn().unwrap();
        let p = prune.spawn().unwrap();
        let (b, p) = (b.wait_with_output().unwrap(), p.wait_with_output().unwrap());
        assert!(
            b.status.success(),
            "round {round} backup: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(
            p.status.success(),
            "round {round} prune: {}",
            String::from_utf8_lossy(&p.stderr)
        );
        let check = env.run(["check", "--read-data"]);
        assert!(
            check.status.success(),
            "round {round}: check failed after racing backup and prune: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let out = env.path(&format!("out{round}"));
        env.restore("latest", &out, &["--verify"]);
        assert_trees_equal(&src, &out);
        fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn check_names_the_snapshots_and_files_of_a_damaged_pack() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("first.bin"), random_bytes(7, 1 << 20));
    env.backup(&src, &[]);
    let before: Vec<_> = packs(&env.repo);
    write(&src.join("second.bin"), random_bytes(8, 1 << 20));
    let snap = id_of(&env.backup(&src, &[]));
    env.ok(["check", "--read-data"]);
    // Damage the data pack the second backup added.
    let added: Vec<_> = packs(&env.repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let data_pack = added
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let f = fs::OpenOptions::new().write(true).open(data_pack).unwrap();
    f.write_all_at(b"garbage", 4096).unwrap();

    env.ok(["check"]); // structure alone cannot see flipped bytes
    let out = env.run(["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("second.bin"), "{err}");
    assert!(err.contains(&snap[..8]), "{err}");
    assert!(!err.contains("first.bin"), "{err}");
    assert_no_panic(&err, "check");

    // A missing pack is found without reading data.
    fs::remove_file(data_pack).unwrap();
    let out = env.run(["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    let subset = env.run(["check", "--read-data-subset", "50%"]);
    assert_eq!(subset.status.code(), Some(1));
}

#[test]
fn repair_index_rebuilds_the_index_from_the_packs() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), random_bytes(9, 2 << 20));
    env.backup(&src, &[]);
    fs::remove_dir_all(env.repo.join("index")).unwrap();
    fs::remove_dir_all(&env.cache).unwrap();
    let broken = env.run([
        "restore",
        "latest",
        "--target",
        env.path("broken").to_str().unwrap(),
    ]);
    assert_ne!(
        broken.status.code(),
        Some(0),
        "restore without an index cannot work"
    );
    let r = env.json(["repair", "index"]);
    assert!(r["packs"].as_u64().unwrap() >= 2, "{r}");
    env.ok(["check", "--read-data"]);
    let out = env.path("out");
    env.restore("latest", &out, &["--verify"]);
    assert_trees_equal(&src, &out);
}

#[test]
fn forget_with_prune_frees_the_space_in_one_command() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("data.bin"), random_bytes(20, 3 << 20));
    env.backup(&src, &[]);
    write(&src.join("data.bin"), random_bytes(21, 3 << 20));
    env.backup(&src, &[]);
    let before = dir_size(&env.repo);
    let v = env.json(["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(v["removed"], 1, "{v}");
    assert!(v["prune"]["packs_deleted"].as_u64().unwrap() >= 1, "{v}");
    assert!(dir_size(&env.repo) + (2 << 20) < before);
    assert_eq!(env.snapshots().len(), 1);
    env.ok(["check", "--read-data"]);
    let out = env.path("out");
    env.restore("latest", &out, &["--verify"]);
    assert_trees_equal(&src, &out);
}

/// Two prunes at once could each publish an index listing packs the other
/// deleted: the second is refused (plaintext repository: the lock is
/// written by hand).
#[test]
fn a_second_prune_is_refused_while_one_runs_and_changes_nothing() {
    let env = Env::new();
    env.ok(["init", "--insecure-no-encryption"]);
    let src = env.path("src");
    write(&src.join("old.bin"), random_bytes(3, 1 << 20));
    let first = id_of(&env.backup(&src, &[]));
    drop_snapshot(&env, &first);
    let before = packs(&env.repo);
    // Another prune's lock, fresh.
    write_lock(&env, "prune-0123456789abcdef", &chrono_now());
    let out = env.run(["prune"]);
    assert_exit(&out, 1, "prune while another runs");
    let err = assert_one_line_error(&out, "prune while another runs");
    assert!(err.contains("another prune is running"), "{err}");
    assert!(
        err.contains("locks/prune-0123456789abcdef-00000000"),
        "{err}"
    );
    assert_eq!(packs(&env.repo), before, "nothing deleted");
    // Once that prune is gone, prune works.
    fs::remove_file(env.repo.join("locks/prune-0123456789abcdef-00000000")).unwrap();
    env.ok(["prune"]);
    assert!(packs(&env.repo).len() < before.len());
}
