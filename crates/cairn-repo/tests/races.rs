//! Races between backups and prunes, staged at exact moments through the
//! fault-injecting backend's hooks.

mod support;

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
        segment_entries: cairn_repo::ops::prune::SEGMENT_ENTRIES,
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
        segment_entries: cairn_repo::ops::prune::SEGMENT_ENTRIES,
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

/// Defects the crash torture, the fault matrix and the state machine found,
/// each reproduced here before its fix, with the shared test helpers.
mod prune_protocol {
    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};

    use cairn_repo::ops::backup::{backup, find_parent, NoProgress};
    use cairn_repo::store::faults::{Fault, Op};
    use cairn_repo::{Backend, Id, Repository};

    use super::support::*;

    /// Defect: `cairn backup` chooses its parent snapshot before it writes its
    /// lock, and then reuses the parent's chunk lists (unchanged files) and
    /// tree ids (unchanged directories) without asking the index whether they
    /// are still stored or doomed. Sequence: S1 is the latest snapshot; backup
    /// B2 picks S1 as parent; before B2's lock is written, another process
    /// forgets S1 and prunes while a third backup runs (the plan dooms S1's
    /// packs and waits for that backup only). B2 then reuses everything of S1.
    /// Once the third backup ends, a prune carries the plan out while B2 runs
    /// (B2 is not in the plan's wait list: it came after the plan, so it was
    /// supposed to see the plan and avoid its packs). B2's snapshot is saved
    /// referencing deleted packs: every file in it is lost.
    /// Was wrong: `backup.rs` `Ctx::file` (`node.content = p.content.clone()`) and
    /// `Ctx::assemble` (`prev.nodes == tree.nodes`) trust the parent blindly;
    /// the CLI (`commands/backup.rs`) calls `find_parent` before
    /// `engine::backup` takes the lock.
    #[test]
    fn backup_reusing_a_parent_that_a_plan_dooms_keeps_its_data() {
        let dir = tempdir();
        let tree = source(dir.path(), 1, 4);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();

        // B2 as the CLI runs it: the parent first...
        let mut o = opts(&src);
        o.parent = find_parent(&repo, &o).unwrap();
        assert_eq!(o.parent.as_ref().unwrap().0, s1);

        // ...then, just before B2's lock is written, another process forgets
        // S1 and prunes while a third backup (lock `other`) runs.
        let other = Arc::new(Mutex::new(String::new()));
        let (f, o2) = (faults.clone(), other.clone());
        let forget_and_prune: Hook = Arc::new(move || {
            let r = open(&f);
            r.remove_snapshot(&s1).unwrap();
            *o2.lock().unwrap() = fake_running_backup(&*f);
            prune_now(&r).unwrap();
        });
        faults.inject(Op::Put, "locks/", Fault::Hook(forget_and_prune), 0, 1);
        // Just before B2 saves its snapshot, the third backup has ended and a
        // prune carries the plan out.
        let (f, o2) = (faults.clone(), other.clone());
        let carry_out: Hook = Arc::new(move || {
            f.delete(&o2.lock().unwrap()).unwrap();
            prune_now(&open(&f)).unwrap();
        });
        faults.inject(Op::Put, "snapshots/", Fault::Hook(carry_out), 0, 1);

        let s2 = backup(&repo, &o, &NoProgress).unwrap().snapshot_id.unwrap();
        assert_whole(&faults, &s2, &tree);
    }

    /// Defect: index caches learn which packs are doomed from the plans, but
    /// `prune::doomed_packs` skips a plan it cannot read for any reason (the
    /// comment assumes "carried out while we listed", i.e. not found). After a
    /// transient read error on a plan, a backup that came after the plan
    /// deduplicates against its doomed packs; when the plan is carried out
    /// while that backup runs (it is not in the plan's wait list), the packs
    /// go and the backup's snapshot is saved without its data.
    /// Was wrong: `prune.rs` `doomed_packs` (`let Ok(bytes) = backend.get(..) else
    /// { continue }`): only `NotFound` may be skipped; any other error must
    /// fail the refresh (and so the backup) with the plan's key.
    #[test]
    fn a_plan_that_cannot_be_read_fails_the_backup_instead_of_being_ignored() {
        let dir = tempdir();
        let tree = source(dir.path(), 2, 4);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();
        repo.remove_snapshot(&s1).unwrap();
        // A prune dooms S1's packs and waits for another running backup.
        let other = fake_running_backup(&*faults);
        prune_now(&repo).unwrap();

        // The same data again; reading the plan fails once while the backup
        // loads the index.
        let b2 = open(&faults);
        faults.inject(
            Op::Get,
            "plans/",
            Fault::Fail(std::io::ErrorKind::Other),
            0,
            1,
        );
        // The other backup ends and a prune carries the plan out before B2
        // saves its snapshot.
        let f = faults.clone();
        let carry_out: Hook = Arc::new(move || {
            f.delete(&other).unwrap();
            prune_now(&open(&f)).unwrap();
        });
        faults.inject(Op::Put, "snapshots/", Fault::Hook(carry_out), 0, 1);
        match backup_like_cli(&b2, &src) {
            Err(e) => assert!(e.to_string().contains("plans/"), "{e}"),
            Ok(s2) => assert_whole(&faults, &s2, &tree),
        }
    }

    /// Defect: `lock::live_runs` skips a lock it cannot read for any reason. A
    /// prune whose lock listing hits a transient read error on a running
    /// backup's lock records an empty wait list and carries its plan out at
    /// once, deleting packs that backup has deduplicated against.
    /// Sequence: S1 forgotten (its data unused but stored); backup B2 of the
    /// same data dedups against S1's packs; while B2 runs, a prune dooms them,
    /// fails to read B2's lock, and deletes them; B2's snapshot is saved
    /// without its data.
    /// Was wrong: `lock.rs` `live_runs` (`let Ok(bytes) = backend.get(..) else {
    /// continue }`): only `NotFound` means "released"; other errors must fail
    /// the prune (or count the lock as alive).
    #[test]
    fn a_lock_that_cannot_be_read_still_protects_its_backup() {
        let dir = tempdir();
        let tree = source(dir.path(), 3, 4);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();
        repo.remove_snapshot(&s1).unwrap();

        let f = faults.clone();
        let prune_elsewhere: Hook = Arc::new(move || {
            // The prune reads B2's lock twice: when it looks for earlier plans
            // (none) and right after writing its plan. The second read fails.
            f.inject(
                Op::Get,
                "locks/",
                Fault::Fail(std::io::ErrorKind::Other),
                1,
                1,
            );
            let result = prune_now(&open(&f));
            f.heal();
            if let Err(e) = result {
                assert!(e.to_string().contains("locks/"), "{e}");
            }
        });
        faults.inject(Op::Put, "snapshots/", Fault::Hook(prune_elsewhere), 0, 1);
        let s2 = backup_like_cli(&open(&faults), &src).unwrap();
        assert_whole(&faults, &s2, &tree);
    }

    /// Defect: carrying out a plan re-reads each doomed pack's table to see
    /// whether a snapshot written meanwhile needs it, and treats a pack whose
    /// table cannot be read as "nothing can use it": after a transient read
    /// error it deletes a pack a snapshot needs.
    /// Sequence: S1 forgotten; backup B2 of the same data dedups against S1's
    /// packs; a prune during B2 dooms them and waits for B2; B2 saves S2 (which
    /// needs them); the next prune carries the plan out, one read of a doomed
    /// pack's table fails, and the pack is deleted: S2 loses files.
    /// A read that returns corrupted bytes (a bit flipped in transit) has the
    /// same effect: the table fails verification in that one read.
    /// Was wrong: `prune.rs` `carry_out` (`Err(_) => false, // unreadable: nothing
    /// can use it`): a pack whose table cannot be read this time may still be
    /// needed; the prune must fail (the plan stays and is carried out next
    /// time) or keep the pack, never delete it.
    #[test]
    fn a_read_error_while_carrying_out_a_plan_never_deletes_a_needed_pack() {
        let dir = tempdir();
        let tree = source(dir.path(), 4, 4);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();
        let snap1 = repo
            .find_snapshot(&s1.to_hex(), &Default::default())
            .unwrap()
            .1;
        let doomed_data = data_packs(&repo, &snap1.tree);
        repo.remove_snapshot(&s1).unwrap();

        // B2 stores the same data by reusing S1's packs; a prune during B2
        // dooms them and waits for B2.
        let f = faults.clone();
        let prune_during: Hook = Arc::new(move || {
            let r = prune_now(&open(&f)).unwrap();
            assert!(r.packs_deferred > 0, "{r:?}");
        });
        faults.inject(Op::Put, "snapshots/", Fault::Hook(prune_during), 0, 1);
        let s2 = backup_like_cli(&open(&faults), &src).unwrap();
        faults.heal();

        // The next prune carries the plan out; reading one doomed data pack's
        // table fails once.
        faults.inject(
            Op::Get,
            &pack_key_of(&doomed_data[0]),
            Fault::Fail(std::io::ErrorKind::Other),
            0,
            1,
        );
        if let Err(e) = prune_now(&open(&faults)) {
            assert!(e.to_string().contains("packs/"), "{e}");
        }
        assert_whole(&faults, &s2, &tree);
    }

    /// Defect: `Repository::refresh_index` never records segments that another
    /// segment supersedes, so they look new at every refresh; a refresh that
    /// no longer has their superseder among the *new* segments (it is already
    /// known) loads them as current. While a prune carries out a plan, the
    /// segment it just wrote (K) and the one it replaces (N, which still lists
    /// the packs being deleted) are both present. A backup whose first refresh
    /// (at open) saw both, and whose second (after its lock) lists the index
    /// while N is still there but the plans after the prune finished, believes
    /// the deleted packs hold its data, deduplicates against them and saves a
    /// snapshot without data.
    /// Was wrong: `repository.rs` `try_refresh_index` / `add_effective`:
    /// superseded segments must be remembered (or new segments checked against
    /// what known segments supersede), not added.
    #[test]
    fn a_backup_during_plan_execution_never_dedups_against_deleted_packs() {
        let dir = tempdir();
        let tree = source(dir.path(), 6, 4);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();
        repo.remove_snapshot(&s1).unwrap();
        // A plan dooms S1's packs and waits for a backup that then ends.
        let other = fake_running_backup(&*faults);
        prune_now(&repo).unwrap();
        faults.delete(&other).unwrap();

        // The prune that carries the plan out pauses after publishing its new
        // segment, before deleting anything...
        let (paused_tx, paused) = mpsc::channel::<()>();
        let (resume, resume_rx) = mpsc::channel::<()>();
        let resume_rx = Mutex::new(resume_rx);
        let pause: Hook = Arc::new(move || {
            paused_tx.send(()).unwrap();
            resume_rx.lock().unwrap().recv().unwrap();
        });
        faults.inject(Op::Delete, "packs/", Fault::Hook(pause), 0, 1);
        let (done_tx, done) = mpsc::channel::<()>();
        let f = faults.clone();
        let pruner = std::thread::spawn(move || {
            let r = prune_now(&open(&f));
            done_tx.send(()).unwrap();
            r
        });
        paused.recv().unwrap();

        // ...a backup of the same data opens the repository now, and the prune
        // finishes while the backup's second refresh is between listing the
        // index and listing the plans.
        let b2 = open(&faults);
        let done = Mutex::new(done);
        let finish_prune: Hook = Arc::new(move || {
            resume.send(()).unwrap();
            done.lock().unwrap().recv().unwrap();
        });
        faults.inject(Op::List, "plans/", Fault::Hook(finish_prune), 0, 1);
        let s2 = backup_like_cli(&b2, &src).unwrap();
        pruner.join().unwrap().unwrap();
        assert_whole(&faults, &s2, &tree);
    }

    /// Defect (no data lost, but a false alarm that sends users to `check`): a
    /// prune loads the index once, when it opens the repository, then lists the
    /// snapshots and walks their trees. A backup that finishes in between (an
    /// ordinary concurrent backup) has trees the prune's index does not know,
    /// and the prune fails with "blob ... is not in the index (missing pack?);
    /// run `cairn check`". The same happens in `carry_out`, which walks the
    /// snapshots again much later.
    /// Was wrong: `prune.rs` `referenced` walks snapshots listed after the index
    /// was loaded; it should refresh the index after listing the snapshots.
    #[test]
    fn a_backup_finishing_during_prune_does_not_fail_the_prune() {
        let dir = tempdir();
        source(dir.path(), 7, 2);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let first = backup_like_cli(&open(&faults), &src).unwrap();
        open(&faults).remove_snapshot(&first).unwrap();
        std::fs::write(src.join("new"), noise(99, 50 << 10)).unwrap();

        let pruner = open(&faults);
        let f = faults.clone();
        let s = src.clone();
        let backup_elsewhere: Hook = Arc::new(move || {
            backup_like_cli(&open(&f), &s).unwrap();
        });
        // The prune's first step (looking for earlier plans) lists the locks.
        faults.inject(Op::List, "locks/", Fault::Hook(backup_elsewhere), 0, 1);
        let r = prune_now(&pruner);
        faults.heal();
        r.unwrap();
        let repo = open(&faults);
        let report = check_all(&repo);
        assert!(report.ok(), "{report:?}");
    }

    /// Defect: a prune that stops while carrying out a plan (killed, or a delete
    /// that fails) leaves the local index cache, which every later cairn
    /// process shares, locating blobs in the packs it deleted. The repository
    /// itself is fine (`check` is clean), but restores fail ("no such
    /// object") and so does every later prune (walking the snapshots' trees),
    /// until the cache is deleted.
    /// How: `Repository::write_segment` adds the segment it writes to the
    /// cache (`Index::add_segment`: INSERT OR IGNORE, so blobs keep their old
    /// locations) without dropping the segments it supersedes; the prune's
    /// final `refresh_index` would rebuild the cache, but a prune that stops
    /// before it leaves `segments` = {old ones, N, K} with old locations. At
    /// the next open nothing is new or missing, so nothing is rebuilt: the old
    /// segments are still present (the prune stopped before deleting them)
    /// and the refresh does not notice that a known segment supersedes them.
    /// Found by the crash torture (`tests/torture.rs`).
    /// Was wrong: `repository.rs` `write_segment` / `try_refresh_index`: a segment
    /// that supersedes others must make the cache rebuild (or drop their
    /// entries) at once, and a refresh must treat known segments superseded by
    /// known segments as stale.
    #[test]
    fn an_interrupted_prune_never_leaves_the_cache_pointing_at_deleted_packs() {
        let dir = tempdir();
        let src = dir.path().join("src");
        let cache = dir.path().join("cache");
        let mut tree: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        tree.insert("d/".into(), Vec::new());
        tree.insert("d/sub/".into(), Vec::new());
        tree.insert("d/sub/x".into(), noise(8, 40 << 10));
        tree.insert("a".into(), noise(9, 100 << 10));
        tree.insert("b".into(), noise(10, 100 << 10));
        write_tree(&src, &tree);
        let faults = small_pack_repo(dir.path());
        let repo = Repository::open(faults.clone(), Some(&cache)).unwrap();
        let s1 = backup_like_cli(&repo, &src).unwrap();
        std::fs::remove_file(src.join("b")).unwrap();
        tree.remove("b");
        let s2 = backup_like_cli(&repo, &src).unwrap();
        repo.remove_snapshot(&s1).unwrap();

        // A prune repacks what S2 still uses out of S1's packs and deletes
        // those packs; it stops (killed, or a failed delete) before deleting
        // the segments its new one supersedes.
        faults.inject(
            Op::Delete,
            "index/",
            Fault::Fail(std::io::ErrorKind::Other),
            0,
            1,
        );
        let r = cairn_repo::ops::prune::prune(
            &repo,
            &cairn_repo::ops::prune::PruneOptions {
                max_unused_percent: 0.0,
                dry_run: false,
                segment_entries: cairn_repo::ops::prune::SEGMENT_ENTRIES,
            },
        );
        assert!(r.is_err(), "the prune was meant to stop: {r:?}");
        faults.heal();
        drop(repo);

        // The next cairn processes share the cache.
        let repo = Repository::open(faults.clone(), Some(&cache)).unwrap();
        let report = check_all(&repo);
        assert!(report.ok(), "{report:?}");
        let scratch = tempdir();
        assert_restores(&repo, &s2, &tree, scratch.path());
        prune_now(&Repository::open(faults.clone(), Some(&cache)).unwrap()).unwrap();
    }

    /// Defect (no data lost; the prune fails after it has deleted packs): a prune
    /// first carries out earlier plans, deleting packs, then plans anew by
    /// walking every snapshot's trees through its index cache, which it has not
    /// refreshed since it opened. When that cache locates a tree (or, in
    /// `carry_out`'s own walk for a second plan, any blob it reads) in a pack
    /// just deleted, although the same blob is also in a kept pack, the prune
    /// fails with "packs/...: no such object".
    /// Sequence: S1 forgotten; a prune dooms its packs and waits for another
    /// backup; S2 backs up the same data (storing it again, since the old
    /// copies are doomed); the cache that loaded the plan's segment first
    /// keeps locating those blobs in the doomed packs (an existing entry is
    /// never replaced); the other backup ends; the next prune deletes the
    /// doomed packs (S2 has copies) and then cannot read S2's root tree.
    /// Found by the crash torture (`tests/torture.rs`).
    /// Was wrong: `prune.rs` `prune` / `carry_out`: after deleting packs the
    /// prune's index must be refreshed (`repo.refresh_index()`) before it
    /// reads blobs again.
    #[test]
    fn a_prune_never_reads_the_packs_it_just_deleted() {
        let dir = tempdir();
        let tree = source(dir.path(), 11, 3);
        let src = dir.path().join("src");
        let cache = dir.path().join("cache");
        let faults = small_pack_repo(dir.path());
        // One user's commands share the cache; here they share a process too.
        let repo = Repository::open(faults.clone(), Some(&cache)).unwrap();
        let s1 = backup_like_cli(&repo, &src).unwrap();
        repo.remove_snapshot(&s1).unwrap();
        let other = fake_running_backup(&*faults);
        prune_now(&repo).unwrap();
        let s2 = backup_like_cli(&repo, &src).unwrap();
        faults.delete(&other).unwrap();

        let r = prune_now(&repo);
        assert!(r.is_ok(), "{r:?}");
        let scratch = tempdir();
        assert_restores(&open(&faults), &s2, &tree, scratch.path());
    }

    /// Defect (data loss): two prunes at once (say `forget --prune` from cron and
    /// a `prune` by hand; nothing keeps them apart) can leave the index listing
    /// packs that are gone, and later backups deduplicate against them.
    /// Sequence: S1 forgotten, its data unused. Prune B reads the segments and
    /// is about to publish its own (which still lists S1's packs, doomed);
    /// meanwhile prune A dooms S1's packs, carries its plan out and deletes
    /// them. B's segment now re-lists the deleted packs, and B's own plan
    /// cannot delete them (they are not stored), so its `carry_out` keeps
    /// their records in the segment it writes. Once B's plan is gone, nothing
    /// marks those packs doomed: a backup of S1's data deduplicates against
    /// them and its snapshot is saved without data. Before that backup `check`
    /// only warns ("missing ... but no snapshot needs it; `cairn prune` drops
    /// it from the index"), and prune never drops it.
    /// Found by the crash torture (`tests/torture.rs`), round "forget --prune
    /// and prune at once": a later backup's snapshot needed 30 missing packs.
    /// Was wrong: `prune.rs`: nothing excludes a second prune, and `carry_out`
    /// keeps the records of doomed packs that are not stored (`let Some(&size)
    /// = stored.get(pack) else { continue }` leaves them in `remaining`).
    #[test]
    fn two_prunes_at_once_never_leave_deleted_packs_in_the_index() {
        let dir = tempdir();
        let tree = source(dir.path(), 12, 3);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();
        let keep_dir = dir.path().join("keep");
        write_tree(
            &keep_dir,
            &BTreeMap::from([("k".to_string(), noise(14, 10))]),
        );
        backup_like_cli(&repo, &keep_dir).unwrap();
        repo.remove_snapshot(&s1).unwrap();

        // Prune B has read the index; just before it publishes its segment,
        // prune A runs from start to end.
        // Now prune A is refused: B holds the prune lock.
        let f = faults.clone();
        let prune_a: Hook = Arc::new(move || match prune_now(&open(&f)) {
            Err(cairn_repo::Error::PruneLocked { .. }) => {}
            other => panic!("a second prune must be refused while one runs: {other:?}"),
        });
        faults.inject(Op::Put, "index/", Fault::Hook(prune_a), 0, 1);
        prune_now(&open(&faults)).unwrap();
        faults.heal();
        // Yet another prune does not repair it.
        prune_now(&open(&faults)).unwrap();

        // The same data again.
        let s3 = backup_like_cli(&open(&faults), &src).unwrap();
        assert_whole(&faults, &s3, &tree);
    }

    /// BUG (data loss from one corrupted read): a prune reads the index
    /// segments with `index_segments`, which silently skips a segment that
    /// fails verification ("reported by check; prune refuses to run before
    /// this", but the refusal only looks at what the index cache noticed when
    /// the repository was opened, and the cache never re-reads a segment it
    /// knows). When the skipped segment is the one a pending plan's prune
    /// wrote (N), carrying the plan out sees the segments N superseded as
    /// current, deletes the doomed packs (their blobs were stored again
    /// elsewhere), and publishes a segment that supersedes only what it read:
    /// N survives, still listing the deleted packs. From then on every prune
    /// plans with those records: it may keep a deleted pack as "the" copy of
    /// a blob, doom the pack that really holds it, and delete it, since the
    /// deleted pack still counts as available.
    /// Sequence: S1 forgotten; a prune dooms its packs (plan waits for another
    /// backup); S2 stores the same data again; the other backup ends; a prune
    /// reads N with one bit flipped and leaves N listing the packs it deleted
    /// (this the test asserts, deterministically); whether `check` then finds
    /// S2 needing missing packs, and whether the next prunes delete S2's real
    /// copies, depends on the order of the records: in the fault matrix they
    /// did, one template in six.
    /// Found by the fault matrix (`faults.rs`, prune stage, a flipped bit on
    /// the first index read).
    /// Was wrong: `prune.rs` `index_segments` (`Err(Error::Corrupt { .. }) =>
    /// continue`): a segment that cannot be read must fail the prune; and
    /// `carry_out` and the planning must not count as available, or keep,
    /// packs that are not stored (the same fault as in
    /// `two_prunes_at_once_never_leave_deleted_packs_in_the_index`).
    #[test]
    fn a_segment_read_error_during_prune_never_loses_data() {
        let dir = tempdir();
        let tree = source(dir.path(), 17, 3);
        let src = dir.path().join("src");
        let faults = small_pack_repo(dir.path());
        let repo = open(&faults);
        let s1 = backup_like_cli(&repo, &src).unwrap();
        repo.remove_snapshot(&s1).unwrap();
        let other = fake_running_backup(&*faults);
        prune_now(&repo).unwrap();
        let plan_segment: Vec<String> = faults
            .list("index/")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        let s2 = backup_like_cli(&open(&faults), &src).unwrap();
        faults.delete(&other).unwrap();
        // N: the segment the plan's prune wrote (it supersedes S1's).
        let n = plan_segment
            .iter()
            .find(|k| {
                let id: Id = k.strip_prefix("index/").unwrap().parse().unwrap();
                !repo.read_segment(&id).unwrap().supersedes.is_empty()
                    && repo
                        .read_segment(&id)
                        .unwrap()
                        .supersedes
                        .iter()
                        .any(|s| plan_segment.contains(&format!("index/{s}")))
            })
            .expect("the plan's segment")
            .clone();

        let pruner = open(&faults);
        faults.inject(Op::Get, &n, Fault::FlipBit, 0, 1);
        // The prune fails on the damaged segment (or succeeds if it never
        // needed it); either way it must not lose anything.
        let _ = prune_now(&pruner);
        faults.heal();
        // The index must not list packs that are gone.
        let report = check_all(&open(&faults));
        let missing: Vec<String> = report
            .warnings
            .iter()
            .map(ToString::to_string)
            .chain(report.damaged.iter().map(|d| format!("{d:?}")))
            .filter(|w| w.contains("missing"))
            .collect();
        assert!(
            missing.is_empty(),
            "after one flipped bit the index lists deleted packs: {missing:?}"
        );
        // Later prunes plan with N's records of deleted packs (and may fail
        // reading them, or delete the real copies).
        for _ in 0..3 {
            let _ = prune_now(&open(&faults));
        }
        assert_whole(&faults, &s2, &tree);
    }
}
