//! cairn-chunk turns a volume tree into content-defined, hashed, compressed chunks.
//!
//! It knows nothing about storage: it walks a tree ([`walk`]), splits file
//! contents at content-defined boundaries ([`chunker`], FastCDC 2020), names
//! each chunk by its BLAKE3 hash ([`Id`]) and compresses the chunks a caller
//! asks for ([`compress`]), hashing and compressing in parallel on rayon's pool
//! ([`pipeline`]). The repository crate decides what is stored where.
//! [`survey`] measures how trees would deduplicate and compress under
//! several settings without storing anything (`cairn bench`).
//!
//! ```
//! use cairn_chunk::{ChunkerParams, Chunker, Id};
//! let data = vec![7u8; 300_000];
//! let chunker = Chunker::new(ChunkerParams::default());
//! let mut total = 0;
//! chunker.split(&data[..], data.len() as u64, |block, cuts| {
//!     for r in cuts { total += r.len(); let _id = Id::of(&block[r.clone()]); }
//!     Ok::<(), std::io::Error>(())
//! }).unwrap();
//! assert_eq!(total, data.len());
//! ```
#![deny(missing_docs)]

pub mod chunker;
pub mod compress;
pub mod id;
pub mod params;
pub mod pipeline;
pub mod survey;
#[cfg(test)]
mod testdata;
pub mod walk;

pub use chunker::Chunker;
pub use compress::{Compression, CompressionError};
pub use id::{Id, IdHasher, IdParseError};
pub use params::{parse_size, ChunkerParams, ParamsError};
pub use pipeline::{ChunkOut, FileChunker};
pub use walk::{Entry, PathMatcher, WalkError, WalkOptions, Walker};
