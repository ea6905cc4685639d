//! Bringing the trees of a snapshot into the local object cache before a
//! walk needs them. A walk reads one tree at a time, each waiting for the
//! one above it; over a network that is one round trip per directory. Here
//! the trees are fetched a level at a time, every missing tree of a level
//! at once, in spans of tree packs streamed on many threads.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use rayon::prelude::*;

use crate::format::pack::{BlobEntry, BlobKind};
use crate::format::tree::Tree;
use crate::store::index::Location;
use crate::store::packs::decode_blob;
use crate::store::spans::plan_spans;
use crate::Repository;

impl Repository {
    /// Fetch the trees below `root` (itself included) that the object
    /// cache lacks, level by level, and keep them there. A tree already
    /// cached is taken to have its subtrees cached too (they were stored
    /// or fetched with it) and is not descended into. Does nothing without
    /// a cache (local repositories). Failures are left for the walk, which
    /// reads what is missing itself and reports what cannot be had: this
    /// is only a head start.
    ///
    /// Runs on the current rayon pool: install one with as many threads as
    /// requests should be in flight.
    pub fn prefetch_trees(&self, root: Id) {
        self.prefetch_trees_with(root, &|_| {})
    }

    /// As [`Repository::prefetch_trees`], telling `level` before each
    /// level which trees it names (some may be cached already), and with
    /// none once done: a reader that needs one of them can wait for it
    /// rather than fetch it a second time.
    pub fn prefetch_trees_with(&self, root: Id, level: &(dyn Fn(&[Id]) + Sync)) {
        let mut seen = HashSet::new();
        let mut next = if self.objects().enabled() {
            vec![root]
        } else {
            Vec::new()
        };
        while !next.is_empty() {
            level(&next);
            let missing: Vec<Id> = next
                .into_iter()
                .filter(|id| seen.insert(*id) && !self.has_cached_tree(id))
                .collect();
            next = self.fetch_trees(&missing);
        }
        level(&[]);
    }

    /// Whether the tree `id` is in the local object cache (its bytes are
    /// checked when it is read).
    pub fn has_cached_tree(&self, id: &Id) -> bool {
        self.objects().has(&tree_key(id))
    }

    /// Whether trees read from this repository are kept in a local cache
    /// (a remote repository), so that fetching them ahead is worthwhile.
    pub fn caches_trees(&self) -> bool {
        self.objects().enabled()
    }

    /// Fetch, check and cache the trees `ids`; the subtrees they name.
    fn fetch_trees(&self, ids: &[Id]) -> Vec<Id> {
        let Ok(locs) = self.index().lookup_many(ids) else {
            return Vec::new();
        };
        let mut by_pack: HashMap<Id, Vec<BlobEntry>> = HashMap::new();
        for loc in locs.into_iter().flatten() {
            if loc.entry.kind == BlobKind::Tree {
                by_pack.entry(loc.pack).or_default().push(loc.entry);
            }
        }
        plan_spans(by_pack, self.read_plan(), rayon::current_num_threads())
            .par_iter()
            .flat_map_iter(|(pack, entries)| {
                let mut below = Vec::new();
                self.stream_stored(pack, entries, |e, stored| {
                    if let Ok(stored) = stored {
                        below.extend(self.keep_tree(pack, e, stored));
                    }
                });
                below
            })
            .collect()
    }

    /// Check one fetched tree, cache its stored bytes and name its subtrees.
    fn keep_tree(&self, pack: &Id, entry: &BlobEntry, stored: &[u8]) -> Vec<Id> {
        let loc = Location {
            pack: *pack,
            entry: *entry,
        };
        let limits = self.config().blob_limits();
        let Ok(raw) = decode_blob(self.codec(), &limits, &loc, stored.into()) else {
            return Vec::new();
        };
        let Ok(tree) = Tree::decode(&raw) else {
            return Vec::new();
        };
        self.objects().put(&tree_key(&entry.id), stored);
        tree.nodes.iter().filter_map(|n| n.subtree).collect()
    }
}

fn tree_key(id: &Id) -> String {
    format!("trees/{id}")
}
