//! The container side of cairn: its image built by `docker/build.sh` and used
//! as docs/containers.md shows, and the compose file and Kubernetes
//! manifests that page keeps, checked so they cannot rot unnoticed.

#[path = "../common/mod.rs"]
mod common;

mod image;
mod manifests;
mod volumes;

use std::process::{Command, Output};

/// `docker ARGS...`, whatever it answers.
fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}
