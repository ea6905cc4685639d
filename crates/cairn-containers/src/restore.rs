//! Where `restore --to-docker-volume` writes: a new volume made as the
//! snapshot's was, or an existing one that nobody is writing to.

use std::path::PathBuf;

use cairn_docker::{Engine, Error as DockerError, StoppedContainers};
use cairn_repo::Snapshot;

use crate::error::Result;

/// A volume ready to be restored into.
#[derive(Debug)]
pub struct RestoreTarget {
    /// The volume's name.
    pub volume: String,
    /// The directory through which its files are written.
    pub path: PathBuf,
    /// Whether the volume was created for this restore.
    pub created: bool,
    /// Containers stopped for the restore (`--stop`); started again when
    /// this is dropped or [`StoppedContainers::restart`] is called.
    pub stopped: Option<StoppedContainers>,
}

/// Makes volume `name` ready for a restore of `snap`.
///
/// A volume that does not exist is created with the driver, labels and
/// options the snapshot recorded (`local` and none for a snapshot of a
/// plain directory). An existing one is refused while running containers
/// use it, unless `stop` (they are then stopped until the target is
/// dropped); the restore then makes it identical to the snapshot, as
/// `restore --delete` does in place, rewriting only what differs.
pub fn prepare_restore(
    docker: &Engine,
    name: &str,
    snap: &Snapshot,
    stop: bool,
) -> Result<RestoreTarget> {
    let (volume, created) = match docker.volume(name) {
        Ok(v) => (v, false),
        Err(DockerError::NoSuchVolume { .. }) => {
            let recorded = snap.docker.clone().unwrap_or_default();
            let driver = if recorded.driver.is_empty() {
                "local"
            } else {
                recorded.driver.as_str()
            };
            let v = docker.create_volume(name, driver, &recorded.labels, &recorded.options)?;
            (v, true)
        }
        Err(e) => return Err(e.into()),
    };
    let mut stopped = None;
    if !created {
        match docker.check_not_in_use(name) {
            Ok(()) => {}
            Err(DockerError::VolumeInUse { .. }) if stop => {
                let users = docker.containers_using(name)?;
                stopped = Some(StoppedContainers::stop(docker, &users)?);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let path = docker.data_dir(&volume)?;
    Ok(RestoreTarget {
        volume: name.to_string(),
        path,
        created,
        stopped,
    })
}
