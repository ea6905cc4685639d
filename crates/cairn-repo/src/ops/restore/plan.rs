//! Walking a snapshot for a restore: depth first, one directory's tree in
//! memory per level, emitting steps in the order they can be carried out.
//! Filters and hard links are decided here; what a step does to the
//! target is the writer's business.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cairn_chunk::{Id, PathMatcher};

use crate::format::tree::{Node, NodeKind};
use crate::{Error, Repository, Result};

/// One thing to restore, in walk order.
#[derive(Debug)]
pub(crate) enum Step {
    /// A directory starts. `included`: the filters select it (it is created
    /// now); otherwise it is created only if something below it is.
    /// `names`: every entry the snapshot has in it (for `--delete`).
    Enter {
        rel: PathBuf,
        included: bool,
        names: Vec<Vec<u8>>,
    },
    /// The directory's entries have all been emitted.
    Leave { rel: PathBuf, node: Node },
    /// A regular file to write.
    File { rel: PathBuf, node: Node },
    /// A symlink, FIFO, device or socket.
    Special { rel: PathBuf, node: Node },
    /// Another name of a file emitted earlier.
    Link { rel: PathBuf, first: PathBuf },
    /// A directory whose tree cannot be read: skipped, reported.
    Unreadable { rel: PathBuf, reason: String },
}

/// Include and exclude globs, matched against paths relative to the target.
pub(crate) struct Filters {
    pub include: PathMatcher,
    pub exclude: PathMatcher,
}

impl Filters {
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Filters> {
        Ok(Filters {
            include: matcher("--include", includes)?,
            exclude: matcher("--exclude", excludes)?,
        })
    }

    /// Whether `rel` is restored: not excluded, and included (or below an
    /// included directory, or no includes at all).
    pub fn selects(&self, rel: &Path, parent_included: bool) -> Option<bool> {
        if self.exclude.matches(rel, None) {
            return None;
        }
        Some(parent_included || self.include.is_empty() || self.include.matches(rel, None))
    }
}

fn matcher(option: &'static str, patterns: &[String]) -> Result<PathMatcher> {
    PathMatcher::new(patterns).map_err(|e| match e {
        cairn_chunk::WalkError::Pattern { pattern, reason } => Error::BadPattern {
            option,
            pattern,
            reason,
        },
        other => Error::Invalid(other.to_string()),
    })
}

struct Level {
    rel: PathBuf,
    node: Node,
    included: bool,
    entries: std::vec::IntoIter<Node>,
}

/// The depth-first walk. Memory: the trees of the directories on the
/// current path, and one entry per hard-linked inode.
pub(crate) struct Walk<'a> {
    repo: &'a Repository,
    filters: &'a Filters,
    stack: Vec<Level>,
    pending: Option<Step>,
    links: HashMap<(u64, u64), PathBuf>,
}

impl<'a> Walk<'a> {
    /// Walk the contents of directory `root` (its entries go into the
    /// target itself), or a single non-directory node (it goes to
    /// `target/<its name>`). The root's own Enter/Leave come first and last.
    pub fn new(repo: &'a Repository, filters: &'a Filters, root: Node) -> Result<Walk<'a>> {
        let mut walk = Walk {
            repo,
            filters,
            stack: Vec::new(),
            pending: None,
            links: HashMap::new(),
        };
        if root.kind == NodeKind::Dir {
            // The target itself matches no pattern: with includes, only what
            // they select below it is restored.
            let included = filters.include.is_empty();
            walk.pending = Some(walk.open(PathBuf::new(), root, included)?);
        } else {
            let rel = PathBuf::from(root.os_name());
            if let Some(included) = filters.selects(&rel, false) {
                walk.pending = walk.leaf(rel, root, included);
            }
        }
        Ok(walk)
    }

    /// Push a directory level; returns its Enter step.
    fn open(&mut self, rel: PathBuf, node: Node, included: bool) -> Result<Step> {
        let nodes = match node.subtree {
            Some(t) => self.repo.load_tree(&t)?.nodes,
            None => Vec::new(),
        };
        let names = nodes.iter().map(|n| n.name.clone()).collect();
        self.stack.push(Level {
            rel: rel.clone(),
            node: node.clone(),
            included,
            entries: nodes.into_iter(),
        });
        Ok(Step::Enter {
            rel,
            included,
            names,
        })
    }

    /// The step for a non-directory entry, if the filters select it.
    fn leaf(&mut self, rel: PathBuf, node: Node, included: bool) -> Option<Step> {
        if !included {
            return None;
        }
        Some(match node.kind {
            NodeKind::File if node.nlink > 1 => match self.links.get(&(node.dev, node.inode)) {
                Some(first) => Step::Link {
                    rel,
                    first: first.clone(),
                },
                None => {
                    self.links.insert((node.dev, node.inode), rel.clone());
                    Step::File { rel, node }
                }
            },
            NodeKind::File => Step::File { rel, node },
            _ => Step::Special { rel, node },
        })
    }

    fn next_step(&mut self) -> Result<Option<Step>> {
        if let Some(step) = self.pending.take() {
            return Ok(Some(step));
        }
        loop {
            let Some(level) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(node) = level.entries.next() else {
                let level = self.stack.pop().expect("not empty");
                return Ok(Some(Step::Leave {
                    rel: level.rel,
                    node: level.node,
                }));
            };
            let (rel, parent_included) = (level.rel.join(node.os_name()), level.included);
            let Some(included) = self.filters.selects(&rel, parent_included) else {
                continue;
            };
            if node.kind == NodeKind::Dir {
                // A damaged subtree costs itself, not the rest of the restore.
                let step =
                    self.open(rel.clone(), node, included)
                        .unwrap_or_else(|e| Step::Unreadable {
                            rel,
                            reason: e.to_string(),
                        });
                return Ok(Some(step));
            }
            if let Some(step) = self.leaf(rel, node, included) {
                return Ok(Some(step));
            }
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Step>;

    fn next(&mut self) -> Option<Result<Step>> {
        self.next_step().transpose()
    }
}

/// All names of each hard-linked inode the walk restores, by (device,
/// inode) of the source. Only an in-place restore needs them: an existing
/// file with several links is updated in place only if its other names are
/// exactly these (so no write reaches a name outside the snapshot).
pub(crate) type LinkGroups = HashMap<(u64, u64), Vec<PathBuf>>;

/// Walk once to collect [`LinkGroups`].
pub(crate) fn link_groups(repo: &Repository, filters: &Filters, root: Node) -> Result<LinkGroups> {
    let mut groups = LinkGroups::new();
    let mut first_key: HashMap<PathBuf, (u64, u64)> = HashMap::new();
    for step in Walk::new(repo, filters, root)? {
        match step? {
            Step::File { rel, node } if node.nlink > 1 => {
                let key = (node.dev, node.inode);
                first_key.insert(rel.clone(), key);
                groups.entry(key).or_default().push(rel);
            }
            Step::Link { rel, first } => {
                if let Some(key) = first_key.get(&first) {
                    groups.entry(*key).or_default().push(rel);
                }
            }
            _ => {}
        }
    }
    Ok(groups)
}

/// The node whose contents a restore of `subpath` writes, and whether the
/// target directory itself takes its attributes (not when the snapshot's
/// root is synthetic, as for a backup of several paths).
pub(crate) fn root_of(
    repo: &Repository,
    snap_id: &Id,
    snap: &crate::Snapshot,
    subpath: &[u8],
) -> Result<(Node, bool)> {
    let mut node = repo.resolve_path(snap_id, snap, subpath)?;
    if node.kind == NodeKind::Dir && node.subtree.is_none() {
        return Err(Error::corrupt("tree", snap_id, "directory without subtree"));
    }
    let at_root = subpath.iter().all(|&b| b == b'/' || b == b'.');
    if !at_root {
        return Ok((node, true));
    }
    let Some(r) = &snap.root else {
        return Ok((node, false));
    };
    node.mode = r.mode;
    node.uid = r.uid;
    node.gid = r.gid;
    node.mtime = crate::format::tree::Timestamp {
        sec: r.mtime_sec,
        nsec: r.mtime_nsec,
    };
    Ok((node, true))
}
