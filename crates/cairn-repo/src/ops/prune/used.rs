//! The blobs the snapshots reference, held compactly: 8 bytes per blob
//! however many there are (a set of full ids costs about 50), so a prune of
//! twenty million chunks fits in a few hundred MiB.
//!
//! Only the first 8 bytes of each id are kept. Two ids that share them are
//! both taken as used: a collision can only keep an unused blob, never let
//! a used one look unused, which is the one direction prune may err in.
//! The trees already walked are an exact set while walking (skipping a
//! tree because its prefix collides would lose everything below it) and
//! are folded into the prefixes afterwards.

use std::collections::HashSet;

use cairn_chunk::Id;

use crate::{Repository, Result};

/// The first 8 bytes of an id: ids are hashes, so these are uniform.
pub fn prefix(id: &Id) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// The used blobs (data and trees), as sorted distinct id prefixes.
#[derive(Clone, Debug, Default)]
pub struct UsedBlobs {
    prefixes: Vec<u64>,
}

impl UsedBlobs {
    /// The set of `ids` (any order, repeats allowed).
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a Id>) -> UsedBlobs {
        let mut b = Builder::default();
        ids.into_iter().for_each(|id| b.add(id));
        b.finish()
    }

    /// Whether `id` may be used: true for every used blob, and for the rare
    /// unused one whose prefix equals a used one's.
    pub fn contains(&self, id: &Id) -> bool {
        self.position(id).is_some()
    }

    /// Where `id`'s prefix sits in the set (a dense number below
    /// [`UsedBlobs::len`]), if it is there.
    pub fn position(&self, id: &Id) -> Option<usize> {
        self.prefixes.binary_search(&prefix(id)).ok()
    }

    /// Distinct prefixes held.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether no blob is used.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

/// Collects prefixes, sorting out repeats whenever the buffer is full, so
/// it holds at most about twice the distinct prefixes.
#[derive(Default)]
struct Builder {
    prefixes: Vec<u64>,
}

impl Builder {
    fn add(&mut self, id: &Id) {
        if self.prefixes.len() == self.prefixes.capacity() {
            self.compact();
            let room = self.prefixes.len().max(1 << 16);
            self.prefixes.reserve_exact(room);
        }
        self.prefixes.push(prefix(id));
    }

    fn compact(&mut self) {
        self.prefixes.sort_unstable();
        self.prefixes.dedup();
    }

    fn finish(mut self) -> UsedBlobs {
        self.compact();
        self.prefixes.shrink_to_fit();
        UsedBlobs {
            prefixes: self.prefixes,
        }
    }
}

/// Every blob reachable from `roots`; a tree that cannot be read fails the
/// walk (prune must not guess).
pub fn used_blobs(repo: &Repository, roots: impl IntoIterator<Item = Id>) -> Result<UsedBlobs> {
    let mut found = Builder::default();
    let mut trees: HashSet<Id> = HashSet::new();
    let mut stack: Vec<Id> = roots.into_iter().collect();
    while let Some(tree_id) = stack.pop() {
        if !trees.insert(tree_id) {
            continue;
        }
        for node in repo.load_tree(&tree_id)?.nodes {
            node.content.iter().for_each(|c| found.add(&c.id));
            stack.extend(node.subtree);
        }
    }
    trees.iter().for_each(|t| found.add(t));
    drop(trees);
    Ok(found.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u64, rest: u8) -> Id {
        let mut b = [rest; 32];
        b[..8].copy_from_slice(&first.to_be_bytes());
        Id(b)
    }

    #[test]
    fn every_added_id_is_contained_and_repeats_count_once() {
        let ids: Vec<Id> = (0..200_000u64)
            .map(|n| Id::of(&(n % 150_000).to_le_bytes()))
            .collect();
        let used = UsedBlobs::from_ids(&ids);
        assert_eq!(used.len(), 150_000);
        assert!(ids.iter().all(|i| used.contains(i)));
        assert!(!used.contains(&Id::of(b"never added")));
    }

    #[test]
    fn an_id_sharing_a_used_prefix_counts_as_used() {
        let used = UsedBlobs::from_ids(&[id(7, 1)]);
        assert!(used.contains(&id(7, 2)), "the safe direction: kept");
        assert!(!used.contains(&id(8, 1)));
        assert_eq!(used.position(&id(7, 2)), used.position(&id(7, 1)));
    }
}
