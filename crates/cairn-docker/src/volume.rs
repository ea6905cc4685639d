//! Named volumes: inspect, list by label, create, and who uses them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bollard::models::{Volume, VolumeCreateRequest};
use bollard::query_parameters::ListVolumesOptions;

use crate::engine::{status_of, Engine};
use crate::error::{Error, Result};
use crate::locate::own_container_id;

/// A named volume as the engine describes it: what a backup records so that a
/// restore can create the same kind of volume again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// The volume's name, which becomes the snapshot's volume.
    pub name: String,
    /// The volume driver, `local` for volumes on the engine's own disk.
    pub driver: String,
    /// Where the engine mounts it on its host. Readable by cairn only when
    /// cairn runs on that host (or has the directory mounted).
    pub mountpoint: PathBuf,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options given at creation (for `local`: `type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
    /// When the engine created it, RFC 3339, if the engine says.
    pub created: Option<String>,
}

impl From<Volume> for VolumeInfo {
    fn from(v: Volume) -> VolumeInfo {
        VolumeInfo {
            name: v.name,
            driver: v.driver,
            mountpoint: v.mountpoint.into(),
            labels: sorted(v.labels),
            options: sorted(v.options),
            created: v.created_at.filter(|c| !c.is_empty()),
        }
    }
}

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

/// Parses a `--label KEY[=VALUE]` argument: `KEY` alone matches any value.
pub fn parse_label_filter(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((key, value)) => (key.to_string(), Some(value.to_string())),
        None => (arg.to_string(), None),
    }
}

/// The engine's `label` filter values; the engine ANDs them.
fn label_filter_values(filters: &[(String, Option<String>)]) -> Vec<String> {
    filters
        .iter()
        .map(|(key, value)| match value {
            Some(value) => format!("{key}={value}"),
            None => key.clone(),
        })
        .collect()
}

impl Engine {
    /// The volume called `name`, or [`Error::NoSuchVolume`].
    pub fn volume(&self, name: &str) -> Result<VolumeInfo> {
        match self.block_on(self.docker.inspect_volume(name)) {
            Ok(v) => Ok(v.into()),
            Err(e) if status_of(&e) == Some(404) => Err(Error::NoSuchVolume { name: name.into() }),
            Err(e) => Err(self.api_error(format!("inspecting volume {name}"), e)),
        }
    }

    /// All volumes carrying every one of `label_filters` (`(key, None)`:
    /// the label with any value), sorted by name. No filters: all volumes.
    pub fn volumes(&self, label_filters: &[(String, Option<String>)]) -> Result<Vec<VolumeInfo>> {
        let mut filters = HashMap::new();
        if !label_filters.is_empty() {
            filters.insert("label".to_string(), label_filter_values(label_filters));
        }
        let options = ListVolumesOptions {
            filters: Some(filters),
        };
        let listed = self
            .block_on(self.docker.list_volumes(Some(options)))
            .map_err(|e| self.api_error("listing volumes", e))?;
        let mut volumes: Vec<VolumeInfo> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(VolumeInfo::from)
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Creates volume `name` with this driver, labels and driver options, as
    /// recorded at backup; [`Error::VolumeExists`] if the name is taken (the
    /// engine itself would silently hand back the existing volume).
    pub fn create_volume(
        &self,
        name: &str,
        driver: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<VolumeInfo> {
        match self.volume(name) {
            Ok(_) => return Err(Error::VolumeExists { name: name.into() }),
            Err(Error::NoSuchVolume { .. }) => {}
            Err(e) => return Err(e),
        }
        let request = VolumeCreateRequest {
            name: Some(name.into()),
            driver: Some(driver.into()),
            driver_opts: Some(options.clone().into_iter().collect()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.block_on(self.docker.create_volume(request))
            .map(VolumeInfo::from)
            .map_err(|e| self.api_error(format!("creating volume {name}"), e))
    }

    /// Fails with [`Error::VolumeInUse`] if a running container mounts
    /// volume `name`: what a restore into an existing volume checks first.
    /// The container this process runs in does not count.
    pub fn check_not_in_use(&self, name: &str) -> Result<()> {
        let me = own_container_id();
        let running: Vec<String> = self
            .containers_using(name)?
            .into_iter()
            .filter(|c| c.running && Some(&c.id) != me.as_ref())
            .map(|c| c.name)
            .collect();
        if running.is_empty() {
            Ok(())
        } else {
            Err(Error::VolumeInUse {
                name: name.into(),
                containers: running,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_arguments_split_at_the_first_equals_sign() {
        assert_eq!(parse_label_filter("backup"), ("backup".into(), None));
        assert_eq!(
            parse_label_filter("tier=db=primary"),
            ("tier".into(), Some("db=primary".into()))
        );
        assert_eq!(
            parse_label_filter("empty="),
            ("empty".into(), Some(String::new()))
        );
    }

    #[test]
    fn label_filters_become_engine_filter_values() {
        let filters = [
            ("backup".to_string(), None),
            ("tier".to_string(), Some("db".to_string())),
        ];
        assert_eq!(label_filter_values(&filters), ["backup", "tier=db"]);
    }

    #[test]
    fn volume_info_sorts_labels_and_drops_an_empty_creation_time() {
        let v = Volume {
            name: "pgdata".into(),
            driver: "local".into(),
            mountpoint: "/var/lib/docker/volumes/pgdata/_data".into(),
            labels: HashMap::from([("z".into(), "1".into()), ("a".into(), "2".into())]),
            created_at: Some(String::new()),
            ..Default::default()
        };
        let info = VolumeInfo::from(v);
        assert_eq!(info.labels.keys().collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(info.created, None);
        assert_eq!(
            info.mountpoint,
            PathBuf::from("/var/lib/docker/volumes/pgdata/_data")
        );
    }
}
