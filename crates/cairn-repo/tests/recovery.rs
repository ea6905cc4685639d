//! What a killed process leaves behind, and one read that fails, never
//! fail or damage a later command. Each test reproduced a defect before
//! its fix; the sequences are staged with the fault backend's hooks, as in
//! `races.rs`.

mod support;

use std::path::Path;

use cairn_repo::format::layout::{self, FileType};
use cairn_repo::store::faults::{Fault, Op};
use cairn_repo::{Backend, Id};
use support::*;

/// Leftovers of a dead process whose pid this process now has, named as
/// cairn used to name them: one for every `n` a counter of this process
/// could reach in these tests.
fn leftovers_of_my_pid(dir: &Path, name: impl Fn(u64) -> String) {
    std::fs::create_dir_all(dir).unwrap();
    for n in 0..3000 {
        std::fs::write(dir.join(name(n)), b"").unwrap();
    }
}

/// Defect (a backup failed, and kept failing): spool files were named
/// `pack-<pid>-<n>` and created exclusively. A backup killed while it
/// built packs left such files; a later backup that got the same pid
/// (pids wrap; after a reboot the same services get similar pids) failed
/// with ".spool/pack-<pid>-<n>: File exists" when its counter reached a
/// leftover. Found by the crash torture (`tests/torture.rs`) after about a
/// thousand processes. Spool files now have random names.
#[test]
fn spool_files_of_a_dead_process_with_the_same_pid_never_fail_a_backup() {
    let dir = tempdir();
    let tree = source(dir.path(), 15, 2);
    let src = dir.path().join("src");
    let faults = small_pack_repo(dir.path());
    let pid = std::process::id();
    leftovers_of_my_pid(&dir.path().join("repo/.spool"), |n| {
        format!("pack-{pid}-{n}")
    });
    let s1 = backup_like_cli(&open(&faults), &src).unwrap();
    assert_whole(&faults, &s1, &tree);
}

/// Defect (a backup failed once, with a misleading message): the local
/// backend wrote each object to `.tmp-<pid>-<n>` next to its key first,
/// created exclusively. A process killed mid-put left that file; the next
/// process with the same pid that reached the same `n` in that directory
/// failed its put with "<key>: already exists (repository objects are
/// written once)", although the object did not exist. Every backup's
/// first put is its lock, so a backup killed while writing its lock was
/// enough. Temporary files now have random names.
#[test]
fn temporary_files_of_a_dead_process_with_the_same_pid_never_fail_a_put() {
    let dir = tempdir();
    let tree = source(dir.path(), 16, 2);
    let src = dir.path().join("src");
    let faults = small_pack_repo(dir.path());
    let pid = std::process::id();
    leftovers_of_my_pid(&dir.path().join("repo/locks"), |n| {
        format!(".tmp-{pid}-{n}")
    });
    let s1 = backup_like_cli(&open(&faults), &src).unwrap();
    assert_whole(&faults, &s1, &tree);
}

/// Defect: `repair index` left a pack whose table it could not read out of
/// the new segment, for any error, and then deleted the old segments,
/// which listed it: after one transient read error every snapshot needing
/// that pack failed `check` and restore, until a second `repair index`.
/// Now a table is read again; a pack that still cannot be read fails the
/// repair (naming it) before any segment is replaced.
#[test]
fn a_read_error_during_repair_index_leaves_the_index_whole() {
    let dir = tempdir();
    let tree = source(dir.path(), 5, 4);
    let src = dir.path().join("src");
    let faults = small_pack_repo(dir.path());
    let repo = open(&faults);
    let s1 = backup_like_cli(&repo, &src).unwrap();
    let snap1 = repo
        .find_snapshot(&s1.to_hex(), &Default::default())
        .unwrap()
        .1;
    let pack = data_packs(&repo, &snap1.tree)[0];
    faults.inject(
        Op::Get,
        &pack_key_of(&pack),
        Fault::Fail(std::io::ErrorKind::Other),
        0,
        1,
    );
    match cairn_repo::ops::repair::repair_index(&repo) {
        Err(e) => assert!(e.to_string().contains("packs/"), "{e}"),
        Ok(r) => assert!(r.unreadable.is_empty(), "left out: {:?}", r.unreadable),
    }
    assert_whole(&faults, &s1, &tree);
}

fn pack_key_of(id: &Id) -> String {
    layout::key(FileType::Pack, id)
}

/// A pack that cannot be read at all fails `repair index`, naming it,
/// and the old index stays as it was.
#[test]
fn repair_index_fails_on_a_pack_it_cannot_read_and_replaces_nothing() {
    let dir = tempdir();
    let tree = source(dir.path(), 6, 2);
    let src = dir.path().join("src");
    let faults = small_pack_repo(dir.path());
    let repo = open(&faults);
    let s1 = backup_like_cli(&repo, &src).unwrap();
    let segments = faults.list("index/").unwrap();
    let snap1 = repo
        .find_snapshot(&s1.to_hex(), &Default::default())
        .unwrap()
        .1;
    let key = pack_key_of(&data_packs(&repo, &snap1.tree)[0]);
    faults.inject(
        Op::Get,
        &key,
        Fault::Fail(std::io::ErrorKind::Other),
        0,
        1000,
    );
    let e = cairn_repo::ops::repair::repair_index(&repo).unwrap_err();
    assert!(e.to_string().contains(&key), "{e}");
    assert_eq!(faults.list("index/").unwrap(), segments);
    assert_whole(&faults, &s1, &tree);
}

/// A pack whose table fails verification at every read is damaged, not
/// unlucky: `repair index` leaves it out and names it.
#[test]
fn repair_index_names_and_leaves_out_a_pack_whose_table_is_damaged() {
    let dir = tempdir();
    let tree = source(dir.path(), 7, 2);
    let src = dir.path().join("src");
    let faults = small_pack_repo(dir.path());
    let repo = open(&faults);
    let s1 = backup_like_cli(&repo, &src).unwrap();
    let snap1 = repo
        .find_snapshot(&s1.to_hex(), &Default::default())
        .unwrap()
        .1;
    let pack = data_packs(&repo, &snap1.tree)[0];
    faults.inject(Op::Get, &pack_key_of(&pack), Fault::FlipBit, 0, 1000);
    let r = cairn_repo::ops::repair::repair_index(&repo).unwrap();
    assert_eq!(r.unreadable.len(), 1, "{r:?}");
    assert!(r.unreadable[0].contains(&pack.to_hex()), "{r:?}");
    // The pack is fine once reads are: a second repair indexes it again.
    faults.heal();
    let r = cairn_repo::ops::repair::repair_index(&repo).unwrap();
    assert!(r.unreadable.is_empty(), "{r:?}");
    assert_whole(&faults, &s1, &tree);
}
