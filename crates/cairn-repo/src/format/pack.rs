//! Pack files: many blobs in one file, with a trailer that lists them.
//!
//! ```text
//! blob 0 | blob 1 | ... | entry 0 | entry 1 | ... | footer
//! entry  (52 bytes): id[32] kind:u8 flags:u8 reserved:u16 stored_len:u32 raw_len:u32 offset:u64
//! footer (28 bytes): entries_hash[16] entry_count:u32 magic "CRNPACK1"
//! ```
//! All integers little-endian. `entries_hash` is the first 16 bytes of the
//! BLAKE3 hash of the entries, so the trailer can be trusted on its own. A
//! pack is named by the BLAKE3 hash of the whole file.
//!
//! A pack holding frames (format 3, docs/FORMAT.md 14) ends in `CRNPACK3`
//! (or `CRNPACK4` when sealed) and its entries are 60 bytes: the 52 above,
//! then `frame_pos:u32 frame_raw_len:u32`.

use cairn_chunk::Id;

use crate::format::codec::{Reader, Writer};

/// The 8 bytes that end every pack of format 1.
pub const PACK_MAGIC: &[u8; 8] = b"CRNPACK1";
/// Bytes of one trailer entry.
pub const ENTRY_LEN: usize = 52;
/// Bytes of one entry in a table that holds frames.
pub const FRAMED_ENTRY_LEN: usize = 60;
/// The magic of a plaintext pack whose table holds frames.
pub const PACK3_MAGIC: &[u8; 8] = b"CRNPACK3";
/// The magic of a sealed pack whose table holds frames.
pub const PACK4_MAGIC: &[u8; 8] = b"CRNPACK4";
/// Bytes of the footer.
pub const FOOTER_LEN: usize = 28;
/// Random bytes at the start of every pack written since format 1.1, covered
/// by no entry, so that no two packs share a name (docs/FORMAT.md 6).
pub const PACK_SALT_LEN: usize = 16;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// An encoded directory tree.
    Tree = 1,
}

impl BlobKind {
    /// From the byte stored in packs and the index.
    pub fn from_u8(v: u8) -> Option<BlobKind> {
        match v {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// `flags` bit: the stored bytes are zstd-compressed.
pub const FLAG_ZSTD: u8 = 1;
/// `flags` bit: the stored bytes are a frame of several blobs.
pub const FLAG_FRAME: u8 = 2;

/// Where a blob is inside the frame that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Offset of the blob's plain bytes in the frame's plain bytes.
    pub pos: u32,
    /// Plain bytes of the whole frame.
    pub raw_len: u32,
}

/// Whether a table holding `entries` uses the 60-byte layout: exactly when
/// one of them is a frame member, so the encoding stays canonical.
pub fn has_frames(entries: &[BlobEntry]) -> bool {
    entries.iter().any(|e| e.frame.is_some())
}

/// The largest plain tree blob cairn reads. Trees are not chunked, so this
/// is not the chunker's maximum; a tree of this size describes a directory
/// of several million entries.
pub const MAX_TREE_LEN: u32 = 1 << 30;

/// How large a blob of a repository can be, from its chunker's maximum
/// chunk size: what a decoder may allocate for one. An index or pack entry
/// claiming more is corrupt (docs/FORMAT.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLimits {
    /// The chunker's maximum chunk size: the largest plain data blob.
    pub max_chunk: u32,
    /// The repository's frame size (format 3; 0: no frames): the largest
    /// plain frame, since a blob that does not fit one is stored alone.
    pub max_frame: u32,
}

impl BlobLimits {
    /// Bytes sealing adds to a blob (format 2): nonce and tag.
    const SEAL_OVERHEAD: u64 = crate::format::crypto::OVERHEAD as u64;

    /// The largest plain blob of this kind.
    pub fn max_raw(&self, kind: BlobKind) -> u32 {
        match kind {
            BlobKind::Data => self.max_chunk,
            BlobKind::Tree => MAX_TREE_LEN,
        }
    }

    /// The largest stored blob of this kind: the plain maximum, plus what
    /// zstd may add to incompressible input (cairn stores such blobs raw,
    /// but the bound does not rely on it), plus the seal.
    pub fn max_stored(&self, kind: BlobKind) -> u64 {
        Self::stored_bound(self.max_raw(kind))
    }

    /// The largest stored form of `n` plain bytes.
    fn stored_bound(n: u32) -> u64 {
        let n = u64::from(n);
        // ZSTD_COMPRESSBOUND
        let margin = if n < (128 << 10) {
            ((128 << 10) - n) >> 11
        } else {
            0
        };
        n + (n >> 8) + margin + Self::SEAL_OVERHEAD
    }

    /// Why `e` claims lengths no blob of its kind can have, if it does.
    pub fn check(&self, e: &BlobEntry) -> Result<(), String> {
        if let Some(frame) = e.frame {
            self.check_frame(e, frame.raw_len)?;
        } else if u64::from(e.stored_len) > self.max_stored(e.kind) {
            return Err(format!(
                "blob {}: stored length {} exceeds the largest a {} blob can have ({})",
                e.id,
                e.stored_len,
                kind_name(e.kind),
                self.max_stored(e.kind)
            ));
        }
        if e.raw_len > self.max_raw(e.kind) {
            return Err(format!(
                "blob {}: plain length {} exceeds the largest a {} blob can have ({})",
                e.id,
                e.raw_len,
                kind_name(e.kind),
                self.max_raw(e.kind)
            ));
        }
        Ok(())
    }
}

impl BlobLimits {
    /// A frame member's `stored_len` and frame length are its frame's.
    fn check_frame(&self, e: &BlobEntry, frame_len: u32) -> Result<(), String> {
        if frame_len > self.max_frame {
            return Err(format!(
                "blob {}: frame of {frame_len} plain bytes exceeds the repository's frame size ({})",
                e.id, self.max_frame
            ));
        }
        if u64::from(e.stored_len) > Self::stored_bound(self.max_frame) {
            return Err(format!(
                "blob {}: frame stored length {} exceeds the largest a frame can have ({})",
                e.id,
                e.stored_len,
                Self::stored_bound(self.max_frame)
            ));
        }
        Ok(())
    }
}

fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Data => "data",
        BlobKind::Tree => "tree",
    }
}

/// Where one blob is inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// BLAKE3 of the plain bytes.
    pub id: Id,
    /// Data or tree.
    pub kind: BlobKind,
    /// FLAG_ZSTD or 0.
    pub flags: u8,
    /// Bytes in the pack.
    pub stored_len: u32,
    /// Bytes after decompression.
    pub raw_len: u32,
    /// Offset from the start of the pack.
    pub offset: u64,
    /// For a frame member (`flags & FLAG_FRAME`): where it is in the frame;
    /// `offset` and `stored_len` are then the frame's.
    pub frame: Option<Frame>,
}

impl BlobEntry {
    /// Append the entry; `framed` selects the 60-byte layout.
    pub(crate) fn encode(&self, w: &mut Writer, framed: bool) {
        w.id(&self.id);
        w.u8(self.kind as u8);
        w.u8(self.flags);
        w.u16(0);
        w.u32(self.stored_len);
        w.u32(self.raw_len);
        w.u64(self.offset);
        if framed {
            let f = self.frame.unwrap_or(Frame { pos: 0, raw_len: 0 });
            w.u32(f.pos);
            w.u32(f.raw_len);
        }
    }

    /// Read one entry; `framed` selects the 60-byte layout.
    pub(crate) fn decode(r: &mut Reader, framed: bool) -> Result<BlobEntry, String> {
        let id = r.id()?;
        let kind = r.u8()?;
        let kind = BlobKind::from_u8(kind).ok_or_else(|| format!("unknown blob kind {kind}"))?;
        let flags = r.u8()?;
        // Dropping non-zero reserved bytes would make the pack or segment
        // re-encode to other bytes, and so to another name.
        if r.u16()? != 0 {
            return Err(format!("blob {id}: reserved bytes are not 0"));
        }
        let (stored_len, raw_len, offset) = (r.u32()?, r.u32()?, r.u64()?);
        let frame = if framed {
            let (pos, frame_len) = (r.u32()?, r.u32()?);
            if flags & !(FLAG_ZSTD | FLAG_FRAME) != 0 {
                return Err(format!("blob {id}: unknown flags {flags:#x}"));
            }
            if flags & FLAG_FRAME == 0 {
                if pos != 0 || frame_len != 0 {
                    return Err(format!("blob {id}: frame fields of a blob in no frame"));
                }
                None
            } else {
                if frame_len == 0 || u64::from(pos) + u64::from(raw_len) > u64::from(frame_len) {
                    return Err(format!("blob {id}: lies outside its frame"));
                }
                Some(Frame {
                    pos,
                    raw_len: frame_len,
                })
            }
        } else {
            if flags & FLAG_FRAME != 0 {
                return Err(format!("blob {id}: frame flag in a table without frames"));
            }
            None
        };
        Ok(BlobEntry {
            id,
            kind,
            flags,
            stored_len,
            raw_len,
            offset,
            frame,
        })
    }

    /// This blob's share of the stored bytes: all of them for a single
    /// blob, the part its plain bytes are of the frame's for a frame member
    /// (so the members of a frame add up to about its stored bytes).
    pub fn stored_share(&self) -> u64 {
        match self.frame {
            None => u64::from(self.stored_len),
            Some(f) => {
                u64::from(self.stored_len) * u64::from(self.raw_len) / u64::from(f.raw_len.max(1))
            }
        }
    }

    /// Whether the stored bytes must be decompressed.
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_ZSTD != 0
    }

    /// Whether the bytes [`crate::Repository::read_stored_blobs`] hands
    /// over for this blob are compressed: never for a frame member (it is
    /// handed over plain, to be framed again).
    pub fn stored_compressed(&self) -> bool {
        self.compressed() && self.frame.is_none()
    }
}

/// Accumulates blobs into one pack in memory: the reference the codec's
/// property tests check `encode_trailer` and `parse_pack` against (backups
/// write packs through the spool writer in `packer`).
#[cfg(test)]
#[derive(Default)]
pub struct PackBuilder {
    data: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack: its bytes, name and contents.
#[cfg(test)]
pub struct FinishedPack {
    /// BLAKE3 of `bytes`: the pack's name.
    pub id: Id,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Every blob in it.
    pub entries: Vec<BlobEntry>,
}

#[cfg(test)]
impl PackBuilder {
    /// Append a blob.
    pub fn add(&mut self, id: Id, kind: BlobKind, stored: &[u8], compressed: bool, raw_len: u32) {
        self.entries.push(BlobEntry {
            id,
            kind,
            flags: if compressed { FLAG_ZSTD } else { 0 },
            stored_len: stored.len() as u32,
            raw_len,
            offset: self.data.len() as u64,
            frame: None,
        });
        self.data.extend_from_slice(stored);
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write the trailer and name the pack.
    pub fn finish(self) -> FinishedPack {
        let PackBuilder { mut data, entries } = self;
        data.extend_from_slice(&encode_trailer(&entries));
        FinishedPack {
            id: Id::of(&data),
            bytes: data,
            entries,
        }
    }
}

/// The 8 bytes that end every pack of format 2 (encrypted).
pub const PACK2_MAGIC: &[u8; 8] = b"CRNPACK2";
/// Bytes of the format-2 footer: sealed table length, reserved, magic.
pub const FOOTER2_LEN: usize = 16;

/// The entry table alone: 52 bytes per entry, or 60 if any is a frame
/// member ([`has_frames`]).
pub fn encode_entries(entries: &[BlobEntry]) -> Vec<u8> {
    let framed = has_frames(entries);
    let mut w = Writer::default();
    for e in entries {
        e.encode(&mut w, framed);
    }
    w.buf
}

/// The end of a sealed pack: the sealed entry table, then the footer
/// (`CRNPACK4` if the table holds frames, else `CRNPACK2`).
pub fn encode_sealed_trailer(sealed_table: &[u8], framed: bool) -> Vec<u8> {
    let mut w = Writer::default();
    w.raw(sealed_table);
    w.u32(sealed_table.len() as u32);
    w.u32(0);
    w.raw(if framed { PACK4_MAGIC } else { PACK2_MAGIC });
    w.buf
}

/// What a pack's last bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footer {
    /// Format 1: the table of `count` entries is in clear, checked by `hash`.
    Plain {
        /// Entries.
        count: usize,
        /// First 16 bytes of BLAKE3 of the table.
        hash: [u8; 16],
        /// 60-byte entries (`CRNPACK3`).
        framed: bool,
    },
    /// Format 2: the sealed table is `table_len` bytes before the footer.
    Sealed {
        /// Bytes of the sealed table.
        table_len: usize,
        /// 60-byte entries (`CRNPACK4`).
        framed: bool,
    },
}

impl Footer {
    /// Bytes the footer itself takes.
    pub fn footer_len(&self) -> usize {
        match self {
            Footer::Plain { .. } => FOOTER_LEN,
            Footer::Sealed { .. } => FOOTER2_LEN,
        }
    }

    /// Bytes of the table before it.
    pub fn table_len(&self) -> usize {
        match self {
            Footer::Plain { count, framed, .. } => count.saturating_mul(entry_len(*framed)),
            Footer::Sealed { table_len, .. } => *table_len,
        }
    }

    /// Whether the table's entries are 60 bytes.
    pub fn framed(&self) -> bool {
        match self {
            Footer::Plain { framed, .. } | Footer::Sealed { framed, .. } => *framed,
        }
    }
}

/// Bytes of one entry in either layout.
pub fn entry_len(framed: bool) -> usize {
    if framed {
        FRAMED_ENTRY_LEN
    } else {
        ENTRY_LEN
    }
}

/// Read a pack's footer from its last bytes (`tail`: the last
/// `FOOTER_LEN` bytes, or all of a shorter pack).
pub fn parse_any_footer(tail: &[u8]) -> Result<Footer, String> {
    let sealed4 = tail.ends_with(PACK4_MAGIC);
    if tail.len() >= FOOTER2_LEN && (sealed4 || tail.ends_with(PACK2_MAGIC)) {
        let f = &tail[tail.len() - FOOTER2_LEN..];
        let len = u32::from_le_bytes(f[..4].try_into().expect("4")) as usize;
        return Ok(Footer::Sealed {
            table_len: len,
            framed: sealed4,
        });
    }
    if tail.len() >= FOOTER_LEN {
        let footer = &tail[tail.len() - FOOTER_LEN..];
        let framed = footer.ends_with(PACK3_MAGIC);
        let (count, hash) = if framed {
            let mut plain = footer.to_vec();
            plain[20..].copy_from_slice(PACK_MAGIC);
            parse_footer(&plain)?
        } else {
            parse_footer(footer)?
        };
        return Ok(Footer::Plain {
            count,
            hash,
            framed,
        });
    }
    Err("too short to be a pack".into())
}

/// Parse a table already authenticated (format 2: by its seal), checking
/// that every blob lies within the data area.
pub fn parse_table(table: &[u8], data_len: u64) -> Result<Vec<BlobEntry>, String> {
    parse_table_in(table, data_len, false)
}

/// As [`parse_table`], for either layout (`framed`: 60-byte entries, of
/// which at least one must be a frame member).
pub fn parse_table_in(table: &[u8], data_len: u64, framed: bool) -> Result<Vec<BlobEntry>, String> {
    let len = entry_len(framed);
    if table.len() % len != 0 {
        return Err("entry table is not a whole number of entries".into());
    }
    let mut r = Reader::new(table);
    let mut out = Vec::with_capacity(table.len() / len);
    if framed && table.is_empty() {
        return Err("a table of framed entries without frames".into());
    }
    while !r.is_empty() {
        let e = BlobEntry::decode(&mut r, framed)?;
        if e.offset
            .checked_add(u64::from(e.stored_len))
            .is_none_or(|end| end > data_len)
        {
            return Err(format!("blob {} extends past the pack's data", e.id));
        }
        out.push(e);
    }
    if framed && !has_frames(&out) {
        return Err("a table of framed entries without frames".into());
    }
    Ok(out)
}

/// The entry table and footer that end a pack holding `entries`
/// (`CRNPACK3` if any is a frame member, else `CRNPACK1`).
pub fn encode_trailer(entries: &[BlobEntry]) -> Vec<u8> {
    let mut w = Writer::default();
    w.raw(&encode_entries(entries));
    let hash = blake3::hash(&w.buf);
    w.raw(&hash.as_bytes()[..16]);
    w.u32(entries.len() as u32);
    w.raw(if has_frames(entries) {
        PACK3_MAGIC
    } else {
        PACK_MAGIC
    });
    w.buf
}

/// Parse the footer (the last FOOTER_LEN bytes of a pack): the entry count.
pub fn parse_footer(footer: &[u8]) -> Result<(usize, [u8; 16]), String> {
    if footer.len() != FOOTER_LEN || &footer[20..] != PACK_MAGIC {
        return Err("not a cairn pack (bad magic)".into());
    }
    let mut r = Reader::new(footer);
    let hash: [u8; 16] = r.take(16)?.try_into().expect("16");
    Ok((r.u32()? as usize, hash))
}

/// Parse a pack's entry table, checking it against the footer's hash and the
/// pack's size.
pub fn parse_entries(
    table: &[u8],
    hash: &[u8; 16],
    data_len: u64,
) -> Result<Vec<BlobEntry>, String> {
    parse_entries_in(table, hash, data_len, false)
}

/// As [`parse_entries`], for either layout.
pub fn parse_entries_in(
    table: &[u8],
    hash: &[u8; 16],
    data_len: u64,
    framed: bool,
) -> Result<Vec<BlobEntry>, String> {
    if &blake3::hash(table).as_bytes()[..16] != hash {
        return Err("trailer checksum mismatch".into());
    }
    parse_table_in(table, data_len, framed)
}

/// Parse the trailer of a whole pack held in memory.
pub fn parse_pack(bytes: &[u8]) -> Result<Vec<BlobEntry>, String> {
    match split_pack(bytes)? {
        (Footer::Plain { hash, framed, .. }, table, data_len) => {
            parse_entries_in(table, &hash, data_len, framed)
        }
        (Footer::Sealed { .. }, _, _) => Err("the pack is encrypted".into()),
    }
}

/// Locate the table of a whole pack held in memory: its footer, the table's
/// bytes (sealed in format 2), and the length of the data before it.
pub fn split_pack(bytes: &[u8]) -> Result<(Footer, &[u8], u64), String> {
    let tail = &bytes[bytes.len().saturating_sub(FOOTER_LEN)..];
    let footer = parse_any_footer(tail)?;
    let end = bytes
        .len()
        .checked_sub(footer.footer_len())
        .ok_or("too short to be a pack")?;
    let start = end
        .checked_sub(footer.table_len())
        .ok_or("entry table exceeds the pack's size")?;
    Ok((footer, &bytes[start..end], start as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pack_round_trips(blobs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..300), any::<bool>(), any::<bool>()), 0..20)) {
            let mut b = PackBuilder::default();
            for (data, tree, z) in &blobs {
                let kind = if *tree { BlobKind::Tree } else { BlobKind::Data };
                b.add(Id::of(data), kind, data, *z, data.len() as u32 + 1);
            }
            let p = b.finish();
            prop_assert_eq!(p.id, Id::of(&p.bytes));
            let entries = parse_pack(&p.bytes).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, (data, _, _)) in entries.iter().zip(&blobs) {
                let s = e.offset as usize;
                prop_assert_eq!(&p.bytes[s..s + e.stored_len as usize], &data[..]);
            }
        }

        #[test]
        fn damaged_trailer_is_rejected(flip in 0usize..52, data in proptest::collection::vec(any::<u8>(), 1..100)) {
            let mut b = PackBuilder::default();
            b.add(Id::of(&data), BlobKind::Data, &data, false, data.len() as u32);
            let mut bytes = b.finish().bytes;
            let at = bytes.len() - FOOTER_LEN - ENTRY_LEN + flip;
            bytes[at] ^= 0x40;
            prop_assert!(parse_pack(&bytes).is_err());
        }
    }
}
