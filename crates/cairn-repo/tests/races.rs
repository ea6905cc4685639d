//! Races between backups and prunes, staged at exact moments through the
//! fault-injecting backend's hooks.

use std::path::Path;
use std::sync::Arc;

use cairn_repo::ops::backup::{backup, BackupOptions, NoProgress};
use cairn_repo::ops::check::{check, CheckOptions, Finding};
use cairn_repo::ops::prune::{prune, PruneOptions};
use cairn_repo::store::faults::{Fault, FaultBackend, Op};
use cairn_repo::{Backend, Config, LocalBackend, Repository};

fn noise(seed: u64, len: usize) -> Vec<u8> {
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

fn small_pack_repo(dir: &Path) -> (Arc<FaultBackend>, Repository) {
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.join("repo")));
    let mut config = Config::new(Default::default(), cairn_chunk::Compression::None);
    config.pack_size = 64 << 10;
    Repository::init(&*local, &config).unwrap();
    let faults = Arc::new(FaultBackend::new(local));
    let repo = Repository::open(faults.clone(), None).unwrap();
    (faults, repo)
}

fn opts(src: &Path) -> BackupOptions {
    BackupOptions {
        paths: vec![src.to_path_buf()],
        volume: "v".into(),
        host: "h".into(),
        ..BackupOptions::default()
    }
}

/// A lock of another backup that is running (written now, so it is fresh).
fn fake_running_backup(backend: &dyn Backend) -> String {
    let key = "locks/0123456789abcdef-00000000".to_string();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = format!(r#"{{"run":"0123456789abcdef","host":"other","pid":1,"time":"{time}"}}"#);
    backend.put(&key, body.as_bytes()).unwrap();
    key
}

fn prune_now(repo: &Repository) {
    let opts = PruneOptions {
        max_unused_percent: 5.0,
        dry_run: false,
    };
    prune(repo, &opts).unwrap();
}

/// Defect: packs were named by their content, so a backup storing data again
/// (because a prune plan doomed its only copy) "wrote" a pack of the same name
/// that already existed; carrying out the plan then deleted the pack the new
/// snapshot needs.
#[test]
fn backup_of_data_a_plan_dooms_survives_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), noise(1, 3 << 20)).unwrap();
    let (faults, repo) = small_pack_repo(dir.path());

    let first = backup(&repo, &opts(&src), &NoProgress).unwrap();
    repo.remove_snapshot(&first.snapshot_id.unwrap()).unwrap();
    // Another backup runs, so the prune that dooms the data has to wait.
    let other = fake_running_backup(&*faults);
    prune_now(&repo);
    faults.delete(&other).unwrap();

    // The same data again; just before its snapshot is stored, a prune in
    // "another process" carries out the waiting plan.
    let other_process = Repository::open(faults.clone(), None).unwrap();
    let hook: Arc<dyn Fn() + Send + Sync> = Arc::new(move || prune_now(&other_process));
    faults.inject(Op::Put, "snapshots/", Fault::Hook(hook), 0, 1);
    let second = backup(&repo, &opts(&src), &NoProgress).unwrap();
    faults.heal();

    let repo = Repository::open(faults.clone(), None).unwrap();
    let report = check(
        &repo,
        &CheckOptions {
            read_data_percent: 100.0,
        },
    )
    .unwrap();
    assert!(report.ok(), "{report:?}");
    let (id, snap) = repo
        .find_snapshot(&second.snapshot_id.unwrap().to_hex(), &Default::default())
        .unwrap();
    let target = dir.path().join("restored");
    let out = cairn_repo::ops::restore::restore(
        &repo,
        &id,
        &snap,
        b"",
        &cairn_repo::ops::restore::RestoreOptions {
            target: target.clone(),
            ..Default::default()
        },
        &cairn_repo::ops::restore::NoRestoreProgress,
    )
    .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        std::fs::read(target.join("big")).unwrap(),
        noise(1, 3 << 20)
    );
}

/// Run a backup of `src` into `backend` as another process would.
fn backup_in_other_process(backend: Arc<FaultBackend>, src: &Path) {
    let repo = Repository::open(backend, None).unwrap();
    backup(&repo, &opts(src), &NoProgress).unwrap();
}

fn assert_every_snapshot_restorable(backend: Arc<FaultBackend>) {
    let repo = Repository::open(backend, None).unwrap();
    let report = check(
        &repo,
        &CheckOptions {
            read_data_percent: 100.0,
        },
    )
    .unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.snapshots > 0);
}

/// Defect: `repair index` listed packs, then segments, and superseded (and
/// deleted) the segment of a backup that finished in between, whose packs
/// it had not seen. A backup finishing at either point must stay whole.
#[test]
fn backup_finishing_during_repair_index_stays_restorable() {
    for moment in ["index/", "packs/"] {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a"), noise(2, 300 << 10)).unwrap();
        let (faults, repo) = small_pack_repo(dir.path());
        backup(&repo, &opts(&src), &NoProgress).unwrap();
        std::fs::write(src.join("b"), noise(3, 300 << 10)).unwrap();

        let (other, other_src) = (faults.clone(), src.clone());
        let hook: Arc<dyn Fn() + Send + Sync> =
            Arc::new(move || backup_in_other_process(other.clone(), &other_src));
        faults.inject(Op::List, moment, Fault::Hook(hook), 0, 1);
        cairn_repo::ops::repair::repair_index(&repo).unwrap();
        faults.heal();
        assert_every_snapshot_restorable(faults.clone());
    }
}

/// Every segment gets a name of its own, even with the same content.
#[test]
fn identical_segments_get_different_names() {
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = small_pack_repo(dir.path());
    let seg = cairn_repo::format::segment::Segment::default();
    let a = repo.write_segment(seg.clone()).unwrap();
    let b = repo.write_segment(seg).unwrap();
    assert_ne!(a, b);
}

/// Rewrites a file every time the backup reports bytes read from it, so
/// every read of it sees it change.
struct Scribbler {
    path: std::path::PathBuf,
    n: std::sync::atomic::AtomicU64,
}

impl cairn_repo::ops::backup::Progress for Scribbler {
    fn read_bytes(&self, _n: u64) {
        use std::os::unix::fs::FileExt;
        let i = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap();
        f.write_all_at(&i.to_le_bytes(), 1000).unwrap();
    }
}

/// Defect: after three unstable reads the node kept the times measured
/// after the last read, so the next backup took the torn copy as unchanged
/// and kept it in every later snapshot.
#[test]
fn file_changing_during_every_read_is_read_again_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("busy");
    std::fs::write(&file, noise(4, 200 << 10)).unwrap();
    let (_, repo) = small_pack_repo(dir.path());
    let scribbler = Scribbler {
        path: file.clone(),
        n: Default::default(),
    };
    let first = backup(&repo, &opts(&src), &scribbler).unwrap();
    assert_eq!(first.problems.len(), 1, "{:?}", first.problems);

    let mut o = opts(&src);
    o.parent = Some((first.snapshot_id.unwrap(), first.snapshot));
    let second = backup(&repo, &o, &NoProgress).unwrap();
    assert_eq!(second.snapshot.summary.files_changed, 1);
    assert!(second.problems.is_empty());
    let target = dir.path().join("restored");
    cairn_repo::ops::restore::restore(
        &repo,
        &second.snapshot_id.unwrap(),
        &second.snapshot,
        b"",
        &cairn_repo::ops::restore::RestoreOptions {
            target: target.clone(),
            ..Default::default()
        },
        &cairn_repo::ops::restore::NoRestoreProgress,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(target.join("busy")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

/// A prune that dies while carrying out its plan (after publishing the
/// index without the doomed packs, before deleting them) leaves packs in no
/// index; check says they are doomed, not lost, and the next prune
/// finishes the job.
#[test]
fn check_names_packs_a_plan_dooms() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), noise(5, 300 << 10)).unwrap();
    let (faults, repo) = small_pack_repo(dir.path());
    let first = backup(&repo, &opts(&src), &NoProgress).unwrap();
    std::fs::write(src.join("f"), noise(6, 300 << 10)).unwrap();
    backup(&repo, &opts(&src), &NoProgress).unwrap();
    repo.remove_snapshot(&first.snapshot_id.unwrap()).unwrap();
    faults.inject(
        Op::Delete,
        "packs/",
        Fault::Fail(std::io::ErrorKind::Other),
        0,
        1,
    );
    let opts_prune = PruneOptions {
        max_unused_percent: 5.0,
        dry_run: false,
    };
    assert!(prune(&repo, &opts_prune).is_err());
    faults.heal();
    let repo = Repository::open(faults.clone(), None).unwrap();
    let report = check(&repo, &CheckOptions::default()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| matches!(w, Finding::UnindexedPack { doomed: true, .. })),
        "{:?}",
        report.warnings
    );
    prune(&repo, &opts_prune).unwrap();
    let report = check(
        &repo,
        &CheckOptions {
            read_data_percent: 100.0,
        },
    )
    .unwrap();
    assert!(report.ok() && report.warnings.is_empty(), "{report:?}");
}
