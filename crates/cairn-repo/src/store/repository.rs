//! A repository: config, index, blobs, trees and snapshots over a backend.
//!
//! Longer than most files here on purpose: it is the one type every
//! operation goes through (open, unlock, caches, blob and tree reads,
//! snapshot listing), and splitting it would spread its invariants (what
//! is cached, what is re-read after a superseding segment) over several
//! files; pack reads and segment bookkeeping already live beside it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_chunk::Id;

use crate::format::config::Config;
use crate::format::crypto::{Codec, Domain};
use crate::format::layout::{self, FileType};
use crate::format::pack::BlobKind;
use crate::format::segment::Segment;
use crate::format::snapshot::{self, Filter, Snapshot};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::store::backend::{BackendError, LocationState};
use crate::store::index::{Index, Location};
use crate::store::keys::{read_config, KeySource, NoKeys};
use crate::store::lock::BackupLock;
use crate::store::objcache::ObjectCache;
use crate::store::packs::decode_blob;
use crate::store::snapcache::SnapshotCache;
use crate::{Backend, Error, Result};

/// An object that exists but cannot be used (fails verification or
/// decoding). Damage costs that object only: it is reported and skipped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Damaged {
    /// Its id.
    pub id: Id,
    /// What is wrong.
    pub reason: String,
}

/// The snapshots of a repository, and those that cannot be read.
#[derive(Clone, Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots, oldest first.
    pub snapshots: Vec<(Id, Snapshot)>,
    /// Snapshot objects that fail verification or decoding.
    pub damaged: Vec<Damaged>,
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    codec: Arc<Codec>,
    /// The key slot that unlocked it (encrypted repositories).
    slot: Option<Id>,
    index: Index,
    /// Local copies of snapshots and trees, for remote backends.
    objects: ObjectCache,
    /// Every snapshot read before, in one local file.
    snapcache: SnapshotCache,
    /// Index segments found damaged by the last refresh (skipped).
    damaged_segments: std::sync::Mutex<Vec<Damaged>>,
    /// Prune plans found damaged by the last refresh.
    damaged_plans: std::sync::Mutex<Vec<Id>>,
    /// Whether the last refresh found a prune plan dooming some pack.
    plans_pending: std::sync::atomic::AtomicBool,
    /// A few decoded frames (format 3).
    pub(crate) frames: crate::store::frames::FrameCache,
}

impl Repository {
    /// Create a plaintext (format 1) repository in an empty or missing
    /// location. Encrypted ones: [`crate::store::keys::init_encrypted`].
    pub fn init(backend: &dyn Backend, config: &Config) -> Result<()> {
        require_vacant(backend)?;
        let bytes = serde_json::to_vec_pretty(config).expect("config serializes");
        backend.put(layout::CONFIG, &bytes)?;
        Ok(())
    }

    /// Open a plaintext repository (an encrypted one needs
    /// [`Repository::open_with`]), syncing the local index cache under
    /// `cache_root` (`None`: an in-memory cache).
    pub fn open(backend: Arc<dyn Backend>, cache_root: Option<&Path>) -> Result<Repository> {
        Repository::open_with(backend, cache_root, &NoKeys)
    }

    /// Open a repository, unlocking it with secrets from `keys` if it is
    /// encrypted.
    pub fn open_with(
        backend: Arc<dyn Backend>,
        cache_root: Option<&Path>,
        keys: &dyn KeySource,
    ) -> Result<Repository> {
        let opened = read_config(&*backend, keys)?;
        let index = open_cache(cache_root, &opened.config.id);
        let snapcache = SnapshotCache::new(cache_root.map(|r| {
            r.join("cairn")
                .join(opened.config.id.to_hex())
                .join("snapshots.cache")
        }));
        let objects = ObjectCache::new(cache_root.filter(|_| backend.remote()).map(|r| {
            r.join("cairn")
                .join(opened.config.id.to_hex())
                .join("objects")
        }));
        let repo = Repository {
            backend,
            config: opened.config,
            codec: opened.codec,
            slot: opened.slot,
            index,
            objects,
            snapcache,
            damaged_segments: Default::default(),
            damaged_plans: Default::default(),
            plans_pending: Default::default(),
            frames: Default::default(),
        };
        repo.refresh_index()?;
        Ok(repo)
    }

    /// How objects are stored (plain or sealed) and blob ids computed.
    pub fn codec(&self) -> &Arc<Codec> {
        &self.codec
    }

    /// The id of a blob with these plain bytes.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        self.codec.blob_id(data)
    }

    /// The key slot that unlocked this repository, if it is encrypted.
    pub fn unlocked_slot(&self) -> Option<Id> {
        self.slot
    }

    /// The repository's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The index cache.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Bring the cache up to date with the segments in the repository.
    /// A prune may delete a superseded segment between our listing and our
    /// read; then the listing is simply taken again.
    pub fn refresh_index(&self) -> Result<()> {
        let mut attempts = 0;
        loop {
            match self.try_refresh_index() {
                Err(e) if e.is_not_found() && attempts < 10 => attempts += 1,
                other => return other,
            }
        }
    }

    fn try_refresh_index(&self) -> Result<()> {
        let present: Vec<Id> = self.list_ids(FileType::Index)?;
        let known = self.index.segments()?;
        let dead = self.index.superseded()?;
        let present_set: HashSet<Id> = present.iter().copied().collect();
        // A segment that a segment we read supersedes is never new: a prune
        // deletes it only after publishing its superseder, so it may well
        // be present while that superseder is known.
        let new = self.scan_segments(
            present
                .iter()
                .filter(|id| !known.contains(id) && !dead.contains(id)),
        )?;
        if known
            .iter()
            .any(|k| !present_set.contains(k) || new.superseded.contains(k))
        {
            // A prune replaced segments we had loaded: start over.
            self.rebuild_index(&present)?;
        } else {
            let damaged = self.add_effective(new)?;
            self.set_damaged_segments(damaged);
        }
        self.refresh_plans()
    }

    /// Make the cache hold exactly the blobs of `effective`, the segments
    /// found readable and unsuperseded just now: loaded again from scratch
    /// if it holds any other segment (one damaged since this cache loaded
    /// it, say), else brought up to date. A reader that must not trust an
    /// older cache (`check`) calls this before asking it.
    pub fn sync_index_with(&self, effective: &HashSet<Id>) -> Result<()> {
        let cached = self.index.segments()?;
        if cached.iter().any(|id| !effective.contains(id)) {
            let present: Vec<Id> = self.list_ids(FileType::Index)?;
            self.rebuild_index(&present)
        } else if effective.iter().any(|id| !cached.contains(id)) {
            self.refresh_index()
        } else {
            Ok(())
        }
    }

    /// Load the cache again from the segments `present`, from scratch.
    fn rebuild_index(&self, present: &[Id]) -> Result<()> {
        let all = self.scan_segments(present.iter())?;
        self.index.clear()?;
        let damaged = self.add_effective(all)?;
        self.set_damaged_segments(damaged);
        Ok(())
    }

    fn set_damaged_segments(&self, damaged: Vec<Damaged>) {
        *self
            .damaged_segments
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = damaged;
    }

    /// Learn which packs the prune plans doom, and which plans cannot be read.
    fn refresh_plans(&self) -> Result<()> {
        let plans = super::plans::doomed_packs(&*self.backend, &self.codec)?;
        *self.damaged_plans.lock().unwrap_or_else(|p| p.into_inner()) = plans.damaged;
        self.plans_pending.store(
            !plans.packs.is_empty(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.index.set_doomed(&plans.packs)
    }

    /// Whether the last index refresh found a prune plan that dooms packs
    /// (not yet carried out).
    pub fn plans_pending(&self) -> bool {
        self.plans_pending
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Read segments to learn what they supersede, keeping the first of
    /// them in memory up to [`SCAN_KEEP_ENTRIES`] entries: the others are
    /// read again when loaded, so memory stays bounded however large the
    /// index (a new host reads all of it). Damaged ones are noted and
    /// skipped, so one bad segment costs the packs only it lists (until
    /// `repair index`), not the repository.
    fn scan_segments<'a>(&self, ids: impl Iterator<Item = &'a Id>) -> Result<ScannedSegments> {
        let mut out = ScannedSegments::default();
        let mut kept_entries = 0;
        for id in ids {
            match self.read_segment(id) {
                Ok(seg) => {
                    out.superseded.extend(seg.supersedes.iter().copied());
                    out.order.push(*id);
                    let entries: usize = seg.packs.iter().map(|p| p.entries.len()).sum();
                    if kept_entries + entries <= SCAN_KEEP_ENTRIES {
                        kept_entries += entries;
                        out.kept.insert(*id, seg);
                    }
                }
                Err(Error::Corrupt { reason, .. }) => out.damaged.push(Damaged { id: *id, reason }),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Add the scanned segments no other of them supersedes, after
    /// recording every segment any of them supersedes; returns those found
    /// damaged.
    fn add_effective(&self, mut scanned: ScannedSegments) -> Result<Vec<Damaged>> {
        self.index.add_superseded(&scanned.superseded)?;
        let superseded = &scanned.superseded;
        let kept = &mut scanned.kept;
        let effective = scanned
            .order
            .iter()
            .filter(|id| !superseded.contains(id))
            .map(|id| match kept.remove(id) {
                Some(seg) => Ok((*id, seg)),
                None => self.read_segment(id).map(|seg| (*id, seg)),
            });
        self.index.add_segments(effective)?;
        Ok(scanned.damaged)
    }

    /// Prune plans the last refresh could not read (damaged): which packs
    /// they doom is unknown, so a backup must not deduplicate at all.
    pub fn damaged_plans(&self) -> Vec<Id> {
        self.damaged_plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Write a backup lock, then bring the index and the plans up to date
    /// (in this order: docs/FORMAT.md section 11). Fails if a plan cannot
    /// be read: the packs it dooms are unknown, and deduplicating against
    /// one of them could lose the backup's data.
    pub fn lock_for_backup(&self, host: &str) -> Result<BackupLock> {
        let lock = BackupLock::acquire(self.backend.clone(), self.codec.clone(), host)?;
        self.refresh_index()?;
        if let Some(id) = self.damaged_plans().into_iter().next() {
            return Err(Error::Damaged {
                what: "prune plan",
                id,
                reason: "it cannot be read, so which packs it dooms is unknown".into(),
                advice: "try again; if it stays damaged, `cairn prune` removes it",
            });
        }
        Ok(lock)
    }

    /// Index segments the last refresh found damaged and skipped.
    pub fn damaged_segments(&self) -> Vec<Damaged> {
        self.damaged_segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read and verify one index segment.
    pub fn read_segment(&self, id: &Id) -> Result<Segment> {
        let bytes = self.read_named(FileType::Index, id)?;
        let plain = self
            .codec
            .open(Domain::Index, None, bytes)
            .map_err(|e| Error::corrupt("index segment", id, e))?;
        let segment = Segment::decode(&plain)
            .and_then(|s| s.check_limits(&self.config.blob_limits()).map(|()| s));
        segment.map_err(|e| Error::corrupt("index segment", id, e))
    }

    /// Store a segment durably, then record it in the cache. A random id
    /// joins its `supersedes` list (it names no segment): like a pack's salt,
    /// it makes the segment's name unique, so a segment identical to one a
    /// prune superseded is never mistaken for it (docs/FORMAT.md 8).
    ///
    /// A segment that supersedes others (a prune's, a repair's) makes the
    /// cache load again from the repository: blobs keep their first
    /// location in the cache, and those of the superseded segments may be
    /// in packs about to be deleted.
    pub fn write_segment(&self, seg: Segment) -> Result<Id> {
        let supersedes = !seg.supersedes.is_empty();
        let (id, seg) = self.store_segment(seg)?;
        if supersedes {
            let mut attempts = 0;
            loop {
                let present: Vec<Id> = self.list(FileType::Index)?.into_keys().collect();
                match self.rebuild_index(&present) {
                    // Deleted after our listing by a prune: list again.
                    Err(e) if e.is_not_found() && attempts < 10 => attempts += 1,
                    other => break other?,
                }
            }
        } else {
            self.index.add_superseded(&seg.supersedes)?;
            self.index.add_segment(&id, &seg)?;
        }
        Ok(id)
    }

    /// Store a segment durably (salted, see [`Repository::write_segment`])
    /// without recording it in the cache: the next refresh loads it. For a
    /// writer that supersedes the old index right after (prune).
    pub(crate) fn store_segment(&self, mut seg: Segment) -> Result<(Id, Segment)> {
        seg.supersedes.push(crate::random::random_id());
        let id = self.put_named(FileType::Index, Domain::Index, seg.encode())?;
        Ok((id, seg))
    }

    /// Where a blob is.
    pub fn locate(&self, id: &Id) -> Result<Location> {
        self.index.lookup(id)?.ok_or(Error::MissingBlob(*id))
    }

    /// Read a blob's plain bytes, verified against its id.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        self.read_at(&self.locate(id)?)
    }

    /// Read the blob at a known location, verified against its id. Trees
    /// of a remote repository are kept in the local object cache.
    pub fn read_at(&self, loc: &Location) -> Result<Vec<u8>> {
        let e = &loc.entry;
        let cached_as = (e.kind == BlobKind::Tree).then(|| format!("trees/{}", e.id));
        if let Some(stored) = cached_as.as_deref().and_then(|k| self.objects.get(k)) {
            if let Ok(raw) =
                decode_blob(&self.codec, &self.config.blob_limits(), loc, stored.into())
            {
                return Ok(raw);
            }
        }
        if let Some(raw) = self.cached_member(loc) {
            return raw;
        }
        // Before the read: the range read is as long as the entry claims.
        self.config.blob_limits().check(e).map_err(|why| {
            Error::corrupt("blob", e.id, format!("in pack {}: {why}", loc.pack.short()))
        })?;
        let key = layout::key(FileType::Pack, &loc.pack);
        let stored = self
            .backend()
            .get_range(&key, e.offset, u64::from(e.stored_len))?;
        if let Some(k) = &cached_as {
            self.objects.put(k, &stored);
        }
        self.decode_stored(loc, stored.into())
    }

    /// Load and decode a tree.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let loc = self.locate(id)?;
        if loc.entry.kind != BlobKind::Tree {
            return Err(Error::corrupt("tree", id, "index says it is a data blob"));
        }
        let bytes = self.read_at(&loc)?;
        Tree::decode(&bytes).map_err(|e| Error::corrupt("tree", id, e))
    }

    /// All readable snapshots, oldest first (damaged ones are skipped; see
    /// [`Repository::snapshot_list`]).
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        Ok(self.snapshot_list()?.snapshots)
    }

    /// All snapshots, oldest first, and the snapshot objects that cannot be
    /// read. A damaged snapshot costs itself only: listings, backups and
    /// restores of the others go on. The listing of `snapshots/` says which
    /// exist; those read before come from the local snapshot cache
    /// (store/snapcache.rs), checked as if read from the repository, and
    /// only the others are read. A copy stays good if the repository's
    /// object is damaged later: [`Repository::snapshot_list_uncached`]
    /// is for those that judge the repository.
    pub fn snapshot_list(&self) -> Result<SnapshotList> {
        let present: HashSet<Id> = self.list_ids(FileType::Snapshot)?.into_iter().collect();
        let mut cached = self.snapcache.load();
        let mut list = SnapshotList::default();
        let mut keep: HashMap<Id, Vec<u8>> = HashMap::with_capacity(present.len());
        let mut missing = Vec::new();
        for id in &present {
            let copy = cached.entries.remove(id);
            match copy.map(|stored| (self.decode_snapshot(id, &stored), stored)) {
                Some((Ok(snap), stored)) => {
                    list.snapshots.push((*id, snap));
                    keep.insert(*id, stored);
                }
                // Not cached, or a damaged copy: read from the repository.
                _ => missing.push(*id),
            }
        }
        let stale = cached.entries;
        let read = self.read_snapshots(missing, &mut list)?;
        let added = !read.is_empty();
        keep.extend(read);
        if !cached.whole || added || !stale.is_empty() {
            self.snapcache
                .store(keep.iter().map(|(id, b)| (id, b.as_slice())));
        }
        if cached.whole {
            for id in stale.keys() {
                self.objects.remove(&layout::key(FileType::Snapshot, id));
            }
        } else {
            self.forget_cached_snapshots(&present);
        }
        sort_snapshots(&mut list.snapshots);
        Ok(list)
    }

    /// As [`Repository::snapshot_list`], every snapshot read from the
    /// repository (or, for a remote one, its local object cache), never
    /// from the snapshot cache: `check` must see a snapshot object damaged
    /// since, and `prune` and the repairs refuse to act on one.
    pub fn snapshot_list_uncached(&self) -> Result<SnapshotList> {
        let present: HashSet<Id> = self.list_ids(FileType::Snapshot)?.into_iter().collect();
        self.forget_cached_snapshots(&present);
        let mut list = SnapshotList::default();
        self.read_snapshots(present.into_iter().collect(), &mut list)?;
        sort_snapshots(&mut list.snapshots);
        Ok(list)
    }

    /// Read `ids` (in parallel: each is a round trip to a remote backend)
    /// into `list`, the damaged ones into its `damaged`; returns the stored
    /// bytes of those read. One forgotten meanwhile is left out.
    fn read_snapshots(&self, ids: Vec<Id>, list: &mut SnapshotList) -> Result<Vec<(Id, Vec<u8>)>> {
        use rayon::prelude::*;
        let results: Vec<(Id, Result<StoredSnapshot>)> = ids
            .into_par_iter()
            .map(|id| {
                let read = self
                    .read_snapshot_bytes(&id)
                    .and_then(|b| Ok((self.decode_snapshot(&id, &b)?, b)));
                (id, read)
            })
            .collect();
        let mut stored = Vec::new();
        for (id, read) in results {
            match read {
                Err(Error::Backend(BackendError::NotFound { .. })) => continue, // forgotten meanwhile
                Ok((snap, bytes)) => {
                    list.snapshots.push((id, snap));
                    stored.push((id, bytes));
                }
                Err(Error::Corrupt { reason, .. }) => list.damaged.push(Damaged { id, reason }),
                Err(e) => return Err(e),
            }
        }
        Ok(stored)
    }

    /// The local copies of snapshots and trees (none for local repositories).
    pub(crate) fn objects(&self) -> &ObjectCache {
        &self.objects
    }

    /// Keep a tree blob's stored bytes in the local object cache (a no-op
    /// for local repositories).
    pub fn remember_tree(&self, id: &Id, stored: &[u8]) {
        self.objects.put(&format!("trees/{id}"), stored);
    }

    /// A snapshot's stored bytes, checked against its id: from the local
    /// object cache when there, else from the repository (and then cached).
    fn read_snapshot_bytes(&self, id: &Id) -> Result<Vec<u8>> {
        let key = layout::key(FileType::Snapshot, id);
        if let Some(bytes) = self.objects.get(&key).filter(|b| Id::of(b) == *id) {
            return Ok(bytes);
        }
        let bytes = self.read_named(FileType::Snapshot, id)?;
        self.objects.put(&key, &bytes);
        Ok(bytes)
    }

    /// Drop cached snapshots the repository no longer has (forgotten).
    fn forget_cached_snapshots(&self, present: &HashSet<Id>) {
        for key in self.objects.list(FileType::Snapshot.prefix()) {
            if layout::parse(FileType::Snapshot, &key).is_none_or(|id| !present.contains(&id)) {
                self.objects.remove(&key);
            }
        }
    }

    /// The ids of the snapshot objects present (unsorted, unread): with
    /// [`Repository::read_snapshot`], lets a long-running reader keep its
    /// list current by reading only the snapshots it has not seen.
    pub fn snapshot_ids(&self) -> Result<Vec<Id>> {
        self.list_ids(FileType::Snapshot)
    }

    /// Read, verify and parse one snapshot object.
    pub fn read_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let bytes = self.read_snapshot_bytes(id)?;
        self.decode_snapshot(id, &bytes)
    }

    /// Verify and parse a snapshot's stored bytes, wherever they were kept.
    fn decode_snapshot(&self, id: &Id, stored: &[u8]) -> Result<Snapshot> {
        if Id::of(stored) != *id {
            return Err(Error::corrupt(
                "snapshot",
                id,
                "content does not match its id",
            ));
        }
        let plain = self
            .codec
            .open(Domain::Snapshot, None, stored.to_vec())
            .map_err(|e| Error::corrupt("snapshot", id, e))?;
        Snapshot::parse(id, &plain)
    }

    /// Resolve `latest`, a full id or a unique prefix. Only `latest` needs
    /// every snapshot (their times and the filter's fields); an id is
    /// found in the listing and only its snapshot is read.
    pub fn find_snapshot(&self, spec: &str, filter: &Filter) -> Result<(Id, Snapshot)> {
        if spec == "latest" {
            let all = self.snapshots()?;
            return snapshot::select(&all, spec, filter).cloned();
        }
        let ids = self.snapshot_ids()?;
        let id = *snapshot::by_id(&ids, spec, |id| id)?;
        match self.read_snapshot(&id) {
            Err(e) if e.is_not_found() => Err(Error::NoSnapshot(spec.to_string())),
            other => Ok((id, other?)),
        }
    }

    /// Store a snapshot; it is visible once this returns.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        let bytes = self
            .codec
            .seal(Domain::Snapshot, None, snap.encode())
            .map_err(|e| Error::io("/dev/urandom", e))?;
        let id = Id::of(&bytes);
        let key = layout::key(FileType::Snapshot, &id);
        self.backend().put(&key, &bytes)?;
        self.objects.put(&key, &bytes);
        Ok(id)
    }

    /// An object named by the hash of its stored bytes, checked against it.
    fn read_named(&self, ft: FileType, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.backend().get(&layout::key(ft, id))?;
        if Id::of(&bytes) != *id {
            return Err(Error::corrupt(
                ft.noun(),
                id,
                "content does not match its id",
            ));
        }
        Ok(bytes)
    }

    /// Seal and store an object under the hash of its stored bytes.
    fn put_named(&self, ft: FileType, domain: Domain, plain: Vec<u8>) -> Result<Id> {
        let bytes = self
            .codec
            .seal(domain, None, plain)
            .map_err(|e| Error::io("/dev/urandom", e))?;
        let id = Id::of(&bytes);
        self.backend().put(&layout::key(ft, &id), &bytes)?;
        Ok(id)
    }

    /// Delete a snapshot (`forget`). The data it references stays until a
    /// prune; removing a snapshot that is already gone is not an error.
    pub fn remove_snapshot(&self, id: &Id) -> Result<()> {
        Ok(self
            .backend()
            .delete(&layout::key(FileType::Snapshot, id))?)
    }

    /// The ids of the objects of one type (no sizes: cheaper to list).
    pub fn list_ids(&self, ft: FileType) -> Result<Vec<Id>> {
        Ok(self
            .backend()
            .list_keys(ft.prefix())?
            .iter()
            .filter_map(|key| layout::parse(ft, key))
            .collect())
    }

    /// The objects of one type, with their sizes.
    pub fn list(&self, ft: FileType) -> Result<HashMap<Id, u64>> {
        Ok(self
            .backend()
            .list(ft.prefix())?
            .into_iter()
            .filter_map(|o| Some((layout::parse(ft, &o.key)?, o.size)))
            .collect())
    }

    /// Bytes of the objects that hold backed-up data and its description:
    /// packs, index segments and snapshots (one listing of each).
    pub fn stored_bytes(&self) -> Result<u64> {
        let mut total = 0u64;
        for ft in [FileType::Pack, FileType::Index, FileType::Snapshot] {
            total += self.list(ft)?.values().sum::<u64>();
        }
        Ok(total)
    }

    /// The segments in the repository that no other segment supersedes, and
    /// what every present segment supersedes. Damaged segments are skipped
    /// and listed (`check` reports them; prune refuses to go on: what they
    /// supersede would count again).
    pub fn index_segments(&self) -> Result<IndexSegments> {
        let mut all = Vec::new();
        let mut damaged = Vec::new();
        for id in self.list(FileType::Index)?.into_keys() {
            match self.read_segment(&id) {
                // Deleted after our listing: a newer segment supersedes it.
                Err(e) if e.is_not_found() => continue,
                Err(Error::Corrupt { reason, .. }) => damaged.push(Damaged { id, reason }),
                other => all.push((id, other?)),
            }
        }
        let supersedes: HashMap<Id, Vec<Id>> = all
            .iter()
            .map(|(id, s)| (*id, s.supersedes.clone()))
            .collect();
        let superseded: HashSet<Id> = supersedes.values().flatten().copied().collect();
        let effective = all
            .into_iter()
            .filter(|(id, _)| !superseded.contains(id))
            .collect();
        Ok(IndexSegments {
            effective,
            supersedes,
            damaged,
        })
    }

    /// The segments no other present segment supersedes, and those that
    /// are damaged, reading one segment at a time: unlike
    /// [`Repository::index_segments`], memory does not grow with the index.
    /// A segment deleted after the listing is left out (a newer one
    /// supersedes it).
    /// Each comes with the packs it lists.
    pub fn effective_segment_ids(&self) -> Result<(Vec<SegmentPacks>, Vec<Damaged>)> {
        let mut readable = Vec::new();
        let mut superseded = HashSet::new();
        let mut damaged = Vec::new();
        for id in self.list(FileType::Index)?.into_keys() {
            match self.read_segment(&id) {
                Err(e) if e.is_not_found() => continue,
                Err(Error::Corrupt { reason, .. }) => damaged.push(Damaged { id, reason }),
                other => {
                    let seg = other?;
                    superseded.extend(seg.supersedes);
                    readable.push((id, seg.packs.iter().map(|p| p.pack).collect()));
                }
            }
        }
        readable.retain(|(id, _)| !superseded.contains(id));
        Ok((readable, damaged))
    }

    /// Delete `roots` and every present segment they supersede, directly or
    /// not, each only after what it supersedes: a superseded segment must
    /// never outlive its superseder, or it would count again (and name
    /// packs that are gone).
    pub fn delete_segments(&self, roots: &[Id], supersedes: &HashMap<Id, Vec<Id>>) -> Result<()> {
        let mut done: HashSet<Id> = HashSet::new();
        let mut stack: Vec<(Id, bool)> = roots.iter().map(|id| (*id, false)).collect();
        while let Some((id, children_done)) = stack.pop() {
            if done.contains(&id) {
                continue;
            }
            let present = |c: &&Id| supersedes.contains_key(*c) && !done.contains(*c);
            let children: Vec<Id> = supersedes
                .get(&id)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter(present)
                .copied()
                .collect();
            if children_done || children.is_empty() {
                self.backend().delete(&layout::key(FileType::Index, &id))?;
                done.insert(id);
            } else {
                stack.push((id, true));
                stack.extend(children.into_iter().map(|c| (c, false)));
            }
        }
        Ok(())
    }

    /// Follow `subpath` (relative to the snapshot root; empty or `/` is the
    /// root) to a node. The root itself is returned as a synthetic directory node.
    pub fn resolve_path(&self, snap_id: &Id, snap: &Snapshot, subpath: &[u8]) -> Result<Node> {
        let mut node = Node {
            kind: NodeKind::Dir,
            subtree: Some(snap.tree),
            mode: snap.root.as_ref().map_or(0o755, |r| r.mode),
            ..Node::default()
        };
        for part in subpath
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
        {
            if part == b".." {
                return Err(Error::NoSuchPath {
                    path: String::from_utf8_lossy(subpath).into_owned(),
                    snapshot: snap_id.short(),
                });
            }
            let tree = match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(t)) => self.load_tree(&t)?,
                _ => {
                    return Err(Error::NoSuchPath {
                        path: String::from_utf8_lossy(subpath).into_owned(),
                        snapshot: snap_id.short(),
                    })
                }
            };
            node = tree.find(part).cloned().ok_or_else(|| Error::NoSuchPath {
                path: String::from_utf8_lossy(subpath).into_owned(),
                snapshot: snap_id.short(),
            })?;
        }
        Ok(node)
    }
}

/// A snapshot and its stored bytes.
type StoredSnapshot = (Snapshot, Vec<u8>);

/// A segment's id and the packs it lists.
pub type SegmentPacks = (Id, Vec<Id>);

/// Segment entries a refresh holds in memory between reading what segments
/// supersede and loading them (about 64 bytes each); beyond, segments are
/// read twice.
const SCAN_KEEP_ENTRIES: usize = 256 * 1024;

/// Segments read by [`Repository::scan_segments`].
#[derive(Default)]
struct ScannedSegments {
    /// The readable ones, in the order read.
    order: Vec<Id>,
    /// Those kept in memory.
    kept: HashMap<Id, Segment>,
    /// Every id any of them supersedes.
    superseded: HashSet<Id>,
    /// Those that failed verification.
    damaged: Vec<Damaged>,
}

/// The index segments of a repository (see [`Repository::index_segments`]).
pub struct IndexSegments {
    /// Segments no other segment supersedes.
    pub effective: Vec<(Id, Segment)>,
    /// What each present segment supersedes.
    pub supersedes: HashMap<Id, Vec<Id>>,
    /// Segments that failed verification (skipped).
    pub damaged: Vec<Damaged>,
}

/// Oldest first; the time string is parsed once per snapshot, not per
/// comparison.
fn sort_snapshots(list: &mut [(Id, Snapshot)]) {
    list.sort_by_cached_key(|(id, s)| (s.timestamp(), *id));
}

/// Refuse a location that holds anything.
pub(crate) fn require_vacant(backend: &dyn Backend) -> Result<()> {
    if backend.probe()? == LocationState::Occupied {
        return Err(match backend.get(layout::CONFIG) {
            Ok(_) => Error::AlreadyARepository(backend.location()),
            Err(_) => Error::NotEmpty(backend.location()),
        });
    }
    Ok(())
}

/// The cache lives in `<cache_root>/cairn/<repository id>/index.sqlite`. If it
/// cannot be opened there (read-only home, damaged file) we fall back to an
/// in-memory cache: slower, never wrong.
fn open_cache(cache_root: Option<&Path>, repo_id: &Id) -> Index {
    let on_disk = cache_root.and_then(|root| {
        let dir: PathBuf = root.join("cairn").join(repo_id.to_hex());
        crate::store::local::create_dir_durable(&dir).ok()?;
        let path = dir.join("index.sqlite");
        // The cache lists every blob id: private like the repository. SQLite
        // gives its WAL and shared-memory files the database file's mode.
        let _ = crate::store::local::create_private(&path);
        Index::open(Some(&path))
            .or_else(|_| {
                let _ = std::fs::remove_file(&path);
                let _ = crate::store::local::create_private(&path);
                Index::open(Some(&path))
            })
            .ok()
    });
    on_disk.unwrap_or_else(|| Index::open(None).expect("in-memory SQLite opens"))
}
