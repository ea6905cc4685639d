//! Prune: free the space of blobs no snapshot references, without ever
//! deleting what a running backup may reference, and without making backups
//! wait. The protocol (docs/FORMAT.md section 11) in short:
//!
//! 1. find every blob the snapshots reference (a compact set that may
//!    take an unused blob for used, never the reverse);
//! 2. keep packs that are (mostly) used; copy the used blobs of packs that are
//!    mostly unused into new packs; everything else is *doomed*
//!    ([`PrunePlan::compute`], from the index read a segment at a time);
//! 3. write a new index (kept, new and doomed packs: every blob stays
//!    locatable, so every snapshot stays restorable) as several segments,
//!    the last of which supersedes all segments read;
//! 4. write a *plan* naming the doomed packs, then record the backups (lock
//!    runs) alive once it is visible. Index caches load plans and never
//!    deduplicate against a doomed pack, so no backup that reads the index
//!    from now on can come to reference one;
//! 5. carry out a plan (now, or in a later prune) only when none of its
//!    backups is alive any more: keep any doomed pack that a snapshot written
//!    meanwhile needs, publish an index without the others, then delete them.
//!
//! Only one prune runs at a time ([`PruneLock`]). Whatever cannot be read
//! (a segment, a plan, a lock, a doomed pack's table) makes the prune keep
//! data or fail, never delete.

mod deletable;
mod plan;
mod segments;
mod used;

use std::collections::HashSet;

use cairn_chunk::Id;
use serde::Serialize;

use crate::format::layout::{self, FileType};
use crate::format::pack::BlobKind;
use crate::format::plan::Plan;
use crate::format::segment::PackRecord;
use crate::ops::progress::{stop_if_cancelled, NoProgress, WorkProgress};
use crate::store::lock::{live_runs, PruneLock};
use crate::store::packer::{clean_spool, Uploader};
use crate::store::plans;
use crate::{Error, Repository, Result};

use deletable::Deletable;
pub use plan::{Fate, PrunePlan};
pub use segments::SEGMENT_ENTRIES;
use segments::{for_each_record, SegmentScan, SegmentWriter};
pub use used::{used_blobs, UsedBlobs};

/// How to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of its bytes is unused.
    pub max_unused_percent: f64,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Entries per index segment written ([`SEGMENT_ENTRIES`]; tests make
    /// it small to exercise an index written as many segments).
    pub segment_entries: usize,
}

impl PruneOptions {
    /// The defaults, with this threshold.
    pub fn new(max_unused_percent: f64, dry_run: bool) -> PruneOptions {
        PruneOptions {
            max_unused_percent,
            dry_run,
            segment_entries: SEGMENT_ENTRIES,
        }
    }
}

/// What a prune did (or would do).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs referenced by some snapshot.
    pub blobs_used: u64,
    /// Blobs no snapshot references.
    pub blobs_unused: u64,
    /// Packs kept as they are.
    pub packs_kept: u64,
    /// Packs whose used blobs were copied into new packs.
    pub packs_repacked: u64,
    /// Packs with nothing in use (or in no index).
    pub packs_unused: u64,
    /// Blobs copied by repacking.
    pub blobs_repacked: u64,
    /// Bytes copied by repacking.
    pub bytes_repacked: u64,
    /// Packs deleted by this run (including earlier plans carried out now).
    pub packs_deleted: u64,
    /// Bytes those packs took.
    pub bytes_freed: u64,
    /// Packs a deferred plan will delete once running backups finish.
    pub packs_deferred: u64,
    /// Backups whose locks deferred the deletion.
    pub blocking_backups: u64,
    /// Doomed packs kept because a snapshot written meanwhile needs them.
    pub packs_resurrected: u64,
    /// Leftover spool files of crashed backups removed.
    pub spool_files_removed: u64,
    /// Damaged prune plans removed (their packs are judged again).
    pub damaged_plans_removed: u64,
    /// Indexed packs that are not stored and hold nothing in use (deleted
    /// by an interrupted or concurrent older prune): dropped from the
    /// index, so that no backup deduplicates against them.
    pub packs_missing_dropped: u64,
}

/// Spool files older than this belong to backups that died.
const SPOOL_STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Refuse to go on while some snapshot or index segment is damaged: the
/// data a damaged snapshot references, or the packs only a damaged segment
/// lists, would look unused and be deleted. The snapshots are listed
/// first, then the index is refreshed: a snapshot written meanwhile has
/// its segment written before it, so every listed snapshot's blobs are
/// in the index.
pub fn require_undamaged(repo: &Repository) -> Result<Vec<(Id, crate::Snapshot)>> {
    let list = repo.snapshot_list_uncached()?;
    repo.refresh_index()?;
    if let Some(d) = repo.damaged_segments().into_iter().next() {
        return Err(damaged_segment(d));
    }
    if let Some(d) = list.damaged.into_iter().next() {
        return Err(Error::Damaged {
            what: "snapshot",
            id: d.id,
            reason: d.reason,
            advice: "remove it with `cairn forget ID` or run `cairn repair snapshots` first",
        });
    }
    Ok(list.snapshots)
}

fn damaged_segment(d: crate::store::repository::Damaged) -> Error {
    Error::Damaged {
        what: "index segment",
        id: d.id,
        reason: d.reason,
        advice: "run `cairn repair index` first",
    }
}

/// Every blob some snapshot references; fails on damage.
fn used_by_snapshots(repo: &Repository) -> Result<UsedBlobs> {
    let snapshots = require_undamaged(repo)?;
    used_blobs(repo, snapshots.into_iter().map(|(_, s)| s.tree))
}

/// Blobs of repacked packs copied per batch (one uploader each): bounds
/// the new packs' records held at once.
const COPY_ENTRIES: usize = 256 * 1024;

/// Run a prune: carry out earlier plans that are no longer blocked, then
/// plan (and if nothing blocks it, carry out) this one.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    prune_with(repo, opts, &NoProgress)
}

/// [`prune`], reporting progress: one item per pack repacked (with the
/// bytes of the blobs copied out of it) and one per pack deleted.
pub fn prune_with(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn WorkProgress,
) -> Result<PruneReport> {
    let mut carried = PruneReport::default();
    let _lock = match opts.dry_run {
        true => None,
        false => Some(PruneLock::acquire(
            repo.backend().clone(),
            repo.codec().clone(),
            &crate::ops::backup::hostname(),
        )?),
    };
    if !opts.dry_run {
        carry_out_plans(repo, opts, &mut carried, progress)?;
        // A backup writes its spool files continuously; a day-old one is
        // from a backup that died.
        carried.spool_files_removed = clean_spool(&**repo.backend(), SPOOL_STALE);
    }
    stop_if_cancelled(progress)?;
    let used = used_by_snapshots(repo)?;
    stop_if_cancelled(progress)?;
    let scan = segments::scan(repo)?;
    // Listed after the segments were read: a pack a segment names was
    // stored before that segment.
    let stored: HashSet<Id> = repo.list(FileType::Pack)?.into_keys().collect();
    let mut records = |each: &mut dyn FnMut(PackRecord) -> Result<()>| {
        for_each_record(repo, &scan.effective, each)
    };
    let plan = PrunePlan::compute(&mut records, &stored, &used, opts.max_unused_percent)?;
    let mut report = merge(plan.report.clone(), carried);
    if opts.dry_run || plan.is_empty() {
        return Ok(report);
    }
    execute(repo, opts, plan, &scan, used, &mut report, progress)?;
    repo.refresh_index()?;
    Ok(report)
}

/// The counts of this run's plan, with what carrying out earlier plans did.
fn merge(mut planned: PruneReport, carried: PruneReport) -> PruneReport {
    planned.packs_deleted += carried.packs_deleted;
    planned.bytes_freed += carried.bytes_freed;
    planned.packs_deferred += carried.packs_deferred;
    planned.blocking_backups += carried.blocking_backups;
    planned.packs_resurrected += carried.packs_resurrected;
    planned.spool_files_removed += carried.spool_files_removed;
    planned.damaged_plans_removed += carried.damaged_plans_removed;
    planned.packs_missing_dropped += carried.packs_missing_dropped;
    planned
}

/// Steps 3 to 5: copy, publish the index, write the plan, then carry it out
/// unless a running backup holds it back.
fn execute(
    repo: &Repository,
    opts: &PruneOptions,
    mut plan: PrunePlan,
    scan: &SegmentScan,
    used: UsedBlobs,
    report: &mut PruneReport,
    progress: &dyn WorkProgress,
) -> Result<()> {
    progress.expect(plan.report.packs_repacked, plan.copy_raw_bytes);
    let mut index = SegmentWriter::new(repo, opts.segment_entries);
    let mut batch = CopyBatch::default();
    for_each_record(repo, &scan.effective, &mut |record| {
        match plan.take(&record.pack) {
            // Still listed when doomed: until the plan is carried out, a
            // snapshot written by a backup that started earlier may need it.
            Some(Fate::Keep | Fate::Doom) => index.add(record),
            Some(Fate::Repack { mut copy }) => {
                let entries = plan.to_copy(&record, &mut copy, &used);
                batch.add(record.pack, entries);
                index.add(record)?;
                match batch.entries >= COPY_ENTRIES {
                    true => batch.copy(repo, &mut index, progress),
                    false => Ok(()),
                }
            }
            Some(Fate::Drop) | None => Ok(()),
        }
    })?;
    drop(used);
    batch.copy(repo, &mut index, progress)?;
    // Only now, with the kept, new and doomed packs all listed, does the
    // old index stop being in force.
    index.finish(scan.effective.clone())?;
    let stored_plan = Plan {
        version: 1,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        packs: std::mem::take(&mut plan.doomed),
        segments: scan.effective.clone(),
    };
    drop(plan);
    let plan_id = plans::write(&**repo.backend(), repo.codec(), &stored_plan)?;
    // Locks are listed only now that the plan is visible: a backup not
    // listed here reads the index after this point and sees the plan.
    let wait = plans::write_wait(&**repo.backend(), repo.codec(), &plan_id)?;
    if wait.runs.is_empty() {
        carry_out(repo, opts, &plan_id, &stored_plan, report, progress)
    } else {
        report.packs_deferred += stored_plan.packs.len() as u64;
        report.blocking_backups += wait.runs.len() as u64;
        Ok(())
    }
}

/// Used blobs of repacked packs waiting to be copied.
#[derive(Default)]
struct CopyBatch {
    packs: Vec<PackRecord>,
    entries: usize,
}

impl CopyBatch {
    fn add(&mut self, pack: Id, entries: Vec<crate::format::pack::BlobEntry>) {
        self.entries += entries.len();
        self.packs.push(PackRecord { pack, entries });
    }

    /// Copy them into new packs and list those in the new index.
    fn copy(
        &mut self,
        repo: &Repository,
        index: &mut SegmentWriter,
        progress: &dyn WorkProgress,
    ) -> Result<()> {
        let packs = std::mem::take(&mut self.packs);
        self.entries = 0;
        for record in copy_blobs(repo, &packs, progress)? {
            index.add(record)?;
        }
        Ok(())
    }
}

/// Copy the listed blobs into new packs (verified on the way).
fn copy_blobs(
    repo: &Repository,
    packs: &[PackRecord],
    progress: &dyn WorkProgress,
) -> Result<Vec<PackRecord>> {
    if packs.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = |p: &PackRecord| p.entries.iter().map(|e| u64::from(e.raw_len)).sum::<u64>();
    let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), false);
    let target = repo.config().pack_size as usize;
    let result = (|| -> Result<()> {
        let data = uploader
            .packer(BlobKind::Data, target)
            .framed(repo.config());
        let trees = uploader.packer(BlobKind::Tree, target);
        for pack in packs {
            // Packs written so far are in no index yet, or in segments that
            // supersede nothing (earlier batches): the old index stays in
            // force, and a later prune judges them like any other pack.
            stop_if_cancelled(progress)?;
            progress.working_on(&format!("pack {}", pack.pack.to_hex()));
            let mut failed = None;
            repo.read_stored_blobs(&pack.pack, &pack.entries, |e, stored| {
                let packer = if e.kind == BlobKind::Tree {
                    &trees
                } else {
                    &data
                };
                let added =
                    stored.and_then(|s| packer.add(e.id, &s, e.stored_compressed(), e.raw_len));
                if let Err(err) = added {
                    failed.get_or_insert(err);
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            progress.advance(1, bytes(pack));
        }
        data.flush()?;
        trees.flush()
    })();
    let records = uploader.finish();
    result?;
    records
}

/// Carry out every stored plan whose blocking backups have all finished.
fn carry_out_plans(
    repo: &Repository,
    opts: &PruneOptions,
    report: &mut PruneReport,
    progress: &dyn WorkProgress,
) -> Result<()> {
    let backend = &**repo.backend();
    let live = live_runs(backend, repo.codec())?;
    for stored in plans::list(backend, repo.codec())? {
        let Some(plan) = stored.plan else {
            // Nobody can carry out a plan nobody can read. Dropping it loses
            // nothing: the packs it doomed are still indexed, and this prune
            // dooms again those that are unused.
            plans::remove(backend, &stored.id)?;
            report.damaged_plans_removed += 1;
            continue;
        };
        let wait = plans::wait_for(backend, repo.codec(), &stored.id)?;
        let blocking = wait.runs.iter().filter(|r| live.contains(*r)).count() as u64;
        if blocking > 0 {
            report.packs_deferred += plan.packs.len() as u64;
            report.blocking_backups += blocking;
            continue;
        }
        carry_out(repo, opts, &stored.id, &plan, report, progress)?;
    }
    Ok(())
}

/// Delete a plan's packs, except those a snapshot written since needs:
/// publish an index without them first, then delete them. A doomed pack
/// whose table fails verification is kept (`check` reports it); any other
/// read error fails the prune, and the plan is carried out next time.
fn carry_out(
    repo: &Repository,
    opts: &PruneOptions,
    plan_id: &Id,
    plan: &Plan,
    report: &mut PruneReport,
    progress: &dyn WorkProgress,
) -> Result<()> {
    let used = used_by_snapshots(repo)?;
    let scan = segments::scan(repo)?;
    let doomed: HashSet<Id> = plan.packs.iter().copied().collect();
    let stored = repo.list(FileType::Pack)?;
    let mut check = Deletable::new(repo, &scan, &doomed, &stored);
    for pack in &plan.packs {
        let Some(&size) = stored.get(pack) else {
            continue; // gone already (an earlier attempt deleted it)
        };
        match repo.read_pack_table(pack, size) {
            Ok(entries) => {
                let wanted = entries.iter().filter(|e| used.contains(&e.id));
                check.add(*pack, size, wanted.map(|e| e.id).collect())?;
            }
            // What it holds is unknown this time: keep it.
            Err(Error::Corrupt { .. }) => check.resurrected += 1,
            Err(e) => return Err(e),
        }
    }
    drop(used);
    let (delete, resurrected) = check.finish()?;
    report.packs_resurrected += resurrected;
    // Doomed packs that are gone leave the index too: no backup may
    // deduplicate against them once the plan no longer marks them.
    let mut index = SegmentWriter::new(repo, opts.segment_entries);
    let mut listed: HashSet<Id> = HashSet::new();
    for_each_record(repo, &scan.effective, &mut |record| {
        let keep = !delete.contains_key(&record.pack)
            && (stored.contains_key(&record.pack) || !doomed.contains(&record.pack));
        match keep && listed.insert(record.pack) {
            true => index.add(record),
            false => Ok(()),
        }
    })?;
    index.finish(scan.effective.clone())?;
    progress.expect(delete.len() as u64, 0);
    for (pack, size) in &delete {
        progress.working_on(&format!("pack {}", pack.to_hex()));
        repo.backend().delete(&layout::key(FileType::Pack, pack))?;
        progress.advance(1, 0);
        report.packs_deleted += 1;
        report.bytes_freed += *size;
    }
    let mut roots = scan.effective;
    roots.extend(&plan.segments);
    repo.delete_segments(&roots, &scan.supersedes)?;
    plans::remove(&**repo.backend(), plan_id)
}
