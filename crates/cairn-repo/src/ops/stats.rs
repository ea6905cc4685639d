//! What snapshots reference: the blobs a set of snapshots uses together, and
//! the data each snapshot alone uses (what forgetting it and pruning would
//! free).
//!
//! Finding what a snapshot alone uses means knowing, for every data blob,
//! whether one snapshot or several reach it. Rather than walking every
//! snapshot's whole tree (snapshots × tree size), ownership is marked on
//! tree ids: a tree reached from one snapshot is owned by it; a tree reached
//! from a second snapshot becomes shared, and so does everything below it.
//! Each tree changes state at most twice, so each is read at most twice.
//! Memory is one map entry per distinct tree and data blob.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use cairn_chunk::Id;

use crate::{Error, Repository, Result, Snapshot};

/// A count of blobs and their sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Number of blobs.
    pub count: u64,
    /// Plain bytes.
    pub raw: u64,
    /// Bytes in packs.
    pub stored: u64,
}

/// The distinct blobs some snapshots reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Referenced {
    /// File content.
    pub data: Sizes,
    /// Directory trees.
    pub trees: Sizes,
}

/// Data blobs reached from the trees `roots`, each counted once, and the trees.
pub fn referenced(repo: &Repository, roots: &[Id]) -> Result<Referenced> {
    let found = crate::ops::walk::referenced(repo, roots.iter().copied())?;
    Ok(Referenced {
        data: sizes(repo, found.data.into_iter().collect())?,
        trees: sizes(repo, found.trees.into_iter().collect())?,
    })
}

/// For each snapshot of `chosen` (indices into `all`), the data blobs that no
/// other snapshot of `all` references. Trees are not counted: they are
/// small, and a snapshot with the same content as another shares them.
pub fn exclusive(
    repo: &Repository,
    all: &[(Id, Snapshot)],
    chosen: &[usize],
) -> Result<Vec<Sizes>> {
    let mut owners = Ownership::default();
    for (n, (_, snap)) in all.iter().enumerate() {
        owners.mark(repo, snap.tree, n)?;
    }
    let mut per_snapshot: HashMap<usize, Vec<Id>> =
        chosen.iter().map(|&n| (n, Vec::new())).collect();
    for (id, owner) in owners.blobs {
        if let Owner::One(n) = owner {
            if let Some(ids) = per_snapshot.get_mut(&n) {
                ids.push(id);
            }
        }
    }
    chosen
        .iter()
        .map(|n| sizes(repo, per_snapshot.remove(n).unwrap_or_default()))
        .collect()
}

/// Who reaches a tree or blob: one snapshot (its index) or several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    One(usize),
    Many,
}

impl Owner {
    /// The state after `by` also reaches something in state `self`.
    fn join(self, by: Owner) -> Owner {
        if self == by {
            self
        } else {
            Owner::Many
        }
    }
}

/// Invariant: everything below a tree owned by `One(n)` is owned by `One(n)`
/// or shared, and everything below a shared tree is shared.
#[derive(Default)]
struct Ownership {
    trees: HashMap<Id, Owner>,
    blobs: HashMap<Id, Owner>,
}

impl Ownership {
    /// Record that snapshot `snap` reaches everything below `root`.
    fn mark(&mut self, repo: &Repository, root: Id, snap: usize) -> Result<()> {
        let mut stack = vec![(root, Owner::One(snap))];
        while let Some((tree_id, by)) = stack.pop() {
            let state = match self.trees.entry(tree_id) {
                Entry::Vacant(v) => *v.insert(by),
                Entry::Occupied(mut o) => {
                    let joined = o.get().join(by);
                    if joined == *o.get() {
                        // Already marked this way, and so is all below it.
                        continue;
                    }
                    *o.get_mut() = joined;
                    joined
                }
            };
            for node in repo.load_tree(&tree_id)?.nodes {
                for c in &node.content {
                    self.blobs
                        .entry(c.id)
                        .and_modify(|o| *o = o.join(state))
                        .or_insert(state);
                }
                if let Some(sub) = node.subtree {
                    stack.push((sub, state));
                }
            }
        }
        Ok(())
    }
}

/// Count and sizes of `ids` as the index records them.
fn sizes(repo: &Repository, ids: Vec<Id>) -> Result<Sizes> {
    let mut total = Sizes::default();
    for (id, loc) in ids.iter().zip(repo.index().lookup_many(&ids)?) {
        let loc = loc.ok_or(Error::MissingBlob(*id))?;
        total.count += 1;
        total.raw += u64::from(loc.entry.raw_len);
        total.stored += u64::from(loc.entry.stored_len);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::backup::{backup, BackupOptions, Progress};
    use crate::{Backend, Config, LocalBackend};
    use std::fs;
    use std::path::Path;

    struct Quiet;
    impl Progress for Quiet {}

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn snap(repo: &Repository, src: &Path) -> Id {
        let opts = BackupOptions {
            paths: vec![src.to_path_buf()],
            volume: "v".into(),
            host: "h".into(),
            tags: vec![],
            parent: None,
            walk: Default::default(),
            dry_run: false,
        };
        backup(repo, &opts, &Quiet).unwrap().snapshot_id.unwrap()
    }

    /// Three snapshots of one directory: {sub/a, b}, then {sub/a, c}, then
    /// {sub/a}. The unchanged `sub` tree is shared by all three; b is only
    /// in the first, c only in the second. Files are smaller than the
    /// minimum chunk, so each is one blob of its own length.
    #[test]
    fn exclusive_data_is_what_no_other_snapshot_has() {
        let dir = tempfile::tempdir().unwrap();
        let (src, repo_dir) = (dir.path().join("src"), dir.path().join("repo"));
        fs::create_dir_all(src.join("sub")).unwrap();
        let config = Config::new(Default::default(), cairn_chunk::Compression::None);
        let backend: std::sync::Arc<dyn Backend> =
            std::sync::Arc::new(LocalBackend::new(&repo_dir));
        Repository::init(&*backend, &config).unwrap();
        let repo = Repository::open(backend, None).unwrap();

        fs::write(src.join("sub/a"), noise(1, 5000)).unwrap();
        fs::write(src.join("b"), noise(2, 3000)).unwrap();
        snap(&repo, &src);
        fs::remove_file(src.join("b")).unwrap();
        fs::write(src.join("c"), noise(3, 2000)).unwrap();
        snap(&repo, &src);
        fs::remove_file(src.join("c")).unwrap();
        snap(&repo, &src);

        let all = repo.snapshots().unwrap();
        let unique = exclusive(&repo, &all, &[0, 1, 2]).unwrap();
        let raw: Vec<u64> = unique.iter().map(|s| s.raw).collect();
        assert_eq!(raw, [3000, 2000, 0]);
        assert_eq!(unique[0].stored, 3000, "compression none stores raw");
        assert_eq!(exclusive(&repo, &all[..1], &[0]).unwrap()[0].raw, 8000);

        let first = referenced(&repo, &[all[0].1.tree]).unwrap();
        assert_eq!((first.data.count, first.data.raw), (2, 8000));
        assert_eq!(first.trees.count, 2, "root and sub");
        let both = referenced(&repo, &[all[0].1.tree, all[1].1.tree]).unwrap();
        assert_eq!((both.data.count, both.data.raw), (3, 10_000));
        assert_eq!(both.trees.count, 3, "two roots, one shared sub");
    }

    #[test]
    fn sharing_is_sticky() {
        let a = Owner::One(1);
        assert_eq!(a.join(Owner::One(1)), a);
        assert_eq!(a.join(Owner::One(2)), Owner::Many);
        assert_eq!(Owner::Many.join(a), Owner::Many);
    }
}
