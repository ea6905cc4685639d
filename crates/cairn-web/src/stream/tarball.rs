//! A snapshot directory as a tar archive: GNU headers (long names as GNU
//! tar writes them), and a PAX record before an entry for what a header
//! cannot hold: nanosecond modification times and extended attributes.
//! Hard-linked files become one file and links to it, as in the snapshot.
//! Names come from trees, which the library has already checked: none is
//! empty, `.`, `..` or holds `/`, so no entry can point outside the archive.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn_repo::{Id, Node, NodeKind};
use tar::{Builder, EntryType, Header};

use super::{ChannelWriter, ChunkReader};
use crate::state::App;

/// Write `root` (a directory node) and everything below it.
pub fn write(app: &App, root: &Node, out: &mut ChannelWriter) -> io::Result<()> {
    let mut tw = TarWriter {
        app,
        b: Builder::new(out),
        links: HashMap::new(),
    };
    // `./` carries the directory's own attributes.
    tw.entry(Path::new("./"), root)?;
    if let Some(t) = root.subtree {
        tw.dir(&t, PathBuf::new())?;
    }
    tw.b.into_inner()?;
    Ok(())
}

struct TarWriter<'a, 'w> {
    app: &'a App,
    b: Builder<&'w mut ChannelWriter>,
    /// First path of each hard-linked inode written.
    links: HashMap<(u64, u64), PathBuf>,
}

impl TarWriter<'_, '_> {
    fn dir(&mut self, tree: &Id, prefix: PathBuf) -> io::Result<()> {
        // Straight from the repository: a whole walk would only churn the
        // page cache of trees.
        let tree = self.app.repo.load_tree(tree).map_err(io::Error::other)?;
        for n in &tree.nodes {
            let path = prefix.join(OsStr::from_bytes(&n.name));
            self.entry(&path, n)?;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                self.dir(&sub, path)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, n: &Node) -> io::Result<()> {
        if n.kind == NodeKind::Socket {
            return Ok(()); // recorded, never recreated (as restore does)
        }
        let mut h = Header::new_gnu();
        h.set_mode(n.mode);
        h.set_uid(n.uid.into());
        h.set_gid(n.gid.into());
        h.set_mtime(n.mtime.sec.max(0) as u64);
        h.set_size(0);
        self.pax(n)?;
        match n.kind {
            NodeKind::File => self.file(h, path, n),
            NodeKind::Dir => self.plain(h, EntryType::Directory, path),
            NodeKind::Fifo => self.plain(h, EntryType::Fifo, path),
            NodeKind::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                self.b
                    .append_link(&mut h, path, OsStr::from_bytes(&n.target))
            }
            NodeKind::CharDev | NodeKind::BlockDev => {
                let (major, minor) = split_dev(n.rdev);
                h.set_device_major(major)?;
                h.set_device_minor(minor)?;
                let t = if n.kind == NodeKind::CharDev {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                self.plain(h, t, path)
            }
            NodeKind::Socket => Ok(()),
        }
    }

    fn plain(&mut self, mut h: Header, t: EntryType, path: &Path) -> io::Result<()> {
        h.set_entry_type(t);
        self.b.append_data(&mut h, path, io::empty())
    }

    fn file(&mut self, mut h: Header, path: &Path, n: &Node) -> io::Result<()> {
        if n.nlink > 1 {
            if let Some(first) = self.links.get(&(n.dev, n.inode)) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                return self.b.append_link(&mut h, path, first);
            }
            self.links.insert((n.dev, n.inode), path.to_path_buf());
        }
        h.set_entry_type(EntryType::Regular);
        h.set_size(n.size);
        let repo = self.app.repo.clone();
        self.b.append_data(&mut h, path, ChunkReader::new(&repo, n))
    }

    /// A PAX header for the next entry, when it has what ustar cannot say.
    fn pax(&mut self, n: &Node) -> io::Result<()> {
        let mut data = Vec::new();
        if n.mtime.nsec != 0 {
            let t = format!("{}.{:09}", n.mtime.sec, n.mtime.nsec);
            pax_record(&mut data, b"mtime", t.as_bytes());
        }
        for (k, v) in &n.xattrs {
            pax_record(&mut data, &[b"SCHILY.xattr.", k.as_slice()].concat(), v);
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_path("PaxHeader")?;
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data.as_slice())
    }
}

/// One PAX record: `LEN KEY=VALUE\n`, where LEN counts the whole record,
/// its own digits included.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Linux's encoding of a device number into major and minor.
fn split_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let mut out = Vec::new();
        pax_record(&mut out, b"mtime", b"1.5");
        assert_eq!(out, b"13 mtime=1.5\n");
        let mut long = Vec::new();
        pax_record(&mut long, b"k", &[b'v'; 95]);
        assert_eq!(long.len(), 102);
        assert!(long.starts_with(b"102 k="));
    }

    #[test]
    fn device_numbers_split_as_linux_does() {
        // makedev(8, 1) and makedev(259, 70000).
        assert_eq!(split_dev(0x801), (8, 1));
        let big = ((259u64 & 0xfff) << 8) | ((70000u64 & 0xff) | ((70000u64 & !0xff) << 12));
        assert_eq!(split_dev(big), (259, 70000));
    }
}
