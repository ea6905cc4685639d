//! Errors of container-aware operations; each names its volume, container
//! or command.

/// A failed container-aware operation, one line naming what it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused or could not be reached (its message names the
    /// volume or container).
    #[error(transparent)]
    Docker(#[from] cairn_docker::Error),
    /// The repository failed while working on a volume.
    #[error("volume {volume}: {source}")]
    Repo {
        /// The volume being backed up or restored.
        volume: String,
        /// What the repository said.
        #[source]
        source: cairn_repo::Error,
    },
    /// The backup of a volume was saved, but containers stopped for it
    /// could not all be started again.
    #[error("volume {volume}: snapshot {snapshot} saved, but {source}")]
    NotRestarted {
        /// The volume.
        volume: String,
        /// The saved snapshot's short id.
        snapshot: String,
        /// Which containers are still stopped (boxed: rare, and large).
        #[source]
        source: Box<cairn_docker::Error>,
    },
    /// A host command (`--pre`, `--post`, `--stdin-from-command`) failed.
    #[error("{which} command `{cmd}` {status}")]
    CommandFailed {
        /// `pre`, `post` or `stdin`.
        which: &'static str,
        /// The command line.
        cmd: String,
        /// How it ended (`exited with code 2`, `could not start: ...`).
        status: String,
    },
    /// An argument that names something badly (`--exec`, `--stdin-name`).
    #[error("{0}")]
    BadArgument(String),
    /// A local file operation failed (spooling a command's output).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The repository error inside, if there is one (for exit codes).
    pub fn repo_error(&self) -> Option<&cairn_repo::Error> {
        match self {
            Error::Repo { source, .. } => Some(source),
            _ => None,
        }
    }

    pub(crate) fn repo(volume: &str) -> impl FnOnce(cairn_repo::Error) -> Error + '_ {
        move |source| Error::Repo {
            volume: volume.to_string(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
