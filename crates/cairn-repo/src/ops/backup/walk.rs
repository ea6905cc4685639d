//! The walking side of a backup: the calling thread goes through the tree
//! in pre-order, reuses what the parent snapshot says is unchanged, hands
//! files that must be read to rayon and complete directories to the
//! assembler.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn_chunk::{Id, WalkOptions, Walker};
use crossbeam_channel::{bounded, Receiver, Sender};

use super::{
    bump, last_component, BackupOptions, ClosedDir, Ctx, OpenDir, Pending, ProblemKind, DIRS_QUEUED,
};
use crate::format::snapshot::RootMeta;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::ops::fsmeta;
use crate::{Error, Result};

impl Ctx<'_> {
    /// Walk every path and return the root tree id and, for a single
    /// directory, its attributes.
    pub(super) fn run(&self, opts: &BackupOptions) -> Result<(Id, Option<RootMeta>)> {
        std::thread::scope(|ts| {
            let (dir_tx, dir_rx) = bounded::<ClosedDir>(DIRS_QUEUED);
            let assembler = ts.spawn(move || self.assemble(&dir_rx));
            let result = rayon::in_place_scope(|rs| self.walk_all(rs, opts, &dir_tx));
            drop(dir_tx);
            let assembled = assembler.join();
            let (top, root_meta) = result?;
            assembled.map_err(|_| Error::Internal("the tree assembler panicked"))?;
            let id = top
                .recv()
                .map_err(|_| self.fatal_or("tree assembly stopped"))?;
            Ok((id, root_meta))
        })
    }

    fn fatal_or(&self, what: &'static str) -> Error {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Error::Internal(what))
    }

    fn walk_all<'s>(
        &'s self,
        rs: &rayon::Scope<'s>,
        opts: &BackupOptions,
        dir_tx: &Sender<ClosedDir>,
    ) -> Result<(Receiver<Id>, Option<RootMeta>)> {
        if let [single] = opts.paths.as_slice() {
            let meta = std::fs::symlink_metadata(single).map_err(|e| Error::io(single, e))?;
            if meta.is_dir() {
                // A single directory: its contents are the snapshot's root.
                let prev = Node {
                    kind: NodeKind::Dir,
                    subtree: opts.parent.as_ref().map(|p| p.1.tree),
                    ..Node::default()
                };
                let pending = self.walk_path(rs, single, &opts.walk, Some(&prev), dir_tx)?;
                let Pending::Dir(node, rx) = pending else {
                    unreachable!("a directory walks to a directory")
                };
                let root = RootMeta {
                    mode: node.mode,
                    uid: node.uid,
                    gid: node.gid,
                    mtime_sec: node.mtime.sec,
                    mtime_nsec: node.mtime.nsec,
                };
                return Ok((rx, Some(root)));
            }
        }
        // Several paths: the root is synthetic, one entry per path.
        let prev_root = match &opts.parent {
            Some((_, p)) => Some(self.repo.load_tree(&p.tree)?),
            None => None,
        };
        let mut children = Vec::new();
        for path in &opts.paths {
            let name = last_component(path);
            let prev = prev_root.as_ref().and_then(|t| t.find(&name));
            children.push(self.walk_path(rs, path, &opts.walk, prev, dir_tx)?);
        }
        let prev = opts.parent.as_ref().map(|p| p.1.tree).zip(prev_root);
        Ok((self.close(children, prev, dir_tx)?, None))
    }

    /// Hand a complete directory to the assembler; returns where its tree id will arrive.
    fn close(
        &self,
        children: Vec<Pending>,
        prev: Option<(Id, Tree)>,
        dir_tx: &Sender<ClosedDir>,
    ) -> Result<Receiver<Id>> {
        let (reply, rx) = bounded(1);
        dir_tx
            .send(ClosedDir {
                children,
                prev,
                reply,
            })
            .map_err(|_| self.fatal_or("tree assembler stopped"))?;
        Ok(rx)
    }

    /// Walk one source path; returns the pending node for the path itself.
    fn walk_path<'s>(
        &'s self,
        rs: &rayon::Scope<'s>,
        root: &Path,
        walk: &WalkOptions,
        prev: Option<&Node>,
        dir_tx: &Sender<ClosedDir>,
    ) -> Result<Pending> {
        let walker = Walker::new(root, walk).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut stack: Vec<OpenDir> = Vec::new();
        let mut top: Option<Pending> = None;
        for item in walker {
            let entry = match item {
                Ok(e) => e,
                Err(cairn_chunk::WalkError::Io {
                    path,
                    source,
                    depth: 0,
                }) => {
                    return Err(Error::io(path, source));
                }
                Err(cairn_chunk::WalkError::Io { path, source, .. }) => {
                    self.problem(&path, ProblemKind::Unreadable, source.to_string());
                    continue;
                }
                Err(e) => return Err(Error::Invalid(e.to_string())),
            };
            while stack.len() > entry.depth {
                self.pop_dir(&mut stack, &mut top, dir_tx)?;
            }
            let name = if entry.depth == 0 {
                last_component(root)
            } else {
                entry
                    .path
                    .file_name()
                    .map_or_else(Vec::new, |n| n.as_bytes().to_vec())
            };
            let prev_node = match stack.last() {
                Some(parent) => parent.prev.as_ref().and_then(|(_, t)| t.find(&name)),
                None => prev,
            };
            let node = match fsmeta::node_from(&entry.path, &name, &entry.meta) {
                Ok(n) => n,
                Err(e) => {
                    self.problem(&entry.path, ProblemKind::Unreadable, e.to_string());
                    continue;
                }
            };
            let pending = match node.kind {
                NodeKind::Dir => {
                    bump(&self.counters.dirs, 1);
                    let prev_tree = self.prev_subtree(prev_node, &entry.path);
                    stack.push(OpenDir {
                        node,
                        prev: prev_tree,
                        children: Vec::new(),
                    });
                    continue;
                }
                NodeKind::File => self.file(rs, entry.path, node, prev_node),
                _ => {
                    bump(&self.counters.others, 1);
                    self.progress.entry_done();
                    Pending::Ready(node)
                }
            };
            match stack.last_mut() {
                Some(parent) => parent.children.push(pending),
                None => top = Some(pending),
            }
            if self.progress.cancelled() {
                self.fail(Error::Interrupted);
            }
            if self
                .fatal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                break;
            }
        }
        while !stack.is_empty() {
            self.pop_dir(&mut stack, &mut top, dir_tx)?;
        }
        top.ok_or_else(|| Error::NothingToBackUp(root.to_path_buf()))
    }

    fn pop_dir(
        &self,
        stack: &mut Vec<OpenDir>,
        top: &mut Option<Pending>,
        dir_tx: &Sender<ClosedDir>,
    ) -> Result<()> {
        let dir = stack.pop().expect("stack not empty");
        let rx = self.close(dir.children, dir.prev, dir_tx)?;
        self.progress.entry_done();
        let pending = Pending::Dir(dir.node, rx);
        match stack.last_mut() {
            Some(parent) => parent.children.push(pending),
            None => *top = Some(pending),
        }
        Ok(())
    }

    /// The parent snapshot's tree for a directory, if it had one there.
    fn prev_subtree(&self, prev: Option<&Node>, path: &Path) -> Option<(Id, Tree)> {
        let node = prev.filter(|n| n.kind == NodeKind::Dir)?;
        let id = node.subtree?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some((id, t)),
            Err(e) => {
                // Not fatal: the directory is simply read in full.
                self.problem(path, ProblemKind::ParentTreeUnreadable, e.to_string());
                None
            }
        }
    }

    /// A regular file: reuse the parent's chunk list if unchanged, else read it.
    fn file<'s>(
        &'s self,
        rs: &rayon::Scope<'s>,
        path: PathBuf,
        mut node: Node,
        prev: Option<&Node>,
    ) -> Pending {
        bump(&self.counters.total_bytes, node.size);
        if let Some(p) = prev.filter(|p| unchanged(p, &node) && self.reusable(&p.content)) {
            bump(&self.counters.files_unmodified, 1);
            node.content = p.content.clone();
            // Setting or removing an xattr changes the ctime, so the same
            // ctime means the same xattrs: one syscall less per file.
            node.xattrs = p.xattrs.clone();
            self.progress.entry_done();
            return Pending::Ready(node);
        }
        bump(
            if prev.is_some() {
                &self.counters.files_changed
            } else {
                &self.counters.files_new
            },
            1,
        );
        let (tx, rx) = bounded(1);
        // Blocks while FILES_IN_FLIGHT files are being read.
        let _ = self.tokens.0.send(());
        rs.spawn(move |_| {
            let out = self.read_file(&path, node);
            let _ = self.tokens.1.recv();
            self.progress.entry_done();
            let _ = tx.send(out);
        });
        Pending::File(rx)
    }
}

/// The parent's node describes the same file content: same size, mtime,
/// ctime and inode (ctime catches changes that restore an old mtime).
fn unchanged(prev: &Node, now: &Node) -> bool {
    prev.kind == NodeKind::File
        && prev.size == now.size
        && prev.mtime == now.mtime
        && prev.ctime == now.ctime
        && prev.inode == now.inode
}
