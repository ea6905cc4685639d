//! cairn-repo: the repository and what reads and writes it.
//!
//! A repository is a set of immutable files behind a [`Backend`]: a config,
//! pack files holding compressed blobs ([`pack`]), index segments listing
//! what each pack holds ([`segment`]), and snapshots ([`snapshot`]) naming a
//! root [`tree`]. A local SQLite database ([`index`]) caches the segments.
//! [`backup`] and [`restore`] move data between a directory tree and a
//! repository. The on-disk format is specified in `docs/FORMAT.md`.
//!
//! ```no_run
//! use cairn_repo::{backend_for, Repository};
//! let repo = Repository::open(backend_for("/srv/cairn")?, None)?;
//! for (id, snap) in repo.snapshots()? {
//!     println!("{} {} {}", id.short(), snap.time, snap.volume);
//! }
//! # Ok::<(), cairn_repo::Error>(())
//! ```
#![deny(missing_docs)]

pub mod backend;
pub mod backup;
pub mod check;
#[allow(missing_docs)]
pub mod codec;
pub mod config;
pub mod diff;
mod error;
pub mod faults;
pub mod forget;
pub mod fsmeta;
pub mod index;
pub mod lock;
pub mod pack;
pub mod packer;
pub mod prune;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod segment;
pub mod snapshot;
pub mod stats;
pub mod tree;

pub use backend::{Backend, BackendError, LocalBackend, LocationState, ObjectInfo};
pub use cairn_chunk::Id;
pub use config::Config;
pub use error::{Error, Result};
pub use repository::{backend_for, Damaged, Repository, SnapshotList};
pub use snapshot::{Filter, Snapshot};
pub use tree::{Node, NodeKind, Tree};
