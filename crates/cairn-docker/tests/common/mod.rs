//! Fixtures for tests against the real engine: skip when there is none,
//! build the test images once, and remove every container and volume a test
//! made, however it ends. Set-up goes through the `docker` CLI so that only
//! the code under test goes through `cairn_docker`.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use cairn_docker::{Engine, Error};

/// The engine, or `None` after printing why the test is skipped.
pub fn engine_or_skip(test: &str) -> Option<Engine> {
    match Engine::connect() {
        Ok(engine) => Some(engine),
        Err(e @ Error::Unreachable { .. }) => {
            eprintln!("skipping {test}: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Builds the test images once per test binary; the script returns at once
/// when they are current.
pub fn ensure_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = repo_root().join("tests/docker/build-images.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .expect("run build-images.sh");
        assert!(status.success(), "{} failed", script.display());
    });
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `docker ARGS`, panicking with its stderr if it fails; returns stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Containers and volumes made by one test, with names unique to this run,
/// all removed on drop.
#[derive(Default)]
pub struct Scratch {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Scratch {
    /// A unique name with `what` in it, for a volume or container.
    pub fn name(&self, what: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("cairn-it-{}-{n}-{what}", std::process::id())
    }

    /// `docker volume create` with extra arguments (labels, options).
    pub fn volume(&mut self, what: &str, args: &[&str]) -> String {
        let name = self.name(what);
        let mut all = vec!["volume", "create"];
        all.extend_from_slice(args);
        all.push(&name);
        docker(&all);
        self.volumes.push(name.clone());
        name
    }

    /// Records a volume made another way (e.g. by the code under test).
    pub fn adopt_volume(&mut self, name: &str) {
        self.volumes.push(name.into());
    }

    /// `docker run -d` of `image` with `args` before the image (mounts,
    /// labels) and `cmd` after it.
    pub fn run(&mut self, what: &str, args: &[&str], image: &str, cmd: &[&str]) -> String {
        let name = self.name(what);
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        all.push(image);
        all.extend_from_slice(cmd);
        self.containers.push(name.clone());
        docker(&all);
        name
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", c]).output();
        }
        for v in &self.volumes {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}
