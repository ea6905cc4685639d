//! Restore: snapshot → walk (depth first, [`plan`]) → directories, special
//! files and links as they come, regular files in batches ([`fill`]) →
//! directory attributes once everything below them is done.
//!
//! Memory and open files stay bounded whatever the tree's shape: the walk
//! holds one tree per level, a batch at most `BATCH_FILES` files and
//! `BATCH_CHUNKS` chunks, and the target is reached through a small cache
//! of directory descriptors ([`dest`]). Into an existing directory a
//! restore rewrites only what differs; `--delete` removes, directory by
//! directory, what the snapshot lacks and the filters do not protect.

mod dest;
mod dry;
mod fill;
mod plan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_chunk::Id;
use rayon::prelude::*;
use serde::Serialize;

use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::ops::fsmeta;
use crate::{Error, Repository, Result};
use dest::{Dest, Found};
use fill::{compare_chunks, BatchFile, Filler};
use plan::{Filters, Step, Walk};

/// Files per batch, at most.
const BATCH_FILES: usize = 4096;
/// Chunks per batch, at most (about 8 GiB of content at the default chunk
/// size); a file with more gets a batch of its own.
const BATCH_CHUNKS: usize = 256 << 10;
/// Finished directories waiting for their batch, at most.
const BATCH_DIRS: usize = 4096;

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Only paths matching one of these (and what is below them).
    pub includes: Vec<String>,
    /// Never paths matching these: neither restored nor deleted.
    pub excludes: Vec<String>,
    /// Remove entries in the target that the snapshot does not have.
    pub delete: bool,
    /// Re-read every restored file and check it against the snapshot.
    pub verify: bool,
    /// Plan and report, write nothing.
    pub dry_run: bool,
}

/// A path that could not be restored, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Path relative to the target (empty: the target itself).
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreOutcome {
    /// Regular files whose content was (or would be) written, completely.
    pub files_written: u64,
    /// Regular files already identical in the target.
    pub files_unchanged: u64,
    /// Regular files that could not be restored (listed in `errors`).
    pub files_failed: u64,
    /// Bytes written into files.
    pub bytes_written: u64,
    /// Bytes of existing files that were already right and left alone.
    pub bytes_unchanged: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks, hard links, FIFOs and devices restored.
    pub others: u64,
    /// Entries removed by `--delete`.
    pub deleted: u64,
    /// Files checked by `--verify`.
    pub verified: u64,
    /// One entry per path that could not be restored.
    pub errors: Vec<Problem>,
    /// With `--dry-run`: what would be written, created or deleted.
    pub planned: Vec<Planned>,
}

/// One change a dry run found.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Planned {
    /// `write` (file content), `create` (directory, link, special file) or `delete`.
    pub action: &'static str,
    /// Path relative to the target.
    pub path: String,
    /// Bytes that would be written.
    pub bytes: u64,
}

/// Progress callbacks.
pub trait RestoreProgress: Sync {
    /// File content written or found identical.
    fn bytes(&self, _n: u64) {}
    /// A file (path relative to the target) is complete.
    fn file_done(&self, _path: &Path) {}
    /// Whether the user asked to stop: the restore then ends with
    /// `Error::Interrupted`, reading no further pack.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Shows nothing.
pub struct NoRestoreProgress;
impl RestoreProgress for NoRestoreProgress {}

/// Counts shared by the threads of a restore.
#[derive(Default)]
pub(crate) struct Counters {
    files_written: AtomicU64,
    files_unchanged: AtomicU64,
    files_failed: AtomicU64,
    bytes_written: AtomicU64,
    bytes_unchanged: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    deleted: AtomicU64,
    verified: AtomicU64,
}

impl Counters {
    fn add_written(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }
    fn add_unchanged(&self, n: u64) {
        self.bytes_unchanged.fetch_add(n, Ordering::Relaxed);
    }
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn into_outcome(self, errors: Vec<Problem>) -> RestoreOutcome {
        RestoreOutcome {
            files_written: self.files_written.into_inner(),
            files_unchanged: self.files_unchanged.into_inner(),
            files_failed: self.files_failed.into_inner(),
            bytes_written: self.bytes_written.into_inner(),
            bytes_unchanged: self.bytes_unchanged.into_inner(),
            dirs: self.dirs.into_inner(),
            others: self.others.into_inner(),
            deleted: self.deleted.into_inner(),
            verified: self.verified.into_inner(),
            errors,
            planned: Vec::new(),
        }
    }
}

/// Problems collected from several threads.
#[derive(Default)]
pub(crate) struct Problems(Mutex<Vec<Problem>>);

impl Problems {
    fn add(&self, rel: &Path, reason: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Problem {
                path: rel.display().to_string(),
                reason,
            });
    }
    fn into_inner(self) -> Vec<Problem> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// Restore `subpath` of a snapshot into `opts.target`.
pub fn restore(
    repo: &Repository,
    snap_id: &Id,
    snap: &Snapshot,
    subpath: &[u8],
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreOutcome> {
    let (root, root_attrs) = plan::root_of(repo, snap_id, snap, subpath)?;
    let filters = Filters::new(&opts.includes, &opts.excludes)?;
    let readers = reader_pool(repo);
    if let Some(tree) = root.subtree {
        // Over a network the walks below would fetch trees one by one.
        match &readers {
            Some(pool) => pool.install(|| repo.prefetch_trees(tree)),
            None => repo.prefetch_trees(tree),
        }
    }
    if opts.dry_run {
        return dry::dry_run(repo, &filters, root, opts);
    }
    let in_place = std::fs::read_dir(&opts.target).is_ok_and(|mut d| d.next().is_some());
    let links = if in_place {
        plan::link_groups(repo, &filters, root.clone())?
    } else {
        plan::LinkGroups::new()
    };
    let dest = Dest::open(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let counters = Counters::default();
    let problems = Problems::default();
    let mut writer = Writer {
        filler: Filler {
            repo,
            dest: &dest,
            as_root: fsmeta::running_as_root(),
            progress,
            counters: &counters,
            problems: &problems,
            links: &links,
            readers: readers.as_ref().map(rayon::ThreadPool::current_num_threads),
            fresh: !in_place,
        },
        filters: &filters,
        opts,
        // Attributes of the target itself only for a whole, unfiltered restore.
        root_attrs: root_attrs && opts.includes.is_empty(),
        stack: Vec::new(),
        batch: Vec::new(),
        batch_chunks: 0,
        links: Vec::new(),
        closed: Vec::new(),
    };
    let walked = writer.run(Walk::new(repo, &filters, root.clone())?);
    writer.flush();
    walked?;
    // A stop asked for during the last batch: its unread packs were skipped.
    if progress.cancelled() {
        return Err(Error::Interrupted);
    }
    if opts.verify {
        verify(repo, &filters, root, &dest, &counters, &problems)?;
    }
    Ok(counters.into_outcome(problems.into_inner()))
}

/// A pool of as many pack readers as the backend wants requests in flight,
/// when that is more than rayon's (one per core).
fn reader_pool(repo: &Repository) -> Option<rayon::ThreadPool> {
    let want = repo.backend().concurrency();
    if want <= rayon::current_num_threads() {
        return None;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(want)
        .build()
        .ok()
}

/// A directory on the walk's current path.
struct OpenDir {
    rel: PathBuf,
    /// It exists in the target as a directory (created or found).
    made: bool,
}

/// Carries out the walk's steps in the target.
struct Writer<'a> {
    filler: Filler<'a>,
    filters: &'a Filters,
    opts: &'a RestoreOptions,
    root_attrs: bool,
    stack: Vec<OpenDir>,
    batch: Vec<BatchFile>,
    batch_chunks: usize,
    /// Hard links waiting for the batch that holds their first name.
    links: Vec<(PathBuf, PathBuf)>,
    /// Directories whose attributes wait for their batch, children first.
    closed: Vec<(PathBuf, Node)>,
}

impl Writer<'_> {
    fn dest(&self) -> &Dest {
        self.filler.dest
    }

    fn problem(&self, rel: &Path, reason: impl std::fmt::Display) {
        self.filler.problems.add(rel, reason.to_string());
    }

    fn run(&mut self, walk: Walk) -> Result<()> {
        for step in walk {
            if self.filler.progress.cancelled() {
                return Err(Error::Interrupted);
            }
            match step? {
                Step::Enter {
                    rel,
                    included,
                    names,
                } => self.enter(rel, included, &names),
                Step::Leave { rel, node } => self.leave(rel, node),
                Step::File { rel, node } => self.file(rel, node),
                Step::Special { rel, node } => self.special(&rel, &node),
                Step::Link { rel, first } => {
                    if self.materialize() {
                        self.links.push((rel, first));
                    }
                }
                Step::Unreadable { rel, reason } => self.problem(&rel, reason),
            }
        }
        Ok(())
    }

    fn enter(&mut self, rel: PathBuf, included: bool, names: &[Vec<u8>]) {
        let root = rel.as_os_str().is_empty();
        self.stack.push(OpenDir {
            rel: rel.clone(),
            made: root,
        });
        if included {
            self.materialize();
        }
        if self.opts.delete {
            self.delete_extras(&rel, included, names);
        }
    }

    /// Make every directory on the current path exist; false if one cannot.
    fn materialize(&mut self) -> bool {
        for i in 0..self.stack.len() {
            if self.stack[i].made {
                continue;
            }
            let rel = self.stack[i].rel.clone();
            match self.dest().ensure_dir(&rel) {
                Ok(_) => {
                    self.stack[i].made = true;
                    Counters::bump(&self.filler.counters.dirs);
                }
                Err(e) => {
                    self.problem(&rel, e);
                    return false;
                }
            }
        }
        true
    }

    /// Remove what the target has in `rel` and the snapshot does not, unless
    /// the filters protect it (excluded, or not included).
    fn delete_extras(&self, rel: &Path, included: bool, names: &[Vec<u8>]) {
        if self.dest().found(rel).ok() != Some(Found::Dir) {
            return;
        }
        let entries = match self.dest().entries(rel) {
            Ok(e) => e,
            Err(e) => return self.problem(rel, e),
        };
        for name in entries {
            if names.binary_search(&name).is_ok() {
                continue;
            }
            let child = rel.join(std::ffi::OsStr::from_bytes(&name));
            if self.filters.selects(&child, included) != Some(true) {
                continue;
            }
            match self.dest().remove(&child) {
                Ok(()) => Counters::bump(&self.filler.counters.deleted),
                Err(e) => self.problem(&child, e),
            }
        }
    }

    fn leave(&mut self, rel: PathBuf, node: Node) {
        let dir = self.stack.pop().expect("balanced enter/leave");
        let root = rel.as_os_str().is_empty();
        if !dir.made || (root && !self.root_attrs) {
            return;
        }
        self.closed.push((rel, node));
        if self.closed.len() >= BATCH_DIRS || (self.batch.is_empty() && self.links.is_empty()) {
            self.flush();
        }
    }

    fn file(&mut self, rel: PathBuf, node: Node) {
        if !self.materialize() {
            return;
        }
        self.batch_chunks += node.content.len();
        self.batch.push(BatchFile { rel, node });
        if self.batch.len() >= BATCH_FILES || self.batch_chunks >= BATCH_CHUNKS {
            self.flush();
        }
    }

    fn special(&mut self, rel: &Path, node: &Node) {
        if !self.materialize() {
            return;
        }
        let as_root = self.filler.as_root;
        match node.kind {
            NodeKind::Socket => return, // recorded, never recreated
            NodeKind::CharDev | NodeKind::BlockDev if !as_root => {
                return self.problem(rel, "device node not created: restoring devices needs root");
            }
            _ => {}
        }
        let made = self
            .dest()
            .remove(rel)
            .and_then(|_| self.dest().make_special(rel, node))
            .and_then(|_| self.dest().apply_special(rel, node, as_root));
        match made {
            Ok(()) => Counters::bump(&self.filler.counters.others),
            Err(e) => self.problem(rel, e),
        }
    }

    /// Write the batch, then its hard links, then the directories that
    /// closed meanwhile (children before parents).
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_chunks = 0;
        if !batch.is_empty() {
            self.filler.fill(&batch);
        }
        for (rel, first) in std::mem::take(&mut self.links) {
            self.link(&rel, &first);
        }
        for (rel, node) in std::mem::take(&mut self.closed) {
            if let Err(e) = self.dest().apply_dir(&rel, &node, self.filler.as_root) {
                self.problem(&rel, e);
            }
        }
    }

    fn link(&self, rel: &Path, first: &Path) {
        let dest = self.dest();
        if dest.same_inode(rel, first) {
            Counters::bump(&self.filler.counters.others);
            return;
        }
        match dest.remove(rel).and_then(|_| dest.hard_link(first, rel)) {
            Ok(()) => Counters::bump(&self.filler.counters.others),
            Err(e) => self.problem(rel, e),
        }
    }
}

use std::os::unix::ffi::OsStrExt;

/// Re-read every restored file and compare each chunk's hash.
fn verify(
    repo: &Repository,
    filters: &Filters,
    root: Node,
    dest: &Dest,
    counters: &Counters,
    problems: &Problems,
) -> Result<()> {
    let mut files = Vec::new();
    let check = |files: &mut Vec<(PathBuf, Node)>| {
        files.par_iter().for_each(|(rel, node)| {
            if verify_file(repo, dest, rel, node) {
                Counters::bump(&counters.verified);
            } else {
                problems.add(
                    rel,
                    "verification failed: content differs from the snapshot".into(),
                );
            }
        });
        files.clear();
    };
    for step in Walk::new(repo, filters, root)? {
        if let Step::File { rel, node } = step? {
            files.push((rel, node));
            if files.len() >= BATCH_FILES {
                check(&mut files);
            }
        }
    }
    check(&mut files);
    Ok(())
}

fn verify_file(repo: &Repository, dest: &Dest, rel: &Path, node: &Node) -> bool {
    let Ok(file) = dest.open_file(rel, false) else {
        return false;
    };
    compare_chunks(repo.codec(), Some(&file), node).all(|(_, same)| same)
        && file.metadata().is_ok_and(|m| m.len() == node.size)
}
