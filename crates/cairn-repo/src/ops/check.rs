//! Check: is every snapshot restorable? Structure (trees load and verify,
//! every chunk is indexed with the length its tree gives, every indexed pack
//! exists and matches its own table) and, with read-data, every byte (each
//! pack hashed against its name, each blob against its id). Damage is
//! reported with the snapshots and files that need it; what the findings
//! mean and what to do is in docs/FORMAT.md section 12.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use serde::Serialize;

use crate::format::layout::FileType;
use crate::format::pack::{split_pack, BlobEntry};
use crate::format::segment::PackRecord;
use crate::format::tree::NodeKind;
use crate::ops::progress::{stop_if_cancelled, NoProgress, WorkProgress};
use crate::store::index::Location;
use crate::store::lock::future_locks;
use crate::store::plans;
use crate::{Repository, Result};

/// How much to read.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Percentage of packs to read fully (0: structure only, 100: all).
    pub read_data_percent: f64,
}

/// A pack that is missing or fails verification, and what depends on it.
#[derive(Clone, Debug, Serialize)]
pub struct Damage {
    /// Pack id.
    pub pack: Id,
    /// What is wrong.
    pub reason: String,
    /// Short ids of snapshots that reference blobs in it.
    pub snapshots: Vec<String>,
    /// Paths (snapshot short id, path) of files that need it.
    pub paths: Vec<String>,
}

/// Something check found, other than a damaged pack.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A snapshot object that fails verification or decoding.
    DamagedSnapshot {
        /// Its id.
        id: Id,
        /// What is wrong.
        reason: String,
    },
    /// An index segment that fails verification or decoding.
    DamagedSegment {
        /// Its id.
        id: Id,
        /// What is wrong.
        reason: String,
    },
    /// A directory whose tree does not load.
    UnreadableTree {
        /// Short snapshot id.
        snapshot: String,
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// A chunk no index segment lists.
    MissingChunk {
        /// Short snapshot id.
        snapshot: String,
        /// The file.
        path: String,
        /// The chunk.
        chunk: Id,
    },
    /// A chunk whose indexed length differs from the tree's.
    LengthMismatch {
        /// Short snapshot id.
        snapshot: String,
        /// The file.
        path: String,
        /// The chunk.
        chunk: Id,
        /// Length in the index.
        stored: u32,
        /// Length the tree gives.
        tree: u32,
    },
    /// A pack in no index: a backup is running or crashed, or a prune plan
    /// dooms it.
    UnindexedPack {
        /// The pack.
        pack: Id,
        /// A prune plan names it.
        doomed: bool,
    },
    /// Damage no snapshot depends on.
    HarmlessDamage {
        /// The pack.
        pack: Id,
        /// What is wrong.
        reason: String,
    },
    /// A prune plan that fails verification.
    DamagedPlan {
        /// Its id.
        id: Id,
    },
    /// A backup lock dated further in the future than clocks may differ:
    /// it counts as live, so prune plans wait for it.
    FutureLock {
        /// Its key.
        key: String,
        /// The host it names.
        host: String,
        /// How far ahead of this host's clock, in minutes.
        minutes_ahead: i64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::DamagedSnapshot { id, reason } => write!(
                f,
                "snapshot {id} is damaged ({reason}); remove it with `cairn forget {}` or run `cairn repair snapshots`",
                id.short()
            ),
            Finding::DamagedSegment { id, reason } => write!(
                f,
                "index segment {id} is damaged ({reason}); run `cairn repair index`"
            ),
            Finding::UnreadableTree { snapshot, path, reason } => {
                write!(f, "snapshot {snapshot}: directory /{path}: {reason}")
            }
            Finding::MissingChunk { snapshot, path, chunk } => write!(
                f,
                "snapshot {snapshot}: /{path}: chunk {} is not in the index",
                chunk.short()
            ),
            Finding::LengthMismatch { snapshot, path, chunk, stored, tree } => write!(
                f,
                "snapshot {snapshot}: /{path}: chunk {} is {stored} bytes, the tree says {tree}",
                chunk.short()
            ),
            Finding::UnindexedPack { pack, doomed: true } => write!(
                f,
                "pack {} is doomed by a prune plan; a later prune deletes it",
                pack.short()
            ),
            Finding::UnindexedPack { pack, doomed: false } => write!(
                f,
                "pack {} is in no index (left by an interrupted backup, or a backup is running); prune removes it",
                pack.short()
            ),
            Finding::HarmlessDamage { pack, reason } => write!(
                f,
                "pack {} {reason}, but no snapshot needs it; `cairn prune` drops it from the index",
                pack.short()
            ),
            Finding::DamagedPlan { id } => write!(
                f,
                "prune plan {} is damaged; the next prune removes it and judges its packs again",
                id.short()
            ),
            Finding::FutureLock { key, host, minutes_ahead } => write!(
                f,
                "lock {key} of host {host} is dated {minutes_ahead} minutes in the future (a wrong clock, or forged); \
                 prunes wait for it as for a running backup and free no space until it is stale; \
                 fix that host's clock, or delete {key} if no backup runs there"
            ),
        }
    }
}

/// What a check found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Trees loaded and verified.
    pub trees: u64,
    /// Packs in the index.
    pub packs: u64,
    /// Packs read in full.
    pub packs_read: u64,
    /// Blobs decompressed and verified.
    pub blobs_read: u64,
    /// Problems that make some snapshot not (wholly) restorable.
    pub errors: Vec<Finding>,
    /// Damaged or missing packs with their dependents.
    pub damaged: Vec<Damage>,
    /// Harmless oddities.
    pub warnings: Vec<Finding>,
}

impl CheckReport {
    /// Whether every snapshot is restorable.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.damaged.is_empty()
    }
}

/// Check the repository.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    check_with(repo, opts, &NoProgress)
}

/// [`check`], reporting progress: one item per pack table compared, one
/// per pack read (with its bytes), one per snapshot walked.
///
/// Memory does not grow with the index: segments are read one at a time,
/// and the walk asks the index cache (synced with the segments when the
/// repository was opened) where each blob is.
pub fn check_with(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn WorkProgress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (segments, _) = repo.effective_segment_ids()?;
    let indexed: HashSet<Id> = segments.iter().flat_map(|(_, p)| p).copied().collect();
    repo.sync_index_with(&segments.iter().map(|(id, _)| *id).collect())?;
    report.packs = indexed.len() as u64;
    let stored = repo.list(FileType::Pack)?;
    let salt = crate::random::random_id().prefix_u64();
    let chosen: HashSet<Id> = indexed
        .iter()
        .filter(|pack| {
            opts.read_data_percent >= 100.0
                || ((pack.prefix_u64() ^ salt) % 10_000) as f64 * 0.01 < opts.read_data_percent
        })
        .copied()
        .collect();
    progress.expect(
        report.packs + chosen.len() as u64,
        chosen.iter().filter_map(|p| stored.get(p)).sum(),
    );
    let doomed = plans::doomed_packs(&**repo.backend(), repo.codec())?.packs;
    for pack in stored.keys().filter(|p| !indexed.contains(p)) {
        report.warnings.push(Finding::UnindexedPack {
            pack: *pack,
            doomed: doomed.contains(pack),
        });
    }
    let mut bad: HashMap<Id, String> = HashMap::new();
    let mut seen: HashSet<Id> = HashSet::new();
    for (seg_id, _) in &segments {
        let seg = match repo.read_segment(seg_id) {
            // Deleted since it was listed: a newer segment supersedes it.
            Err(e) if e.is_not_found() => continue,
            other => other?,
        };
        for p in &seg.packs {
            stop_if_cancelled(progress)?;
            let first = seen.insert(p.pack);
            let read = chosen.contains(&p.pack);
            check_pack(
                repo,
                p,
                &stored,
                read,
                &mut bad,
                &mut report,
                progress,
                first,
            );
        }
    }
    report_damaged_objects(repo, &mut report)?;
    walk_snapshots(repo, &bad, &mut report, progress)?;
    Ok(report)
}

/// Compare one pack's index entries with its own table and, if `read`,
/// read and verify them; a problem marks the pack bad. A pack that more
/// than one segment lists is checked for each, counted once (`first`).
#[allow(clippy::too_many_arguments)]
fn check_pack(
    repo: &Repository,
    record: &PackRecord,
    stored: &HashMap<Id, u64>,
    read: bool,
    bad: &mut HashMap<Id, String>,
    report: &mut CheckReport,
    progress: &dyn WorkProgress,
    first: bool,
) {
    let pack = &record.pack;
    let size = stored.get(pack).copied();
    if first {
        progress.working_on(&format!("pack {}", pack.to_hex()));
    }
    if !bad.contains_key(pack) {
        let problem = match size {
            None => Some("missing from the repository".to_string()),
            Some(size) => table_problem(repo, pack, size, &record.entries),
        };
        bad.extend(problem.map(|p| (*pack, p)));
    }
    if first {
        progress.advance(1, 0);
    }
    if !read {
        return;
    }
    if !bad.contains_key(pack) {
        if first {
            report.packs_read += 1;
        }
        match read_pack(repo, pack, &record.entries) {
            Ok(n) => report.blobs_read += n,
            Err(reason) => {
                bad.insert(*pack, reason);
            }
        }
    }
    if first {
        progress.advance(1, size.unwrap_or(0));
    }
}

/// Whether the index matches a pack's own table (two small reads a pack).
fn table_problem(repo: &Repository, pack: &Id, size: u64, listed: &[BlobEntry]) -> Option<String> {
    let own = match repo.read_pack_table(pack, size) {
        Ok(entries) => entries,
        Err(e) => return Some(format!("unreadable table: {e}")),
    };
    let own: HashSet<_> = own.iter().map(|e| (e.id, e.offset, e.stored_len)).collect();
    listed
        .iter()
        .find(|e| !own.contains(&(e.id, e.offset, e.stored_len)))
        .map(|e| {
            format!(
                "index entry for blob {} does not match the pack's own table",
                e.id.short()
            )
        })
}

/// Snapshots, index segments and prune plans that cannot be read.
fn report_damaged_objects(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for d in repo.damaged_segments() {
        report.errors.push(Finding::DamagedSegment {
            id: d.id,
            reason: d.reason,
        });
    }
    for d in repo.snapshot_list_uncached()?.damaged {
        report.errors.push(Finding::DamagedSnapshot {
            id: d.id,
            reason: d.reason,
        });
    }
    for p in plans::list(&**repo.backend(), repo.codec())? {
        if p.plan.is_none() {
            report.warnings.push(Finding::DamagedPlan { id: p.id });
        }
    }
    for l in future_locks(&**repo.backend(), repo.codec())? {
        report.warnings.push(Finding::FutureLock {
            key: l.key,
            host: l.host,
            minutes_ahead: l.minutes_ahead,
        });
    }
    Ok(())
}

/// Read a whole pack and verify it; the number of blobs verified.
fn read_pack(repo: &Repository, pack: &Id, entries: &[BlobEntry]) -> Result<u64, String> {
    let bytes = repo.read_pack(pack).map_err(|e| e.to_string())?;
    let (footer, table, data_len) = split_pack(&bytes)?;
    let own = repo
        .parse_table(pack, footer, table.to_vec(), data_len)
        .map_err(|e| e.to_string())?;
    let listed: HashSet<Id> = own.iter().map(|e| e.id).collect();
    for e in entries {
        if !listed.contains(&e.id) {
            return Err(format!(
                "index lists blob {} that the pack does not hold",
                e.id.short()
            ));
        }
        let stored = e
            .offset
            .checked_add(u64::from(e.stored_len))
            .and_then(|end| bytes.get(usize::try_from(e.offset).ok()?..usize::try_from(end).ok()?))
            .ok_or("blob extends past the end of the pack")?;
        let loc = Location {
            pack: *pack,
            entry: *e,
        };
        // Frame members share their frame's bytes: the repository's cache
        // of decoded frames decodes each frame once.
        repo.decode_stored(&loc, stored.into())
            .map_err(|err| err.to_string())?;
    }
    Ok(entries.len() as u64)
}

/// Who needs each damaged pack, gathered while walking the snapshots.
struct Dependents<'a> {
    repo: &'a Repository,
    bad: &'a HashMap<Id, String>,
    damage: HashMap<Id, Damage>,
}

impl Dependents<'_> {
    /// Note that `path` of snapshot `short` needs `blob`, whose location the
    /// index gives as `at`; true if its pack is bad.
    fn needs_at(&mut self, short: &str, path: &str, at: Option<&Location>) -> bool {
        let Some(loc) = at else {
            return false;
        };
        let Some(reason) = self.bad.get(&loc.pack) else {
            return false;
        };
        let d = self.damage.entry(loc.pack).or_insert_with(|| Damage {
            pack: loc.pack,
            reason: reason.clone(),
            snapshots: Vec::new(),
            paths: Vec::new(),
        });
        let path = format!("{short}:/{path}");
        if !d.paths.contains(&path) {
            d.paths.push(path);
        }
        if !d.snapshots.iter().any(|s| s == short) {
            d.snapshots.push(short.to_string());
        }
        true
    }

    /// [`Dependents::needs_at`], looking `blob` up.
    fn needs(&mut self, short: &str, path: &str, blob: &Id) -> Result<bool> {
        let at = self.repo.index().lookup(blob)?;
        Ok(self.needs_at(short, path, at.as_ref()))
    }
}

/// The walk of every snapshot's trees. A tree below which nothing was
/// found wrong is walked once, however many snapshots share it: walking
/// it again could find nothing new, and a history of many snapshots of a
/// large volume would otherwise cost snapshots x volume.
struct Walker<'a> {
    repo: &'a Repository,
    deps: Dependents<'a>,
    /// Every tree reached.
    loaded: HashSet<Id>,
    /// Trees walked with nothing found below them.
    clean: HashSet<Id>,
    unreadable: Vec<Finding>,
    errors: Vec<Finding>,
}

impl Walker<'_> {
    /// Walk tree `id` found at `prefix` of snapshot `short`; whether
    /// nothing below it is missing, damaged or wrong.
    fn walk(&mut self, short: &str, id: &Id, prefix: &str) -> Result<bool> {
        let tree = match self.repo.load_tree(id) {
            Ok(t) => t,
            Err(e) => {
                self.unreadable.push(Finding::UnreadableTree {
                    snapshot: short.to_string(),
                    path: prefix.to_string(),
                    reason: e.to_string(),
                });
                return Ok(false);
            }
        };
        let mut clean = true;
        for node in &tree.nodes {
            let name = String::from_utf8_lossy(&node.name);
            let path = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            for c in &node.content {
                clean &= self.chunk(short, &path, c)?;
            }
            let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
                continue;
            };
            if self.deps.needs(short, &format!("{path}/"), &sub)? {
                clean = false;
                continue;
            }
            self.loaded.insert(sub);
            if !self.clean.contains(&sub) {
                clean &= self.walk(short, &sub, &path)?;
            }
        }
        if clean {
            self.clean.insert(*id);
        }
        Ok(clean)
    }

    /// Check one chunk reference; whether it is fine.
    fn chunk(
        &mut self,
        short: &str,
        path: &str,
        c: &crate::format::tree::ChunkRef,
    ) -> Result<bool> {
        let Some(loc) = self.repo.index().lookup(&c.id)? else {
            self.errors.push(Finding::MissingChunk {
                snapshot: short.to_string(),
                path: path.to_string(),
                chunk: c.id,
            });
            return Ok(false);
        };
        let pack_bad = self.deps.needs_at(short, path, Some(&loc));
        if loc.entry.raw_len != c.len && !pack_bad {
            self.errors.push(Finding::LengthMismatch {
                snapshot: short.to_string(),
                path: path.to_string(),
                chunk: c.id,
                stored: loc.entry.raw_len,
                tree: c.len,
            });
            return Ok(false);
        }
        Ok(!pack_bad)
    }
}

/// Load every snapshot's trees; note missing blobs, lying lengths and who
/// needs bad packs.
fn walk_snapshots(
    repo: &Repository,
    bad: &HashMap<Id, String>,
    report: &mut CheckReport,
    progress: &dyn WorkProgress,
) -> Result<()> {
    let mut w = Walker {
        repo,
        deps: Dependents {
            repo,
            bad,
            damage: HashMap::new(),
        },
        loaded: HashSet::new(),
        clean: HashSet::new(),
        unreadable: Vec::new(),
        errors: Vec::new(),
    };
    let snapshots = repo.snapshot_list_uncached()?.snapshots;
    progress.expect(snapshots.len() as u64, 0);
    for (snap_id, snap) in snapshots {
        stop_if_cancelled(progress)?;
        report.snapshots += 1;
        progress.working_on(&format!("snapshot {}", snap_id.to_hex()));
        progress.advance(1, 0);
        let short = snap_id.short();
        if w.deps.needs(&short, "", &snap.tree)? {
            continue;
        }
        w.loaded.insert(snap.tree);
        if !w.clean.contains(&snap.tree) {
            w.walk(&short, &snap.tree, "")?;
        }
        report.errors.append(&mut w.unreadable);
        report.errors.append(&mut w.errors);
    }
    report.trees = w.loaded.len() as u64;
    report.errors.dedup();
    let mut list: Vec<Damage> = w.deps.damage.into_values().collect();
    // Packs no snapshot reaches are damage nothing depends on.
    for (pack, reason) in bad {
        if !list.iter().any(|d| d.pack == *pack) {
            report.warnings.push(Finding::HarmlessDamage {
                pack: *pack,
                reason: reason.clone(),
            });
        }
    }
    list.sort_by_key(|d| d.pack);
    report.damaged = list;
    Ok(())
}
