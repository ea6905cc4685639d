//! The reading side of a backup: chunking files (re-read while they
//! change), claiming chunks the repository lacks, and the assembler thread
//! that turns complete directories into stored trees.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cairn_chunk::{ChunkOut, Id};
use crossbeam_channel::Receiver;

use super::{
    bump, BackupProblem, ClosedDir, Ctx, Pending, ProblemKind, READ_ATTEMPTS, SEGMENT_ENTRIES,
};
use crate::format::segment::Segment;
use crate::format::tree::{ChunkRef, Node, Timestamp, Tree};
use crate::{Error, Result};

impl Ctx<'_> {
    /// Read and chunk one file. `None` when it cannot be read (reported).
    pub(super) fn read_file(&self, path: &Path, mut node: Node) -> Option<Node> {
        self.progress.reading(path);
        node.xattrs = crate::ops::fsmeta::read_xattrs(path);
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.problem(path, ProblemKind::Unreadable, format!("cannot read: {e}"));
                return None;
            }
        };
        for attempt in 1..=READ_ATTEMPTS {
            let mut content = Vec::with_capacity((node.size / 16384 + 1).min(1 << 16) as usize);
            let size = match self.chunk_file(&mut file, node.size, &mut content) {
                Ok(n) => n,
                Err(ChunkFail::Read(e)) => {
                    self.problem(path, ProblemKind::Unreadable, format!("read failed: {e}"));
                    return None;
                }
                Err(ChunkFail::Store(e)) => {
                    self.fail(e);
                    return None;
                }
            };
            node.content = content;
            node.size = size;
            let after = match file.metadata() {
                Ok(m) => m,
                Err(e) => {
                    self.problem(path, ProblemKind::Unreadable, e.to_string());
                    return None;
                }
            };
            let mtime = Timestamp {
                sec: after.mtime(),
                nsec: after.mtime_nsec() as u32,
            };
            let ctime = Timestamp {
                sec: after.ctime(),
                nsec: after.ctime_nsec() as u32,
            };
            if after.len() == size && mtime == node.mtime && ctime == node.ctime {
                return Some(node);
            }
            if attempt == READ_ATTEMPTS {
                // Keep the times measured before this read: they no longer
                // match the file, so the next backup reads it again instead
                // of trusting what may be a torn copy.
                break;
            }
            // The file changed while we read it: read it again from the
            // start, against its new attributes.
            node.mtime = mtime;
            node.ctime = ctime;
            use std::io::Seek;
            if file.rewind().is_err() {
                break;
            }
        }
        self.problem(path, ProblemKind::ChangedWhileRead, String::new());
        Some(node)
    }

    fn chunk_file(
        &self,
        file: &mut File,
        size_hint: u64,
        content: &mut Vec<ChunkRef>,
    ) -> Result<u64, ChunkFail> {
        let claim = |id: &Id| self.claim(id);
        let n = self
            .chunker
            .chunk(&mut *file, size_hint, &claim, |c: ChunkOut| {
                if let Some(s) = &c.stored {
                    self.data
                        .add(c.id, &s.bytes, s.compressed, c.len)
                        .map_err(ChunkFail::Store)?;
                }
                self.progress.read_bytes(u64::from(c.len));
                if self.progress.cancelled() {
                    return Err(ChunkFail::Store(Error::Interrupted));
                }
                content.push(ChunkRef {
                    id: c.id,
                    len: c.len,
                });
                Ok::<(), ChunkFail>(())
            });
        let n = n?;
        bump(&self.counters.bytes_read, n);
        Ok(n)
    }

    /// True exactly once per id not yet in the repository: the caller stores it.
    fn claim(&self, id: &Id) -> bool {
        if !self
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id)
        {
            return false;
        }
        match self.repo.index().contains(id) {
            Ok(known) => !known,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Whether the parent's chunk list can be reused: every chunk is stored
    /// in a pack no prune plan dooms (or this backup stores it). A parent
    /// chosen before our lock, or forgotten meanwhile, may have lost its
    /// data to a plan: then the file is read again.
    pub(super) fn reusable(&self, content: &[ChunkRef]) -> bool {
        self.parent_safe || content.iter().all(|c| self.available(&c.id))
    }

    /// Whether a blob is stored in a pack no plan dooms, or claimed by this
    /// backup (then it is in the index, or this backup stores it). Found
    /// ids are not remembered: the set would grow with the parent's size.
    fn available(&self, id: &Id) -> bool {
        if self
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
        {
            return true;
        }
        match self.repo.index().contains(id) {
            Ok(known) => known,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    pub(super) fn fail(&self, e: Error) {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    pub(super) fn problem(&self, path: &Path, kind: ProblemKind, detail: String) {
        let p = BackupProblem {
            path: path.to_path_buf(),
            kind,
            detail,
        };
        self.progress.problem(&p);
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(p);
    }

    /// The assembler thread: finish directories in the order they closed
    /// (children before parents), store their trees, report their ids.
    pub(super) fn assemble(&self, rx: &Receiver<ClosedDir>) {
        for dir in rx {
            let mut tree = Tree::default();
            for child in dir.children {
                let node = match child {
                    Pending::Ready(n) => Some(n),
                    Pending::File(r) => r.recv().ok().flatten(),
                    Pending::Dir(mut n, r) => r.recv().ok().map(|id| {
                        n.subtree = Some(id);
                        n
                    }),
                };
                tree.nodes.extend(node);
            }
            tree.nodes.sort_by(|a, b| a.name.cmp(&b.name));
            if let Some((id, prev)) = &dir.prev {
                if prev.nodes == tree.nodes && self.available(id) {
                    // Nothing changed below (every file's chunks checked):
                    // the parent's tree is this tree.
                    let _ = dir.reply.send(*id);
                    continue;
                }
            }
            match self.store_tree(&mut tree) {
                Ok(id) => {
                    let _ = dir.reply.send(id);
                }
                Err(e) => self.fail(e),
            }
            self.publish(SEGMENT_ENTRIES);
        }
    }

    /// Once the packs stored so far list `min_entries` blobs, write their
    /// index segment (the local index learns them with it) and forget
    /// their ids: from now on the index answers for them.
    pub(super) fn publish(&self, min_entries: u64) {
        let Some(packs) = self.stored.take(min_entries) else {
            return;
        };
        let ids: Vec<Id> = packs
            .iter()
            .flat_map(|p| p.entries.iter().map(|e| e.id))
            .collect();
        let segment = Segment {
            supersedes: Vec::new(),
            packs,
        };
        match self.repo.write_segment(segment) {
            Ok(_) => {
                let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
                for id in &ids {
                    claimed.remove(id);
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn store_tree(&self, tree: &mut Tree) -> Result<Id> {
        let bytes = tree.encode();
        let id = self.repo.blob_id(&bytes);
        if self.claim(&id) {
            let cfg = self.repo.config();
            // Kept in the local object cache too (remote repositories), so
            // the next backup reads this tree from disk.
            let keep = |stored: &[u8]| self.repo.remember_tree(&id, stored);
            match cfg.compression.compress(&bytes) {
                Some(z) => self
                    .trees
                    .add_with(id, &z, true, bytes.len() as u32, keep)?,
                None => self
                    .trees
                    .add_with(id, &bytes, false, bytes.len() as u32, keep)?,
            }
        }
        Ok(id)
    }
}

/// Why chunking a file stopped: the source could not be read (the file is
/// skipped), or storing failed (the backup fails).
enum ChunkFail {
    Read(std::io::Error),
    Store(Error),
}

impl From<std::io::Error> for ChunkFail {
    fn from(e: std::io::Error) -> ChunkFail {
        ChunkFail::Read(e)
    }
}
