//! Deciding what becomes of every pack, from the index read one segment at
//! a time and the compact set of used blobs: memory grows with the number
//! of packs, not of blobs.
//!
//! A blob stored in two packs is kept where it costs nothing, which needs
//! exact ids, but only for the few blobs that really are stored twice: a
//! first pass marks each used prefix when it is met, and a prefix met a
//! second time (a blob in two packs, or two blobs sharing a prefix) is
//! resolved with full ids in a second pass over the index.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;

use super::used::{prefix, UsedBlobs};
use super::PruneReport;
use crate::format::pack::BlobEntry;
use crate::format::segment::PackRecord;
use crate::Result;

/// Hands every pack record of the index, in the same order each time it is
/// called, to the function it is given.
pub type Records<'a> = dyn FnMut(&mut dyn FnMut(PackRecord) -> Result<()>) -> Result<()> + 'a;

/// What becomes of one indexed pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Listed in the new index, left alone.
    Keep,
    /// Listed until the plan is carried out; its used blobs are copied
    /// first (of those stored twice, the ids in `copy`).
    Repack {
        /// Blobs stored twice that this pack is the one to copy.
        copy: HashSet<Id>,
    },
    /// Listed until the plan is carried out, then deleted.
    Doom,
    /// Left out of the new index: not stored, and nothing in it is used.
    Drop,
}

/// One pack's sums, from its record.
#[derive(Clone, Debug, Default)]
struct PackStat {
    pack: Id,
    entries: u64,
    total: u64,
    used: u64,
    used_bytes: u64,
    used_raw: u64,
}

impl PackStat {
    fn used_share(&self) -> u64 {
        self.used_bytes * 1000 / self.total.max(1)
    }
}

/// Used blobs stored more than once, found in the second pass: for each
/// pack (by number), its entries (id, stored share, raw length) whose
/// prefix was met twice.
type Twice = HashMap<usize, Vec<(Id, u64, u64)>>;

/// What to do with every pack.
#[derive(Clone, Debug, Default)]
pub struct PrunePlan {
    packs: HashMap<Id, usize>,
    fates: Vec<Option<Fate>>,
    twice: HashSet<u64>,
    /// Packs to delete once no backup that might use them runs.
    pub doomed: Vec<Id>,
    /// Raw bytes of the blobs to copy (for progress).
    pub copy_raw_bytes: u64,
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
    /// A pack listed twice counts once, as its first record says.
    pub fn compute(
        records: &mut Records,
        stored: &HashSet<Id>,
        used: &UsedBlobs,
        max_unused_percent: f64,
    ) -> Result<PrunePlan> {
        let mut plan = PrunePlan::default();
        let stats = plan.tally(records, stored, used)?;
        let twice = match plan.twice.is_empty() {
            true => Twice::new(),
            false => plan.resolve(records, stored, used)?,
        };
        plan.judge(&stats, &twice, stored, max_unused_percent);
        let mut unindexed: Vec<Id> = stored
            .iter()
            .filter(|p| !plan.packs.contains_key(*p))
            .copied()
            .collect();
        // Packs no segment lists: left by a crashed backup, or being written
        // by a running one. The plan's wait list protects the latter.
        unindexed.sort();
        plan.report.packs_unused += unindexed.len() as u64;
        plan.doomed.extend(unindexed);
        Ok(plan)
    }

    /// First pass: each pack's sums, and the used prefixes met twice in
    /// stored packs.
    fn tally(
        &mut self,
        records: &mut Records,
        stored: &HashSet<Id>,
        used: &UsedBlobs,
    ) -> Result<Vec<PackStat>> {
        let mut stats = Vec::new();
        let mut met = vec![0u64; used.len() / 64 + 1];
        records(&mut |record| {
            if self.packs.contains_key(&record.pack) {
                return Ok(());
            }
            self.packs.insert(record.pack, stats.len());
            let is_stored = stored.contains(&record.pack);
            let mut s = PackStat {
                pack: record.pack,
                entries: record.entries.len() as u64,
                ..PackStat::default()
            };
            for e in &record.entries {
                s.total += e.stored_share();
                let Some(pos) = used.position(&e.id) else {
                    continue;
                };
                s.used += 1;
                s.used_bytes += e.stored_share();
                s.used_raw += u64::from(e.raw_len);
                let (word, bit) = (pos / 64, 1u64 << (pos % 64));
                if is_stored && met[word] & bit != 0 {
                    self.twice.insert(prefix(&e.id));
                }
                if is_stored {
                    met[word] |= bit;
                }
            }
            stats.push(s);
            Ok(())
        })?;
        self.fates = vec![None; stats.len()];
        Ok(stats)
    }

    /// Second pass: the full ids of the entries whose prefix was met twice.
    fn resolve(
        &self,
        records: &mut Records,
        stored: &HashSet<Id>,
        used: &UsedBlobs,
    ) -> Result<Twice> {
        let mut twice = Twice::new();
        let mut done = vec![false; self.fates.len()];
        records(&mut |record| {
            let Some(&n) = self.packs.get(&record.pack) else {
                return Ok(());
            };
            if std::mem::replace(&mut done[n], true) || !stored.contains(&record.pack) {
                return Ok(());
            }
            let found = record
                .entries
                .iter()
                .filter(|e| self.twice.contains(&prefix(&e.id)) && used.contains(&e.id))
                .map(|e| (e.id, e.stored_share(), u64::from(e.raw_len)));
            let found: Vec<_> = found.collect();
            if !found.is_empty() {
                twice.insert(n, found);
            }
            Ok(())
        })?;
        Ok(twice)
    }

    fn judge(
        &mut self,
        stats: &[PackStat],
        twice: &Twice,
        stored: &HashSet<Id>,
        max_unused_percent: f64,
    ) {
        let mut order: Vec<usize> = (0..stats.len()).collect();
        order.sort_by_key(|&n| std::cmp::Reverse(stats[n].used_share()));
        let mut kept: HashSet<Id> = HashSet::new();
        for n in order {
            let s = &stats[n];
            let dups = twice.get(&n).map_or(&[][..], Vec::as_slice);
            let fate = match stored.contains(&s.pack) {
                true => self.judge_stored(s, dups, &mut kept, max_unused_percent),
                false if s.used > 0 => Fate::Keep,
                false => {
                    self.report.packs_missing_dropped += 1;
                    Fate::Drop
                }
            };
            self.fates[n] = Some(fate);
        }
    }

    fn judge_stored(
        &mut self,
        s: &PackStat,
        dups: &[(Id, u64, u64)],
        kept: &mut HashSet<Id>,
        max_unused_percent: f64,
    ) -> Fate {
        let r = &mut self.report;
        r.blobs_used += s.used;
        r.blobs_unused += s.entries - s.used;
        let (mut elsewhere, mut elsewhere_bytes) = (0, 0);
        for d in dups.iter().filter(|d| kept.contains(&d.0)) {
            (elsewhere, elsewhere_bytes) = (elsewhere + 1, elsewhere_bytes + d.1);
        }
        let useful = s.used_bytes - elsewhere_bytes;
        // Counted in blobs too: a frame member's share of its frame may
        // round to zero bytes.
        if s.used == elsewhere {
            r.packs_unused += 1;
            self.doomed.push(s.pack);
            return Fate::Doom;
        }
        if (s.total - useful) as f64 * 100.0 <= max_unused_percent * s.total as f64 {
            kept.extend(dups.iter().map(|d| d.0));
            r.packs_kept += 1;
            return Fate::Keep;
        }
        let mut copy = HashSet::new();
        let (mut skipped, mut skipped_bytes, mut skipped_raw) = (0, 0, 0);
        for &(id, bytes, raw) in dups {
            if kept.insert(id) {
                copy.insert(id);
            } else {
                (skipped, skipped_bytes, skipped_raw) =
                    (skipped + 1, skipped_bytes + bytes, skipped_raw + raw);
            }
        }
        r.packs_repacked += 1;
        r.blobs_repacked += s.used - skipped;
        r.bytes_repacked += s.used_bytes - skipped_bytes;
        self.copy_raw_bytes += s.used_raw - skipped_raw;
        self.doomed.push(s.pack);
        Fate::Repack { copy }
    }

    /// The fate of `pack`, the first time it is asked for (a record of a
    /// pack listed twice, or of a pack the plan never saw, gets none).
    pub fn take(&mut self, pack: &Id) -> Option<Fate> {
        let n = *self.packs.get(pack)?;
        self.fates[n].take()
    }

    /// The entries of a repacked pack's record to copy: the used ones,
    /// each blob stored twice only where the plan chose (`copy`, emptied
    /// as they are taken, so a blob listed twice in one pack is copied once).
    pub fn to_copy(
        &self,
        record: &PackRecord,
        copy: &mut HashSet<Id>,
        used: &UsedBlobs,
    ) -> Vec<BlobEntry> {
        record
            .entries
            .iter()
            .filter(|e| {
                used.contains(&e.id) && (!self.twice.contains(&prefix(&e.id)) || copy.remove(&e.id))
            })
            .copied()
            .collect()
    }

    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.doomed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;

    fn entry(name: &str, len: u32) -> BlobEntry {
        entry_id(Id::of(name.as_bytes()), len)
    }

    fn entry_id(id: Id, len: u32) -> BlobEntry {
        BlobEntry {
            id,
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

    fn ids(names: &[&str]) -> Vec<Id> {
        names.iter().map(|n| Id::of(n.as_bytes())).collect()
    }

    /// The plan, and what a prune would copy out of each repacked pack.
    fn compute(
        indexed: &[PackRecord],
        stored: &[&str],
        used: &UsedBlobs,
    ) -> (PrunePlan, Vec<Vec<BlobEntry>>) {
        let stored: HashSet<Id> = ids(stored).into_iter().collect();
        let mut records = |each: &mut dyn FnMut(PackRecord) -> Result<()>| {
            indexed.iter().cloned().try_for_each(&mut *each)
        };
        let mut plan = PrunePlan::compute(&mut records, &stored, used, 5.0).unwrap();
        let mut copied = Vec::new();
        for record in indexed {
            if let Some(Fate::Repack { mut copy }) = plan.take(&record.pack) {
                copied.push(plan.to_copy(record, &mut copy, used));
            }
        }
        (plan, copied)
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
        let names = ["full", "mostly", "half", "none", "stray"];
        let used = UsedBlobs::from_ids(&ids(&["a", "b", "c", "d"]));
        let (plan, copied) = compute(&indexed, &names, &used);
        let name = |id: &Id| {
            names
                .into_iter()
                .find(|n| Id::of(n.as_bytes()) == *id)
                .unwrap()
        };
        let doomed: Vec<&str> = plan.doomed.iter().map(name).collect();
        assert_eq!(doomed, ["half", "none", "stray"]);
        assert_eq!(copied, vec![vec![entry("d", 10)]], "a is kept in full");
        let r = &plan.report;
        assert_eq!((r.packs_kept, r.packs_repacked, r.packs_unused), (2, 1, 2));
        assert_eq!((r.blobs_used, r.blobs_unused), (5, 3));
        assert_eq!((r.blobs_repacked, r.bytes_repacked), (1, 10));
        assert_eq!(plan.copy_raw_bytes, 10);
    }

    #[test]
    fn nothing_to_do_when_everything_is_used() {
        let indexed = vec![pack("p", vec![entry("a", 10)])];
        let used = UsedBlobs::from_ids(&ids(&["a"]));
        assert!(compute(&indexed, &["p"], &used).0.is_empty());
    }

    /// An id with the first 8 bytes `first`.
    fn with_prefix(first: u64, rest: u8) -> Id {
        let mut b = [rest; 32];
        b[..8].copy_from_slice(&first.to_be_bytes());
        Id(b)
    }

    /// An unused blob whose id starts like a used one's is kept: the pack
    /// holding only it is kept, not doomed, and a repacked pack copies it.
    #[test]
    fn a_prefix_collision_keeps_the_unused_blob() {
        let used_id = with_prefix(42, 1);
        let (twin, other_twin) = (with_prefix(42, 2), with_prefix(42, 3));
        let indexed = vec![
            pack("p", vec![entry_id(used_id, 10)]),
            pack("q", vec![entry_id(twin, 10)]),
            pack("r", vec![entry_id(other_twin, 10), entry("u", 100)]),
        ];
        let used = UsedBlobs::from_ids(&[used_id]);
        let (plan, copied) = compute(&indexed, &["p", "q", "r"], &used);
        assert_eq!(plan.doomed, ids(&["r"]), "q is kept");
        assert_eq!(copied, vec![vec![entry_id(other_twin, 10)]]);
        let r = &plan.report;
        assert_eq!((r.packs_kept, r.packs_repacked), (2, 1));
    }

    /// Two used blobs sharing a prefix, each in a pack that is repacked:
    /// both are copied (the second pass tells them apart).
    #[test]
    fn used_blobs_sharing_a_prefix_are_both_copied() {
        let (a, b) = (with_prefix(7, 1), with_prefix(7, 2));
        let indexed = vec![
            pack("p", vec![entry_id(a, 10), entry("u", 100)]),
            pack("q", vec![entry_id(b, 10), entry("v", 100)]),
        ];
        let used = UsedBlobs::from_ids(&[a, b]);
        let (plan, copied) = compute(&indexed, &["p", "q"], &used);
        assert_eq!(plan.report.packs_repacked, 2);
        assert_eq!(copied, vec![vec![entry_id(a, 10)], vec![entry_id(b, 10)]]);
    }

    /// A used blob in two mostly unused packs, and twice in one of them, is
    /// copied exactly once; the pack of the other copy is then doomed as a
    /// whole only if nothing else in it is used.
    #[test]
    fn a_blob_stored_three_times_is_copied_once() {
        let indexed = vec![
            pack("p", vec![entry("a", 10), entry("a", 10), entry("u", 100)]),
            pack("q", vec![entry("a", 10), entry("v", 100)]),
            pack("q", vec![entry("w", 10)]),
        ];
        let used = UsedBlobs::from_ids(&ids(&["a"]));
        let (plan, copied) = compute(&indexed, &["p", "q"], &used);
        assert_eq!(copied, vec![vec![entry("a", 10)]]);
        let r = &plan.report;
        assert_eq!((r.packs_repacked, r.packs_unused), (1, 1));
        assert_eq!((r.blobs_repacked, r.bytes_repacked), (1, 10));
        assert_eq!(plan.doomed.len(), 2, "the second record of q is ignored");
    }

    /// A pack listed in the index but not stored holds no copy of anything:
    /// dropped when nothing in it is used, kept listed when something is.
    #[test]
    fn an_unstored_pack_is_dropped_or_kept_listed() {
        let indexed = vec![
            pack("gone", vec![entry("a", 10)]),
            pack("gone-used", vec![entry("b", 10)]),
            pack("p", vec![entry("b", 10), entry("u", 100)]),
        ];
        let used = UsedBlobs::from_ids(&ids(&["b"]));
        let (plan, copied) = compute(&indexed, &["p"], &used);
        assert_eq!(plan.report.packs_missing_dropped, 1);
        assert_eq!(
            copied,
            vec![vec![entry("b", 10)]],
            "the lost copy counts for nothing"
        );
        let gone = Id::of(b"gone");
        let gone_used = Id::of(b"gone-used");
        assert!(!plan.doomed.contains(&gone) && !plan.doomed.contains(&gone_used));
    }
}
