//! Index segments: the repository's own record of which blob is in which
//! pack, so the local SQLite index is only a cache.
//!
//! ```text
//! magic "CRNINDX1"
//! supersedes_count:u32, supersedes: id[32] each   (segments this one replaces)
//! pack_count:u32
//! per pack: pack_id[32] blob_count:u32 then blob_count pack entries (52 bytes, as in packs)
//! ```
//! A segment is named by the BLAKE3 hash of its bytes. A segment listing
//! any frame member (format 3, docs/FORMAT.md 14) starts `CRNINDX2` and
//! its entries are 60 bytes.

use cairn_chunk::Id;

use crate::format::codec::{Reader, Writer};
use crate::format::pack::{has_frames, BlobEntry, BlobLimits};

/// First bytes of every index segment of format 1.
pub const SEGMENT_MAGIC: &[u8; 8] = b"CRNINDX1";
/// First bytes of a segment whose entries are 60 bytes (it lists frames).
pub const SEGMENT2_MAGIC: &[u8; 8] = b"CRNINDX2";

/// The contents of one pack, as recorded in a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRecord {
    /// Pack name.
    pub pack: Id,
    /// Its blobs.
    pub entries: Vec<BlobEntry>,
}

/// A decoded index segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Segments whose information this one contains; readers ignore them.
    pub supersedes: Vec<Id>,
    /// Packs it describes.
    pub packs: Vec<PackRecord>,
}

impl Segment {
    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let framed = self.packs.iter().any(|p| has_frames(&p.entries));
        let mut w = Writer::default();
        w.raw(if framed {
            SEGMENT2_MAGIC
        } else {
            SEGMENT_MAGIC
        });
        w.u32(self.supersedes.len() as u32);
        for id in &self.supersedes {
            w.id(id);
        }
        w.u32(self.packs.len() as u32);
        for p in &self.packs {
            w.id(&p.pack);
            w.u32(p.entries.len() as u32);
            for e in &p.entries {
                e.encode(&mut w, framed);
            }
        }
        w.buf
    }

    /// Parse a segment.
    pub fn decode(data: &[u8]) -> Result<Segment, String> {
        let mut r = Reader::new(data);
        let framed = match r.take(8)? {
            m if m == SEGMENT_MAGIC => false,
            m if m == SEGMENT2_MAGIC => true,
            _ => return Err("not a cairn index segment (bad magic)".into()),
        };
        let n = r.u32()?;
        let supersedes = (0..n).map(|_| r.id()).collect::<Result<_, _>>()?;
        let n = r.u32()?;
        let mut packs = Vec::new();
        for _ in 0..n {
            let pack = r.id()?;
            let m = r.u32()?;
            let entries = (0..m)
                .map(|_| BlobEntry::decode(&mut r, framed))
                .collect::<Result<_, _>>()?;
            packs.push(PackRecord { pack, entries });
        }
        if !r.is_empty() {
            return Err("trailing bytes after the last pack".into());
        }
        if framed && !packs.iter().any(|p: &PackRecord| has_frames(&p.entries)) {
            return Err("a segment of framed entries without frames".into());
        }
        Ok(Segment { supersedes, packs })
    }

    /// Reject an entry claiming lengths no blob of the repository can have
    /// (`limits`, from its config): a reader would allocate what it claims.
    pub fn check_limits(&self, limits: &BlobLimits) -> Result<(), String> {
        self.packs
            .iter()
            .flat_map(|p| &p.entries)
            .try_for_each(|e| limits.check(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobKind, Frame, FLAG_FRAME, FLAG_ZSTD};
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = BlobEntry> {
        (
            any::<[u8; 32]>(),
            any::<bool>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(id, t, flags, s, r, o, frame)| {
                // A member ends inside a frame whose length is a u32.
                let r = frame.map_or(r, |(pos, _)| r.min(u32::MAX - pos % 1_000_000));
                let frame = frame.map(|(pos, extra)| Frame {
                    pos: pos % 1_000_000,
                    raw_len: (pos % 1_000_000)
                        .saturating_add(r)
                        .saturating_add(extra % 7)
                        .max(1),
                });
                // The frame flag goes with the frame fields; other flag
                // bits are reserved only in tables that hold frames.
                let flags = match frame {
                    Some(_) => FLAG_FRAME | (flags & FLAG_ZSTD),
                    None => flags & !FLAG_FRAME,
                };
                BlobEntry {
                    id: Id(id),
                    kind: if t { BlobKind::Tree } else { BlobKind::Data },
                    flags,
                    stored_len: s,
                    raw_len: r,
                    offset: o,
                    frame,
                }
            })
    }

    #[test]
    fn an_entry_larger_than_any_blob_is_rejected() {
        let limits = BlobLimits {
            max_chunk: 128 << 10,
            max_frame: 256 << 10,
        };
        let entry = |kind, stored_len, raw_len| BlobEntry {
            id: Id::of(b"x"),
            kind,
            flags: 0,
            stored_len,
            raw_len,
            offset: 0,
            frame: None,
        };
        let seg = |e| Segment {
            supersedes: Vec::new(),
            packs: vec![PackRecord {
                pack: Id::of(b"p"),
                entries: vec![e],
            }],
        };
        let ok = [
            entry(BlobKind::Data, 128 << 10, 128 << 10),
            // Sealed and (never, but allowed) zstd's worst case.
            entry(BlobKind::Data, (128 << 10) + (512 + 40), 128 << 10),
            entry(BlobKind::Tree, 4 << 20, 16 << 20),
        ];
        for e in ok {
            assert_eq!(seg(e).check_limits(&limits), Ok(()), "{e:?}");
        }
        let bad = [
            entry(BlobKind::Data, u32::MAX, 100),
            entry(BlobKind::Data, (128 << 10) + 4096, 100),
            entry(BlobKind::Data, 100, (128 << 10) + 1),
            entry(BlobKind::Tree, u32::MAX, 100),
            entry(BlobKind::Tree, 100, u32::MAX),
        ];
        let member = |stored_len, frame_len| BlobEntry {
            flags: crate::format::pack::FLAG_FRAME,
            frame: Some(crate::format::pack::Frame {
                pos: 0,
                raw_len: frame_len,
            }),
            ..entry(BlobKind::Data, stored_len, 100)
        };
        assert_eq!(
            seg(member(200 << 10, 256 << 10)).check_limits(&limits),
            Ok(())
        );
        for e in [member(100, u32::MAX), member(u32::MAX, 256 << 10)] {
            assert!(seg(e).check_limits(&limits).is_err(), "{e:?}");
        }
        for e in bad {
            // Decoding keeps working (the bytes are a valid segment); the
            // repository rejects it with its limits.
            let decoded = Segment::decode(&seg(e).encode()).unwrap();
            let why = decoded.check_limits(&limits).unwrap_err();
            assert!(why.contains("exceeds"), "{why}");
        }
    }

    proptest! {
        #[test]
        fn segment_round_trips(
            sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(entry(), 0..5)), 0..5)
        ) {
            let mut seg = Segment {
                supersedes: sup.into_iter().map(Id).collect(),
                packs: packs.into_iter().map(|(p, entries)| PackRecord { pack: Id(p), entries }).collect(),
            };
            // Flags beyond zstd and frame are rejected in framed tables.
            if seg.packs.iter().any(|p| has_frames(&p.entries)) {
                for e in seg.packs.iter_mut().flat_map(|p| p.entries.iter_mut()) {
                    e.flags &= FLAG_ZSTD | FLAG_FRAME;
                }
            }
            let bytes = seg.encode();
            prop_assert_eq!(&Segment::decode(&bytes).unwrap(), &seg);
            prop_assert!(Segment::decode(&bytes[..bytes.len() - 1]).is_err());
            let framed = seg.packs.iter().any(|p| has_frames(&p.entries));
            prop_assert_eq!(&bytes[..8], if framed { SEGMENT2_MAGIC } else { SEGMENT_MAGIC });
        }

        #[test]
        fn framed_magic_without_frames_is_rejected(entries in proptest::collection::vec(entry(), 0..4)) {
            let entries: Vec<BlobEntry> = entries
                .into_iter()
                .map(|mut e| {
                    e.frame = None;
                    e.flags &= FLAG_ZSTD;
                    e
                })
                .collect();
            let seg = Segment { supersedes: vec![], packs: vec![PackRecord { pack: Id([1; 32]), entries: entries.clone() }] };
            // Written by hand in the 60-byte layout: not canonical.
            let mut w = Writer::default();
            w.raw(SEGMENT2_MAGIC);
            w.u32(0);
            w.u32(1);
            w.id(&seg.packs[0].pack);
            w.u32(entries.len() as u32);
            for e in &entries {
                e.encode(&mut w, true);
            }
            prop_assert!(Segment::decode(&w.buf).is_err());
        }
    }
}
