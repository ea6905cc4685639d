//! The restore target, reached only through directory descriptors: every
//! path below the target is opened one component at a time with
//! `O_NOFOLLOW`, so neither a forged snapshot nor a symlink planted in a
//! live target can make a restore write outside it. Everything is created
//! private (files 0600, directories 0700) and widened to its recorded mode
//! only once complete.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::format::tree::{Node, NodeKind, Timestamp};

/// Directory descriptors kept open for reuse, at most.
const CACHED_DIRS: usize = 32;

/// What is at a path of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Nothing,
    Dir,
    File { nlink: u64, size: u64 },
    Other,
}

/// The target directory of a restore.
pub(crate) struct Dest {
    root: Arc<OwnedFd>,
    cache: Mutex<DirCache>,
}

#[derive(Default)]
struct DirCache {
    fds: HashMap<PathBuf, Arc<OwnedFd>>,
    order: VecDeque<PathBuf>,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Split a relative path into its parent and last component.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no name"))?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

fn openat(dir: RawFd, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and NUL-terminated name; the result is a new
    // descriptor we own, or -1.
    let fd = check(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    })?;
    // SAFETY: openat returned a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: RawFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    // SAFETY: stat is plain data; fstatat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, name and out pointer.
    let rc = unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc == 0 {
        return Ok(Some(st));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

// st_nlink and st_size are not u64 on every target.
#[allow(clippy::unnecessary_cast)]
fn found(st: &libc::stat) -> Found {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Found::Dir,
        libc::S_IFREG => Found::File {
            nlink: st.st_nlink as u64,
            size: st.st_size as u64,
        },
        _ => Found::Other,
    }
}

/// A path of the form `/proc/self/fd/N/name`: the kernel resolves the
/// descriptor itself, so no component of it can be swapped for a symlink.
fn proc_path(dir: RawFd, name: &OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{dir}")).join(name)
}

impl Dest {
    /// Open (creating if needed, private) the target directory.
    pub fn open(target: &Path) -> io::Result<Dest> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(target)?;
        Dest::open_existing(target)
    }

    /// Open the target directory, which must exist.
    pub fn open_existing(target: &Path) -> io::Result<Dest> {
        let dir = File::open(target)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::other("not a directory"));
        }
        Ok(Dest {
            root: Arc::new(dir.into()),
            cache: Mutex::default(),
        })
    }

    fn cached(&self, rel: &Path) -> Option<Arc<OwnedFd>> {
        if rel.as_os_str().is_empty() {
            return Some(self.root.clone());
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.fds.get(rel).cloned()
    }

    fn remember(&self, rel: &Path, fd: Arc<OwnedFd>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.fds.insert(rel.to_path_buf(), fd).is_none() {
            cache.order.push_back(rel.to_path_buf());
        }
        while cache.order.len() > CACHED_DIRS {
            if let Some(old) = cache.order.pop_front() {
                cache.fds.remove(&old);
            }
        }
    }

    /// Forget cached descriptors at or below `rel` (it is being removed).
    fn forget(&self, rel: &Path) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.fds.retain(|p, _| !p.starts_with(rel));
        cache.order.retain(|p| !p.starts_with(rel));
    }

    /// An existing directory of the target.
    pub fn dir(&self, rel: &Path) -> io::Result<Arc<OwnedFd>> {
        if let Some(fd) = self.cached(rel) {
            return Ok(fd);
        }
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let fd = Arc::new(openat(
            parent.as_raw_fd(),
            name,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?);
        self.remember(rel, fd.clone());
        Ok(fd)
    }

    /// What is at `rel` (symlinks are not followed).
    pub fn found(&self, rel: &Path) -> io::Result<Found> {
        if rel.as_os_str().is_empty() {
            return Ok(Found::Dir);
        }
        let (parent, name) = split(rel)?;
        let parent = match self.dir(parent) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
            Err(e) => return Err(e),
        };
        Ok(lstat_at(parent.as_raw_fd(), name)?.map_or(Found::Nothing, |st| found(&st)))
    }

    /// Make `rel` a directory (0700 when created; whatever is there and is
    /// not a directory is removed first). True when it was created.
    pub fn ensure_dir(&self, rel: &Path) -> io::Result<bool> {
        if rel.as_os_str().is_empty() {
            return Ok(false);
        }
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let created = match lstat_at(parent.as_raw_fd(), name)?.map(|st| found(&st)) {
            Some(Found::Dir) => false,
            Some(_) => {
                self.remove(rel)?;
                mkdir(parent.as_raw_fd(), name)?;
                true
            }
            None => {
                mkdir(parent.as_raw_fd(), name)?;
                true
            }
        };
        self.dir(rel)?;
        Ok(created)
    }

    /// Names in the directory `rel`.
    pub fn entries(&self, rel: &Path) -> io::Result<Vec<Vec<u8>>> {
        let dir = self.dir(rel)?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
            .collect()
    }

    /// Remove whatever is at `rel` (a directory with all it holds).
    pub fn remove(&self, rel: &Path) -> io::Result<()> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        self.forget(rel);
        let c = cstr(name)?;
        match lstat_at(parent.as_raw_fd(), name)?.map(|st| found(&st)) {
            None => Ok(()),
            // std's remove_dir_all never follows symlinks below its start.
            Some(Found::Dir) => std::fs::remove_dir_all(proc_path(parent.as_raw_fd(), name)),
            // SAFETY: valid descriptor and name.
            Some(_) => {
                check(unsafe { libc::unlinkat(parent.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
            }
        }
    }

    /// Create a new, private regular file (fails if `rel` exists).
    pub fn create_file(&self, rel: &Path) -> io::Result<File> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let fd = openat(
            parent.as_raw_fd(),
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )?;
        Ok(File::from(fd))
    }

    /// Open an existing regular file (never through a symlink).
    pub fn open_file(&self, rel: &Path, write: bool) -> io::Result<File> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
        let file = File::from(openat(parent.as_raw_fd(), name, flags, 0)?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    /// Create a symlink, FIFO or device node at `rel` (nothing may be there).
    pub fn make_special(&self, rel: &Path, node: &Node) -> io::Result<()> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let c = cstr(name)?;
        let fd = parent.as_raw_fd();
        let rc = match node.kind {
            NodeKind::Symlink => {
                let target = CString::new(node.target.clone())
                    .map_err(|_| io::Error::other("symlink target contains NUL"))?;
                // SAFETY: valid strings and descriptor.
                unsafe { libc::symlinkat(target.as_ptr(), fd, c.as_ptr()) }
            }
            NodeKind::Fifo | NodeKind::CharDev | NodeKind::BlockDev => {
                let kind = match node.kind {
                    NodeKind::Fifo => libc::S_IFIFO,
                    NodeKind::CharDev => libc::S_IFCHR,
                    _ => libc::S_IFBLK,
                };
                // SAFETY: valid descriptor and name.
                unsafe { libc::mknodat(fd, c.as_ptr(), kind | 0o600, node.rdev as libc::dev_t) }
            }
            _ => return Err(io::Error::other("not a special file")),
        };
        check(rc).map(drop)
    }

    /// Make `link` another name of the file at `first`.
    pub fn hard_link(&self, first: &Path, link: &Path) -> io::Result<()> {
        let (fp, fname) = split(first)?;
        let (lp, lname) = split(link)?;
        let (fdir, ldir) = (self.dir(fp)?, self.dir(lp)?);
        let (fc, lc) = (cstr(fname)?, cstr(lname)?);
        // SAFETY: valid descriptors and names; flags 0 links the entry itself.
        check(unsafe {
            libc::linkat(
                fdir.as_raw_fd(),
                fc.as_ptr(),
                ldir.as_raw_fd(),
                lc.as_ptr(),
                0,
            )
        })
        .map(drop)
    }

    /// Whether two paths name the same inode.
    pub fn same_inode(&self, a: &Path, b: &Path) -> bool {
        let ino = |rel: &Path| -> Option<(u64, u64)> {
            let (parent, name) = split(rel).ok()?;
            let st = lstat_at(self.dir(parent).ok()?.as_raw_fd(), name).ok()??;
            Some((st.st_dev, st.st_ino))
        };
        matches!((ino(a), ino(b)), (Some(x), Some(y)) if x == y)
    }

    /// Apply a directory's attributes to the directory `rel`.
    pub fn apply_dir(&self, rel: &Path, node: &Node, as_root: bool) -> io::Result<()> {
        let dir = self.dir(rel)?;
        apply_fd(dir.as_fd(), node, as_root)
    }

    /// Apply the attributes of a symlink or special file at `rel` (it is not
    /// opened: opening a FIFO would block).
    pub fn apply_special(&self, rel: &Path, node: &Node, as_root: bool) -> io::Result<()> {
        let (parent, name) = split(rel)?;
        let parent = self.dir(parent)?;
        let fd = parent.as_raw_fd();
        let c = cstr(name)?;
        let mut first = None;
        let mut note = |r: io::Result<()>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        if as_root {
            // SAFETY: valid descriptor and name; does not follow symlinks.
            note(
                check(unsafe {
                    libc::fchownat(
                        fd,
                        c.as_ptr(),
                        node.uid,
                        node.gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .map(drop),
            );
        }
        if node.kind != NodeKind::Symlink {
            // Only called on what this restore just created: not a symlink.
            // SAFETY: valid descriptor and name.
            note(check(unsafe { libc::fchmodat(fd, c.as_ptr(), node.mode & 0o7777, 0) }).map(drop));
        }
        for (k, v) in &node.xattrs {
            // The xattr crate's path functions use the l* calls: the link itself.
            note(xattr::set(proc_path(fd, name), OsStr::from_bytes(k), v));
        }
        let times = [timespec(node.mtime), timespec(node.mtime)];
        // SAFETY: valid descriptor, name and a two-element array.
        note(
            check(unsafe {
                libc::utimensat(fd, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            })
            .map(drop),
        );
        first.map_or(Ok(()), Err)
    }
}

fn mkdir(dir: RawFd, name: &OsStr) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and name.
    check(unsafe { libc::mkdirat(dir, c.as_ptr(), 0o700) }).map(drop)
}

fn timespec(t: Timestamp) -> libc::timespec {
    libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: i64::from(t.nsec) as _,
    }
}

/// Apply owner (when root), mode, xattrs and mtime through a descriptor, in
/// that order (chown clears setuid bits; the mode comes after it). Every
/// step is attempted; the first failure is returned.
pub(crate) fn apply_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    node: &Node,
    as_root: bool,
) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut first = None;
    let mut note = |r: io::Result<()>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    if as_root {
        note(std::os::unix::fs::fchown(
            fd,
            Some(node.uid),
            Some(node.gid),
        ));
    }
    // SAFETY: valid descriptor.
    note(check(unsafe { libc::fchmod(raw, (node.mode & 0o7777) as libc::mode_t) }).map(drop));
    for (k, v) in &node.xattrs {
        let c = cstr(OsStr::from_bytes(k))?;
        // SAFETY: valid descriptor, name and value buffer.
        note(
            check(unsafe { libc::fsetxattr(raw, c.as_ptr(), v.as_ptr().cast(), v.len(), 0) })
                .map(drop),
        );
    }
    let times = [timespec(node.mtime), timespec(node.mtime)];
    // SAFETY: valid descriptor and a two-element array.
    note(check(unsafe { libc::futimens(raw, times.as_ptr()) }).map(drop));
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_follows_a_symlink_out_of_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let (target, outside) = (dir.path().join("t"), dir.path().join("outside"));
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("link")).unwrap();
        let dest = Dest::open(&target).unwrap();
        assert!(dest.create_file(Path::new("link/escape")).is_err());
        assert!(dest.open_file(Path::new("link"), true).is_err());
        // Making it a directory replaces the symlink, never writes through it.
        assert!(dest.ensure_dir(Path::new("link")).unwrap());
        dest.create_file(Path::new("link/inside")).unwrap();
        assert!(target.join("link/inside").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn created_entries_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = Dest::open(dir.path()).unwrap();
        dest.ensure_dir(Path::new("d")).unwrap();
        dest.create_file(Path::new("d/f")).unwrap();
        let mode = |p: &str| {
            std::fs::symlink_metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("d"), 0o700);
        assert_eq!(mode("d/f"), 0o600);
    }

    #[test]
    fn removing_a_directory_forgets_its_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Dest::open(dir.path()).unwrap();
        dest.ensure_dir(Path::new("a")).unwrap();
        dest.ensure_dir(Path::new("a/b")).unwrap();
        dest.remove(Path::new("a")).unwrap();
        assert_eq!(dest.found(Path::new("a")).unwrap(), Found::Nothing);
        dest.ensure_dir(Path::new("a")).unwrap();
        assert!(dest.dir(Path::new("a/b")).is_err());
    }
}
