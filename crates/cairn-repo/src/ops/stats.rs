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
use serde::Serialize;

use crate::{Error, Repository, Result, Snapshot};

pub use crate::store::index::BlobTotals as Sizes;

/// The sizes of the distinct blobs some snapshots reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// File content.
    pub data: Sizes,
    /// Directory trees.
    pub trees: Sizes,
}

/// Data blobs reached from the trees `roots`, each counted once, and the trees.
pub fn usage(repo: &Repository, roots: &[Id]) -> Result<Usage> {
    let found = crate::ops::walk::referenced(repo, roots.iter().copied())?;
    Ok(Usage {
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
        total.stored += loc.entry.stored_share();
    }
    Ok(total)
}

/// What `cairn stats` reports.
#[derive(Clone, Debug, Serialize)]
pub struct StatsReport {
    /// `repository` (every indexed blob, including data no snapshot uses
    /// until a prune) or `snapshots` (the data the selection references).
    pub scope: &'static str,
    /// Snapshots selected.
    pub snapshots: usize,
    /// Sum of their logical sizes.
    pub logical_bytes: u64,
    /// Distinct data, plain bytes.
    pub unique_bytes: u64,
    /// Bytes in packs (data and trees).
    pub stored_bytes: u64,
    /// Bytes of trees in packs.
    pub tree_bytes: u64,
    /// Distinct data chunks.
    pub chunk_count: u64,
    /// Their average plain size.
    pub average_chunk_bytes: u64,
    /// Logical / unique.
    pub dedup_ratio: f64,
    /// Unique / stored data.
    pub compression_ratio: f64,
    /// Logical / stored.
    pub total_ratio: f64,
    /// Per selected snapshot: what it alone references.
    pub per_snapshot: Vec<SnapshotUsage>,
}

/// What one snapshot holds alone (what forgetting it and pruning frees).
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotUsage {
    /// Snapshot id.
    pub id: Id,
    /// Its time.
    pub time: String,
    /// Its volume.
    pub volume: String,
    /// Its logical size.
    pub logical_bytes: u64,
    /// Data only it references, stored bytes.
    pub unique_stored_bytes: u64,
    /// Data only it references, plain bytes.
    pub unique_raw_bytes: u64,
}

/// Statistics of the snapshots `specs` names (all that `filter` passes when
/// none). Without specs or a filter, the totals are the whole repository's;
/// otherwise those of the distinct data the selection references.
pub fn stats(repo: &Repository, specs: &[String], filter: &crate::Filter) -> Result<StatsReport> {
    let all = repo.snapshots()?;
    let mut chosen: Vec<usize> = Vec::new();
    if specs.is_empty() {
        chosen.extend((0..all.len()).filter(|&n| filter.matches(&all[n].1)));
    } else {
        for spec in specs {
            let id = crate::format::snapshot::select(&all, spec, filter)?.0;
            let n = all
                .iter()
                .position(|(i, _)| *i == id)
                .expect("selected from all");
            if !chosen.contains(&n) {
                chosen.push(n);
            }
        }
    }
    let narrowed = !specs.is_empty()
        || filter.volume.is_some()
        || filter.host.is_some()
        || !filter.tags.is_empty();
    let (data, trees) = if narrowed {
        let roots: Vec<_> = chosen.iter().map(|&n| all[n].1.tree).collect();
        let r = usage(repo, &roots)?;
        (r.data, r.trees)
    } else {
        use crate::format::pack::BlobKind;
        (
            repo.index().totals(BlobKind::Data)?,
            repo.index().totals(BlobKind::Tree)?,
        )
    };
    let unique = exclusive(repo, &all, &chosen)?;
    let logical: u64 = chosen.iter().map(|&n| all[n].1.summary.total_bytes).sum();
    let per_snapshot = chosen
        .iter()
        .zip(&unique)
        .map(|(&n, u)| {
            let (id, s) = &all[n];
            SnapshotUsage {
                id: *id,
                time: s.time.clone(),
                volume: s.volume.clone(),
                logical_bytes: s.summary.total_bytes,
                unique_stored_bytes: u.stored,
                unique_raw_bytes: u.raw,
            }
        })
        .collect();
    let scope = if narrowed { "snapshots" } else { "repository" };
    let mut r = report(scope, chosen.len(), logical, data, trees);
    r.per_snapshot = per_snapshot;
    Ok(r)
}

/// The whole repository's totals from the index and the snapshots'
/// recorded sizes, reading no tree: cheap enough for a page that shows them
/// on every request (`per_snapshot` stays empty; [`stats`] fills it).
pub fn repository_totals(repo: &Repository, all: &[(Id, Snapshot)]) -> Result<StatsReport> {
    use crate::format::pack::BlobKind;
    let data = repo.index().totals(BlobKind::Data)?;
    let trees = repo.index().totals(BlobKind::Tree)?;
    let logical = all.iter().map(|(_, s)| s.summary.total_bytes).sum();
    Ok(report("repository", all.len(), logical, data, trees))
}

fn report(
    scope: &'static str,
    snapshots: usize,
    logical: u64,
    data: Sizes,
    trees: Sizes,
) -> StatsReport {
    let stored = data.stored + trees.stored;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    StatsReport {
        scope,
        snapshots,
        logical_bytes: logical,
        unique_bytes: data.raw,
        stored_bytes: stored,
        tree_bytes: trees.stored,
        chunk_count: data.count,
        average_chunk_bytes: data.raw.checked_div(data.count).unwrap_or(0),
        dedup_ratio: ratio(logical, data.raw),
        compression_ratio: ratio(data.raw, data.stored),
        total_ratio: ratio(logical, stored),
        per_snapshot: Vec::new(),
    }
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
            latest_parent: false,
            walk: Default::default(),
            dry_run: false,
            docker: None,
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

        let first = usage(&repo, &[all[0].1.tree]).unwrap();
        assert_eq!((first.data.count, first.data.raw), (2, 8000));
        assert_eq!(first.trees.count, 2, "root and sub");
        let both = usage(&repo, &[all[0].1.tree, all[1].1.tree]).unwrap();
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
