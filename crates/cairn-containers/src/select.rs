//! Which volumes `--docker-volume`, `--docker-container` and `--docker-all
//! --label` mean.

use cairn_docker::{parse_label_filter, Engine, VolumeInfo};

use crate::error::Result;

/// The volumes a backup was asked for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Volumes by name (`--docker-volume`, repeatable).
    pub volumes: Vec<String>,
    /// Every volume these containers mount (`--docker-container`).
    pub containers: Vec<String>,
    /// Every volume of the engine (`--docker-all`) ...
    pub all: bool,
    /// ... carrying all these labels (`KEY` or `KEY=VALUE`).
    pub labels: Vec<String>,
}

impl Selection {
    /// Whether anything was asked for.
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty() && self.containers.is_empty() && !self.all
    }
}

/// The volumes of `selection`, each once, in the order asked for (a
/// container's by mount path, `--docker-all`'s by name). An unknown
/// volume or container is an error naming it, before anything is backed up.
pub fn select_volumes(engine: &Engine, selection: &Selection) -> Result<Vec<VolumeInfo>> {
    let mut names: Vec<String> = selection.volumes.clone();
    for c in &selection.containers {
        names.extend(engine.volume_mounts(c)?.into_iter().map(|m| m.volume));
    }
    let mut chosen: Vec<VolumeInfo> = Vec::new();
    for name in names {
        if !chosen.iter().any(|v| v.name == name) {
            chosen.push(engine.volume(&name)?);
        }
    }
    if selection.all {
        let filters: Vec<_> = selection
            .labels
            .iter()
            .map(|l| parse_label_filter(l))
            .collect();
        for v in engine.volumes(&filters)? {
            if !chosen.iter().any(|c| c.name == v.name) {
                chosen.push(v);
            }
        }
    }
    Ok(chosen)
}
