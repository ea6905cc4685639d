//! What the `restore_forged` fuzz target found, as forged repositories
//! built with the public API. A test binary of its own, because one test
//! counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_repo::format::pack::{BlobEntry, BlobKind, FLAG_ZSTD};
use cairn_repo::format::segment::{PackRecord, Segment};
use cairn_repo::format::snapshot::{Snapshot, Summary};
use cairn_repo::format::tree::ChunkRef;
use cairn_repo::ops::restore::{restore, NoRestoreProgress, RestoreOptions};
use cairn_repo::store::packer::Uploader;
use cairn_repo::{Config, Id, LocalBackend, Node, Repository, Tree};

/// The system allocator, remembering the largest single allocation.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

fn repository(dir: &Path) -> Repository {
    let backend = LocalBackend::new(dir.join("repo"));
    let config = Config::new(Default::default(), cairn_chunk::Compression::None);
    Repository::init(&backend, &config).unwrap();
    Repository::open(Arc::new(backend), None).unwrap()
}

/// Store `trees` and data `blobs` (uncompressed, in this order) and a
/// segment listing them; the pack records.
fn store(repo: &Repository, trees: &[&[u8]], blobs: &[&[u8]]) -> Vec<PackRecord> {
    let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), false);
    {
        let tree_packer = uploader.packer(BlobKind::Tree, 1 << 20);
        let data_packer = uploader.packer(BlobKind::Data, 1 << 20);
        for t in trees {
            tree_packer
                .add(Id::of(t), t, false, t.len() as u32)
                .unwrap();
        }
        for b in blobs {
            data_packer
                .add(Id::of(b), b, false, b.len() as u32)
                .unwrap();
        }
        tree_packer.flush().unwrap();
        data_packer.flush().unwrap();
    }
    let packs = uploader.finish().unwrap();
    repo.write_segment(Segment {
        supersedes: Vec::new(),
        packs: packs.clone(),
    })
    .unwrap();
    packs
}

/// A snapshot of the tree `tree`, saved.
fn snapshot(repo: &Repository, tree: &[u8]) -> (Id, Snapshot) {
    let snap = Snapshot {
        version: 1,
        time: "2026-01-01T00:00:00Z".into(),
        host: "forger".into(),
        volume: "forged".into(),
        tags: Vec::new(),
        paths: vec!["/forged".into()],
        tree: Id::of(tree),
        parent: None,
        root: None,
        summary: Summary::default(),
        program: "test".into(),
        original: None,
        docker: None,
    };
    (repo.save_snapshot(&snap).unwrap(), snap)
}

fn file(name: &[u8], content: Vec<ChunkRef>) -> Node {
    Node {
        name: name.to_vec(),
        mode: 0o644,
        nlink: 1,
        size: content.iter().map(|c| u64::from(c.len)).sum(),
        content,
        ..Node::default()
    }
}

fn chunk(data: &[u8]) -> ChunkRef {
    ChunkRef {
        id: Id::of(data),
        len: data.len() as u32,
    }
}

#[test]
fn fuzz_regression_lying_chunk_length_is_never_allocated() {
    // A chunk reference whose length lies (128 MiB for a 6-byte blob) made
    // `restore --verify`, a dry run and an in-place restore allocate a
    // buffer of that length to compare the chunk: up to 4 GiB per thread.
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let hello = b"hello\n";
    let lie = 1u32 << 27;
    let mut lying = chunk(hello);
    lying.len = lie;
    let tree = Tree {
        nodes: vec![file(b"f", vec![chunk(hello), lying])],
    }
    .encode();
    store(&repo, &[&tree], &[hello]);
    let (snap_id, snap) = snapshot(&repo, &tree);

    let opts = RestoreOptions {
        target: dir.path().join("target"),
        verify: true,
        ..RestoreOptions::default()
    };
    LARGEST.store(0, Ordering::Relaxed);
    // The first chunk creates the file at its full (sparse) size, the
    // second fails; verify then compares both chunks with the file.
    let out = restore(&repo, &snap_id, &snap, b"", &opts, &NoRestoreProgress).unwrap();
    assert_eq!(out.files_failed, 1);
    // In place, and as a dry run, the existing file is compared the same way.
    let again = RestoreOptions {
        verify: false,
        ..opts.clone()
    };
    restore(&repo, &snap_id, &snap, b"", &again, &NoRestoreProgress).unwrap();
    let dry = RestoreOptions {
        dry_run: true,
        ..again
    };
    restore(&repo, &snap_id, &snap, b"", &dry, &NoRestoreProgress).unwrap();
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 16 << 20,
        "a restore allocated {largest} bytes at once"
    );
}

#[test]
fn fuzz_regression_empty_blob_beside_another_restores() {
    // An empty blob has the offset of the blob after it. Sorted by offset
    // the two may come in either order (the order of a hash map), and when
    // the empty one came last the read of both ended where it ends: slicing
    // the other out of that read panicked.
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let zeros = vec![0u8; 4096];
    let tree = Tree {
        nodes: vec![file(b"f", vec![chunk(b""), chunk(&zeros)])],
    }
    .encode();
    store(&repo, &[&tree], &[b"", &zeros]);
    let (snap_id, snap) = snapshot(&repo, &tree);
    // Each restore draws the order anew: 20 miss the bad one with p = 1e-6.
    for i in 0..20 {
        let target = dir.path().join(format!("t{i}"));
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        let out = restore(&repo, &snap_id, &snap, b"", &opts, &NoRestoreProgress).unwrap();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(std::fs::read(target.join("f")).unwrap(), zeros);
    }
}

#[test]
fn fuzz_regression_overlapping_blobs_in_the_index_restore() {
    // A forged segment may list a blob inside another one. The read of a
    // run of blobs ended where the last one (by offset) ends, before the end
    // of the first: slicing the first out of it panicked.
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let outer = b"0123456789hello0123456789";
    let inner = b"hello";
    let tree = Tree {
        nodes: vec![
            file(b"inner", vec![chunk(inner)]),
            file(b"outer", vec![chunk(outer)]),
        ],
    }
    .encode();
    let packs = store(&repo, &[&tree], &[outer]);
    let record = packs
        .iter()
        .find(|p| p.entries.iter().any(|e| e.id == Id::of(outer)))
        .unwrap();
    let at = record
        .entries
        .iter()
        .find(|e| e.id == Id::of(outer))
        .unwrap();
    assert_eq!(at.flags & FLAG_ZSTD, 0);
    repo.write_segment(Segment {
        supersedes: Vec::new(),
        packs: vec![PackRecord {
            pack: record.pack,
            entries: vec![BlobEntry {
                id: Id::of(inner),
                stored_len: 5,
                raw_len: 5,
                offset: at.offset + 10,
                frame: None,
                ..*at
            }],
        }],
    })
    .unwrap();
    let (snap_id, snap) = snapshot(&repo, &tree);
    let target = dir.path().join("target");
    let opts = RestoreOptions {
        target: target.clone(),
        ..RestoreOptions::default()
    };
    let out = restore(&repo, &snap_id, &snap, b"", &opts, &NoRestoreProgress).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(std::fs::read(target.join("inner")).unwrap(), inner);
    assert_eq!(std::fs::read(target.join("outer")).unwrap(), outer);
}
