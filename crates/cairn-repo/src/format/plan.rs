//! The small JSON objects of the prune protocol (docs/FORMAT.md section 11):
//! backup locks, prune plans and the list of backups a plan waits for.

use cairn_chunk::Id;
use serde::{Deserialize, Serialize};

/// The content of a lock object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    /// Identifies one backup run across refreshes.
    pub run: String,
    /// Host that runs it.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When this lock object was written (RFC 3339, UTC).
    pub time: String,
}

/// Packs to delete once no backup that might reference them is running.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Plan {
    /// Plan format (1).
    pub version: u32,
    /// When it was written.
    pub time: String,
    /// Packs to delete.
    pub packs: Vec<Id>,
    /// Segments superseded by the prune's new segment.
    pub segments: Vec<Id>,
}

impl Plan {
    /// Stored bytes and the plan's id (the hash of those bytes).
    pub fn encode(&self) -> (Id, Vec<u8>) {
        let bytes = serde_json::to_vec(self).expect("plan serializes");
        (Id::of(&bytes), bytes)
    }

    /// The plan stored as `id`, if it is intact.
    pub fn decode(id: &Id, bytes: &[u8]) -> Option<Plan> {
        if Id::of(bytes) != *id {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

/// The backups a plan waits for: those whose locks were alive right after
/// the plan became visible. Written after the plan, as `plans/<id>.wait`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Wait {
    /// Lock runs.
    pub runs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_decode_only_when_intact() {
        let plan = Plan {
            version: 1,
            time: "2026-11-25T00:00:00Z".into(),
            packs: vec![Id::of(b"p")],
            segments: vec![],
        };
        let (id, mut bytes) = plan.encode();
        assert_eq!(Plan::decode(&id, &bytes), Some(plan));
        bytes[5] ^= 1;
        assert_eq!(Plan::decode(&id, &bytes), None);
    }
}
