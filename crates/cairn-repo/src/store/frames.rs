//! A few decoded frames (docs/FORMAT.md 14), so the members of one frame
//! read one after another (a restore reads a pack in offset order, a mount
//! reads a file's chunks in turn) cost one read, one opening and one
//! decompression between them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cairn_chunk::Id;

/// Frames kept: at 256 KiB each, 4 MiB.
const KEEP: usize = 16;

/// A decoded frame under its pack and offset.
type Kept = ((Id, u64), Arc<Vec<u8>>);

/// Least recently used decoded frames, keyed by pack and offset.
#[derive(Default)]
pub struct FrameCache {
    frames: Mutex<VecDeque<Kept>>,
}

impl FrameCache {
    /// The decoded frame at `offset` in `pack`, if kept.
    pub fn get(&self, pack: &Id, offset: u64) -> Option<Arc<Vec<u8>>> {
        let mut frames = self.frames.lock().unwrap_or_else(|p| p.into_inner());
        let i = frames
            .iter()
            .position(|(k, _)| k.0 == *pack && k.1 == offset)?;
        let hit = frames.remove(i)?;
        let plain = hit.1.clone();
        frames.push_front(hit);
        Some(plain)
    }

    /// Keep a decoded frame, forgetting the least recently used.
    pub fn put(&self, pack: &Id, offset: u64, plain: Arc<Vec<u8>>) {
        let mut frames = self.frames.lock().unwrap_or_else(|p| p.into_inner());
        if frames.iter().any(|(k, _)| k.0 == *pack && k.1 == offset) {
            return;
        }
        frames.push_front(((*pack, offset), plain));
        frames.truncate(KEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used_frames() {
        let c = FrameCache::default();
        let p = Id::of(b"pack");
        for i in 0..KEEP as u64 {
            c.put(&p, i, Arc::new(vec![i as u8]));
        }
        assert!(c.get(&p, 0).is_some()); // now the most recent
        c.put(&p, 100, Arc::new(vec![]));
        assert!(c.get(&p, 1).is_none()); // the least recent went
        assert_eq!(c.get(&p, 0).unwrap()[0], 0);
        assert!(c.get(&Id::of(b"other"), 0).is_none());
    }
}
