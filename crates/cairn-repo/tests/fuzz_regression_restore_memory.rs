//! What the `restore_forged` fuzz target found: a chunk reference whose
//! length lies (here 128 MiB for a 6-byte blob) made `restore --verify`, a dry
//! run and an in-place restore allocate a buffer of that length to compare
//! the chunk, up to 4 GiB per thread. Its own test binary, because it counts
//! every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_repo::pack::BlobKind;
use cairn_repo::packer::Uploader;
use cairn_repo::restore::{restore, NoRestoreProgress, RestoreOptions};
use cairn_repo::segment::Segment;
use cairn_repo::snapshot::{Snapshot, Summary};
use cairn_repo::tree::ChunkRef;
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

#[test]
fn fuzz_regression_lying_chunk_length_is_never_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path().join("repo"));
    let config = Config::new(Default::default(), cairn_chunk::Compression::None);
    Repository::init(&backend, &config).unwrap();
    let repo = Repository::open(Arc::new(backend), None).unwrap();

    let hello = b"hello\n";
    let lie = 1u32 << 27;
    let mut tree = Tree {
        nodes: vec![Node {
            name: b"f".to_vec(),
            mode: 0o644,
            nlink: 1,
            size: 6 + u64::from(lie),
            content: vec![
                ChunkRef {
                    id: Id::of(hello),
                    len: 6,
                },
                ChunkRef {
                    id: Id::of(hello),
                    len: lie,
                },
            ],
            ..Node::default()
        }],
    };
    let tree_bytes = tree.encode();
    let uploader = Uploader::start(repo.backend().clone(), false);
    {
        let trees = uploader.packer(BlobKind::Tree, 1 << 20);
        let data = uploader.packer(BlobKind::Data, 1 << 20);
        trees
            .add(
                Id::of(&tree_bytes),
                &tree_bytes,
                false,
                tree_bytes.len() as u32,
            )
            .unwrap();
        data.add(Id::of(hello), hello, false, 6).unwrap();
        trees.flush().unwrap();
        data.flush().unwrap();
    }
    let packs = uploader.finish().unwrap();
    repo.write_segment(Segment {
        supersedes: Vec::new(),
        packs,
    })
    .unwrap();
    let snap = Snapshot {
        version: 1,
        time: "2026-01-01T00:00:00Z".into(),
        host: "forger".into(),
        volume: "forged".into(),
        tags: Vec::new(),
        paths: vec!["/forged".into()],
        tree: Id::of(&tree_bytes),
        parent: None,
        root: None,
        summary: Summary::default(),
        program: "test".into(),
        original: None,
    };
    let snap_id = repo.save_snapshot(&snap).unwrap();

    let target = dir.path().join("target");
    let opts = RestoreOptions {
        target: target.clone(),
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
