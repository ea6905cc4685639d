//! Helpers shared by the fault, state-machine and defect tests: a small-pack
//! repository behind a fault-injecting backend, backups and prunes the way
//! the CLI runs them, restores compared byte for byte.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_repo::format::layout::{self, FileType};
use cairn_repo::ops::backup::{backup, find_parent, BackupOptions, NoProgress};
use cairn_repo::ops::check::{check, CheckOptions, CheckReport};
use cairn_repo::ops::prune::{prune, PruneOptions, PruneReport};
use cairn_repo::ops::restore::{restore, NoRestoreProgress, RestoreOptions, RestoreOutcome};
use cairn_repo::store::faults::FaultBackend;
use cairn_repo::{Backend, Config, Id, LocalBackend, Repository, Result};

/// A temporary directory, in memory (`/dev/shm`) where there is one: these
/// tests test what cairn writes, not the disk, and every put fsyncs.
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A repository with 64 KiB packs and small chunks (so a few hundred KiB of
/// data make many chunks and packs) in `dir/repo`, behind a fault backend.
pub fn small_pack_repo(dir: &Path) -> Arc<FaultBackend> {
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.join("repo")));
    let chunker = cairn_chunk::ChunkerParams {
        min: 2 << 10,
        avg: 8 << 10,
        max: 32 << 10,
    };
    let mut config = Config::new(chunker, cairn_chunk::Compression::None);
    config.pack_size = 64 << 10;
    Repository::init(&*local, &config).unwrap();
    Arc::new(FaultBackend::new(local))
}

/// Open the repository as a new process would (in-memory index cache).
pub fn open(faults: &Arc<FaultBackend>) -> Repository {
    Repository::open(faults.clone(), None).unwrap()
}

/// Backup options for one source directory.
pub fn opts(src: &Path) -> BackupOptions {
    BackupOptions {
        paths: vec![src.to_path_buf()],
        volume: "v".into(),
        host: "h".into(),
        ..BackupOptions::default()
    }
}

/// A backup as `cairn backup` runs it: the parent (the latest snapshot of
/// the same volume, host and paths) is chosen first, then the backup runs.
pub fn backup_like_cli(repo: &Repository, src: &Path) -> Result<Id> {
    let mut o = opts(src);
    o.parent = find_parent(repo, &o)?;
    let out = backup(repo, &o, &NoProgress)?;
    Ok(out.snapshot_id.expect("not a dry run"))
}

/// Prune with the default threshold.
pub fn prune_now(repo: &Repository) -> Result<PruneReport> {
    prune(
        repo,
        &PruneOptions {
            max_unused_percent: 5.0,
            dry_run: false,
            segment_entries: 5,
        },
    )
}

/// Write the lock of a backup "running in another process" (fresh, so a
/// prune waits for it); returns its key.
pub fn fake_running_backup(backend: &dyn Backend) -> String {
    let run = random_id().to_hex()[..16].to_string();
    let key = format!("locks/{run}-00000000");
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = format!(r#"{{"run":"{run}","host":"other","pid":1,"time":"{time}"}}"#);
    backend.put(&key, body.as_bytes()).unwrap();
    key
}

/// Full check, reading every byte.
pub fn check_all(repo: &Repository) -> CheckReport {
    check(
        repo,
        &CheckOptions {
            read_data_percent: 100.0,
        },
    )
    .unwrap()
}

/// Restore a whole snapshot into `target` (which must not exist yet).
pub fn restore_to(repo: &Repository, id: &Id, target: &Path) -> Result<RestoreOutcome> {
    let (id, snap) = repo.find_snapshot(&id.to_hex(), &Default::default())?;
    restore(
        repo,
        &id,
        &snap,
        b"",
        &RestoreOptions {
            target: target.to_path_buf(),
            ..Default::default()
        },
        &NoRestoreProgress,
    )
}

/// Every regular file below `root`, by relative path, with its content;
/// directories appear with an empty content and a trailing `/`.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    read_rec(root, root, &mut out);
    out
}

fn read_rec(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            out.insert(format!("{rel}/"), Vec::new());
            read_rec(root, &p, out);
        } else {
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

/// Write `tree` (as [`read_tree`] returns it) into an empty `root`.
pub fn write_tree(root: &Path, tree: &BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(root).unwrap();
    for (rel, data) in tree {
        let p = root.join(rel.trim_end_matches('/'));
        if rel.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
        }
    }
}

/// A short description of two trees' differences (empty if equal).
pub fn tree_diff(
    expected: &BTreeMap<String, Vec<u8>>,
    actual: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => d.push(format!("missing {k}")),
            Some(a) if a != v => d.push(format!("{k}: {} bytes differ", a.len())),
            _ => {}
        }
    }
    d.extend(
        actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .map(|k| format!("extra {k}")),
    );
    d
}

/// Restore `id` into a fresh directory under `scratch` and require exactly
/// `expected`, with no restore problem.
pub fn assert_restores(
    repo: &Repository,
    id: &Id,
    expected: &BTreeMap<String, Vec<u8>>,
    scratch: &Path,
) {
    let target = scratch.join(format!("restore-{}", random_id().short()));
    let out = restore_to(repo, id, &target)
        .unwrap_or_else(|e| panic!("restore of snapshot {}: {e}", id.short()));
    assert!(
        out.errors.is_empty(),
        "restore of snapshot {}: {:?}",
        id.short(),
        out.errors
    );
    let got = read_tree(&target);
    let diff = tree_diff(expected, &got);
    assert!(
        diff.is_empty(),
        "snapshot {} restores differently: {diff:?}",
        id.short()
    );
    std::fs::remove_dir_all(&target).unwrap();
}

/// A fresh random id (names of runs and files that must not collide).
pub fn random_id() -> Id {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{nanos}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    Id::of(seed.as_bytes())
}

/// A hook the fault backend runs at an exact moment.
pub type Hook = Arc<dyn Fn() + Send + Sync>;

/// A source tree of `n` files of 120 KiB each (several packs of data).
pub fn source(dir: &Path, seed: u64, n: u64) -> BTreeMap<String, Vec<u8>> {
    let src = dir.join("src");
    let tree: BTreeMap<String, Vec<u8>> = (0..n)
        .map(|i| (format!("f{i}"), noise(seed + i, 120 << 10)))
        .collect();
    write_tree(&src, &tree);
    tree
}

/// After the faults are gone: `check` finds nothing wrong and `id`
/// restores to `expected`.
pub fn assert_whole(faults: &Arc<FaultBackend>, id: &Id, expected: &BTreeMap<String, Vec<u8>>) {
    faults.heal();
    let repo = open(faults);
    let report = check_all(&repo);
    assert!(
        report.ok(),
        "snapshot {} was reported saved, but check finds: {:?} {:?}",
        id.short(),
        report.errors,
        report.damaged
    );
    let scratch = tempdir();
    assert_restores(&repo, id, expected, scratch.path());
}

/// The data packs (not the tree pack) a snapshot's files are stored in.
pub fn data_packs(repo: &Repository, tree: &Id) -> Vec<Id> {
    let tree_pack = repo.locate(tree).unwrap().pack;
    let mut packs: Vec<Id> = repo
        .list(FileType::Pack)
        .unwrap()
        .into_keys()
        .filter(|p| *p != tree_pack)
        .collect();
    packs.sort();
    packs
}

/// The key of a pack.
pub fn pack_key_of(id: &Id) -> String {
    layout::key(FileType::Pack, id)
}
