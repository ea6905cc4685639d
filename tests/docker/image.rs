//! cairn's own image, built by docker/build.sh from the binary under test,
//! doing what docs/containers.md marks as working today: back up a named
//! volume mounted read-only, restore into a new volume, owners and modes
//! intact. Skips, saying so, when no engine answers.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::common::cairn_bin;
use crate::docker_output;

const IMAGE: &str = "cairn-test-cairn";
const BUSYBOX: &str = "cairn-test-busybox";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn engine_answers() -> bool {
    docker_output(&["version", "--format", "{{.Server.Version}}"])
        .status
        .success()
}

fn run_script(script: &str, args: &[&str], envs: &[(&str, &Path)]) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join(script)).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    assert!(cmd.status().unwrap().success(), "{script} failed");
}

/// Volumes removed on drop, whatever the test did.
struct Volumes(Vec<String>);

impl Volumes {
    fn create(&mut self, what: &str) -> String {
        let name = format!("cairn-image-it-{}-{what}", std::process::id());
        docker(&["volume", "create", &name]);
        self.0.push(name.clone());
        name
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = docker_output(&["volume", "rm", "-f", v]);
        }
    }
}

/// Paths, owners and modes, then content digests, of every entry below
/// `/v` in a volume, as busybox sees them.
fn listing(volume: &str) -> String {
    let script =
        "cd /v && find . | sort | while read -r f; do stat -c '%n %u:%g %a %s' \"$f\"; done \
                  && find . -type f | sort | xargs md5sum";
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v:ro"),
        BUSYBOX,
        "sh",
        "-c",
        script,
    ])
}

#[test]
fn the_image_backs_up_a_volume_and_restores_it_into_a_new_one() {
    if !engine_answers() {
        eprintln!("skipping the_image_backs_up_a_volume_and_restores_it_into_a_new_one: no Docker engine answers");
        return;
    }
    run_script("tests/docker/build-images.sh", &["busybox"], &[]);
    let started = Instant::now();
    run_script("docker/build.sh", &[IMAGE], &[("CAIRN_BIN", cairn_bin())]);
    let built = started.elapsed();

    let version = docker(&["run", "--rm", IMAGE, "--version"]);
    assert!(version.starts_with("cairn "), "{version}");
    let shell = docker_output(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        IMAGE,
        "-c",
        "true",
    ]);
    assert!(!shell.status.success(), "the image has a shell");

    let mut volumes = Volumes(Vec::new());
    let (repo_volume, data, restored) = (
        volumes.create("repo"),
        volumes.create("data"),
        volumes.create("restored"),
    );
    let fill = "mkdir -p /v/db/base && echo hello >/v/db/PG_VERSION && head -c 300000 /dev/urandom >/v/db/base/1 \
                && chown -R 999:999 /v/db && chmod 700 /v/db && ln -s db/PG_VERSION /v/link \
                && echo secret >/v/key && chmod 600 /v/key && chown 1000:1000 /v/key";
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{data}:/v"),
        BUSYBOX,
        "sh",
        "-c",
        fill,
    ]);

    // Containers are gone after each run: the key must come from outside.
    let with_repo = |extra: &[&str]| -> String {
        let repo_mount = format!("{repo_volume}:/repo");
        let mut args = vec![
            "run",
            "--rm",
            "-e",
            "CAIRN_PASSWORD=image-test",
            "-v",
            &repo_mount,
        ];
        args.extend_from_slice(extra);
        docker(&args)
    };
    with_repo(&[IMAGE, "init"]);
    let source = format!("{data}:/volumes/data:ro");
    with_repo(&[
        "-v",
        &source,
        IMAGE,
        "backup",
        "/volumes/data",
        "--volume",
        "data",
        "--host",
        "docker-test",
    ]);
    let target = format!("{restored}:/restore");
    with_repo(&[
        "-v", &target, IMAGE, "restore", "latest", "--volume", "data", "--target", "/restore",
        "--verify",
    ]);

    assert_eq!(listing(&restored), listing(&data));
    let size = docker(&["image", "inspect", "-f", "{{.Size}}", IMAGE]);
    println!(
        "image {IMAGE} built in {:.1} s, {} MB; backup and restore through it equal",
        built.as_secs_f64(),
        size.trim().parse::<u64>().unwrap() / 1_000_000
    );
    let _ = docker_output(&["rmi", IMAGE]);
}
