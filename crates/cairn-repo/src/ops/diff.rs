//! Comparing two snapshots. Trees are content-addressed, so a subtree whose
//! id is the same in both snapshots is skipped without being read: the diff
//! of two snapshots of a large volume with a small change reads only the
//! trees on the paths to the changes.

use std::collections::HashSet;

use cairn_chunk::Id;
use serde::Serialize;

use crate::format::tree::{Node, NodeKind};
use crate::{Repository, Result};

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// File content differs (and maybe metadata).
    Modified,
    /// Only attributes differ (mode, owner, times, xattrs, link target).
    Metadata,
    /// The entry changed type (file became directory, ...).
    Type,
}

impl ChangeKind {
    /// The one-letter marker `cairn diff` prints, as restic does.
    pub fn marker(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Metadata => 'U',
            ChangeKind::Type => 'T',
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Path relative to the snapshot root; directories end in `/`.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
    /// Bytes involved: the size of an added or removed file; for a modified
    /// file, the bytes of its new content that the old version did not have.
    pub bytes: u64,
}

/// Totals of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiffSummary {
    /// Paths added.
    pub added: u64,
    /// Paths removed.
    pub removed: u64,
    /// Files with new content.
    pub modified: u64,
    /// Paths whose attributes alone changed.
    pub metadata: u64,
    /// Paths that changed type.
    pub type_changed: u64,
    /// Bytes of added files.
    pub bytes_added: u64,
    /// Bytes of removed files.
    pub bytes_removed: u64,
    /// New bytes in modified files.
    pub bytes_modified: u64,
}

impl DiffSummary {
    /// Totals over `changes`.
    pub fn of(changes: &[Change]) -> DiffSummary {
        let mut s = DiffSummary::default();
        for c in changes {
            match c.kind {
                ChangeKind::Added => {
                    s.added += 1;
                    s.bytes_added += c.bytes;
                }
                ChangeKind::Removed => {
                    s.removed += 1;
                    s.bytes_removed += c.bytes;
                }
                ChangeKind::Modified => {
                    s.modified += 1;
                    s.bytes_modified += c.bytes;
                }
                ChangeKind::Metadata => s.metadata += 1,
                ChangeKind::Type => s.type_changed += 1,
            }
        }
        s
    }
}

/// Every change from tree `a` to tree `b`, in path order.
pub fn diff_trees(repo: &Repository, a: &Id, b: &Id) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_dir(repo, Some(a), Some(b), "", &mut out)?;
    Ok(out)
}

fn display(prefix: &str, node: &Node) -> String {
    let mut p = format!("{prefix}{}", String::from_utf8_lossy(&node.name));
    if node.kind == NodeKind::Dir {
        p.push('/');
    }
    p
}

fn diff_dir(
    repo: &Repository,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<&Id>| -> Result<Vec<Node>> {
        Ok(match id {
            Some(id) => repo.load_tree(id)?.nodes,
            None => Vec::new(),
        })
    };
    let (old, new) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                whole(repo, &old[i], prefix, ChangeKind::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                whole(repo, &new[j], prefix, ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                both(repo, &old[i], &new[j], prefix, out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// An entry present on one side only: it and everything below it.
fn whole(
    repo: &Repository,
    node: &Node,
    prefix: &str,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = display(prefix, node);
    out.push(Change {
        path: path.clone(),
        kind,
        bytes: node.size,
    });
    if let (NodeKind::Dir, Some(t)) = (node.kind, &node.subtree) {
        for child in repo.load_tree(t)?.nodes {
            whole(repo, &child, &path, kind, out)?;
        }
    }
    Ok(())
}

fn same_attributes(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
        && a.target == b.target
        && a.rdev == b.rdev
}

fn both(repo: &Repository, a: &Node, b: &Node, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
    let path = display(prefix, b);
    if a.kind != b.kind {
        out.push(Change {
            path,
            kind: ChangeKind::Type,
            bytes: b.size,
        });
        return Ok(());
    }
    if b.kind == NodeKind::File && a.content != b.content {
        let old: HashSet<&Id> = a.content.iter().map(|c| &c.id).collect();
        let fresh = b
            .content
            .iter()
            .filter(|c| !old.contains(&c.id))
            .map(|c| u64::from(c.len))
            .sum();
        out.push(Change {
            path,
            kind: ChangeKind::Modified,
            bytes: fresh,
        });
        return Ok(());
    }
    if !same_attributes(a, b) {
        out.push(Change {
            path: path.clone(),
            kind: ChangeKind::Metadata,
            bytes: 0,
        });
    }
    if b.kind == NodeKind::Dir {
        diff_dir(repo, a.subtree.as_ref(), b.subtree.as_ref(), &path, out)?;
    }
    Ok(())
}
