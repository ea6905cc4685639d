//! Content-defined chunking of a byte stream with FastCDC 2020.
//!
//! FastCDC's own `StreamCDC` copies its buffer down after every chunk; with
//! 64 KiB chunks that is a memmove per chunk. We read large blocks instead,
//! cut the whole block, and carry only the unfinished tail into the next block.

use std::io::{self, Read};
use std::ops::Range;

use fastcdc::v2020::{FastCDC, Normalization};

use crate::ChunkerParams;

/// Smallest read block; always at least twice the maximum chunk size.
const MIN_BLOCK: usize = 1 << 20;

/// Splits streams into chunks whose boundaries depend only on content.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    block: usize,
    /// XORed into FastCDC's gear table (0: the published table). Encrypted
    /// repositories derive it from their key, so that cut points, and with
    /// them chunk lengths, cannot be predicted from known content.
    seed: u64,
}

impl Chunker {
    /// A chunker for these (validated) parameters.
    pub fn new(params: ChunkerParams) -> Chunker {
        Chunker::with_seed(params, 0)
    }

    /// A chunker whose gear table is modified by `seed` (0: none).
    pub fn with_seed(params: ChunkerParams, seed: u64) -> Chunker {
        let block = MIN_BLOCK.max(2 * params.max as usize);
        Chunker {
            params,
            block,
            seed,
        }
    }

    /// The parameters this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Bytes of buffer one `split` call holds.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// Cut `data`, which is a whole stream, into chunk ranges.
    pub fn cut_all(&self, data: &[u8]) -> Vec<Range<usize>> {
        let p = self.params;
        let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
        let cuts = if self.seed == 0 {
            FastCDC::new(data, min, avg, max)
        } else {
            FastCDC::with_level_and_seed(data, min, avg, max, Normalization::Level1, self.seed)
        };
        cuts.map(|c| c.offset..c.offset + c.length).collect()
    }

    /// Read `reader` to the end and call `batch(block, cuts)` for each block
    /// of complete chunks, in stream order. Returns the bytes read.
    /// `size_hint` (the expected stream length) only sizes the buffer, so a
    /// small file does not cost a full block.
    pub fn split<R, E, F>(&self, reader: R, size_hint: u64, mut batch: F) -> Result<u64, E>
    where
        R: Read,
        E: From<io::Error>,
        F: FnMut(&[u8], &[Range<usize>]) -> Result<(), E>,
    {
        let mut blocks = self.blocks(reader, size_hint);
        while let Some(b) = blocks.next_block()? {
            batch(&b.data, &b.cuts)?;
        }
        Ok(blocks.total)
    }

    /// The stream as a sequence of owned blocks of complete chunks, so that
    /// a caller can cut the next block while it processes this one.
    ///
    /// The boundaries are exactly those `cut_all` finds on the whole stream:
    /// a cut found before the end of the buffer does not depend on what comes
    /// after it, so only the last, unterminated chunk of a block is carried over.
    pub fn blocks<R: Read>(&self, reader: R, size_hint: u64) -> Blocks<'_, R> {
        // One byte more than expected, so that a file of the expected size
        // reaches end-of-file in the first fill.
        let first = usize::try_from(size_hint.saturating_add(1)).unwrap_or(self.block);
        Blocks {
            chunker: self,
            reader,
            carry: Vec::new(),
            capacity: first.clamp(4096, self.block),
            eof: false,
            total: 0,
        }
    }
}

/// Complete chunks read from a stream: `data[cuts[i]]` is chunk `i`.
pub struct Block {
    /// The bytes of the chunks, in order.
    pub data: Vec<u8>,
    /// Chunk ranges within `data`.
    pub cuts: Vec<Range<usize>>,
}

/// Iterator-like reader of blocks; see [`Chunker::blocks`].
pub struct Blocks<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    carry: Vec<u8>,
    capacity: usize,
    eof: bool,
    /// Bytes read so far.
    pub total: u64,
}

impl<R: Read> Blocks<'_, R> {
    /// The next block, or `None` at the end of the stream.
    pub fn next_block(&mut self) -> io::Result<Option<Block>> {
        loop {
            if self.eof {
                return Ok(None);
            }
            let mut buf = std::mem::take(&mut self.carry);
            let want = self.capacity.max(buf.len() + 1) - buf.len();
            buf.reserve_exact(want);
            // read_to_end fills spare capacity without zeroing it first.
            let n = (&mut self.reader).take(want as u64).read_to_end(&mut buf)?;
            self.total += n as u64;
            self.eof = n < want;
            if buf.is_empty() {
                return Ok(None);
            }
            let eof = self.eof;
            let mut cuts = self.chunker.cut_all(&buf);
            if !eof {
                if let Some(last) = cuts.pop() {
                    self.carry = buf[last.start..].to_vec();
                    buf.truncate(last.start);
                }
                if self.carry.len() * 2 > self.capacity {
                    // The stream outgrew its size hint: read more at once so
                    // that a block always holds a maximal chunk.
                    self.capacity =
                        (2 * self.capacity).min(self.chunker.block.max(2 * self.carry.len()));
                }
            }
            if !cuts.is_empty() {
                return Ok(Some(Block { data: buf, cuts }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise_n(len: usize, seed: u64) -> Vec<u8> {
        crate::testdata::noise(seed, len)
    }

    fn streamed(chunker: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let a = streamed_with_hint(chunker, data, data.len() as u64);
        assert_eq!(
            a,
            streamed_with_hint(chunker, data, 0),
            "a wrong size hint changes nothing"
        );
        a
    }

    fn streamed_with_hint(chunker: &Chunker, data: &[u8], hint: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        chunker
            .split::<_, io::Error, _>(data, hint, |block, cuts| {
                out.extend(cuts.iter().map(|r| block[r.clone()].to_vec()));
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn streaming_matches_whole_buffer_cuts() {
        let params = ChunkerParams::from_avg(16 << 10).unwrap();
        let chunker = Chunker::new(params);
        let data = noise_n(3 * chunker.block_size() + 12345, 9);
        let whole: Vec<Vec<u8>> = chunker
            .cut_all(&data)
            .into_iter()
            .map(|r| data[r].to_vec())
            .collect();
        assert_eq!(streamed(&chunker, &data), whole);
    }

    #[test]
    fn a_seed_moves_the_cut_points() {
        let data = noise_n(1 << 20, 9);
        let params = ChunkerParams::from_avg(16 << 10).unwrap();
        let plain = Chunker::new(params).cut_all(&data);
        assert_eq!(Chunker::with_seed(params, 0).cut_all(&data), plain);
        let seeded = Chunker::with_seed(params, 0x5eed).cut_all(&data);
        assert_ne!(seeded, plain);
        assert_eq!(seeded.last().unwrap().end, data.len());
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        let chunker = Chunker::new(ChunkerParams::default());
        assert!(streamed(&chunker, &[]).is_empty());
    }

    #[test]
    fn an_insertion_changes_few_chunks() {
        let chunker = Chunker::new(ChunkerParams::from_avg(8 << 10).unwrap());
        let a = noise_n(1 << 20, 3);
        let mut b = a.clone();
        b.splice(500_000..500_000, b"inserted".iter().copied());
        let ca = streamed(&chunker, &a);
        let cb = streamed(&chunker, &b);
        let shared = cb.iter().filter(|c| ca.contains(c)).count();
        assert!(shared + 3 >= cb.len(), "{shared} of {}", cb.len());
    }

    proptest! {
        #[test]
        fn chunks_concatenate_to_input(len in 0usize..200_000, seed in any::<u64>()) {
            let chunker = Chunker::new(ChunkerParams { min: 1024, avg: 4096, max: 16384 });
            let data = noise_n(len, seed);
            let chunks = streamed(&chunker, &data);
            prop_assert!(chunks.iter().all(|c| c.len() <= 16384 && !c.is_empty()));
            prop_assert_eq!(chunks.concat(), data);
        }
    }
}
