//! cairn-repo: the repository and what reads and writes it, in three layers
//! that only ever call downwards:
//!
//! * [`format`]: the objects as bytes (packs, index segments, trees,
//!   snapshots, config, plans) and where each lives ([`format::layout`]);
//!   pure encoding and decoding, no I/O;
//! * [`store`]: backends (put-once, get, list, delete), the [`Repository`]
//!   over one, the SQLite index cache, locks, prune plans and the packer;
//! * [`ops`]: backup, restore, diff, forget, prune, check, repair, stats,
//!   each taking a `&Repository` and returning a typed report.
//!
//! The on-disk format is specified in `docs/FORMAT.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cairn_repo::{LocalBackend, Repository};
//! let repo = Repository::open(Arc::new(LocalBackend::new("/srv/cairn")), None)?;
//! for (id, snap) in repo.snapshots()? {
//!     println!("{} {} {}", id.short(), snap.time, snap.volume);
//! }
//! # Ok::<(), cairn_repo::Error>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod format;
pub mod ops;
mod random;
pub mod store;

pub use cairn_chunk::Id;
pub use error::{Error, Result};
pub use format::config::Config;
pub use format::snapshot::{DockerVolume, Filter, Snapshot};
pub use format::tree::{Node, NodeKind, Tree};
pub use store::backend::{Backend, BackendError, LocationState, ObjectInfo, RequestStats};
pub use store::local::LocalBackend;
pub use store::repository::{Damaged, Repository, SnapshotList};
