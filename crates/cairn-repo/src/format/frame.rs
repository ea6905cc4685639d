//! Frames (docs/FORMAT.md 14): consecutive new data blobs whose plain
//! bytes are compressed as one unit, so zstd sees each chunk beside its
//! neighbours instead of alone.
//!
//! [`FrameBuf`] collects members and compresses them ([`FrameBuf::take`],
//! which also checks that the compressed frame decompresses to what went
//! in); [`decode_frame`] and [`member`] are the reader's half.

use std::borrow::Cow;

use cairn_chunk::compress::{decompress, decompresses_to};
use cairn_chunk::{Compression, Id};

use crate::format::pack::{BlobEntry, BlobKind, Frame, FLAG_FRAME, FLAG_ZSTD};

/// Default upper bound on a frame's plain bytes.
pub const DEFAULT_FRAME_SIZE: u32 = 256 << 10;

/// Blobs waiting to be compressed together.
#[derive(Debug)]
pub struct FrameBuf {
    kind: BlobKind,
    max: usize,
    raw: Vec<u8>,
    members: Vec<(Id, u32)>,
}

/// A closed frame, compressed, not yet sealed or placed in a pack.
#[derive(Debug)]
pub struct Closed {
    /// The bytes to store (before sealing).
    pub stored: Vec<u8>,
    /// Whether `stored` is zstd-compressed.
    pub compressed: bool,
    /// Plain bytes of the whole frame.
    pub raw_len: u32,
    /// Members: id, plain length.
    pub members: Vec<(Id, u32)>,
    kind: BlobKind,
}

impl Closed {
    /// Whether this is a frame of several blobs (a single one is stored as
    /// an ordinary blob).
    pub fn is_frame(&self) -> bool {
        self.members.len() > 1
    }

    /// The pack entries of the members, once the stored (and maybe sealed)
    /// bytes are `stored_len` long at `offset`.
    pub fn entries(&self, offset: u64, stored_len: u32) -> Vec<BlobEntry> {
        let framed = self.is_frame();
        let mut pos = 0u32;
        self.members
            .iter()
            .map(|&(id, len)| {
                let e = BlobEntry {
                    id,
                    kind: self.kind,
                    flags: if self.compressed { FLAG_ZSTD } else { 0 }
                        | if framed { FLAG_FRAME } else { 0 },
                    stored_len,
                    raw_len: len,
                    offset,
                    frame: framed.then_some(Frame {
                        pos,
                        raw_len: self.raw_len,
                    }),
                };
                pos += len;
                e
            })
            .collect()
    }
}

impl FrameBuf {
    /// An empty frame of blobs of `kind` holding at most `max` plain bytes.
    pub fn new(kind: BlobKind, max: u32) -> FrameBuf {
        FrameBuf {
            kind,
            max: max as usize,
            raw: Vec::with_capacity(max as usize),
            members: Vec::new(),
        }
    }

    /// The id of the first blob waiting, to name the frame in errors.
    pub fn first(&self) -> Option<Id> {
        self.members.first().map(|m| m.0)
    }

    /// Whether no blob waits.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a blob of `len` plain bytes fits beside those already here.
    pub fn fits(&self, len: usize) -> bool {
        self.raw.len() + len <= self.max
    }

    /// Add a blob (the caller checked [`FrameBuf::fits`] or that the frame
    /// is empty).
    pub fn push(&mut self, id: Id, raw: &[u8]) {
        self.raw.extend_from_slice(raw);
        self.members.push((id, raw.len() as u32));
    }

    /// Compress what is here and start a new frame. The result is checked
    /// by decompressing it and comparing with the plain bytes, so a bug or
    /// bad memory in the compressor cannot store a frame that does not hold
    /// the blobs the ids name (those ids were computed from the plain bytes).
    pub fn take(&mut self, compression: Compression) -> Result<Closed, String> {
        let members = std::mem::take(&mut self.members);
        let raw_len = u32::try_from(self.raw.len()).map_err(|_| "frame larger than 4 GiB")?;
        let (stored, compressed) = match compression.compress(&self.raw) {
            Some(z) => {
                if !decompresses_to(&z, &self.raw) {
                    return Err("frame does not decompress to its blobs".into());
                }
                // The buffer keeps its capacity for the next frame, so
                // filling it never reallocates.
                self.raw.clear();
                (z, true)
            }
            None => {
                let fresh = Vec::with_capacity(self.max);
                (std::mem::replace(&mut self.raw, fresh), false)
            }
        };
        Ok(Closed {
            stored,
            compressed,
            raw_len,
            members,
            kind: self.kind,
        })
    }
}

/// The plain bytes of a frame from its stored (already opened) bytes.
pub fn decode_frame(
    opened: Cow<'_, [u8]>,
    compressed: bool,
    raw_len: u32,
) -> Result<Vec<u8>, String> {
    let plain = if compressed {
        decompress(&opened, raw_len as usize).map_err(|e| e.to_string())?
    } else {
        opened.into_owned()
    };
    if plain.len() != raw_len as usize {
        return Err(format!(
            "frame holds {} bytes, the index says {raw_len}",
            plain.len()
        ));
    }
    Ok(plain)
}

/// A member's plain bytes inside its decoded frame (not yet checked
/// against its id).
pub fn member<'a>(frame: &'a [u8], e: &BlobEntry) -> Result<&'a [u8], String> {
    let f = e.frame.ok_or("not a frame member")?;
    if frame.len() != f.raw_len as usize {
        return Err(format!(
            "frame holds {} bytes, the index says {}",
            frame.len(),
            f.raw_len
        ));
    }
    let start = f.pos as usize;
    start
        .checked_add(e.raw_len as usize)
        .and_then(|end| frame.get(start..end))
        .ok_or_else(|| "lies outside its frame".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{encode_trailer, parse_pack, PACK3_MAGIC};
    use proptest::prelude::*;

    fn blobs() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(0u8..6, 0..3000), 1..12)
    }

    proptest! {
        #[test]
        fn frame_members_decode_to_what_went_in(blobs in blobs(), z in any::<bool>()) {
            let mut f = FrameBuf::new(BlobKind::Data, 1 << 20);
            for b in &blobs {
                prop_assert!(f.fits(b.len()));
                f.push(Id::of(b), b);
            }
            let c = f.take(if z { Compression::Zstd(3) } else { Compression::None }).unwrap();
            prop_assert!(f.is_empty());
            let entries = c.entries(16, c.stored.len() as u32);
            prop_assert_eq!(entries.len(), blobs.len());
            let plain = decode_frame(Cow::Borrowed(&c.stored), c.compressed, c.raw_len).unwrap();
            for (e, b) in entries.iter().zip(&blobs) {
                prop_assert_eq!(e.offset, 16);
                if c.is_frame() {
                    prop_assert_eq!(member(&plain, e).unwrap(), &b[..]);
                } else {
                    prop_assert!(e.frame.is_none());
                    prop_assert_eq!(&plain[..], &b[..]);
                }
            }
        }

        #[test]
        fn pack_of_frames_round_trips(blobs in blobs(), single in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut f = FrameBuf::new(BlobKind::Data, 1 << 20);
            for b in &blobs {
                f.push(Id::of(b), b);
            }
            let c = f.take(Compression::Zstd(1)).unwrap();
            let mut data = vec![0u8; 16];
            let mut entries = c.entries(16, c.stored.len() as u32);
            data.extend_from_slice(&c.stored);
            entries.push(BlobEntry {
                id: Id::of(&single),
                kind: BlobKind::Data,
                flags: 0,
                stored_len: single.len() as u32,
                raw_len: single.len() as u32,
                offset: data.len() as u64,
                frame: None,
            });
            data.extend_from_slice(&single);
            data.extend_from_slice(&encode_trailer(&entries));
            prop_assert_eq!(data.ends_with(PACK3_MAGIC), c.is_frame());
            prop_assert_eq!(parse_pack(&data).unwrap(), entries);
        }

        #[test]
        fn members_outside_their_frame_are_rejected(len in 1u32..100, pos in 0u32..200, raw in 0u32..200) {
            let e = BlobEntry {
                id: Id::of(b"x"),
                kind: BlobKind::Data,
                flags: FLAG_FRAME,
                stored_len: 1,
                raw_len: raw,
                offset: 0,
                frame: Some(Frame { pos, raw_len: len }),
            };
            let frame = vec![0u8; len as usize];
            prop_assert_eq!(member(&frame, &e).is_ok(), pos + raw <= len);
            prop_assert!(member(&frame[1..], &e).is_err());
        }
    }

    #[test]
    fn a_frame_that_does_not_shrink_is_stored_raw() {
        let mut x = 7u64;
        let random: Vec<u8> = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut f = FrameBuf::new(BlobKind::Data, DEFAULT_FRAME_SIZE);
        f.push(Id::of(&random[..20_000]), &random[..20_000]);
        f.push(Id::of(&random[20_000..]), &random[20_000..]);
        let c = f.take(Compression::Zstd(3)).unwrap();
        assert!(!c.compressed && c.is_frame());
        assert!(c.entries(0, 1).iter().all(|e| e.flags == FLAG_FRAME));
    }
}
