//! Container-aware operations on top of the repository library and the
//! Docker client: what `cairn backup --docker-volume`, `cairn restore
//! --to-docker-volume`, `cairn volumes` and the quiesce hooks decide.
//!
//! The CLI parses flags and renders what these functions return; the
//! decisions live here: which volumes a selection means, which containers
//! to stop, the live pass followed by a stopped incremental pass (so the
//! downtime is only that of the second), starting the containers again
//! however the backup ends, and what an existing volume must look like
//! before a restore may write into it.
//!
//! ```no_run
//! use cairn_containers::{backup_volume, VolumeBackupOptions};
//! # fn f(repo: &cairn_repo::Repository) -> Result<(), cairn_containers::Error> {
//! let engine = cairn_docker::Engine::connect()?;
//! let volume = engine.volume("pgdata")?;
//! let opts = VolumeBackupOptions { host: "db1".into(), stop: true, ..Default::default() };
//! let done = backup_volume(repo, &engine, &volume, &opts, &cairn_repo::ops::backup::NoProgress)?;
//! println!("down for {:?}", done.downtime);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod backup;
mod error;
mod hooks;
mod restore;
mod select;
mod status;

pub use backup::{backup_volume, VolumeBackup, VolumeBackupOptions};
pub use error::{Error, Result};
pub use hooks::{run_exec, run_host_command, split_words, spool_command, ExecSpec, Spooled};
pub use restore::{prepare_restore, RestoreTarget};
pub use select::{select_volumes, Selection};
pub use status::{volume_statuses, VolumeStatus};
