//! Containers: which use a volume, what they mount, stopping and starting.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bollard::models::{
    ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum, MountPoint,
};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, StartContainerOptions, StopContainerOptions,
};

use crate::engine::{status_of, Engine};
use crate::error::{Error, Result};

/// The label with which docker-volume-backup users mark containers to be
/// stopped while their volumes are backed up; cairn honours it too.
pub const STOP_DURING_BACKUP_LABEL: &str = "docker-volume-backup.stop-during-backup";

/// A container as far as a backup cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The full id.
    pub id: String,
    /// The name, without Docker's leading `/`.
    pub name: String,
    /// Whether it is running (a paused container counts: it still has its
    /// volumes mounted and resumes writing when unpaused).
    pub running: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// Whether the container asks to be stopped during a backup of its
    /// volumes (label `docker-volume-backup.stop-during-backup=true`).
    pub fn wants_stop_during_backup(&self) -> bool {
        self.labels
            .get(STOP_DURING_BACKUP_LABEL)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume's name.
    pub volume: String,
    /// Where it appears inside the container.
    pub destination: PathBuf,
    /// Whether the container mounts it read-only.
    pub read_only: bool,
}

/// The volumes among a container's mounts (anonymous ones too: the engine
/// names them by a hex id); bind mounts and tmpfs are not volumes.
/// Sorted by destination: the engine's order varies between inspections.
fn named_volume_mounts(mounts: &[MountPoint]) -> Vec<VolumeMount> {
    let mut named: Vec<VolumeMount> = mounts
        .iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| {
            Some(VolumeMount {
                volume: m.name.clone().filter(|n| !n.is_empty())?,
                destination: m.destination.clone().unwrap_or_default().into(),
                read_only: m.rw == Some(false),
            })
        })
        .collect();
    named.sort_by(|a, b| a.destination.cmp(&b.destination));
    named
}

fn strip_slash(name: &str) -> String {
    name.strip_prefix('/').unwrap_or(name).to_string()
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

fn from_summary(c: ContainerSummary) -> ContainerInfo {
    let running = matches!(
        c.state,
        Some(ContainerSummaryStateEnum::RUNNING)
            | Some(ContainerSummaryStateEnum::PAUSED)
            | Some(ContainerSummaryStateEnum::RESTARTING)
    );
    let id = c.id.unwrap_or_default();
    let name = c
        .names
        .and_then(|names| names.into_iter().next())
        .map(|n| strip_slash(&n))
        .unwrap_or_else(|| id.clone());
    ContainerInfo {
        id,
        name,
        running,
        labels: sorted(c.labels),
    }
}

fn from_inspect(c: &ContainerInspectResponse) -> ContainerInfo {
    let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    let id = c.id.clone().unwrap_or_default();
    ContainerInfo {
        name: c
            .name
            .as_deref()
            .map(strip_slash)
            .unwrap_or_else(|| id.clone()),
        id,
        running,
        labels: sorted(c.config.as_ref().and_then(|cfg| cfg.labels.clone())),
    }
}

impl Engine {
    fn inspect(&self, name: &str) -> Result<ContainerInspectResponse> {
        let options = Some(InspectContainerOptions { size: false });
        match self.block_on(self.docker.inspect_container(name, options)) {
            Ok(c) => Ok(c),
            Err(e) if status_of(&e) == Some(404) => {
                Err(Error::NoSuchContainer { name: name.into() })
            }
            Err(e) => Err(self.api_error(format!("inspecting container {name}"), e)),
        }
    }

    /// The container with this name or id, or [`Error::NoSuchContainer`].
    pub fn container(&self, name: &str) -> Result<ContainerInfo> {
        Ok(from_inspect(&self.inspect(name)?))
    }

    /// The named volumes container `name` mounts, by destination path:
    /// what `--docker-container` backs up, one snapshot each.
    pub fn volume_mounts(&self, name: &str) -> Result<Vec<VolumeMount>> {
        let c = self.inspect(name)?;
        Ok(named_volume_mounts(c.mounts.as_deref().unwrap_or_default()))
    }

    /// Every container, running or not, that mounts volume `name`, sorted
    /// by name; [`Error::NoSuchVolume`] if there is no such volume.
    pub fn containers_using(&self, volume: &str) -> Result<Vec<ContainerInfo>> {
        self.volume(volume)?;
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "volume".to_string(),
                vec![volume.to_string()],
            )])),
            ..Default::default()
        };
        let listed = self
            .block_on(self.docker.list_containers(Some(options)))
            .map_err(|e| self.api_error(format!("listing containers using volume {volume}"), e))?;
        // The engine's filter also matches a mount *destination* equal to the
        // value; keep only containers that mount this volume by name.
        let mut users: Vec<ContainerInfo> = listed
            .into_iter()
            .filter(|c| {
                named_volume_mounts(c.mounts.as_deref().unwrap_or_default())
                    .iter()
                    .any(|m| m.volume == volume)
            })
            .map(from_summary)
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// Stops a container the way `docker stop` does (its own stop signal,
    /// then SIGKILL after its stop timeout). Returns `false` if it was not
    /// running, so the caller knows not to start it again.
    pub fn stop(&self, id: &str) -> Result<bool> {
        let options = Some(StopContainerOptions::default());
        match self.block_on(self.docker.stop_container(id, options)) {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(304) => Ok(false),
            Err(e) if status_of(&e) == Some(404) => Err(Error::NoSuchContainer { name: id.into() }),
            Err(e) => Err(self.api_error(format!("stopping container {id}"), e)),
        }
    }

    /// Starts a container; one already running is left as it is.
    pub fn start(&self, id: &str) -> Result<()> {
        match self.block_on(
            self.docker
                .start_container(id, None::<StartContainerOptions>),
        ) {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(Error::NoSuchContainer { name: id.into() }),
            Err(e) => Err(self.api_error(format!("starting container {id}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(typ: &str, name: Option<&str>, dest: &str, rw: bool) -> MountPoint {
        MountPoint {
            typ: Some(typ.into()),
            name: name.map(Into::into),
            destination: Some(dest.into()),
            rw: Some(rw),
            ..Default::default()
        }
    }

    #[test]
    fn only_named_volumes_count_as_volume_mounts_sorted_by_destination() {
        let mounts = [
            mount("bind", None, "/etc/app.conf", false),
            mount("volume", Some("pgdata"), "/var/lib/postgresql/data", true),
            mount("tmpfs", None, "/run", true),
            mount("volume", Some("certs"), "/certs", false),
        ];
        assert_eq!(
            named_volume_mounts(&mounts),
            [
                VolumeMount {
                    volume: "certs".into(),
                    destination: "/certs".into(),
                    read_only: true,
                },
                VolumeMount {
                    volume: "pgdata".into(),
                    destination: "/var/lib/postgresql/data".into(),
                    read_only: false,
                },
            ]
        );
    }

    #[test]
    fn summary_names_lose_the_leading_slash_and_paused_counts_as_running() {
        let c = ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/db".into()]),
            state: Some(ContainerSummaryStateEnum::PAUSED),
            ..Default::default()
        };
        let info = from_summary(c);
        assert_eq!((info.name.as_str(), info.running), ("db", true));
    }

    #[test]
    fn the_stop_label_must_say_true() {
        let mut c = ContainerInfo {
            id: "abc".into(),
            name: "db".into(),
            running: true,
            labels: BTreeMap::new(),
        };
        assert!(!c.wants_stop_during_backup());
        c.labels
            .insert(STOP_DURING_BACKUP_LABEL.into(), "false".into());
        assert!(!c.wants_stop_during_backup());
        c.labels
            .insert(STOP_DURING_BACKUP_LABEL.into(), "true".into());
        assert!(c.wants_stop_during_backup());
    }
}
