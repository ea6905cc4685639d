//! Repositories written by earlier cairn versions must keep opening. The
//! fixture under tests/fixtures/repo-v1 was written by cairn 0.1.0 (format
//! version 1) from a three-entry tree; never regenerate it, add new ones.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Env;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn format_version_1_repository_still_restores() {
    let env = Env::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1"),
        &env.repo,
    );
    let target = env.path("out");
    let out = env.restore("latest", &target, &["--verify"]);
    common::assert_exit(&out, 0, "restore of the v1 fixture");

    let a = std::fs::read(target.join("a.txt")).unwrap();
    assert_eq!(a, b"hello from format version 1\n");
    let meta = std::fs::metadata(target.join("a.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta.mtime(), 1706933106);
    assert_eq!(meta.mtime_nsec(), 789_000_000);
    let b = std::fs::read(target.join("dir/b.bin")).unwrap();
    assert_eq!(b.len(), 200_000);
    assert_eq!(
        blake3::hash(&b).to_hex().as_str(),
        "68ef6df801371ee0700ee4b2035d5baa29cf40a4c65e6995d8053be2961f4c5a"
    );
    assert_eq!(
        std::fs::read_link(target.join("link")).unwrap(),
        Path::new("a.txt")
    );
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["volume"], "fixture");
    assert_eq!(snaps[0]["tags"][0], "v1");
}
