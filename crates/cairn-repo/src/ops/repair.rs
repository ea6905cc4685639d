//! Repairs (docs/FORMAT.md section 12). `repair index` rebuilds the index
//! from the packs alone: each pack carries its own table of blobs, so the
//! index segments (and the local cache) can always be recreated.
//! `repair snapshots` makes every snapshot restorable again.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use serde::Serialize;

use crate::format::layout::{self, FileType};
use crate::format::pack::{BlobEntry, BlobKind};
use crate::format::segment::{PackRecord, Segment};
use crate::format::tree::{NodeKind, Tree};
use crate::ops::backup::hostname;
use crate::store::packer::{Packer, Uploader};
use crate::{Error, Repository, Result};

/// What a rebuild found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    /// Packs indexed.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Old segments replaced.
    pub segments_replaced: u64,
    /// Packs whose table fails verification at every read (damaged):
    /// left out of the index, each named with the error.
    pub unreadable: Vec<String>,
}

/// Reads of one pack's table before `repair index` gives up on it.
const TABLE_READS: u32 = 3;

/// Write one segment listing every stored pack, superseding the segments
/// that existed when it started, then delete those and reload the local
/// cache. Segments are listed before packs: a backup that finishes while the
/// repair runs either wrote its segment before that listing (and its packs
/// before the pack listing, so the new segment has them) or after it (and
/// its segment is left alone).
///
/// A pack is never left out because one read failed: each table is read up
/// to [`TABLE_READS`] times. A pack that still cannot be read fails the
/// repair (naming it) before anything is replaced; only a pack whose table
/// fails verification at every read (damaged, not a read that failed) is
/// left out, and named.
pub fn repair_index(repo: &Repository) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    let old: Vec<Id> = repo.list(FileType::Index)?.into_keys().collect();
    let mut packs = Vec::new();
    for (pack, size) in repo.list(FileType::Pack)? {
        let record = match read_table(repo, &pack, size) {
            Ok(entries) => PackRecord { pack, entries },
            // Deleted since the listing (by a prune): nothing to index.
            Err(e) if e.is_not_found() => continue,
            Err(e @ Error::Corrupt { .. }) => {
                report.unreadable.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        report.packs += 1;
        report.blobs += record.entries.len() as u64;
        packs.push(record);
    }
    report.segments_replaced = old.len() as u64;
    repo.write_segment(Segment {
        supersedes: old.clone(),
        packs,
    })?;
    for id in &old {
        repo.backend().delete(&layout::key(FileType::Index, id))?;
    }
    repo.index().clear()?;
    repo.refresh_index()?;
    Ok(report)
}

/// A pack's table, read again after a failed or corrupted read (a flipped
/// bit in transit fails verification once, not every time).
fn read_table(repo: &Repository, pack: &Id, size: u64) -> Result<Vec<BlobEntry>> {
    let mut attempt = 1;
    loop {
        match repo.read_pack_table(pack, size) {
            Err(e) if attempt < TABLE_READS && !e.is_not_found() => {
                std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)));
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// How to repair snapshots.
#[derive(Clone, Debug, Default)]
pub struct RepairSnapshotsOptions {
    /// Report what would change, change nothing.
    pub dry_run: bool,
}

/// One snapshot that referenced data the repository no longer has.
#[derive(Clone, Debug, Serialize)]
pub struct RepairedSnapshot {
    /// The damaged snapshot (removed).
    pub original: Id,
    /// Its replacement (`None` for a dry run).
    pub replacement: Option<Id>,
    /// Paths left out of the replacement: files with missing or damaged
    /// chunks, directories whose tree cannot be read (emptied).
    pub dropped: Vec<String>,
}

/// What `repair snapshots` did (or would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairSnapshotsReport {
    /// Snapshot objects that could not be read, or whose root directory
    /// cannot be read: removed.
    pub removed: Vec<crate::Damaged>,
    /// Snapshots rewritten without what they lost.
    pub repaired: Vec<RepairedSnapshot>,
    /// Snapshots found whole.
    pub intact: u64,
}

/// Make every snapshot restorable again: remove snapshot objects that
/// cannot be read, and replace each snapshot that references missing or
/// damaged data by one without it (same time, host, volume and paths,
/// tagged `repaired`, naming its original). Nothing that can still be
/// restored is dropped.
pub fn repair_snapshots(
    repo: &Repository,
    opts: &RepairSnapshotsOptions,
) -> Result<RepairSnapshotsReport> {
    // New trees are written: a prune must treat this like a running backup.
    let _lock = if opts.dry_run {
        None
    } else {
        Some(repo.lock_for_backup(&hostname())?)
    };
    let mut report = RepairSnapshotsReport::default();
    let list = repo.snapshot_list_uncached()?;
    for d in list.damaged {
        if !opts.dry_run {
            repo.remove_snapshot(&d.id)?;
        }
        report.removed.push(d);
    }
    let stored: HashSet<Id> = repo.list(FileType::Pack)?.into_keys().collect();
    let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), opts.dry_run);
    let mut rewriter = Rewriter {
        repo,
        stored,
        trees: uploader.packer(BlobKind::Tree, repo.config().pack_size as usize),
        added: HashSet::new(),
        memo: HashMap::new(),
    };
    let mut replacements = Vec::new();
    let mut rootless = Vec::new();
    let walked = (|| -> Result<()> {
        for (id, snap) in list.snapshots {
            match rewriter.tree(&snap.tree)? {
                None => rootless.push(crate::Damaged {
                    id,
                    reason: "its root directory cannot be read".into(),
                }),
                Some((_, dropped)) if dropped.is_empty() => report.intact += 1,
                Some((tree, dropped)) => replacements.push((id, snap, tree, dropped)),
            }
        }
        rewriter.trees.flush()
    })();
    drop(rewriter);
    let packs = uploader.finish();
    walked?;
    let packs = packs?;
    if opts.dry_run {
        report.removed.extend(rootless);
        report.repaired = replacements
            .into_iter()
            .map(|(original, _, _, dropped)| RepairedSnapshot {
                original,
                replacement: None,
                dropped,
            })
            .collect();
        return Ok(report);
    }
    if !packs.is_empty() {
        repo.write_segment(Segment {
            supersedes: Vec::new(),
            packs,
        })?;
    }
    for (original, mut snap, tree, dropped) in replacements {
        snap.tree = tree;
        snap.original = Some(original);
        if !snap.tags.iter().any(|t| t == "repaired") {
            snap.tags.push("repaired".into());
        }
        let replacement = repo.save_snapshot(&snap)?;
        repo.remove_snapshot(&original)?;
        report.repaired.push(RepairedSnapshot {
            original,
            replacement: Some(replacement),
            dropped,
        });
    }
    for d in rootless {
        repo.remove_snapshot(&d.id)?;
        report.removed.push(d);
    }
    Ok(report)
}

/// Rewrites trees without what cannot be restored, each distinct tree once.
struct Rewriter<'a> {
    repo: &'a Repository,
    stored: HashSet<Id>,
    trees: Packer,
    /// Trees stored by this run.
    added: HashSet<Id>,
    /// Tree id → (new id, paths dropped below it), or `None` if unreadable.
    memo: HashMap<Id, Option<(Id, Vec<String>)>>,
}

impl Rewriter<'_> {
    /// The tree without what is lost, and the relative paths dropped;
    /// `None` if the tree itself cannot be read.
    fn tree(&mut self, id: &Id) -> Result<Option<(Id, Vec<String>)>> {
        if let Some(done) = self.memo.get(id) {
            return Ok(done.clone());
        }
        let Ok(tree) = self.repo.load_tree(id) else {
            self.memo.insert(*id, None);
            return Ok(None);
        };
        let mut dropped = Vec::new();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for mut node in tree.nodes {
            let name = String::from_utf8_lossy(&node.name).into_owned();
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => match self.tree(&sub)? {
                    Some((new, below)) => {
                        node.subtree = Some(new);
                        dropped.extend(below.into_iter().map(|p| format!("{name}/{p}")));
                    }
                    None => {
                        node.subtree = Some(self.store(&mut Tree::default())?);
                        dropped.push(format!("{name}/ (unreadable directory, now empty)"));
                    }
                },
                (NodeKind::File, _) if !self.whole(&node)? => {
                    dropped.push(name);
                    continue;
                }
                _ => {}
            }
            nodes.push(node);
        }
        let new = if dropped.is_empty() {
            *id
        } else {
            self.store(&mut Tree { nodes })?
        };
        let done = Some((new, dropped));
        self.memo.insert(*id, done.clone());
        Ok(done)
    }

    /// Whether every chunk of a file is indexed, in a stored pack, with the
    /// length the tree says.
    fn whole(&self, node: &crate::Node) -> Result<bool> {
        let ids: Vec<Id> = node.content.iter().map(|c| c.id).collect();
        let locs = self.repo.index().lookup_many(&ids)?;
        Ok(node.content.iter().zip(locs).all(|(c, loc)| {
            loc.is_some_and(|l| self.stored.contains(&l.pack) && l.entry.raw_len == c.len)
        }))
    }

    fn store(&mut self, tree: &mut Tree) -> Result<Id> {
        let bytes = tree.encode();
        let id = self.repo.blob_id(&bytes);
        if !self.added.insert(id) || self.repo.index().contains(&id)? {
            return Ok(id);
        }
        match self.repo.config().compression.compress(&bytes) {
            Some(z) => self.trees.add(id, &z, true, bytes.len() as u32)?,
            None => self.trees.add(id, &bytes, false, bytes.len() as u32)?,
        }
        Ok(id)
    }
}
