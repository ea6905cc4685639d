//! Where repository files live. A backend only needs put-once (never
//! overwritten), get (whole or a byte range), list by prefix and delete, so
//! that an object store can hold a repository as well as a directory.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What went wrong with one object; every variant names its key.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No object has this key.
    #[error("{key}: no such object")]
    NotFound {
        /// The key (or local path) asked for.
        key: String,
    },
    /// A put found the key taken: objects are written once, never replaced.
    #[error("{key}: already exists (repository objects are written once)")]
    AlreadyExists {
        /// The key (or local path).
        key: String,
    },
    /// A local I/O failure.
    #[error("{key}: {source}")]
    Io {
        /// The key (or local path).
        key: String,
        /// What failed.
        source: io::Error,
    },
    /// A remote store failed (after its retries).
    #[error("{key}: {source}")]
    Remote {
        /// The key, or the location for listings.
        key: String,
        /// The store's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackendError {
    /// Map an I/O error, keeping "not found" and "exists" typed.
    pub fn from_io(key: impl Into<String>, source: io::Error) -> BackendError {
        let key = key.into();
        match source.kind() {
            io::ErrorKind::NotFound => BackendError::NotFound { key },
            io::ErrorKind::AlreadyExists => BackendError::AlreadyExists { key },
            _ => BackendError::Io { key, source },
        }
    }
}

/// Result of a backend operation.
pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// One stored object, as a listing returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What is at a location before a repository is opened or created there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationState {
    /// Nothing: the directory (or bucket prefix) does not exist.
    Missing,
    /// It exists and holds nothing.
    Empty,
    /// It holds something.
    Occupied,
}

/// Requests a backend has made, by kind, and the bytes they moved: what a
/// user of an object store is billed for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    /// PUT requests.
    pub put: u64,
    /// GET requests (whole objects and ranges).
    pub get: u64,
    /// LIST requests (pages).
    pub list: u64,
    /// DELETE requests.
    pub delete: u64,
    /// HEAD requests.
    pub head: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Attempts that failed and were retried (or reported).
    pub failed: u64,
}

/// Storage for repository files, addressed by `/`-separated keys.
pub trait Backend: Send + Sync {
    /// A human-readable location for messages.
    fn location(&self) -> String;
    /// Whether the location exists and holds anything.
    fn probe(&self) -> BackendResult<LocationState>;
    /// Store `data` under `key`, durably, only if no object has that key
    /// (`AlreadyExists` otherwise); a reader sees the whole object or none.
    fn put(&self, key: &str, data: &[u8]) -> BackendResult<()>;
    /// Store the content of a local file under `key` as `put` does, and
    /// remove the file whatever the outcome. Packs are built this way so
    /// they never sit in memory whole.
    fn put_file(&self, key: &str, file: &Path) -> BackendResult<()> {
        let data = fs::read(file).map_err(|e| BackendError::from_io(file.display().to_string(), e));
        let _ = fs::remove_file(file);
        self.put(key, &data?)
    }
    /// A local directory where files for `put_file` are best prepared (on
    /// the same filesystem, so a put is a rename); `None`: any temporary dir.
    fn staging_dir(&self) -> Option<PathBuf> {
        None
    }
    /// The whole object.
    fn get(&self, key: &str) -> BackendResult<Vec<u8>>;
    /// `len` bytes from `offset`; fails if the object is shorter.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>>;
    /// `len` bytes from `offset`, handed over as they arrive, for a range
    /// too long to hold at once that is used a piece at a time. Reading
    /// fails (`UnexpectedEof` at the latest) if the object is shorter.
    /// The reader may hold one of the backend's connections until it is
    /// read to its end or dropped: whoever reads it must not wait meanwhile
    /// for anything that needs another request. By default the range is
    /// read whole, into memory (backends that can stream override it).
    fn open_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> BackendResult<Box<dyn Read + Send + '_>> {
        Ok(Box::new(io::Cursor::new(self.get_range(key, offset, len)?)))
    }
    /// Every object whose key starts with `prefix` (a directory-like prefix
    /// such as `snapshots/`), with its size, sorted by key.
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>>;
    /// The keys [`Backend::list`] gives, without sizes: a directory then
    /// needs no `stat` per object (10,000 snapshots, 10,000 segments).
    fn list_keys(&self, prefix: &str) -> BackendResult<Vec<String>> {
        Ok(self.list(prefix)?.into_iter().map(|o| o.key).collect())
    }
    /// Remove an object; removing a missing one is not an error.
    fn delete(&self, key: &str) -> BackendResult<()>;
    /// How many operations are worth running at once (uploads, range
    /// reads): a few for a disk, many for an object store far away.
    fn concurrency(&self) -> usize {
        2
    }
    /// Whether every read crosses a network, so that what can be kept
    /// locally (snapshots, trees) should be.
    fn remote(&self) -> bool {
        false
    }
    /// The requests made so far, if the backend counts them.
    fn request_stats(&self) -> Option<RequestStats> {
        None
    }
}
