//! Writing hostile repository content directly with the format's own
//! encoders: trees with unsafe names or lying lengths, data blobs, and
//! snapshots naming them, as an attacker with write access to a repository
//! (or a bit flip) could produce.

use std::sync::Arc;

use cairn_repo::format::crypto::{parse_key_file, Secret};
use cairn_repo::store::keys::KeySource;

use cairn_repo::format::pack::BlobKind;
use cairn_repo::format::segment::Segment;
use cairn_repo::format::snapshot::{Snapshot, Summary};
use cairn_repo::format::tree::{ChunkRef, Node, NodeKind};
use cairn_repo::store::packer::Uploader;
use cairn_repo::{Id, LocalBackend, Repository, Tree};

/// Collects forged blobs, then stores them as one pack per kind.
pub struct Forge {
    repo: Repository,
    trees: Vec<(Id, Vec<u8>)>,
    data: Vec<(Id, Vec<u8>)>,
}

/// The key files `init` made in an environment's home: a forger who has
/// the repository's key (a stolen key, or a plaintext repository).
struct HomeKeys(std::path::PathBuf);

impl KeySource for HomeKeys {
    fn secrets(&self, _: &Id) -> Result<Vec<Secret>, String> {
        let dir = self.0.join(".config/cairn/keys");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        Ok(entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| parse_key_file(&t).map(Secret::KeyFile))
            .collect())
    }
}

impl Forge {
    /// Forge into the environment's repository (it must exist).
    pub fn new(env: &super::Env) -> Forge {
        let keys = HomeKeys(env.path("home"));
        Forge {
            repo: Repository::open_with(Arc::new(LocalBackend::new(&env.repo)), None, &keys)
                .unwrap(),
            trees: Vec::new(),
            data: Vec::new(),
        }
    }

    /// A data blob; returns its id and length for chunk references.
    pub fn blob(&mut self, data: &[u8]) -> ChunkRef {
        let id = self.repo.blob_id(data);
        self.data.push((id, data.to_vec()));
        ChunkRef {
            id,
            len: data.len() as u32,
        }
    }

    /// A tree of exactly these nodes (encoded as given, unchecked).
    pub fn tree(&mut self, nodes: Vec<Node>) -> Id {
        let bytes = Tree { nodes }.encode();
        let id = self.repo.blob_id(&bytes);
        self.trees.push((id, bytes));
        id
    }

    /// Store everything and a snapshot whose root is `root`; its id.
    pub fn snapshot(self, root: Id) -> String {
        let uploader = Uploader::start(
            self.repo.backend().clone(),
            self.repo.codec().clone(),
            false,
        );
        {
            let trees = uploader.packer(BlobKind::Tree, 1 << 20);
            let data = uploader.packer(BlobKind::Data, 1 << 20);
            for (id, bytes) in &self.trees {
                trees.add(*id, bytes, false, bytes.len() as u32).unwrap();
            }
            for (id, bytes) in &self.data {
                data.add(*id, bytes, false, bytes.len() as u32).unwrap();
            }
            trees.flush().unwrap();
            data.flush().unwrap();
        }
        let packs = uploader.finish().unwrap();
        self.repo
            .write_segment(Segment {
                supersedes: Vec::new(),
                packs,
            })
            .unwrap();
        let snap = Snapshot {
            version: 1,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            host: "forger".into(),
            volume: "forged".into(),
            tags: Vec::new(),
            paths: vec!["/forged".into()],
            tree: root,
            parent: None,
            root: None,
            summary: Summary::default(),
            program: "forge".into(),
            original: None,
            docker: None,
        };
        self.repo.save_snapshot(&snap).unwrap().to_hex()
    }

    /// The backend, for raw writes.
    pub fn backend(&self) -> &Arc<dyn cairn_repo::Backend> {
        self.repo.backend()
    }
}

/// A regular file node with this content.
pub fn file(name: &[u8], content: Vec<ChunkRef>) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        nlink: 1,
        size: content.iter().map(|c| u64::from(c.len)).sum(),
        content,
        ..Node::default()
    }
}

/// A directory node.
pub fn dir(name: &[u8], subtree: Id) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::Dir,
        mode: 0o755,
        nlink: 2,
        subtree: Some(subtree),
        ..Node::default()
    }
}

/// A symlink node.
pub fn symlink(name: &[u8], target: &[u8]) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::Symlink,
        mode: 0o777,
        nlink: 1,
        target: target.to_vec(),
        ..Node::default()
    }
}
