//! `repair index`: rebuild the index from the packs alone. Each pack carries
//! its own table of blobs, so the index segments (and the local cache) can
//! always be recreated from the packs.

use serde::Serialize;

use crate::prune::{read_pack_entries, stored_packs};
use crate::repository::segment_key;
use crate::segment::{PackRecord, Segment};
use crate::{Repository, Result};

/// What a rebuild found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    /// Packs indexed.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Old segments replaced.
    pub segments_replaced: u64,
    /// Packs whose table could not be read (left out of the index).
    pub unreadable: Vec<String>,
}

/// Write one segment listing every readable pack, superseding the segments
/// that existed when it started, then delete those and reload the local
/// cache. Segments are listed before packs: a backup that finishes while the
/// repair runs either wrote its segment before that listing (and its packs
/// before the pack listing, so the new segment has them) or after it (and
/// its segment is left alone).
pub fn repair_index(repo: &Repository) -> Result<RepairReport> {
    let backend = repo.backend();
    let mut report = RepairReport::default();
    let old: Vec<_> = backend
        .list("index/")?
        .iter()
        .filter_map(|o| o.key.strip_prefix("index/")?.parse().ok())
        .collect();
    let mut packs = Vec::new();
    for (pack, size) in stored_packs(&**backend)? {
        match read_pack_entries(&**backend, &pack, size) {
            Ok(entries) => {
                report.packs += 1;
                report.blobs += entries.len() as u64;
                packs.push(PackRecord { pack, entries });
            }
            Err(e) => report.unreadable.push(e.to_string()),
        }
    }
    report.segments_replaced = old.len() as u64;
    repo.write_segment(Segment {
        supersedes: old.clone(),
        packs,
    })?;
    for id in &old {
        backend.delete(&segment_key(id))?;
    }
    repo.index().clear()?;
    repo.refresh_index()?;
    Ok(report)
}
