//! The scenario the Docker backup feature exists for, at the level of this
//! crate: PostgreSQL on a named volume under pgbench load is stopped, its
//! volume copied (the stand-in for `cairn backup`), started again; the copy
//! goes into a new volume created with the recorded driver, labels and
//! options, and a second server on it holds exactly what the first held when
//! it stopped. Skips, saying so, when no engine answers.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use cairn_docker::{Engine, StoppedContainers};
use common::{engine_or_skip, ensure_images, Scratch};

const POSTGRES: &str = "cairn-test-postgres";
const PGDATA: &str = "/var/lib/postgresql/data";
/// What a backup must preserve: rows, their sum, and every committed
/// pgbench transaction (one history row each).
const TOTALS: &str = "SELECT (SELECT count(*) FROM pgbench_accounts), \
                      (SELECT sum(abalance) FROM pgbench_accounts), \
                      (SELECT count(*) FROM pgbench_history)";

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

fn psql(engine: &Engine, container: &str, sql: &str) -> String {
    let cmd = vec!["psql".into(), "-Atc".into(), sql.into(), "postgres".into()];
    engine
        .exec(container, &cmd)
        .unwrap()
        .stdout
        .trim()
        .to_string()
}

fn wait_until_ready(engine: &Engine, container: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine
        .exec_unchecked(container, &words("pg_isready -q"))
        .unwrap()
        .exit_code
        != 0
    {
        assert!(
            Instant::now() < deadline,
            "{container} not ready after 60 s"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// `cp -a`: owners, modes and times as they were, which the server checks
/// (it refuses a data directory that is not its own and mode 0700).
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn phase(timings: &mut Vec<(&'static str, Duration)>, name: &'static str, since: &mut Instant) {
    timings.push((name, since.elapsed()));
    *since = Instant::now();
}

#[test]
fn postgres_stopped_backed_up_and_restored_into_a_new_volume_has_equal_totals() {
    let Some(engine) = engine_or_skip(
        "postgres_stopped_backed_up_and_restored_into_a_new_volume_has_equal_totals",
    ) else {
        return;
    };
    let started = Instant::now();
    let mut at = Instant::now();
    let mut timings = Vec::new();
    ensure_images();
    phase(&mut timings, "images", &mut at);

    let mut scratch = Scratch::default();
    let pgdata = scratch.volume("pgdata", &["--label", "app=postgres"]);
    let mount = format!("{pgdata}:{PGDATA}");
    let db = scratch.run("db", &["--stop-timeout=60", "-v", &mount], POSTGRES, &[]);
    wait_until_ready(&engine, &db);
    let init = engine
        .exec(&db, &words("pgbench -i -s 2 postgres"))
        .unwrap();
    assert!(init.stderr.contains("done in"), "{}", init.stderr);
    phase(&mut timings, "first server up, pgbench -i -s 2", &mut at);

    // Load runs until the server goes down under it.
    let load = {
        let (engine, db) = (engine.clone(), db.clone());
        thread::spawn(move || {
            engine.exec_unchecked(&db, &words("pgbench -c 4 -j 2 -T 60 postgres"))
        })
    };
    thread::sleep(Duration::from_secs(3));
    let volume = engine.volume(&pgdata).unwrap();
    let users = engine.containers_using(&pgdata).unwrap();
    let mut stopped = StoppedContainers::stop(&engine, &users).unwrap();
    phase(&mut timings, "load 3 s, stop", &mut at);
    let load = load.join().unwrap().unwrap();
    assert_ne!(
        load.exit_code, 0,
        "pgbench ran to its end: the stop did not interrupt it"
    );

    let backup = tempfile::tempdir().unwrap();
    copy_tree(&volume.mountpoint, backup.path());
    let root = fs::metadata(&volume.mountpoint).unwrap();
    let downtime = stopped.restart().unwrap();
    phase(&mut timings, "copy the volume, start again", &mut at);

    wait_until_ready(&engine, &db);
    let at_stop = psql(&engine, &db, TOTALS);
    let history: u64 = at_stop.rsplit('|').next().unwrap().parse().unwrap();
    assert!(
        history > 0,
        "no pgbench transaction committed before the stop: {at_stop}"
    );

    let restored = scratch.name("restored");
    scratch.adopt_volume(&restored);
    let target = engine
        .create_volume(&restored, &volume.driver, &volume.labels, &volume.options)
        .unwrap();
    assert_eq!(target.labels, volume.labels);
    copy_tree(backup.path(), &target.mountpoint);
    // cairn restore applies the backed-up root's attributes to the target
    // root; a fresh volume's root is root-owned 0755.
    std::os::unix::fs::chown(&target.mountpoint, Some(root.uid()), Some(root.gid())).unwrap();
    fs::set_permissions(&target.mountpoint, root.permissions()).unwrap();
    let second = scratch.run(
        "second",
        &["-v", &format!("{restored}:{PGDATA}")],
        POSTGRES,
        &[],
    );
    wait_until_ready(&engine, &second);
    phase(&mut timings, "new volume, fill, second server up", &mut at);

    assert_eq!(psql(&engine, &second, TOTALS), at_stop);
    let report: Vec<String> = timings
        .iter()
        .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
        .collect();
    println!(
        "totals {at_stop} (accounts|sum|transactions) equal after restore; downtime {:.1} s; {}; total {:.1} s",
        downtime.as_secs_f64(),
        report.join(", "),
        started.elapsed().as_secs_f64()
    );
}
