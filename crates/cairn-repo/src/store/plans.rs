//! Prune plans in the repository (docs/FORMAT.md section 11): which packs
//! they doom, and which backups each waits for.

use std::collections::HashSet;

use cairn_chunk::Id;

use super::lock::live_runs;
use crate::format::layout::{self, FileType};
use crate::format::plan::{Plan, Wait};
use crate::store::backend::BackendError;
use crate::{Backend, Result};

/// A plan found in the repository: its content, or `None` if it is damaged.
pub struct StoredPlan {
    /// Its id.
    pub id: Id,
    /// The plan, if intact.
    pub plan: Option<Plan>,
}

/// Every plan in the repository (those carried out while we list are skipped).
pub fn list(backend: &dyn Backend) -> Result<Vec<StoredPlan>> {
    let mut out = Vec::new();
    for obj in backend.list(FileType::Plan.prefix())? {
        let Some(id) = layout::parse(FileType::Plan, &obj.key) else {
            continue; // a .wait, read with its plan
        };
        match backend.get(&obj.key) {
            Ok(bytes) => out.push(StoredPlan {
                id,
                plan: Plan::decode(&id, &bytes),
            }),
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Packs named by the plans stored in the repository: index caches keep
/// them locatable but never deduplicate against them.
pub fn doomed_packs(backend: &dyn Backend) -> Result<HashSet<Id>> {
    Ok(list(backend)?
        .into_iter()
        .filter_map(|p| p.plan)
        .flat_map(|p| p.packs)
        .collect())
}

/// Store a plan; its id.
pub fn write(backend: &dyn Backend, plan: &Plan) -> Result<Id> {
    let (id, bytes) = plan.encode();
    backend.put(&layout::key(FileType::Plan, &id), &bytes)?;
    Ok(id)
}

/// Record which live backups plan `id` must wait for (replacing a damaged
/// record).
pub fn write_wait(backend: &dyn Backend, id: &Id) -> Result<Wait> {
    let wait = Wait {
        runs: live_runs(backend)?.into_iter().collect(),
    };
    let bytes = serde_json::to_vec(&wait).expect("wait serializes");
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
pub fn wait_for(backend: &dyn Backend, id: &Id) -> Result<Wait> {
    match backend.get(&layout::plan_wait(id)) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(w) => Ok(w),
            Err(_) => write_wait(backend, id),
        },
        Err(BackendError::NotFound { .. }) => write_wait(backend, id),
        Err(e) => Err(e.into()),
    }
}

/// Delete a plan and its wait record.
pub fn remove(backend: &dyn Backend, id: &Id) -> Result<()> {
    backend.delete(&layout::key(FileType::Plan, id))?;
    backend.delete(&layout::plan_wait(id))?;
    Ok(())
}
