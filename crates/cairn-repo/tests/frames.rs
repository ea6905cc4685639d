//! Format 3 (docs/FORMAT.md 14): new data blobs are compressed in frames.
//! Backups into a format-3 repository (plaintext and encrypted) restore
//! byte for byte, `check --read-data` verifies every frame, prune re-frames
//! what it keeps, copy frames for the destination, and format-1
//! repositories keep being written without frames.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn_repo::format::crypto::Secret;
use cairn_repo::format::layout::FileType;
use cairn_repo::format::pack::BlobEntry;
use cairn_repo::ops::copy::copy;
use cairn_repo::store::keys::{init_encrypted, KeySource, Owner};
use cairn_repo::{Backend, Config, Id, LocalBackend, Repository};
use support::*;

/// Text that compresses well, different per seed, so every file is new.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = seed * 1_000_003;
    while out.len() < len {
        out.extend_from_slice(
            format!("row {i} value {} name item-{}\n", i * 7 % 1013, i % 97).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Many small compressible files and a few incompressible ones.
fn source(seed: u64) -> BTreeMap<String, Vec<u8>> {
    let mut t = BTreeMap::new();
    for i in 0..40 {
        t.insert(
            format!("d{}/f{i}.txt", i % 4),
            text(seed * 100 + i, 3_000 + (i as usize * 997) % 20_000),
        );
    }
    t.insert("big.txt".into(), text(seed * 100 + 99, 300_000));
    t.insert("noise.bin".into(), noise(seed, 50_000));
    t
}

fn config() -> Config {
    let chunker = cairn_chunk::ChunkerParams {
        min: 2 << 10,
        avg: 8 << 10,
        max: 32 << 10,
    };
    let mut c = Config::new(chunker, cairn_chunk::Compression::Zstd(3)).with_frames(64 << 10);
    c.pack_size = 256 << 10;
    c
}

struct Key([u8; 32]);

impl KeySource for Key {
    fn secrets(&self, _: &Id) -> Result<Vec<Secret>, String> {
        Ok(vec![Secret::KeyFile(self.0.into())])
    }
}

/// Every entry of every indexed pack.
fn entries(repo: &Repository) -> Vec<BlobEntry> {
    let mut out = Vec::new();
    for (pack, size) in repo.list(FileType::Pack).unwrap() {
        out.extend(repo.read_pack_table(&pack, size).unwrap());
    }
    out
}

fn backup_restore_check(repo: &Repository, dir: &Path) {
    let src = dir.join("src");
    let tree = source(1);
    write_tree(&src, &tree);
    let id = backup_like_cli(repo, &src).unwrap();
    assert_restores(repo, &id, &read_tree(&src), dir);
    let framed = entries(repo).iter().filter(|e| e.frame.is_some()).count();
    assert!(framed > 10, "only {framed} blobs in frames");
    let report = check_all(repo);
    assert!(
        report.errors.is_empty() && report.damaged.is_empty(),
        "{report:?}"
    );
    assert!(report.blobs_read > 0);
    // A fresh process (no decoded frames kept) reads the same.
    let again = Repository::open_with(repo.backend().clone(), None, &Key([7; 32])).unwrap();
    assert_restores(&again, &id, &read_tree(&src), dir);
}

#[test]
fn plaintext_format_3_frames_blobs_and_restores_them() {
    let dir = tempdir();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    Repository::init(&*backend, &config()).unwrap();
    let repo = Repository::open(backend, None).unwrap();
    assert_eq!(repo.config().version, 3);
    backup_restore_check(&repo, dir.path());
}

#[test]
fn encrypted_format_3_frames_blobs_and_restores_them() {
    let dir = tempdir();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let owner = Owner {
        host: "h".into(),
        user: "u".into(),
    };
    let secret = Secret::KeyFile([7; 32].into());
    init_encrypted(&*backend, &config(), &secret, 1, &owner, None, None).unwrap();
    let repo = Repository::open_with(backend, None, &Key([7; 32])).unwrap();
    assert_eq!(repo.config().version, 3);
    assert!(repo.codec().is_sealed());
    backup_restore_check(&repo, dir.path());
}

#[test]
fn prune_reframes_the_blobs_it_keeps() {
    let dir = tempdir();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    Repository::init(&*backend, &config()).unwrap();
    let repo = Repository::open(backend.clone(), None).unwrap();
    // One backup of two halves interleaved in walk order, so most frames
    // hold blobs of both; then a backup of one half only.
    let src = dir.path().join("src");
    let both: BTreeMap<String, Vec<u8>> = source(2)
        .into_iter()
        .chain(source(3).into_iter().map(|(k, v)| (format!("{k}.b"), v)))
        .collect();
    write_tree(&src, &both);
    let first = backup_like_cli(&repo, &src).unwrap();
    for k in both.keys().filter(|k| k.ends_with(".b")) {
        std::fs::remove_file(src.join(k)).unwrap();
    }
    let second = backup_like_cli(&repo, &src).unwrap();
    backend
        .delete(&cairn_repo::format::layout::key(FileType::Snapshot, &first))
        .unwrap();
    let report = prune_now(&repo).unwrap();
    assert!(
        report.packs_repacked + report.packs_unused > 0,
        "{report:?}"
    );
    let repo = Repository::open(backend, None).unwrap();
    assert_restores(&repo, &second, &read_tree(&src), dir.path());
    let check = check_all(&repo);
    assert!(
        check.errors.is_empty() && check.damaged.is_empty(),
        "{check:?}"
    );
    assert!(entries(&repo).iter().any(|e| e.frame.is_some()));
}

#[test]
fn copy_frames_blobs_for_a_format_3_destination() {
    let dir = tempdir();
    let old: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("old")));
    let mut v1 = config();
    v1.version = 1;
    v1.frame_size = 0;
    Repository::init(&*old, &v1).unwrap();
    let old = Repository::open(old, None).unwrap();
    let src = dir.path().join("src");
    write_tree(&src, &source(4));
    let id = backup_like_cli(&old, &src).unwrap();
    // A format-1 repository is written as format 1: no frame anywhere.
    assert!(entries(&old).iter().all(|e| e.frame.is_none()));
    assert_eq!(old.config().frames(), None);

    let new: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("new")));
    Repository::init(&*new, &config()).unwrap();
    let new = Repository::open(new, None).unwrap();
    let snaps = old.snapshots().unwrap();
    copy(&old, &new, &snaps).unwrap();
    assert!(entries(&new).iter().any(|e| e.frame.is_some()));
    let (copied, _) = new
        .find_snapshot(&id.to_hex()[..8], &Default::default())
        .unwrap();
    assert_restores(&new, &copied, &read_tree(&src), dir.path());
    // And back into the format-1 repository: blobs come out of frames.
    let back: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("back")));
    Repository::init(&*back, &v1).unwrap();
    let back = Repository::open(back, None).unwrap();
    copy(&new, &back, &new.snapshots().unwrap()).unwrap();
    assert!(entries(&back).iter().all(|e| e.frame.is_none()));
    assert_restores(&back, &copied, &read_tree(&src), dir.path());
}
