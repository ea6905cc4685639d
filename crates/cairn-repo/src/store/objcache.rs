//! A local copy of small repository objects that are read again and again
//! (snapshots, tree blobs), kept for backends where every read crosses a
//! network: `snapshots`, `ls`, `diff` and a backup with nothing to do then
//! read them from disk. Everything read from here is verified as if it came
//! from the repository (hash, seal, id), so a damaged copy is damage, never
//! wrong data; deleting the directory is always safe.

use std::path::{Path, PathBuf};

use crate::store::local::{create_dir_durable, create_private};

/// A directory of cached objects, by repository key.
pub struct ObjectCache {
    dir: Option<PathBuf>,
}

impl ObjectCache {
    /// A cache in `dir`, or none.
    pub fn new(dir: Option<PathBuf>) -> ObjectCache {
        ObjectCache { dir }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        // Keys are `/`-separated names we made ourselves; never `..`.
        self.dir.as_ref().map(|d| d.join(key))
    }

    /// Whether there is a cache at all.
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// Whether `key` is cached (its bytes are not checked).
    pub fn has(&self, key: &str) -> bool {
        self.path(key).is_some_and(|p| p.exists())
    }

    /// The cached bytes of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)?).ok()
    }

    /// Remember `key`'s bytes; failures are ignored (it is only a cache).
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let Some(path) = self.path(key) else {
            return;
        };
        // Unique per write, not per process: threads of one process (a
        // mount's prefetch and its listings) may cache the same key at once.
        let tmp = path.with_extension(crate::random::unique_name("tmp"));
        let write = || -> std::io::Result<()> {
            create_dir_durable(path.parent().unwrap_or(Path::new(".")))?;
            let mut f = create_private(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            std::fs::rename(&tmp, &path)
        };
        if write().is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Forget `key`.
    pub fn remove(&self, key: &str) {
        if let Some(p) = self.path(key) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// The keys cached under `prefix` (one directory level).
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let Some(dir) = self.path(prefix) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(|n| format!("{prefix}{n}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_forgets_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let c = ObjectCache::new(Some(dir.path().join("objects")));
        assert!(c.get("snapshots/a").is_none());
        c.put("snapshots/a", b"x");
        c.put("snapshots/b", b"y");
        assert_eq!(c.get("snapshots/a").unwrap(), b"x");
        let mut keys = c.list("snapshots/");
        keys.sort();
        assert_eq!(keys, ["snapshots/a", "snapshots/b"]);
        c.remove("snapshots/a");
        assert!(c.get("snapshots/a").is_none());
        let none = ObjectCache::new(None);
        none.put("k", b"v");
        assert!(none.get("k").is_none());
    }
}
