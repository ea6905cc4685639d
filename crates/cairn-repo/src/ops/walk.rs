//! Walking snapshot trees: the blobs a set of trees references (each
//! distinct tree read once), and every node below a tree with its path.

use std::collections::HashSet;

use cairn_chunk::Id;

use crate::format::tree::{Node, NodeKind};
use crate::{Repository, Result};

/// The distinct blobs some trees reference.
#[derive(Clone, Debug, Default)]
pub struct Referenced {
    /// Tree blobs, the roots included.
    pub trees: HashSet<Id>,
    /// Data blobs.
    pub data: HashSet<Id>,
}

impl Referenced {
    /// Whether any of them is `id`.
    pub fn contains(&self, id: &Id) -> bool {
        self.data.contains(id) || self.trees.contains(id)
    }
}

/// Every blob reachable from `roots`; a tree that cannot be read fails the
/// walk (callers that delete must not guess).
pub fn referenced(repo: &Repository, roots: impl IntoIterator<Item = Id>) -> Result<Referenced> {
    let mut out = Referenced::default();
    let mut stack: Vec<Id> = roots.into_iter().collect();
    while let Some(tree_id) = stack.pop() {
        if !out.trees.insert(tree_id) {
            continue;
        }
        for node in repo.load_tree(&tree_id)?.nodes {
            out.data.extend(node.content.iter().map(|c| c.id));
            stack.extend(node.subtree);
        }
    }
    Ok(out)
}

/// What a visitor wants after seeing a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descend {
    /// Walk into it.
    Yes,
    /// Skip what is below it.
    No,
}

/// Every node below tree `root`, depth first in name order, with its path
/// relative to the root (`a/b/c`). A directory whose tree cannot be read
/// is handed to `unreadable` with its path and the error, and the walk goes
/// on; `visit` decides whether to enter each directory.
pub fn walk_paths(
    repo: &Repository,
    root: &Id,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node) -> Result<Descend>,
    unreadable: &mut dyn FnMut(&str, crate::Error),
) -> Result<()> {
    let tree = match repo.load_tree(root) {
        Ok(t) => t,
        Err(e) => {
            unreadable(prefix, e);
            return Ok(());
        }
    };
    for node in &tree.nodes {
        let name = String::from_utf8_lossy(&node.name);
        let path = if prefix.is_empty() {
            name.into_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let descend = visit(&path, node)?;
        if let (NodeKind::Dir, Some(sub), Descend::Yes) = (node.kind, node.subtree, descend) {
            walk_paths(repo, &sub, &path, visit, unreadable)?;
        }
    }
    Ok(())
}
