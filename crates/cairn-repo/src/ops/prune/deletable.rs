//! Carrying out a plan: which doomed packs can go, decided without holding
//! the index in memory.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;

use super::segments::{for_each_record, SegmentScan};
use crate::{Repository, Result};

/// Doomed blobs checked per pass over the index when carrying out a plan
/// (about 50 bytes each while checked).
const CARRY_ENTRIES: usize = 1 << 20;

/// Sorts a plan's doomed packs into those that can go and those a snapshot
/// still needs: a pack is needed if it holds a used blob that no stored,
/// undoomed pack holds. The used blobs of doomed packs are checked against
/// the index in batches (one pass over it per [`CARRY_ENTRIES`] blobs),
/// with exact ids: a prefix match would wrongly count a blob as available.
pub(super) struct Deletable<'a> {
    repo: &'a Repository,
    scan: &'a SegmentScan,
    doomed: &'a HashSet<Id>,
    stored: &'a HashMap<Id, u64>,
    pending: Vec<(Id, u64, Vec<Id>)>,
    entries: usize,
    delete: HashMap<Id, u64>,
    pub(super) resurrected: u64,
}

impl<'a> Deletable<'a> {
    pub(super) fn new(
        repo: &'a Repository,
        scan: &'a SegmentScan,
        doomed: &'a HashSet<Id>,
        stored: &'a HashMap<Id, u64>,
    ) -> Deletable<'a> {
        Deletable {
            repo,
            scan,
            doomed,
            stored,
            pending: Vec::new(),
            entries: 0,
            delete: HashMap::new(),
            resurrected: 0,
        }
    }

    /// Doomed `pack` of `size` bytes holds the used blobs `wanted`.
    pub(super) fn add(&mut self, pack: Id, size: u64, wanted: Vec<Id>) -> Result<()> {
        if wanted.is_empty() {
            self.delete.insert(pack, size);
            return Ok(());
        }
        self.entries += wanted.len();
        self.pending.push((pack, size, wanted));
        match self.entries >= CARRY_ENTRIES {
            true => self.settle(),
            false => Ok(()),
        }
    }

    /// One pass over the index for the packs pending.
    fn settle(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut missing: HashSet<Id> = self
            .pending
            .iter()
            .flat_map(|p| p.2.iter().copied())
            .collect();
        for_each_record(self.repo, &self.scan.effective, &mut |record| {
            if !self.doomed.contains(&record.pack) && self.stored.contains_key(&record.pack) {
                record.entries.iter().for_each(|e| {
                    missing.remove(&e.id);
                });
            }
            Ok(())
        })?;
        for (pack, size, wanted) in std::mem::take(&mut self.pending) {
            match wanted.iter().any(|id| missing.contains(id)) {
                true => self.resurrected += 1,
                false => {
                    self.delete.insert(pack, size);
                }
            }
        }
        self.entries = 0;
        Ok(())
    }

    /// The packs to delete, and how many doomed packs are kept.
    pub(super) fn finish(mut self) -> Result<(HashMap<Id, u64>, u64)> {
        self.settle()?;
        Ok((self.delete, self.resurrected))
    }
}
