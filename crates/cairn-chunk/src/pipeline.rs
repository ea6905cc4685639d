//! Chunk one file: cut, hash, and compress only the chunks the caller claims.
//!
//! Within a file the chunks of each read block are hashed and compressed in
//! parallel on rayon's pool; across files the caller runs several
//! `FileChunker::chunk` calls at once. A chunk the caller already has is
//! never compressed.

use std::io::{self, Read};

use rayon::prelude::*;

use crate::chunker::Block;
use crate::{Chunker, Compression, Id, IdHasher};

/// The bytes to store for a newly claimed chunk.
#[derive(Debug)]
pub struct Stored {
    /// Compressed bytes, or the raw bytes when compression did not help.
    pub bytes: Vec<u8>,
    /// Whether `bytes` are zstd-compressed.
    pub compressed: bool,
}

/// One chunk of a file, in file order.
#[derive(Debug)]
pub struct ChunkOut {
    /// BLAKE3 of the chunk's plain bytes.
    pub id: Id,
    /// Plain length.
    pub len: u32,
    /// Present when the caller's `claim` returned true: the bytes to store.
    pub stored: Option<Stored>,
}

/// Cuts, hashes and compresses files with one repository's settings.
#[derive(Clone, Debug)]
pub struct FileChunker {
    chunker: Chunker,
    compression: Compression,
    hasher: IdHasher,
}

impl FileChunker {
    /// A file chunker for these settings.
    pub fn new(chunker: Chunker, compression: Compression) -> FileChunker {
        FileChunker::with_hasher(chunker, compression, IdHasher::Plain)
    }

    /// A file chunker that names chunks with `hasher`.
    pub fn with_hasher(
        chunker: Chunker,
        compression: Compression,
        hasher: IdHasher,
    ) -> FileChunker {
        FileChunker {
            chunker,
            compression,
            hasher,
        }
    }

    /// The chunker in use.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Prepare one chunk: hash it and, if `claim` says the caller wants it
    /// stored, compress it.
    pub fn prepare(&self, raw: &[u8], claim: &(dyn Fn(&Id) -> bool + Sync)) -> ChunkOut {
        let id = self.hasher.id(raw);
        let stored = claim(&id).then(|| match self.compression.compress(raw) {
            Some(bytes) => Stored {
                bytes,
                compressed: true,
            },
            None => Stored {
                bytes: raw.to_vec(),
                compressed: false,
            },
        });
        ChunkOut {
            id,
            len: raw.len() as u32,
            stored,
        }
    }

    /// Read `reader` to its end and hand every chunk to `sink` in order.
    /// `claim(id)` is asked once per chunk occurrence; return true to get the
    /// bytes to store (it must return true at most once per id across all
    /// concurrent calls, or the chunk is stored twice).
    pub fn chunk<R, E, S>(
        &self,
        reader: R,
        size_hint: u64,
        claim: &(dyn Fn(&Id) -> bool + Sync),
        mut sink: S,
    ) -> Result<u64, E>
    where
        R: Read + Send,
        E: From<io::Error>,
        S: FnMut(ChunkOut) -> Result<(), E>,
    {
        let mut blocks = self.chunker.blocks(reader, size_hint);
        let mut current = blocks.next_block()?;
        while let Some(block) = current {
            // Read and cut the next block while this one is hashed and
            // compressed, so one large file keeps every core busy.
            let (outs, next) =
                rayon::join(|| self.prepare_block(&block, claim), || blocks.next_block());
            outs.into_iter().try_for_each(&mut sink)?;
            current = next?;
        }
        Ok(blocks.total)
    }

    fn prepare_block(&self, block: &Block, claim: &(dyn Fn(&Id) -> bool + Sync)) -> Vec<ChunkOut> {
        if block.cuts.len() == 1 {
            vec![self.prepare(&block.data[block.cuts[0].clone()], claim)]
        } else {
            block
                .cuts
                .par_iter()
                .map(|r| self.prepare(&block.data[r.clone()], claim))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkerParams;
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[test]
    fn claims_each_id_once_and_keeps_order() {
        let fc = FileChunker::new(
            Chunker::new(ChunkerParams::from_avg(4096).unwrap()),
            Compression::Zstd(1),
        );
        let block: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let data = [block.clone(), block].concat();
        let seen = Mutex::new(HashSet::new());
        let claim = |id: &Id| seen.lock().unwrap().insert(*id);
        let mut outs = Vec::new();
        let n = fc
            .chunk::<_, io::Error, _>(&data[..], 0, &claim, |c| {
                outs.push(c);
                Ok(())
            })
            .unwrap();
        assert_eq!(n as usize, data.len());
        assert_eq!(
            outs.iter().map(|c| c.len as usize).sum::<usize>(),
            data.len()
        );
        let stored: HashSet<Id> = outs
            .iter()
            .filter(|c| c.stored.is_some())
            .map(|c| c.id)
            .collect();
        let all: HashSet<Id> = outs.iter().map(|c| c.id).collect();
        assert_eq!(stored, all);
        assert!(outs.iter().filter(|c| c.stored.is_some()).count() == all.len());
    }
}
