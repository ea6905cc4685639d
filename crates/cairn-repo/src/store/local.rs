//! The local backend: a repository in a directory. Files are written to a
//! temporary name, fsynced, moved into place without replacing anything and
//! their directory fsynced, so a key either holds its complete content or
//! does not exist.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::backend::{Backend, BackendError, BackendResult, LocationState, ObjectInfo};

/// A repository in a local directory. Files are written to a temporary name,
/// fsynced, moved into place without replacing anything and their directory
/// fsynced, so a key either holds its complete content or does not exist.
/// Everything is created private (files 0600, directories 0700): packs hold
/// the content of files that may be readable only by their owner.
pub struct LocalBackend {
    root: PathBuf,
    /// Open pack files, so a restore does not open a pack once per read.
    open_files: Mutex<Vec<(String, Arc<File>)>>,
}

/// Open files kept by a local backend, at most.
const OPEN_FILES: usize = 32;
/// Mode of every file the backend creates.
const FILE_MODE: u32 = 0o600;
/// Mode of every directory the backend creates.
const DIR_MODE: u32 = 0o700;

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            open_files: Mutex::default(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn err(&self, key: &str, source: io::Error) -> BackendError {
        BackendError::from_io(self.path(key).display().to_string(), source)
    }

    fn open_cached(&self, key: &str) -> io::Result<Arc<File>> {
        let mut files = self.open_files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, f)) = files.iter().find(|(k, _)| k == key) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.path(key))?);
        if files.len() >= OPEN_FILES {
            files.remove(0);
        }
        files.push((key.to_string(), f.clone()));
        Ok(f)
    }

    fn forget_open(&self, key: &str) {
        self.open_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(k, _)| k != key);
    }
}

/// Bytes `[at, end)` of a file, read in place (no seek position shared
/// with other readers of the same open file).
struct FileRange {
    file: Arc<File>,
    at: u64,
    end: u64,
}

impl io::Read for FileRange {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.at).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` and any missing parents (0700), fsyncing each new
/// directory's parent so that the new entries survive a crash.
pub(crate) fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Create a private file for writing (0600, must not exist).
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// A temporary name in a key's directory: random, never derived from the
/// pid, so a file a killed process left is never in the way.
fn temp_name() -> String {
    crate::random::unique_name(".tmp-")
}

/// Move `from` to `to` unless `to` exists (then `AlreadyExists`), atomically
/// where the filesystem allows it.
fn move_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; renameat2 reads them only.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // The filesystem has no RENAME_NOREPLACE: a hard link fails the
        // same way on an existing name, then the temporary name goes.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(err),
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn probe(&self) -> BackendResult<LocationState> {
        match fs::read_dir(&self.root) {
            Ok(mut entries) => Ok(if entries.next().is_some() {
                LocationState::Occupied
            } else {
                LocationState::Empty
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(LocationState::Missing),
            Err(e) => Err(self.err("", e)),
        }
    }

    fn put(&self, key: &str, data: &[u8]) -> BackendResult<()> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        create_dir_durable(dir).map_err(|e| self.err(key, e))?;
        let tmp = dir.join(temp_name());
        let write = || -> io::Result<()> {
            let mut f = create_private(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            move_no_replace(&tmp, &path)?;
            sync_dir(dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(key, e)
        })
    }

    /// A staged file is on the repository's filesystem, so it is moved into
    /// place: fsync it, move it without replacing, fsync the directory.
    fn put_file(&self, key: &str, file: &Path) -> BackendResult<()> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        let commit = || -> io::Result<()> {
            File::open(file)?.sync_all()?;
            create_dir_durable(dir)?;
            move_no_replace(file, &path)?;
            sync_dir(dir)
        };
        commit().map_err(|e| {
            let _ = fs::remove_file(file);
            self.err(key, e)
        })
    }

    /// `.spool/` inside the repository, so a finished pack is renamed, not copied.
    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.root.join(".spool"))
    }

    fn get(&self, key: &str) -> BackendResult<Vec<u8>> {
        fs::read(self.path(key)).map_err(|e| self.err(key, e))
    }

    /// A range past the end of the file fails (`UnexpectedEof`, naming
    /// the key) before anything is allocated: the length may come from a
    /// forged index.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        let read = || -> io::Result<Vec<u8>> {
            let f = self.open_cached(key)?;
            let size = f.metadata()?.len();
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("range of {len} bytes at offset {offset} is past the end of the object ({size} bytes)"),
                ));
            }
            let len = usize::try_from(len)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        };
        read().map_err(|e| self.err(key, e))
    }

    /// Read straight from the file as the range is consumed; a range past
    /// the end fails at once, as `get_range` does.
    fn open_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> BackendResult<Box<dyn io::Read + Send + '_>> {
        let open = || -> io::Result<FileRange> {
            let file = self.open_cached(key)?;
            let size = file.metadata()?.len();
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("range of {len} bytes at offset {offset} is past the end of the object ({size} bytes)"),
                ));
            }
            Ok(FileRange {
                file,
                at: offset,
                end: offset + len,
            })
        };
        match open() {
            Ok(range) => Ok(Box::new(range)),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.list_files(prefix, true)
    }

    fn list_keys(&self, prefix: &str) -> BackendResult<Vec<String>> {
        let listed = self.list_files(prefix, false)?;
        Ok(listed.into_iter().map(|o| o.key).collect())
    }

    fn delete(&self, key: &str) -> BackendResult<()> {
        self.forget_open(key);
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
}

impl LocalBackend {
    /// The files under `prefix`, sorted by key; with their sizes only if
    /// `sizes` (a `stat` each), else 0.
    fn list_files(&self, prefix: &str, sizes: bool) -> BackendResult<Vec<ObjectInfo>> {
        let base = self.path(prefix);
        let mut out = Vec::new();
        match fs::symlink_metadata(&base) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(self.err(prefix, e)),
            Ok(_) => {}
        }
        let dir_key = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        walk_files(&base, dir_key, sizes, &mut out).map_err(|e| self.err(prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// Regular files below `dir`, whose key is `dir_key` (empty or ending in
/// `/`), with their sizes if `sizes`. Names starting with `.` are left
/// out: temporary files of an unfinished put, and the spool. Keys are
/// built from the names read, not from paths taken apart again (a
/// listing of 10,000 snapshots spent most of its time there).
fn walk_files(
    dir: &Path,
    dir_key: String,
    sizes: bool,
    out: &mut Vec<ObjectInfo>,
) -> io::Result<()> {
    let mut stack = vec![(dir.to_path_buf(), dir_key)];
    while let Some((d, d_key)) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| !n.starts_with('.')) else {
                continue;
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push((entry.path(), format!("{d_key}{name}/")));
            } else if ft.is_file() {
                let size = match sizes.then(|| entry.metadata()) {
                    None => 0,
                    Some(Ok(m)) => m.len(),
                    // Deleted while we listed.
                    Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => continue,
                    Some(Err(e)) => return Err(e),
                };
                let key = format!("{d_key}{name}");
                out.push(ObjectInfo { key, size });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backend::BackendError;
    use std::os::unix::fs::PermissionsExt;

    fn keys(list: Vec<ObjectInfo>) -> Vec<String> {
        list.into_iter().map(|o| o.key).collect()
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        assert_eq!(b.probe().unwrap(), LocationState::Missing);
        b.put("packs/ab/abcd", b"hello world").unwrap();
        b.put("snapshots/1", b"s").unwrap();
        assert_eq!(b.probe().unwrap(), LocationState::Occupied);
        assert_eq!(b.get("packs/ab/abcd").unwrap(), b"hello world");
        assert_eq!(b.get_range("packs/ab/abcd", 6, 5).unwrap(), b"world");
        assert_eq!(
            b.list("packs/").unwrap(),
            [ObjectInfo {
                key: "packs/ab/abcd".into(),
                size: 11
            }]
        );
        b.delete("snapshots/1").unwrap();
        b.delete("snapshots/1").unwrap();
        assert!(keys(b.list("snapshots/").unwrap()).is_empty());
        assert!(matches!(b.get("nope"), Err(BackendError::NotFound { .. })));
    }

    #[test]
    fn a_range_past_the_end_fails_naming_the_key_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.put("packs/ab/abcd", b"hello world").unwrap();
        assert_eq!(b.get_range("packs/ab/abcd", 11, 0).unwrap(), b"");
        for (offset, len) in [(6, 6), (11, 1), (50, 4), (0, u64::MAX), (u64::MAX, 2)] {
            match b.get_range("packs/ab/abcd", offset, len) {
                Err(BackendError::Io { key, source }) => {
                    assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
                    assert!(key.ends_with("packs/ab/abcd"), "{key}");
                    assert!(source.to_string().contains("past the end"), "{source}");
                }
                other => panic!("{offset}+{len}: {other:?}"),
            }
        }
    }

    #[test]
    fn put_never_replaces_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.put("index/x", b"first").unwrap();
        let again = b.put("index/x", b"second");
        assert!(matches!(again, Err(BackendError::AlreadyExists { .. })));
        assert_eq!(b.get("index/x").unwrap(), b"first");
        let staged = dir.path().join("staged");
        fs::write(&staged, b"third").unwrap();
        let again = b.put_file("index/x", &staged);
        assert!(matches!(again, Err(BackendError::AlreadyExists { .. })));
        assert!(!staged.exists(), "put_file consumes its file either way");
        assert_eq!(b.get("index/x").unwrap(), b"first");
        // No temporary file is left behind by the refused puts.
        let names: Vec<_> = fs::read_dir(dir.path().join("index"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"]);
    }

    #[test]
    fn objects_and_directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.put("packs/ab/abcd", b"secret").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("repo/packs/ab/abcd")), 0o600);
        assert_eq!(mode(&dir.path().join("repo/packs/ab")), 0o700);
        assert_eq!(mode(&dir.path().join("repo/packs")), 0o700);
    }

    #[test]
    fn listing_skips_temporary_files_and_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.put("packs/ab/abcd", b"x").unwrap();
        fs::write(dir.path().join("packs/ab/.tmp-1-1"), b"partial").unwrap();
        fs::create_dir_all(dir.path().join(".spool")).unwrap();
        fs::write(dir.path().join(".spool/pack-1-1"), b"spooled").unwrap();
        assert_eq!(keys(b.list("").unwrap()), ["packs/ab/abcd"]);
        assert_eq!(b.list_keys("").unwrap(), ["packs/ab/abcd"]);
    }
}
