//! Restore: snapshot → plan → directories → file contents (in parallel) →
//! symlinks, special files, hard links → directory metadata, deepest first.
//!
//! Into an existing directory a restore rewrites only what differs: a
//! regular file already there is compared chunk by chunk and only ranges
//! whose hash differs are written; `--delete` removes what the snapshot lacks.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_chunk::{Id, PathMatcher};
use rayon::prelude::*;
use serde::Serialize;

use crate::fsmeta;
use crate::index::Location;
use crate::repository::{decode_blob, pack_key};
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind};
use crate::{Error, Repository, Result};

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Only paths matching one of these (and what is below them).
    pub includes: Vec<String>,
    /// Never paths matching these.
    pub excludes: Vec<String>,
    /// Remove entries in the target that the snapshot does not have.
    pub delete: bool,
    /// Re-read every restored file and check it against the snapshot.
    pub verify: bool,
    /// Plan and report, write nothing.
    pub dry_run: bool,
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreOutcome {
    /// Regular files whose content was (or would be) written.
    pub files_written: u64,
    /// Regular files already identical in the target.
    pub files_unchanged: u64,
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
    /// One line per path that could not be restored.
    pub errors: Vec<String>,
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

/// Compare the plan with what the target holds, writing nothing.
fn dry_run(plan: &Plan, opts: &RestoreOptions) -> RestoreOutcome {
    let target = &opts.target;
    let mut out = RestoreOutcome::default();
    let mut scratch = Vec::new();
    let show = |p: &Path| p.display().to_string();
    for (rel, _) in plan.dirs.iter().rev() {
        if !target.join(rel).is_dir() {
            out.planned.push(Planned {
                action: "create",
                path: show(rel),
                bytes: 0,
            });
        }
    }
    out.dirs = plan.dirs.len() as u64;
    for (rel, node) in &plan.files {
        let path = target.join(rel);
        let existing = fs::symlink_metadata(&path).ok().filter(|m| m.is_file());
        let file = existing.and_then(|_| fs::File::open(&path).ok());
        let mut offset = 0u64;
        let mut differing = 0u64;
        for c in &node.content {
            let same = file
                .as_ref()
                .is_some_and(|f| same_chunk(f, offset, c.len, &c.id, &mut scratch));
            if !same {
                differing += u64::from(c.len);
            }
            offset += u64::from(c.len);
        }
        let size_ok = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.len() == node.size);
        if differing == 0 && size_ok {
            out.files_unchanged += 1;
            out.bytes_unchanged += node.size;
        } else {
            out.files_written += 1;
            out.bytes_written += differing;
            out.planned.push(Planned {
                action: "write",
                path: show(rel),
                bytes: differing,
            });
        }
    }
    for (rel, _) in &plan.others {
        if fs::symlink_metadata(target.join(rel)).is_err() {
            out.planned.push(Planned {
                action: "create",
                path: show(rel),
                bytes: 0,
            });
        }
    }
    for (rel, first) in &plan.hardlinks {
        if !same_inode(&target.join(rel), &target.join(first)) {
            out.planned.push(Planned {
                action: "create",
                path: show(rel),
                bytes: 0,
            });
        }
    }
    out.others = (plan.others.len() + plan.hardlinks.len()) as u64;
    if opts.delete {
        for rel in extras(target, &plan.keep) {
            out.deleted += 1;
            out.planned.push(Planned {
                action: "delete",
                path: show(&rel),
                bytes: 0,
            });
        }
    }
    out
}

/// Progress callbacks.
pub trait RestoreProgress: Sync {
    /// File content written or found identical.
    fn bytes(&self, _n: u64) {}
}

/// Shows nothing.
pub struct NoRestoreProgress;
impl RestoreProgress for NoRestoreProgress {}

/// Everything a restore will create, decided before anything is written.
#[derive(Default)]
struct Plan {
    /// Directories, children before parents.
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    others: Vec<(PathBuf, Node)>,
    /// (link, first path of the same inode).
    hardlinks: Vec<(PathBuf, PathBuf)>,
    /// Every path the snapshot has below the target (for `--delete`).
    keep: HashSet<PathBuf>,
    total_bytes: u64,
}

struct Filters {
    include: PathMatcher,
    exclude: PathMatcher,
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
    let node = repo.resolve_path(snap_id, snap, subpath)?;
    let filters = Filters {
        include: PathMatcher::new(&opts.includes).map_err(|e| Error::Invalid(e.to_string()))?,
        exclude: PathMatcher::new(&opts.excludes).map_err(|e| Error::Invalid(e.to_string()))?,
    };
    let mut planner = Planner {
        repo,
        filters: &filters,
        plan: Plan::default(),
        links: HashMap::new(),
    };
    let whole = node.kind == NodeKind::Dir;
    if whole {
        let tree = node
            .subtree
            .ok_or_else(|| Error::corrupt("tree", snap_id, "directory without subtree"))?;
        planner.tree(&tree, Path::new(""), false)?;
    } else {
        planner.node(node.clone(), Path::new(""), false)?;
    }
    let plan = planner.plan;
    let mut out = RestoreOutcome::default();
    if opts.dry_run {
        return Ok(dry_run(&plan, opts));
    }
    let target = &opts.target;
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let writer = Writer {
        repo,
        target,
        as_root: fsmeta::running_as_root(),
        errors: Mutex::default(),
        progress,
        written: AtomicU64::new(0),
        unchanged: AtomicU64::new(0),
        files_written: AtomicU64::new(0),
        files_unchanged: AtomicU64::new(0),
    };
    writer.write_entries(&plan);
    if opts.delete {
        out.deleted = delete_extra(target, &plan.keep, &writer);
    }
    writer.apply_dir_meta(&plan);
    if whole && opts.includes.is_empty() {
        // The snapshot's root directory attributes go onto the target itself.
        if let Some(root) = root_node(snap, subpath, &node) {
            writer.note(target, fsmeta::apply(target, &root, writer.as_root));
        }
    }
    if opts.verify {
        out.verified = writer.verify(&plan);
    }
    out.files_written = writer.files_written.load(Ordering::Relaxed);
    out.files_unchanged = writer.files_unchanged.load(Ordering::Relaxed);
    out.bytes_written = writer.written.load(Ordering::Relaxed);
    out.bytes_unchanged = writer.unchanged.load(Ordering::Relaxed);
    out.dirs = plan.dirs.len() as u64;
    out.others = (plan.others.len() + plan.hardlinks.len()) as u64;
    out.errors = writer
        .errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(out)
}

/// Attributes for the target directory of a whole restore; `None` when the
/// snapshot root is synthetic (several paths), so the target keeps its own.
fn root_node(snap: &Snapshot, subpath: &[u8], node: &Node) -> Option<Node> {
    let at_root = subpath.iter().all(|&b| b == b'/' || b == b'.');
    match (&snap.root, at_root) {
        (Some(r), true) => Some(Node {
            kind: NodeKind::Dir,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            mtime: crate::tree::Timestamp {
                sec: r.mtime_sec,
                nsec: r.mtime_nsec,
            },
            ..Node::default()
        }),
        (None, true) => None,
        _ => Some(node.clone()),
    }
}

fn same_inode(a: &Path, b: &Path) -> bool {
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// A name from a tree that is safe to join to a path: one component, not `.` or `..`.
fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Walks the snapshot's trees and decides what the restore creates.
struct Planner<'a> {
    repo: &'a Repository,
    filters: &'a Filters,
    plan: Plan,
    /// First path restored for each (device, inode) with several links.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Planner<'_> {
    /// Add the entries of a tree below `rel`; true if anything was added.
    fn tree(&mut self, tree_id: &Id, rel: &Path, included: bool) -> Result<bool> {
        let tree = self.repo.load_tree(tree_id)?;
        let mut any = false;
        for node in tree.nodes {
            if !safe_name(&node.name) {
                return Err(Error::corrupt(
                    "tree",
                    tree_id,
                    format!(
                        "unsafe entry name {:?}",
                        String::from_utf8_lossy(&node.name)
                    ),
                ));
            }
            let path = rel.join(node.os_name());
            any |= self.node(node, &path, included)?;
        }
        Ok(any)
    }

    /// Add one node (and what is below it); true if anything was added. For
    /// a single file restored on its own, `rel` is empty and its name is used.
    fn node(&mut self, node: Node, rel: &Path, included: bool) -> Result<bool> {
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(node.os_name())
        } else {
            rel.to_path_buf()
        };
        self.plan.keep.insert(rel.clone());
        if self.filters.exclude.matches(&rel, None) {
            return Ok(false);
        }
        let included =
            included || self.filters.include.is_empty() || self.filters.include.matches(&rel, None);
        if node.kind == NodeKind::Dir {
            let below = match &node.subtree {
                Some(t) => self.tree(t, &rel, included)?,
                None => false,
            };
            if below || included {
                self.plan.dirs.push((rel, node));
                return Ok(true);
            }
            return Ok(false);
        }
        if !included {
            return Ok(false);
        }
        let plan = &mut self.plan;
        match node.kind {
            NodeKind::File if node.nlink > 1 => match self.links.get(&(node.dev, node.inode)) {
                Some(first) => plan.hardlinks.push((rel, first.clone())),
                None => {
                    self.links.insert((node.dev, node.inode), rel.clone());
                    plan.total_bytes += node.size;
                    plan.files.push((rel, node));
                }
            },
            NodeKind::File => {
                plan.total_bytes += node.size;
                plan.files.push((rel, node));
            }
            _ => plan.others.push((rel, node)),
        }
        Ok(true)
    }
}

struct Writer<'a> {
    repo: &'a Repository,
    target: &'a Path,
    as_root: bool,
    errors: Mutex<Vec<String>>,
    progress: &'a dyn RestoreProgress,
    written: AtomicU64,
    unchanged: AtomicU64,
    files_written: AtomicU64,
    files_unchanged: AtomicU64,
}

impl Writer<'_> {
    fn note<T>(&self, path: &Path, r: std::io::Result<T>) {
        if let Err(e) = r {
            self.fail(path, &Error::io(path, e));
        }
    }

    fn fail(&self, path: &Path, e: &dyn std::fmt::Display) {
        let line = match path.strip_prefix(self.target) {
            Ok(rel) if !rel.as_os_str().is_empty() => format!("{}: {e}", rel.display()),
            _ => e.to_string(),
        };
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    /// Create every entry; directory attributes come later, after `--delete`
    /// has removed extras (removing an entry changes its directory's mtime).
    fn write_entries(&self, plan: &Plan) {
        for (rel, _) in plan.dirs.iter().rev() {
            let path = self.target.join(rel);
            self.note(&path, make_dir(&path));
        }
        let mut links: HashMap<&Path, Vec<PathBuf>> = HashMap::new();
        for (rel, first) in &plan.hardlinks {
            links
                .entry(first.as_path())
                .or_default()
                .push(self.target.join(rel));
        }
        // Each file is prepared (created, sized, compared with what is there)
        // in parallel; then every pack that holds needed chunks is read once,
        // in offset order, and its blobs written wherever they are needed.
        // Files go in batches so that memory stays bounded on huge volumes.
        for batch in batches(&plan.files, BATCH_CHUNKS) {
            let needs: Vec<Option<FileNeeds>> = plan.files[batch.clone()]
                .par_iter()
                .map(|(rel, node)| {
                    let path = self.target.join(rel);
                    let others = links.get(rel.as_path()).map_or(&[][..], Vec::as_slice);
                    self.prepare_file(&path, node, others)
                        .map_err(|e| self.fail(&path, &e))
                        .ok()
                })
                .collect();
            let failed = self.fill_files(plan, batch.start, &needs);
            for (i, need) in needs.iter().enumerate() {
                let (rel, node) = &plan.files[batch.start + i];
                let path = self.target.join(rel);
                match failed.get(&(batch.start + i)) {
                    Some(e) => self.fail(&path, e),
                    None if need.is_some() => {
                        self.note(&path, fsmeta::apply(&path, node, self.as_root))
                    }
                    None => {}
                }
            }
        }
        for (rel, node) in &plan.others {
            let path = self.target.join(rel);
            let made = self.make_other(&path, node);
            match made {
                Ok(true) => self.note(&path, fsmeta::apply(&path, node, self.as_root)),
                Ok(false) => {}
                Err(e) => self.fail(&path, &Error::io(&path, e)),
            }
        }
        for (rel, first) in &plan.hardlinks {
            let path = self.target.join(rel);
            let first = self.target.join(first);
            if same_inode(&path, &first) {
                continue;
            }
            let r = remove_existing(&path).and_then(|_| fs::hard_link(&first, &path));
            self.note(&path, r);
        }
    }

    /// Directory attributes, deepest first.
    fn apply_dir_meta(&self, plan: &Plan) {
        for (rel, node) in &plan.dirs {
            let path = self.target.join(rel);
            self.note(&path, fsmeta::apply(&path, node, self.as_root));
        }
    }

    /// Create or open a file at its final size and list the chunks it still
    /// needs: all of them for a new file, those whose bytes differ for an
    /// existing one. `links` are the other names the snapshot gives this
    /// inode: an existing file is updated in place only if nothing else
    /// shares its inode, or exactly those names do.
    fn prepare_file(&self, path: &Path, node: &Node, links: &[PathBuf]) -> Result<FileNeeds> {
        let existing = fs::symlink_metadata(path).ok();
        let reuse = existing.as_ref().is_some_and(|m| {
            m.is_file()
                && (m.nlink() == 1
                    || (m.nlink() == 1 + links.len() as u64
                        && links.iter().all(|l| same_inode(l, path))))
        });
        if existing.is_some() && !reuse {
            remove_existing(path).map_err(|e| Error::io(path, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(node.size).map_err(|e| Error::io(path, e))?;
        let mut offset = 0u64;
        let mut chunks = Vec::new();
        let mut scratch = Vec::new();
        for c in &node.content {
            let len = u64::from(c.len);
            if reuse && same_chunk(&file, offset, c.len, &c.id, &mut scratch) {
                self.unchanged.fetch_add(len, Ordering::Relaxed);
                self.progress.bytes(len);
            } else {
                chunks.push((c.id, offset));
            }
            offset += len;
        }
        if offset != node.size {
            return Err(Error::corrupt(
                "tree",
                path.display(),
                format!("chunks add up to {offset} bytes, node says {}", node.size),
            ));
        }
        let counter = if chunks.is_empty() && reuse {
            &self.files_unchanged
        } else {
            &self.files_written
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(FileNeeds { reuse, chunks })
    }

    /// Write every needed chunk, reading each pack once. Returns the files
    /// that could not be completed, with the first error of each.
    /// `needs[i]` belongs to `plan.files[first + i]`.
    fn fill_files(
        &self,
        plan: &Plan,
        first: usize,
        needs: &[Option<FileNeeds>],
    ) -> HashMap<usize, String> {
        let mut wanted: HashMap<Id, Vec<Target>> = HashMap::new();
        for (i, n) in needs.iter().enumerate() {
            for (id, offset) in n.iter().flat_map(|n| n.chunks.iter()) {
                wanted.entry(*id).or_default().push(Target {
                    file: first + i,
                    offset: *offset,
                    reuse: n.as_ref().is_some_and(|n| n.reuse),
                });
            }
        }
        let failed = Mutex::new(HashMap::new());
        let fail = |targets: &[Target], why: String| {
            let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
            for t in targets {
                f.entry(t.file).or_insert_with(|| why.clone());
            }
        };
        let ids: Vec<Id> = wanted.keys().copied().collect();
        let mut by_pack: HashMap<Id, Vec<Location>> = HashMap::new();
        match self.repo.index().lookup_many(&ids) {
            Ok(locs) => {
                for (id, loc) in ids.iter().zip(locs) {
                    match loc {
                        Some(l) => by_pack.entry(l.pack).or_default().push(l),
                        None => fail(&wanted[id], Error::MissingBlob(*id).to_string()),
                    }
                }
            }
            Err(e) => fail(
                &wanted.values().flatten().copied().collect::<Vec<_>>(),
                e.to_string(),
            ),
        }
        let packs: Vec<(Id, Vec<Location>)> = by_pack.into_iter().collect();
        packs.par_iter().for_each(|(pack, locs)| {
            self.restore_pack(pack, locs, &wanted, plan, &fail);
        });
        failed.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the needed blobs of one pack in offset order, in few large reads,
    /// verify each once and write it to every place that needs it.
    fn restore_pack(
        &self,
        pack: &Id,
        locs: &[Location],
        wanted: &HashMap<Id, Vec<Target>>,
        plan: &Plan,
        fail: &(dyn Fn(&[Target], String) + Sync),
    ) {
        let mut locs = locs.to_vec();
        locs.sort_by_key(|l| l.entry.offset);
        let key = pack_key(pack);
        let mut open: HashMap<usize, fs::File> = HashMap::new();
        for run in read_runs(&locs) {
            let start = run[0].entry.offset;
            let end = run
                .last()
                .map_or(start, |l| l.entry.offset + u64::from(l.entry.stored_len));
            let bytes = match self.repo.backend().get_range(&key, start, end - start) {
                Ok(b) => b,
                Err(e) => {
                    for l in run {
                        fail(&wanted[&l.entry.id], e.to_string());
                    }
                    continue;
                }
            };
            for l in run {
                let targets = &wanted[&l.entry.id];
                let from = (l.entry.offset - start) as usize;
                let stored = bytes[from..from + l.entry.stored_len as usize].to_vec();
                let raw = match decode_blob(l, stored) {
                    Ok(r) => r,
                    Err(e) => {
                        fail(targets, e.to_string());
                        continue;
                    }
                };
                let zero = is_zero(&raw);
                for t in targets {
                    if let Err(e) = self.put_chunk(&mut open, plan, t, &raw, zero) {
                        fail(std::slice::from_ref(t), e.to_string());
                    }
                }
            }
            if open.len() > 64 {
                open.clear();
            }
        }
    }

    /// Write one chunk into one file; a zero chunk is a hole.
    fn put_chunk(
        &self,
        open: &mut HashMap<usize, fs::File>,
        plan: &Plan,
        t: &Target,
        raw: &[u8],
        zero: bool,
    ) -> Result<()> {
        let path = self.target.join(&plan.files[t.file].0);
        let file = match open.entry(t.file) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?,
            ),
        };
        let len = raw.len() as u64;
        if zero {
            // New files are already a hole here; an old file gets one punched.
            if t.reuse {
                punch_hole(file, t.offset, len).map_err(|e| Error::io(&path, e))?;
            }
        } else {
            file.write_all_at(raw, t.offset)
                .map_err(|e| Error::io(&path, e))?;
        }
        self.written.fetch_add(len, Ordering::Relaxed);
        self.progress.bytes(len);
        Ok(())
    }

    /// Create a symlink, FIFO or device; false when skipped (not root).
    fn make_other(&self, path: &Path, node: &Node) -> std::io::Result<bool> {
        remove_existing(path)?;
        match node.kind {
            NodeKind::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.target), path)?;
            }
            NodeKind::Fifo => fsmeta::make_special(path, node)?,
            NodeKind::CharDev | NodeKind::BlockDev if self.as_root => {
                fsmeta::make_special(path, node)?
            }
            NodeKind::CharDev | NodeKind::BlockDev => {
                self.fail(
                    path,
                    &"device node not created: restoring devices needs root",
                );
                return Ok(false);
            }
            _ => return Ok(false), // sockets are recorded, never recreated
        }
        Ok(true)
    }

    /// Re-read every restored file and compare each chunk's hash.
    fn verify(&self, plan: &Plan) -> u64 {
        plan.files
            .par_iter()
            .filter(|(rel, node)| {
                let path = self.target.join(rel);
                let ok = fs::File::open(&path).is_ok_and(|f| {
                    let mut scratch = Vec::new();
                    let mut offset = 0u64;
                    let chunks_ok = node.content.iter().all(|c| {
                        let ok = same_chunk(&f, offset, c.len, &c.id, &mut scratch);
                        offset += u64::from(c.len);
                        ok
                    });
                    chunks_ok && f.metadata().is_ok_and(|m| m.len() == node.size)
                });
                if !ok {
                    self.fail(
                        &path,
                        &"verification failed: content differs from the snapshot",
                    );
                }
                ok
            })
            .count() as u64
    }
}

/// What a prepared file still needs.
struct FileNeeds {
    /// The file existed and is updated in place.
    reuse: bool,
    /// Chunks to write: blob id and file offset.
    chunks: Vec<(Id, u64)>,
}

/// One place a blob must be written.
#[derive(Clone, Copy)]
struct Target {
    file: usize,
    offset: u64,
    reuse: bool,
}

/// Chunks per restore batch: about 8 GiB of file content at the default
/// chunk size, and some 30 MB of bookkeeping.
const BATCH_CHUNKS: usize = 256 << 10;

/// Consecutive ranges of `files` holding at most `max_chunks` chunks each
/// (a file with more gets a range of its own).
fn batches(files: &[(PathBuf, Node)], max_chunks: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut chunks) = (0, 0);
    for (i, (_, node)) in files.iter().enumerate() {
        if chunks > 0 && chunks + node.content.len() > max_chunks {
            out.push(start..i);
            (start, chunks) = (i, 0);
        }
        chunks += node.content.len();
    }
    if start < files.len() {
        out.push(start..files.len());
    }
    out
}

/// Blobs of a pack in offset order, grouped into ranges read at once:
/// a gap of more than 64 KiB, or a range past 2 MiB, starts a new one.
fn read_runs(locs: &[Location]) -> Vec<&[Location]> {
    const GAP: u64 = 64 << 10;
    const MAX: u64 = 2 << 20;
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=locs.len() {
        let split = i == locs.len() || {
            let prev = &locs[i - 1].entry;
            let next = &locs[i].entry;
            let prev_end = prev.offset + u64::from(prev.stored_len);
            next.offset > prev_end + GAP
                || next.offset + u64::from(next.stored_len) - locs[start].entry.offset > MAX
        };
        if split {
            runs.push(&locs[start..i]);
            start = i;
        }
    }
    runs
}

fn same_chunk(file: &fs::File, offset: u64, len: u32, id: &Id, scratch: &mut Vec<u8>) -> bool {
    scratch.resize(len as usize, 0);
    file.read_exact_at(scratch, offset).is_ok() && Id::of(scratch) == *id
}

fn is_zero(buf: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u128, and align_to only hands out
    // the aligned middle part as u128s.
    let (pre, words, post) = unsafe { buf.align_to::<u128>() };
    pre.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}

fn punch_hole(file: &fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: valid descriptor; fallocate only touches the given range.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Filesystems without hole punching get real zeros.
    file.write_all_at(&vec![0u8; len as usize], offset)
}

fn make_dir(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir_all(path)
        }
        Err(_) => fs::create_dir_all(path),
    }
}

/// Remove whatever is at `path` (file, link or directory tree), if anything.
fn remove_existing(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// Entries under `target` that are not in `keep` (a directory is listed,
/// not its contents).
fn extras(target: &Path, keep: &HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut it = walkdir_sorted(target);
    while let Some(entry) = it.next() {
        let Ok(entry) = entry else { continue };
        let Ok(rel) = entry.path().strip_prefix(target) else {
            continue;
        };
        if rel.as_os_str().is_empty() || keep.contains(rel) {
            continue;
        }
        if entry.file_type().is_dir() {
            it.skip_current_dir();
        }
        out.push(rel.to_path_buf());
    }
    out
}

/// Remove entries under `target` that are not in `keep`; returns how many.
fn delete_extra(target: &Path, keep: &HashSet<PathBuf>, w: &Writer) -> u64 {
    let mut deleted = 0;
    for rel in extras(target, keep) {
        let path = target.join(rel);
        match remove_existing(&path) {
            Ok(()) => deleted += 1,
            Err(e) => w.fail(&path, &Error::io(&path, e)),
        }
    }
    deleted
}

fn walkdir_sorted(root: &Path) -> walkdir::IntoIter {
    walkdir::WalkDir::new(root).follow_links(false).into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 1000]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        assert!(is_zero(&[]));
    }

    #[test]
    fn reads_group_nearby_blobs_and_split_at_gaps_and_size() {
        use crate::pack::{BlobEntry, BlobKind};
        let loc = |offset: u64, len: u32| Location {
            pack: Id::default(),
            entry: BlobEntry {
                id: Id::of(&offset.to_le_bytes()),
                kind: BlobKind::Data,
                flags: 0,
                stored_len: len,
                raw_len: len,
                offset,
            },
        };
        let k = 1u64 << 10;
        let locs = vec![
            loc(0, 1024),
            loc(2 * k, 1024),          // small gap: same read
            loc(1024 * k, 1024),       // 1 MiB gap: new read
            loc(1026 * k, 2040 << 10), // same read, but ...
            loc(3070 * k, 8 << 10),    // ... this would pass 2 MiB in one read
        ];
        let sizes: Vec<usize> = read_runs(&locs).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(read_runs(&[]).is_empty());
    }

    #[test]
    fn batches_cap_chunks_and_keep_big_files_whole() {
        let file = |chunks: usize| {
            let c = crate::tree::ChunkRef {
                id: Id::default(),
                len: 1,
            };
            (
                PathBuf::from("f"),
                Node {
                    content: vec![c; chunks],
                    ..Node::default()
                },
            )
        };
        let files = vec![file(3), file(3), file(10), file(1), file(0)];
        assert_eq!(batches(&files, 6), vec![0..2, 2..3, 3..5]);
        assert_eq!(batches(&files, 100), vec![0..5]);
        assert!(batches(&[], 6).is_empty());
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(safe_name(b"ok"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!safe_name(bad));
        }
    }
}
