//! `cairn backup --docker-volume/--docker-container`, `--stop`, the hooks,
//! `--stdin-from-command`, `restore --to-docker-volume` and `cairn volumes`
//! against the real engine. Each test skips, saying so, when no engine
//! answers; every container and volume it makes is removed however it ends.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{assert_exit, assert_one_line_error, parse_json, stderr, stdout, Env};
use crate::docker_output;

const BUSYBOX: &str = "cairn-test-busybox";

fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether an engine answers; says so when it does not.
fn engine_or_skip(test: &str) -> bool {
    let ok = docker_output(&["version", "--format", "{{.Server.Version}}"])
        .status
        .success();
    if !ok {
        eprintln!("skipping {test}: no Docker engine answers");
    }
    ok
}

fn build_images(which: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker/build-images.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(which)
        .status()
        .unwrap();
    assert!(status.success(), "build-images.sh {which:?} failed");
}

fn busybox() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_images(&["busybox"]));
}

/// Containers and volumes of one test, with names unique to this run,
/// removed on drop.
#[derive(Default)]
struct Scratch {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Scratch {
    fn name(&self, what: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("cairn-cli-it-{}-{n}-{what}", std::process::id())
    }

    fn volume(&mut self, what: &str, args: &[&str]) -> String {
        let name = self.name(what);
        let mut all = vec!["volume", "create"];
        all.extend_from_slice(args);
        all.push(&name);
        docker(&all);
        self.volumes.push(name.clone());
        name
    }

    /// A name for a volume the code under test creates.
    fn later_volume(&mut self, what: &str) -> String {
        let name = self.name(what);
        self.volumes.push(name.clone());
        name
    }

    fn run(&mut self, what: &str, args: &[&str], image: &str, cmd: &[&str]) -> String {
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
            let _ = docker_output(&["rm", "-f", "-v", c]);
        }
        for v in &self.volumes {
            let _ = docker_output(&["volume", "rm", "-f", v]);
        }
    }
}

/// Runs a shell script in a throwaway busybox with `volume` at /v.
fn in_volume(volume: &str, script: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v"),
        BUSYBOX,
        "sh",
        "-c",
        script,
    ])
}

/// Paths, owners, modes, sizes and content digests of a volume.
fn listing(volume: &str) -> String {
    in_volume(
        volume,
        "cd /v && find . | sort | while read -r f; do stat -c '%n %u:%g %a %s' \"$f\"; done \
         && find . -type f | sort | xargs md5sum",
    )
}

fn fill(volume: &str) {
    in_volume(
        volume,
        "mkdir -p /v/sub && echo hello > /v/a.txt && seq 1 20000 > /v/sub/numbers \
         && chown 999:999 /v/sub && chmod 700 /v/sub && ln -s a.txt /v/link",
    );
}

fn running(container: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", container]) == "true"
}

fn started_at(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.StartedAt}}", container])
}

fn json_run(env: &Env, args: &[&str]) -> (Output, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    assert_exit(&out, 0, &format!("cairn {}", all.join(" ")));
    let v = parse_json(&out);
    (out, v)
}

#[test]
fn backup_by_volume_name_records_the_volume_and_restores_into_a_new_one() {
    if !engine_or_skip("backup_by_volume_name_records_the_volume_and_restores_into_a_new_one") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &["--label", "app=shop", "--label", "tier=db"]);
    fill(&data);
    let user = scratch.run("user", &["-v", &format!("{data}:/data")], BUSYBOX, &[]);
    let env = Env::new();

    let (_, summary) = json_run(&env, &["backup", "--docker-volume", &data]);
    assert_eq!(summary["volume"], data.as_str());
    assert_eq!(summary["downtime_s"], Value::Null, "nothing was stopped");
    assert!(running(&user));
    let id = summary["snapshot_id"].as_str().unwrap().to_string();

    let (_, snap) = json_run(&env, &["cat", "snapshot", &id]);
    assert_eq!(snap["volume"], data.as_str());
    assert_eq!(snap["docker"]["driver"], "local");
    assert_eq!(snap["docker"]["labels"]["app"], "shop");
    assert_eq!(snap["docker"]["labels"]["tier"], "db");
    assert_eq!(snap["docker"]["containers"][0], user.as_str());

    let restored = scratch.later_volume("restored");
    let (_, r) = json_run(&env, &["restore", &id, "--to-docker-volume", &restored]);
    assert_eq!(r["volume_created"], true);
    assert_eq!(
        docker(&["volume", "inspect", "-f", "{{.Labels.app}}", &restored]),
        "shop"
    );
    assert_eq!(listing(&restored), listing(&data));

    // `volumes --json`: the volume, its user and its latest snapshot.
    let (_, vols) = json_run(&env, &["volumes"]);
    let entry = vols["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == data.as_str())
        .expect("the volume is listed")
        .clone();
    assert_eq!(entry["latest"]["id"], id.as_str());
    assert_eq!(entry["snapshots"], 1);
    assert!(entry["latest"]["age_s"].as_i64().unwrap() >= 0);
    assert!(entry["latest"]["size"].as_u64().unwrap() > 20000);
    assert_eq!(entry["containers"][0], user.as_str());
    let fresh = vols["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == restored.as_str())
        .unwrap();
    assert_eq!(fresh["latest"], Value::Null);
}

#[test]
fn restore_into_an_existing_volume_refuses_when_in_use_and_replaces_its_contents() {
    if !engine_or_skip(
        "restore_into_an_existing_volume_refuses_when_in_use_and_replaces_its_contents",
    ) {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    fill(&data);
    let env = Env::new();
    env.ok(["backup", "--docker-volume", &data]);

    let busy = scratch.volume("busy", &[]);
    in_volume(&busy, "echo old > /v/old");
    let before = listing(&busy);
    let user = scratch.run("user", &["-v", &format!("{busy}:/data")], BUSYBOX, &[]);
    let out = env.run(["restore", "latest", "--to-docker-volume", &busy]);
    let line = assert_one_line_error(&out, "restore into a volume in use");
    assert!(
        line.contains(&format!(
            "Docker volume {busy} is in use by running container(s) {user}"
        )),
        "{line}"
    );

    assert_eq!(
        listing(&busy),
        before,
        "a refused restore leaves the volume alone"
    );

    // Stopped: the existing volume ends identical to the snapshot (its
    // own file `old` removed), as `restore --delete` does in place.
    docker(&["stop", "-t", "1", &user]);
    env.ok(["restore", "latest", "--to-docker-volume", &busy]);
    assert_eq!(listing(&busy), listing(&data));
}

#[test]
fn stop_backs_up_twice_and_starts_the_containers_again() {
    if !engine_or_skip("stop_backs_up_twice_and_starts_the_containers_again") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    fill(&data);
    let user = scratch.run(
        "writer",
        &["--stop-timeout=1", "-v", &format!("{data}:/data")],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "while true; do date >> /data/log; sleep 0.1; done",
        ],
    );
    let idle = scratch.run("idle", &["-v", &format!("{data}:/data:ro")], BUSYBOX, &[]);
    docker(&["stop", "-t", "1", &idle]);
    let before = started_at(&user);
    let env = Env::new();

    let (_, summary) = json_run(&env, &["backup", "--docker-volume", &data, "--stop"]);
    assert_eq!(summary["stopped_containers"], serde_json::json!([user]));
    let downtime = summary["downtime_s"].as_f64().expect("downtime reported");
    assert!(downtime > 0.0 && downtime < 60.0, "{downtime}");
    assert!(summary["live_pass"].is_object());
    assert!(running(&user), "the writer runs again");
    assert_ne!(started_at(&user), before, "the writer was restarted");
    assert!(!running(&idle), "a stopped container stays stopped");
    // Only the stopped pass's snapshot stays; it records who was stopped.
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let (_, snap) = json_run(&env, &["cat", "snapshot", "latest"]);
    assert_eq!(snap["docker"]["stopped"], serde_json::json!([user]));
}

#[test]
fn the_stop_label_stops_a_container_without_the_flag() {
    if !engine_or_skip("the_stop_label_stops_a_container_without_the_flag") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    fill(&data);
    let labelled = scratch.run(
        "labelled",
        &[
            "--stop-timeout=1",
            "--label",
            "docker-volume-backup.stop-during-backup=true",
            "-v",
            &format!("{data}:/data"),
        ],
        BUSYBOX,
        &[],
    );
    let plain = scratch.run("plain", &["-v", &format!("{data}:/data")], BUSYBOX, &[]);
    let plain_started = started_at(&plain);
    let env = Env::new();
    let (_, summary) = json_run(&env, &["backup", "--docker-volume", &data]);
    assert_eq!(summary["stopped_containers"], serde_json::json!([labelled]));
    assert!(running(&labelled));
    assert_eq!(
        started_at(&plain),
        plain_started,
        "unlabelled: left running"
    );
}

#[test]
fn interrupted_while_stopped_the_containers_still_start_again() {
    if !engine_or_skip("interrupted_while_stopped_the_containers_still_start_again") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    // A big file rewritten all the time: the stopped pass must read it again.
    in_volume(
        &data,
        "dd if=/dev/urandom of=/v/big bs=1M count=200 2>/dev/null",
    );
    let user = scratch.run(
        "churn",
        &["--stop-timeout=1", "-v", &format!("{data}:/data")],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "while true; do dd if=/dev/urandom of=/data/big bs=1M count=200 conv=notrunc 2>/dev/null; done",
        ],
    );
    let env = Env::new();
    let mut cmd = env.cmd();
    cmd.args(["backup", "--docker-volume", &data, "--stop"]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the container is down, interrupt the stopped pass.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut interrupted = false;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("cairn ended before it could be interrupted: {status}");
            break;
        }
        if !running(&user) {
            thread::sleep(Duration::from_millis(300));
            // SAFETY: kill() with a pid we spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            interrupted = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(running(&user), "the container runs again: {}", stderr(&out));
    if interrupted && out.status.code() == Some(130) {
        // Nothing half done stays: neither pass's snapshot.
        assert!(env.snapshots().is_empty(), "{}", stdout(&out));
    } else {
        assert_exit(&out, 0, "backup --stop that ended before the signal");
    }
}

#[test]
fn a_failing_pre_command_aborts_with_its_output_and_post_still_runs() {
    if !engine_or_skip("a_failing_pre_command_aborts_with_its_output_and_post_still_runs") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    fill(&data);
    let env = Env::new();
    let marker = env.path("post-ran");
    let post = format!("touch {}", marker.display());
    let out = env.run([
        "backup",
        "--docker-volume",
        &data,
        "--pre",
        "echo flushing failed; exit 3",
        "--post",
        &post,
    ]);
    assert_exit(&out, 1, "backup with a failing --pre");
    let err = stderr(&out);
    assert!(err.contains("flushing failed"), "{err}");
    assert!(
        err.contains("pre command `echo flushing failed; exit 3` exited with code 3"),
        "{err}"
    );
    assert!(marker.exists(), "--post ran");
    assert!(!env.repo.exists(), "nothing was backed up");
}

#[test]
fn exec_runs_in_the_container_and_its_output_is_shown() {
    if !engine_or_skip("exec_runs_in_the_container_and_its_output_is_shown") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    let db = scratch.run("db", &["-v", &format!("{data}:/data")], BUSYBOX, &[]);
    let env = Env::new();
    let exec = format!("{db}:sh -c 'echo checkpoint done > /data/flushed; echo checkpoint done'");
    let out = env.ok(["backup", "--docker-volume", &data, "--exec", &exec]);
    assert!(stderr(&out).contains("checkpoint done"), "{}", stderr(&out));
    assert_eq!(env.ls_paths("latest"), ["flushed"]);

    let failing = format!("{db}:sh -c 'echo no server; exit 2'");
    let out = env.run(["backup", "--docker-volume", &data, "--exec", &failing]);
    assert_exit(&out, 1, "a failing --exec");
    assert!(
        stderr(&out).contains("exited with code 2: no server"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.snapshots().len(), 1, "no new snapshot");
}

#[test]
fn stdin_from_command_stores_its_output_and_a_failure_saves_nothing() {
    let env = Env::new();
    let (_, summary) = json_run(
        &env,
        &[
            "backup",
            "--stdin-name",
            "dump.sql",
            "--stdin-from-command",
            "echo 'CREATE TABLE t;'; seq 1 1000",
        ],
    );
    assert_eq!(summary["volume"], "dump.sql");
    let target = env.path("restored");
    env.restore("latest", &target, &[]);
    let dump = std::fs::read_to_string(target.join("dump.sql")).unwrap();
    assert!(dump.starts_with("CREATE TABLE t;\n1\n2\n"), "{dump}");
    assert!(dump.ends_with("\n1000\n"));

    let out = env.run([
        "backup",
        "--volume",
        "pgdump",
        "--stdin-name",
        "dump.sql",
        "--stdin-from-command",
        "echo partial; exit 7",
    ]);
    let line = assert_one_line_error(&out, "a failing --stdin-from-command");
    assert!(
        line.contains("exited with code 7; no snapshot was saved"),
        "{line}"
    );
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn docker_container_backs_up_each_of_its_volumes() {
    if !engine_or_skip("docker_container_backs_up_each_of_its_volumes") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let (a, b) = (scratch.volume("a", &[]), scratch.volume("b", &[]));
    in_volume(&a, "echo one > /v/one");
    in_volume(&b, "echo two > /v/two");
    let holder = scratch.run(
        "holder",
        &["-v", &format!("{a}:/a"), "-v", &format!("{b}:/b")],
        BUSYBOX,
        &["true"],
    );
    let env = Env::new();
    let (_, summary) = json_run(&env, &["backup", "--docker-container", &holder]);
    let mut got: Vec<&str> = summary["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volume"].as_str().unwrap())
        .collect();
    let mut expected = [a.as_str(), b.as_str()];
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    for (volume, file) in [(&a, "one"), (&b, "two")] {
        let restored = scratch.later_volume("restored");
        env.ok([
            "restore",
            "latest",
            "--volume",
            volume.as_str(),
            "--to-docker-volume",
            &restored,
        ]);
        assert_eq!(in_volume(&restored, &format!("cat /v/{file}")), file);
    }
}

#[test]
fn unknown_volume_and_unreachable_engine_are_one_line_each() {
    if !engine_or_skip("unknown_volume_and_unreachable_engine_are_one_line_each") {
        return;
    }
    let env = Env::new();
    let out = env.run(["backup", "--docker-volume", "cairn-cli-it-no-such-volume"]);
    let line = assert_one_line_error(&out, "unknown volume");
    assert!(
        line.contains("no Docker volume named cairn-cli-it-no-such-volume"),
        "{line}"
    );

    let mut cmd = env.cmd();
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["volumes"]);
    let out = cmd.output().unwrap();
    let line = assert_one_line_error(&out, "unreachable engine");
    assert!(
        line.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{line}"
    );
}

fn wait_until_ready(container: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !docker_output(&["exec", container, "pg_isready", "-q"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "{container} not ready after 90 s"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Rows, their sum and committed pgbench transactions.
fn totals(container: &str) -> String {
    docker(&[
        "exec",
        container,
        "psql",
        "-Atc",
        "SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT sum(abalance) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_history)",
        "postgres",
    ])
}

#[test]
fn postgres_under_load_backed_up_with_stop_restores_into_a_server_with_equal_totals() {
    if !engine_or_skip(
        "postgres_under_load_backed_up_with_stop_restores_into_a_server_with_equal_totals",
    ) {
        return;
    }
    build_images(&["postgres"]);
    const POSTGRES: &str = "cairn-test-postgres";
    const PGDATA: &str = "/var/lib/postgresql/data";
    let mut scratch = Scratch::default();
    let pgdata = scratch.volume("pgdata", &["--label", "app=postgres"]);
    let db = scratch.run(
        "db",
        &["--stop-timeout=60", "-v", &format!("{pgdata}:{PGDATA}")],
        POSTGRES,
        &[],
    );
    wait_until_ready(&db);
    docker(&["exec", &db, "pgbench", "-q", "-i", "-s", "2", "postgres"]);
    let load = {
        let db = db.clone();
        thread::spawn(move || {
            docker_output(&[
                "exec", &db, "pgbench", "-c", "4", "-j", "2", "-T", "60", "postgres",
            ])
        })
    };
    thread::sleep(Duration::from_secs(3));
    let before = started_at(&db);

    let env = Env::new();
    let (_, summary) = json_run(&env, &["backup", "--docker-volume", &pgdata, "--stop"]);
    let downtime = summary["downtime_s"].as_f64().expect("downtime reported");
    assert_eq!(summary["stopped_containers"], serde_json::json!([db]));
    assert!(running(&db), "the server runs again");
    assert_ne!(started_at(&db), before);
    let load = load.join().unwrap();
    assert!(
        !load.status.success(),
        "pgbench ran to its end: the stop did not interrupt it"
    );
    wait_until_ready(&db);
    let at_stop = totals(&db);
    let live = &summary["live_pass"];
    eprintln!(
        "live pass {:.2}s ({} bytes read), downtime {downtime:.2}s, stopped pass {:.2}s ({} bytes read); totals {at_stop}",
        live["duration_s"].as_f64().unwrap(),
        live["bytes_read"],
        summary["duration_s"].as_f64().unwrap(),
        summary["bytes_read"],
    );

    let restored = scratch.later_volume("pgdata2");
    env.ok([
        "restore",
        "latest",
        "--volume",
        pgdata.as_str(),
        "--to-docker-volume",
        &restored,
    ]);
    assert_eq!(
        docker(&["volume", "inspect", "-f", "{{.Labels.app}}", &restored]),
        "postgres"
    );
    let db2 = scratch.run(
        "db2",
        &["--stop-timeout=60", "-v", &format!("{restored}:{PGDATA}")],
        POSTGRES,
        &[],
    );
    wait_until_ready(&db2);
    assert_eq!(
        totals(&db2),
        at_stop,
        "the restored server holds what the first held at the stop"
    );
}

/// `cairn serve --allow-restore` offers new Docker volumes as restore
/// targets when an engine answers, and fills the one the form names.
#[test]
fn the_web_restore_form_fills_a_new_docker_volume() {
    use crate::common::web::{form, request, Served};
    if !engine_or_skip("the_web_restore_form_fills_a_new_docker_volume") {
        return;
    }
    busybox();
    let mut scratch = Scratch::default();
    let env = Env::new();
    let src = env.path("src");
    crate::common::write(&src.join("sub/a.txt"), "hello from the web");
    let id = env.backup(&src, &["--volume", "web"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let root = env.path("restores");
    std::fs::create_dir_all(&root).unwrap();
    let served = Served::start_with_docker(
        &env,
        &["--allow-restore", "--restore-root", root.to_str().unwrap()],
    );
    let session = served.session();
    let cookie = ("Cookie", session.cookie.as_str());
    let page = served.page(&format!("/restore?snapshot={id}"));
    assert!(page.contains("a new Docker volume"), "{page}");

    let name = scratch.later_volume("web");
    let body = form(&[
        ("csrf", &session.csrf),
        ("snapshot", &id),
        ("path", ""),
        ("dest", "volume"),
        ("volume", &name),
        ("step", "run"),
    ]);
    let run = request(&served.addr, "POST", "/restore", &[cookie], &body);
    assert_eq!(run.status, 303, "{}", run.text());
    let job = run.header("location").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while served
        .page(&format!("{job}/status"))
        .contains(r#""state":"running""#)
    {
        assert!(Instant::now() < deadline, "restore job still running");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(in_volume(&name, "cat /v/sub/a.txt"), "hello from the web");

    // The name is now taken: a second restore into it is refused.
    let again = request(&served.addr, "POST", "/restore", &[cookie], &body);
    assert_eq!(again.status, 400, "{}", again.text());
}
