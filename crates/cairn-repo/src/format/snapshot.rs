//! Snapshots: small JSON documents naming a root tree, stored under
//! `snapshots/<id>` where the id is the BLAKE3 hash of the document.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_chunk::Id;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a backup did; stored in the snapshot and printed by `backup --json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files whose metadata differed from the parent, so they were read.
    pub files_changed: u64,
    /// Files taken from the parent without reading.
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, FIFOs, devices.
    #[serde(default)]
    pub others: u64,
    /// Bytes of file content read.
    pub bytes_read: u64,
    /// Logical size of all files in the snapshot.
    #[serde(default)]
    pub total_bytes: u64,
    /// New blobs written.
    #[serde(default)]
    pub blobs_added: u64,
    /// Plain bytes of the new blobs.
    #[serde(default)]
    pub bytes_added: u64,
    /// Bytes the new blobs take in packs.
    pub bytes_added_stored: u64,
    /// Files that could not be read (skipped) or changed while read.
    #[serde(default)]
    pub errors: u64,
    /// Wall time of the backup.
    pub duration_s: f64,
}

/// Attributes of the directory that was backed up, applied to the target of
/// a whole restore.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootMeta {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// A point-in-time record of one or more trees.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Snapshot format version (1).
    pub version: u32,
    /// When the backup started, RFC 3339 UTC with nanoseconds.
    pub time: String,
    /// Host that made it.
    pub host: String,
    /// Volume name.
    pub volume: String,
    /// User tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Absolute source paths (for display and choosing a parent).
    pub paths: Vec<PathBuf>,
    /// Root tree.
    pub tree: Id,
    /// Snapshot used to skip unchanged files.
    pub parent: Option<Id>,
    /// Attributes of the single backed-up directory, if one.
    #[serde(default)]
    pub root: Option<RootMeta>,
    /// What the backup did.
    pub summary: Summary,
    /// Program that wrote it.
    pub program: String,
    /// For a snapshot `repair snapshots` rewrote: the damaged original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// For a backup of a Docker named volume: what the volume was created
    /// with, so that a restore can create the same kind of volume again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerVolume>,
}

/// How a Docker named volume was made, recorded by `backup --docker-volume`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DockerVolume {
    /// The volume driver (`local` for the engine's own disk).
    pub driver: String,
    /// The volume's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The driver options it was created with.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Names of the containers that mounted it at backup time.
    #[serde(default)]
    pub containers: Vec<String>,
    /// Names of the containers stopped for the backup (empty for a live one).
    #[serde(default)]
    pub stopped: Vec<String>,
}

impl Snapshot {
    /// Time parsed, for sorting and retention.
    pub fn timestamp(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default()
    }

    /// JSON bytes as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }

    /// Parse stored bytes, checking that they hash to `id`.
    pub fn decode(id: &Id, data: &[u8]) -> Result<Snapshot> {
        if Id::of(data) != *id {
            return Err(Error::corrupt(
                "snapshot",
                id,
                "content does not match its id",
            ));
        }
        Snapshot::parse(id, data)
    }

    /// Parse a snapshot's JSON (already checked against its id `id`).
    pub fn parse(id: &Id, data: &[u8]) -> Result<Snapshot> {
        let snap: Snapshot =
            serde_json::from_slice(data).map_err(|e| Error::corrupt("snapshot", id, e))?;
        // An unreadable time would sort the snapshot as the oldest, the
        // first a retention policy removes.
        chrono::DateTime::parse_from_rfc3339(&snap.time).map_err(|e| {
            Error::corrupt("snapshot", id, format!("invalid time {:?}: {e}", snap.time))
        })?;
        Ok(snap)
    }
}

/// Narrowing of `latest` and listings.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this volume.
    pub volume: Option<String>,
    /// Only this host.
    pub host: Option<String>,
    /// Only snapshots carrying all these tags.
    pub tags: Vec<String>,
}

impl Filter {
    /// Whether `s` passes.
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.volume.as_ref().is_none_or(|v| &s.volume == v)
            && self.host.as_ref().is_none_or(|h| &s.host == h)
            && self.tags.iter().all(|t| s.tags.contains(t))
    }
}

/// Pick one snapshot from `all` (sorted oldest first) by `latest`, full id or
/// unique prefix of at least 4 hex digits.
pub fn select<'a>(
    all: &'a [(Id, Snapshot)],
    spec: &str,
    filter: &Filter,
) -> Result<&'a (Id, Snapshot)> {
    if spec == "latest" {
        return all
            .iter()
            .rev()
            .find(|(_, s)| filter.matches(s))
            .ok_or_else(|| Error::NoSnapshot(spec.to_string()));
    }
    by_id(all, spec, |(id, _)| id)
}

/// Pick the item of `all` whose id `spec` names: a full id or a unique
/// prefix of at least 4 hex digits.
pub fn by_id<'a, T>(all: &'a [T], spec: &str, id_of: fn(&T) -> &Id) -> Result<&'a T> {
    let lower = spec.to_ascii_lowercase();
    if lower.len() < 4 || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadSnapshotId(spec.to_string()));
    }
    let matches: Vec<&T> = all
        .iter()
        .filter(|t| id_of(t).to_hex().starts_with(&lower))
        .collect();
    match matches.as_slice() {
        [] => Err(Error::NoSnapshot(spec.to_string())),
        [one] => Ok(one),
        many => Err(Error::Ambiguous {
            prefix: spec.to_string(),
            candidates: many
                .iter()
                .map(|t| id_of(t).to_hex()[..12].to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: &str, volume: &str) -> Snapshot {
        Snapshot {
            version: 1,
            time: time.into(),
            host: "h".into(),
            volume: volume.into(),
            tags: vec![],
            paths: vec![],
            tree: Id::default(),
            parent: None,
            root: None,
            summary: Summary::default(),
            program: "test".into(),
            original: None,
            docker: None,
        }
    }

    #[test]
    fn selects_latest_prefix_and_reports_ambiguity() {
        let a = Id([0xab; 32]);
        let mut b = Id([0xab; 32]);
        b.0[3] = 0;
        let all = vec![
            (a, snap("2026-01-01T00:00:00Z", "pg")),
            (b, snap("2026-01-02T00:00:00Z", "web")),
        ];
        let f = Filter::default();
        assert_eq!(select(&all, "latest", &f).unwrap().0, b);
        let pg = Filter {
            volume: Some("pg".into()),
            ..Filter::default()
        };
        assert_eq!(select(&all, "latest", &pg).unwrap().0, a);
        assert_eq!(select(&all, "abababab", &f).unwrap().0, a);
        assert!(matches!(
            select(&all, "abab", &f),
            Err(Error::Ambiguous { .. })
        ));
        assert!(matches!(
            select(&all, "ab", &f),
            Err(Error::BadSnapshotId(_))
        ));
        assert!(matches!(
            select(&all, "ffff", &f),
            Err(Error::NoSnapshot(_))
        ));
    }

    #[test]
    fn decode_checks_the_id() {
        let s = snap("2026-01-01T00:00:00Z", "v");
        let bytes = s.encode();
        assert_eq!(Snapshot::decode(&Id::of(&bytes), &bytes).unwrap(), s);
        assert!(Snapshot::decode(&Id::default(), &bytes).is_err());
    }
}
