//! Planning the reads of many blobs of many packs, and streaming them: the
//! blobs wanted from a pack are cut into spans, each read with one request
//! whose bytes are handed over as they arrive, so a span may cover a whole
//! pack without the pack ever being in memory.
//!
//! Over a network a request costs a round trip before its first byte,
//! whatever its length; bytes between wanted blobs cost only bandwidth.
//! Restore and the tree prefetch therefore read long spans from a remote
//! store, and split them only to keep every connection busy.

use std::io::Read;

use cairn_chunk::Id;

use super::packs::blob_end;
use super::repository::Repository;
use crate::format::layout::{self, FileType};
use crate::format::pack::BlobEntry;
use crate::{Error, Result};

/// How the wanted blobs of one pack are grouped into requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    /// Blobs with at most this many unwanted bytes between them are read
    /// in one request, the bytes between included.
    pub gap: u64,
    /// One request reads at most this many bytes.
    pub max_span: u64,
}

impl ReadPlan {
    /// A local disk: a request costs a system call, and bytes read for
    /// nothing cost as much as wanted ones. Few large reads, each small
    /// enough for the backend's in-memory default of `open_range`.
    pub const LOCAL: ReadPlan = ReadPlan {
        gap: 64 << 10,
        max_span: 2 << 20,
    };

    /// An object store: a request costs a round trip (20 ms and more from
    /// another region) before its first byte. A gap is read through when
    /// receiving it takes less than that: S3 serves one connection at
    /// about 85 MB/s (AWS's sizing guide), so a 1 MiB gap takes ~12 ms, less
    /// than a 20 ms round trip. Measured on the scale-1 bench tree (issue 10
    /// in docs/PERFORMANCE.md), restoring only its `*.rs` files took 75
    /// GETs and 104.8 MB with a 64 KiB gap, 20 GETs and 110.3 MB with any
    /// gap from 256 KiB to 16 MiB; full and subtree restores made the same
    /// requests from 256 KiB up. So 1 MiB: the fewest requests measured,
    /// with room below what a round trip is worth. (Bytes cost money where
    /// egress is billed, but a 1 MiB gap is rare: frames and packs keep a
    /// directory's files together.) No cap on a span: it is streamed.
    pub const REMOTE: ReadPlan = ReadPlan {
        gap: 1 << 20,
        max_span: u64::MAX,
    };
}

/// Spans shorter than this are not split further to give idle readers
/// work: below it, the round trip of the extra request costs more than
/// the transfer time it saves.
const MIN_PIECE: u64 = 2 << 20;

/// One request's worth of blobs: a pack and its entries in offset order.
pub(crate) type Span = (Id, Vec<BlobEntry>);

/// Cut the wanted blobs of each pack into spans by `plan`, then, while
/// there are fewer spans than `readers`, split the longest in two (never
/// inside a frame, never below `MIN_PIECE` a half) so that every reader
/// has a request to make.
pub(crate) fn plan_spans(
    by_pack: impl IntoIterator<Item = (Id, Vec<BlobEntry>)>,
    plan: ReadPlan,
    readers: usize,
) -> Vec<Span> {
    let mut spans = Vec::new();
    for (pack, mut entries) in by_pack {
        entries.sort_by_key(|e| e.offset);
        spans.extend(cut(&entries, plan).into_iter().map(|r| (pack, r.to_vec())));
    }
    while spans.len() < readers {
        let Some((i, at)) = best_split(&spans) else {
            break;
        };
        let tail = spans[i].1.split_off(at);
        let pack = spans[i].0;
        spans.push((pack, tail));
    }
    spans
}

/// Entries in offset order, grouped into spans read at once: a gap of
/// more than `plan.gap`, or a span past `plan.max_span`, starts a new one.
/// Nothing overflows whatever the entries claim: an entry whose end is past
/// u64 is read on its own (and callers reject it before).
pub(crate) fn cut(entries: &[BlobEntry], plan: ReadPlan) -> Vec<&[BlobEntry]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        let split = i == entries.len() || {
            let (prev, next) = (&entries[i - 1], &entries[i]);
            let joined = blob_end(prev)
                .and_then(|prev_end| prev_end.checked_add(plan.gap))
                .is_some_and(|reach| next.offset <= reach);
            let span = blob_end(next).and_then(|end| end.checked_sub(entries[start].offset));
            !joined || span.is_none_or(|span| span > plan.max_span)
        };
        if split {
            runs.push(&entries[start..i]);
            start = i;
        }
    }
    runs
}

/// The bytes a span reads: from its first blob to the furthest end.
fn span_len(entries: &[BlobEntry]) -> u64 {
    let start = entries.first().map_or(0, |e| e.offset);
    let end = entries.iter().filter_map(blob_end).max().unwrap_or(start);
    end.saturating_sub(start)
}

/// A span to split in two halves of at least `MIN_PIECE`, the longest
/// such, and where: the entry boundary nearest its middle at which no
/// earlier blob reaches past the next one (members of one frame share its
/// bytes and stay together).
fn best_split(spans: &[Span]) -> Option<(usize, usize)> {
    let mut by_len: Vec<(usize, u64)> = spans
        .iter()
        .enumerate()
        .map(|(i, (_, es))| (i, span_len(es)))
        .filter(|&(_, len)| len >= 2 * MIN_PIECE)
        .collect();
    by_len.sort_by_key(|&(_, len)| std::cmp::Reverse(len));
    by_len
        .into_iter()
        .find_map(|(i, len)| split_point(&spans[i].1, len).map(|at| (i, at)))
}

/// Where to split `entries` (reading `len` bytes), if anywhere.
fn split_point(entries: &[BlobEntry], len: u64) -> Option<usize> {
    let start = entries[0].offset;
    let middle = start + len / 2;
    let mut reach = 0u64;
    let mut best: Option<usize> = None;
    for at in 1..entries.len() {
        reach = reach.max(blob_end(&entries[at - 1]).unwrap_or(u64::MAX));
        let offset = entries[at].offset;
        let halves_ok = offset - start >= MIN_PIECE && start + len - offset >= MIN_PIECE;
        if offset < reach || !halves_ok {
            continue;
        }
        let nearer = |b: usize| entries[b].offset.abs_diff(middle) > offset.abs_diff(middle);
        if best.is_none_or(nearer) {
            best = Some(at);
        }
    }
    best
}

impl Repository {
    /// How reads of this repository's packs are grouped into requests.
    pub(crate) fn read_plan(&self) -> ReadPlan {
        if self.backend().remote() {
            ReadPlan::REMOTE
        } else {
            ReadPlan::LOCAL
        }
    }

    /// Read blobs of one pack as [`Repository::read_blobs`] does, in the
    /// spans [`Repository::read_plan`] gives (a span planned by
    /// [`plan_spans`] is one request), each streamed: only the blob (or
    /// frame) at hand is in memory, whatever the span's length.
    ///
    /// A stream holds a connection of the backend while `each` runs, so
    /// `each` must not wait for anything that needs another request (a
    /// rayon join on the pool that runs the reads could start one).
    pub(crate) fn stream_blobs(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        each: impl FnMut(&BlobEntry, Result<Vec<u8>>),
    ) {
        self.stream_stored(pack, entries, self.decoding(*pack, each))
    }

    /// As [`Repository::stream_blobs`], lending each blob's stored bytes.
    pub(crate) fn stream_stored(
        &self,
        pack: &Id,
        entries: &[BlobEntry],
        mut each: impl FnMut(&BlobEntry, Result<&[u8]>),
    ) {
        let entries = self.readable_entries(pack, entries, &mut each);
        let key = layout::key(FileType::Pack, pack);
        for span in cut(&entries, self.read_plan()) {
            self.stream_span(pack, &key, span, &mut each);
        }
    }

    /// One request for `span`, its blobs cut out as the bytes arrive.
    fn stream_span(
        &self,
        pack: &Id,
        key: &str,
        span: &[BlobEntry],
        each: &mut impl FnMut(&BlobEntry, Result<&[u8]>),
    ) {
        let start = span[0].offset;
        let len = span_len(span);
        let mut window = match self.backend().open_range(key, start, len) {
            Ok(reader) => Window::new(reader, start),
            Err(err) => return fail_from(pack, span, &err.to_string(), each),
        };
        for (i, e) in span.iter().enumerate() {
            match window.blob(e) {
                Ok(bytes) => each(e, Ok(bytes)),
                Err(err) => return fail_from(pack, &span[i..], &err.to_string(), each),
            }
        }
    }
}

/// Every entry of `span` fails with `why` (the read broke off before it).
fn fail_from(
    pack: &Id,
    span: &[BlobEntry],
    why: &str,
    each: &mut impl FnMut(&BlobEntry, Result<&[u8]>),
) {
    for e in span {
        let err = Error::corrupt(
            "blob",
            e.id,
            format!("in pack {}: unreadable: {why}", pack.short()),
        );
        each(e, Err(err));
    }
}

/// The bytes of a stream from the start of the blob at hand to the
/// furthest point read. Blobs come in offset order; members of a frame
/// share the frame's bytes, which stay until a blob past them is asked
/// for.
struct Window<'a> {
    reader: Box<dyn Read + Send + 'a>,
    /// `buf` holds the stream's bytes `[start, start + buf.len())`.
    buf: Vec<u8>,
    start: u64,
}

impl<'a> Window<'a> {
    fn new(reader: Box<dyn Read + Send + 'a>, start: u64) -> Window<'a> {
        Window {
            reader,
            buf: Vec::new(),
            start,
        }
    }

    /// The stored bytes of `e`, which starts at or after the previous
    /// blob asked for.
    fn blob(&mut self, e: &BlobEntry) -> std::io::Result<&[u8]> {
        let end = self.start + self.buf.len() as u64;
        if e.offset >= end {
            std::io::copy(
                &mut self.reader.by_ref().take(e.offset - end),
                &mut std::io::sink(),
            )?;
            self.buf.clear();
        } else {
            self.buf.drain(..(e.offset - self.start) as usize);
        }
        self.start = e.offset;
        let len = e.stored_len as usize;
        if self.buf.len() < len {
            let more = len - self.buf.len();
            self.buf.reserve_exact(more);
            let got = self
                .reader
                .by_ref()
                .take(more as u64)
                .read_to_end(&mut self.buf)?;
            if got < more {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the object ended {} bytes early", more - got),
                ));
            }
        }
        Ok(&self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;

    /// A plain data blob of `len` bytes at `offset`.
    fn entry(offset: u64, len: u32) -> BlobEntry {
        BlobEntry {
            id: Id::of(&offset.to_le_bytes()),
            kind: BlobKind::Data,
            flags: 0,
            stored_len: len,
            raw_len: len,
            offset,
            frame: None,
        }
    }

    fn offsets(spans: &[Span]) -> Vec<(Id, Vec<u64>)> {
        spans
            .iter()
            .map(|(p, es)| (*p, es.iter().map(|e| e.offset).collect()))
            .collect()
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn remote_reads_go_through_gaps_up_to_the_plan_and_are_not_capped() {
        let entries = vec![
            entry(0, 1 << 20),
            entry(2 * MIB, 1 << 20),  // 1 MiB gap: same span
            entry(9 * MIB, 1 << 20),  // 6 MiB gap: a new one
            entry(10 * MIB, 6 << 20), // same span, however long
        ];
        let sizes: Vec<usize> = cut(&entries, ReadPlan::REMOTE)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(sizes, vec![2, 2]);
        let local: Vec<usize> = cut(&entries, ReadPlan::LOCAL)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(local, vec![1, 1, 1, 1]);
    }

    #[test]
    fn local_reads_group_nearby_blobs_and_split_at_gaps_and_size() {
        let k = 1u64 << 10;
        let entries = vec![
            entry(0, 1024),
            entry(2 * k, 1024),          // small gap: same read
            entry(1024 * k, 1024),       // 1 MiB gap: new read
            entry(1026 * k, 2040 << 10), // same read, but ...
            entry(3070 * k, 8 << 10),    // ... this would pass 2 MiB in one read
        ];
        let sizes: Vec<usize> = cut(&entries, ReadPlan::LOCAL)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(cut(&[], ReadPlan::LOCAL).is_empty());
    }

    #[test]
    fn a_whole_pack_is_one_span_when_readers_have_other_work() {
        let (a, b) = (Id::of(b"a"), Id::of(b"b"));
        let pack = |n: u64| {
            (0..n)
                .map(|i| entry(i * 40_000, 40_000))
                .collect::<Vec<_>>()
        };
        let spans = plan_spans([(a, pack(400)), (b, pack(400))], ReadPlan::REMOTE, 2);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].1.len(), 400);
    }

    #[test]
    fn spans_split_for_idle_readers_at_blob_boundaries_and_not_below_the_minimum() {
        let a = Id::of(b"a");
        // 16 MiB of 1 MiB blobs in one pack, 16 readers: halves of halves,
        // down to MIN_PIECE.
        let entries: Vec<_> = (0..16).map(|i| entry(i * MIB, 1 << 20)).collect();
        let spans = plan_spans([(a, entries.clone())], ReadPlan::REMOTE, 16);
        assert_eq!(spans.len(), 8, "{:?}", offsets(&spans));
        assert!(spans.iter().all(|(_, es)| span_len(es) == MIN_PIECE));
        let mut all: Vec<u64> = spans
            .iter()
            .flat_map(|(_, es)| es.iter().map(|e| e.offset))
            .collect();
        all.sort();
        assert_eq!(all, entries.iter().map(|e| e.offset).collect::<Vec<_>>());
        // One reader: nothing to split for.
        assert_eq!(plan_spans([(a, entries)], ReadPlan::REMOTE, 1).len(), 1);
    }

    #[test]
    fn members_of_one_frame_are_never_split_apart() {
        let a = Id::of(b"a");
        // Two frames of 3 MiB, each with three members (same offset, same
        // stored bytes): only the boundary between the frames may split.
        let mut entries = Vec::new();
        for frame in 0..2u64 {
            for member in 0..3u8 {
                let mut e = entry(frame * 3 * MIB, 3 << 20);
                e.id = Id::of(&[frame as u8, member]);
                entries.push(e);
            }
        }
        let spans = plan_spans([(a, entries)], ReadPlan::REMOTE, 8);
        assert_eq!(
            offsets(&spans),
            vec![(a, vec![0; 3]), (a, vec![3 * MIB; 3])]
        );
    }

    #[test]
    fn cutting_never_overflows_whatever_the_entries_claim() {
        let entries = vec![
            entry(0, 10),
            entry(u64::MAX - 100, 50),
            entry(u64::MAX - 40, 30),
            entry(u64::MAX - 5, u32::MAX),
            entry(u64::MAX, 1),
        ];
        for plan in [ReadPlan::LOCAL, ReadPlan::REMOTE] {
            let runs = cut(&entries, plan);
            assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), entries.len());
            assert_eq!(runs[0].len(), 1);
        }
        let spans = plan_spans([(Id::of(b"p"), entries)], ReadPlan::REMOTE, 64);
        assert_eq!(spans.iter().map(|(_, es)| es.len()).sum::<usize>(), 5);
    }

    #[test]
    fn a_window_lends_each_blob_skips_gaps_and_keeps_a_shared_frame() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut w = Window::new(Box::new(&data[10..]), 10);
        assert_eq!(w.blob(&entry(10, 5)).unwrap(), &data[10..15]);
        assert_eq!(w.blob(&entry(20, 10)).unwrap(), &data[20..30]);
        // A member of the same frame: the same bytes again.
        assert_eq!(w.blob(&entry(20, 10)).unwrap(), &data[20..30]);
        // Overlapping the one before (only a forged index does that).
        assert_eq!(w.blob(&entry(25, 10)).unwrap(), &data[25..35]);
        assert_eq!(w.blob(&entry(35, 0)).unwrap(), &[] as &[u8]);
        assert_eq!(w.blob(&entry(90, 10)).unwrap(), &data[90..100]);
        let e = w.blob(&entry(100, 1)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
