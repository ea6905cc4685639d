//! Reading packs through the repository: a pack's own table, a whole pack,
//! and many blobs of one pack in offset order with few large reads. Every
//! blob is decompressed and checked against its id and length.

use cairn_chunk::compress::decompress;
use cairn_chunk::Id;

use super::index::Location;
use super::repository::Repository;
use crate::format::layout::{self, FileType};
use crate::format::pack::{parse_entries, parse_footer, BlobEntry, ENTRY_LEN, FOOTER_LEN};
use crate::{Error, Result};

impl Repository {
    /// A pack's own table of blobs (footer and entries only); `size` is the
    /// pack's size as listed.
    pub fn read_pack_table(&self, pack: &Id, size: u64) -> Result<Vec<BlobEntry>> {
        let key = layout::key(FileType::Pack, pack);
        if size < FOOTER_LEN as u64 {
            return Err(Error::corrupt("pack", pack, "too short to be a pack"));
        }
        let footer = self
            .backend()
            .get_range(&key, size - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
        let (count, hash) = parse_footer(&footer).map_err(|e| Error::corrupt("pack", pack, e))?;
        let table_len = (count as u64).saturating_mul(ENTRY_LEN as u64);
        if table_len + FOOTER_LEN as u64 > size {
            return Err(Error::corrupt(
                "pack",
                pack,
                "entry table larger than the pack",
            ));
        }
        let start = size - FOOTER_LEN as u64 - table_len;
        let table = self.backend().get_range(&key, start, table_len)?;
        parse_entries(&table, &hash, start).map_err(|e| Error::corrupt("pack", pack, e))
    }

    /// A whole pack, checked against its name.
    pub fn read_pack(&self, pack: &Id) -> Result<Vec<u8>> {
        let bytes = self.backend().get(&layout::key(FileType::Pack, pack))?;
        if Id::of(&bytes) != *pack {
            return Err(Error::corrupt(
                "pack",
                pack,
                "content does not match its name",
            ));
        }
        Ok(bytes)
    }

    /// Read blobs of one pack, in offset order and in few large reads (a gap
    /// of more than 64 KiB, or a read past 2 MiB, starts a new one), each
    /// decompressed and verified; `each` gets every entry with its plain
    /// bytes or why they cannot be had.
    pub fn read_blobs(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        mut each: impl FnMut(&BlobEntry, Result<Vec<u8>>),
    ) {
        self.read_ranges(pack, entries, |e, stored| {
            let loc = Location {
                pack: *pack,
                entry: *e,
            };
            each(e, stored.and_then(|s| decode_blob(&loc, s)))
        })
    }

    /// As [`Repository::read_blobs`], but hand over the stored (compressed)
    /// bytes, once they are verified: for copying blobs between packs.
    pub fn read_stored_blobs(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        mut each: impl FnMut(&BlobEntry, Result<Vec<u8>>),
    ) {
        self.read_ranges(pack, entries, |e, stored| {
            let loc = Location {
                pack: *pack,
                entry: *e,
            };
            let verified = stored.and_then(|s| decode_blob(&loc, s.clone()).map(|_| s));
            each(e, verified)
        })
    }

    fn read_ranges(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        mut each: impl FnMut(&BlobEntry, Result<Vec<u8>>),
    ) {
        let mut entries = entries.to_vec();
        entries.sort_by_key(|e| e.offset);
        let key = layout::key(FileType::Pack, pack);
        for run in read_runs(&entries) {
            let start = run[0].offset;
            let end = run
                .last()
                .map_or(start, |e| e.offset + u64::from(e.stored_len));
            match self.backend().get_range(&key, start, end - start) {
                Ok(bytes) => {
                    for e in run {
                        let from = (e.offset - start) as usize;
                        each(e, Ok(bytes[from..from + e.stored_len as usize].to_vec()));
                    }
                }
                Err(err) => {
                    let why = err.to_string();
                    for e in run {
                        each(
                            e,
                            Err(Error::corrupt("blob", e.id, format!("unreadable: {why}"))),
                        );
                    }
                }
            }
        }
    }
}

/// Entries of a pack in offset order, grouped into ranges read at once.
pub(crate) fn read_runs(entries: &[BlobEntry]) -> Vec<&[BlobEntry]> {
    const GAP: u64 = 64 << 10;
    const MAX: u64 = 2 << 20;
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        let split = i == entries.len() || {
            let prev = &entries[i - 1];
            let next = &entries[i];
            let prev_end = prev.offset + u64::from(prev.stored_len);
            next.offset > prev_end + GAP
                || next.offset + u64::from(next.stored_len) - entries[start].offset > MAX
        };
        if split {
            runs.push(&entries[start..i]);
            start = i;
        }
    }
    runs
}

/// Decompress and verify a blob's stored bytes.
pub fn decode_blob(loc: &Location, stored: Vec<u8>) -> Result<Vec<u8>> {
    let e = &loc.entry;
    let raw = if e.compressed() {
        decompress(&stored, e.raw_len as usize).map_err(|err| {
            Error::corrupt("blob", e.id, format!("in pack {}: {err}", loc.pack.short()))
        })?
    } else {
        stored
    };
    if raw.len() != e.raw_len as usize {
        return Err(Error::corrupt(
            "blob",
            e.id,
            format!(
                "in pack {}: {} bytes, the index says {}",
                loc.pack.short(),
                raw.len(),
                e.raw_len
            ),
        ));
    }
    if Id::of(&raw) != e.id {
        return Err(Error::corrupt(
            "blob",
            e.id,
            format!(
                "in pack {}: content does not match its id",
                loc.pack.short()
            ),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;

    #[test]
    fn reads_group_nearby_blobs_and_split_at_gaps_and_size() {
        let entry = |offset: u64, len: u32| BlobEntry {
            id: Id::of(&offset.to_le_bytes()),
            kind: BlobKind::Data,
            flags: 0,
            stored_len: len,
            raw_len: len,
            offset,
        };
        let k = 1u64 << 10;
        let entries = vec![
            entry(0, 1024),
            entry(2 * k, 1024),          // small gap: same read
            entry(1024 * k, 1024),       // 1 MiB gap: new read
            entry(1026 * k, 2040 << 10), // same read, but ...
            entry(3070 * k, 8 << 10),    // ... this would pass 2 MiB in one read
        ];
        let sizes: Vec<usize> = read_runs(&entries).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(read_runs(&[]).is_empty());
    }
}
