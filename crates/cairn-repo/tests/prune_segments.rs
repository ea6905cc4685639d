//! A prune writes its new index as several segments, the last superseding
//! the old index (docs/FORMAT.md 11): every snapshot restores after it, and
//! a prune that stops between two of them leaves the old index in force.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn_repo::ops::prune::{prune, PruneOptions, PruneReport};
use cairn_repo::store::faults::{Fault, FaultBackend, Op};
use cairn_repo::{Backend, Id, Repository, Result};
use support::*;

/// Twelve files; `round` changes the odd ones.
fn source(round: u64) -> BTreeMap<String, Vec<u8>> {
    (0..12u64)
        .map(|n| {
            let seed = if n % 2 == 1 { n + 100 * round } else { n };
            (format!("f{n:02}"), noise(seed, 20_000))
        })
        .collect()
}

/// Two snapshots, the first forgotten: half of its data is unused.
fn history(dir: &Path) -> (Arc<FaultBackend>, Id, BTreeMap<String, Vec<u8>>) {
    let faults = small_pack_repo(dir);
    let repo = open(&faults);
    let src = dir.join("src");
    write_tree(&src, &source(1));
    let first = backup_like_cli(&repo, &src).unwrap();
    std::fs::remove_dir_all(&src).unwrap();
    write_tree(&src, &source(2));
    let second = backup_like_cli(&repo, &src).unwrap();
    repo.remove_snapshot(&first).unwrap();
    (faults, second, source(2))
}

fn prune_in_segments_of(repo: &Repository, entries: usize) -> Result<PruneReport> {
    let opts = PruneOptions {
        max_unused_percent: 5.0,
        dry_run: false,
        segment_entries: entries,
    };
    prune(repo, &opts)
}

fn segments(faults: &FaultBackend) -> usize {
    faults.list("index/").unwrap().len()
}

#[test]
fn a_prune_publishes_its_index_in_several_segments() {
    let dir = tempdir();
    let (faults, kept, expected) = history(dir.path());
    let report = prune_in_segments_of(&open(&faults), 4).unwrap();
    assert!(report.packs_deleted > 0, "{report:?}");
    assert!(segments(&faults) > 1, "the index is written in pieces");
    // A new host (a fresh cache) reads the pieces.
    let repo = open(&faults);
    let found = check_all(&repo);
    assert!(found.ok(), "{found:?}");
    assert_restores(&repo, &kept, &expected, dir.path());
    // And a second prune finds nothing more to do.
    let again = prune_in_segments_of(&repo, 4).unwrap();
    assert_eq!((again.packs_deleted, again.packs_repacked), (0, 0));
}

/// Each index put of a prune fails in turn: whatever it had written, the
/// snapshot restores and `check` finds nothing wrong; the next prune
/// finishes the work.
#[test]
fn a_prune_stopped_between_its_segments_loses_nothing() {
    let mut fired = 0;
    for skip in 0.. {
        let dir = tempdir();
        let (faults, kept, expected) = history(dir.path());
        let before = faults.list("packs/").unwrap().len();
        let fault = Fault::Fail(std::io::ErrorKind::Other);
        faults.inject(Op::Put, "index/", fault, skip, 1);
        let failed = prune_in_segments_of(&open(&faults), 4).is_err();
        faults.heal();
        let repo = open(&faults);
        let found = check_all(&repo);
        assert!(found.ok(), "after put {skip} failed: {found:?}");
        assert_restores(&repo, &kept, &expected, dir.path());
        if !failed {
            break; // no more index puts to fail
        }
        fired += 1;
        prune_in_segments_of(&repo, 4).unwrap();
        let repo = open(&faults);
        assert!(check_all(&repo).ok());
        assert_restores(&repo, &kept, &expected, dir.path());
        assert!(faults.list("packs/").unwrap().len() < before);
    }
    assert!(fired > 2, "only {fired} index puts");
}
