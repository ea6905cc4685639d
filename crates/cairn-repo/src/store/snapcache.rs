//! The local copy of a repository's snapshots: every readable snapshot's
//! stored bytes in one file (`snapshots.cache` beside the index cache,
//! docs/FORMAT.md 8.1), so that listing snapshots or resolving `latest`
//! reads one local file rather than every snapshot object.
//!
//! Snapshots are written once and named by the hash of their stored bytes,
//! so a copy that hashes to its id *is* that snapshot: the repository
//! checks each entry as if it came from the backend (hash, seal, parse) and
//! treats one that fails as not cached. Which snapshots exist is never
//! decided here: the caller lists `snapshots/` and uses only the entries
//! it names, so a forgotten snapshot cannot come back. The bytes are the
//! stored ones, sealed in an encrypted repository: the file holds nothing
//! in clear that the repository does not.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_chunk::Id;

use crate::store::local::create_private;

/// First bytes of the file; a file without them is not read.
const MAGIC: &[u8; 8] = b"CRNSNPC1";

/// Snapshot stored bytes by id, as read from the cache file.
#[derive(Debug, Default)]
pub struct Cached {
    /// The entries (unchecked: the caller verifies each against its id).
    pub entries: HashMap<Id, Vec<u8>>,
    /// Whether the file was there and whole: when not, it should be
    /// written again even if no snapshot changed.
    pub whole: bool,
}

/// The cache file of one repository, or none (an in-memory index cache).
pub struct SnapshotCache {
    path: Option<PathBuf>,
}

impl SnapshotCache {
    /// A cache kept at `path`, or none.
    pub fn new(path: Option<PathBuf>) -> SnapshotCache {
        SnapshotCache { path }
    }

    /// Whether there is a file to keep.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// The cached entries; none when the file is missing or damaged (a
    /// damaged file costs a re-read of the snapshots, never a wrong list).
    pub fn load(&self) -> Cached {
        let Some(bytes) = self.path.as_ref().and_then(|p| std::fs::read(p).ok()) else {
            return Cached::default();
        };
        match decode(&bytes) {
            Some(entries) => Cached {
                entries,
                whole: true,
            },
            None => Cached::default(),
        }
    }

    /// Replace the file with `entries`. Failures are ignored (it is only a
    /// cache): the file is written under a temporary name and renamed, so
    /// other processes see the old file or the new one, never a part. Not
    /// fsynced: a crash may leave it short or empty, which [`Self::load`]
    /// tells from a whole one.
    pub fn store<'a>(&self, entries: impl IntoIterator<Item = (&'a Id, &'a [u8])>) {
        let Some(path) = &self.path else {
            return;
        };
        let tmp = temp_path(path);
        let write = || -> std::io::Result<()> {
            let mut f = std::io::BufWriter::new(create_private(&tmp)?);
            f.write_all(&encode(entries))?;
            f.into_inner().map_err(|e| e.into_error())?;
            std::fs::rename(&tmp, path)
        };
        if write().is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    path.with_file_name(crate::random::unique_name(&format!(".{name}.tmp-")))
}

/// `MAGIC`, then per entry: 32-byte id, u32 little-endian length, the
/// stored bytes. Sorted by id, so equal sets make equal files.
fn encode<'a>(entries: impl IntoIterator<Item = (&'a Id, &'a [u8])>) -> Vec<u8> {
    let mut sorted: Vec<(&Id, &[u8])> = entries.into_iter().collect();
    sorted.sort_by_key(|(id, _)| **id);
    let len: usize = sorted.iter().map(|(_, b)| 36 + b.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + len);
    out.extend_from_slice(MAGIC);
    for (id, bytes) in sorted {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The entries of a file made by [`encode`]; `None` if it is not one (a
/// wrong magic, or an entry running past the end: cut short or damaged).
fn decode(bytes: &[u8]) -> Option<HashMap<Id, Vec<u8>>> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut entries = HashMap::new();
    while !rest.is_empty() {
        let (head, tail) = rest.split_at_checked(36)?;
        let id = Id::from_slice(&head[..32])?;
        let len = u32::from_le_bytes(head[32..36].try_into().ok()?) as usize;
        let (stored, tail) = tail.split_at_checked(len)?;
        entries.insert(id, stored.to_vec());
        rest = tail;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_in(dir: &Path) -> SnapshotCache {
        SnapshotCache::new(Some(dir.join("snapshots.cache")))
    }

    #[test]
    fn keeps_what_it_was_given_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache_in(dir.path());
        assert!(!c.load().whole, "no file yet");
        let (a, b) = (Id::of(b"a"), Id::of(b"b"));
        c.store([(&a, &b"a"[..]), (&b, &b"b"[..])]);
        let got = c.load();
        assert!(got.whole);
        assert_eq!(got.entries.len(), 2);
        assert_eq!(got.entries[&b], b"b");
        c.store([(&b, &b"b"[..])]);
        let got = c.load();
        assert_eq!(got.entries.keys().collect::<Vec<_>>(), [&b]);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file stays");
    }

    #[test]
    fn a_cut_or_foreign_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache_in(dir.path());
        let a = Id::of(b"a");
        c.store([(&a, &b"stored bytes"[..])]);
        let path = dir.path().join("snapshots.cache");
        let full = std::fs::read(&path).unwrap();
        for cut in [0, 4, MAGIC.len() + 10, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let got = c.load();
            assert!(!got.whole && got.entries.is_empty(), "cut at {cut}");
        }
        let mut foreign = full.clone();
        foreign[0] ^= 1;
        std::fs::write(&path, &foreign).unwrap();
        assert!(!c.load().whole);
    }

    mod through_the_repository {
        use std::sync::Arc;

        use super::*;
        use crate::format::config::Config;
        use crate::format::crypto::Secret;
        use crate::format::layout::{self, FileType};
        use crate::format::snapshot::Snapshot;
        use crate::store::keys::{init_encrypted, KeySource, Owner};
        use crate::{Backend, LocalBackend, Repository};

        struct Key;

        impl KeySource for Key {
            fn secrets(&self, _: &Id) -> std::result::Result<Vec<Secret>, String> {
                Ok(vec![Secret::KeyFile([9; 32].into())])
            }
        }

        struct World {
            dir: tempfile::TempDir,
            backend: Arc<dyn Backend>,
        }

        impl World {
            fn new(encrypted: bool) -> World {
                let dir = tempfile::tempdir().unwrap();
                let backend: Arc<dyn Backend> =
                    Arc::new(LocalBackend::new(dir.path().join("repo")));
                let config = Config::new(Default::default(), cairn_chunk::Compression::None);
                if encrypted {
                    let owner = Owner {
                        host: "h".into(),
                        user: "u".into(),
                    };
                    let secret = Secret::KeyFile([9; 32].into());
                    init_encrypted(&*backend, &config, &secret, 1, &owner, None, None).unwrap();
                } else {
                    Repository::init(&*backend, &config).unwrap();
                }
                World { dir, backend }
            }

            /// A new process: the repository opened again over the same cache.
            fn open(&self) -> Repository {
                let cache = self.dir.path().join("cache");
                Repository::open_with(self.backend.clone(), Some(&cache), &Key).unwrap()
            }

            fn cache_file(&self, repo: &Repository) -> PathBuf {
                let id = repo.config().id.to_hex();
                self.dir
                    .path()
                    .join(format!("cache/cairn/{id}/snapshots.cache"))
            }

            fn repo_file(&self, id: &Id) -> PathBuf {
                let key = layout::key(FileType::Snapshot, id);
                self.dir.path().join("repo").join(key)
            }
        }

        fn snap(host: &str, time: &str) -> Snapshot {
            let mut s: Snapshot = serde_json::from_value(serde_json::json!({
                "version": 1, "time": time, "host": host, "volume": "v", "paths": [],
                "tree": Id::default(), "parent": null, "program": "test",
                "summary": {"files_new": 0, "files_changed": 0, "files_unmodified": 0,
                            "dirs": 0, "bytes_read": 0, "bytes_added_stored": 0,
                            "duration_s": 0.0}
            }))
            .unwrap();
            s.tags = vec!["t".into()];
            s
        }

        fn hosts(repo: &Repository) -> Vec<String> {
            let list = repo.snapshot_list().unwrap();
            assert!(list.damaged.is_empty(), "{:?}", list.damaged);
            list.snapshots.into_iter().map(|(_, s)| s.host).collect()
        }

        fn cached_ids(w: &World, repo: &Repository) -> Vec<Id> {
            let c = SnapshotCache::new(Some(w.cache_file(repo)));
            let mut ids: Vec<Id> = c.load().entries.into_keys().collect();
            ids.sort();
            ids
        }

        #[test]
        fn new_snapshots_appear_and_forgotten_ones_never_come_back() {
            let w = World::new(false);
            let repo = w.open();
            let a = repo
                .save_snapshot(&snap("a", "2026-01-01T00:00:00Z"))
                .unwrap();
            assert_eq!(hosts(&repo), ["a"]);
            assert_eq!(cached_ids(&w, &repo), [a]);
            let b = repo
                .save_snapshot(&snap("b", "2026-01-02T00:00:00Z"))
                .unwrap();
            assert_eq!(
                hosts(&w.open()),
                ["a", "b"],
                "the new one is read and added"
            );
            let mut both = vec![a, b];
            both.sort();
            assert_eq!(cached_ids(&w, &repo), both);

            let with_a = std::fs::read(w.cache_file(&repo)).unwrap();
            repo.remove_snapshot(&a).unwrap();
            assert_eq!(hosts(&w.open()), ["b"]);
            assert_eq!(cached_ids(&w, &repo), [b], "the stale entry is dropped");
            // Even a cache file that still holds it (written by a process
            // that listed before the forget) does not bring it back.
            std::fs::write(w.cache_file(&repo), with_a).unwrap();
            assert_eq!(hosts(&w.open()), ["b"]);
            assert_eq!(cached_ids(&w, &repo), [b]);
        }

        #[test]
        fn listings_use_the_copies_and_judges_read_the_repository() {
            let w = World::new(false);
            let repo = w.open();
            let a = repo
                .save_snapshot(&snap("a", "2026-01-01T00:00:00Z"))
                .unwrap();
            assert_eq!(hosts(&repo), ["a"]);
            // The repository's object damaged after it was cached: the
            // listing has the copy checked when it was taken; check and
            // prune (the uncached list) see the damage.
            let path = w.repo_file(&a);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[10] ^= 1;
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(hosts(&w.open()), ["a"]);
            let judged = w.open().snapshot_list_uncached().unwrap();
            assert!(judged.snapshots.is_empty());
            assert_eq!(judged.damaged.len(), 1);
        }

        #[test]
        fn a_damaged_cache_file_is_ignored_and_written_again() {
            let w = World::new(false);
            let repo = w.open();
            let a = repo
                .save_snapshot(&snap("a", "2026-01-01T00:00:00Z"))
                .unwrap();
            let b = repo
                .save_snapshot(&snap("b", "2026-01-02T00:00:00Z"))
                .unwrap();
            assert_eq!(hosts(&repo), ["a", "b"]);
            let file = w.cache_file(&repo);
            let good = std::fs::read(&file).unwrap();
            let mut both = vec![a, b];
            both.sort();

            // A flipped byte inside an entry: that copy fails its id and
            // is read again; the other is used.
            let mut flipped = good.clone();
            flipped[MAGIC.len() + 36 + 20] ^= 1;
            std::fs::write(&file, &flipped).unwrap();
            assert_eq!(hosts(&w.open()), ["a", "b"]);
            assert_eq!(std::fs::read(&file).unwrap(), good, "written again");

            // Cut short, empty, or not a cache file at all.
            for bad in [&good[..good.len() - 3], &[][..], &b"garbage"[..]] {
                std::fs::write(&file, bad).unwrap();
                assert_eq!(hosts(&w.open()), ["a", "b"]);
                assert_eq!(cached_ids(&w, &repo), both);
            }
        }

        #[test]
        fn an_encrypted_repository_keeps_its_snapshots_sealed_here_too() {
            let w = World::new(true);
            let repo = w.open();
            repo.save_snapshot(&snap("secret-host-name", "2026-01-01T00:00:00Z"))
                .unwrap();
            assert_eq!(hosts(&repo), ["secret-host-name"]);
            let file = std::fs::read(w.cache_file(&repo)).unwrap();
            let clear = file.windows(16).any(|win| win == b"secret-host-name");
            assert!(!clear, "the cache holds a snapshot in clear");
            assert_eq!(hosts(&w.open()), ["secret-host-name"]);
        }
    }

    #[test]
    fn without_a_path_nothing_is_kept() {
        let c = SnapshotCache::new(None);
        let a = Id::of(b"a");
        c.store([(&a, &b"a"[..])]);
        assert!(!c.enabled());
        assert!(c.load().entries.is_empty());
    }
}
