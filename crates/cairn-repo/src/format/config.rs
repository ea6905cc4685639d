//! The repository config: format version, id, chunker and compression.

use cairn_chunk::{ChunkerParams, Compression, Id};
use serde::{Deserialize, Serialize};

/// The highest format version this cairn reads: 1 (plaintext), 2
/// (encrypted) and 3 (frames, plaintext or encrypted; docs/FORMAT.md 14).
pub const FORMAT_VERSION: u32 = 3;

/// The first format version with frames.
pub const FRAMES_VERSION: u32 = 3;

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
    /// Format 3: upper bound on a frame's plain bytes; 0 (absent): blobs
    /// are compressed one by one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frame_size: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Config {
    /// How large this repository's blobs can be. Data blobs are bounded by
    /// the largest chunk any chunker setting makes, not by this config's
    /// `chunker.max`: `copy` brings chunks cut with another repository's
    /// settings, and keeps their boundaries.
    pub fn blob_limits(&self) -> crate::format::pack::BlobLimits {
        crate::format::pack::BlobLimits {
            max_chunk: cairn_chunk::params::MAX_CHUNK.max(self.chunker.max),
            max_frame: self.frames().unwrap_or(0),
        }
    }

    /// A fresh config with a random id.
    pub fn new(chunker: ChunkerParams, compression: Compression) -> Config {
        Config {
            version: 1,
            id: crate::random::random_id(),
            chunker,
            compression,
            pack_size: DEFAULT_PACK_SIZE,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            frame_size: 0,
        }
    }

    /// The same config in format 3: new data blobs grouped into frames of
    /// up to `frame_size` plain bytes (docs/FORMAT.md 14).
    pub fn with_frames(mut self, frame_size: u32) -> Config {
        self.version = self.version.max(FRAMES_VERSION);
        self.frame_size = frame_size;
        self
    }

    /// The frame size new data blobs are grouped up to, if this
    /// repository's format has frames.
    pub fn frames(&self) -> Option<u32> {
        (self.version >= FRAMES_VERSION && self.frame_size > 0).then_some(self.frame_size)
    }
}
