//! Reading and writing the index a segment at a time, so that prune's
//! memory does not grow with the index (docs/FORMAT.md 11).

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;

use crate::format::layout::FileType;
use crate::format::segment::{PackRecord, Segment};
use crate::{Error, Repository, Result};

/// Entries a prune puts in one segment it writes (about 3.3 MB encoded).
pub const SEGMENT_ENTRIES: usize = 64 * 1024;

/// The segments present, learnt by reading each once.
pub struct SegmentScan {
    /// Those no present segment supersedes, in the order every pass reads
    /// them.
    pub effective: Vec<Id>,
    /// What each present segment supersedes.
    pub supersedes: HashMap<Id, Vec<Id>>,
}

/// Read every segment once to learn which are in force; fails on a damaged
/// one (what it supersedes would count again, and its packs look unindexed).
pub fn scan(repo: &Repository) -> Result<SegmentScan> {
    let mut ids: Vec<Id> = repo.list(FileType::Index)?.into_keys().collect();
    ids.sort();
    let mut supersedes = HashMap::new();
    for id in ids {
        match repo.read_segment(&id) {
            // Deleted after our listing: a newer segment supersedes it.
            Err(e) if e.is_not_found() => continue,
            Err(Error::Corrupt { reason, .. }) => {
                return Err(super::damaged_segment(crate::store::repository::Damaged {
                    id,
                    reason,
                }))
            }
            other => supersedes.insert(id, other?.supersedes),
        };
    }
    let superseded: HashSet<Id> = supersedes.values().flatten().copied().collect();
    let mut effective: Vec<Id> = supersedes
        .keys()
        .filter(|id| !superseded.contains(id))
        .copied()
        .collect();
    effective.sort();
    Ok(SegmentScan {
        effective,
        supersedes,
    })
}

/// Hand every pack record of `segments` to `each`, one segment in memory
/// at a time. A segment that is gone now fails (only prune deletes
/// segments, and only one prune runs).
pub fn for_each_record(
    repo: &Repository,
    segments: &[Id],
    each: &mut dyn FnMut(PackRecord) -> Result<()>,
) -> Result<()> {
    for id in segments {
        for record in repo.read_segment(id)?.packs {
            each(record)?;
        }
    }
    Ok(())
}

/// Writes a new index as several segments: all but the last supersede
/// nothing, the last supersedes the old index. Until the last is stored
/// the old segments are in force and the new ones only repeat what they
/// say (or name new packs), so every blob stays locatable at every moment;
/// a crash leaves extra segments that the next prune folds in.
pub struct SegmentWriter<'a> {
    repo: &'a Repository,
    packs: Vec<PackRecord>,
    entries: usize,
    limit: usize,
}

impl<'a> SegmentWriter<'a> {
    /// A writer that stores a segment whenever `limit` entries are waiting.
    pub fn new(repo: &'a Repository, limit: usize) -> SegmentWriter<'a> {
        SegmentWriter {
            repo,
            packs: Vec::new(),
            entries: 0,
            limit: limit.max(1),
        }
    }

    /// List `record` in the new index.
    pub fn add(&mut self, record: PackRecord) -> Result<()> {
        self.entries += record.entries.len();
        self.packs.push(record);
        if self.entries >= self.limit {
            let packs = std::mem::take(&mut self.packs);
            self.entries = 0;
            self.repo.store_segment(Segment {
                supersedes: Vec::new(),
                packs,
            })?;
        }
        Ok(())
    }

    /// Store the last segment, superseding `old`: from now on the new
    /// index is in force.
    pub fn finish(self, old: Vec<Id>) -> Result<()> {
        self.repo.write_segment(Segment {
            supersedes: old,
            packs: self.packs,
        })?;
        Ok(())
    }
}
