//! `cairn volumes`: the engine's volumes beside their latest snapshots.

use std::collections::BTreeMap;

use cairn_docker::{Engine, VolumeInfo};
use cairn_repo::{Id, Snapshot};

use crate::error::Result;

/// One engine volume and what the repository holds of it.
#[derive(Debug, Clone)]
pub struct VolumeStatus {
    /// What the engine says.
    pub volume: VolumeInfo,
    /// Names of the containers that mount it.
    pub containers: Vec<String>,
    /// How many snapshots the repository has of a volume of this name.
    pub snapshots: usize,
    /// The newest of them.
    pub latest: Option<(Id, Snapshot)>,
}

/// Every volume of the engine (sorted by name), each with the newest of
/// `snapshots` whose volume has its name (any host).
pub fn volume_statuses(docker: &Engine, snapshots: &[(Id, Snapshot)]) -> Result<Vec<VolumeStatus>> {
    // Per volume name: how many snapshots, and the newest.
    type Seen<'a> = (usize, Option<&'a (Id, Snapshot)>);
    let mut by_volume: BTreeMap<&str, Seen> = BTreeMap::new();
    for entry in snapshots {
        let slot = by_volume.entry(entry.1.volume.as_str()).or_default();
        slot.0 += 1;
        if slot
            .1
            .is_none_or(|(_, s)| s.timestamp() <= entry.1.timestamp())
        {
            slot.1 = Some(entry);
        }
    }
    let mut out = Vec::new();
    for volume in docker.volumes(&[])? {
        let containers = docker
            .containers_using(&volume.name)?
            .into_iter()
            .map(|c| c.name)
            .collect();
        let (count, latest) = by_volume
            .get(volume.name.as_str())
            .copied()
            .unwrap_or_default();
        out.push(VolumeStatus {
            containers,
            snapshots: count,
            latest: latest.cloned(),
            volume,
        });
    }
    Ok(out)
}
