//! Backup → restore round trips: every attribute the README says a restore
//! must reproduce, partial restores, restores into existing
//! directories, and backups of several paths.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::*;

const MIB: usize = 1 << 20;

/// What the hostile tree could set up on this machine.
struct Hostile {
    xattrs: bool,
    chowned: bool,
    device: bool,
}

/// A tree with every kind of entry and attribute a restore must reproduce.
fn build_hostile_tree(src: &Path) -> Hostile {
    fs::create_dir_all(src).unwrap();
    // Nested directories, an empty directory, an empty file.
    write(&src.join("a/b/c/deep.txt"), b"deep inside\n");
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    write(&src.join("empty-file"), b"");
    // A few MiB of incompressible data spanning many chunks.
    write(&src.join("big.bin"), random_bytes(7, 3 * MIB + 12_345));
    // A name that is not UTF-8.
    write(
        &src.join(OsStr::from_bytes(b"not-utf8-\xff\xfe.dat")),
        b"bytes in a strange name\n",
    );
    // Symlinks: relative, dangling, and one to a directory.
    std::os::unix::fs::symlink("b/c/deep.txt", src.join("a/rel-link")).unwrap();
    std::os::unix::fs::symlink("../does/not/exist", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("a/b", src.join("dir-link")).unwrap();
    // A hard-link pair across directories.
    write(&src.join("hard-1"), b"one inode, two names\n");
    fs::create_dir_all(src.join("links")).unwrap();
    fs::hard_link(src.join("hard-1"), src.join("links/hard-2")).unwrap();
    // A FIFO.
    mkfifo(&src.join("fifo"), 0o640);
    // Special mode bits and a private file.
    write(&src.join("setuid-prog"), b"#!/bin/sh\necho hi\n");
    write(&src.join("setgid-dir/inside.txt"), b"group dir\n");
    write(&src.join("sticky-dir/tmpfile"), b"sticky\n");
    write(&src.join("private.key"), b"secret\n");
    // A sparse file: 8 MiB with a few bytes in the middle.
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(src.join("sparse.img")).unwrap();
        f.set_len(8 * MIB as u64).unwrap();
        f.write_all_at(b"island of data", 4 * MIB as u64 + 17)
            .unwrap();
    }
    // Owners and devices need root.
    let mut chowned = false;
    let mut device = false;
    if is_root() {
        write(&src.join("owned-by-1234"), b"not mine\n");
        std::os::unix::fs::lchown(src.join("owned-by-1234"), Some(1234), Some(5678)).unwrap();
        // chown clears setuid, so the restore must chown before chmod too.
        std::os::unix::fs::lchown(src.join("setuid-prog"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("dangling"), Some(1234), Some(5678)).unwrap();
        chowned = true;
        let c = std::ffi::CString::new(src.join("dev-null").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path; mknod has no other preconditions.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o620, libc::makedev(1, 3)) };
        if rc == 0 {
            device = true;
        } else {
            eprintln!(
                "note: mknod not permitted here ({}); device check skipped",
                std::io::Error::last_os_error()
            );
        }
    }
    chmod(&src.join("setuid-prog"), 0o4755);
    chmod(&src.join("setgid-dir"), 0o2775);
    chmod(&src.join("sticky-dir"), 0o1777);
    chmod(&src.join("private.key"), 0o600);
    chmod(&src.join("a/b"), 0o711);
    chmod(src, 0o750);
    // Extended attributes, if the filesystem has them.
    let xattrs = match xattr::set(src.join("big.bin"), "user.cairn", b"value\x00\xff") {
        Ok(()) => {
            xattr::set(src.join("a"), "user.cairn.dir", b"on a directory").unwrap();
            xattr::set(src.join("empty-file"), "user.empty", b"").unwrap();
            true
        }
        Err(e) => {
            eprintln!("note: user xattrs unsupported here ({e}); xattr checks skipped");
            false
        }
    };
    // Nanosecond mtimes on everything, directories and symlinks included
    // (after all content is in place, children before parents).
    stamp_mtimes(src, 1_500_000_000);
    Hostile {
        xattrs,
        chowned,
        device,
    }
}

#[test]
fn restore_reproduces_every_attribute() {
    let env = Env::new();
    let src = env.path("src");
    let have = build_hostile_tree(&src);
    let sparse_src = fs::metadata(src.join("sparse.img")).unwrap();
    assert!(
        sparse_src.blocks() * 512 < MIB as u64,
        "test setup: the source sparse file is not sparse on this filesystem"
    );

    let b = env.backup(&src, &[]);
    let id = b["snapshot_id"].as_str().expect("snapshot_id").to_string();

    let dst = env.path("restored");
    env.restore(&id, &dst, &[]);

    assert_trees_equal(&src, &dst);

    // Explicit checks of what compare_trees covers generically, so a
    // failure names the guarantee.
    let h1 = fs::metadata(dst.join("hard-1")).unwrap();
    let h2 = fs::metadata(dst.join("links/hard-2")).unwrap();
    assert_eq!(h1.ino(), h2.ino(), "hard links restored as separate files");
    assert_eq!(h1.nlink(), 2, "hard-link pair has nlink {}", h1.nlink());

    let sparse = fs::metadata(dst.join("sparse.img")).unwrap();
    assert_eq!(sparse.len(), 8 * MIB as u64);
    assert!(
        sparse.blocks() * 512 < MIB as u64,
        "restored sparse file is not sparse: {} bytes allocated for {}",
        sparse.blocks() * 512,
        sparse.len()
    );

    let root = fs::metadata(&dst).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o750, "root directory mode");

    assert_eq!(
        fs::read_link(dst.join("dangling")).unwrap(),
        Path::new("../does/not/exist")
    );
    assert!(fs::symlink_metadata(dst.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::read(dst.join(OsStr::from_bytes(b"not-utf8-\xff\xfe.dat"))).unwrap(),
        b"bytes in a strange name\n"
    );
    assert_eq!(
        fs::metadata(dst.join("setuid-prog")).unwrap().mode() & 0o7777,
        0o4755
    );

    if have.xattrs {
        assert_eq!(
            xattr::get(dst.join("big.bin"), "user.cairn").unwrap(),
            Some(b"value\x00\xff".to_vec()),
            "xattr on a file"
        );
        assert_eq!(
            xattr::get(dst.join("a"), "user.cairn.dir").unwrap(),
            Some(b"on a directory".to_vec()),
            "xattr on a directory"
        );
    }
    if have.chowned {
        let m = fs::metadata(dst.join("owned-by-1234")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "owner restored as root");
        let m = fs::metadata(dst.join("setuid-prog")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        let m = fs::symlink_metadata(dst.join("dangling")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "symlink owner");
    }
    if have.device {
        let m = fs::symlink_metadata(dst.join("dev-null")).unwrap();
        assert_eq!(m.mode() & libc::S_IFMT, libc::S_IFCHR, "device type");
        assert_eq!(m.rdev(), libc::makedev(1, 3), "device number");
    }

    // --verify re-reads everything and succeeds on an intact repository.
    let out = env.run([
        "--json".as_ref(),
        "restore".as_ref(),
        OsStr::new(&id),
        "--target".as_ref(),
        env.path("verified").as_os_str(),
        "--verify".as_ref(),
    ]);
    assert_exit(&out, 0, "restore --verify");
    let v = parse_json(&out);
    assert!(
        v["verified"].as_u64().unwrap_or(0) >= 8,
        "restore --verify checked too few files: {v}"
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_trees_equal(&src, &env.path("verified"));
}

/// Regular files below `root` with one link, and with several.
fn count_files(root: &Path) -> (u64, u64) {
    let (mut single, mut linked) = (0, 0);
    for e in scan(root).values() {
        if e.meta.is_file() {
            if e.meta.nlink() == 1 {
                single += 1;
            } else {
                linked += 1;
            }
        }
    }
    (single, linked)
}

#[test]
fn restore_again_into_same_dir_keeps_tree_identical() {
    let env = Env::new();
    let src = env.path("src");
    build_hostile_tree(&src);
    env.backup(&src, &[]);
    let dst = env.path("restored");
    env.restore("latest", &dst, &[]);
    assert_trees_equal(&src, &dst);

    // A second restore into the finished copy: every entry already exists.
    let v = env.json(["restore", "latest", "--target", dst.to_str().unwrap()]);
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_trees_equal(&src, &dst);
    let (single, _) = count_files(&src);
    assert!(
        v["files_unchanged"].as_u64().unwrap() >= single,
        "identical files were rewritten: {v}"
    );
    assert!(v["bytes_written"].as_u64().unwrap() < 1 << 20, "{v}");
}

#[test]
fn restore_again_leaves_identical_hard_links_alone() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("plain"), b"plain\n");
    write(&src.join("h1"), b"linked\n");
    fs::create_dir_all(src.join("l")).unwrap();
    fs::hard_link(src.join("h1"), src.join("l/h2")).unwrap();
    env.backup(&src, &[]);
    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    assert_trees_equal(&src, &dst);
    let ino = fs::metadata(dst.join("h1")).unwrap().ino();

    let v = env.json(["restore", "latest", "--target", dst.to_str().unwrap()]);
    assert_trees_equal(&src, &dst);
    // An existing directory: a restore rewrites only what differs.
    assert_eq!(v["files_written"], 0, "identical files were rewritten: {v}");
    assert_eq!(v["files_unchanged"], 2, "{v}");
    assert_eq!(
        fs::metadata(dst.join("h1")).unwrap().ino(),
        ino,
        "an identical hard-linked file was replaced"
    );
}

#[test]
fn restore_subpath_and_single_file() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("top.txt"), b"top\n");
    write(&src.join("sub/file.txt"), b"the file\n");
    write(&src.join("sub/dir/x.txt"), b"x\n");
    write(&src.join("sub/dir/y.bin"), random_bytes(3, 5000));
    write(&src.join("sub/dir/deeper/z.txt"), b"z\n");
    write(&src.join("other/a.log"), b"log\n");
    chmod(&src.join("sub/dir"), 0o700);
    stamp_mtimes(&src, 1_600_000_000);
    let b = env.backup(&src, &[]);
    let id = b["snapshot_id"].as_str().unwrap().to_string();
    let short = &id[..8];

    // A directory: its contents go into the target.
    let d1 = env.path("d1");
    env.restore(&format!("{short}:/sub/dir"), &d1, &[]);
    assert_eq!(list_tree(&d1), ["deeper", "deeper/z.txt", "x.txt", "y.bin"]);
    assert_trees_equal(&src.join("sub/dir"), &d1);

    // A single file: DIR/<its name>.
    let d2 = env.path("d2");
    env.restore(&format!("{id}:/sub/file.txt"), &d2, &[]);
    assert_eq!(list_tree(&d2), ["file.txt"]);
    assert_eq!(fs::read(d2.join("file.txt")).unwrap(), b"the file\n");
    let (ms, md) = (
        fs::metadata(src.join("sub/file.txt")).unwrap(),
        fs::metadata(d2.join("file.txt")).unwrap(),
    );
    assert_eq!(
        (ms.mtime(), ms.mtime_nsec(), ms.mode()),
        (md.mtime(), md.mtime_nsec(), md.mode())
    );

    // Without the leading slash.
    let d3 = env.path("d3");
    env.restore("latest:sub/file.txt", &d3, &[]);
    assert_eq!(list_tree(&d3), ["file.txt"]);
    assert_eq!(fs::read(d3.join("file.txt")).unwrap(), b"the file\n");

    // The root named explicitly.
    let d3b = env.path("d3b");
    env.restore("latest:/", &d3b, &[]);
    assert_trees_equal(&src, &d3b);

    // --include: only matching files and the directories that hold them.
    let d4 = env.path("d4");
    env.restore("latest", &d4, &["--include", "*.txt"]);
    assert_eq!(
        list_tree(&d4),
        [
            "sub",
            "sub/dir",
            "sub/dir/deeper",
            "sub/dir/deeper/z.txt",
            "sub/dir/x.txt",
            "sub/file.txt",
            "top.txt"
        ]
    );
    assert_eq!(fs::read(d4.join("sub/dir/x.txt")).unwrap(), b"x\n");

    // --exclude: skips matching files and whole directories.
    let d5 = env.path("d5");
    env.restore("latest", &d5, &["--exclude", "*.txt", "--exclude", "other"]);
    assert_eq!(
        list_tree(&d5),
        ["sub", "sub/dir", "sub/dir/deeper", "sub/dir/y.bin"]
    );

    // A path the snapshot lacks is one clear error.
    let out = env.run([
        "restore",
        "latest:/no/such/thing",
        "--target",
        env.path("d6").to_str().unwrap(),
    ]);
    let line = assert_one_line_error(&out, "restore of a missing subpath");
    assert!(line.contains("no/such/thing"), "{line}");
}

/// A snapshot of a small tree restored into `dst`, then damaged there: one
/// file changed in place (same size), the sparse file's hole filled with
/// data, extra entries in a subdirectory and at the top. Returns (src, dst).
fn restored_then_damaged(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::FileExt;
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("data/large.bin"), random_bytes(11, 600_000));
    {
        let f = fs::File::create(src.join("data/sparse.img")).unwrap();
        f.set_len(2 * MIB as u64).unwrap();
        f.write_all_at(b"tail", 2 * MIB as u64 - 4).unwrap();
    }
    stamp_mtimes(&src, 1_650_000_000);
    env.backup(&src, &[]);

    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);
    assert_trees_equal(&src, &dst);

    let f = fs::OpenOptions::new()
        .write(true)
        .open(dst.join("data/large.bin"))
        .unwrap();
    f.write_all_at(b"CORRUPTED BY A USER", 300_000).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dst.join("data/sparse.img"))
        .unwrap();
    f.write_all_at(&random_bytes(12, MIB), 0).unwrap();
    f.sync_all().unwrap();
    write(&dst.join("data/extra.txt"), b"not in the snapshot\n");
    write(&dst.join("extra-dir/inner.txt"), b"neither\n");
    write(&dst.join("extra-top.txt"), b"neither\n");
    (src, dst)
}

#[test]
fn restore_into_existing_dir_rewrites_only_differences() {
    let env = Env::new();
    let (src, dst) = restored_then_damaged(&env);

    let v = env.json(["restore", "latest", "--target", dst.to_str().unwrap()]);
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_eq!(
        v["files_unchanged"], 6,
        "the six intact files must be reported unchanged: {v}"
    );
    assert_eq!(
        v["files_written"], 2,
        "only the two damaged files differ: {v}"
    );
    assert!(
        v["bytes_written"].as_u64().unwrap() < 600_000 + MIB as u64,
        "whole files were rewritten, not only the damaged chunks: {v}"
    );
    assert_eq!(
        fs::read(dst.join("data/large.bin")).unwrap(),
        fs::read(src.join("data/large.bin")).unwrap()
    );
    assert_eq!(
        fs::read(dst.join("data/sparse.img")).unwrap(),
        fs::read(src.join("data/sparse.img")).unwrap()
    );
    let sparse = fs::metadata(dst.join("data/sparse.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < MIB as u64 / 2,
        "the refilled hole was not punched again: {} bytes allocated",
        sparse.blocks() * 512
    );
    // Without --delete the extras stay, and they are the only difference.
    let mut diffs = compare_trees(&src, &dst);
    diffs.sort();
    assert_eq!(
        diffs,
        [
            format!("data/extra.txt: unexpected in {}", dst.display()),
            format!("extra-dir/inner.txt: unexpected in {}", dst.display()),
            format!("extra-dir: unexpected in {}", dst.display()),
            format!("extra-top.txt: unexpected in {}", dst.display()),
        ]
    );

    // --delete removes them (entries and content checked here; attributes
    // in the test below).
    let v = env.json([
        "restore",
        "latest",
        "--target",
        dst.to_str().unwrap(),
        "--delete",
    ]);
    assert_eq!(v["deleted"], 3, "{v}");
    assert_eq!(v["files_written"], 0, "{v}");
    assert_eq!(list_tree(&dst), list_tree(&src));
    for p in list_tree(&src) {
        if src.join(&p).is_file() {
            assert_eq!(
                fs::read(src.join(&p)).unwrap(),
                fs::read(dst.join(&p)).unwrap()
            );
        }
    }
}

#[test]
fn restore_into_existing_dir_rewrites_only_differences_and_delete_removes_extras() {
    let env = Env::new();
    let (src, dst) = restored_then_damaged(&env);

    let v = env.json(["restore", "latest", "--target", dst.to_str().unwrap()]);
    assert!(
        v["files_unchanged"].as_u64().unwrap() > 0,
        "nothing reported unchanged: {v}"
    );
    assert!(dst.join("data/extra.txt").exists());
    assert!(dst.join("extra-dir/inner.txt").exists());

    let v = env.json([
        "restore",
        "latest",
        "--target",
        dst.to_str().unwrap(),
        "--delete",
    ]);
    assert!(v["deleted"].as_u64().unwrap() >= 3, "{v}");
    assert!(!dst.join("data/extra.txt").exists());
    assert!(!dst.join("extra-dir").exists());
    // "--delete removes what the snapshot lacks so DIR ends up identical to
    // the snapshot": modification times of directories included.
    assert_trees_equal(&src, &dst);
}

#[test]
fn restore_replaces_entries_of_another_type_without_following_symlinks() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    stamp_mtimes(&src, 1_650_000_000);
    env.backup(&src, &[]);
    let dst = env.path("dst");
    env.restore("latest", &dst, &[]);

    // Things outside the target that symlinks in the target point to.
    let outside_file = env.path("outside.bin");
    write(&outside_file, b"outside, do not touch\n");
    let outside_dir = env.path("outside-dir");
    write(&outside_dir.join("x"), b"x\n");
    let outside_before = list_tree(&outside_dir);

    // Replace entries by entries of another type.
    fs::remove_dir_all(dst.join("etc")).unwrap();
    write(&dst.join("etc"), b"a file where a directory was\n");
    fs::remove_file(dst.join("readme.txt")).unwrap();
    write(
        &dst.join("readme.txt/inner"),
        b"a directory where a file was\n",
    );
    fs::remove_file(dst.join("data/two.bin")).unwrap();
    std::os::unix::fs::symlink(&outside_file, dst.join("data/two.bin")).unwrap();
    fs::remove_dir_all(dst.join("data/nested")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, dst.join("data/nested")).unwrap();
    fs::remove_file(dst.join("empty-file")).unwrap();
    mkfifo(&dst.join("empty-file"), 0o644);

    let v = env.json(["restore", "latest", "--target", dst.to_str().unwrap()]);
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_trees_equal(&src, &dst);
    assert_eq!(
        fs::read(&outside_file).unwrap(),
        b"outside, do not touch\n",
        "restore wrote through a symlink in the target"
    );
    assert_eq!(
        list_tree(&outside_dir),
        outside_before,
        "restore created entries through a symlinked directory"
    );
}

/// The comparison the other tests rely on notices every kind of difference.
#[test]
fn compare_trees_detects_differences() {
    let env = Env::new();
    let a = env.path("a");
    write(&a.join("f"), b"content");
    write(&a.join("d/g"), b"g");
    write(&a.join("h1"), b"h");
    fs::hard_link(a.join("h1"), a.join("h2")).unwrap();
    std::os::unix::fs::symlink("f", a.join("l")).unwrap();
    stamp_mtimes(&a, 1_600_000_000);
    let fresh = |name: &str| {
        let b = env.path(name);
        let out = std::process::Command::new("cp")
            .args(["-a", a.to_str().unwrap(), b.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "cp -a: {}", stderr(&out));
        assert_trees_equal(&a, &b);
        b
    };
    let touch = |p: &Path| set_mtime(p, 1_600_000_000, 1);

    let b = fresh("b1");
    chmod(&b.join("f"), 0o600);
    assert_eq!(compare_trees(&a, &b).len(), 1, "mode");
    let b = fresh("b2");
    touch(&b.join("d/g"));
    assert_eq!(compare_trees(&a, &b).len(), 1, "mtime");
    let b = fresh("b3");
    let m = fs::metadata(b.join("f")).unwrap();
    fs::write(b.join("f"), b"CONTENT").unwrap();
    set_mtime(&b.join("f"), m.mtime(), m.mtime_nsec() as u32);
    assert_eq!(compare_trees(&a, &b).len(), 1, "content");
    let b = fresh("b4");
    fs::remove_file(b.join("l")).unwrap();
    std::os::unix::fs::symlink("g", b.join("l")).unwrap();
    let m = fs::symlink_metadata(a.join("l")).unwrap();
    set_mtime(&b.join("l"), m.mtime(), m.mtime_nsec() as u32);
    let dm = fs::metadata(a.clone()).unwrap();
    set_mtime(&b, dm.mtime(), dm.mtime_nsec() as u32);
    assert_eq!(compare_trees(&a, &b).len(), 1, "symlink target");
    let b = fresh("b5");
    fs::remove_file(b.join("h2")).unwrap();
    fs::copy(b.join("h1"), b.join("h2")).unwrap();
    let m = fs::metadata(a.join("h1")).unwrap();
    set_mtime(&b.join("h2"), m.mtime(), m.mtime_nsec() as u32);
    assert!(
        compare_trees(&a, &b)
            .iter()
            .any(|d| d.contains("hard-linked")),
        "hard links: {:?}",
        compare_trees(&a, &b)
    );
    let b = fresh("b6");
    fs::remove_file(b.join("d/g")).unwrap();
    assert!(compare_trees(&a, &b).iter().any(|d| d.contains("missing")));
    if xattr::set(b.join("f"), "user.x", b"1").is_ok() {
        assert!(compare_trees(&a, &b).iter().any(|d| d.contains("xattrs")));
    }
}

#[test]
fn backup_several_paths_stores_each_as_top_level_dir() {
    let env = Env::new();
    let a = env.path("vols/alpha");
    let b = env.path("other/beta");
    write(&a.join("a.txt"), b"alpha\n");
    write(&a.join("sub/aa.txt"), b"alpha sub\n");
    write(&b.join("b.txt"), b"beta\n");
    stamp_mtimes(&a, 1_600_000_000);
    stamp_mtimes(&b, 1_600_000_000);
    let out = env.json(["backup", a.to_str().unwrap(), b.to_str().unwrap()]);
    let id = out["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(
        env.ls_paths(&id),
        [
            "alpha",
            "alpha/a.txt",
            "alpha/sub",
            "alpha/sub/aa.txt",
            "beta",
            "beta/b.txt"
        ]
    );
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    let paths: Vec<&str> = snaps[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths, [a.to_str().unwrap(), b.to_str().unwrap()]);

    let dst = env.path("dst");
    fs::create_dir_all(&dst).unwrap();
    chmod(&dst, 0o711);
    env.restore(&id, &dst, &[]);
    // The root of a several-path snapshot is synthetic: the target keeps its own mode.
    assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o7777, 0o711);
    assert_eq!(list_tree(&dst).len(), 6);
    assert_trees_equal(&a, &dst.join("alpha"));
    assert_trees_equal(&b, &dst.join("beta"));

    // Two paths with the same last component cannot both be top-level dirs.
    let x = env.path("x/data");
    let y = env.path("y/data");
    write(&x.join("1"), b"1");
    write(&y.join("2"), b"2");
    let out = env.run(["backup", x.to_str().unwrap(), y.to_str().unwrap()]);
    let line = assert_one_line_error(&out, "backup of two paths named `data`");
    assert!(line.contains("data"), "{line}");
    assert_eq!(env.snapshots().len(), 1, "a snapshot was written anyway");
}
