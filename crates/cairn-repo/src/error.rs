//! The repository's error type: every variant names the path, key or id it is about.

use std::path::PathBuf;

use cairn_chunk::Id;

use crate::store::backend::BackendError;

/// Anything that can go wrong reading or writing a repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location exists but holds no repository config.
    #[error("{0}: not a cairn repository (no config file); create one with `cairn init`")]
    NotARepository(String),
    /// The location does not exist.
    #[error("{0}: repository does not exist; create it with `cairn init`")]
    NoRepository(String),
    /// `init` on a location that already holds something.
    #[error("{0}: already exists and is not empty; refusing to create a repository there")]
    NotEmpty(String),
    /// An encrypted repository and no password or key given.
    #[error("{0}: the repository is encrypted; give its password (CAIRN_PASSWORD, --password-file, --password-command) or --key-file")]
    KeyRequired(String),
    /// No key slot opens with the secrets given.
    #[error("{0}: wrong password or key (no key slot of the repository opens with it)")]
    WrongKey(String),
    /// Getting the password or key failed (a command, a file).
    #[error("{0}")]
    KeySource(String),
    /// A key command on a plaintext repository.
    #[error("{0}: the repository is not encrypted (it has no keys)")]
    NotEncrypted(String),
    /// No key slot has this id.
    #[error("no key {0} in this repository; `cairn key list` shows them")]
    NoSuchKey(String),
    /// Removing the only key slot.
    #[error("key {0} is the repository's last key; add another first (`cairn key add`)")]
    LastKey(String),
    /// Sealed with a cipher this cairn does not know (a newer cairn's).
    #[error(
        "{location}: repository encryption {name:?} is not supported by this cairn; upgrade cairn"
    )]
    UnknownEncryption {
        /// Repository location.
        location: String,
        /// The config's `encryption` value.
        name: String,
    },
    /// A cipher asked for a format that cannot hold it.
    #[error("encryption {0} needs repository format 3")]
    CipherNeedsFormat3(&'static str),
    /// Written by a newer cairn.
    #[error("{location}: repository format version {found} is newer than this cairn supports ({supported}); upgrade cairn")]
    NewerFormat {
        /// Repository location.
        location: String,
        /// Version in the config.
        found: u32,
        /// Highest version we read.
        supported: u32,
    },
    /// A backend operation failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Stored data that fails verification.
    #[error("{what} {id}: {reason}")]
    Corrupt {
        /// Kind of object: pack, blob, tree, index segment, snapshot, config.
        what: &'static str,
        /// Its id or key.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Damage that makes an operation unsafe until it is repaired.
    #[error("{what} {id} is damaged ({reason}); {advice}")]
    Damaged {
        /// `snapshot` or `index segment`.
        what: &'static str,
        /// Its id.
        id: Id,
        /// What is wrong with it.
        reason: String,
        /// What the user can do.
        advice: &'static str,
    },
    /// A blob the index does not know.
    #[error("blob {0} is not in the index (missing pack?); run `cairn check`")]
    MissingBlob(Id),
    /// No snapshot matches a selector.
    #[error("no snapshot matches {0:?}")]
    NoSnapshot(String),
    /// A prefix that matches several snapshots.
    #[error("snapshot id {prefix:?} is ambiguous: matches {candidates}")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// Short ids of the matches.
        candidates: String,
    },
    /// A snapshot selector that is neither `latest` nor hex of length >= 4.
    #[error(
        "invalid snapshot id {0:?}: use `latest`, a full id or a prefix of at least 4 hex digits"
    )]
    BadSnapshotId(String),
    /// A path inside a snapshot that does not exist.
    #[error("{path}: no such path in snapshot {snapshot}")]
    NoSuchPath {
        /// Path asked for.
        path: String,
        /// Short snapshot id.
        snapshot: String,
    },
    /// The local SQLite index cache failed.
    #[error("index cache {path}: {source}")]
    Cache {
        /// Cache file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Building a pack in the spool directory failed (it cannot be
    /// created or written, or the disk is full).
    #[error("{path}: {source} (building a pack for upload; for a remote repository packs are built in $TMPDIR, else /tmp)")]
    Spool {
        /// The spool directory or file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The spool directory in the shared temporary directory is not this
    /// user's alone: another user could swap a pack before it is uploaded.
    #[error("{path}: not a private directory of this user (owner uid {owner}, mode {mode:o}); remove it, or set TMPDIR to another directory")]
    SpoolNotPrivate {
        /// The spool directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// A local filesystem operation during backup or restore.
    #[error("{path}: {source}")]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A volume name, tag or host that cannot be stored safely.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// `volume`, `tag` or `host`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A glob given to an option that is not valid.
    #[error("{option}: invalid glob pattern {pattern:?}: {reason}")]
    BadPattern {
        /// `--include` or `--exclude`.
        option: &'static str,
        /// The pattern.
        pattern: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Two backup paths that would get the same name in the snapshot.
    #[error("{path}: two paths end in the same name {name:?}; back them up separately")]
    DuplicatePathName {
        /// The second path.
        path: PathBuf,
        /// The shared last component.
        name: String,
    },
    /// A retention policy whose every count is 0.
    #[error(
        "forget: every --keep-* count is 0, so the policy would remove every snapshot; refusing"
    )]
    EmptyPolicy,
    /// A retention policy that would remove a whole group.
    #[error("forget: the policy keeps no snapshot of {group}; refusing to remove all {count} of them (name them by id to do that)")]
    PolicyEmptiesGroup {
        /// The group (volume, host, paths).
        group: String,
        /// Its snapshots.
        count: usize,
    },
    /// `init` where a repository already is.
    #[error("{0}: a cairn repository already exists here")]
    AlreadyARepository(String),
    /// A source path that walks to nothing (excluded, or vanished).
    #[error("{0}: nothing to back up")]
    NothingToBackUp(PathBuf),
    /// Another prune holds the repository's prune lock: two prunes at once
    /// could each delete what the other's index still lists.
    #[error("another prune is running ({holder}; lock {key}); nothing was changed. Try again when it has finished; a lock not refreshed for 30 minutes is ignored")]
    PruneLocked {
        /// The other prune's lock object.
        key: String,
        /// Who holds it: host, pid and time, or why the lock cannot be read.
        holder: String,
    },
    /// The user asked to stop (Ctrl-C, SIGTERM); nothing was committed.
    #[error("interrupted; nothing was saved")]
    Interrupted,
    /// A worker thread of this process failed: a bug, never bad input.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Bad user input that is not a path problem.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for the repository crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this says an object does not exist (a concurrent prune or
    /// forget may delete what a listing just returned).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Backend(BackendError::NotFound { .. }))
    }

    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption error.
    pub fn corrupt(what: &'static str, id: impl ToString, reason: impl ToString) -> Error {
        Error::Corrupt {
            what,
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }
}
