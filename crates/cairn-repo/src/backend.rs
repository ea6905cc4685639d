//! Where repository files live. A backend only needs put (once, never
//! overwritten), get (whole or a byte range), list by prefix and delete, so
//! that an object store can hold a repository as well as a directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Storage for repository files, addressed by `/`-separated keys.
pub trait Backend: Send + Sync {
    /// A human-readable location for messages.
    fn location(&self) -> String;
    /// Store `data` under `key`, durably, replacing nothing: writing a key
    /// that exists is an error unless its content is identical.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// The whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// `len` bytes from `offset`.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Size of an object.
    fn size(&self, key: &str) -> Result<u64>;
    /// Keys under `prefix` (a directory-like prefix such as `snapshots/`).
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Remove an object; removing a missing one is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Whether an object exists.
    fn exists(&self, key: &str) -> Result<bool>;
}

/// A repository in a local directory. Files are written to a temporary name,
/// fsynced, renamed into place and their directory fsynced, so a key either
/// holds its complete content or does not exist.
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn err(&self, key: &str, source: io::Error) -> Error {
        Error::Backend {
            key: self.path(key).display().to_string(),
            source,
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` and any missing parents, fsyncing each new directory's parent
/// so that the new entries survive a crash.
fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

fn temp_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        ".tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        create_dir_durable(dir).map_err(|e| self.err(key, e))?;
        let tmp = dir.join(temp_name());
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            if path.exists() {
                // Content-addressed keys: the same name means the same bytes.
                fs::remove_file(&tmp)?;
                return Ok(());
            }
            fs::rename(&tmp, &path)?;
            sync_dir(dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(key, e)
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        fs::read(self.path(key)).map_err(|e| self.err(key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let read = || -> io::Result<Vec<u8>> {
            let mut f = File::open(self.path(key))?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf)?;
            Ok(buf)
        };
        read().map_err(|e| self.err(key, e))
    }

    fn size(&self, key: &str) -> Result<u64> {
        fs::metadata(self.path(key))
            .map(|m| m.len())
            .map_err(|e| self.err(key, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let base = self.path(prefix);
        let mut out = Vec::new();
        if !base.exists() {
            return Ok(out);
        }
        for entry in walk_files(&base).map_err(|e| self.err(prefix, e))? {
            let rel = entry.strip_prefix(&self.root).expect("under root");
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            if name.starts_with('.') {
                continue; // temporary files of an unfinished put
            }
            if let Some(s) = rel.to_str() {
                out.push(s.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.err(key, e)),
            _ => Ok(()),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key).exists())
    }
}

fn walk_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.put("packs/ab/abcd", b"hello world").unwrap();
        b.put("packs/ab/abcd", b"hello world").unwrap();
        b.put("snapshots/1", b"s").unwrap();
        assert_eq!(b.get("packs/ab/abcd").unwrap(), b"hello world");
        assert_eq!(b.get_range("packs/ab/abcd", 6, 5).unwrap(), b"world");
        assert_eq!(b.list("packs/").unwrap(), ["packs/ab/abcd"]);
        assert_eq!(b.size("snapshots/1").unwrap(), 1);
        b.delete("snapshots/1").unwrap();
        b.delete("snapshots/1").unwrap();
        assert!(!b.exists("snapshots/1").unwrap());
        assert!(b.get("nope").is_err());
    }
}
