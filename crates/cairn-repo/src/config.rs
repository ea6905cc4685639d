//! The repository config: format version, id, chunker and compression.

use cairn_chunk::{ChunkerParams, Compression, Id};
use serde::{Deserialize, Serialize};

/// Format version this cairn writes and the highest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Default pack size target: packs are closed once they hold this much.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;

/// The `config` file, JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// On-disk format version.
    pub version: u32,
    /// Random id; names the local cache directory.
    pub id: Id,
    /// Chunk sizes, fixed for the repository's life.
    pub chunker: ChunkerParams,
    /// Blob compression, fixed at init.
    pub compression: Compression,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// When the repository was created (RFC 3339).
    pub created: String,
}

impl Config {
    /// A fresh config with a random id.
    pub fn new(chunker: ChunkerParams, compression: Compression) -> Config {
        Config {
            version: FORMAT_VERSION,
            id: random_id(),
            chunker,
            compression,
            pack_size: DEFAULT_PACK_SIZE,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        }
    }
}

/// Random bytes from the kernel, mixed with the time and pid so that a
/// machine without a working `getrandom` still gets unique values.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut seed = [0u8; 32];
    // SAFETY: the buffer is valid for its length; getrandom writes at most that.
    let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    let mut h = blake3::Hasher::new();
    if got < 0 {
        h.update(&std::process::id().to_le_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.update(&now.as_nanos().to_le_bytes());
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        h.update(
            &N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes(),
        );
    }
    h.update(&seed);
    let mut out = [0u8; N];
    h.finalize_xof().fill(&mut out);
    out
}

/// A random id (repository ids, lock runs, salts).
pub fn random_id() -> Id {
    Id(random_bytes())
}
