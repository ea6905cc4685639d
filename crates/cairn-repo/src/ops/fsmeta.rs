//! Reading a node's attributes from the filesystem at backup, and applying
//! them at restore (owner, mode, extended attributes, times, in that order,
//! because chown clears setuid bits and writing content changes mtime).

use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::format::tree::{Node, NodeKind, Timestamp};

/// The kind of entry `meta` describes.
pub fn kind_of(meta: &Metadata) -> NodeKind {
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDev
    } else if ft.is_block_device() {
        NodeKind::BlockDev
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// A node for `path` from its lstat `meta`; reads symlink targets, and
/// xattrs except for regular files (the caller decides: a file unchanged
/// since the parent snapshot keeps the parent's, see [`read_xattrs`]).
pub fn node_from(path: &Path, name: &[u8], meta: &Metadata) -> std::io::Result<Node> {
    let kind = kind_of(meta);
    let target = if kind == NodeKind::Symlink {
        std::fs::read_link(path)?.as_os_str().as_bytes().to_vec()
    } else {
        Vec::new()
    };
    Ok(Node {
        name: name.to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: Timestamp {
            sec: meta.mtime(),
            nsec: meta.mtime_nsec() as u32,
        },
        ctime: Timestamp {
            sec: meta.ctime(),
            nsec: meta.ctime_nsec() as u32,
        },
        dev: meta.dev(),
        inode: meta.ino(),
        nlink: meta.nlink(),
        size: if kind == NodeKind::File {
            meta.len()
        } else {
            0
        },
        rdev: if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
            meta.rdev()
        } else {
            0
        },
        target,
        xattrs: if kind == NodeKind::File {
            Vec::new()
        } else {
            read_xattrs(path)
        },
        content: Vec::new(),
        subtree: None,
    })
}

/// Extended attributes, sorted by name. Filesystems without xattr support
/// simply have none.
pub fn read_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names
        .filter_map(|n| {
            let v = xattr::get(path, &n).ok()??;
            Some((n.as_bytes().to_vec(), v))
        })
        .collect();
    out.sort();
    out
}

/// Whether this process can set owners and create devices.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Apply owner (when root), mode (not for symlinks), xattrs and mtime.
/// Returns the first failure; every step is still attempted.
pub fn apply(path: &Path, node: &Node, as_root: bool) -> std::io::Result<()> {
    let mut first_err = None;
    let mut note = |r: std::io::Result<()>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    if as_root {
        note(std::os::unix::fs::lchown(
            path,
            Some(node.uid),
            Some(node.gid),
        ));
    }
    if node.kind != NodeKind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        note(std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(node.mode),
        ));
    }
    for (k, v) in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(k);
        note(xattr::set(path, name, v));
    }
    note(set_mtime(path, node.mtime));
    first_err.map_or(Ok(()), Err)
}

/// Set atime and mtime to `t` without following a symlink.
pub fn set_mtime(path: &Path, t: Timestamp) -> std::io::Result<()> {
    let ft = filetime::FileTime::from_unix_time(t.sec, t.nsec);
    filetime::set_symlink_file_times(path, ft, ft)
}

/// Create a FIFO or device node.
pub fn make_special(path: &Path, node: &Node) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    let kind_bits = match node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDev => libc::S_IFCHR,
        NodeKind::BlockDev => libc::S_IFBLK,
        _ => return Err(std::io::Error::other("not a special file")),
    };
    // SAFETY: `c` is a valid NUL-terminated path; mknod has no other preconditions.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            kind_bits | (node.mode & 0o7777) as libc::mode_t,
            node.rdev as libc::dev_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
