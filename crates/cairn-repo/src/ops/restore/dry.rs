//! `restore --dry-run`: walk the snapshot as a restore would and compare it
//! with the target, writing nothing (not even the target directory).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dest::{Dest, Found};
use super::fill::compare_chunks;
use super::plan::{Filters, Step, Walk};
use super::{Planned, Problem, RestoreOptions, RestoreOutcome, BATCH_FILES};
use crate::format::crypto::Codec;
use crate::format::tree::Node;
use crate::{Repository, Result};

struct Dry<'a> {
    codec: &'a Codec,
    dest: Option<Dest>,
    filters: &'a Filters,
    delete: bool,
    out: RestoreOutcome,
    /// Directories on the current path: (path, counted as restored yet).
    stack: Vec<(PathBuf, bool)>,
    files: Vec<(PathBuf, Node)>,
}

pub(super) fn dry_run(
    repo: &Repository,
    filters: &Filters,
    root: Node,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome> {
    let mut dry = Dry {
        codec: repo.codec(),
        dest: Dest::open_existing(&opts.target).ok(),
        filters,
        delete: opts.delete,
        out: RestoreOutcome::default(),
        stack: Vec::new(),
        files: Vec::new(),
    };
    for step in Walk::new(repo, filters, root)? {
        match step? {
            Step::Enter {
                rel,
                included,
                names,
            } => dry.enter(rel, included, &names),
            Step::Leave { .. } => {
                dry.stack.pop();
            }
            Step::File { rel, node } => {
                dry.materialize();
                dry.files.push((rel, node));
                if dry.files.len() >= BATCH_FILES {
                    dry.compare_files();
                }
            }
            Step::Special { rel, .. } => {
                dry.materialize();
                dry.out.others += 1;
                if dry.found(&rel) == Found::Nothing {
                    dry.plan("create", &rel, 0);
                }
            }
            Step::Link { rel, first } => {
                dry.materialize();
                dry.out.others += 1;
                let same = dry
                    .dest
                    .as_ref()
                    .is_some_and(|d| d.same_inode(&rel, &first));
                if !same {
                    dry.plan("create", &rel, 0);
                }
            }
            Step::Unreadable { rel, reason } => dry.out.errors.push(Problem {
                path: rel.display().to_string(),
                reason,
            }),
        }
    }
    dry.compare_files();
    Ok(dry.out)
}

impl Dry<'_> {
    fn found(&self, rel: &Path) -> Found {
        match &self.dest {
            Some(d) => d.found(rel).unwrap_or(Found::Nothing),
            None => Found::Nothing,
        }
    }

    fn plan(&mut self, action: &'static str, rel: &Path, bytes: u64) {
        self.out.planned.push(Planned {
            action,
            path: rel.display().to_string(),
            bytes,
        });
    }

    fn enter(&mut self, rel: PathBuf, included: bool, names: &[Vec<u8>]) {
        let root = rel.as_os_str().is_empty();
        self.stack.push((rel.clone(), root));
        if included {
            self.materialize();
        }
        if self.delete && self.found(&rel) == Found::Dir {
            self.extras(&rel, included, names);
        }
    }

    /// Count (and plan the creation of) the directories on the current path.
    fn materialize(&mut self) {
        for i in 0..self.stack.len() {
            if self.stack[i].1 {
                continue;
            }
            self.stack[i].1 = true;
            self.out.dirs += 1;
            let rel = self.stack[i].0.clone();
            if self.found(&rel) != Found::Dir {
                self.plan("create", &rel, 0);
            }
        }
    }

    fn extras(&mut self, rel: &Path, included: bool, names: &[Vec<u8>]) {
        let Some(entries) = self.dest.as_ref().and_then(|d| d.entries(rel).ok()) else {
            return;
        };
        for name in entries {
            if names.binary_search(&name).is_ok() {
                continue;
            }
            let child = rel.join(std::ffi::OsStr::from_bytes(&name));
            if self.filters.selects(&child, included) == Some(true) {
                self.out.deleted += 1;
                self.plan("delete", &child, 0);
            }
        }
    }

    /// Compare the collected files with the target, in parallel.
    fn compare_files(&mut self) {
        let files = std::mem::take(&mut self.files);
        let dest = self.dest.as_ref();
        let differing: Vec<Option<u64>> = files
            .par_iter()
            .map(|(rel, node)| differing_bytes(self.codec, dest, rel, node))
            .collect();
        for ((rel, node), diff) in files.iter().zip(differing) {
            match diff {
                None => {
                    self.out.files_unchanged += 1;
                    self.out.bytes_unchanged += node.size;
                }
                Some(bytes) => {
                    self.out.files_written += 1;
                    self.out.bytes_written += bytes;
                    self.plan("write", rel, bytes);
                }
            }
        }
    }
}

/// Bytes a restore would write into `rel`; `None` when it is already right.
fn differing_bytes(codec: &Codec, dest: Option<&Dest>, rel: &Path, node: &Node) -> Option<u64> {
    let file = dest.and_then(|d| match d.found(rel) {
        Ok(Found::File { nlink: 1, .. }) => d.open_file(rel, false).ok(),
        _ => None,
    });
    let differing: u64 = compare_chunks(codec, file.as_ref(), node)
        .filter(|(_, same)| !same)
        .map(|((_, _, len), _)| u64::from(len))
        .sum();
    let size_ok = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .is_some_and(|m| m.len() == node.size);
    if differing == 0 && size_ok {
        None
    } else {
        Some(differing)
    }
}
