//! What can go wrong talking to the engine, each error naming what it is about.

/// A failed engine operation. Each variant's message is one line that names
/// the volume, container or endpoint concerned and, where there is one, what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine did not answer: no socket, connection refused, timeout.
    #[error("cannot reach the Docker engine at {endpoint}: {reason} (is the daemon running? DOCKER_HOST selects another engine)")]
    Unreachable {
        /// Where we looked, e.g. `unix:///var/run/docker.sock`.
        endpoint: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// `DOCKER_HOST` names a transport this crate does not speak.
    #[error("DOCKER_HOST={endpoint} is not supported: {reason}")]
    UnsupportedEndpoint {
        /// The value of `DOCKER_HOST`.
        endpoint: String,
        /// Why, and what is supported instead.
        reason: String,
    },
    /// No volume has this name.
    #[error("no Docker volume named {name} (`docker volume ls` lists them)")]
    NoSuchVolume {
        /// The name asked for.
        name: String,
    },
    /// No container has this name or id.
    #[error("no Docker container named {name} (`docker ps -a` lists them)")]
    NoSuchContainer {
        /// The name or id asked for.
        name: String,
    },
    /// A volume to be created already exists.
    #[error("Docker volume {name} already exists: choose a new name or remove it first")]
    VolumeExists {
        /// The volume's name.
        name: String,
    },
    /// Running containers use a volume that must not change under them.
    #[error("Docker volume {name} is in use by running container(s) {}: stop them first or pass --stop", .containers.join(", "))]
    VolumeInUse {
        /// The volume's name.
        name: String,
        /// Names of the running containers that mount it.
        containers: Vec<String>,
    },
    /// The volume's files are neither at its mountpoint nor mounted into the
    /// container this process runs in.
    #[error("cannot see the files of Docker volume {name} from here: mount it into cairn's container (`-v {name}:/volumes/{name}`) or run cairn on the engine's host")]
    VolumeNotReachable {
        /// The volume's name.
        name: String,
    },
    /// A command cannot run in a container that is not running.
    #[error("container {name} is not running")]
    ContainerNotRunning {
        /// The container's name.
        name: String,
    },
    /// A command run in a container exited with a non-zero code.
    #[error("`{cmd}` in container {container} exited with code {exit_code}{}", last_line_suffix(.output))]
    ExecFailed {
        /// The container's name.
        container: String,
        /// The command, its words joined by spaces.
        cmd: String,
        /// Its exit code.
        exit_code: i64,
        /// Everything it printed, stdout then stderr.
        output: String,
    },
    /// Containers stopped for a backup could not all be started again.
    #[error("could not start container(s) {} again: {reason}; start them by hand (`docker start {}`)", .containers.join(", "), .containers.join(" "))]
    RestartFailed {
        /// Names of the containers that are still stopped.
        containers: Vec<String>,
        /// The first failure's message.
        reason: String,
    },
    /// Any other answer from the engine.
    #[error("Docker engine: {action}: {message}")]
    Api {
        /// What we were doing, naming the volume or container.
        action: String,
        /// The engine's message.
        message: String,
    },
    /// The client's I/O runtime could not be created.
    #[error("cannot start the Docker client: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `": <last line>"` of a command's output, so the error stays one line but
/// still shows the reason most commands print last.
fn last_line_suffix(output: &str) -> String {
    output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failure_shows_the_last_line_of_output() {
        let e = Error::ExecFailed {
            container: "db".into(),
            cmd: "psql -c CHECKPOINT".into(),
            exit_code: 2,
            output: "psql: error: connection refused\n  hint\n\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "`psql -c CHECKPOINT` in container db exited with code 2: hint"
        );
    }

    #[test]
    fn exec_failure_without_output_ends_at_the_code() {
        let e = Error::ExecFailed {
            container: "db".into(),
            cmd: "false".into(),
            exit_code: 1,
            output: String::new(),
        };
        assert_eq!(e.to_string(), "`false` in container db exited with code 1");
    }

    #[test]
    fn every_message_is_one_line() {
        let errors = [
            Error::Unreachable {
                endpoint: "unix:///nowhere.sock".into(),
                reason: "no such socket".into(),
            },
            Error::VolumeInUse {
                name: "pgdata".into(),
                containers: vec!["db".into(), "worker".into()],
            },
            Error::RestartFailed {
                containers: vec!["db".into()],
                reason: "boom".into(),
            },
        ];
        for e in errors {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn volume_in_use_names_volume_and_containers() {
        let e = Error::VolumeInUse {
            name: "pgdata".into(),
            containers: vec!["db".into(), "worker".into()],
        };
        assert_eq!(
            e.to_string(),
            "Docker volume pgdata is in use by running container(s) db, worker: stop them first or pass --stop"
        );
    }
}
