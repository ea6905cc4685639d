//! Copy snapshots to another repository, sending only what it lacks.
//!
//! When both repositories name and cut chunks alike (both plaintext, or one
//! made with `init --copy-chunker-params` from the other), a blob id means
//! the same bytes in both: trees are walked, blobs the destination lacks
//! are read pack by pack (in offset order, several packs at once) and
//! re-sealed for it, and everything it has is skipped unread. Otherwise
//! every chunk is read once to learn its id in the destination, and trees
//! are rewritten with those ids. Either way the destination gets packs,
//! then one index segment, then the snapshots, under a backup lock, as a
//! backup writes them.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use serde::Serialize;

use crate::format::pack::{BlobEntry, BlobKind};
use crate::format::segment::Segment;
use crate::format::tree::{Node, NodeKind};
use crate::ops::backup::hostname;
use crate::ops::progress::{stop_if_cancelled, NoProgress, WorkProgress};
use crate::store::packer::{Packer, Uploader};
use crate::{Repository, Result, Snapshot};

/// What a copy did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// (source id, destination id) of each snapshot copied.
    pub copied: Vec<(Id, Id)>,
    /// Source snapshots the destination already had (same time, host,
    /// volume and paths).
    pub skipped: Vec<Id>,
    /// Blobs sent.
    pub blobs_sent: u64,
    /// Their plain bytes.
    pub bytes_sent: u64,
    /// Blobs the destination already had.
    pub blobs_present: u64,
    /// Whether chunk ids had to be recomputed (different chunking keys).
    pub translated: bool,
}

/// Copy `snapshots` of `src` into `dst`.
pub fn copy(
    src: &Repository,
    dst: &Repository,
    snapshots: &[(Id, Snapshot)],
) -> Result<CopyReport> {
    copy_with(src, dst, snapshots, &NoProgress)
}

/// [`copy`], reporting progress: one item per snapshot, and the bytes of
/// every blob sent (known once the trees that need it are walked).
pub fn copy_with(
    src: &Repository,
    dst: &Repository,
    snapshots: &[(Id, Snapshot)],
    progress: &dyn WorkProgress,
) -> Result<CopyReport> {
    let _lock = dst.lock_for_backup(&hostname())?;
    let mut report = CopyReport {
        translated: !src.codec().same_chunking(dst.codec()),
        ..CopyReport::default()
    };
    let have: HashSet<(String, String, String, Vec<std::path::PathBuf>)> = dst
        .snapshots()?
        .into_iter()
        .map(|(_, s)| (s.time, s.host, s.volume, s.paths))
        .collect();
    let uploader = Uploader::start(dst.backend().clone(), dst.codec().clone(), false);
    let target = dst.config().pack_size as usize;
    let mut copier = Copier {
        src,
        dst,
        translate: report.translated,
        data: uploader.packer(BlobKind::Data, target).framed(dst.config()),
        trees: uploader.packer(BlobKind::Tree, target),
        tree_ids: HashMap::new(),
        chunk_ids: HashMap::new(),
        claimed: HashSet::new(),
        queued: HashMap::new(),
        report: &mut report,
        progress,
    };
    progress.expect(snapshots.len() as u64, 0);
    let mut pending = Vec::new();
    let walked = (|| -> Result<()> {
        for (id, snap) in snapshots {
            stop_if_cancelled(copier.progress)?;
            copier
                .progress
                .working_on(&format!("snapshot {}", id.to_hex()));
            copier.progress.advance(1, 0);
            if have.contains(&(
                snap.time.clone(),
                snap.host.clone(),
                snap.volume.clone(),
                snap.paths.clone(),
            )) {
                copier.report.skipped.push(*id);
                continue;
            }
            let tree = copier.tree(&snap.tree)?;
            pending.push((*id, snap.clone(), tree));
        }
        copier.send_queued()?;
        copier.data.flush()?;
        copier.trees.flush()
    })();
    drop(copier);
    // Packs finished before an interruption or failure are indexed too: a
    // second copy then sends only what is still missing.
    let packs = uploader.finish()?;
    if !packs.is_empty() {
        dst.write_segment(Segment {
            supersedes: Vec::new(),
            packs,
        })?;
    }
    walked?;
    for (id, mut snap, tree) in pending {
        snap.tree = tree;
        let new = dst.save_snapshot(&snap)?;
        report.copied.push((id, new));
    }
    Ok(report)
}

struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    translate: bool,
    data: Packer,
    trees: Packer,
    /// Source tree id → destination tree id.
    tree_ids: HashMap<Id, Id>,
    /// Source chunk id → destination chunk id (when translating).
    chunk_ids: HashMap<Id, Id>,
    /// Destination blob ids this copy sends.
    claimed: HashSet<Id>,
    /// Data blobs to send, by source pack (when not translating).
    queued: HashMap<Id, Vec<BlobEntry>>,
    report: &'a mut CopyReport,
    progress: &'a dyn WorkProgress,
}

impl Copier<'_> {
    /// The destination id of source tree `id`, sending what it needs.
    fn tree(&mut self, id: &Id) -> Result<Id> {
        if let Some(done) = self.tree_ids.get(id) {
            return Ok(*done);
        }
        let mut tree = self.src.load_tree(id)?;
        for node in &mut tree.nodes {
            self.node(node)?;
        }
        let bytes = tree.encode();
        let new = self.dst.blob_id(&bytes);
        if self.needs(&new)? {
            store(self.dst, &self.trees, new, &bytes)?;
            self.sent(bytes.len());
        }
        self.tree_ids.insert(*id, new);
        Ok(new)
    }

    fn node(&mut self, node: &mut Node) -> Result<()> {
        stop_if_cancelled(self.progress)?;
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            node.subtree = Some(self.tree(&sub)?);
        }
        for c in &mut node.content {
            c.id = if self.translate {
                self.translated_chunk(&c.id)?
            } else {
                self.queue_chunk(&c.id)?;
                c.id
            };
        }
        Ok(())
    }

    /// Whether the destination lacks `id` and no one has sent it yet.
    fn needs(&mut self, id: &Id) -> Result<bool> {
        if self.claimed.contains(id) || self.dst.index().contains(id)? {
            self.report.blobs_present += u64::from(!self.claimed.contains(id));
            return Ok(false);
        }
        self.claimed.insert(*id);
        Ok(true)
    }

    /// Same ids on both sides: remember where a missing chunk is.
    fn queue_chunk(&mut self, id: &Id) -> Result<()> {
        if self.needs(id)? {
            let loc = self.src.locate(id)?;
            self.queued.entry(loc.pack).or_default().push(loc.entry);
        }
        Ok(())
    }

    /// Different ids: read the chunk once, and send it if missing.
    fn translated_chunk(&mut self, id: &Id) -> Result<Id> {
        if let Some(new) = self.chunk_ids.get(id) {
            return Ok(*new);
        }
        let raw = self.src.read_blob(id)?;
        let new = self.dst.blob_id(&raw);
        if self.needs(&new)? {
            store(self.dst, &self.data, new, &raw)?;
            self.sent(raw.len());
        }
        self.chunk_ids.insert(*id, new);
        Ok(new)
    }

    fn sent(&mut self, len: usize) {
        self.report.blobs_sent += 1;
        self.report.bytes_sent += len as u64;
        self.progress.expect(0, len as u64);
        self.progress.advance(0, len as u64);
    }

    /// Read the queued chunks pack by pack and pack them for the destination.
    fn send_queued(&mut self) -> Result<()> {
        let queued = std::mem::take(&mut self.queued);
        let raw = |entries: &[BlobEntry]| entries.iter().map(|e| u64::from(e.raw_len)).sum::<u64>();
        self.progress
            .expect(0, queued.values().map(|e| raw(e)).sum());
        let mut failed = None;
        for (pack, entries) in &queued {
            stop_if_cancelled(self.progress)?;
            self.progress.working_on(&format!("pack {}", pack.to_hex()));
            self.src.read_stored_blobs(pack, entries, |e, stored| {
                let added =
                    stored.and_then(|s| self.data.add(e.id, &s, e.stored_compressed(), e.raw_len));
                if let Err(err) = added {
                    failed.get_or_insert(err);
                }
            });
            if let Some(e) = failed.take() {
                return Err(e);
            }
            self.report.blobs_sent += entries.len() as u64;
            self.report.bytes_sent += raw(entries);
            self.progress.advance(0, raw(entries));
        }
        Ok(())
    }
}

/// Snapshots of `src` to copy: those named (ids, prefixes, `latest`), or
/// every one `filter` passes.
pub fn select(
    src: &Repository,
    specs: &[String],
    filter: &crate::Filter,
) -> Result<Vec<(Id, Snapshot)>> {
    let all = src.snapshots()?;
    if specs.is_empty() {
        return Ok(all.into_iter().filter(|(_, s)| filter.matches(s)).collect());
    }
    let mut out: Vec<(Id, Snapshot)> = Vec::new();
    for spec in specs {
        let found = crate::format::snapshot::select(&all, spec, filter)?.clone();
        if !out.iter().any(|(id, _)| *id == found.0) {
            out.push(found);
        }
    }
    Ok(out)
}

/// Compress plain bytes as the destination does and pack them.
fn store(dst: &Repository, packer: &Packer, id: Id, raw: &[u8]) -> Result<()> {
    if packer.frames() {
        return packer.add(id, raw, false, raw.len() as u32);
    }
    match dst.config().compression.compress(raw) {
        Some(z) => packer.add(id, &z, true, raw.len() as u32),
        None => packer.add(id, raw, false, raw.len() as u32),
    }
}
