//! Prune: free the space of blobs no snapshot references, without ever
//! deleting what a running backup may reference, and without making backups
//! wait. The protocol (docs/FORMAT.md section 11) in short:
//!
//! 1. find every blob the snapshots reference;
//! 2. keep packs that are (mostly) used; copy the used blobs of packs that are
//!    mostly unused into new packs; everything else is *doomed*
//!    ([`PrunePlan::compute`], a pure function);
//! 3. write one index segment that supersedes all segments read (kept, new
//!    and doomed packs: every blob stays locatable, so every snapshot stays
//!    restorable);
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

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use serde::Serialize;

use crate::format::layout::{self, FileType};
use crate::format::pack::{BlobEntry, BlobKind};
use crate::format::plan::Plan;
use crate::format::segment::{PackRecord, Segment};
use crate::ops::progress::{stop_if_cancelled, NoProgress, WorkProgress};
use crate::ops::walk::{referenced, Referenced};
use crate::store::lock::{live_runs, PruneLock};
use crate::store::packer::{clean_spool, Uploader};
use crate::store::plans;
use crate::{Error, Repository, Result};

/// How to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of its bytes is unused.
    pub max_unused_percent: f64,
    /// Report, change nothing.
    pub dry_run: bool,
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

/// What to do with every pack, decided from the index and the set of used
/// blobs alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// The index to publish (kept, repacked and doomed packs all listed, so
    /// every blob stays locatable until the plan is carried out).
    pub keep: Vec<PackRecord>,
    /// Used blobs to copy out of mostly unused packs, by pack.
    pub repack: Vec<PackRecord>,
    /// Packs to delete once no backup that might use them runs.
    pub doomed: Vec<Id>,
    /// Counts for the report.
    pub report: PruneReport,
}

impl PrunePlan {
    /// Decide: a pack whose unused bytes are at most `max_unused_percent` is
    /// kept; one with some used blobs is repacked (its used blobs copied,
    /// the pack doomed); one with none, or stored but in no index, is doomed.
    /// Mostly used packs are judged first, so a blob stored twice is kept
    /// where it costs nothing. An indexed pack that is not stored never
    /// counts as a copy of anything: its record is dropped if nothing in it
    /// is used, else kept as it is (the damage stays visible to `check`).
    pub fn compute(
        indexed: Vec<PackRecord>,
        stored: &HashSet<Id>,
        used: &Referenced,
        max_unused_percent: f64,
    ) -> PrunePlan {
        let mut plan = PrunePlan::default();
        let mut kept_blobs: HashSet<Id> = HashSet::new();
        let mut seen: HashSet<Id> = HashSet::new();
        let mut records = indexed;
        records.sort_by_key(|p| std::cmp::Reverse(used_share(p, used)));
        for pack in records {
            if !seen.insert(pack.pack) {
                continue;
            }
            if stored.contains(&pack.pack) {
                plan.judge(pack, used, &mut kept_blobs, max_unused_percent);
            } else if pack.entries.iter().any(|e| used.contains(&e.id)) {
                plan.keep.push(pack);
            } else {
                plan.report.packs_missing_dropped += 1;
            }
        }
        // Packs no segment lists: left by a crashed backup, or being written
        // by a running one. The plan's wait list protects the latter.
        let mut unindexed: Vec<Id> = stored.difference(&seen).copied().collect();
        unindexed.sort();
        plan.report.packs_unused += unindexed.len() as u64;
        plan.doomed.extend(unindexed);
        plan
    }

    fn judge(
        &mut self,
        pack: PackRecord,
        used: &Referenced,
        kept_blobs: &mut HashSet<Id>,
        max_unused_percent: f64,
    ) {
        let r = &mut self.report;
        let total: u64 = pack.entries.iter().map(|e| e.stored_share()).sum();
        let useful: u64 = pack
            .entries
            .iter()
            .filter(|e| used.contains(&e.id) && !kept_blobs.contains(&e.id))
            .map(|e| e.stored_share())
            .sum();
        let in_use = pack.entries.iter().filter(|e| used.contains(&e.id)).count() as u64;
        r.blobs_used += in_use;
        r.blobs_unused += pack.entries.len() as u64 - in_use;
        if useful == 0 {
            r.packs_unused += 1;
            self.doomed.push(pack.pack);
        } else if (total - useful) as f64 * 100.0 > max_unused_percent * total as f64 {
            r.packs_repacked += 1;
            let copy: Vec<BlobEntry> = pack
                .entries
                .iter()
                .filter(|e| used.contains(&e.id) && kept_blobs.insert(e.id))
                .copied()
                .collect();
            r.blobs_repacked += copy.len() as u64;
            r.bytes_repacked += copy.iter().map(|e| e.stored_share()).sum::<u64>();
            self.doomed.push(pack.pack);
            self.repack.push(PackRecord {
                pack: pack.pack,
                entries: copy,
            });
        } else {
            kept_blobs.extend(
                pack.entries
                    .iter()
                    .filter(|e| used.contains(&e.id))
                    .map(|e| e.id),
            );
            r.packs_kept += 1;
        }
        self.keep.push(pack);
    }

    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.doomed.is_empty() && self.repack.is_empty()
    }
}

fn used_share(p: &PackRecord, used: &Referenced) -> u64 {
    let total: u64 = p
        .entries
        .iter()
        .map(|e| e.stored_share())
        .sum::<u64>()
        .max(1);
    let useful: u64 = p
        .entries
        .iter()
        .filter(|e| used.contains(&e.id))
        .map(|e| e.stored_share())
        .sum();
    useful * 1000 / total
}

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

/// The index segments, failing on a damaged one: what it supersedes would
/// count again.
fn undamaged_segments(repo: &Repository) -> Result<crate::store::repository::IndexSegments> {
    let segments = repo.index_segments()?;
    match segments.damaged.first() {
        Some(d) => Err(damaged_segment(d.clone())),
        None => Ok(segments),
    }
}

/// Every blob some snapshot references; fails on damage.
fn used_blobs(repo: &Repository) -> Result<Referenced> {
    let snapshots = require_undamaged(repo)?;
    referenced(repo, snapshots.into_iter().map(|(_, s)| s.tree))
}

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
        carry_out_plans(repo, &mut carried, progress)?;
        // A backup writes its spool files continuously; a day-old one is
        // from a backup that died.
        carried.spool_files_removed = clean_spool(&**repo.backend(), SPOOL_STALE);
    }
    stop_if_cancelled(progress)?;
    let used = used_blobs(repo)?;
    stop_if_cancelled(progress)?;
    let segments = undamaged_segments(repo)?.effective;
    let seg_ids: Vec<Id> = segments.iter().map(|(id, _)| *id).collect();
    let indexed = segments.into_iter().flat_map(|(_, s)| s.packs).collect();
    let stored: HashSet<Id> = repo.list(FileType::Pack)?.into_keys().collect();
    let plan = PrunePlan::compute(indexed, &stored, &used, opts.max_unused_percent);
    let mut report = merge(plan.report.clone(), carried);
    if opts.dry_run || plan.is_empty() {
        return Ok(report);
    }
    execute(repo, plan, seg_ids, &mut report, progress)?;
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
    plan: PrunePlan,
    seg_ids: Vec<Id>,
    report: &mut PruneReport,
    progress: &dyn WorkProgress,
) -> Result<()> {
    let mut keep = plan.keep;
    keep.extend(copy_blobs(repo, &plan.repack, progress)?);
    // Still lists the doomed packs: until the plan is carried out, a snapshot
    // written by a backup that started earlier may need them.
    repo.write_segment(Segment {
        supersedes: seg_ids.clone(),
        packs: keep,
    })?;
    let stored_plan = Plan {
        version: 1,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        packs: plan.doomed,
        segments: seg_ids,
    };
    let plan_id = plans::write(&**repo.backend(), repo.codec(), &stored_plan)?;
    // Locks are listed only now that the plan is visible: a backup not
    // listed here reads the index after this point and sees the plan.
    let wait = plans::write_wait(&**repo.backend(), repo.codec(), &plan_id)?;
    if wait.runs.is_empty() {
        carry_out(repo, &plan_id, &stored_plan, report, progress)
    } else {
        report.packs_deferred += stored_plan.packs.len() as u64;
        report.blocking_backups += wait.runs.len() as u64;
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
    progress.expect(packs.len() as u64, packs.iter().map(bytes).sum());
    let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), false);
    let target = repo.config().pack_size as usize;
    let result = (|| -> Result<()> {
        let data = uploader
            .packer(BlobKind::Data, target)
            .framed(repo.config());
        let trees = uploader.packer(BlobKind::Tree, target);
        for pack in packs {
            // Packs written so far are in no index yet: a later prune
            // deletes them as unused.
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
        carry_out(repo, &stored.id, &plan, report, progress)?;
    }
    Ok(())
}

/// Delete a plan's packs, except those a snapshot written since needs:
/// publish an index without them first, then delete them. A doomed pack
/// whose table fails verification is kept (`check` reports it); any other
/// read error fails the prune, and the plan is carried out next time.
fn carry_out(
    repo: &Repository,
    plan_id: &Id,
    plan: &Plan,
    report: &mut PruneReport,
    progress: &dyn WorkProgress,
) -> Result<()> {
    let used = used_blobs(repo)?;
    let segments = undamaged_segments(repo)?;
    let doomed: HashSet<Id> = plan.packs.iter().copied().collect();
    let stored = repo.list(FileType::Pack)?;
    // Blobs that stay available outside the doomed packs (in packs that
    // are really there).
    let available: HashSet<Id> = segments
        .effective
        .iter()
        .flat_map(|(_, s)| s.packs.iter())
        .filter(|p| !doomed.contains(&p.pack) && stored.contains_key(&p.pack))
        .flat_map(|p| p.entries.iter().map(|e| e.id))
        .collect();
    let mut delete: HashMap<Id, u64> = HashMap::new();
    for pack in &plan.packs {
        let Some(&size) = stored.get(pack) else {
            continue; // gone already (an earlier attempt deleted it)
        };
        let needed = match repo.read_pack_table(pack, size) {
            Ok(entries) => entries
                .iter()
                .any(|e| used.contains(&e.id) && !available.contains(&e.id)),
            // What it holds is unknown this time: keep it.
            Err(Error::Corrupt { .. }) => true,
            Err(e) => return Err(e),
        };
        if needed {
            report.packs_resurrected += 1;
        } else {
            delete.insert(*pack, size);
        }
    }
    let seg_ids: Vec<Id> = segments.effective.iter().map(|(id, _)| *id).collect();
    // Doomed packs that are gone leave the index too: no backup may
    // deduplicate against them once the plan no longer marks them.
    let remaining: Vec<PackRecord> = segments
        .effective
        .into_iter()
        .flat_map(|(_, s)| s.packs)
        .filter(|p| {
            !delete.contains_key(&p.pack)
                && (stored.contains_key(&p.pack) || !doomed.contains(&p.pack))
        })
        .collect();
    repo.write_segment(Segment {
        supersedes: seg_ids.clone(),
        packs: remaining,
    })?;
    progress.expect(delete.len() as u64, 0);
    for (pack, size) in &delete {
        progress.working_on(&format!("pack {}", pack.to_hex()));
        repo.backend().delete(&layout::key(FileType::Pack, pack))?;
        progress.advance(1, 0);
        report.packs_deleted += 1;
        report.bytes_freed += *size;
    }
    let mut roots = seg_ids;
    roots.extend(&plan.segments);
    repo.delete_segments(&roots, &segments.supersedes)?;
    plans::remove(&**repo.backend(), plan_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;

    fn entry(name: &str, len: u32) -> BlobEntry {
        BlobEntry {
            id: Id::of(name.as_bytes()),
            kind: BlobKind::Data,
            flags: 0,
            stored_len: len,
            raw_len: len,
            offset: 0,
            frame: None,
        }
    }

    fn pack(name: &str, entries: Vec<BlobEntry>) -> PackRecord {
        PackRecord {
            pack: Id::of(name.as_bytes()),
            entries,
        }
    }

    fn used(names: &[&str]) -> Referenced {
        Referenced {
            data: names.iter().map(|n| Id::of(n.as_bytes())).collect(),
            ..Referenced::default()
        }
    }

    /// full: all used (kept); mostly: 1 of 20 bytes unused (kept at 5%);
    /// half: half unused (repacked); none: nothing used (doomed); a stored
    /// pack in no index (doomed); a blob in two packs is kept once.
    #[test]
    fn packs_are_kept_repacked_or_doomed_by_their_unused_share() {
        let indexed = vec![
            pack("full", vec![entry("a", 10), entry("b", 10)]),
            pack("mostly", vec![entry("c", 19), entry("x", 1)]),
            pack("half", vec![entry("d", 10), entry("y", 10), entry("a", 10)]),
            pack("none", vec![entry("z", 10)]),
        ];
        let stored: HashSet<Id> = ["full", "mostly", "half", "none", "stray"]
            .iter()
            .map(|n| Id::of(n.as_bytes()))
            .collect();
        let plan = PrunePlan::compute(indexed, &stored, &used(&["a", "b", "c", "d"]), 5.0);
        let name = |id: &Id| {
            ["full", "mostly", "half", "none", "stray"]
                .into_iter()
                .find(|n| Id::of(n.as_bytes()) == *id)
                .unwrap()
        };
        let doomed: Vec<&str> = plan.doomed.iter().map(name).collect();
        assert_eq!(doomed, ["half", "none", "stray"]);
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(
            plan.repack[0].entries,
            vec![entry("d", 10)],
            "a is kept in full"
        );
        assert_eq!(plan.keep.len(), 4, "every indexed pack stays listed");
        let r = &plan.report;
        assert_eq!((r.packs_kept, r.packs_repacked, r.packs_unused), (2, 1, 2));
        assert_eq!((r.blobs_used, r.blobs_unused), (5, 3));
        assert_eq!((r.blobs_repacked, r.bytes_repacked), (1, 10));
    }

    #[test]
    fn nothing_to_do_when_everything_is_used() {
        let indexed = vec![pack("p", vec![entry("a", 10)])];
        let stored = [Id::of(b"p")].into_iter().collect();
        assert!(PrunePlan::compute(indexed, &stored, &used(&["a"]), 5.0).is_empty());
    }
}
