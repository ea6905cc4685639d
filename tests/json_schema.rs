//! Every command's `--json` output, from real runs, against the schemas in
//! docs/schema/: each stdout line is a status line (status.json) or, last,
//! the command's summary; a failure is one JSON line on stderr (error.json).

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::schema::{assert_valid, errors};
use common::*;
use serde_json::{json, Value};

/// Check a `--json` run that succeeded: every stdout line is JSON, all but
/// the last are status lines of `command`, the last is the summary valid
/// against `schema`. Returns (status lines, summary).
fn validate_stream(out: &Output, schema: &str, what: &str) -> (Vec<Value>, Value) {
    assert_exit(out, 0, what);
    let text = stdout(out);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{what}: stdout line is not JSON ({e}): {l:?}"))
        })
        .collect();
    let (summary, status) = lines
        .split_last()
        .unwrap_or_else(|| panic!("{what}: nothing on stdout"));
    for s in status {
        assert_eq!(s["message_type"], "status", "{what}: {s}");
        assert_valid("status", s);
    }
    assert_eq!(summary["message_type"], "summary", "{what}: {summary}");
    assert_valid(schema, summary);
    (status.to_vec(), summary.clone())
}

/// A failed `--json` run: nothing on stdout, its last stderr line is the
/// JSON error carrying the exit code.
fn validate_error(out: &Output, code: i32, what: &str) -> Value {
    assert_exit(out, code, what);
    assert!(out.stdout.is_empty(), "{what}: stdout: {}", stdout(out));
    let err = stderr(out);
    let last = err.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{what}: stderr's last line is not JSON ({e}): {err}"));
    assert_valid("error", &v);
    assert_eq!(v["exit_code"], code, "{what}: {v}");
    v
}

struct World {
    env: Env,
    pw: std::path::PathBuf,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let pw = env.path("pw");
        fs::write(&pw, "schema-password\n").unwrap();
        World { env, pw }
    }

    /// `cairn --json --password-file PW ARGS...`
    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.env.cmd();
        c.arg("--json")
            .arg("--password-file")
            .arg(&self.pw)
            .args(args);
        run_cmd(c)
    }

    fn valid(&self, args: &[&str], schema: &str) -> (Vec<Value>, Value) {
        validate_stream(
            &self.run(args),
            schema,
            &format!("cairn --json {}", args.join(" ")),
        )
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_command_matches_its_schema() {
    let w = World::new();
    let src = w.env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), random_bytes(7, 3 << 20));

    w.valid(&["init"], "init");
    let (status, first) = w.valid(&["backup", s(&src), "--tag", "t1"], "backup");
    assert!(!status.is_empty(), "backup printed no status line");
    assert!(status.iter().all(|l| l["command"] == "backup"));
    write(&src.join("added.txt"), "new file\n");
    fs::remove_file(src.join("big.bin")).unwrap();
    let (_, second) = w.valid(&["backup", s(&src)], "backup");
    let (a, b) = (
        first["snapshot_id"].as_str().unwrap(),
        second["snapshot_id"].as_str().unwrap(),
    );

    let (_, snaps) = w.valid(&["snapshots"], "snapshots");
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 2);
    let (_, ls) = w.valid(&["ls", "latest"], "ls");
    assert!(!ls["entries"].as_array().unwrap().is_empty());
    let (_, diff) = w.valid(&["diff", a, b], "diff");
    assert!(!diff["changes"].as_array().unwrap().is_empty());

    let target = w.env.path("restored");
    let (status, _) = w.valid(&["restore", a, "--target", s(&target)], "restore");
    assert!(!status.is_empty(), "restore printed no status line");
    w.valid(&["stats"], "stats");
    w.valid(&["stats", "latest"], "stats");
    w.valid(&["key", "list"], "key-list");

    let dst = w.env.path("dst");
    let mut c = std::process::Command::new(cairn_bin());
    w.env.isolate(&mut c);
    c.args([
        "--json",
        "--repo",
        s(&dst),
        "--password-file",
        s(&w.pw),
        "init",
    ]);
    validate_stream(&run_cmd(c), "init", "init of the copy destination");
    let (status, copy) = w.valid(
        &["copy", "--to", s(&dst), "--to-password-file", s(&w.pw)],
        "copy",
    );
    assert!(!status.is_empty(), "copy printed no status line");
    assert_eq!(copy["report"]["copied"].as_array().unwrap().len(), 2);

    w.valid(&["forget", a], "forget");
    w.valid(&["forget", "--keep-last", "1", "--dry-run"], "forget");
    w.valid(&["prune"], "prune");
    let (status, check) = w.valid(&["check", "--read-data"], "check");
    assert!(!status.is_empty(), "check printed no status line");
    assert_eq!(check["ok"], true);

    // `run` from a profile naming this repository.
    let profile = w.env.path("cairn.toml");
    fs::write(
        &profile,
        format!(
            "repository = {:?}\npassword-file = {:?}\n[volumes.src]\npath = {:?}\nkeep = {{ last = 1 }}\n",
            w.env.repo, w.pw, src
        ),
    )
    .unwrap();
    w.valid(&["--config", s(&profile), "run"], "run");
}

#[test]
fn errors_match_the_error_schema() {
    let w = World::new();
    // The repository does not exist: 10.
    validate_error(&w.run(&["snapshots"]), 10, "snapshots without a repository");
    w.run(&["init"]);
    // An unknown snapshot: 1.
    let v = validate_error(&w.run(&["ls", "deadbeef"]), 1, "ls of an unknown snapshot");
    assert!(v["error"].as_str().unwrap().contains("deadbeef"), "{v}");
    // Forgetting an unknown id fails too.
    validate_error(
        &w.run(&["forget", "deadbeef"]),
        1,
        "forget of an unknown id",
    );
    // A command line clap rejects: its exit code 2, still JSON.
    validate_error(
        &w.run(&["snapshots", "--no-such-flag"]),
        2,
        "an unknown flag",
    );
    // A wrong password: 12.
    fs::write(&w.pw, "not the password\n").unwrap();
    validate_error(&w.run(&["snapshots"]), 12, "a wrong password");
}

#[test]
fn a_backup_stream_is_status_lines_then_the_summary() {
    let w = World::new();
    let src = w.env.path("src");
    for i in 0..40 {
        write(&src.join(format!("f{i}.bin")), random_bytes(i, 256 << 10));
    }
    let out = w.run(&["backup", s(&src)]);
    let (status, summary) = validate_stream(&out, "backup", "backup --json");
    assert!(!status.is_empty());
    let mut last_bytes = 0;
    for l in &status {
        let done = l["bytes_done"].as_u64().unwrap();
        assert!(done >= last_bytes, "bytes_done went backwards: {l}");
        last_bytes = done;
        assert!(l["elapsed_s"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(summary["files_new"], 40, "{summary}");
    assert!(summary["snapshot_id"].is_string(), "{summary}");
}

#[test]
fn the_validator_enforces_its_subset() {
    let s = json!({
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": ["string", "null"], "enum": ["x", null]},
            "c": {"type": "array", "items": {"type": "boolean"}}
        },
        "additionalProperties": false
    });
    assert!(errors(&s, &json!({"a": 1, "b": null, "c": [true]})).is_empty());
    assert_eq!(errors(&s, &json!({})).len(), 1);
    assert_eq!(errors(&s, &json!({"a": 1.5})).len(), 1);
    assert_eq!(errors(&s, &json!({"a": 1, "b": "y"})).len(), 1);
    assert_eq!(errors(&s, &json!({"a": 1, "c": [1]})).len(), 1);
    assert_eq!(errors(&s, &json!({"a": 1, "d": 0})).len(), 1);
}

#[test]
fn every_schema_file_uses_only_the_validated_subset() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        // Loading and checking against any value walks the whole schema
        // only where the value goes; an empty object still rejects unknown
        // keywords at the top.
        let schema = common::schema::load(&name);
        let _ = errors(&schema, &json!({}));
        assert_eq!(schema["type"], "object", "{name}");
    }
}
