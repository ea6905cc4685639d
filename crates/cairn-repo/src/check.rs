//! Check: is every snapshot restorable? Structure (trees load and verify,
//! every chunk is indexed, every indexed pack exists) and, with read-data,
//! every byte (each pack hashed against its name, each blob against its id).
//! A damaged pack is reported with the snapshots and files that need it.

use std::collections::{HashMap, HashSet};

use cairn_chunk::Id;
use serde::Serialize;

use crate::index::Location;
use crate::pack::parse_pack;
use crate::prune::{doomed_packs, effective_segments, read_pack_entries, stored_packs};
use crate::repository::{decode_blob, pack_key};
use crate::tree::NodeKind;
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
    /// Problems that make some snapshot not restorable.
    pub errors: Vec<String>,
    /// Damaged or missing packs with their dependents.
    pub damaged: Vec<Damage>,
    /// Harmless oddities (unindexed packs).
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether every snapshot is restorable.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.damaged.is_empty()
    }
}

/// Check the repository.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let segments = effective_segments(repo)?;
    let mut pack_blobs: HashMap<Id, Vec<Location>> = HashMap::new();
    let mut blob_pack: HashMap<Id, (Id, u32)> = HashMap::new();
    for (_, seg) in &segments {
        for p in &seg.packs {
            for e in &p.entries {
                blob_pack.entry(e.id).or_insert((p.pack, e.raw_len));
                pack_blobs.entry(p.pack).or_default().push(Location {
                    pack: p.pack,
                    entry: *e,
                });
            }
        }
    }
    report.packs = pack_blobs.len() as u64;
    let stored = stored_packs(&**repo.backend())?;
    let mut bad: HashMap<Id, String> = HashMap::new();
    for pack in pack_blobs.keys() {
        if !stored.contains_key(pack) {
            bad.insert(*pack, "missing from the repository".into());
        }
    }
    let doomed = doomed_packs(&**repo.backend())?;
    for pack in stored.keys().filter(|p| !pack_blobs.contains_key(p)) {
        report.warnings.push(if doomed.contains(pack) {
            format!(
                "pack {} is doomed by a prune plan; a later prune deletes it",
                pack.short()
            )
        } else {
            format!(
                "pack {} is in no index (left by an interrupted backup, or a backup is running); prune removes it",
                pack.short()
            )
        });
    }
    // The index must match each pack's own table (two small reads a pack).
    for (pack, locs) in &pack_blobs {
        if bad.contains_key(pack) {
            continue;
        }
        match read_pack_entries(&**repo.backend(), pack, stored[pack]) {
            Ok(entries) => {
                let own: HashSet<_> = entries
                    .iter()
                    .map(|e| (e.id, e.offset, e.stored_len))
                    .collect();
                if let Some(l) = locs
                    .iter()
                    .find(|l| !own.contains(&(l.entry.id, l.entry.offset, l.entry.stored_len)))
                {
                    bad.insert(
                        *pack,
                        format!(
                            "index entry for blob {} does not match the pack's own table",
                            l.entry.id.short()
                        ),
                    );
                }
            }
            Err(e) => {
                bad.insert(*pack, format!("unreadable table: {e}"));
            }
        }
    }
    let salt = crate::config::random_id().prefix_u64();
    for (pack, locs) in &pack_blobs {
        let chosen = opts.read_data_percent >= 100.0
            || ((pack.prefix_u64() ^ salt) % 10_000) as f64 * 0.01 < opts.read_data_percent;
        if !chosen || bad.contains_key(pack) {
            continue;
        }
        report.packs_read += 1;
        match read_pack(repo, pack, locs) {
            Ok(n) => report.blobs_read += n,
            Err(reason) => {
                bad.insert(*pack, reason);
            }
        }
    }
    report_damaged_objects(repo, &mut report)?;
    walk_snapshots(repo, &blob_pack, &bad, &mut report)?;
    Ok(report)
}

/// Snapshots, index segments and prune plans that cannot be read.
fn report_damaged_objects(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for d in repo.damaged_segments() {
        report.errors.push(format!(
            "index segment {} is damaged ({}); run `cairn repair index`",
            d.id, d.reason
        ));
    }
    for d in repo.snapshot_list()?.damaged {
        report.errors.push(format!(
            "snapshot {} is damaged ({}); remove it with `cairn forget {}` or run `cairn repair snapshots`",
            d.id,
            d.reason,
            d.id.short()
        ));
    }
    let plans = repo.backend().list("plans/")?;
    for obj in plans.iter().filter(|o| !o.key.ends_with(".wait")) {
        let Some(id) = obj
            .key
            .strip_prefix("plans/")
            .and_then(|s| s.parse::<Id>().ok())
        else {
            continue;
        };
        match repo.backend().get(&obj.key) {
            Ok(bytes) if Id::of(&bytes) == id => {}
            Ok(_) => report.warnings.push(format!(
                "prune plan {} is damaged; the next prune removes it and judges its packs again",
                id.short()
            )),
            Err(_) => {} // carried out while we looked
        }
    }
    Ok(())
}

/// Read a whole pack and verify it; the number of blobs verified.
fn read_pack(repo: &Repository, pack: &Id, locs: &[Location]) -> Result<u64, String> {
    let bytes = repo
        .backend()
        .get(&pack_key(pack))
        .map_err(|e| e.to_string())?;
    if Id::of(&bytes) != *pack {
        return Err("content does not match its name (damaged)".into());
    }
    let entries = parse_pack(&bytes)?;
    let listed: HashSet<Id> = entries.iter().map(|e| e.id).collect();
    for loc in locs {
        if !listed.contains(&loc.entry.id) {
            return Err(format!(
                "index lists blob {} that the pack does not hold",
                loc.entry.id.short()
            ));
        }
        let e = &loc.entry;
        let stored = bytes
            .get(e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize)
            .ok_or("blob extends past the end of the pack")?;
        decode_blob(loc, stored.to_vec()).map_err(|err| err.to_string())?;
    }
    Ok(locs.len() as u64)
}

/// Load every snapshot's trees; note missing blobs and who needs bad packs.
fn walk_snapshots(
    repo: &Repository,
    blob_pack: &HashMap<Id, (Id, u32)>,
    bad: &HashMap<Id, String>,
    report: &mut CheckReport,
) -> Result<()> {
    let mut damage: HashMap<Id, Damage> = bad
        .iter()
        .map(|(p, r)| {
            (
                *p,
                Damage {
                    pack: *p,
                    reason: r.clone(),
                    snapshots: Vec::new(),
                    paths: Vec::new(),
                },
            )
        })
        .collect();
    let mut loaded: HashSet<Id> = HashSet::new();
    for (snap_id, snap) in repo.snapshots()? {
        report.snapshots += 1;
        let short = snap_id.short();
        let mut hit_packs: HashSet<Id> = HashSet::new();
        let mut stack = vec![(snap.tree, String::new())];
        while let Some((tree_id, prefix)) = stack.pop() {
            let pack_of = |id: &Id| blob_pack.get(id).map(|(p, _)| *p);
            if let Some(p) = pack_of(&tree_id).filter(|p| bad.contains_key(p)) {
                hit_packs.insert(p);
                push_path(&mut damage, &p, format!("{short}:/{prefix}"));
                continue;
            }
            let tree = match repo.load_tree(&tree_id) {
                Ok(t) => t,
                Err(e) => {
                    report
                        .errors
                        .push(format!("snapshot {short}: directory /{prefix}: {e}"));
                    continue;
                }
            };
            if loaded.insert(tree_id) {
                report.trees += 1;
            }
            for node in tree.nodes {
                let path = format!("{prefix}{}", String::from_utf8_lossy(&node.name));
                for c in &node.content {
                    match blob_pack.get(&c.id) {
                        None => report.errors.push(format!(
                            "snapshot {short}: /{path}: chunk {} is not in the index",
                            c.id.short()
                        )),
                        Some((p, _)) if bad.contains_key(p) => {
                            hit_packs.insert(*p);
                            push_path(&mut damage, p, format!("{short}:/{path}"));
                        }
                        Some((_, raw_len)) if *raw_len != c.len => report.errors.push(format!(
                            "snapshot {short}: /{path}: chunk {} is {raw_len} bytes, the tree says {}",
                            c.id.short(),
                            c.len
                        )),
                        Some(_) => {}
                    }
                }
                if let (NodeKind::Dir, Some(t)) = (node.kind, node.subtree) {
                    stack.push((t, format!("{path}/")));
                }
            }
        }
        for p in hit_packs {
            if let Some(d) = damage.get_mut(&p) {
                d.snapshots.push(short.clone());
            }
        }
    }
    report.errors.dedup();
    let mut list: Vec<Damage> = damage.into_values().collect();
    list.sort_by_key(|d| d.pack);
    // Damage nothing depends on costs no snapshot: prune drops it.
    let (needed, harmless): (Vec<Damage>, Vec<Damage>) =
        list.into_iter().partition(|d| !d.snapshots.is_empty());
    for d in harmless {
        report.warnings.push(format!(
            "pack {} {}, but no snapshot needs it; `cairn prune` drops it from the index",
            d.pack.short(),
            d.reason
        ));
    }
    report.damaged = needed;
    Ok(())
}

fn push_path(damage: &mut HashMap<Id, Damage>, pack: &Id, path: String) {
    if let Some(d) = damage.get_mut(pack) {
        if !d.paths.contains(&path) {
            d.paths.push(path);
        }
    }
}
