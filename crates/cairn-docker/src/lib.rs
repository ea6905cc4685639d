//! A blocking Docker Engine client with just what cairn needs to back up
//! named volumes: find a volume and what it was created with, find the
//! containers that use it, stop them for the length of a backup and start
//! them again however the backup ends, run a quiesce command inside a
//! container, and create a volume to restore into.
//!
//! The async client (bollard) and its runtime stay inside this crate: cairn's
//! backup and restore engines are plain threads, so the rest of the
//! workspace sees only blocking calls, and tokio and hyper come in through
//! this crate alone. One I/O thread serves every clone of an [`Engine`].
//!
//! ```no_run
//! use cairn_docker::{Engine, StoppedContainers};
//!
//! # fn main() -> Result<(), cairn_docker::Error> {
//! let engine = Engine::connect()?; // DOCKER_HOST or /var/run/docker.sock
//! let volume = engine.volume("pgdata")?;
//! let users = engine.containers_using(&volume.name)?;
//! let mut stopped = StoppedContainers::stop(&engine, &users)?;
//! let files = engine.data_dir(&volume)?; // the mountpoint, or where cairn's container mounts it
//! // ... back up `files` here ...
//! let downtime = stopped.restart()?;
//! println!("{} was down for {downtime:.1?}", volume.name);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod container;
mod engine;
mod error;
mod exec;
mod locate;
mod stopped;
mod volume;

pub use container::{ContainerInfo, VolumeMount, STOP_DURING_BACKUP_LABEL};
pub use engine::{Engine, DEFAULT_SOCKET};
pub use error::{Error, Result};
pub use exec::ExecOutput;
pub use locate::own_container_id;
pub use stopped::StoppedContainers;
pub use volume::{parse_label_filter, VolumeInfo};
