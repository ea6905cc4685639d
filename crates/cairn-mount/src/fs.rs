//! The filesystem: inodes, directory listings, attributes and reads.
//!
//! Just over 500 lines: the FUSE callbacks and the inode table they share.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_repo::format::tree::Timestamp;
use cairn_repo::{Id, Node, NodeKind, Repository};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};

use crate::cache::ChunkCache;
use crate::prefetch::Prefetcher;

/// Repository contents never change under a snapshot: cache attributes long.
const TTL: Duration = Duration::from_secs(3600);
/// Decompressed chunks kept for reads (at most 128 KiB each by default).
const CACHED_CHUNKS: usize = 256;

struct Inode {
    parent: u64,
    node: Node,
    /// Name and inode of each entry, once listed.
    children: Option<Vec<(Vec<u8>, u64)>>,
    /// Start offset of each chunk of a file, once read.
    offsets: Option<Arc<Vec<u64>>>,
    /// The root tree of the snapshot it is in, if it is in one.
    snapshot: Option<Id>,
}

/// The mounted repository.
pub struct CairnFs {
    repo: Arc<Repository>,
    /// Fetches trees ahead of listings (remote repositories only).
    prefetch: Option<Arc<Prefetcher>>,
    inodes: Mutex<Vec<Inode>>,
    cache: Mutex<ChunkCache>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn virtual_dir(name: &str, mtime: Timestamp) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind: NodeKind::Dir,
        mode: 0o555,
        mtime,
        ctime: mtime,
        nlink: 2,
        // SAFETY: getuid/getgid cannot fail.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        ..Node::default()
    }
}

fn virtual_link(name: &str, target: &str, mtime: Timestamp) -> Node {
    Node {
        kind: NodeKind::Symlink,
        mode: 0o777,
        target: target.as_bytes().to_vec(),
        ..virtual_dir(name, mtime)
    }
}

/// A volume name as one directory entry: names cairn stores are already
/// safe, but a damaged or forged snapshot may hold `..` or a `/`.
fn directory_name(volume: &str) -> String {
    if cairn_repo::format::tree::is_safe_name(volume.as_bytes()) {
        return volume.to_string();
    }
    let escaped = volume
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('\0', "%00");
    match escaped.as_str() {
        "" => "%00".into(),
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => escaped,
    }
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        sec: t.timestamp(),
        nsec: t.timestamp_subsec_nanos(),
    }
}

impl CairnFs {
    /// Build the top of the tree (snapshots, volumes, ids) from the
    /// repository's snapshots; their contents load on demand.
    pub fn new(repo: Repository) -> cairn_repo::Result<CairnFs> {
        let snaps = repo.snapshots()?;
        let now = stamp(chrono::Utc::now());
        let mut fs = Builder { inodes: Vec::new() };
        let root = fs.add(0, virtual_dir("", now), Some(Vec::new()));
        let snapshots = fs.add(root, virtual_dir("snapshots", now), Some(Vec::new()));
        let volumes = fs.add(root, virtual_dir("volumes", now), Some(Vec::new()));
        let ids = fs.add(root, virtual_dir("ids", now), Some(Vec::new()));
        let mut by_volume: HashMap<String, u64> = HashMap::new();
        for (id, snap) in &snaps {
            let time = snap.timestamp();
            let label = time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let dir_name = format!("{label}_{}", id.short());
            let mut node = virtual_dir(&dir_name, stamp(time));
            node.subtree = Some(snap.tree);
            if let Some(r) = &snap.root {
                node.mode = r.mode;
                node.uid = r.uid;
                node.gid = r.gid;
                node.mtime = Timestamp {
                    sec: r.mtime_sec,
                    nsec: r.mtime_nsec,
                };
            }
            let ino = fs.add(snapshots, node.clone(), None);
            fs.inodes[ino as usize - 1].snapshot = Some(snap.tree);
            fs.add(
                ids,
                virtual_link(
                    &id.short(),
                    &format!("../snapshots/{dir_name}"),
                    stamp(time),
                ),
                Some(Vec::new()),
            );
            let vol = *by_volume.entry(snap.volume.clone()).or_insert_with(|| {
                let name = directory_name(&snap.volume);
                fs.add(volumes, virtual_dir(&name, now), Some(Vec::new()))
            });
            let mut entry_name = label.clone();
            if fs.has_child(vol, entry_name.as_bytes()) {
                entry_name = dir_name.clone();
            }
            node.name = entry_name.as_bytes().to_vec();
            let ino = fs.add(vol, node, None);
            fs.inodes[ino as usize - 1].snapshot = Some(snap.tree);
            fs.set_latest(vol, &entry_name, stamp(time));
        }
        let repo = Arc::new(repo);
        Ok(CairnFs {
            prefetch: Prefetcher::new(repo.clone()),
            repo,
            inodes: Mutex::new(fs.inodes),
            cache: Mutex::new(ChunkCache::new(CACHED_CHUNKS)),
        })
    }

    /// The entries of a directory inode, loading its tree the first time
    /// (the first listing of a snapshot starts fetching all its trees).
    fn children(&self, ino: u64) -> Result<Vec<(Vec<u8>, u64)>, Errno> {
        let (subtree, snapshot) = {
            let inodes = lock(&self.inodes);
            let inode = inodes.get(ino as usize - 1).ok_or(Errno::ENOENT)?;
            if let Some(c) = &inode.children {
                return Ok(c.clone());
            }
            if inode.node.kind != NodeKind::Dir {
                return Err(Errno::ENOTDIR);
            }
            (inode.node.subtree, inode.snapshot)
        };
        if let (Some(tree), Some(root), Some(p)) = (subtree, snapshot, &self.prefetch) {
            p.start(root);
            p.wait_for(&root, &tree);
        }
        let nodes = match subtree {
            Some(t) => self.repo.load_tree(&t).map_err(|_| Errno::EIO)?.nodes,
            None => Vec::new(),
        };
        let mut inodes = lock(&self.inodes);
        if let Some(c) = &inodes[ino as usize - 1].children {
            return Ok(c.clone()); // another request loaded it meanwhile
        }
        let mut list = Vec::with_capacity(nodes.len());
        for node in nodes {
            inodes.push(Inode {
                parent: ino,
                children: None,
                offsets: None,
                node: node.clone(),
                snapshot,
            });
            list.push((node.name, inodes.len() as u64));
        }
        inodes[ino as usize - 1].children = Some(list.clone());
        Ok(list)
    }

    fn node(&self, ino: u64) -> Result<Node, Errno> {
        lock(&self.inodes)
            .get((ino as usize).wrapping_sub(1))
            .map(|i| i.node.clone())
            .ok_or(Errno::ENOENT)
    }

    /// A chunk's bytes; a blob whose length is not what the tree says is
    /// damage (EIO), never sliced past its end.
    fn chunk(&self, id: &Id, len: u32) -> Result<Arc<Vec<u8>>, Errno> {
        if let Some(c) = lock(&self.cache).get(id) {
            return if c.len() == len as usize {
                Ok(c)
            } else {
                Err(Errno::EIO)
            };
        }
        let data = self.repo.read_blob(id).map_err(|_| Errno::EIO)?;
        if data.len() != len as usize {
            return Err(Errno::EIO);
        }
        let data = Arc::new(data);
        lock(&self.cache).put(*id, data.clone());
        Ok(data)
    }

    fn offsets(&self, ino: u64) -> Result<(Node, Arc<Vec<u64>>), Errno> {
        let mut inodes = lock(&self.inodes);
        let inode = inodes.get_mut(ino as usize - 1).ok_or(Errno::ENOENT)?;
        let offsets = inode
            .offsets
            .get_or_insert_with(|| {
                let mut at = 0u64;
                Arc::new(
                    inode
                        .node
                        .content
                        .iter()
                        .map(|c| {
                            let start = at;
                            at += u64::from(c.len);
                            start
                        })
                        .collect(),
                )
            })
            .clone();
        Ok((inode.node.clone(), offsets))
    }

    /// Bytes `offset..offset+size` of a file, loading only the chunks they touch.
    fn read_range(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let (node, starts) = self.offsets(ino)?;
        let end = offset.saturating_add(u64::from(size)).min(node.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut i = starts.partition_point(|&s| s <= offset).saturating_sub(1);
        while i < node.content.len() && starts[i] < end {
            let chunk = &node.content[i];
            let data = self.chunk(&chunk.id, chunk.len)?;
            let from = offset.max(starts[i]) - starts[i];
            let to = end.min(starts[i] + data.len() as u64) - starts[i];
            out.extend_from_slice(&data[from as usize..to as usize]);
            i += 1;
        }
        Ok(out)
    }
}

struct Builder {
    inodes: Vec<Inode>,
}

impl Builder {
    fn add(&mut self, parent: u64, node: Node, children: Option<Vec<(Vec<u8>, u64)>>) -> u64 {
        let name = node.name.clone();
        self.inodes.push(Inode {
            parent,
            node,
            children,
            offsets: None,
            snapshot: None,
        });
        let ino = self.inodes.len() as u64;
        if parent != 0 {
            if let Some(c) = &mut self.inodes[parent as usize - 1].children {
                c.push((name, ino));
            }
        }
        ino
    }

    fn has_child(&self, dir: u64, name: &[u8]) -> bool {
        self.inodes[dir as usize - 1]
            .children
            .as_ref()
            .is_some_and(|c| c.iter().any(|(n, _)| n == name))
    }

    /// Point `<dir>/latest` at `name` (snapshots arrive oldest first).
    fn set_latest(&mut self, dir: u64, name: &str, mtime: Timestamp) {
        let existing = self.inodes[dir as usize - 1]
            .children
            .as_ref()
            .and_then(|c| c.iter().find(|(n, _)| n == b"latest").map(|(_, i)| *i));
        match existing {
            Some(ino) => self.inodes[ino as usize - 1].node = virtual_link("latest", name, mtime),
            None => {
                self.add(dir, virtual_link("latest", name, mtime), Some(Vec::new()));
            }
        }
    }
}

fn file_type(k: NodeKind) -> FileType {
    match k {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDev => FileType::CharDevice,
        NodeKind::BlockDev => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

fn system_time(t: Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs())
            + Duration::from_nanos(u64::from(t.nsec))
    }
}

fn attr(ino: u64, n: &Node) -> FileAttr {
    let size = match n.kind {
        NodeKind::File => n.size,
        NodeKind::Symlink => n.target.len() as u64,
        _ => 0,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: system_time(n.mtime),
        mtime: system_time(n.mtime),
        ctime: system_time(n.ctime),
        crtime: system_time(n.mtime),
        kind: file_type(n.kind),
        perm: (n.mode & 0o7777) as u16,
        nlink: if n.kind == NodeKind::Dir {
            2
        } else {
            n.nlink.max(1) as u32
        },
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn xattr_reply(data: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() <= size as usize {
        reply.data(data);
    } else {
        reply.error(Errno::ERANGE);
    }
}

impl Filesystem for CairnFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.children(parent.0).and_then(|c| {
            c.iter()
                .find(|(n, _)| n.as_slice() == name.as_bytes())
                .map(|(_, ino)| *ino)
                .ok_or(Errno::ENOENT)
        });
        match found.and_then(|ino| Ok((ino, self.node(ino)?))) {
            Ok((ino, node)) => reply.entry(&TTL, &attr(ino, &node), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino.0) {
            Ok(node) => reply.attr(&TTL, &attr(ino.0, &node)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino.0) {
            Ok(n) if n.kind == NodeKind::Symlink => reply.data(&n.target),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino.0) {
            Ok(n) if n.kind == NodeKind::Dir => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_range(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let children = match self.children(ino.0) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let parent = lock(&self.inodes)[ino.0 as usize - 1].parent.max(1);
        let mut entries = vec![
            (ino.0, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        {
            let inodes = lock(&self.inodes);
            for (name, child) in children {
                let kind = file_type(inodes[child as usize - 1].node.kind);
                entries.push((child, kind, name));
            }
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.node(ino.0) {
            Ok(n) => match n
                .xattrs
                .iter()
                .find(|(k, _)| k.as_slice() == name.as_bytes())
            {
                Some((_, v)) => xattr_reply(v, size, reply),
                None => reply.error(Errno::ENODATA),
            },
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.node(ino.0) {
            Ok(n) => {
                let mut names = Vec::new();
                for (k, _) in &n.xattrs {
                    names.extend_from_slice(k);
                    names.push(0);
                }
                xattr_reply(&names, size, reply);
            }
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::directory_name;

    #[test]
    fn unsafe_volume_names_are_escaped() {
        assert_eq!(directory_name("pgdata"), "pgdata");
        assert_eq!(directory_name(".."), "%2E%2E");
        assert_eq!(directory_name("."), "%2E");
        assert_eq!(directory_name(""), "%00");
        assert_eq!(directory_name("a/b"), "a%2Fb");
        assert_eq!(directory_name("50%/x"), "50%25%2Fx");
    }
}
