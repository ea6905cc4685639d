//! Incremental backups: unchanged files are not read again, changed files
//! add only their changed chunks, and a dry run writes nothing.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::*;

const MIB: usize = 1 << 20;

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("backup --json has no integer {key:?}: {v}"))
}

#[test]
fn second_backup_stores_only_changed_chunks() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big.bin"), random_bytes(42, 8 * MIB));
    for i in 0..5 {
        write(
            &src.join(format!("small/{i}.txt")),
            format!("small file {i}\n").repeat(10 + i),
        );
    }
    let files = 6;

    let first = env.backup(&src, &[]);
    assert_eq!(u(&first, "files_new"), files, "{first}");
    assert!(u(&first, "bytes_added") >= 8 * MIB as u64, "{first}");

    // Change 4 KiB in the middle of the big file (same size), append to one
    // small file.
    {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(src.join("big.bin"))
            .unwrap();
        f.write_all_at(&random_bytes(1000, 4096), 4 * MIB as u64 + 1234)
            .unwrap();
    }
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(src.join("small/2.txt"))
            .unwrap();
        f.write_all(b"appended line\n").unwrap();
    }
    let small2 = fs::metadata(src.join("small/2.txt")).unwrap().len();

    let second = env.backup(&src, &[]);
    assert_eq!(u(&second, "files_changed"), 2, "{second}");
    assert_eq!(u(&second, "files_unmodified"), files - 2, "{second}");
    assert_eq!(u(&second, "files_new"), 0, "{second}");
    assert_eq!(
        u(&second, "bytes_read"),
        8 * MIB as u64 + small2,
        "exactly the two changed files are read: {second}"
    );
    assert!(
        u(&second, "bytes_added") < MIB as u64,
        "a 4 KiB change stored {} new bytes: {second}",
        u(&second, "bytes_added")
    );
    assert!(u(&second, "bytes_added") > 0, "{second}");
    assert!(u(&second, "bytes_added_stored") < MIB as u64, "{second}");
    assert_eq!(
        second["parent"], first["snapshot_id"],
        "the first snapshot was not used as parent"
    );

    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    assert_trees_equal(&src, &dst);

    // The first snapshot still restores the old content.
    let old = env.path("old");
    env.restore(first["snapshot_id"].as_str().unwrap(), &old, &[]);
    let big_old = fs::read(old.join("big.bin")).unwrap();
    assert_eq!(big_old, random_bytes(42, 8 * MIB));
    assert_eq!(
        fs::read(old.join("small/2.txt")).unwrap(),
        "small file 2\n".repeat(12).as_bytes()
    );
}

#[test]
fn unchanged_rebackup_reads_no_file_content() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("data/big.bin"), random_bytes(5, 2 * MIB));
    std::os::unix::fs::symlink("data/big.bin", src.join("link")).unwrap();
    let files = 7;

    let first = env.backup(&src, &[]);
    assert_eq!(u(&first, "files_new"), files, "{first}");
    assert!(u(&first, "bytes_read") >= 2 * MIB as u64, "{first}");

    let second = env.backup(&src, &[]);
    assert_eq!(u(&second, "bytes_read"), 0, "{second}");
    assert_eq!(u(&second, "files_unmodified"), files, "{second}");
    assert_eq!(u(&second, "files_new"), 0, "{second}");
    assert_eq!(u(&second, "files_changed"), 0, "{second}");
    assert_eq!(
        u(&second, "blobs_added"),
        0,
        "trees are identical too: {second}"
    );
    assert_eq!(u(&second, "bytes_added"), 0, "{second}");
    assert_ne!(second["snapshot_id"], first["snapshot_id"]);

    // Both snapshots share the same root tree.
    let s1 = env.json(["cat", "snapshot", first["snapshot_id"].as_str().unwrap()]);
    let s2 = env.json(["cat", "snapshot", second["snapshot_id"].as_str().unwrap()]);
    assert_eq!(s1["tree"], s2["tree"]);

    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    assert_trees_equal(&src, &dst);
}

#[test]
fn dry_run_backup_writes_nothing() {
    let env = Env::new();
    env.ok(["init"]);
    let src = env.path("src");
    small_tree(&src);
    let packs_before = count_files(&env.repo);

    let v = env.backup(&src, &["--dry-run"]);
    assert!(
        v["snapshot_id"].is_null(),
        "dry run reported a snapshot: {v}"
    );
    assert!(
        u(&v, "files_new") >= 5,
        "dry run did not walk the tree: {v}"
    );
    assert!(env.snapshots().is_empty(), "dry run wrote a snapshot");
    assert_eq!(
        count_files(&env.repo),
        packs_before,
        "dry run wrote files into the repository"
    );

    // The text form says so too, and exits 0.
    let out = env.ok(["backup", src.to_str().unwrap(), "--dry-run"]);
    assert!(env.snapshots().is_empty());
    assert!(!stdout(&out).contains("saved"), "{}", stdout(&out));

    // A real backup afterwards still reads (and stores) everything.
    let real = env.backup(&src, &[]);
    assert!(u(&real, "blobs_added") > 0, "{real}");
    assert_eq!(env.snapshots().len(), 1);
}

fn count_files(dir: &std::path::Path) -> usize {
    list_tree(dir)
        .iter()
        .filter(|p| dir.join(p).is_file())
        .count()
}

#[test]
fn change_detection_uses_ctime_inode_and_parent_selection() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let src = env.path("src");
    for i in 1..=4 {
        write(
            &src.join(format!("f{i}.bin")),
            random_bytes(i, 100_000 + i as usize),
        );
    }
    let first = env.backup(&src, &[]);
    assert_eq!(u(&first, "files_new"), 4);

    // f1: new content of the same size, old mtime put back: only ctime tells.
    let f1 = src.join("f1.bin");
    let m = fs::metadata(&f1).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&f1)
        .unwrap()
        .write_all_at(b"changed behind the mtime's back", 50_000)
        .unwrap();
    set_mtime(&f1, m.mtime(), m.mtime_nsec() as u32);
    // f2: replaced by another file (new inode), same size and mtime.
    let f2 = src.join("f2.bin");
    let m = fs::metadata(&f2).unwrap();
    let tmp = env.path("f2.new");
    fs::write(&tmp, random_bytes(22, m.len() as usize)).unwrap();
    set_mtime(&tmp, m.mtime(), m.mtime_nsec() as u32);
    fs::rename(&tmp, &f2).unwrap();

    let second = env.backup(&src, &[]);
    assert_eq!(u(&second, "files_changed"), 2, "{second}");
    assert_eq!(u(&second, "files_unmodified"), 2, "{second}");
    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    assert_trees_equal(&src, &dst);

    // Another host has no parent: everything is read.
    let other = env.backup(&src, &["--host", "elsewhere"]);
    assert_eq!(u(&other, "files_new"), 4, "{other}");
    assert!(other["parent"].is_null(), "{other}");
    // ... unless one is named.
    let named = env.backup(
        &src,
        &[
            "--host",
            "elsewhere-2",
            "--parent",
            second["snapshot_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(u(&named, "files_unmodified"), 4, "{named}");
    assert_eq!(u(&named, "bytes_read"), 0, "{named}");
    assert_eq!(named["parent"], second["snapshot_id"]);
}
