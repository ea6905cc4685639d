//! Prune: free the space of blobs no snapshot references, without ever
//! deleting what a running backup may reference, and without making backups
//! wait. The protocol (docs/FORMAT.md, "Prune") in short:
//!
//! 1. find every blob the snapshots reference;
//! 2. keep packs that are (mostly) used; copy the used blobs of packs that are
//!    mostly unused into new packs; everything else is *doomed*;
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

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use serde::{Deserialize, Serialize};

use crate::backend::BackendError;
use crate::lock::live_runs;
use crate::pack::{parse_entries, parse_footer, BlobEntry, BlobKind, ENTRY_LEN, FOOTER_LEN};
use crate::packer::{clean_spool, Uploader};
use crate::repository::{pack_key, segment_key};
use crate::segment::{PackRecord, Segment};
use crate::tree::NodeKind;
use crate::{Backend, Error, Repository, Result};

/// How to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of its bytes is unused.
    pub max_unused_percent: f64,
    /// Report, change nothing.
    pub dry_run: bool,
}

/// What a prune did (or would do).
#[derive(Clone, Debug, Default, Serialize)]
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
}

/// Spool files older than this belong to backups that died.
const SPOOL_STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Packs to delete once no backup that might reference them is running.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Plan format (1).
    pub version: u32,
    /// When it was written.
    pub time: String,
    /// Packs to delete.
    pub packs: Vec<Id>,
    /// Segments superseded by the prune's new segment.
    pub segments: Vec<Id>,
}

/// The backups a plan waits for: those whose locks were alive right after
/// the plan became visible. Written after the plan, as `plans/<id>.wait`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Wait {
    /// Lock runs.
    pub runs: Vec<String>,
}

fn plan_key(id: &Id) -> String {
    format!("plans/{id}")
}

fn wait_key(id: &Id) -> String {
    format!("plans/{id}.wait")
}

/// Record which live backups plan `id` must wait for.
fn write_wait(repo: &Repository, id: &Id) -> Result<Wait> {
    let wait = Wait {
        runs: live_runs(&**repo.backend())?.into_iter().collect(),
    };
    let bytes = serde_json::to_vec(&wait).expect("wait serializes");
    repo.backend().put(&wait_key(id), &bytes)?;
    Ok(wait)
}

/// Refuse to go on while some snapshot or index segment is damaged: the
/// data a damaged snapshot references, or the packs only a damaged segment
/// lists, would look unused and be deleted.
pub fn require_undamaged(repo: &Repository) -> Result<Vec<(Id, crate::Snapshot)>> {
    if let Some(d) = repo.damaged_segments().into_iter().next() {
        return Err(Error::Damaged {
            what: "index segment",
            id: d.id,
            reason: d.reason,
            advice: "run `cairn repair index` first",
        });
    }
    let list = repo.snapshot_list()?;
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

/// Every blob (data and tree) that some snapshot references; fails on
/// damage (see [`require_undamaged`]).
pub fn referenced(repo: &Repository) -> Result<HashSet<Id>> {
    let mut used = HashSet::new();
    let mut stack: Vec<Id> = require_undamaged(repo)?
        .into_iter()
        .map(|(_, s)| s.tree)
        .collect();
    while let Some(tree_id) = stack.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        for node in repo.load_tree(&tree_id)?.nodes {
            used.extend(node.content.iter().map(|c| c.id));
            if let (NodeKind::Dir, Some(t)) = (node.kind, node.subtree) {
                stack.push(t);
            }
        }
    }
    Ok(used)
}

/// The segments in the repository that no other segment supersedes.
pub fn effective_segments(repo: &Repository) -> Result<Vec<(Id, Segment)>> {
    Ok(index_segments(repo)?.0)
}

/// What each present segment supersedes.
type SupersedesMap = HashMap<Id, Vec<Id>>;

/// The effective segments, and what every present segment supersedes.
fn index_segments(repo: &Repository) -> Result<(Vec<(Id, Segment)>, SupersedesMap)> {
    let mut all = Vec::new();
    for obj in repo.backend().list("index/")? {
        if let Some(id) = obj
            .key
            .strip_prefix("index/")
            .and_then(|s| s.parse::<Id>().ok())
        {
            match repo.read_segment(&id) {
                // Deleted after our listing: a newer segment supersedes it.
                Err(e) if e.is_not_found() => continue,
                // Reported by check; prune refuses to run before this.
                Err(Error::Corrupt { .. }) => continue,
                other => all.push((id, other?)),
            }
        }
    }
    let supersedes: HashMap<Id, Vec<Id>> = all
        .iter()
        .map(|(id, s)| (*id, s.supersedes.clone()))
        .collect();
    let superseded: HashSet<Id> = supersedes.values().flatten().copied().collect();
    let effective = all
        .into_iter()
        .filter(|(id, _)| !superseded.contains(id))
        .collect();
    Ok((effective, supersedes))
}

/// Delete `roots` and every present segment they supersede, directly or
/// not, each only after what it supersedes: a superseded segment must never
/// outlive its superseder, or it would count again (and name packs that
/// are gone).
fn delete_segments(
    repo: &Repository,
    roots: &[Id],
    supersedes: &HashMap<Id, Vec<Id>>,
) -> Result<()> {
    let mut done: HashSet<Id> = HashSet::new();
    let mut stack: Vec<(Id, bool)> = roots.iter().map(|id| (*id, false)).collect();
    while let Some((id, children_done)) = stack.pop() {
        if done.contains(&id) {
            continue;
        }
        let children = supersedes.get(&id).map_or(&[][..], Vec::as_slice);
        if children_done
            || children
                .iter()
                .all(|c| done.contains(c) || !supersedes.contains_key(c))
        {
            repo.backend().delete(&segment_key(&id))?;
            done.insert(id);
        } else {
            stack.push((id, true));
            stack.extend(
                children
                    .iter()
                    .filter(|c| supersedes.contains_key(*c))
                    .map(|c| (*c, false)),
            );
        }
    }
    Ok(())
}

/// Packs stored in the repository, with their sizes.
pub fn stored_packs(backend: &dyn Backend) -> Result<HashMap<Id, u64>> {
    Ok(backend
        .list("packs/")?
        .iter()
        .filter_map(|o| Some((o.key.rsplit('/').next()?.parse().ok()?, o.size)))
        .collect())
}

/// Read a pack's own table of blobs (footer and entries only); `size` is
/// the pack's size as listed.
pub fn read_pack_entries(backend: &dyn Backend, pack: &Id, size: u64) -> Result<Vec<BlobEntry>> {
    let key = pack_key(pack);
    if size < FOOTER_LEN as u64 {
        return Err(Error::corrupt("pack", pack, "too short to be a pack"));
    }
    let footer = backend.get_range(&key, size - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
    let (count, hash) = parse_footer(&footer).map_err(|e| Error::corrupt("pack", pack, e))?;
    let table_len = (count * ENTRY_LEN) as u64;
    if table_len + FOOTER_LEN as u64 > size {
        return Err(Error::corrupt(
            "pack",
            pack,
            "entry table larger than the pack",
        ));
    }
    let start = size - FOOTER_LEN as u64 - table_len;
    let table = backend.get_range(&key, start, table_len)?;
    parse_entries(&table, &hash, start).map_err(|e| Error::corrupt("pack", pack, e))
}

/// Run a prune: carry out earlier plans that are no longer blocked, then
/// plan (and if nothing blocks it, carry out) this one.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    if !opts.dry_run {
        carry_out_plans(repo, &mut report)?;
        // A backup writes its spool files continuously; a day-old one is
        // from a backup that died.
        report.spool_files_removed = clean_spool(&**repo.backend(), SPOOL_STALE);
    }
    let used = referenced(repo)?;
    let segments = effective_segments(repo)?;
    let mut kept_blobs: HashSet<Id> = HashSet::new();
    let mut keep: Vec<PackRecord> = Vec::new();
    let mut repack: Vec<PackRecord> = Vec::new();
    let mut doomed: Vec<Id> = Vec::new();
    let mut indexed: HashSet<Id> = HashSet::new();
    let mut records: Vec<PackRecord> = segments.iter().flat_map(|(_, s)| s.packs.clone()).collect();
    // Mostly-used packs first, so a blob stored twice is kept where it costs nothing.
    records.sort_by_key(|p| std::cmp::Reverse(used_share(p, &used)));
    for pack in records {
        if !indexed.insert(pack.pack) {
            continue;
        }
        let total: u64 = pack.entries.iter().map(|e| u64::from(e.stored_len)).sum();
        let useful: u64 = pack
            .entries
            .iter()
            .filter(|e| used.contains(&e.id) && !kept_blobs.contains(&e.id))
            .map(|e| u64::from(e.stored_len))
            .sum();
        for e in &pack.entries {
            if used.contains(&e.id) {
                report.blobs_used += 1;
            } else {
                report.blobs_unused += 1;
            }
        }
        if useful == 0 {
            report.packs_unused += 1;
            doomed.push(pack.pack);
            keep.push(pack);
        } else if (total - useful) as f64 * 100.0 > opts.max_unused_percent * total as f64 {
            report.packs_repacked += 1;
            let mut to_copy = Vec::new();
            for e in &pack.entries {
                if used.contains(&e.id) && kept_blobs.insert(e.id) {
                    report.blobs_repacked += 1;
                    report.bytes_repacked += u64::from(e.stored_len);
                    to_copy.push(*e);
                }
            }
            doomed.push(pack.pack);
            repack.push(PackRecord {
                pack: pack.pack,
                entries: to_copy,
            });
            keep.push(pack);
        } else {
            kept_blobs.extend(
                pack.entries
                    .iter()
                    .filter(|e| used.contains(&e.id))
                    .map(|e| e.id),
            );
            report.packs_kept += 1;
            keep.push(pack);
        }
    }
    // Packs no segment lists: left by a crashed backup, or being written by
    // a running one. The plan's lock check protects the latter.
    for pack in stored_packs(&**repo.backend())?.into_keys() {
        if !indexed.contains(&pack) {
            report.packs_unused += 1;
            doomed.push(pack);
        }
    }
    if opts.dry_run || (doomed.is_empty() && repack.is_empty()) {
        return Ok(report);
    }
    let new_packs = copy_blobs(repo, &repack)?;
    keep.extend(new_packs);
    let seg_ids: Vec<Id> = segments.iter().map(|(id, _)| *id).collect();
    // Still lists the doomed packs: until the plan is carried out, a snapshot
    // written by a backup that started earlier may need them.
    repo.write_segment(Segment {
        supersedes: seg_ids.clone(),
        packs: keep,
    })?;
    let plan = Plan {
        version: 1,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        packs: doomed,
        segments: seg_ids,
    };
    let bytes = serde_json::to_vec(&plan).expect("plan serializes");
    let plan_id = Id::of(&bytes);
    repo.backend().put(&plan_key(&plan_id), &bytes)?;
    // Locks are listed only now that the plan is visible: a backup not
    // listed here reads the index after this point and sees the plan.
    let wait = write_wait(repo, &plan_id)?;
    if wait.runs.is_empty() {
        carry_out(repo, &plan_id, &plan, &mut report)?;
    } else {
        report.packs_deferred += plan.packs.len() as u64;
        report.blocking_backups = wait.runs.len() as u64;
    }
    repo.refresh_index()?;
    Ok(report)
}

fn used_share(p: &PackRecord, used: &HashSet<Id>) -> u64 {
    let total: u64 = p
        .entries
        .iter()
        .map(|e| u64::from(e.stored_len))
        .sum::<u64>()
        .max(1);
    let useful: u64 = p
        .entries
        .iter()
        .filter(|e| used.contains(&e.id))
        .map(|e| u64::from(e.stored_len))
        .sum();
    useful * 1000 / total
}

/// Copy the listed blobs into new packs (verified on the way).
fn copy_blobs(repo: &Repository, packs: &[PackRecord]) -> Result<Vec<PackRecord>> {
    if packs.is_empty() {
        return Ok(Vec::new());
    }
    let uploader = Uploader::start(repo.backend().clone(), false);
    let target = repo.config().pack_size as usize;
    let result = (|| -> Result<()> {
        let data = uploader.packer(BlobKind::Data, target);
        let trees = uploader.packer(BlobKind::Tree, target);
        for pack in packs {
            for e in &pack.entries {
                let loc = crate::index::Location {
                    pack: pack.pack,
                    entry: *e,
                };
                let stored = repo.backend().get_range(
                    &pack_key(&pack.pack),
                    e.offset,
                    u64::from(e.stored_len),
                )?;
                // Checks the blob against its id before it is copied.
                crate::repository::decode_blob(&loc, stored.clone())?;
                let packer = if e.kind == BlobKind::Tree {
                    &trees
                } else {
                    &data
                };
                packer.add(e.id, &stored, e.compressed(), e.raw_len)?;
            }
        }
        data.flush()?;
        trees.flush()
    })();
    let records = uploader.finish();
    result?;
    records
}

/// Carry out every stored plan whose blocking backups have all finished.
fn carry_out_plans(repo: &Repository, report: &mut PruneReport) -> Result<()> {
    let live = live_runs(&**repo.backend())?;
    for obj in repo.backend().list("plans/")? {
        let key = obj.key;
        let Some(id) = key
            .strip_prefix("plans/")
            .and_then(|s| s.parse::<Id>().ok())
        else {
            continue; // a .wait object, read with its plan
        };
        let bytes = repo.backend().get(&key)?;
        let Some(plan) = decode_plan(&id, &bytes) else {
            // Nobody can carry out a plan nobody can read. Dropping it loses
            // nothing: the packs it doomed are still indexed, and this prune
            // dooms again those that are unused.
            repo.backend().delete(&key)?;
            repo.backend().delete(&wait_key(&id))?;
            report.damaged_plans_removed += 1;
            continue;
        };
        let wait = match repo.backend().get(&wait_key(&id)) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(w) => w,
                Err(_) => {
                    repo.backend().delete(&wait_key(&id))?;
                    write_wait(repo, &id)?
                }
            },
            // The prune that wrote the plan died before recording whom to
            // wait for: every backup alive now may predate the plan.
            Err(BackendError::NotFound { .. }) => write_wait(repo, &id)?,
            Err(e) => return Err(e.into()),
        };
        let blocking = wait.runs.iter().filter(|r| live.contains(*r)).count() as u64;
        if blocking > 0 {
            report.packs_deferred += plan.packs.len() as u64;
            report.blocking_backups += blocking;
            continue;
        }
        carry_out(repo, &id, &plan, report)?;
    }
    Ok(())
}

/// Delete a plan's packs, except those a snapshot written since needs:
/// publish an index without them first, then delete them.
fn carry_out(repo: &Repository, plan_id: &Id, plan: &Plan, report: &mut PruneReport) -> Result<()> {
    let backend = repo.backend();
    let used = referenced(repo)?;
    let (segments, supersedes) = index_segments(repo)?;
    let doomed: HashSet<Id> = plan.packs.iter().copied().collect();
    // Blobs that stay available outside the doomed packs.
    let available: HashSet<Id> = segments
        .iter()
        .flat_map(|(_, s)| s.packs.iter())
        .filter(|p| !doomed.contains(&p.pack))
        .flat_map(|p| p.entries.iter().map(|e| e.id))
        .collect();
    let mut delete: HashMap<Id, u64> = HashMap::new();
    let stored = stored_packs(&**backend)?;
    for pack in &plan.packs {
        let Some(&size) = stored.get(pack) else {
            continue;
        };
        let needed = match read_pack_entries(&**backend, pack, size) {
            Ok(entries) => entries
                .iter()
                .any(|e| used.contains(&e.id) && !available.contains(&e.id)),
            Err(_) => false, // unreadable: nothing can use it
        };
        if needed {
            report.packs_resurrected += 1;
        } else {
            delete.insert(*pack, size);
        }
    }
    let seg_ids: Vec<Id> = segments.iter().map(|(id, _)| *id).collect();
    let remaining: Vec<PackRecord> = segments
        .into_iter()
        .flat_map(|(_, s)| s.packs)
        .filter(|p| !delete.contains_key(&p.pack))
        .collect();
    repo.write_segment(Segment {
        supersedes: seg_ids.clone(),
        packs: remaining,
    })?;
    for (pack, size) in &delete {
        backend.delete(&pack_key(pack))?;
        report.packs_deleted += 1;
        report.bytes_freed += *size;
    }
    let mut roots = seg_ids;
    roots.extend(&plan.segments);
    delete_segments(repo, &roots, &supersedes)?;
    backend.delete(&plan_key(plan_id))?;
    backend.delete(&wait_key(plan_id))?;
    Ok(())
}

/// A plan's content, if it is intact.
fn decode_plan(id: &Id, bytes: &[u8]) -> Option<Plan> {
    if Id::of(bytes) != *id {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// Packs named by the plans stored in the repository: index caches keep
/// them locatable but never deduplicate against them.
pub fn doomed_packs(backend: &dyn Backend) -> Result<HashSet<Id>> {
    let mut out = HashSet::new();
    for obj in backend.list("plans/")? {
        if obj.key.ends_with(".wait") {
            continue;
        }
        let Ok(bytes) = backend.get(&obj.key) else {
            continue; // carried out while we listed
        };
        let id = obj.key.strip_prefix("plans/").and_then(|s| s.parse().ok());
        if let Some(plan) = id.and_then(|id| decode_plan(&id, &bytes)) {
            out.extend(plan.packs);
        }
    }
    Ok(out)
}
