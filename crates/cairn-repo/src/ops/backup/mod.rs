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
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cairn_chunk::{Chunker, FileChunker, Id, WalkOptions};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::format::pack::BlobKind;
use crate::format::segment::Segment;
use crate::format::snapshot::{DockerVolume, Snapshot, Summary};
use crate::format::tree::{Node, Tree};
use crate::store::packer::{Packer, Stored, Uploader};
use crate::{Error, Repository, Result};

/// Files being read at once, at most; bounds memory and open descriptors.
const FILES_IN_FLIGHT: usize = 64;
/// Completed directories waiting for the assembler, at most.
const DIRS_QUEUED: usize = 256;
/// A file changing under us is re-read this many times before we keep the last read.
const READ_ATTEMPTS: usize = 3;
/// Blobs stored before their packs are published in an index segment of
/// their own, mid-backup: the records, and the ids claimed for them, then
/// leave memory, which stays flat however many new blobs a backup stores.
const SEGMENT_ENTRIES: u64 = 64 << 10;

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
    /// Snapshot whose unchanged files are not read again. Its chunk lists
    /// and trees are reused only where the index, read after the backup's
    /// lock is written, says they are stored and doomed by no prune plan.
    pub parent: Option<(Id, Snapshot)>,
    /// Without `parent`: use the latest snapshot of the same volume, host
    /// and paths ([`find_parent`]), chosen after the lock is written (as
    /// `cairn backup` does).
    pub latest_parent: bool,
    /// Excludes and filesystem boundary.
    pub walk: WalkOptions,
    /// Read and chunk everything, store nothing.
    pub dry_run: bool,
    /// For a Docker named volume: how it was made, recorded in the snapshot.
    pub docker: Option<DockerVolume>,
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
    /// A file is being read.
    fn reading(&self, _path: &Path) {}
    /// Something was skipped or is suspicious.
    fn problem(&self, _problem: &BackupProblem) {}
    /// Whether the user asked to stop: the backup then ends with
    /// `Error::Interrupted`, writing no snapshot (index segments it wrote
    /// already list packs nothing references yet; `prune` frees them).
    fn cancelled(&self) -> bool {
        false
    }
}

/// What went wrong with one path; the backup goes on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackupProblem {
    /// The source path.
    pub path: PathBuf,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The underlying error, if any.
    pub detail: String,
}

/// The kinds of problem a backup reports (each makes the exit code 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// It could not be read: left out of the snapshot.
    Unreadable,
    /// It kept changing while it was read: the last version read is stored,
    /// and the next backup reads it again.
    ChangedWhileRead,
    /// The parent snapshot's tree for this directory could not be read: the
    /// directory was read in full.
    ParentTreeUnreadable,
}

impl std::fmt::Display for BackupProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match self.kind {
            ProblemKind::Unreadable => write!(f, "{path}: {} (skipped)", self.detail),
            ProblemKind::ChangedWhileRead => write!(
                f,
                "{path}: changed while being read {READ_ATTEMPTS} times; stored the last version read"
            ),
            ProblemKind::ParentTreeUnreadable => write!(
                f,
                "{path}: the parent snapshot's tree cannot be read ({}); read in full",
                self.detail
            ),
        }
    }
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
    /// Files skipped or read while changing.
    pub problems: Vec<BackupProblem>,
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
    /// Packs stored that no segment lists yet.
    stored: std::sync::Arc<Stored>,
    /// Ids this backup stores (or found stored) since its last segment.
    claimed: Mutex<HashSet<Id>>,
    /// The parent's data is known to stay stored while this backup runs,
    /// so its chunk lists are reused without asking the index per chunk.
    parent_safe: bool,
    counters: Counters,
    problems: Mutex<Vec<BackupProblem>>,
    fatal: Mutex<Option<Error>>,
    progress: &'a dyn Progress,
    tokens: (Sender<()>, Receiver<()>),
}

/// Whether every blob the parent references stays stored while this
/// backup (holding its lock, index refreshed) runs: the parent snapshot
/// still exists now and no prune plan dooms any pack. A prune never plans
/// away data of an existing snapshot, and any plan made from now on waits
/// for our lock (docs/FORMAT.md section 11). Otherwise each reused chunk
/// is checked against the index.
fn parent_is_safe(repo: &Repository, opts: &BackupOptions) -> Result<bool> {
    let Some((id, _)) = &opts.parent else {
        return Ok(true);
    };
    if repo.plans_pending() {
        return Ok(false);
    }
    Ok(repo.snapshot_ids()?.contains(id))
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
        Some(repo.lock_for_backup(&opts.host)?)
    };
    let with_parent;
    let opts = if opts.parent.is_none() && opts.latest_parent {
        with_parent = BackupOptions {
            parent: find_parent(repo, opts)?,
            ..opts.clone()
        };
        &with_parent
    } else {
        opts
    };
    let parent_safe = _lock.is_some() && parent_is_safe(repo, opts)?;
    let cfg = repo.config();
    let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), opts.dry_run);
    let ctx = Ctx {
        repo,
        chunker: FileChunker::with_hasher(
            Chunker::with_seed(cfg.chunker, repo.codec().chunker_seed()),
            // With frames, the packer compresses whole frames: chunks
            // reach it plain.
            if cfg.frames().is_some() {
                cairn_chunk::Compression::None
            } else {
                cfg.compression
            },
            repo.codec().id_hasher(),
        ),
        data: uploader
            .packer(BlobKind::Data, cfg.pack_size as usize)
            .framed(cfg),
        trees: uploader.packer(BlobKind::Tree, cfg.pack_size as usize),
        stored: uploader.stored.clone(),
        claimed: Mutex::default(),
        parent_safe,
        counters: Counters::default(),
        problems: Mutex::default(),
        fatal: Mutex::default(),
        progress,
        tokens: bounded(FILES_IN_FLIGHT),
    };
    let walked = ctx.run(opts);
    repo.index().end_reads();
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
        docker: opts.docker.clone(),
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

mod read;
mod walk;
