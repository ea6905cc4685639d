//! One Docker volume's backup: live, or with its containers stopped for
//! only an incremental pass.

use std::time::Duration;

use cairn_chunk::WalkOptions;
use cairn_docker::{ContainerInfo, Engine, StoppedContainers, VolumeInfo};
use cairn_repo::format::snapshot::Summary;
use cairn_repo::ops::backup::{self as engine, BackupOptions, BackupOutcome, Progress};
use cairn_repo::{DockerVolume, Repository};

use crate::error::{Error, Result};

/// How to back up a volume.
#[derive(Debug, Clone, Default)]
pub struct VolumeBackupOptions {
    /// Host name to record.
    pub host: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Excludes and filesystem boundary.
    pub walk: WalkOptions,
    /// Read everything, store nothing, stop nothing.
    pub dry_run: bool,
    /// Stop every running container that mounts the volume (`--stop`).
    /// Containers labelled `docker-volume-backup.stop-during-backup=true`
    /// are stopped either way.
    pub stop: bool,
}

/// What backing up one volume did.
#[derive(Debug)]
pub struct VolumeBackup {
    /// The volume's name (the snapshot's volume).
    pub volume: String,
    /// The saved snapshot (of the stopped pass when containers were stopped).
    pub outcome: BackupOutcome,
    /// The live first pass before the containers were stopped, if there was
    /// one (its snapshot is removed once the stopped pass is saved).
    pub live_pass: Option<Summary>,
    /// Containers stopped for the backup, in the order they were stopped.
    pub stopped: Vec<String>,
    /// How long they were down, from the first stop to the last start.
    pub downtime: Option<Duration>,
}

/// Which of a volume's users to stop: running ones, all with `stop`, else
/// those whose label asks for it.
fn to_stop(users: &[ContainerInfo], stop: bool) -> Vec<ContainerInfo> {
    users
        .iter()
        .filter(|c| c.running && (stop || c.wants_stop_during_backup()))
        .cloned()
        .collect()
}

/// Backs up `volume` into `repo` as a snapshot of volume `volume.name`,
/// recording its driver, labels and options.
///
/// When containers must be stopped, the volume is first backed up while they
/// run; then they are stopped, the volume is backed up again with that
/// snapshot as parent (only what changed meanwhile is read), and they are
/// started again, last stopped first, whether the pass succeeded, failed or
/// was cancelled through `progress`. The live pass's snapshot is then
/// removed: only the consistent one stays.
pub fn backup_volume(
    repo: &Repository,
    docker: &Engine,
    volume: &VolumeInfo,
    opts: &VolumeBackupOptions,
    progress: &dyn Progress,
) -> Result<VolumeBackup> {
    let name = volume.name.as_str();
    let users = docker.containers_using(name)?;
    let stopping = if opts.dry_run {
        Vec::new()
    } else {
        to_stop(&users, opts.stop)
    };
    let dir = docker.data_dir(volume)?;
    let base = BackupOptions {
        paths: vec![dir],
        volume: name.to_string(),
        host: opts.host.clone(),
        tags: opts.tags.clone(),
        parent: None,
        // Chosen by the engine after its lock is written, so a prune
        // running meanwhile cannot doom what it reuses.
        latest_parent: true,
        walk: opts.walk.clone(),
        dry_run: opts.dry_run,
        docker: Some(DockerVolume {
            driver: volume.driver.clone(),
            labels: volume.labels.clone(),
            options: volume.options.clone(),
            containers: users.iter().map(|c| c.name.clone()).collect(),
            stopped: Vec::new(),
        }),
    };
    base.validate().map_err(Error::repo(name))?;
    let first = engine::backup(repo, &base, progress).map_err(Error::repo(name))?;
    let Some(live_id) = first.snapshot_id.filter(|_| !stopping.is_empty()) else {
        return Ok(VolumeBackup {
            volume: name.to_string(),
            outcome: first,
            live_pass: None,
            stopped: Vec::new(),
            downtime: None,
        });
    };
    // From here on the live snapshot goes, whatever happens: it may be torn,
    // and a later `restore latest` must not pick it.
    let forget_live = || {
        let _ = repo.remove_snapshot(&live_id);
    };
    if progress.cancelled() {
        forget_live();
        return Err(Error::repo(name)(cairn_repo::Error::Interrupted));
    }
    let mut guard = match StoppedContainers::stop(docker, &stopping) {
        Ok(guard) => guard,
        Err(e) => {
            forget_live();
            return Err(e.into());
        }
    };
    let stopped: Vec<String> = guard.containers().iter().map(|c| c.name.clone()).collect();
    let mut second = base.clone();
    second.parent = Some((live_id, first.snapshot.clone()));
    if let Some(d) = second.docker.as_mut() {
        d.stopped = stopped.clone();
    }
    let result = engine::backup(repo, &second, progress);
    let restarted = guard.restart();
    forget_live();
    let outcome = result.map_err(Error::repo(name))?;
    let downtime = match restarted {
        Ok(d) => d,
        Err(source) => {
            return Err(Error::NotRestarted {
                volume: name.to_string(),
                snapshot: outcome.snapshot_id.map(|i| i.short()).unwrap_or_default(),
                source: Box::new(source),
            })
        }
    };
    Ok(VolumeBackup {
        volume: name.to_string(),
        outcome,
        live_pass: Some(first.snapshot.summary),
        stopped,
        downtime: Some(downtime),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, running: bool, label: bool) -> ContainerInfo {
        let mut labels = std::collections::BTreeMap::new();
        if label {
            labels.insert(cairn_docker::STOP_DURING_BACKUP_LABEL.into(), "true".into());
        }
        ContainerInfo {
            id: name.into(),
            name: name.into(),
            running,
            labels,
        }
    }

    #[test]
    fn stop_takes_running_users_and_the_label_asks_without_it() {
        let users = [
            container("db", true, false),
            container("old", false, true),
            container("worker", true, true),
        ];
        let names = |v: Vec<ContainerInfo>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(to_stop(&users, true)), ["db", "worker"]);
        assert_eq!(names(to_stop(&users, false)), ["worker"]);
    }
}
