//! Where repository files live. A backend only needs put (once, never
//! overwritten), get (whole or a byte range), list by prefix and delete, so
//! that an object store can hold a repository as well as a directory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// Storage for repository files, addressed by `/`-separated keys.
pub trait Backend: Send + Sync {
    /// A human-readable location for messages.
    fn location(&self) -> String;
    /// Store `data` under `key`, durably, replacing nothing: writing a key
    /// that exists is an error unless its content is identical.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Store the content of a local file (written in `spool_dir`) under
    /// `key`, consuming the file. Packs are built this way so they never
    /// sit in memory whole.
    fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let data = fs::read(file).map_err(|e| Error::io(file, e))?;
        self.put(key, &data)?;
        fs::remove_file(file).map_err(|e| Error::io(file, e))
    }
    /// A local directory for files on their way into `put_file`.
    fn spool_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }
    /// Remove spool files older than `age` (left by crashed backups);
    /// returns how many.
    fn clean_spool(&self, age: std::time::Duration) -> u64 {
        let Ok(entries) = fs::read_dir(self.spool_dir()) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a > age);
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("pack-");
            if old && ours && !writer_alive(&name) && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
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

/// Whether the process named in a spool file (`pack-<pid>-<n>`) runs here.
fn writer_alive(name: &str) -> bool {
    let pid = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0)
}

/// A repository in a local directory. Files are written to a temporary name,
/// fsynced, renamed into place and their directory fsynced, so a key either
/// holds its complete content or does not exist.
pub struct LocalBackend {
    root: PathBuf,
    /// Open pack files, so a restore does not open a pack once per blob.
    open_files: Mutex<HashMap<String, Arc<File>>>,
}

/// Open files kept by a local backend, at most.
const OPEN_FILES: usize = 64;

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            open_files: Mutex::default(),
        }
    }

    fn open_cached(&self, key: &str) -> io::Result<Arc<File>> {
        let mut files = self.open_files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(key) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.path(key))?);
        if files.len() >= OPEN_FILES {
            files.clear();
        }
        files.insert(key.to_string(), f.clone());
        Ok(f)
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

    /// A spooled file is on the repository's filesystem, so it is moved
    /// into place by a rename: fsync it, rename, fsync the directory.
    fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        let commit = || -> io::Result<()> {
            File::open(file)?.sync_all()?;
            create_dir_durable(dir)?;
            if path.exists() {
                return fs::remove_file(file);
            }
            fs::rename(file, &path)?;
            sync_dir(dir)
        };
        commit().map_err(|e| {
            let _ = fs::remove_file(file);
            self.err(key, e)
        })
    }

    /// `.spool/` inside the repository, so a finished pack is renamed, not copied.
    fn spool_dir(&self) -> PathBuf {
        self.root.join(".spool")
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        fs::read(self.path(key)).map_err(|e| self.err(key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let read = || -> io::Result<Vec<u8>> {
            let f = self.open_cached(key)?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, offset)?;
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
        self.open_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let path = self.path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.err(key, e)),
            Err(_) => Ok(()),
            // Make the removal durable too: a forgotten snapshot must not
            // come back after a crash.
            Ok(()) => path
                .parent()
                .map_or(Ok(()), sync_dir)
                .map_err(|e| self.err(key, e)),
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
    fn clean_spool_removes_only_old_files_of_dead_writers() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let spool = b.spool_dir();
        fs::create_dir_all(&spool).unwrap();
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        let dead = spool.join("pack-999999999-0");
        let alive = spool.join(format!("pack-{}-0", std::process::id()));
        let fresh = spool.join("pack-999999999-1");
        for p in [&dead, &alive, &fresh] {
            fs::write(p, b"x").unwrap();
        }
        filetime::set_file_mtime(&dead, old).unwrap();
        filetime::set_file_mtime(&alive, old).unwrap();
        assert_eq!(b.clean_spool(std::time::Duration::from_secs(3600)), 1);
        assert!(!dead.exists() && alive.exists() && fresh.exists());
    }

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
