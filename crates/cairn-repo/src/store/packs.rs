//! Reading packs through the repository: a pack's own table, a whole pack,
//! and many blobs of one pack in offset order with few large reads. Every
//! blob is decompressed and checked against its id and length. A frame
//! member is cut out of its decoded frame (docs/FORMAT.md 14), which the
//! repository keeps a few of.

use std::borrow::Cow;

use cairn_chunk::compress::decompress;
use cairn_chunk::Id;

use super::index::Location;
use super::repository::Repository;
use super::spans::{cut, ReadPlan};
use crate::format::crypto::{Codec, Domain};
use crate::format::frame::{decode_frame, member};
use crate::format::layout::{self, FileType};
use crate::format::pack::{
    parse_any_footer, parse_entries_in, parse_table_in, BlobEntry, BlobLimits, Footer, FOOTER_LEN,
};
use crate::{Error, Result};

impl Repository {
    /// A pack's own table of blobs (footer and entries only); `size` is the
    /// pack's size as listed.
    pub fn read_pack_table(&self, pack: &Id, size: u64) -> Result<Vec<BlobEntry>> {
        let key = layout::key(FileType::Pack, pack);
        let corrupt = |e: String| Error::corrupt("pack", pack, e);
        let tail_len = size.min(FOOTER_LEN as u64);
        let tail = self.backend().get_range(&key, size - tail_len, tail_len)?;
        let footer = parse_any_footer(&tail).map_err(corrupt)?;
        let table_len = footer.table_len() as u64;
        let start = size
            .checked_sub(footer.footer_len() as u64 + table_len)
            .ok_or_else(|| corrupt("entry table larger than the pack".into()))?;
        let table = self.backend().get_range(&key, start, table_len)?;
        self.parse_table(pack, footer, table, start)
    }

    /// The entries of a table read from pack `pack` (opened first if the
    /// pack is sealed).
    pub(crate) fn parse_table(
        &self,
        pack: &Id,
        footer: Footer,
        table: Vec<u8>,
        data_len: u64,
    ) -> Result<Vec<BlobEntry>> {
        let corrupt = |e: String| Error::corrupt("pack", pack, e);
        let entries = match footer {
            Footer::Plain { hash, framed, .. } => {
                parse_entries_in(&table, &hash, data_len, framed).map_err(corrupt)?
            }
            Footer::Sealed { framed, .. } => {
                let plain = self
                    .codec()
                    .open(Domain::PackTable, None, table)
                    .map_err(|e| corrupt(format!("entry table: {e}")))?;
                parse_table_in(&plain, data_len, framed).map_err(corrupt)?
            }
        };
        let limits = self.config().blob_limits();
        entries
            .iter()
            .try_for_each(|e| limits.check(e))
            .map_err(corrupt)?;
        Ok(entries)
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
        each: impl FnMut(&BlobEntry, Result<Vec<u8>>),
    ) {
        self.read_ranges(pack, entries, self.decoding(*pack, each))
    }

    /// `each` fed decoded blobs by a reader that lends stored bytes.
    pub(crate) fn decoding<'a>(
        &'a self,
        pack: Id,
        mut each: impl FnMut(&BlobEntry, Result<Vec<u8>>) + 'a,
    ) -> impl FnMut(&BlobEntry, Result<&[u8]>) + 'a {
        move |e, stored| {
            let loc = Location { pack, entry: *e };
            each(e, stored.and_then(|s| self.decode_lent(&loc, s)))
        }
    }

    /// Decode a blob from its stored bytes (for a frame member, the
    /// frame's), using and filling the cache of decoded frames.
    pub(crate) fn decode_stored(&self, loc: &Location, stored: Cow<'_, [u8]>) -> Result<Vec<u8>> {
        let limits = self.config().blob_limits();
        if loc.entry.frame.is_none() {
            return decode_blob(self.codec(), &limits, loc, stored);
        }
        if let Some(frame) = self.frames.get(&loc.pack, loc.entry.offset) {
            return member_of(self.codec(), loc, &frame);
        }
        let frame = std::sync::Arc::new(decode_frame_at(self.codec(), &limits, loc, stored)?);
        let raw = member_of(self.codec(), loc, &frame)?;
        self.frames.put(&loc.pack, loc.entry.offset, frame);
        Ok(raw)
    }

    /// As [`Repository::decode_stored`], for bytes a range read lends.
    /// Every member of a frame arrives with the whole frame's stored bytes:
    /// they are decoded only when the frame is not cached yet, and read in
    /// place (opened or decompressed from the loan, never copied first).
    pub(crate) fn decode_lent(&self, loc: &Location, stored: &[u8]) -> Result<Vec<u8>> {
        match self.cached_member(loc) {
            Some(member) => member,
            None => self.decode_stored(loc, Cow::Borrowed(stored)),
        }
    }

    /// A frame member from the cache of decoded frames, if its frame is
    /// there (a read of the stored bytes is then not needed).
    pub(crate) fn cached_member(&self, loc: &Location) -> Option<Result<Vec<u8>>> {
        loc.entry.frame?;
        let frame = self.frames.get(&loc.pack, loc.entry.offset)?;
        Some(member_of(self.codec(), loc, &frame))
    }

    /// As [`Repository::read_blobs`], but hand over the stored (compressed,
    /// not sealed) bytes, once they are verified: for copying blobs between
    /// packs. A frame member is handed over as its plain bytes (a frame is
    /// never copied whole, its kept members are framed again): its entry
    /// has `FLAG_ZSTD` when the frame is compressed, so callers ask
    /// [`BlobEntry::stored_compressed`].
    pub fn read_stored_blobs(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        mut each: impl FnMut(&BlobEntry, Result<Vec<u8>>),
    ) {
        let limits = self.config().blob_limits();
        self.read_ranges(pack, entries, |e, stored| {
            let loc = Location {
                pack: *pack,
                entry: *e,
            };
            let verified = stored.and_then(|s| {
                if e.frame.is_some() {
                    return self.decode_lent(&loc, s);
                }
                open_blob(self.codec(), &loc, Cow::Borrowed(s), |opened| {
                    decode_opened(self.codec(), &limits, &loc, Cow::Borrowed(&opened))?;
                    Ok(opened.into_owned())
                })?
            });
            each(e, verified)
        })
    }

    pub(crate) fn read_ranges(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        mut each: impl FnMut(&BlobEntry, Result<&[u8]>),
    ) {
        let entries = self.readable_entries(pack, entries, &mut each);
        let key = layout::key(FileType::Pack, pack);
        for run in cut(&entries, ReadPlan::LOCAL) {
            let start = run[0].offset;
            // Not the last blob's end: a blob that starts earlier can end
            // later (an empty blob shares its offset with the next one, and
            // a forged index can make blobs overlap).
            let end = run.iter().filter_map(blob_end).max().unwrap_or(start);
            match self.backend().get_range(&key, start, end - start) {
                Ok(bytes) => {
                    for e in run {
                        let from = (e.offset - start) as usize;
                        each(e, Ok(&bytes[from..from + e.stored_len as usize]));
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

impl Repository {
    /// `entries` in offset order, without those no blob can have (lengths
    /// beyond the repository's limits, or an end past u64), which `each`
    /// gets as damage: a forged index must not choose how much is read or
    /// allocated.
    pub(crate) fn readable_entries(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        each: &mut impl FnMut(&BlobEntry, Result<&[u8]>),
    ) -> Vec<BlobEntry> {
        let limits = self.config().blob_limits();
        let mut entries: Vec<BlobEntry> = entries
            .iter()
            .filter(|e| {
                let why = match limits.check(e) {
                    Err(why) => why,
                    Ok(()) if blob_end(e).is_none() => {
                        format!("offset {} + length {} overflows", e.offset, e.stored_len)
                    }
                    Ok(()) => return true,
                };
                each(
                    e,
                    Err(Error::corrupt(
                        "blob",
                        e.id,
                        format!("in pack {}: {why}", pack.short()),
                    )),
                );
                false
            })
            .copied()
            .collect();
        entries.sort_by_key(|e| e.offset);
        entries
    }
}

/// Where a blob ends in its pack; `None` past u64 (a forged entry).
pub(crate) fn blob_end(e: &BlobEntry) -> Option<u64> {
    e.offset.checked_add(u64::from(e.stored_len))
}

/// Open (if sealed), decompress and verify a blob's stored bytes (for a
/// frame member, its frame's stored bytes, decoded here without a cache);
/// nothing is allocated beyond what `limits` allow.
pub fn decode_blob(
    codec: &Codec,
    limits: &BlobLimits,
    loc: &Location,
    stored: Cow<'_, [u8]>,
) -> Result<Vec<u8>> {
    if loc.entry.frame.is_some() {
        let frame = decode_frame_at(codec, limits, loc, stored)?;
        return member_of(codec, loc, &frame);
    }
    open_blob(codec, loc, stored, |opened| {
        decode_opened(codec, limits, loc, opened)
    })?
}

/// The plain bytes of the frame that holds the member at `loc`.
fn decode_frame_at(
    codec: &Codec,
    limits: &BlobLimits,
    loc: &Location,
    stored: Cow<'_, [u8]>,
) -> Result<Vec<u8>> {
    let e = &loc.entry;
    let corrupt = |err: String| {
        Error::corrupt(
            "blob",
            e.id,
            format!("frame at {} in pack {}: {err}", e.offset, loc.pack.short()),
        )
    };
    limits.check(e).map_err(corrupt)?;
    let frame_len = e.frame.map_or(0, |f| f.raw_len);
    codec
        .open_then(Domain::Frame(e.kind), None, stored, |opened| {
            decode_frame(opened, e.compressed(), frame_len)
        })
        .map_err(|err| corrupt(err.to_string()))?
        .map_err(corrupt)
}

/// Cut a member out of its decoded frame and check it against its id.
fn member_of(codec: &Codec, loc: &Location, frame: &[u8]) -> Result<Vec<u8>> {
    let e = &loc.entry;
    let raw = member(frame, e).map_err(|err| {
        Error::corrupt("blob", e.id, format!("in pack {}: {err}", loc.pack.short()))
    })?;
    if codec.blob_id(raw) != e.id {
        return Err(Error::corrupt(
            "blob",
            e.id,
            format!(
                "in pack {}: content does not match its id",
                loc.pack.short()
            ),
        ));
    }
    Ok(raw.to_vec())
}

/// `then` of a blob's stored bytes, their seal removed and checked.
fn open_blob<R>(
    codec: &Codec,
    loc: &Location,
    stored: Cow<'_, [u8]>,
    then: impl FnOnce(Cow<'_, [u8]>) -> R,
) -> Result<R> {
    let e = &loc.entry;
    codec
        .open_then(Domain::Blob(e.kind), Some(&e.id), stored, then)
        .map_err(|err| Error::corrupt("blob", e.id, format!("in pack {}: {err}", loc.pack.short())))
}

/// Decompress and check a blob against its id and length. The output is
/// never larger than the largest plain blob of its kind (`limits`): the
/// length an entry claims is not trusted with an allocation.
fn decode_opened(
    codec: &Codec,
    limits: &BlobLimits,
    loc: &Location,
    stored: Cow<'_, [u8]>,
) -> Result<Vec<u8>> {
    let e = &loc.entry;
    limits.check(e).map_err(|why| {
        Error::corrupt("blob", e.id, format!("in pack {}: {why}", loc.pack.short()))
    })?;
    let raw = if e.compressed() {
        decompress(&stored, e.raw_len as usize).map_err(|err| {
            Error::corrupt("blob", e.id, format!("in pack {}: {err}", loc.pack.short()))
        })?
    } else {
        stored.into_owned()
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
    if codec.blob_id(&raw) != e.id {
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
    fn a_blob_claiming_more_than_a_chunk_is_corrupt_before_any_allocation() {
        let limits = BlobLimits {
            max_chunk: 1 << 20,
            max_frame: 0,
        };
        let loc = |raw_len: u32, stored_len: u32| Location {
            pack: Id::of(b"pack"),
            entry: BlobEntry {
                id: Id::of(b"blob"),
                kind: BlobKind::Data,
                flags: crate::format::pack::FLAG_ZSTD,
                stored_len,
                raw_len,
                offset: 0,
                frame: None,
            },
        };
        // A zstd frame that would expand to 2 MiB, claimed as such.
        let z = cairn_chunk::Compression::Zstd(1)
            .compress(&vec![0u8; 2 << 20])
            .unwrap();
        let stored_len = z.len() as u32;
        let plain = |raw, stored, z: &[u8]| {
            decode_blob(&Codec::Plain, &limits, &loc(raw, stored), z.into()).unwrap_err()
        };
        let e = plain(2 << 20, stored_len, &z);
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("plain length"), "{e}");
        let e = plain(u32::MAX, stored_len, &z);
        assert!(e.to_string().contains("plain length"), "{e}");
        let e = plain(100, u32::MAX, &[]);
        assert!(e.to_string().contains("stored length"), "{e}");
    }
}
