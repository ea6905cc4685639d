//! A small least-recently-used cache of decompressed chunks, so sequential
//! reads of a file (which the kernel splits into 128 KiB requests) do not
//! decompress the same chunk again and again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use cairn_repo::Id;

/// At most `capacity` chunks, evicting the least recently used.
pub struct ChunkCache {
    capacity: usize,
    map: HashMap<Id, Arc<Vec<u8>>>,
    order: VecDeque<Id>,
}

impl ChunkCache {
    /// An empty cache.
    pub fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The chunk, if cached; marks it recently used.
    pub fn get(&mut self, id: &Id) -> Option<Arc<Vec<u8>>> {
        let hit = self.map.get(id).cloned()?;
        if let Some(pos) = self.order.iter().position(|x| x == id) {
            self.order.remove(pos);
        }
        self.order.push_back(*id);
        Some(hit)
    }

    /// Remember a chunk.
    pub fn put(&mut self, id: Id, data: Arc<Vec<u8>>) {
        if self.map.insert(id, data).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut c = ChunkCache::new(2);
        let (a, b, d) = (Id::of(b"a"), Id::of(b"b"), Id::of(b"d"));
        c.put(a, Arc::new(vec![1]));
        c.put(b, Arc::new(vec![2]));
        assert!(c.get(&a).is_some());
        c.put(d, Arc::new(vec![3]));
        assert!(c.get(&b).is_none(), "b was least recently used");
        assert!(c.get(&a).is_some() && c.get(&d).is_some());
    }
}
