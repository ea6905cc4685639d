//! Walking a volume tree: no symlink following, optional one-file-system,
//! exclude globs, entries sorted by raw name bytes, parents before children.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// What to skip while walking.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Do not descend into directories on another filesystem than their root.
    pub one_file_system: bool,
    /// Glob patterns. One without `/` matches a file name at any depth; one
    /// with `/` matches the path relative to the walk's root or the absolute path.
    pub excludes: Vec<String>,
}

/// One entry of the walk.
#[derive(Debug)]
pub struct Entry {
    /// Full path.
    pub path: PathBuf,
    /// 0 for the root, 1 for its children, and so on.
    pub depth: usize,
    /// `lstat` of the entry.
    pub meta: std::fs::Metadata,
}

/// An entry that could not be listed or stat'ed, or a bad exclude pattern.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// Reading a directory or an entry's metadata failed.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
        /// Depth of the entry that failed.
        depth: usize,
    },
    /// A pattern that is not a valid glob.
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// Why globset rejected it.
        reason: String,
    },
}

/// Glob patterns matched like restic's excludes: a pattern without `/`
/// matches a file name at any depth, one with `/` matches the relative path
/// (a leading `/` anchors it at the root) or the absolute path.
pub struct PathMatcher {
    names: GlobSet,
    paths: GlobSet,
}

impl PathMatcher {
    /// Compile the patterns.
    pub fn new(patterns: &[String]) -> Result<PathMatcher, WalkError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = |s: &str| -> Result<Glob, WalkError> {
                GlobBuilder::new(s)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| WalkError::Pattern {
                        pattern: p.clone(),
                        reason: e.kind().to_string(),
                    })
            };
            let trimmed = p.trim_end_matches('/');
            if trimmed.contains('/') {
                paths.add(glob(trimmed)?);
                if let Some(rel) = trimmed.strip_prefix('/') {
                    paths.add(glob(rel)?);
                }
            } else {
                names.add(glob(trimmed)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| WalkError::Pattern {
                pattern: patterns.join(","),
                reason: e.to_string(),
            })
        };
        Ok(PathMatcher {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.paths.is_empty()
    }

    /// Whether `rel` (relative to the root), or `abs` when given, matches.
    pub fn matches(&self, rel: &Path, abs: Option<&Path>) -> bool {
        if rel.file_name().is_some_and(|n| self.names.is_match(n)) {
            return true;
        }
        !self.paths.is_empty()
            && (self.paths.is_match(rel) || abs.is_some_and(|a| self.paths.is_match(a)))
    }
}

/// Iterator over a tree in pre-order, children sorted by raw name bytes.
pub struct Walker {
    root: PathBuf,
    inner: walkdir::IntoIter,
    excludes: PathMatcher,
}

impl Walker {
    /// Walk `root` (which is yielded first, at depth 0, and never excluded).
    pub fn new(root: &Path, options: &WalkOptions) -> Result<Walker, WalkError> {
        let inner = walkdir::WalkDir::new(root)
            .follow_links(false)
            .same_file_system(options.one_file_system)
            .sort_by(|a, b| a.file_name().cmp(b.file_name()))
            .into_iter();
        Ok(Walker {
            root: root.to_path_buf(),
            inner,
            excludes: PathMatcher::new(&options.excludes)?,
        })
    }
}

impl Walker {
    fn excluded(&self, entry: &walkdir::DirEntry) -> bool {
        let rel = entry
            .path()
            .strip_prefix(&self.root)
            .unwrap_or(entry.path());
        self.excludes.matches(rel, Some(entry.path()))
    }
}

impl Iterator for Walker {
    type Item = Result<Entry, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = self.inner.next()?;
            let entry = match item {
                Ok(e) => e,
                Err(e) => {
                    let depth = e.depth();
                    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                    let source = e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
                    return Some(Err(WalkError::Io {
                        path,
                        source,
                        depth,
                    }));
                }
            };
            if entry.depth() > 0 && !self.excludes.is_empty() && self.excluded(&entry) {
                if entry.file_type().is_dir() {
                    self.inner.skip_current_dir();
                }
                continue;
            }
            let depth = entry.depth();
            return Some(match entry.metadata() {
                Ok(meta) => Ok(Entry {
                    path: entry.into_path(),
                    depth,
                    meta,
                }),
                Err(e) => Err(WalkError::Io {
                    path: entry.path().to_path_buf(),
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("metadata")),
                    depth,
                }),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(root: &Path, excludes: &[&str]) -> Vec<String> {
        let opts = WalkOptions {
            one_file_system: false,
            excludes: excludes.iter().map(|s| s.to_string()).collect(),
        };
        Walker::new(root, &opts)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                e.path.strip_prefix(root).unwrap().display().to_string()
            })
            .collect()
    }

    #[test]
    fn walks_sorted_preorder_with_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("b/sub")).unwrap();
        fs::write(r.join("b/sub/x.log"), "x").unwrap();
        fs::write(r.join("b/keep"), "k").unwrap();
        fs::write(r.join("a"), "a").unwrap();
        fs::create_dir(r.join("cache")).unwrap();
        fs::write(r.join("cache/big"), "c").unwrap();
        assert_eq!(
            names(r, &[]),
            [
                "",
                "a",
                "b",
                "b/keep",
                "b/sub",
                "b/sub/x.log",
                "cache",
                "cache/big"
            ]
        );
        assert_eq!(
            names(r, &["*.log", "/cache"]),
            ["", "a", "b", "b/keep", "b/sub"]
        );
        assert_eq!(
            names(r, &["b/sub"]),
            ["", "a", "b", "b/keep", "cache", "cache/big"]
        );
    }

    #[test]
    fn bad_pattern_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalkOptions {
            one_file_system: false,
            excludes: vec!["a[".into()],
        };
        assert!(Walker::new(dir.path(), &opts).is_err());
    }
}
