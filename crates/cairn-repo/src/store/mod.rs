//! Storing and finding objects: the backend (where bytes live), the
//! repository over it (config, index, blobs, trees, snapshots), the local
//! index cache, backup locks and prune plans, and the packer that builds
//! pack files. Knows nothing of file systems being backed up or restored.

pub mod backend;
pub mod faults;
pub mod frames;
pub mod index;
pub mod keys;
pub mod local;
pub mod lock;
pub mod objcache;
pub mod packer;
pub mod packs;
pub mod plans;
pub mod prefetch;
pub mod repository;
pub mod snapcache;
pub(crate) mod spans;
