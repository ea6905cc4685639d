//! Restore of a forged snapshot: the input describes up to four trees (the
//! later ones may hold the earlier ones as subdirectories) with hostile
//! names (`..`, `/`, NUL, empty, too long), every kind of entry, chunk
//! references with lying lengths or to missing or wrong blobs, hard-link
//! groups, xattrs and symlinks pointing out of the target. They are stored
//! with the repository's own writers, and the snapshot is restored into a
//! scratch directory, sometimes one that already holds symlinks and a hard
//! link leading out of it, sometimes twice (the second time in place).
//!
//! A restore may fail or report problems. It must never panic, never
//! create or change anything outside the scratch directory (a canary
//! directory beside it is compared entry by entry, attributes and content,
//! before and after), and never write through a symlink inside it: every
//! entry the scratch directory holds afterwards must be one the snapshot
//! has at that path, of that kind, or one planted there before. A dry run
//! must change nothing at all.
#![no_main]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cairn_chunk::{ChunkerParams, Compression};
use cairn_repo::format::layout::{self, FileType};
use cairn_repo::format::pack::BlobKind;
use cairn_repo::format::segment::Segment;
use cairn_repo::format::snapshot::{RootMeta, Summary};
use cairn_repo::format::tree::{ChunkRef, Timestamp};
use cairn_repo::ops::restore::{restore, NoRestoreProgress, RestoreOptions};
use cairn_repo::store::packer::Uploader;
use cairn_repo::{Config, Id, LocalBackend, Node, NodeKind, Repository, Snapshot, Tree};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Everything made once per process.
struct World {
    repo: Repository,
    /// The segment listing the known blobs, re-added after each run clears
    /// the index of what that run stored.
    base: (Id, Segment),
    /// Data blobs in the repository, with their true lengths.
    blobs: Vec<(Id, u32)>,
    /// `<work>/restore`: holds `repo` and `sandbox`, nothing else.
    top: PathBuf,
    /// `sandbox`: holds `scratch` (the target) and `canary`, nothing else.
    sandbox: PathBuf,
    scratch: PathBuf,
    canary: PathBuf,
    canary_state: Listing,
}

fn world() -> &'static Mutex<World> {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    WORLD.get_or_init(|| Mutex::new(World::new()))
}

impl World {
    fn new() -> World {
        let top = cairn_fuzz::work_dir().join("restore");
        let (repo_dir, sandbox) = (top.join("repo"), top.join("sandbox"));
        let (scratch, canary) = (sandbox.join("scratch"), sandbox.join("canary"));
        std::fs::create_dir_all(canary.join("dir")).unwrap();
        std::fs::write(canary.join("file"), b"canary\n").unwrap();
        std::fs::write(canary.join("dir/inner"), b"inner\n").unwrap();
        std::os::unix::fs::symlink("file", canary.join("link")).unwrap();
        // Not every filesystem takes user xattrs; the canary works without.
        let _ = xattr::set(canary.join("file"), "user.canary", b"1");

        let backend = LocalBackend::new(&repo_dir);
        let config = Config::new(ChunkerParams::default(), Compression::None);
        Repository::init(&backend, &config).unwrap();
        let repo = Repository::open(Arc::new(backend), None).unwrap();
        let contents: Vec<Vec<u8>> = vec![
            b"hello\n".to_vec(),
            Vec::new(),
            vec![0u8; 4096],
            (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ];
        let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), false);
        {
            let data = uploader.packer(BlobKind::Data, 1 << 20);
            for c in &contents {
                data.add(Id::of(c), c, false, c.len() as u32).unwrap();
            }
            data.flush().unwrap();
        }
        let packs = uploader.finish().unwrap();
        let seg_id = repo
            .write_segment(Segment {
                supersedes: Vec::new(),
                packs,
            })
            .unwrap();
        let base = (seg_id, repo.read_segment(&seg_id).unwrap());
        let blobs = contents
            .iter()
            .map(|c| (Id::of(c), c.len() as u32))
            .collect();
        let canary_state = listing(&canary, true);
        World {
            repo,
            base,
            blobs,
            top,
            sandbox,
            scratch,
            canary,
            canary_state,
        }
    }
}

// ---------------------------------------------------------------------------
// The forged snapshot
// ---------------------------------------------------------------------------

/// Names a forger would try, including every kind a reader must refuse and
/// the names of the entries planted in the target.
const NAMES: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"out",
    b"rel",
    b"hl",
    b"dl",
    b"\xff\xfe",
    b"..",
    b".",
    b"",
    b"a/b",
    b"/",
    b"x\0y",
];

/// Symlink targets: out of the target, up from it, into the canary. Every
/// one stays inside the work directory even if a restore followed it, so a
/// bug found here cannot damage the machine running the fuzzer.
fn link_targets(w: &World) -> Vec<Vec<u8>> {
    let canary = w.canary.as_os_str().as_bytes();
    vec![
        canary.to_vec(),
        [canary, b"/file"].concat(),
        [canary, b"/dir"].concat(),
        [canary, b"/nothing"].concat(),
        b"../canary".to_vec(),
        b"../canary/file".to_vec(),
        b"../../sandbox/canary/dir".to_vec(),
        b"..".to_vec(),
        b"../..".to_vec(),
        b".".to_vec(),
        b"a".to_vec(),
        b"hl".to_vec(),
        Vec::new(),
    ]
}

fn name(u: &mut Unstructured) -> ArbResult<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=19)? {
        0..=13 => {
            // Mostly safe names: one unsafe name makes the whole tree unreadable.
            let i = u.int_in_range(0..=NAMES.len() - 1)?;
            let i = if i >= 8 && u.ratio(2, 3)? { i % 8 } else { i };
            NAMES[i].to_vec()
        }
        14 => vec![b'n'; 255],
        15 => vec![b'n'; 256],
        _ => {
            let len = u.int_in_range(1..=6)?;
            take(u, len)?
        }
    })
}

/// Up to `len` bytes: a short input still makes a plan.
fn take(u: &mut Unstructured, len: usize) -> ArbResult<Vec<u8>> {
    let len = len.min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

fn pick<T: Copy>(u: &mut Unstructured, choices: &[T]) -> ArbResult<T> {
    Ok(*u.choose(choices)?)
}

/// One entry; `trees` are the trees made so far (possible subtrees),
/// `data` the data blobs and their true lengths.
fn node(u: &mut Unstructured, w: &World, trees: &[Id], data: &[(Id, u32)]) -> ArbResult<Node> {
    let kind = match u.int_in_range(0u8..=11)? {
        0..=3 => NodeKind::File,
        4..=6 => NodeKind::Dir,
        7 | 8 => NodeKind::Symlink,
        9 => NodeKind::Fifo,
        _ => pick(
            u,
            &[NodeKind::CharDev, NodeKind::BlockDev, NodeKind::Socket],
        )?,
    };
    let mut n = Node {
        name: name(u)?,
        kind,
        mode: if u.ratio(1, 4)? {
            u.arbitrary()?
        } else {
            pick(u, &[0o644, 0o755, 0o700, 0o000, 0o4755, 0o1777, 0o200])?
        },
        uid: pick(u, &[0, 1000, 65534, u32::MAX])?,
        gid: pick(u, &[0, 1000, 65534, u32::MAX])?,
        mtime: Timestamp {
            sec: pick(u, &[0, 1_700_000_000, -1, i64::MAX, i64::MIN])?,
            nsec: pick(u, &[0, 999_999_999, 1_000_000_000, u32::MAX])?,
        },
        dev: u.int_in_range(0..=1)?,
        inode: u.int_in_range(0..=2)?,
        nlink: pick(u, &[1, 1, 2, 3])?,
        ..Node::default()
    };
    for _ in 0..u.int_in_range(0..=2)? {
        let key = pick(
            u,
            &[
                &b"user.a"[..],
                b"user.b",
                b"trusted.t",
                b"security.x",
                b"",
                b"bad",
            ],
        )?;
        let len = u.int_in_range(0..=8)?;
        n.xattrs.push((key.to_vec(), take(u, len)?));
    }
    match kind {
        NodeKind::File => {
            let missing = Id::of(b"no such blob");
            for _ in 0..u.int_in_range(0..=4)? {
                let (id, true_len) = match u.int_in_range(0u8..=9)? {
                    0 => (missing, 6),
                    1 if !trees.is_empty() => (pick(u, trees)?, 16),
                    _ => pick(u, data)?,
                };
                // Huge lies are rarer than small ones: a restore makes the
                // file that large (sparse), and comparing such chunks with
                // it reads gigabytes of holes, seconds per input.
                let len = match u.int_in_range(0u8..=39)? {
                    0..=26 => true_len,
                    27..=30 => u.int_in_range(0..=1 << 20)?,
                    31..=34 => true_len.wrapping_add(1),
                    35..=38 => true_len.saturating_sub(1),
                    _ => u32::MAX,
                };
                n.content.push(ChunkRef { id, len });
            }
            n.size = n.content.iter().map(|c| u64::from(c.len)).sum();
            if u.ratio(1, 16)? {
                n.size += 1; // a size the chunks do not add up to
            }
        }
        NodeKind::Dir => {
            n.subtree = match u.int_in_range(0u8..=9)? {
                0 => None,
                1 => Some(Id::of(b"no such tree")),
                2 => Some(pick(u, data)?.0),
                _ if trees.is_empty() => None,
                _ => Some(pick(u, trees)?),
            };
        }
        NodeKind::Symlink => {
            n.target = if u.ratio(1, 8)? {
                // A harmless single component: no `/`, no dots.
                let len = u.int_in_range(1..=12)?;
                take(u, len)?
                    .iter()
                    .map(|&b| {
                        if b == b'/' || b == b'.' || b == 0 {
                            b'_'
                        } else {
                            b
                        }
                    })
                    .collect()
            } else {
                u.choose(&link_targets(w))?.clone()
            };
        }
        // Devices as a non-harmful number: restored as root, a device node
        // with a real disk's number would be a loaded gun in /dev/shm.
        NodeKind::CharDev | NodeKind::BlockDev => n.rdev = pick(u, &[0, libc::makedev(1, 3)])?,
        _ => {}
    }
    Ok(n)
}

/// What one input asks for.
struct Plan {
    /// Encoded trees, in the order made (later ones may contain earlier ones).
    trees: Vec<(Id, Vec<u8>)>,
    /// Data blobs the input brings (the known ones are already stored).
    extra: Vec<Vec<u8>>,
    roots: [Id; 2],
    root_meta: Option<RootMeta>,
    subpath: Vec<u8>,
    includes: Vec<String>,
    excludes: Vec<String>,
    delete: [bool; 2],
    verify: bool,
    dry_run_first: bool,
    /// 0: the target does not exist; 1: empty; 2: with planted entries.
    target: u8,
    second: bool,
}

fn plan(u: &mut Unstructured, w: &World) -> ArbResult<Plan> {
    let mut data = w.blobs.clone();
    let mut extra = Vec::new();
    if u.ratio(1, 3)? {
        let len = u.int_in_range(0..=64)?;
        let blob = take(u, len)?;
        data.push((Id::of(&blob), blob.len() as u32));
        extra.push(blob);
    }
    let mut trees: Vec<(Id, Vec<u8>)> = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let ids: Vec<Id> = trees.iter().map(|t| t.0).collect();
        let mut nodes = Vec::new();
        for _ in 0..u.int_in_range(0..=6)? {
            nodes.push(node(u, w, &ids, &data)?);
        }
        let bytes = Tree { nodes }.encode();
        trees.push((Id::of(&bytes), bytes));
    }
    let last = trees.last().expect("at least one tree").0;
    let root = |u: &mut Unstructured| -> ArbResult<Id> {
        Ok(match u.int_in_range(0u8..=9)? {
            0 => Id::of(b"no such tree"),
            1 => data[0].0,
            2 | 3 => u.choose(&trees)?.0,
            _ => last,
        })
    };
    let roots = [root(u)?, root(u)?];
    let root_meta = if u.ratio(1, 3)? {
        Some(RootMeta {
            mode: pick(u, &[0o700, 0o755, 0o000, 0o1777])?,
            uid: pick(u, &[0, 1000])?,
            gid: pick(u, &[0, 1000])?,
            mtime_sec: pick(u, &[0, -1, i64::MAX])?,
            mtime_nsec: pick(u, &[0, 1_000_000_000])?,
        })
    } else {
        None
    };
    let subpath = pick(
        u,
        &[
            &b""[..],
            b"",
            b"",
            b"/",
            b".",
            b"a",
            b"a/b",
            b"b",
            b"hl",
            b"..",
            b"a/../b",
            b"out",
            b"/a/",
        ],
    )?
    .to_vec();
    let globs = |u: &mut Unstructured, pool: &[&str]| -> ArbResult<Vec<String>> {
        Ok(match u.int_in_range(0u8..=7)? {
            0 => vec![pick(u, pool)?.to_string()],
            _ => Vec::new(),
        })
    };
    Ok(Plan {
        includes: globs(u, &["a", "a/**", "*", "["])?,
        excludes: globs(u, &["b", "**/hl", "out"])?,
        trees,
        extra,
        roots,
        root_meta,
        subpath,
        delete: [u.arbitrary()?, u.arbitrary()?],
        verify: u.ratio(1, 16)?,
        dry_run_first: u.ratio(1, 8)?,
        target: u.int_in_range(0..=2)?,
        second: u.ratio(1, 3)?,
    })
}

/// Store the plan's trees and blobs and two snapshots (one per root).
fn store(w: &World, p: &Plan) -> (Vec<Id>, Id, [(Id, Snapshot); 2]) {
    let uploader = Uploader::start(w.repo.backend().clone(), w.repo.codec().clone(), false);
    {
        let trees = uploader.packer(BlobKind::Tree, 1 << 20);
        let data = uploader.packer(BlobKind::Data, 1 << 20);
        let mut seen = HashSet::new();
        for (id, bytes) in &p.trees {
            if seen.insert(*id) {
                trees.add(*id, bytes, false, bytes.len() as u32).unwrap();
            }
        }
        for blob in &p.extra {
            if seen.insert(Id::of(blob)) {
                data.add(Id::of(blob), blob, false, blob.len() as u32)
                    .unwrap();
            }
        }
        trees.flush().unwrap();
        data.flush().unwrap();
    }
    let packs = uploader.finish().unwrap();
    let pack_ids = packs.iter().map(|r| r.pack).collect();
    let seg = w
        .repo
        .write_segment(Segment {
            supersedes: Vec::new(),
            packs,
        })
        .unwrap();
    let snap = |tree: Id, n: u32| Snapshot {
        version: 1,
        // Distinct documents, so each run's snapshots have ids of their own.
        time: format!("2026-01-01T00:00:{:02}.{:09}Z", n, next_serial()),
        host: "forger".into(),
        volume: "forged".into(),
        tags: Vec::new(),
        paths: vec!["/forged".into()],
        tree,
        parent: None,
        root: p.root_meta.clone(),
        summary: Summary::default(),
        program: "fuzz".into(),
        original: None,
    };
    let snaps = [snap(p.roots[0], 0), snap(p.roots[1], 1)].map(|s| {
        let id = w.repo.save_snapshot(&s).unwrap();
        (id, s)
    });
    (pack_ids, seg, snaps)
}

fn next_serial() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000_000
}

/// Remove what `store` added, so the repository stays small.
fn unstore(w: &World, packs: &[Id], seg: &Id, snaps: &[(Id, Snapshot)]) {
    for (id, _) in snaps {
        w.repo.remove_snapshot(id).unwrap();
    }
    let backend = w.repo.backend();
    for pack in packs {
        backend.delete(&layout::key(FileType::Pack, pack)).unwrap();
    }
    backend.delete(&layout::key(FileType::Index, seg)).unwrap();
    w.repo.index().clear().unwrap();
    w.repo.index().add_segment(&w.base.0, &w.base.1).unwrap();
}

// ---------------------------------------------------------------------------
// Checking the filesystem
// ---------------------------------------------------------------------------

/// Everything observable about one entry that a restore could change.
#[derive(Debug, PartialEq, Eq)]
struct State {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    /// File content or symlink target.
    content: Vec<u8>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

type Listing = BTreeMap<PathBuf, State>;

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "chardev"
    } else if t.is_block_device() {
        "blockdev"
    } else {
        "socket"
    }
}

/// The state of `dir` and everything below it, never following symlinks;
/// file content only with `read` (a restore leaves huge sparse files, and
/// FIFOs, in the target).
fn listing(dir: &Path, read: bool) -> Listing {
    let mut out = Listing::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = kind_of(meta.file_type());
        let content = match kind {
            "file" if read => std::fs::read(&path).unwrap_or_default(),
            "symlink" => std::fs::read_link(&path)
                .map(|t| t.into_os_string().into_vec())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let xattrs = if kind == "symlink" {
            BTreeMap::new()
        } else {
            xattr::list(&path)
                .map(|names| {
                    names
                        .filter_map(|n| {
                            let v = xattr::get(&path, &n).ok().flatten()?;
                            Some((n.as_bytes().to_vec(), v))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        if kind == "dir" {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
        out.insert(
            path.strip_prefix(dir).unwrap().to_path_buf(),
            State {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                // A directory's size counts its entries on some filesystems.
                size: if kind == "dir" { 0 } else { meta.size() },
                mtime: (meta.mtime(), meta.mtime_nsec()),
                content,
                xattrs,
            },
        );
    }
    out
}

use std::os::unix::ffi::OsStringExt;

fn names(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_vec())
        .collect();
    v.sort();
    v
}

/// Entries the target may hold after restoring `subpath` of a snapshot:
/// path relative to the target, and the kinds it may have there.
fn explained(w: &World, snap_id: &Id, snap: &Snapshot, subpath: &[u8], into: &mut Allowed) {
    let Ok(root) = w.repo.resolve_path(snap_id, snap, subpath) else {
        return;
    };
    if root.kind != NodeKind::Dir {
        add(into, PathBuf::from(root.os_name()), root.kind);
        return;
    }
    let mut stack = vec![(PathBuf::new(), root.subtree)];
    let mut budget = 100_000;
    while let Some((rel, subtree)) = stack.pop() {
        let Some(tree) = subtree.and_then(|t| w.repo.load_tree(&t).ok()) else {
            continue;
        };
        for n in tree.nodes {
            budget -= 1;
            assert!(budget > 0, "snapshot too large to explain");
            let path = rel.join(OsStr::from_bytes(&n.name));
            add(into, path.clone(), n.kind);
            if n.kind == NodeKind::Dir {
                stack.push((path, n.subtree));
            }
        }
    }
}

type Allowed = HashMap<PathBuf, HashSet<&'static str>>;

fn add(into: &mut Allowed, path: PathBuf, kind: NodeKind) {
    let k = match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDev => "chardev",
        NodeKind::BlockDev => "blockdev",
        NodeKind::Socket => "socket",
    };
    into.entry(path).or_default().insert(k);
}

/// Entries planted in the target before the restore, pointing out of it.
fn plant(w: &World) -> Allowed {
    let s = &w.scratch;
    std::os::unix::fs::symlink(&w.canary, s.join("out")).unwrap();
    std::os::unix::fs::symlink("../canary", s.join("rel")).unwrap();
    std::os::unix::fs::symlink("../canary/dir", s.join("dl")).unwrap();
    std::fs::hard_link(w.canary.join("file"), s.join("hl")).unwrap();
    let mut planted = Allowed::new();
    for (name, kind) in [
        ("out", NodeKind::Symlink),
        ("rel", NodeKind::Symlink),
        ("dl", NodeKind::Symlink),
        ("hl", NodeKind::File),
    ] {
        add(&mut planted, PathBuf::from(name), kind);
    }
    planted
}

/// Nothing outside the scratch directory changed, and everything inside it
/// is explained by `allowed`.
fn check(w: &World, allowed: &Allowed, what: &str) {
    assert_eq!(
        names(&w.top),
        vec![b"repo".to_vec(), b"sandbox".to_vec()],
        "{what}: something appeared beside the sandbox"
    );
    let beside = names(&w.sandbox);
    assert!(
        beside == [b"canary".to_vec()] || beside == [b"canary".to_vec(), b"scratch".to_vec()],
        "{what}: something appeared beside the target: {beside:?}"
    );
    let canary = listing(&w.canary, true);
    if canary != w.canary_state {
        let changed: Vec<_> = w
            .canary_state
            .iter()
            .filter(|(p, s)| canary.get(*p) != Some(*s))
            .map(|(p, s)| format!("{}: was {s:?}, now {:?}", p.display(), canary.get(p)))
            .chain(
                canary
                    .keys()
                    .filter(|p| !w.canary_state.contains_key(*p))
                    .map(|p| format!("{}: new", p.display())),
            )
            .collect();
        panic!("{what}: the canary outside the target changed: {changed:#?}");
    }
    for (path, state) in listing(&w.scratch, false) {
        if path.as_os_str().is_empty() {
            continue; // the target itself
        }
        let ok = allowed
            .get(&path)
            .is_some_and(|kinds| kinds.contains(state.kind));
        assert!(
            ok,
            "{what}: target holds {} ({}) that no snapshot entry or plant explains (allowed: {:?})",
            path.display(),
            state.kind,
            allowed.get(&path)
        );
    }
}

fn run(w: &World, p: &Plan) {
    let (packs, seg, snaps) = store(w, p);
    cairn_fuzz::remove_all(&w.scratch);
    let mut allowed = match p.target {
        0 => Allowed::new(),
        1 => {
            std::fs::create_dir(&w.scratch).unwrap();
            Allowed::new()
        }
        _ => {
            std::fs::create_dir(&w.scratch).unwrap();
            plant(w)
        }
    };
    let opts = |delete: bool| RestoreOptions {
        target: w.scratch.clone(),
        includes: p.includes.clone(),
        excludes: p.excludes.clone(),
        delete,
        verify: p.verify,
        dry_run: false,
    };
    let runs = if p.second { 2 } else { 1 };
    for (i, (snap_id, snap)) in snaps.iter().take(runs).enumerate() {
        let opts = opts(p.delete[i]);
        if p.dry_run_first {
            let before = listing(&w.scratch, false);
            let dry = RestoreOptions {
                dry_run: true,
                ..opts.clone()
            };
            let _ = restore(&w.repo, snap_id, snap, &p.subpath, &dry, &NoRestoreProgress);
            assert!(
                listing(&w.scratch, false) == before,
                "a dry run changed the target"
            );
            check(w, &allowed, "dry run");
        }
        explained(w, snap_id, snap, &p.subpath, &mut allowed);
        let _ = restore(
            &w.repo,
            snap_id,
            snap,
            &p.subpath,
            &opts,
            &NoRestoreProgress,
        );
        check(
            w,
            &allowed,
            if i == 0 { "restore" } else { "second restore" },
        );
    }
    unstore(w, &packs, &seg, &snaps);
}

fuzz_target!(|data: &[u8]| {
    let w = world().lock().unwrap_or_else(|p| p.into_inner());
    let mut u = Unstructured::new(data);
    let Ok(p) = plan(&mut u, &w) else {
        return;
    };
    run(&w, &p);
});
