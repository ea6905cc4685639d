//! The repository's objects as bytes: pure encoding and decoding, no I/O.
//! Every decoder refuses what docs/FORMAT.md does not allow.

pub mod aead;
pub(crate) mod codec;
pub mod config;
pub mod crypto;
pub mod frame;
pub mod layout;
pub mod pack;
pub mod plan;
pub mod segment;
pub mod snapshot;
pub mod tree;
