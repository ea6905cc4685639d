//! Prune plans in the repository (docs/FORMAT.md section 11): which packs
//! they doom, and which backups each waits for.

use std::collections::HashSet;

use cairn_chunk::Id;

use super::lock::{live_runs, put_or_clean_up};
use crate::format::crypto::{Codec, Domain};
use crate::format::layout::{self, FileType};
use crate::format::plan::{Plan, Wait};
use crate::store::backend::BackendError;
use crate::{Backend, Error, Result};

/// A plan found in the repository: its content, or `None` if it is damaged.
pub struct StoredPlan {
    /// Its id.
    pub id: Id,
    /// The plan, if intact.
    pub plan: Option<Plan>,
}

/// Every plan in the repository (those carried out while we list are skipped).
pub fn list(backend: &dyn Backend, codec: &Codec) -> Result<Vec<StoredPlan>> {
    let mut out = Vec::new();
    for obj in backend.list(FileType::Plan.prefix())? {
        let Some(id) = layout::parse(FileType::Plan, &obj.key) else {
            continue; // a .wait, read with its plan
        };
        match backend.get(&obj.key) {
            Ok(bytes) => out.push(StoredPlan {
                id,
                plan: open(codec, &id, bytes),
            }),
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// What the plans stored in the repository doom.
pub struct Doomed {
    /// Packs named by intact plans: index caches keep them locatable but
    /// never deduplicate against them.
    pub packs: HashSet<Id>,
    /// Plans that cannot be read: what they doom is unknown.
    pub damaged: Vec<Id>,
}

/// Packs named by the plans stored in the repository, and the plans that
/// cannot be read. A plan that cannot be fetched (other than "not found":
/// carried out while we listed) fails the listing.
pub fn doomed_packs(backend: &dyn Backend, codec: &Codec) -> Result<Doomed> {
    let mut doomed = Doomed {
        packs: HashSet::new(),
        damaged: Vec::new(),
    };
    for stored in list(backend, codec)? {
        match stored.plan {
            Some(plan) => doomed.packs.extend(plan.packs),
            None => doomed.damaged.push(stored.id),
        }
    }
    Ok(doomed)
}

/// A plan's content, if its bytes are intact (checked against its name,
/// then opened).
fn open(codec: &Codec, id: &Id, bytes: Vec<u8>) -> Option<Plan> {
    if Id::of(&bytes) != *id {
        return None;
    }
    let plain = codec.open(Domain::Plan, None, bytes).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// Store a plan; its id (the hash of its stored bytes).
pub fn write(backend: &dyn Backend, codec: &Codec, plan: &Plan) -> Result<Id> {
    let plain = serde_json::to_vec(plan).expect("plan serializes");
    let bytes = codec
        .seal(Domain::Plan, None, plain)
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let id = Id::of(&bytes);
    put_or_clean_up(backend, &layout::key(FileType::Plan, &id), &bytes)?;
    Ok(id)
}

/// Record which live backups plan `id` must wait for (replacing a damaged
/// record).
pub fn write_wait(backend: &dyn Backend, codec: &Codec, id: &Id) -> Result<Wait> {
    let wait = Wait {
        runs: live_runs(backend, codec)?.into_iter().collect(),
    };
    let plain = serde_json::to_vec(&wait).expect("wait serializes");
    let bytes = codec
        .seal(Domain::Wait, Some(id), plain)
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let key = layout::plan_wait(id);
    match backend.put(&key, &bytes) {
        Err(BackendError::AlreadyExists { .. }) => {
            backend.delete(&key)?;
            backend.put(&key, &bytes)?;
        }
        other => other?,
    }
    Ok(wait)
}

/// The backups plan `id` waits for. A plan without an intact record (its
/// prune died before writing one) gets one now: every backup alive now may
/// predate the plan.
pub fn wait_for(backend: &dyn Backend, codec: &Codec, id: &Id) -> Result<Wait> {
    let opened = match backend.get(&layout::plan_wait(id)) {
        Ok(b) => codec.open(Domain::Wait, Some(id), b).ok(),
        Err(BackendError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    match opened.and_then(|plain| serde_json::from_slice(&plain).ok()) {
        Some(w) => Ok(w),
        None => write_wait(backend, codec, id),
    }
}

/// Delete a plan and its wait record.
pub fn remove(backend: &dyn Backend, id: &Id) -> Result<()> {
    backend.delete(&layout::key(FileType::Plan, id))?;
    backend.delete(&layout::plan_wait(id))?;
    Ok(())
}
