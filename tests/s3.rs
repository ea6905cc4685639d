//! The real binary against a real S3 server on loopback (moto): every
//! command, copies both ways, faults through a proxy, a backup killed
//! mid-upload, and three hosts backing up while another prunes. Skipped,
//! saying so, when moto is not installed (CI installs it and sets
//! CAIRN_S3_REQUIRE_MOTO, which makes a missing moto a failure).

mod common;
#[path = "../crates/cairn-s3/tests/common/mod.rs"]
#[allow(unused_imports)]
mod s3h;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use s3h::proxy::{Fault, FaultProxy};

/// One test's S3 world: a fresh bucket, an endpoint (moto or a proxy in
/// front of it), and an `Env` for local files and the cache.
struct S3 {
    env: Env,
    endpoint: String,
    bucket: String,
}

impl S3 {
    fn new() -> Option<S3> {
        let moto = s3h::moto()?;
        Some(S3 {
            env: Env::new(),
            endpoint: moto.endpoint(),
            bucket: moto.bucket("e2e"),
        })
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// cairn with `--repo URL`, the test's endpoint and credentials, a
    /// password, quick retries, and the environment's private home.
    fn cmd(&self, url: &str) -> Command {
        self.cmd_cached_in(url, &self.env.cache)
    }

    /// As `cmd`, with another cache directory.
    fn cmd_cached_in(&self, url: &str, cache: &Path) -> Command {
        let mut c = Command::new(cairn_bin());
        c.arg("--repo").arg(url).arg("--cache-dir").arg(cache);
        self.env.isolate(&mut c);
        s3_test_env(&mut c, &self.endpoint);
        c
    }

    fn run<S: AsRef<OsStr>>(&self, url: &str, args: &[S]) -> Output {
        let mut c = self.cmd(url);
        c.args(args);
        run_cmd(c)
    }

    fn ok<S: AsRef<OsStr>>(&self, url: &str, args: &[S]) -> Output {
        let out = self.run(url, args);
        assert_exit(&out, 0, &format!("cairn on {url}"));
        out
    }

    fn json<S: AsRef<OsStr>>(&self, url: &str, args: &[S]) -> serde_json::Value {
        let mut all: Vec<&OsStr> = vec![OsStr::new("--json")];
        all.extend(args.iter().map(AsRef::as_ref));
        parse_json(&self.ok(url, &all))
    }
}

fn tree(root: &Path, seed: u64) {
    write(&root.join("db/data.bin"), random_bytes(seed, 400_000));
    write(&root.join("etc/app.conf"), format!("seed = {seed}\n"));
    write(
        &root.join("logs/app.log"),
        b"same in every tree\n".repeat(500),
    );
}

fn restore_and_compare(s: &S3, url: &str, spec: &str, expected: &Path) {
    let target = s.env.path(&format!("restore-{}", spec.replace(':', "_")));
    let _ = std::fs::remove_dir_all(&target);
    s.ok(
        url,
        &[
            "restore",
            spec,
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ],
    );
    assert_trees_equal(expected, &target);
}

#[test]
fn every_command_works_against_s3() {
    let Some(s) = S3::new() else { return };
    let url = s.url("main");
    let src = s.env.path("src");
    tree(&src, 1);
    s.ok(&url, &["init"]);
    let first = s.json(&url, &["backup", src.to_str().unwrap()]);
    assert!(first["requests"]["put"].as_u64().unwrap() >= 3, "{first}");
    let id1 = first["snapshot_id"].as_str().unwrap().to_string();
    tree(&src, 2);
    s.ok(&url, &["backup", src.to_str().unwrap()]);
    // Nothing changed: snapshots and trees come from the local cache.
    let again = s.json(&url, &["backup", src.to_str().unwrap()]);
    assert_eq!(again["files_unmodified"], 3, "{again}");
    assert!(
        again["requests"]["get"].as_u64().unwrap() <= 2,
        "re-downloaded: {again}"
    );
    restore_and_compare(&s, &url, "latest", &src);
    s.ok(&url, &["snapshots"]);
    s.ok(&url, &["ls", "latest", "-l"]);
    s.ok(&url, &["cat", "snapshot", "latest"]);
    let diff = s.json(&url, &["diff", &id1, "latest"]);
    assert_eq!(diff["summary"]["modified"], 2, "{diff}");
    s.ok(&url, &["stats"]);
    s.ok(&url, &["key", "list"]);
    s.ok(&url, &["forget", &id1]);
    s.ok(&url, &["prune"]);
    s.ok(&url, &["repair", "index"]);
    s.ok(&url, &["repair", "snapshots", "--dry-run"]);
    let check = s.json(&url, &["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    restore_and_compare(&s, &url, "latest", &src);
}

/// Snapshot listings come from the local snapshot cache and follow the
/// bucket: a snapshot forgotten or added by another host shows, and a
/// damaged cache file costs a re-read, never a wrong list.
#[test]
fn snapshot_listings_follow_the_bucket_through_the_local_cache() {
    let Some(s) = S3::new() else { return };
    let url = s.url("snapcache");
    let src = s.env.path("src");
    let other_host = s.env.path("other-cache");
    let ids_in = |cache: &Path| -> Vec<String> {
        let mut c = s.cmd_cached_in(&url, cache);
        c.args(["--json", "snapshots"]);
        let out = run_cmd(c);
        assert_exit(&out, 0, "snapshots");
        let v = parse_json(&out);
        let list = v["snapshots"].as_array().unwrap();
        list.iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    let id = |v: serde_json::Value| v["snapshot_id"].as_str().unwrap().to_string();
    tree(&src, 1);
    s.ok(&url, &["init"]);
    let first = id(s.json(&url, &["backup", src.to_str().unwrap()]));
    tree(&src, 2);
    let second = id(s.json(&url, &["backup", src.to_str().unwrap()]));
    assert_eq!(ids_in(&s.env.cache), [first.clone(), second.clone()]);
    assert_eq!(ids_in(&other_host), [first.clone(), second.clone()]);

    let mut forget = s.cmd_cached_in(&url, &other_host);
    forget.args(["forget", &first]);
    assert_exit(&run_cmd(forget), 0, "forget on the other host");
    assert_eq!(ids_in(&s.env.cache), std::slice::from_ref(&second));
    restore_and_compare(&s, &url, "latest", &src);

    let file = std::fs::read_dir(s.env.cache.join("cairn"))
        .unwrap()
        .map(|e| e.unwrap().path().join("snapshots.cache"))
        .find(|p| p.is_file())
        .expect("a snapshot cache file");
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, &good[..good.len() - 1]).unwrap();
    assert_eq!(ids_in(&s.env.cache), std::slice::from_ref(&second));
    assert_eq!(std::fs::read(&file).unwrap(), good, "written again");

    tree(&src, 3);
    let mut backup = s.cmd_cached_in(&url, &other_host);
    backup.args(["--json", "backup", src.to_str().unwrap()]);
    let out = run_cmd(backup);
    assert_exit(&out, 0, "backup on the other host");
    let third = id(parse_json(&out));
    assert_eq!(ids_in(&s.env.cache), [second, third]);
    restore_and_compare(&s, &url, "latest", &src);
}

#[test]
fn a_restore_with_an_empty_cache_fetches_trees_a_level_at_a_time() {
    let Some(s) = S3::new() else { return };
    let url = s.url("cold");
    let src = s.env.path("src");
    // 3 + 9 + 27 directories, a file in each of the deepest.
    for a in 0..3 {
        for b in 0..3 {
            for c in 0..3 {
                let rel = format!("d{a}/d{b}/d{c}/f");
                write(&src.join(rel), format!("{a}{b}{c}"));
            }
        }
    }
    s.ok(&url, &["init"]);
    s.ok(&url, &["backup", src.to_str().unwrap()]);
    let target = s.env.path("restored");
    let mut c = s.cmd_cached_in(&url, &s.env.path("empty-cache"));
    c.args(["--json", "restore", "latest", "--target"])
        .arg(&target)
        .arg("--verify");
    let out = run_cmd(c);
    assert_exit(&out, 0, "restore with an empty cache");
    assert_trees_equal(&src, &target);
    let restored = parse_json(&out);
    // One tree was read per directory before; now a few reads per level
    // (the config, keys, index and snapshot come first).
    let gets = restored["requests"]["get"].as_u64().unwrap();
    assert!(gets < 20, "{gets} GETs for 40 trees: {restored}");
}

#[test]
fn copy_both_ways_sends_only_what_is_missing() {
    let Some(s) = S3::new() else { return };
    let local = s.env.path("local-repo");
    let local_url = local.to_str().unwrap().to_string();
    let src = s.env.path("src");
    tree(&src, 3);
    s.ok(&local_url, &["backup", src.to_str().unwrap()]);
    let remote = s.url("copy");
    s.ok(&remote, &["init", "--copy-chunker-params", &local_url]);
    let r = s.json(&local_url, &["copy", "--to", &remote]);
    assert_eq!(r["report"]["copied"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["report"]["translated"], false, "{r}");
    // A second snapshot shares almost everything: little is sent.
    write(&src.join("etc/app.conf"), b"changed\n");
    s.ok(&local_url, &["backup", src.to_str().unwrap()]);
    let r = s.json(&local_url, &["copy", "--to", &remote]);
    assert_eq!(r["report"]["copied"].as_array().unwrap().len(), 1, "{r}");
    assert!(r["report"]["blobs_sent"].as_u64().unwrap() <= 3, "{r}");
    assert!(r["report"]["blobs_present"].as_u64().unwrap() >= 2, "{r}");
    restore_and_compare(&s, &remote, "latest", &src);
    s.ok(&remote, &["check", "--read-data"]);
    // And back, into a repository with its own keys.
    let back = s.env.path("back");
    let back_url = back.to_str().unwrap().to_string();
    s.ok(&back_url, &["init"]);
    let r = s.json(&remote, &["copy", "--to", &back_url]);
    assert_eq!(r["report"]["copied"].as_array().unwrap().len(), 2, "{r}");
    restore_and_compare(&s, &back_url, "latest", &src);
}

#[test]
fn transient_faults_are_retried_and_a_dead_store_is_one_clear_error() {
    let Some(mut s) = S3::new() else { return };
    let moto = s3h::moto().unwrap();
    let proxy = FaultProxy::start(moto.addr);
    s.endpoint = proxy.endpoint();
    let url = s.url("faults");
    let src = s.env.path("src");
    tree(&src, 4);
    s.ok(&url, &["init"]);
    proxy.next([
        Fault::SlowDown,
        Fault::SlowDown,
        Fault::Cut,
        Fault::SlowDown,
    ]);
    s.ok(&url, &["backup", src.to_str().unwrap()]);
    proxy.next([Fault::Delay(Duration::from_millis(300)), Fault::SlowDown]);
    restore_and_compare(&s, &url, "latest", &src);

    proxy.always(Fault::SlowDown);
    let started = std::time::Instant::now();
    tree(&src, 5);
    let out = s.run(&url, &["backup", src.to_str().unwrap()]);
    let line = assert_one_line_error(&out, "backup to a store that answers 503");
    assert!(line.contains("503") || line.contains("SlowDown"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(60));
    proxy.always(Fault::Pass);
    let check = s.json(&url, &["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    s.ok(&url, &["backup", src.to_str().unwrap()]);
    restore_and_compare(&s, &url, "latest", &src);
}

#[test]
fn a_backup_killed_mid_upload_loses_nothing_committed() {
    let Some(mut s) = S3::new() else { return };
    let moto = s3h::moto().unwrap();
    let proxy = FaultProxy::start(moto.addr);
    s.endpoint = proxy.endpoint();
    let url = s.url("kill");
    let src = s.env.path("src");
    tree(&src, 6);
    s.ok(&url, &["init", "--pack-size", "64K"]);
    s.ok(&url, &["backup", src.to_str().unwrap()]);
    let big = s.env.path("big");
    write(&big.join("big.bin"), random_bytes(7, 3 << 20));
    // Slow every request so the kill lands in the middle of the uploads.
    proxy.always(Fault::Delay(Duration::from_millis(50)));
    let mut c = s.cmd(&url);
    c.args(["backup", big.to_str().unwrap()]);
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    proxy.always(Fault::Pass);
    let check = s.json(&url, &["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    let snaps = s.json(&url, &["snapshots"]);
    let first = snaps["snapshots"][0]["id"].as_str().unwrap().to_string();
    restore_and_compare(&s, &url, &first, &src);
    s.ok(&url, &["backup", big.to_str().unwrap()]);
    s.ok(&url, &["prune"]);
    restore_and_compare(&s, &url, "latest", &big);
}

/// Three hosts back up into one repository while a fourth prunes, for a
/// few rounds; every snapshot any of them saved restores exactly.
#[test]
fn three_hosts_and_a_pruner_share_one_bucket() {
    let Some(s) = S3::new() else { return };
    let url = s.url("shared");
    s.ok(&url, &["init", "--pack-size", "64K"]);
    let mut saved: Vec<(String, PathBuf)> = Vec::new();
    for round in 0..3u64 {
        let mut children = Vec::new();
        for host in 0..3u64 {
            // One source per host, changed each round: the same group, so
            // the pruner's policy forgets older rounds while others back up.
            let src = s.env.path(&format!("src-{host}"));
            tree(&src, 100 + host * 10 + round);
            let mut c = s.cmd(&url);
            c.args([
                "--json",
                "backup",
                src.to_str().unwrap(),
                "--host",
                &format!("h{host}"),
                "--volume",
                "v",
            ]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            children.push((c.spawn().unwrap(), src));
        }
        let mut pruner = s.cmd(&url);
        pruner.args(["forget", "--keep-last", "1", "--prune"]);
        let pruned = run_cmd(pruner);
        assert_exit(&pruned, 0, "forget --prune during backups");
        for (child, src) in children {
            let out = child.wait_with_output().unwrap();
            assert_exit(&out, 0, "a host's backup");
            let id = parse_json(&out)["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string();
            let expected = s.env.path(&format!("expected-{id}"));
            let cp = Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(&expected)
                .status();
            assert!(cp.unwrap().success());
            saved.push((id, expected));
        }
    }
    let check = s.json(&url, &["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    let present: Vec<String> = s.json(&url, &["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    for (id, src) in &saved {
        if present.contains(id) {
            restore_and_compare(&s, &url, id, src);
        }
    }
    // The last round's snapshots were never forgotten: all of them restore.
    assert!(saved[saved.len() - 3..]
        .iter()
        .all(|(id, _)| present.contains(id)));
}
