//! Where this process can read a volume's files: on the engine's host at the
//! volume's mountpoint, or, when cairn itself runs in a container, wherever
//! that container mounts the volume.

use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::volume::VolumeInfo;

/// The id of the container this process runs in, if it runs in one. The
/// engine bind-mounts `/etc/hostname` from `.../containers/<id>/hostname`,
/// which `/proc/self/mountinfo` shows with cgroup v1 and v2 alike.
pub fn own_container_id() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    container_id_from_mountinfo(&mountinfo)
}

fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let root = line.split(' ').nth(3)?;
        let (_, rest) = root.split_once("/containers/")?;
        let (id, file) = rest.split_once('/')?;
        let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        (is_id && file == "hostname").then(|| id.to_string())
    })
}

impl Engine {
    /// The directory through which this process sees `volume`'s files.
    /// Inside a container that mounts the volume (a compose service with
    /// `pgdata:/volumes/pgdata:ro`), that mount's destination; otherwise the
    /// volume's mountpoint if it is a directory here (cairn on the engine's
    /// host, or `/var/lib/docker/volumes` bind-mounted at the same path).
    /// [`Error::VolumeNotReachable`] if neither.
    pub fn data_dir(&self, volume: &VolumeInfo) -> Result<PathBuf> {
        if let Some(id) = own_container_id() {
            // A container of another engine (say, DOCKER_HOST is remote) is
            // not one this engine knows: fall through to the mountpoint.
            if let Ok(mounts) = self.volume_mounts(&id) {
                if let Some(m) = mounts.into_iter().find(|m| m.volume == volume.name) {
                    return Ok(m.destination);
                }
            }
        }
        if is_dir(&volume.mountpoint) {
            return Ok(volume.mountpoint.clone());
        }
        Err(Error::VolumeNotReachable {
            name: volume.name.clone(),
        })
    }
}

fn is_dir(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7b2e5d0889c37c0c985da9825d0a1199b559fe3106cb1066d9696dedb20da34b";

    #[test]
    fn the_hostname_mount_names_the_container() {
        let mountinfo = format!(
            "69 60 0:50 / / rw,relatime - overlay overlay rw\n\
             86 69 254:0 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw\n\
             87 69 254:0 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mountinfo).as_deref(), Some(ID));
    }

    #[test]
    fn a_host_has_no_container_id() {
        let mountinfo = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                         30 22 0:25 / /var/lib/docker/containers/abc/hostname rw - tmpfs tmpfs rw\n";
        assert_eq!(container_id_from_mountinfo(mountinfo), None);
    }
}
