//! cairn's S3 backend: a repository under a prefix of an S3-compatible
//! bucket (AWS S3, MinIO, Ceph RGW, Garage, ...), through apache
//! `object_store`.
//!
//! It lives in its own crate so that `cairn-repo`, and whatever else uses
//! it, does not carry an HTTP and TLS stack.
//!
//! ```no_run
//! use cairn_repo::Backend;
//! use cairn_s3::{S3Backend, S3Options};
//!
//! // Endpoint, region and credentials follow the AWS conventions
//! // (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, ...).
//! let backend = S3Backend::from_url("s3://backups/hosts/db1", &S3Options::default())?;
//! for object in backend.list("snapshots/")? {
//!     println!("{} {}", object.key, object.size);
//! }
//! println!("{}", serde_json::to_string(&backend.stats())?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it assumes of the store, how it retries and what it counts is in
//! `docs/s3.md`.

#![deny(missing_docs)]

mod aws_env;
mod backend;
mod error;
mod location;
mod metered;
mod options;
mod profile;
mod stats;
mod stream;

pub use aws_env::{AwsEnv, CredentialSource, ResolvedSettings};
pub use backend::S3Backend;
pub use error::{RemoteError, S3Error};
pub use location::S3Location;
pub use options::{RetryOptions, S3Options};
pub use stats::{RequestKind, RequestStats, RequestStatsSnapshot};
