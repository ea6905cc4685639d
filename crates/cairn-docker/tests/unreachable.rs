//! An engine that is not there fails at connect with one line. Its own test
//! binary, because it changes DOCKER_HOST for the whole process.

use cairn_docker::{Engine, Error};

#[test]
fn an_unreachable_engine_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    std::env::set_var("DOCKER_HOST", format!("unix://{}", socket.display()));
    let err = Engine::connect().unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach the Docker engine at unix://{}: no socket there (is the daemon running? DOCKER_HOST selects another engine)",
            socket.display()
        )
    );

    // A socket file nobody listens on: the connection is refused.
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(listener);
    let err = Engine::connect().unwrap_err();
    let line = err.to_string();
    assert!(line.contains("refused"), "{line}");
    assert!(!line.contains('\n'), "{line}");

    std::env::set_var("DOCKER_HOST", "ssh://backup@db-host");
    let err = Engine::connect().unwrap_err();
    assert_eq!(
        err.to_string(),
        "DOCKER_HOST=ssh://backup@db-host is not supported: cairn speaks to the engine over unix:// or plain tcp:// only (no TLS, no ssh://); bind-mount the socket instead"
    );
}
