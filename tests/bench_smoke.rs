//! The side-by-side benchmark (`benches/side-by-side/bench.py`) still runs:
//! its smoke mode on a tiny volume, cairn only, every restore verified by the
//! script. It checks the script and its outputs, never a time: figures come
//! from full runs recorded in docs/PERFORMANCE.md.

mod common;

use std::process::Command;

use serde_json::Value;

#[test]
fn side_by_side_smoke_runs_and_verifies_its_restores() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not found: side-by-side smoke skipped");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/side-by-side/bench.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--smoke", "--tools", "cairn", "--work"])
        .arg(work.path())
        .arg("--cairn")
        .arg(common::cairn_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench.py --smoke failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let results: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("results.json")).unwrap()).unwrap();
    let verified = results["verified"].as_array().unwrap();
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert_eq!(verified[0]["ok"], true);
    assert!(verified[0]["entries"].as_u64().unwrap() > 100);
    let cairn = &results["medians"]["cairn"];
    for step in [
        "backup1",
        "backup2",
        "backup3",
        "restore",
        "restore1",
        "restoredb",
    ] {
        assert!(cairn[step]["wall_s"].is_number(), "no median for {step}");
        assert!(cairn[step]["peak_rss_kib"].as_f64().unwrap() > 0.0);
    }
    let repo = &cairn["repo_bytes"];
    assert!(
        repo["backup2"].as_f64() > repo["backup1"].as_f64(),
        "{repo}"
    );
    let svg = std::fs::read_to_string(work.path().join("results.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("backup1"));
}
