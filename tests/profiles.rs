//! Profiles end to end: `cairn run` backs up a profile's volumes, applies
//! each retention policy, prunes and checks when due, and writes metrics;
//! `config check` and `config example`; `--metrics-file` on `backup`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// An environment with a password file and two small volumes.
struct Setup {
    env: Env,
    profile: PathBuf,
    metrics: PathBuf,
}

impl Setup {
    fn new(volumes: &str) -> Setup {
        let env = Env::new();
        fs::write(env.path("pw"), "profile-password\n").unwrap();
        for v in ["alpha", "beta"] {
            fs::create_dir_all(env.path(v).join("sub")).unwrap();
            write(
                &env.path(v).join("sub/data.bin"),
                random_bytes(v.len() as u64, 50_000),
            );
            write(&env.path(v).join("notes.txt"), format!("volume {v}\n"));
            write(&env.path(v).join("scratch.tmp"), "left out\n");
        }
        let metrics = env.path("metrics/cairn.prom");
        fs::create_dir_all(metrics.parent().unwrap()).unwrap();
        let profile = env.path("cairn.toml");
        let text = format!(
            "repository = {repo:?}\npassword-file = {pw:?}\nmetrics-file = {metrics:?}\nhost = \"h1\"\n{volumes}",
            repo = env.repo,
            pw = env.path("pw"),
            volumes = volumes.replace("$DIR", &env.dir.path().display().to_string()),
        );
        fs::write(&profile, text).unwrap();
        Setup {
            env,
            profile,
            metrics,
        }
    }

    /// cairn with `--config` and nothing else pointing at the repository.
    fn cairn(&self, args: &[&str]) -> Output {
        let mut c = Command::new(cairn_bin());
        self.env.isolate(&mut c);
        c.arg("--config").arg(&self.profile).args(args);
        run_cmd(c)
    }

    fn run_json(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json", "run"];
        all.extend_from_slice(args);
        let out = self.cairn(&all);
        assert_exit(&out, code, "cairn run");
        parse_json(&out)
    }

    /// Snapshots of a volume, oldest first.
    fn snapshots_of(&self, volume: &str) -> Vec<Value> {
        let out = self.cairn(&["--json", "snapshots", "--volume", volume]);
        assert_exit(&out, 0, "snapshots");
        parse_json(&out)["snapshots"].as_array().unwrap().clone()
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        parse_metrics(&fs::read_to_string(&self.metrics).unwrap())
    }
}

/// `name{volume="v"} value` lines as "name/v" → value; every sample needs
/// a HELP and a TYPE line before it.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, rest) = line.split_once("{volume=\"").expect("a volume label");
        assert!(text.contains(&format!("# TYPE {name} gauge")), "{name}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        let (volume, value) = rest.split_once("\"} ").expect("label end");
        out.insert(format!("{name}/{volume}"), value.parse().unwrap());
    }
    out
}

const TWO_VOLUMES: &str = r#"
[volumes.alpha]
path = "$DIR/alpha"
tags = ["hourly"]
exclude = ["*.tmp"]
keep = { last = 1 }

[volumes.beta]
path = "$DIR/beta"
keep = { last = 2, daily = 7, weekly = 4 }
"#;

#[test]
fn a_profile_with_two_volumes_runs_end_to_end() {
    let s = Setup::new(TWO_VOLUMES);
    let first = s.run_json(&[], 0);
    let volumes = first["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2, "{first}");
    for v in volumes {
        assert_eq!(v["status"], "ok", "{v}");
        assert!(v["backup"]["snapshot_id"].is_string(), "{v}");
    }
    // Never pruned or checked on this machine: both were due.
    assert_eq!(first["prune"]["ok"], true, "{first}");
    assert_eq!(first["check"]["ok"], true, "{first}");

    for round in 0..2 {
        write(&s.env.path("alpha/notes.txt"), format!("round {round}\n"));
        write(&s.env.path("beta/notes.txt"), format!("round {round}\n"));
        let again = s.run_json(&[], 0);
        // Neither is due again within a day.
        assert!(
            again["prune"].is_null() && again["check"].is_null(),
            "{again}"
        );
    }
    // keep last = 1 for alpha; keep last = 2 (+ daily/weekly: same day) for beta.
    let alpha = s.snapshots_of("alpha");
    assert_eq!(alpha.len(), 1, "{alpha:?}");
    assert_eq!(alpha[0]["tags"], serde_json::json!(["hourly"]));
    assert_eq!(alpha[0]["host"], "h1");
    assert_eq!(s.snapshots_of("beta").len(), 2);

    // The kept snapshot is the newest, and excludes held.
    let target = s.env.path("restored");
    let out = s.cairn(&[
        "restore",
        alpha[0]["id"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_exit(&out, 0, "restore");
    let restored: PathBuf = target.join("alpha");
    let restored = if restored.exists() { restored } else { target };
    assert_eq!(
        fs::read_to_string(restored.join("notes.txt")).unwrap(),
        "round 1\n"
    );
    assert!(!restored.join("scratch.tmp").exists());

    let m = s.metrics();
    // alpha excludes *.tmp; beta keeps its scratch file.
    for (v, files) in [("alpha", 2.0), ("beta", 3.0)] {
        assert_eq!(m[&format!("cairn_backup_success/{v}")], 1.0);
        assert_eq!(m[&format!("cairn_backup_files/{v}")], files, "{m:?}");
        assert_eq!(m[&format!("cairn_backup_errors/{v}")], 0.0);
        assert!(
            m[&format!("cairn_repository_size_bytes/{v}")] > 50_000.0,
            "{m:?}"
        );
        assert!(m[&format!("cairn_backup_last_success_timestamp_seconds/{v}")] > 1.7e9);
    }
    assert_eq!(m["cairn_backup_bytes_read/alpha"], "round 1\n".len() as f64);
}

#[test]
fn run_names_volumes_and_refuses_unknown_ones() {
    let s = Setup::new(TWO_VOLUMES);
    let only = s.run_json(&["beta"], 0);
    assert_eq!(only["volumes"].as_array().unwrap().len(), 1);
    assert!(s.snapshots_of("alpha").is_empty());
    let out = s.cairn(&["run", "gamma"]);
    let err = assert_one_line_error(&out, "run gamma");
    assert!(
        err.contains("gamma") && err.contains("alpha, beta"),
        "{err}"
    );
    // A dry run writes nothing.
    let dry = s.run_json(&["--dry-run", "alpha"], 0);
    assert_eq!(dry["dry_run"], true);
    assert!(s.snapshots_of("alpha").is_empty());
}

#[test]
fn a_failing_volume_fails_the_run_but_not_the_others() {
    let s = Setup::new(
        r#"
[volumes.alpha]
path = "$DIR/alpha"
pre = "echo preparing $CAIRN_VOLUME; exit 7"
post = "echo $CAIRN_VOLUME $CAIRN_STATUS > $DIR/post-alpha"

[volumes.beta]
path = "$DIR/beta"
post = "echo $CAIRN_VOLUME $CAIRN_STATUS > $DIR/post-beta"

[volumes.gone]
path = "$DIR/does-not-exist"
keep = { last = 1 }
"#,
    );
    // Earlier, a good backup of `gone`'s name from another profile run.
    fs::create_dir_all(s.env.path("does-not-exist")).unwrap();
    s.run_json(&["gone"], 0);
    fs::remove_dir(s.env.path("does-not-exist")).unwrap();
    let before = s.metrics()["cairn_backup_last_success_timestamp_seconds/gone"];

    let out = s.cairn(&["--json", "run"]);
    assert_exit(&out, 1, "run with failing volumes");
    // Hook output goes to stderr: stdout is only JSON, the backups' status
    // lines and then the summary.
    let text = stdout(&out);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summaries = lines
        .iter()
        .filter(|l| l["message_type"] != "status")
        .count();
    assert_eq!(summaries, 1, "{text}");
    assert!(stderr(&out).contains("preparing alpha"));
    let doc = parse_json(&out);
    let status: BTreeMap<&str, &str> = doc["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["volume"].as_str().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status["alpha"], "failed");
    assert_eq!(status["beta"], "ok");
    assert_eq!(status["gone"], "failed");
    assert_eq!(doc["exit_code"], 1);
    assert!(
        s.snapshots_of("alpha").is_empty(),
        "a failed pre hook skips the backup"
    );
    assert_eq!(
        fs::read_to_string(s.env.path("post-alpha")).unwrap(),
        "alpha failed\n"
    );
    assert_eq!(
        fs::read_to_string(s.env.path("post-beta")).unwrap(),
        "beta ok\n"
    );
    // The policy is not applied while the volume fails: its one snapshot stays.
    assert_eq!(s.snapshots_of("gone").len(), 1);

    let m = s.metrics();
    assert_eq!(m["cairn_backup_success/gone"], 0.0);
    assert_eq!(
        m["cairn_backup_last_success_timestamp_seconds/gone"],
        before
    );
    assert!(!m.contains_key("cairn_backup_files/gone"));
    assert_eq!(m["cairn_backup_success/beta"], 1.0);
}

#[test]
fn the_default_profile_serves_every_command() {
    let s = Setup::new(TWO_VOLUMES);
    let dir = s.env.dir.path().join("home/.config/cairn");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(&s.profile, dir.join("cairn.toml")).unwrap();
    let bare = |args: &[&str]| {
        let mut c = Command::new(cairn_bin());
        s.env.isolate(&mut c);
        c.args(args);
        run_cmd(c)
    };
    assert_exit(&bare(&["run", "alpha"]), 0, "run with the default profile");
    // Repository and password come from the profile for other commands too.
    let out = bare(&["--json", "snapshots"]);
    assert_exit(&out, 0, "snapshots");
    assert_eq!(parse_json(&out)["snapshots"].as_array().unwrap().len(), 1);
    // A flag wins over the profile.
    let other = s.env.path("other-repo");
    let out = bare(&["--repo", other.to_str().unwrap(), "snapshots"]);
    assert_exit(&out, 10, "snapshots of a missing repository");
}

#[test]
fn config_check_names_the_line_and_example_is_valid() {
    let s = Setup::new(TWO_VOLUMES);
    let out = s.cairn(&["config", "check"]);
    assert_exit(&out, 0, "config check");
    assert!(stdout(&out).contains("alpha, beta"), "{}", stdout(&out));

    let bad = s.env.path("bad.toml");
    fs::write(
        &bad,
        "repository = \"/r\"\n\n[volumes.a]\npath = \"/x\"\nkep = { last = 1 }\n",
    )
    .unwrap();
    let out = s.cairn(&["config", "check", bad.to_str().unwrap()]);
    let err = assert_one_line_error(&out, "config check of a bad file");
    assert!(err.contains("line 5") && err.contains("kep"), "{err}");
    // The profile is read before any command: a typo is never ignored.
    let mut c = Command::new(cairn_bin());
    s.env.isolate(&mut c);
    c.arg("--config").arg(&bad).arg("snapshots");
    let out = run_cmd(c);
    assert_one_line_error(&out, "snapshots with a bad profile");

    let mut c = Command::new(cairn_bin());
    s.env.isolate(&mut c);
    c.args(["config", "example"]);
    let example = run_cmd(c);
    assert_exit(&example, 0, "config example");
    let path = s.env.path("example.toml");
    fs::write(&path, &example.stdout).unwrap();
    let out = s.cairn(&["config", "check", path.to_str().unwrap()]);
    assert_exit(&out, 0, "config check of the example");
}

#[test]
fn backup_metrics_file_keeps_other_volumes() {
    let env = Env::new();
    let metrics = env.path("cairn.prom");
    for v in ["one", "two"] {
        let src = env.path(v);
        small_tree(&src);
        let out = env.run([
            "--metrics-file",
            metrics.to_str().unwrap(),
            "backup",
            src.to_str().unwrap(),
            "--volume",
            v,
        ]);
        assert_exit(&out, 0, "backup");
    }
    let failed = env.run([
        "--metrics-file",
        metrics.to_str().unwrap(),
        "backup",
        env.path("missing").to_str().unwrap(),
        "--volume",
        "one",
    ]);
    assert_exit(&failed, 1, "backup of a missing path");
    let m = parse_metrics(&fs::read_to_string(&metrics).unwrap());
    assert_eq!(m["cairn_backup_success/one"], 0.0);
    assert_eq!(m["cairn_backup_success/two"], 1.0);
    assert!(m["cairn_backup_files/two"] > 0.0);
    assert!(m.contains_key("cairn_backup_last_success_timestamp_seconds/one"));
    // Readable by node_exporter's user; no temporary file left beside it.
    let mode = fs::metadata(&metrics).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o644
    );
    let names: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("metrics"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
