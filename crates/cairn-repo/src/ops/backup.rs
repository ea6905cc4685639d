//! Backup: walk → read → chunk → hash → (already stored?) → compress → pack →
//! upload → index segment → snapshot.
//!
//! Three kinds of thread take part. The calling thread walks the tree in
//! pre-order and spawns one rayon job per file that must be read; the jobs
//! chunk, hash and compress (in parallel inside a big file, too) and add new
//! blobs to the packer. An assembler thread receives each directory once it
//! is complete, waits for its files, encodes its tree and stores it. The
//! uploader thread verifies and writes finished packs. Bounded channels and a
//! limit on files in flight keep memory flat whatever the tree looks like.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cairn_chunk::{ChunkOut, Chunker, FileChunker, Id, WalkOptions, Walker};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::format::pack::BlobKind;
use crate::format::segment::Segment;
use crate::format::snapshot::{RootMeta, Snapshot, Summary};
use crate::format::tree::{ChunkRef, Node, NodeKind, Timestamp, Tree};
use crate::ops::fsmeta;
use crate::store::lock::BackupLock;
use crate::store::packer::{Packer, Uploader};
use crate::{Error, Repository, Result};

/// Files being read at once, at most; bounds memory and open descriptors.
const FILES_IN_FLIGHT: usize = 64;
/// Completed directories waiting for the assembler, at most.
const DIRS_QUEUED: usize = 256;
/// A file changing under us is re-read this many times before we keep the last read.
const READ_ATTEMPTS: usize = 3;

/// What to back up and how to label it.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Absolute source paths.
    pub paths: Vec<PathBuf>,
    /// Volume name.
    pub volume: String,
    /// Host name.
    pub host: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Snapshot whose unchanged files are not read again.
    pub parent: Option<(Id, Snapshot)>,
    /// Excludes and filesystem boundary.
    pub walk: WalkOptions,
    /// Read and chunk everything, store nothing.
    pub dry_run: bool,
}

impl BackupOptions {
    /// Check names and paths before anything is read or written: a volume
    /// name becomes a directory name in `cairn mount`, and two paths with
    /// the same last component would collide in the snapshot's root.
    pub fn validate(&self) -> Result<()> {
        check_label("volume", &self.volume, true)?;
        check_label("host", &self.host, true)?;
        for tag in &self.tags {
            check_label("tag", tag, false)?;
        }
        if let Err(cairn_chunk::WalkError::Pattern { pattern, reason }) =
            cairn_chunk::PathMatcher::new(&self.walk.excludes)
        {
            return Err(Error::BadPattern {
                option: "--exclude",
                pattern,
                reason,
            });
        }
        if self.paths.len() > 1 {
            let mut names = HashSet::new();
            for path in &self.paths {
                let name = last_component(path);
                if !names.insert(name.clone()) {
                    return Err(Error::DuplicatePathName {
                        path: path.clone(),
                        name: String::from_utf8_lossy(&name).into_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Names users give (volumes, hosts, tags): printable, at most 255 bytes,
/// no comma (lists of them are comma-separated); a volume or host is also
/// one safe path component, since mount shows it as a directory.
pub fn check_label(what: &'static str, value: &str, component: bool) -> Result<()> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > 255 {
        Some("longer than 255 bytes")
    } else if value.chars().any(char::is_control) {
        Some("contains a control character")
    } else if value.contains(',') {
        Some("contains a comma")
    } else if component && !crate::format::tree::is_safe_name(value.as_bytes()) {
        Some("must not be `.` or `..` or contain `/`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Progress callbacks; called from several threads.
pub trait Progress: Sync {
    /// File content was read.
    fn read_bytes(&self, _n: u64) {}
    /// A file, directory or other entry was finished.
    fn entry_done(&self) {}
    /// Something was skipped or is suspicious (one line, names the path).
    fn problem(&self, _msg: &str) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The result of a backup.
#[derive(Debug)]
pub struct BackupOutcome {
    /// The new snapshot's id (`None` for a dry run).
    pub snapshot_id: Option<Id>,
    /// The snapshot (also for a dry run).
    pub snapshot: Snapshot,
    /// Files skipped or read while changing, one line each.
    pub problems: Vec<String>,
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits, and we stop at the first NUL in any case.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The latest snapshot of the same volume, host and paths, to use as parent.
pub fn find_parent(repo: &Repository, opts: &BackupOptions) -> Result<Option<(Id, Snapshot)>> {
    Ok(repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.volume == opts.volume && s.host == opts.host && s.paths == opts.paths))
}

/// An entry whose node is not final yet.
enum Pending {
    Ready(Node),
    File(Receiver<Option<Node>>),
    Dir(Node, Receiver<Id>),
}

/// A directory whose entries are all known (some still being read).
struct ClosedDir {
    children: Vec<Pending>,
    /// The parent snapshot's tree for this directory, and its id.
    prev: Option<(Id, Tree)>,
    reply: Sender<Id>,
}

struct OpenDir {
    node: Node,
    prev: Option<(Id, Tree)>,
    children: Vec<Pending>,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    bytes_read: AtomicU64,
    total_bytes: AtomicU64,
}

struct Ctx<'a> {
    repo: &'a Repository,
    chunker: FileChunker,
    data: Packer,
    trees: Packer,
    claimed: Mutex<HashSet<Id>>,
    counters: Counters,
    problems: Mutex<Vec<String>>,
    fatal: Mutex<Option<Error>>,
    progress: &'a dyn Progress,
    tokens: (Sender<()>, Receiver<()>),
}

/// Run a backup and, unless it is a dry run, commit its snapshot: packs are
/// durable before the index segment that lists them, and the segment before
/// the snapshot that needs it.
pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    opts.validate()?;
    let started = Instant::now();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    // The lock comes before we read the index: a prune that does not see it
    // has already published the index we are about to read (docs/FORMAT.md).
    let _lock = if opts.dry_run {
        None
    } else {
        let lock = BackupLock::acquire(repo.backend().clone(), &opts.host)?;
        repo.refresh_index()?;
        Some(lock)
    };
    let cfg = repo.config();
    let uploader = Uploader::start(repo.backend().clone(), opts.dry_run);
    let ctx = Ctx {
        repo,
        chunker: FileChunker::new(Chunker::new(cfg.chunker), cfg.compression),
        data: uploader.packer(BlobKind::Data, cfg.pack_size as usize),
        trees: uploader.packer(BlobKind::Tree, cfg.pack_size as usize),
        claimed: Mutex::default(),
        counters: Counters::default(),
        problems: Mutex::default(),
        fatal: Mutex::default(),
        progress,
        tokens: bounded(FILES_IN_FLIGHT),
    };
    let walked = ctx.run(opts);
    let flushed = ctx.data.flush().and_then(|_| ctx.trees.flush());
    let mut summary = ctx.counters.summary();
    let fatal = ctx.fatal.into_inner().unwrap_or_else(|p| p.into_inner());
    let problems = ctx.problems.into_inner().unwrap_or_else(|p| p.into_inner());
    drop((ctx.data, ctx.trees));
    let added = uploader.counters.clone();
    let records = uploader.finish();
    let (tree, root) = walked?;
    flushed?;
    if let Some(e) = fatal {
        return Err(e);
    }
    let records = records?;
    summary.blobs_added = added.blobs.load(Ordering::Relaxed);
    summary.bytes_added = added.raw.load(Ordering::Relaxed);
    summary.bytes_added_stored = added.stored.load(Ordering::Relaxed);
    summary.errors = problems.len() as u64;
    if !opts.dry_run && !records.is_empty() {
        repo.write_segment(Segment {
            supersedes: Vec::new(),
            packs: records,
        })?;
    }
    summary.duration_s = started.elapsed().as_secs_f64();
    let snapshot = Snapshot {
        version: 1,
        time,
        host: opts.host.clone(),
        volume: opts.volume.clone(),
        tags: opts.tags.clone(),
        paths: opts.paths.clone(),
        tree,
        parent: opts.parent.as_ref().map(|(id, _)| *id),
        root,
        summary,
        program: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        original: None,
    };
    let snapshot_id = if opts.dry_run {
        None
    } else {
        Some(repo.save_snapshot(&snapshot)?)
    };
    Ok(BackupOutcome {
        snapshot_id,
        snapshot,
        problems,
    })
}

impl Counters {
    fn summary(&self) -> Summary {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            files_new: get(&self.files_new),
            files_changed: get(&self.files_changed),
            files_unmodified: get(&self.files_unmodified),
            dirs: get(&self.dirs),
            others: get(&self.others),
            bytes_read: get(&self.bytes_read),
            total_bytes: get(&self.total_bytes),
            ..Summary::default()
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn last_component(path: &Path) -> Vec<u8> {
    path.file_name()
        .map_or_else(|| b"root".to_vec(), |n| n.as_bytes().to_vec())
}

impl Ctx<'_> {
    /// Walk every path and return the root tree id and, for a single
    /// directory, its attributes.
    fn run(&self, opts: &BackupOptions) -> Result<(Id, Option<RootMeta>)> {
        std::thread::scope(|ts| {
            let (dir_tx, dir_rx) = bounded::<ClosedDir>(DIRS_QUEUED);
            let assembler = ts.spawn(move || self.assemble(&dir_rx));
            let result = rayon::in_place_scope(|rs| self.walk_all(rs, opts, &dir_tx));
            drop(dir_tx);
            let assembled = assembler.join();
            let (top, root_meta) = result?;
            assembled.map_err(|_| Error::Invalid("tree assembler panicked".into()))?;
            let id = top
                .recv()
                .map_err(|_| self.fatal_or("tree assembly stopped"))?;
            Ok((id, root_meta))
        })
    }

    fn fatal_or(&self, what: &str) -> Error {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Error::Invalid(what.into()))
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
                Err(e) => {
                    self.problem(format!("{e} (skipped)"));
                    continue;
                }
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
                    self.problem(format!("{}: {e} (skipped)", entry.path.display()));
                    continue;
                }
            };
            let pending = match node.kind {
                NodeKind::Dir => {
                    bump(&self.counters.dirs, 1);
                    let prev_tree = self.prev_subtree(prev_node);
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
        top.ok_or_else(|| Error::Invalid(format!("{}: nothing to back up", root.display())))
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
    fn prev_subtree(&self, prev: Option<&Node>) -> Option<(Id, Tree)> {
        let node = prev.filter(|n| n.kind == NodeKind::Dir)?;
        let id = node.subtree?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some((id, t)),
            Err(e) => {
                // Not fatal: the directory is simply read in full.
                self.problem(format!(
                    "parent tree for {:?}: {e}",
                    String::from_utf8_lossy(&node.name)
                ));
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
        if let Some(p) = prev.filter(|p| unchanged(p, &node)) {
            bump(&self.counters.files_unmodified, 1);
            node.content = p.content.clone();
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

    /// Read and chunk one file. `None` when it cannot be read (reported).
    fn read_file(&self, path: &Path, mut node: Node) -> Option<Node> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.problem(format!("{}: cannot read: {e} (skipped)", path.display()));
                return None;
            }
        };
        for attempt in 1..=READ_ATTEMPTS {
            let mut content = Vec::with_capacity((node.size / 16384 + 1).min(1 << 16) as usize);
            let size = match self.chunk_file(&mut file, node.size, &mut content) {
                Ok(n) => n,
                Err(ChunkFail::Read(e)) => {
                    self.problem(format!("{}: read failed: {e} (skipped)", path.display()));
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
                    self.problem(format!("{}: {e} (skipped)", path.display()));
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
        self.problem(format!(
            "{}: changed while being read {READ_ATTEMPTS} times; stored the last version read",
            path.display()
        ));
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

    fn fail(&self, e: Error) {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    fn problem(&self, msg: String) {
        self.progress.problem(&msg);
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }

    /// The assembler thread: finish directories in the order they closed
    /// (children before parents), store their trees, report their ids.
    fn assemble(&self, rx: &Receiver<ClosedDir>) {
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
                if prev.nodes == tree.nodes {
                    // Nothing changed below: the parent's tree is this tree.
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
        }
    }

    fn store_tree(&self, tree: &mut Tree) -> Result<Id> {
        let bytes = tree.encode();
        let id = Id::of(&bytes);
        if self.claim(&id) {
            let cfg = self.repo.config();
            match cfg.compression.compress(&bytes) {
                Some(z) => self.trees.add(id, &z, true, bytes.len() as u32)?,
                None => self.trees.add(id, &bytes, false, bytes.len() as u32)?,
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

/// The parent's node describes the same file content: same size, mtime,
/// ctime and inode (ctime catches changes that restore an old mtime).
fn unchanged(prev: &Node, now: &Node) -> bool {
    prev.kind == NodeKind::File
        && prev.size == now.size
        && prev.mtime == now.mtime
        && prev.ctime == now.ctime
        && prev.inode == now.inode
}
