//! Regression tests for the defects an adversarial review found: restores
//! that fail or leave their target, damage that stopped every command, and
//! repositories readable by anyone. Each test failed before its fix.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::forge::{self, Forge};
use common::*;
use serde_json::Value;

/// Flip one byte in the middle of a file.
fn damage(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let mode = fs::metadata(path).unwrap().permissions();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, mode).unwrap();
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------
// Defect 0: many small files
// ---------------------------------------------------------------------------

/// Restored under a limit of 256 open files, 3,000 files of 0–200 bytes all
/// arrive, and the summary counts exactly them.
#[test]
fn restore_of_many_small_files_keeps_open_files_bounded() {
    let env = Env::new();
    let src = env.path("src");
    for d in 0..15 {
        for f in 0..200u64 {
            let len = ((d * 200 + f) * 7919 % 201) as usize;
            write(
                &src.join(format!("d{d:02}/f{f:03}")),
                random_bytes(f + d * 1000, len),
            );
        }
    }
    env.backup(&src, &[]);
    let dst = env.path("dst");
    let mut cmd = env.cmd();
    cmd.args(["--json", "restore", "latest", "--target"])
        .arg(&dst);
    // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_cmd(cmd);
    assert_exit(&out, 0, "restore under a low open-file limit");
    let v = parse_json(&out);
    assert_eq!(v["files_written"], 3000, "{v}");
    assert_eq!(v["files_failed"], 0, "{v}");
    assert_trees_equal(&src, &dst);
}

// ---------------------------------------------------------------------------
// Defect 2: --delete with --exclude
// ---------------------------------------------------------------------------

#[test]
fn restore_delete_leaves_excluded_paths_alone() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"keep\n");
    write(&src.join("sub/in-snapshot.txt"), b"snapshot\n");
    env.backup(&src, &[]);
    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    write(&dst.join("extra.txt"), b"extra\n");
    write(&dst.join("sub/local.txt"), b"local\n");
    write(&dst.join("sub/in-snapshot.txt"), b"changed locally\n");

    let v = env.json([
        "restore",
        "latest",
        "--target",
        dst.to_str().unwrap(),
        "--delete",
        "--exclude",
        "sub",
        "--dry-run",
    ]);
    let planned: Vec<String> = v["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["action"].as_str().unwrap(),
                p["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(planned, ["delete extra.txt"], "{v}");

    env.restore("latest", &dst, &["--delete", "--exclude", "sub"]);
    assert!(!dst.join("extra.txt").exists());
    assert_eq!(fs::read(dst.join("sub/local.txt")).unwrap(), b"local\n");
    assert_eq!(
        fs::read(dst.join("sub/in-snapshot.txt")).unwrap(),
        b"changed locally\n"
    );
    assert_eq!(fs::read(dst.join("keep.txt")).unwrap(), b"keep\n");
}

// ---------------------------------------------------------------------------
// Defect 4: unsafe names in a forged repository
// ---------------------------------------------------------------------------

/// A directory next to the target, with a canary that must survive.
fn canary(env: &Env) -> std::path::PathBuf {
    let outside = env.path("t/outside");
    write(&outside.join("canary"), b"alive\n");
    outside
}

#[test]
fn forged_unsafe_names_never_reach_outside_the_target() {
    let env = Env::new();
    env.ok(["init"]);
    let outside = canary(&env);
    for bad in [&b".."[..], b".", b"a/b", b"", b"x\0y"] {
        let mut f = Forge::new(&env);
        let payload = f.blob(b"payload");
        let inner = f.tree(vec![forge::file(b"canary", vec![payload])]);
        let root = f.tree(vec![
            forge::dir(bad, inner),
            forge::file(b"fine", vec![payload]),
        ]);
        let id = f.snapshot(root);
        let target = env.path("t/target");
        for spec in [id.clone(), format!("{id}:.."), format!("{id}:/../outside")] {
            let out = env.run(["restore", &spec, "--target", target.to_str().unwrap()]);
            assert_ne!(
                out.status.code(),
                Some(0),
                "{bad:?} {spec}: {}",
                stderr(&out)
            );
            assert_no_panic(&stderr(&out), "restore of a forged tree");
            assert_eq!(fs::read(outside.join("canary")).unwrap(), b"alive\n");
        }
        let out = env.run(["check"]);
        assert_exit(&out, 1, "check of a forged tree");
        assert!(
            stderr(&out).contains("unsafe entry name"),
            "{}",
            stderr(&out)
        );
        // Leave the repository clean for the next name.
        env.ok(["forget", &id]);
    }
}

/// A target that already holds a symlink (or a hard link) to something
/// outside: the restore replaces it, it never writes through it.
#[test]
fn links_planted_in_a_live_target_are_replaced_not_followed() {
    let env = Env::new();
    let outside = canary(&env);
    let src = env.path("src");
    write(&src.join("x/secret"), b"from the snapshot\n");
    write(&src.join("h"), b"hard\n");
    env.backup(&src, &[]);
    let target = env.path("t/target");
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("x")).unwrap();
    fs::hard_link(outside.join("canary"), target.join("h")).unwrap();

    env.restore("latest", &target, &[]);
    assert!(fs::symlink_metadata(target.join("x")).unwrap().is_dir());
    assert_eq!(
        fs::read(target.join("x/secret")).unwrap(),
        b"from the snapshot\n"
    );
    assert_eq!(fs::read(target.join("h")).unwrap(), b"hard\n");
    assert_eq!(fs::read(outside.join("canary")).unwrap(), b"alive\n");
    assert_eq!(files_in(&outside), [outside.join("canary")]);
}

// ---------------------------------------------------------------------------
// Defect 5: chunk lengths that lie
// ---------------------------------------------------------------------------

#[test]
fn lying_chunk_lengths_are_damage_not_wrong_content() {
    let env = Env::new();
    env.ok(["init"]);
    let mut f = Forge::new(&env);
    let real = f.blob(&random_bytes(1, 100));
    let other = f.blob(&random_bytes(2, 100));
    let short = cairn_repo::format::tree::ChunkRef { len: 50, ..real };
    let long = cairn_repo::format::tree::ChunkRef { len: 150, ..other };
    let root = f.tree(vec![
        forge::file(b"liar", vec![short, long]),
        forge::file(b"honest", vec![real]),
    ]);
    let id = f.snapshot(root);

    let target = env.path("target");
    let out = env.run([
        "--json",
        "restore",
        &id,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_exit(&out, 1, "restore of lying lengths");
    let v = parse_json(&out);
    assert_eq!(v["files_written"], 1, "{v}");
    assert_eq!(v["files_failed"], 1, "{v}");
    assert!(v["errors"][0].as_str().unwrap().starts_with("liar:"), "{v}");
    assert_eq!(
        fs::read(target.join("honest")).unwrap(),
        random_bytes(1, 100)
    );

    for args in [&["check"][..], &["check", "--read-data"]] {
        let out = env.run(args);
        assert_exit(&out, 1, "check of lying lengths");
        assert!(stderr(&out).contains("the tree says"), "{}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------
// Defect 6: one damaged object
// ---------------------------------------------------------------------------

fn two_snapshots(env: &Env) -> (String, String, std::path::PathBuf) {
    let src = env.path("src");
    write(&src.join("a"), random_bytes(3, 50_000));
    let first = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    write(&src.join("b"), random_bytes(4, 50_000));
    let second = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    (first, second, src)
}

#[test]
fn a_damaged_index_segment_is_reported_and_repair_index_fixes_it() {
    let env = Env::new();
    let (first, second, src) = two_snapshots(&env);
    for seg in files_in(&env.repo.join("index")) {
        damage(&seg);
    }
    let _ = fs::remove_dir_all(&env.cache);
    // Listing and backing up still work; check names the damage.
    assert_eq!(env.snapshots().len(), 2);
    let out = env.run(["check"]);
    assert_exit(&out, 1, "check with a damaged segment");
    assert!(stderr(&out).contains("index segment"), "{}", stderr(&out));
    let out = env.run(["prune"]);
    let line = assert_one_line_error(&out, "prune with a damaged segment");
    assert!(line.contains("repair index"), "{line}");

    env.ok(["repair", "index"]);
    env.ok(["check", "--read-data"]);
    for id in [&first, &second] {
        let dst = env.path(&format!("dst-{id}"));
        env.restore(id, &dst, &[]);
    }
    assert_trees_equal(&src, &env.path(&format!("dst-{second}")));
}

#[test]
fn a_damaged_snapshot_costs_only_itself() {
    let env = Env::new();
    let (first, second, src) = two_snapshots(&env);
    damage(&env.repo.join("snapshots").join(&first));

    // This host checked and cached the snapshot before it was damaged:
    // its listings keep that copy (check and prune read the repository).
    let out = env.run(["--json", "snapshots"]);
    assert_exit(&out, 0, "snapshots with a cached copy of a damaged one");
    assert_eq!(parse_json(&out)["snapshots"].as_array().unwrap().len(), 2);
    // A host without the copy reads the damaged object.
    for dir in fs::read_dir(env.cache.join("cairn")).unwrap() {
        fs::remove_file(dir.unwrap().path().join("snapshots.cache")).unwrap();
    }
    let out = env.run(["--json", "snapshots"]);
    assert_exit(&out, 0, "snapshots with a damaged one");
    assert_eq!(parse_json(&out)["snapshots"].as_array().unwrap().len(), 1);
    assert!(stderr(&out).contains(&first[..8]), "{}", stderr(&out));
    env.restore(&second, &env.path("dst"), &[]);
    assert_trees_equal(&src, &env.path("dst"));
    env.backup(&src, &[]); // scheduled backups go on
    let out = env.run(["check"]);
    assert_exit(&out, 1, "check with a damaged snapshot");
    let out = env.run(["prune"]);
    let line = assert_one_line_error(&out, "prune with a damaged snapshot");
    assert!(line.contains("forget"), "{line}");

    env.ok(["forget", &first[..8]]);
    env.ok(["prune"]);
    env.ok(["check", "--read-data"]);
}

#[test]
fn a_damaged_prune_plan_is_dropped_by_the_next_prune() {
    let env = Env::new();
    let (first, _, _) = two_snapshots(&env);
    env.ok(["forget", &first]);
    // A running backup makes the prune leave its plan for later.
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    write(
        &env.repo.join("locks/00000000000000aa-00000000"),
        format!(r#"{{"run":"00000000000000aa","host":"h","pid":1,"time":"{time}"}}"#),
    );
    env.ok(["prune"]);
    let plans: Vec<_> = files_in(&env.repo.join("plans"))
        .into_iter()
        .filter(|p| p.extension().is_none())
        .collect();
    assert_eq!(plans.len(), 1);
    damage(&plans[0]);
    let out = env.run(["check"]);
    assert!(stderr(&out).contains("prune plan"), "{}", stderr(&out));
    fs::remove_file(env.repo.join("locks/00000000000000aa-00000000")).unwrap();
    let v = env.json(["prune"]);
    assert_eq!(v["report"]["damaged_plans_removed"], 1, "{v}");
    env.ok(["check", "--read-data"]);
}

// ---------------------------------------------------------------------------
// Defects 8 and 9: privacy
// ---------------------------------------------------------------------------

fn assert_private(root: &Path) {
    for entry in walk(root) {
        let m = mode(&entry);
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(m & 0o777, want, "{} is {m:o}", entry.display());
    }
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            let more = files_in(&out[i]);
            out.extend(more);
        }
        i += 1;
    }
    out
}

#[test]
fn repository_cache_and_locks_are_private() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("secret"), b"only mine\n");
    chmod(&src.join("secret"), 0o600);
    env.backup(&src, &[]);
    assert_private(&env.repo);
    assert_private(&env.cache.join("cairn"));
}

/// A file whose content cannot be completed keeps the private mode it was
/// created with, whatever mode the snapshot records.
#[test]
fn a_file_that_fails_keeps_private_modes() {
    let env = Env::new();
    env.ok(["init", "--pack-size", "64K"]);
    let src = env.path("src");
    write(&src.join("big"), random_bytes(5, 600_000));
    chmod(&src.join("big"), 0o644);
    env.backup(&src, &[]);
    // Lose the last data pack written: the file's first chunks are intact.
    let mut packs: Vec<_> = walk(&env.repo.join("packs"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    packs.sort_by_key(|p| {
        fs::metadata(p).unwrap().mtime_nsec() + fs::metadata(p).unwrap().mtime() * 1_000_000_000
    });
    let data_packs: Vec<_> = packs
        .iter()
        .filter(|p| fs::metadata(p).unwrap().len() > 60_000)
        .collect();
    fs::remove_file(data_packs.last().unwrap()).unwrap();

    let target = env.path("target");
    let out = env.run([
        "--json",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_exit(&out, 1, "restore with a lost pack");
    let v = parse_json(&out);
    assert_eq!(
        (v["files_written"].as_u64(), v["files_failed"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    if target.join("big").exists() {
        assert_eq!(mode(&target.join("big")) & 0o777, 0o600);
    }
}

// ---------------------------------------------------------------------------
// Defects 10–12: names, flags and messages
// ---------------------------------------------------------------------------

#[test]
fn bad_volume_names_tags_and_hosts_are_refused_before_anything_is_written() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    for (flag, value) in [
        ("--volume", "a/b"),
        ("--volume", ".."),
        ("--volume", ""),
        ("--tag", "a,b"),
        ("--host", "line\nbreak"),
    ] {
        let out = env.run(["backup", src.to_str().unwrap(), flag, value]);
        let line = assert_one_line_error(&out, "backup with a bad name");
        assert!(line.contains("invalid"), "{line}");
        assert!(
            !env.repo.exists(),
            "{flag} {value:?}: the repository was created"
        );
    }
}

#[test]
fn two_paths_with_one_name_fail_before_any_pack_is_written() {
    let env = Env::new();
    env.ok(["init"]);
    let (a, b) = (env.path("one/src"), env.path("two/src"));
    write(&a.join("f"), random_bytes(6, 100_000));
    write(&b.join("g"), random_bytes(7, 100_000));
    let out = env.run(["backup", a.to_str().unwrap(), b.to_str().unwrap()]);
    let line = assert_one_line_error(&out, "backup of two paths named alike");
    assert!(line.contains("same name"), "{line}");
    assert!(walk(&env.repo.join("packs")).iter().all(|p| !p.is_file()));
}

#[test]
fn a_bad_include_pattern_is_named_as_an_include() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&src, &[]);
    let out = env.run([
        "restore",
        "latest",
        "--target",
        env.path("t").to_str().unwrap(),
        "--include",
        "[",
    ]);
    let line = assert_one_line_error(&out, "restore with a bad include");
    assert!(line.contains("--include"), "{line}");
}

#[test]
fn init_pack_size_sets_the_target_and_is_checked() {
    let env = Env::new();
    let v = env.json(["init", "--pack-size", "64K"]);
    assert_eq!(v["config"]["pack_size"], 65536, "{v}");
    let out = env.run(["init", "--pack-size", "1K"]);
    assert_one_line_error(&out, "init with a tiny pack size");
    let src = env.path("src");
    write(&src.join("f"), random_bytes(8, 1 << 20));
    env.backup(&src, &[]);
    let packs: Vec<Value> = walk(&env.repo.join("packs"))
        .iter()
        .filter(|p| p.is_file())
        .map(|p| fs::metadata(p).unwrap().len().into())
        .collect();
    assert!(packs.len() >= 4, "{packs:?}");
}

/// After a pack is lost, `repair snapshots` replaces each snapshot that
/// needs it by one without the files it lost; then check is clean and the
/// rest restores.
#[test]
fn repair_snapshots_keeps_everything_that_can_still_be_restored() {
    let env = Env::new();
    env.ok(["init", "--pack-size", "64K"]);
    let src = env.path("src");
    write(&src.join("early"), random_bytes(10, 30_000));
    let first = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<_> = walk(&env.repo.join("packs"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    write(&src.join("late/lost"), random_bytes(11, 300_000));
    write(&src.join("late/kept.txt"), b"small\n");
    env.backup(&src, &[]);
    // Lose every data pack the second backup added (trees stay).
    for pack in walk(&env.repo.join("packs"))
        .into_iter()
        .filter(|p| p.is_file())
    {
        if !before.contains(&pack) && fs::metadata(&pack).unwrap().len() > 60_000 {
            fs::remove_file(pack).unwrap();
        }
    }
    assert_exit(&env.run(["check"]), 1, "check after losing packs");
    damage(&env.repo.join("snapshots").join(&first));

    let v = env.json(["repair", "snapshots", "--dry-run"]);
    let dropped: Vec<&str> = v["report"]["repaired"][0]["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        dropped.contains(&"late/lost") && !dropped.contains(&"early"),
        "{v}"
    );
    assert_eq!(v["report"]["removed"].as_array().unwrap().len(), 1, "{v}");
    assert_exit(&env.run(["check"]), 1, "dry run changed nothing");

    env.ok(["repair", "snapshots"]);
    env.ok(["check", "--read-data"]);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0]["tags"]
        .as_array()
        .unwrap()
        .contains(&"repaired".into()));
    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    let expected: Vec<&str> = ["early", "late", "late/kept.txt"]
        .into_iter()
        .filter(|p| !dropped.contains(p))
        .collect();
    assert_eq!(list_tree(&dst), expected);
    env.ok(["prune"]);
    env.assert_repo_usable();
}
