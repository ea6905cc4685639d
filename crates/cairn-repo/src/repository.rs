//! A repository: config, index, blobs, trees and snapshots over a backend.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_chunk::compress::decompress;
use cairn_chunk::Id;

use crate::backend::{BackendError, LocationState};
use crate::config::{Config, FORMAT_VERSION};
use crate::index::{Index, Location};
use crate::pack::BlobKind;
use crate::segment::Segment;
use crate::snapshot::{self, Filter, Snapshot};
use crate::tree::{Node, NodeKind, Tree};
use crate::{Backend, Error, LocalBackend, Result};

/// Key of the config file.
pub const CONFIG_KEY: &str = "config";

/// Key of a pack: `packs/<first two hex digits>/<id>`.
pub fn pack_key(id: &Id) -> String {
    let h = id.to_hex();
    format!("packs/{}/{}", &h[..2], h)
}

/// Key of an index segment.
pub fn segment_key(id: &Id) -> String {
    format!("index/{id}")
}

/// Key of a snapshot.
pub fn snapshot_key(id: &Id) -> String {
    format!("snapshots/{id}")
}

/// The backend for a `--repo` location.
pub fn backend_for(location: &str) -> Result<Arc<dyn Backend>> {
    if location.contains("://") {
        return Err(Error::Invalid(format!(
            "{location}: only local repositories are supported so far (S3 comes in a later release)"
        )));
    }
    Ok(Arc::new(LocalBackend::new(location)))
}

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
    index: Index,
    /// Index segments found damaged by the last refresh (skipped).
    damaged_segments: std::sync::Mutex<Vec<Damaged>>,
}

impl Repository {
    /// Create a repository in an empty or missing location.
    pub fn init(backend: &dyn Backend, config: &Config) -> Result<()> {
        if backend.probe()? == LocationState::Occupied {
            return Err(match backend.get(CONFIG_KEY) {
                Ok(_) => Error::Invalid(format!(
                    "{}: a cairn repository already exists here",
                    backend.location()
                )),
                Err(_) => Error::NotEmpty(backend.location()),
            });
        }
        let bytes = serde_json::to_vec_pretty(config).expect("config serializes");
        backend.put(CONFIG_KEY, &bytes)?;
        Ok(())
    }

    /// Open a repository, syncing the local index cache under `cache_root`
    /// (`None`: an in-memory cache).
    pub fn open(backend: Arc<dyn Backend>, cache_root: Option<&Path>) -> Result<Repository> {
        let config = read_config(&*backend)?;
        let index = open_cache(cache_root, &config.id);
        let repo = Repository {
            backend,
            config,
            index,
            damaged_segments: Default::default(),
        };
        repo.refresh_index()?;
        Ok(repo)
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
        let present: Vec<Id> = self
            .backend
            .list("index/")?
            .iter()
            .filter_map(|o| o.key.strip_prefix("index/")?.parse().ok())
            .collect();
        let known = self.index.segments()?;
        let present_set: HashSet<Id> = present.iter().copied().collect();
        let mut damaged = Vec::new();
        let new = self.read_segments(
            present.iter().filter(|id| !known.contains(id)),
            &mut damaged,
        )?;
        let superseded: HashSet<Id> = new
            .iter()
            .flat_map(|(_, s)| s.supersedes.iter().copied())
            .collect();
        if known
            .iter()
            .any(|k| !present_set.contains(k) || superseded.contains(k))
        {
            // A prune replaced segments we had loaded: start over.
            self.index.clear()?;
            damaged.clear();
            let all = self.read_segments(present.iter(), &mut damaged)?;
            self.add_effective(&all)?;
        } else {
            self.add_effective(&new)?;
        }
        *self
            .damaged_segments
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = damaged;
        self.index
            .set_doomed(&crate::prune::doomed_packs(&*self.backend)?)
    }

    /// Read segments; damaged ones are noted and skipped, so one bad segment
    /// costs the packs only it lists (until `repair index`), not the repository.
    fn read_segments<'a>(
        &self,
        ids: impl Iterator<Item = &'a Id>,
        damaged: &mut Vec<Damaged>,
    ) -> Result<Vec<(Id, Segment)>> {
        let mut out = Vec::new();
        for id in ids {
            match self.read_segment(id) {
                Ok(seg) => out.push((*id, seg)),
                Err(Error::Corrupt { reason, .. }) => damaged.push(Damaged { id: *id, reason }),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn add_effective(&self, segs: &[(Id, Segment)]) -> Result<()> {
        let superseded: HashSet<Id> = segs
            .iter()
            .flat_map(|(_, s)| s.supersedes.iter().copied())
            .collect();
        for (id, seg) in segs.iter().filter(|(id, _)| !superseded.contains(id)) {
            self.index.add_segment(id, seg)?;
        }
        Ok(())
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
        let bytes = self.backend.get(&segment_key(id))?;
        if Id::of(&bytes) != *id {
            return Err(Error::corrupt(
                "index segment",
                id,
                "content does not match its id",
            ));
        }
        Segment::decode(&bytes).map_err(|e| Error::corrupt("index segment", id, e))
    }

    /// Store a segment durably, then record it in the cache. A random id
    /// joins its `supersedes` list (it names no segment): like a pack's salt,
    /// it makes the segment's name unique, so a segment identical to one a
    /// prune superseded is never mistaken for it (docs/FORMAT.md 8).
    pub fn write_segment(&self, mut seg: Segment) -> Result<Id> {
        seg.supersedes.push(crate::config::random_id());
        let bytes = seg.encode();
        let id = Id::of(&bytes);
        self.backend.put(&segment_key(&id), &bytes)?;
        self.index.add_segment(&id, &seg)?;
        Ok(id)
    }

    /// Where a blob is.
    pub fn locate(&self, id: &Id) -> Result<Location> {
        self.index.lookup(id)?.ok_or(Error::MissingBlob(*id))
    }

    /// Read a blob's plain bytes, verified against its id.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        self.read_at(&self.locate(id)?)
    }

    /// Read the blob at a known location, verified against its id.
    pub fn read_at(&self, loc: &Location) -> Result<Vec<u8>> {
        let e = &loc.entry;
        let key = pack_key(&loc.pack);
        let stored = self
            .backend
            .get_range(&key, e.offset, u64::from(e.stored_len))?;
        decode_blob(loc, stored)
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
    /// restores of the others go on.
    pub fn snapshot_list(&self) -> Result<SnapshotList> {
        let mut list = SnapshotList::default();
        for obj in self.backend.list("snapshots/")? {
            let Some(id) = obj
                .key
                .strip_prefix("snapshots/")
                .and_then(|s| s.parse::<Id>().ok())
            else {
                continue;
            };
            let bytes = match self.backend.get(&obj.key) {
                Err(BackendError::NotFound { .. }) => continue, // forgotten meanwhile
                other => other?,
            };
            match Snapshot::decode(&id, &bytes) {
                Ok(snap) => list.snapshots.push((id, snap)),
                Err(Error::Corrupt { reason, .. }) => list.damaged.push(Damaged { id, reason }),
                Err(e) => return Err(e),
            }
        }
        list.snapshots
            .sort_by(|a, b| a.1.timestamp().cmp(&b.1.timestamp()).then(a.0.cmp(&b.0)));
        Ok(list)
    }

    /// Resolve `latest`, a full id or a unique prefix.
    pub fn find_snapshot(&self, spec: &str, filter: &Filter) -> Result<(Id, Snapshot)> {
        let all = self.snapshots()?;
        snapshot::select(&all, spec, filter).cloned()
    }

    /// Store a snapshot; it is visible once this returns.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        let bytes = snap.encode();
        let id = Id::of(&bytes);
        self.backend.put(&snapshot_key(&id), &bytes)?;
        Ok(id)
    }

    /// Delete a snapshot (`forget`). The data it references stays until a
    /// prune; removing a snapshot that is already gone is not an error.
    pub fn remove_snapshot(&self, id: &Id) -> Result<()> {
        Ok(self.backend.delete(&snapshot_key(id))?)
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

/// Decompress and verify a blob's stored bytes.
pub fn decode_blob(loc: &Location, stored: Vec<u8>) -> Result<Vec<u8>> {
    let e = &loc.entry;
    let raw = if e.compressed() {
        decompress(&stored, e.raw_len as usize).map_err(|err| {
            Error::corrupt("blob", e.id, format!("in pack {}: {err}", loc.pack.short()))
        })?
    } else {
        stored
    };
    if raw.len() != e.raw_len as usize {
        return Err(Error::corrupt(
            "blob",
            e.id,
            format!(
                "in pack {}: {} bytes, the index says {}",
                loc.pack.short(),
                raw.len(),
                e.raw_len
            ),
        ));
    }
    if Id::of(&raw) != e.id {
        return Err(Error::corrupt(
            "blob",
            e.id,
            format!(
                "in pack {}: content does not match its id",
                loc.pack.short()
            ),
        ));
    }
    Ok(raw)
}

fn read_config(backend: &dyn Backend) -> Result<Config> {
    let location = backend.location();
    let bytes = match backend.get(CONFIG_KEY) {
        Ok(b) => b,
        Err(BackendError::NotFound { .. }) => {
            return Err(match backend.probe()? {
                LocationState::Occupied => Error::NotARepository(location),
                _ => Error::NoRepository(location),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("config", &location, e))?;
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version > u64::from(FORMAT_VERSION) {
        return Err(Error::NewerFormat {
            location,
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: FORMAT_VERSION,
        });
    }
    let config: Config =
        serde_json::from_value(value).map_err(|e| Error::corrupt("config", &location, e))?;
    // Backup cuts with these sizes as they are, and FastCDC asserts on sizes
    // out of its range.
    config
        .chunker
        .validate()
        .map_err(|e| Error::corrupt("config", &location, e))?;
    Ok(config)
}

/// The cache lives in `<cache_root>/cairn/<repository id>/index.sqlite`. If it
/// cannot be opened there (read-only home, damaged file) we fall back to an
/// in-memory cache: slower, never wrong.
fn open_cache(cache_root: Option<&Path>, repo_id: &Id) -> Index {
    let on_disk = cache_root.and_then(|root| {
        let dir: PathBuf = root.join("cairn").join(repo_id.to_hex());
        crate::backend::create_dir_durable(&dir).ok()?;
        let path = dir.join("index.sqlite");
        // The cache lists every blob id: private like the repository. SQLite
        // gives its WAL and shared-memory files the database file's mode.
        let _ = crate::backend::create_private(&path);
        Index::open(Some(&path))
            .or_else(|_| {
                let _ = std::fs::remove_file(&path);
                let _ = crate::backend::create_private(&path);
                Index::open(Some(&path))
            })
            .ok()
    });
    on_disk.unwrap_or_else(|| Index::open(None).expect("in-memory SQLite opens"))
}
