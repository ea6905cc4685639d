//! Build a large plaintext repository for measuring `cairn serve`:
//! 10,000 snapshots (9,001 of volume `pgdata`, 111 each of nine others, an
//! hour apart) whose root trees all hold `big/`, one directory of 100,000
//! files. Trees and snapshots are written directly with the library, as
//! tests/common/forge.rs does, instead of running 10,000 backups.
//!
//! ```sh
//! cargo run --release -p cairn-web --example big_repo -- /tmp/big-repo
//! ```

use std::sync::Arc;

use cairn_repo::format::pack::BlobKind;
use cairn_repo::format::segment::Segment;
use cairn_repo::format::snapshot::{Snapshot, Summary};
use cairn_repo::format::tree::{ChunkRef, Node, NodeKind, Timestamp};
use cairn_repo::store::packer::Uploader;
use cairn_repo::{Config, Id, LocalBackend, Repository, Tree};

const SNAPSHOTS: usize = 10_000;
const BIG_DIR: usize = 100_000;
const DISTINCT_BLOBS: usize = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: big_repo DIR")?;
    let backend: Arc<dyn cairn_repo::Backend> = Arc::new(LocalBackend::new(&dir));
    let config = Config::new(Default::default(), cairn_chunk::Compression::None);
    Repository::init(&*backend, &config)?;
    let repo = Repository::open(backend, None)?;
    let uploader = Uploader::start(repo.backend().clone(), repo.codec().clone(), false);
    let (trees, data) = (
        uploader.packer(BlobKind::Tree, 16 << 20),
        uploader.packer(BlobKind::Data, 16 << 20),
    );
    let mut chunks = Vec::with_capacity(DISTINCT_BLOBS);
    for i in 0..DISTINCT_BLOBS {
        let bytes = format!("blob {i} ").repeat(100).into_bytes();
        let id = repo.blob_id(&bytes);
        data.add(id, &bytes, false, bytes.len() as u32)?;
        chunks.push(ChunkRef {
            id,
            len: bytes.len() as u32,
        });
    }
    let add_tree = |nodes: Vec<Node>| -> Result<Id, cairn_repo::Error> {
        let bytes = Tree { nodes }.encode();
        let id = repo.blob_id(&bytes);
        trees.add(id, &bytes, false, bytes.len() as u32)?;
        Ok(id)
    };
    let big = add_tree(
        (0..BIG_DIR)
            .map(|i| file(format!("file-{i:06}"), chunks[i % DISTINCT_BLOBS], i as i64))
            .collect(),
    )?;
    let start = chrono::Utc::now() - chrono::Duration::hours(SNAPSHOTS as i64);
    let mut roots = Vec::with_capacity(SNAPSHOTS);
    for n in 0..SNAPSHOTS {
        let counter = file("counter".into(), chunks[n % DISTINCT_BLOBS], n as i64);
        roots.push(add_tree(vec![dir_node("big", big), counter])?);
    }
    trees.flush()?;
    data.flush()?;
    drop((trees, data));
    let packs = uploader.finish()?;
    repo.write_segment(Segment {
        supersedes: Vec::new(),
        packs,
    })?;
    for (n, root) in roots.into_iter().enumerate() {
        let time = start + chrono::Duration::hours(n as i64);
        repo.save_snapshot(&snapshot(n, root, time))?;
    }
    println!("{dir}: {SNAPSHOTS} snapshots, big/ has {BIG_DIR} entries");
    Ok(())
}

fn file(name: String, chunk: ChunkRef, n: i64) -> Node {
    Node {
        name: name.into_bytes(),
        kind: NodeKind::File,
        mode: 0o644,
        nlink: 1,
        size: u64::from(chunk.len),
        mtime: Timestamp {
            sec: 1_700_000_000 + n,
            nsec: 0,
        },
        content: vec![chunk],
        ..Node::default()
    }
}

fn dir_node(name: &str, subtree: Id) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind: NodeKind::Dir,
        mode: 0o755,
        nlink: 2,
        subtree: Some(subtree),
        ..Node::default()
    }
}

fn snapshot(n: usize, tree: Id, time: chrono::DateTime<chrono::Utc>) -> Snapshot {
    let volume = if n % 90 < 81 {
        "pgdata".to_string()
    } else {
        format!("vol-{}", n % 90 - 81)
    };
    let total = 90_000_000 + (n as u64 % 97) * 1_000_000;
    Snapshot {
        version: 1,
        time: time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        host: "db-1".into(),
        volume,
        tags: if n % 24 == 0 {
            vec!["daily".into()]
        } else {
            vec![]
        },
        paths: vec!["/var/lib/docker/volumes/pgdata/_data".into()],
        tree,
        parent: None,
        root: None,
        summary: Summary {
            total_bytes: total,
            bytes_added: 200_000 + (n as u64 * 7919) % 3_000_000,
            bytes_added_stored: 100_000 + (n as u64 * 7919) % 1_500_000,
            dirs: 2,
            files_new: 1,
            ..Summary::default()
        },
        program: "big_repo example".into(),
        original: None,
        docker: None,
    }
}
