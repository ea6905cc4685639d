//! Fills an empty plaintext repository with a synthetic history far larger
//! than this machine's memory: `--chunks` distinct data blobs over
//! `--snapshots` snapshots, through cairn-repo's own packer, segment and
//! snapshot code, so packs, index segments, trees and snapshots are real.
//!
//! The history is that of one volume that changes a little between backups:
//! snapshot `i` adds one batch of `chunks / snapshots` new chunks (one new
//! directory of files) and holds the last batches that make up about
//! `--live-chunks` chunks, so the latest snapshot looks like a ~1 GiB volume
//! at the default chunk size while the repository holds the whole history.
//! Blobs are tiny (`--blob-bytes`, 16 by default: a counter and a seed), so
//! the index is as large as a real one's while the packs stay small.
//!
//! ```text
//! cairn init --insecure-no-encryption /tmp/big
//! cargo bench --bench bigrepo -- --repo /tmp/big --chunks 1000000 --snapshots 10000
//! ```
//! Index segments are written straight to the repository (one per
//! snapshot, as backups write them), not into a local index cache: the first
//! command run against the repository builds its cache, as on a new host.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use cairn_repo::format::crypto::Domain;
use cairn_repo::format::layout::{self, FileType};
use cairn_repo::format::pack::BlobKind;
use cairn_repo::format::segment::Segment;
use cairn_repo::format::tree::{ChunkRef, Timestamp};
use cairn_repo::store::packer::{Packer, Uploader};
use cairn_repo::{Backend, Id, LocalBackend, Node, NodeKind, Repository, Snapshot, Tree};

struct Args {
    repo: String,
    chunks: u64,
    snapshots: u64,
    live_chunks: u64,
    file_chunks: u64,
    blob_bytes: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bigrepo --repo DIR [--chunks N (1000000)] [--snapshots N (10000)] \
         [--live-chunks N (32768)] [--file-chunks N (100)] [--blob-bytes N (16)]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        repo: String::new(),
        chunks: 1_000_000,
        snapshots: 10_000,
        live_chunks: 32_768,
        file_chunks: 100,
        blob_bytes: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` adds `--bench`; nothing else is expected.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().unwrap_or_else(|| usage());
        let num = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--repo" => a.repo = value.clone(),
            "--chunks" => a.chunks = num(),
            "--snapshots" => a.snapshots = num(),
            "--live-chunks" => a.live_chunks = num(),
            "--file-chunks" => a.file_chunks = num(),
            "--blob-bytes" => a.blob_bytes = num() as usize,
            _ => usage(),
        }
    }
    if a.repo.is_empty() || a.snapshots == 0 || a.chunks < a.snapshots || a.blob_bytes < 16 {
        usage();
    }
    a
}

/// The plain bytes of chunk `n`: unique per repository and chunk number.
fn chunk_bytes(seed: &Id, n: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8..16].copy_from_slice(&seed.0[..8]);
    b
}

fn store_tree(repo: &Repository, packer: &Packer, mut tree: Tree) -> Id {
    let bytes = tree.encode();
    let id = repo.blob_id(&bytes);
    let added = match repo.config().compression.compress(&bytes) {
        Some(z) => packer.add(id, &z, true, bytes.len() as u32),
        None => packer.add(id, &bytes, false, bytes.len() as u32),
    };
    added.expect("tree stored");
    id
}

/// The directory of batch `b`: its chunks, as files of `file_chunks` each.
fn batch_dir(
    repo: &Repository,
    a: &Args,
    data: &Packer,
    trees: &Packer,
    first: u64,
    count: u64,
    mtime: Timestamp,
) -> Id {
    let seed = repo.config().id;
    let mut nodes = Vec::new();
    let mut n = first;
    while n < first + count {
        let end = (n + a.file_chunks).min(first + count);
        let content: Vec<ChunkRef> = (n..end)
            .map(|c| {
                let bytes = chunk_bytes(&seed, c, a.blob_bytes);
                let id = repo.blob_id(&bytes);
                data.add(id, &bytes, false, bytes.len() as u32)
                    .expect("chunk stored");
                ChunkRef {
                    id,
                    len: bytes.len() as u32,
                }
            })
            .collect();
        nodes.push(Node {
            name: format!("f{:05}", nodes.len()).into_bytes(),
            kind: NodeKind::File,
            mode: 0o644,
            mtime,
            ctime: mtime,
            nlink: 1,
            size: content.iter().map(|c| u64::from(c.len)).sum(),
            content,
            ..Node::default()
        });
        n = end;
    }
    store_tree(repo, trees, Tree { nodes })
}

/// Seal and store a segment without going through the local index cache.
fn put_segment(repo: &Repository, mut seg: Segment, salt: u64) {
    // Makes the name unique, as Repository::write_segment does.
    let mut h = blake3::Hasher::new();
    h.update(b"bigrepo segment");
    h.update(&repo.config().id.0);
    h.update(&salt.to_le_bytes());
    seg.supersedes.push(Id(*h.finalize().as_bytes()));
    let bytes = repo
        .codec()
        .seal(Domain::Index, None, seg.encode())
        .expect("sealed");
    let id = Id::of(&bytes);
    repo.backend()
        .put(&layout::key(FileType::Index, &id), &bytes)
        .expect("segment stored");
}

fn main() {
    let a = parse_args();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&a.repo));
    let repo = Repository::open(backend, None).expect("an empty plaintext repository");
    assert!(
        repo.snapshot_ids().expect("listed").is_empty(),
        "the repository must be empty"
    );
    let per_batch = a.chunks / a.snapshots;
    let window = a.live_chunks.div_ceil(per_batch).max(1) as usize;
    let pack_size = repo.config().pack_size as usize;
    let start = Instant::now();
    let base = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut live: VecDeque<(String, Id)> = VecDeque::new();
    let mut parent = None;
    for s in 0..a.snapshots {
        let first = s * per_batch;
        // The last batch takes the remainder.
        let count = if s + 1 == a.snapshots {
            a.chunks - first
        } else {
            per_batch
        };
        let time = base + chrono::Duration::hours(s as i64);
        let mtime = Timestamp {
            sec: time.timestamp(),
            nsec: 0,
        };
        let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), false);
        let data = uploader.packer(BlobKind::Data, pack_size);
        let trees = uploader.packer(BlobKind::Tree, pack_size);
        let dir = batch_dir(&repo, &a, &data, &trees, first, count, mtime);
        live.push_back((format!("d{s:06}"), dir));
        if live.len() > window {
            live.pop_front();
        }
        let root = Tree {
            nodes: live
                .iter()
                .map(|(name, id)| Node {
                    name: name.clone().into_bytes(),
                    kind: NodeKind::Dir,
                    mode: 0o755,
                    mtime,
                    ctime: mtime,
                    nlink: 2,
                    subtree: Some(*id),
                    ..Node::default()
                })
                .collect(),
        };
        let root = store_tree(&repo, &trees, root);
        data.flush().expect("flushed");
        trees.flush().expect("flushed");
        drop((data, trees));
        let records = uploader.finish().expect("packs stored");
        put_segment(
            &repo,
            Segment {
                supersedes: Vec::new(),
                packs: records,
            },
            s,
        );
        let snap = Snapshot {
            version: 1,
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            host: "bigrepo".into(),
            volume: "bigrepo".into(),
            tags: Vec::new(),
            paths: vec!["/bigrepo".into()],
            tree: root,
            parent,
            root: None,
            summary: Default::default(),
            program: "cairn bigrepo bench".into(),
            original: None,
            docker: None,
        };
        parent = Some(repo.save_snapshot(&snap).expect("snapshot stored"));
        if (s + 1) % 1000 == 0 || s + 1 == a.snapshots {
            eprintln!(
                "{} snapshots, {} chunks, {:.1} s",
                s + 1,
                first + count,
                start.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{{\"chunks\": {}, \"snapshots\": {}, \"window_batches\": {}, \"seconds\": {:.1}}}",
        a.chunks,
        a.snapshots,
        window,
        start.elapsed().as_secs_f64()
    );
}
