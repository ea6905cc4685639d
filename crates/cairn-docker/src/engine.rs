//! The connection to the engine and the bridge from async to blocking.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;

use crate::error::{Error, Result};

/// Where the engine listens when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long the first ping may take before the engine counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound of one request. Stopping a container answers only once it has
/// exited, which takes up to its stop timeout (default 10 s; databases often
/// get minutes), so this is generous. Exec output streams are not bound by it.
const REQUEST_TIMEOUT_SECS: u64 = 600;

/// How to reach the engine, parsed from `DOCKER_HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// Parses `DOCKER_HOST` (`None` or empty: the default socket). TLS and
    /// SSH are refused here rather than half-supported: they would pull a TLS
    /// stack into every cairn build for a setup a bind-mounted socket serves.
    pub(crate) fn parse(docker_host: Option<&str>, tls_verify: bool) -> Result<Endpoint> {
        let host = docker_host.map(str::trim).unwrap_or("");
        if host.is_empty() {
            return Ok(Endpoint::Unix(DEFAULT_SOCKET.into()));
        }
        let unsupported = |reason: &str| Error::UnsupportedEndpoint {
            endpoint: host.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(unsupported("the unix:// address has no socket path"));
            }
            return Ok(Endpoint::Unix(path.into()));
        }
        let Some(addr) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        else {
            return Err(unsupported(
                "cairn speaks to the engine over unix:// or plain tcp:// only (no TLS, no ssh://); bind-mount the socket instead",
            ));
        };
        if tls_verify {
            return Err(unsupported(
                "DOCKER_TLS_VERIFY is set but cairn has no TLS support; use the engine's unix socket",
            ));
        }
        if addr.is_empty() {
            return Err(unsupported("the tcp:// address has no host"));
        }
        Ok(Endpoint::Tcp(addr.trim_end_matches('/').to_string()))
    }

    /// From the process environment.
    fn from_env() -> Result<Endpoint> {
        let host = std::env::var("DOCKER_HOST").ok();
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        Endpoint::parse(host.as_deref(), tls)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// A connection to a Docker Engine. Every method blocks the calling thread
/// until the engine has answered.
///
/// Cloning is cheap and clones share one connection pool and one I/O thread.
/// Methods must not be called from inside an async runtime (they would
/// block it); cairn's engines are plain threads, which is what this is for.
#[derive(Clone)]
pub struct Engine {
    pub(crate) docker: Docker,
    runtime: Arc<tokio::runtime::Runtime>,
    endpoint: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Engine {
    /// Connects to the engine named by `DOCKER_HOST` (`unix://PATH` or
    /// `tcp://HOST:PORT`), or to `/var/run/docker.sock`, and pings it, so an
    /// engine that is not there fails here with [`Error::Unreachable`]
    /// instead of at the first real request.
    pub fn connect() -> Result<Engine> {
        Engine::connect_to(Endpoint::from_env()?)
    }

    fn connect_to(endpoint: Endpoint) -> Result<Engine> {
        // One worker thread keeps hyper's pooled connections serviced between
        // our blocking calls; a current-thread runtime would leave them
        // unpolled while the caller does backup work.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cairn-docker-io")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let name = endpoint.to_string();
        let unreachable = |reason: String| Error::Unreachable {
            endpoint: name.clone(),
            reason,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = match &endpoint {
            Endpoint::Unix(path) => {
                if !path.exists() {
                    return Err(unreachable("no socket there".into()));
                }
                Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, version)
            }
            Endpoint::Tcp(addr) => {
                Docker::connect_with_http(&format!("tcp://{addr}"), REQUEST_TIMEOUT_SECS, version)
            }
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let docker = runtime.block_on(async {
            match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
                Err(_) => Err(unreachable(format!(
                    "no answer within {} s",
                    PING_TIMEOUT.as_secs()
                ))),
                Ok(Err(e)) => Err(unreachable(connection_reason(&e))),
                // Newer clients speak a newer API than e.g. Debian's 20.10
                // engine (1.41), which refuses requests above its version.
                Ok(Ok(_)) => docker
                    .negotiate_version()
                    .await
                    .map_err(|e| unreachable(connection_reason(&e))),
            }
        })?;
        Ok(Engine {
            docker,
            runtime: Arc::new(runtime),
            endpoint: name,
        })
    }

    /// The endpoint in `DOCKER_HOST` form, e.g. `unix:///var/run/docker.sock`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The engine host's name (`docker info`'s Name). Inside a container
    /// the hostname is the container's id, new for every `docker run`; this
    /// name is what a backup should record as its host, so that runs from
    /// the engine's host and from containers form one snapshot group.
    pub fn host_name(&self) -> Result<String> {
        let info = self
            .block_on(self.docker.info())
            .map_err(|e| self.api_error("reading the engine's system info", e))?;
        Ok(info.name.unwrap_or_default())
    }

    /// Runs one request to completion on the I/O thread.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Turns a client error into ours: a lost connection is
    /// [`Error::Unreachable`], anything else [`Error::Api`] with `action`.
    pub(crate) fn api_error(
        &self,
        action: impl Into<String>,
        err: bollard::errors::Error,
    ) -> Error {
        if is_connection_error(&err) {
            return Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: connection_reason(&err),
            };
        }
        Error::Api {
            action: action.into(),
            message: server_message(&err),
        }
    }
}

/// The HTTP status of an error answer from the engine, if it was one.
pub(crate) fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn is_connection_error(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        err,
        E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}

/// The innermost cause, which is what says "connection refused" or
/// "permission denied"; the outer layers only say "client error (Connect)".
fn connection_reason(err: &bollard::errors::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

fn server_message(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_docker_host_means_the_default_socket() {
        for host in [None, Some(""), Some("  ")] {
            assert_eq!(
                Endpoint::parse(host, false).unwrap(),
                Endpoint::Unix(DEFAULT_SOCKET.into())
            );
        }
    }

    #[test]
    fn unix_and_tcp_hosts_parse() {
        assert_eq!(
            Endpoint::parse(Some("unix:///run/user/1000/docker.sock"), false).unwrap(),
            Endpoint::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse(Some("tcp://10.0.0.5:2375/"), false).unwrap(),
            Endpoint::Tcp("10.0.0.5:2375".into())
        );
        assert_eq!(
            Endpoint::parse(Some("tcp://10.0.0.5:2375"), false)
                .unwrap()
                .to_string(),
            "tcp://10.0.0.5:2375"
        );
    }

    #[test]
    fn tls_and_ssh_are_refused_with_the_reason() {
        for (host, tls) in [
            ("ssh://me@box", false),
            ("https://box:2376", false),
            ("tcp://box:2376", true),
            ("unix://", false),
        ] {
            let err = Endpoint::parse(Some(host), tls).unwrap_err();
            assert!(
                matches!(&err, Error::UnsupportedEndpoint { endpoint, .. } if endpoint == host),
                "{err}"
            );
        }
    }

    #[test]
    fn a_missing_socket_is_unreachable_at_connect() {
        let err =
            Engine::connect_to(Endpoint::Unix("/nonexistent/docker.sock".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot reach the Docker engine at unix:///nonexistent/docker.sock: no socket there (is the daemon running? DOCKER_HOST selects another engine)"
        );
    }

    #[test]
    fn a_refused_tcp_port_is_unreachable_at_connect() {
        // Port 1 on loopback: nothing listens there, so the connect is refused.
        let err = Engine::connect_to(Endpoint::Tcp("127.0.0.1:1".into())).unwrap_err();
        assert!(
            matches!(&err, Error::Unreachable { endpoint, reason }
                if endpoint == "tcp://127.0.0.1:1" && reason.contains("refused")),
            "{err}"
        );
    }
}
