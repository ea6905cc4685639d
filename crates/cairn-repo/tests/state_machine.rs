//! Random histories against a model: sequences of writes to a source tree,
//! backups, forgets, prunes (some deferred by a backup running elsewhere),
//! index repairs and restores, checked after every step. The model is the
//! set of snapshots that are alive and the tree each one captured; after
//! each step every one of them must restore exactly, so a prune that loses
//! anything a snapshot needs is caught at the step that lost it.
//!
//! `CAIRN_PROPTEST_CASES=2000 cargo test -p cairn-repo --test state_machine`
//! for a long run; the default count keeps it well under 30 s.
//!

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_repo::ops::backup::{backup, NoProgress};
use cairn_repo::ops::prune::{prune, PruneOptions};
use cairn_repo::ops::repair::repair_index;
use cairn_repo::store::faults::FaultBackend;
use cairn_repo::{Backend, Id, Repository};
use proptest::prelude::*;
use support::*;

type Tree = BTreeMap<String, Vec<u8>>;

/// Cases per run: `CAIRN_PROPTEST_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("CAIRN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Where files live in the source tree (some in subdirectories, so trees
/// are shared and replaced at several levels).
const FILES: [&str; 6] = ["a", "b", "d/c", "d/e", "d/f/g", "h"];
/// File sizes: empty, inside one chunk, and across several chunks and packs.
const SIZES: [usize; 6] = [0, 100, 5_000, 20_000, 70_000, 150_000];

#[derive(Clone, Debug)]
enum Step {
    /// Write a file with one of a few contents: the same data recurs, in
    /// other files and after it was forgotten and pruned.
    Write { file: usize, seed: u64, size: usize },
    /// Change a few bytes in the middle of a file (most chunks stay).
    Patch { file: usize, at: usize, seed: u64 },
    /// Delete a file.
    Delete { file: usize },
    /// Back up as `cairn backup` does (parent: the latest snapshot), or
    /// reading everything.
    Backup { parent: bool },
    /// Forget one live snapshot.
    Forget { which: prop::sample::Index },
    /// Forget the newest snapshot.
    ForgetLatest,
    /// Prune with a repack threshold of 0, 5, 50 or 100 percent.
    Prune { max_unused: f64 },
    /// A backup starts in another process (its lock appears): prunes plan
    /// but defer deleting.
    LockElsewhere,
    /// That backup ends.
    UnlockElsewhere,
    /// Rebuild the index from the packs.
    RepairIndex,
    /// Another process: reopen the repository (on-disk index cache kept).
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..FILES.len(), 0..5u64, 0..SIZES.len())
            .prop_map(|(file, seed, size)| Step::Write { file, seed, size: SIZES[size] }),
        2 => (0..FILES.len(), 0..150_000usize, 0..1000u64)
            .prop_map(|(file, at, seed)| Step::Patch { file, at, seed }),
        1 => (0..FILES.len()).prop_map(|file| Step::Delete { file }),
        5 => any::<bool>().prop_map(|parent| Step::Backup { parent }),
        2 => any::<prop::sample::Index>().prop_map(|which| Step::Forget { which }),
        1 => Just(Step::ForgetLatest),
        3 => prop::sample::select(vec![0.0, 5.0, 50.0, 100.0])
            .prop_map(|max_unused| Step::Prune { max_unused }),
        1 => Just(Step::LockElsewhere),
        1 => Just(Step::UnlockElsewhere),
        1 => Just(Step::RepairIndex),
        1 => Just(Step::Reopen),
    ]
}

/// The system under test and its model.
struct World {
    _dir: tempfile::TempDir,
    src: PathBuf,
    scratch: PathBuf,
    cache: PathBuf,
    backend: Arc<FaultBackend>,
    repo: Repository,
    /// The model: live snapshots, oldest first, with the tree each captured.
    live: Vec<(Id, Tree)>,
    /// Locks of backups "running elsewhere".
    locks: Vec<String>,
}

impl World {
    fn new() -> World {
        let dir = tempdir();
        let src = dir.path().join("src");
        let scratch = dir.path().join("scratch");
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        let backend = small_pack_repo(dir.path());
        let repo = Repository::open(backend.clone(), Some(&cache)).unwrap();
        World {
            _dir: dir,
            src,
            scratch,
            cache,
            backend,
            repo,
            live: Vec::new(),
            locks: Vec::new(),
        }
    }

    fn path(&self, file: usize) -> PathBuf {
        self.src.join(FILES[file])
    }

    fn apply(&mut self, step: &Step) -> Result<(), String> {
        let err = |what: &str, e: cairn_repo::Error| format!("{what}: {e}");
        match step {
            Step::Write { file, seed, size } => {
                let p = self.path(*file);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, noise(*seed, *size)).unwrap();
            }
            Step::Patch { file, at, seed } => {
                let p = self.path(*file);
                if let Ok(mut data) = std::fs::read(&p) {
                    if !data.is_empty() {
                        let at = at % data.len();
                        let end = (at + 64).min(data.len());
                        data[at..end].copy_from_slice(&noise(1000 + seed, end - at));
                        std::fs::write(&p, data).unwrap();
                    }
                }
            }
            Step::Delete { file } => {
                let _ = std::fs::remove_file(self.path(*file));
            }
            Step::Backup { parent } => {
                let tree = read_tree(&self.src);
                let id = if *parent {
                    backup_like_cli(&self.repo, &self.src).map_err(|e| err("backup", e))?
                } else {
                    backup(&self.repo, &opts(&self.src), &NoProgress)
                        .map_err(|e| err("backup", e))?
                        .snapshot_id
                        .unwrap()
                };
                self.live.push((id, tree));
            }
            Step::Forget { which } => {
                if !self.live.is_empty() {
                    let (id, _) = self.live.remove(which.index(self.live.len()));
                    self.repo
                        .remove_snapshot(&id)
                        .map_err(|e| err("forget", e))?;
                }
            }
            Step::ForgetLatest => {
                if let Some((id, _)) = self.live.pop() {
                    self.repo
                        .remove_snapshot(&id)
                        .map_err(|e| err("forget", e))?;
                }
            }
            Step::Prune { max_unused } => {
                let opts = PruneOptions {
                    max_unused_percent: *max_unused,
                    dry_run: false,
                    segment_entries: 5,
                };
                prune(&self.repo, &opts).map_err(|e| err("prune", e))?;
            }
            Step::LockElsewhere => self.locks.push(fake_running_backup(&*self.backend)),
            Step::UnlockElsewhere => {
                if let Some(key) = self.locks.pop() {
                    self.backend.delete(&key).unwrap();
                }
            }
            Step::RepairIndex => {
                repair_index(&self.repo).map_err(|e| err("repair index", e))?;
            }
            Step::Reopen => {
                self.repo = Repository::open(self.backend.clone(), Some(&self.cache))
                    .map_err(|e| err("open", e))?;
            }
        }
        Ok(())
    }

    /// Every live snapshot restores to exactly what it captured (read as
    /// the next `cairn restore` would, through the shared index cache), and
    /// the repository holds no snapshot the model does not know.
    fn verify(&self) -> Result<(), String> {
        let repo =
            Repository::open(self.backend.clone(), Some(&self.cache)).map_err(|e| e.to_string())?;
        let present: Vec<Id> = repo
            .snapshots()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| s.0)
            .collect();
        let mut want: Vec<Id> = self.live.iter().map(|s| s.0).collect();
        want.sort();
        let mut got = present.clone();
        got.sort();
        if want != got {
            return Err(format!("snapshots: model {want:?}, repository {got:?}"));
        }
        for (id, tree) in &self.live {
            restored_equals(&repo, id, tree, &self.scratch)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let report = check_all(&Repository::open(self.backend.clone(), Some(&self.cache)).unwrap());
        if report.ok() {
            Ok(())
        } else {
            Err(format!("check: {:?} {:?}", report.errors, report.damaged))
        }
    }
}

fn restored_equals(repo: &Repository, id: &Id, tree: &Tree, scratch: &Path) -> Result<(), String> {
    let target = scratch.join(id.to_hex());
    let out = restore_to(repo, id, &target).map_err(|e| format!("restore {}: {e}", id.short()))?;
    if !out.errors.is_empty() {
        return Err(format!("restore {}: {:?}", id.short(), out.errors));
    }
    let diff = tree_diff(tree, &read_tree(&target));
    std::fs::remove_dir_all(&target).unwrap();
    if diff.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "snapshot {} restores differently: {diff:?}",
            id.short()
        ))
    }
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut world = World::new();
    for (i, step) in steps.iter().enumerate() {
        world
            .apply(step)
            .and_then(|_| world.verify())
            .map_err(|e| TestCaseError::fail(format!("step {i} {step:?}: {e}")))?;
    }
    // Whatever the history, the other backups end and a prune carries
    // every plan out: still nothing lost, and check is clean.
    let mut last = vec![Step::UnlockElsewhere; world.locks.len()];
    last.push(Step::Prune { max_unused: 0.0 });
    for step in last {
        world
            .apply(&step)
            .and_then(|_| world.verify())
            .map_err(|e| TestCaseError::fail(format!("final {step:?}: {e}")))?;
    }
    world.check().map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_live_snapshot_restores_after_every_step(
        steps in prop::collection::vec(step(), 1..30)
    ) {
        run(&steps)?;
    }
}
