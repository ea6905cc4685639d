//! The blocking API against the real engine. Each test skips, saying so, if
//! no engine answers.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_docker::{Error, StoppedContainers, VolumeMount};
use common::{docker, engine_or_skip, ensure_images, Scratch};

const BUSYBOX: &str = "cairn-test-busybox";
/// Busybox test containers stop at once; this bounds a stop that races the
/// shell installing its SIGTERM trap.
const QUICK_STOP: &str = "--stop-timeout=1";

fn started_at(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.StartedAt}}", container])
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn unknown_volume_and_container_are_one_line_each() {
    let Some(engine) = engine_or_skip("unknown_volume_and_container_are_one_line_each") else {
        return;
    };
    let err = engine.volume("cairn-it-no-such-volume").unwrap_err();
    assert!(matches!(&err, Error::NoSuchVolume { name } if name == "cairn-it-no-such-volume"));
    assert_eq!(
        err.to_string(),
        "no Docker volume named cairn-it-no-such-volume (`docker volume ls` lists them)"
    );
    let err = engine
        .containers_using("cairn-it-no-such-volume")
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchVolume { .. }), "{err}");
    let err = engine.container("cairn-it-no-such-container").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no Docker container named cairn-it-no-such-container (`docker ps -a` lists them)"
    );
}

#[test]
fn the_engine_names_its_host() {
    let Some(engine) = engine_or_skip("the_engine_names_its_host") else {
        return;
    };
    assert_eq!(
        engine.host_name().unwrap(),
        docker(&["info", "-f", "{{.Name}}"])
    );
    assert!(engine.endpoint().starts_with("unix://") || engine.endpoint().starts_with("tcp://"));
}

#[test]
fn volume_reports_driver_labels_and_options() {
    let Some(engine) = engine_or_skip("volume_reports_driver_labels_and_options") else {
        return;
    };
    let mut scratch = Scratch::default();
    let name = scratch.volume(
        "meta",
        &[
            "--label",
            "app=db",
            "--label",
            "tier=1",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=1m",
        ],
    );
    let v = engine.volume(&name).unwrap();
    assert_eq!(v.name, name);
    assert_eq!(v.driver, "local");
    assert_eq!(
        v.labels,
        BTreeMap::from([("app".into(), "db".into()), ("tier".into(), "1".into())])
    );
    assert_eq!(v.options["type"], "tmpfs");
    assert_eq!(v.options["o"], "size=1m");
    assert!(
        v.mountpoint.ends_with(format!("{name}/_data")),
        "{}",
        v.mountpoint.display()
    );
    assert!(v.created.is_some());
}

#[test]
fn volumes_are_selected_by_label_key_and_value() {
    let Some(engine) = engine_or_skip("volumes_are_selected_by_label_key_and_value") else {
        return;
    };
    let mut scratch = Scratch::default();
    // A key unique to this run keeps other volumes on the engine out of it.
    let key = scratch.name("backup");
    let daily = scratch.volume("daily", &["--label", &format!("{key}=daily")]);
    let weekly = scratch.volume("weekly", &["--label", &format!("{key}=weekly")]);
    scratch.volume("unlabelled", &[]);
    let names = |filters: &[(String, Option<String>)]| -> Vec<String> {
        engine
            .volumes(filters)
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect()
    };
    let by_value = names(&[cairn_docker::parse_label_filter(&format!("{key}=daily"))]);
    assert_eq!(names(&[(key.clone(), None)]), [daily.clone(), weekly]);
    assert_eq!(by_value, std::slice::from_ref(&daily));
    assert!(engine.volumes(&[]).unwrap().iter().any(|v| v.name == daily));
}

#[test]
fn containers_using_a_volume_running_or_not_and_their_mounts() {
    let Some(engine) = engine_or_skip("containers_using_a_volume_running_or_not_and_their_mounts")
    else {
        return;
    };
    ensure_images();
    let mut scratch = Scratch::default();
    let data = scratch.volume("data", &[]);
    let other = scratch.volume("other", &[]);
    let up = scratch.run(
        "up",
        &[
            QUICK_STOP,
            "-v",
            &format!("{data}:/data"),
            "-v",
            &format!("{other}:/other:ro"),
            "--label",
            "role=app",
        ],
        BUSYBOX,
        &[],
    );
    let down = scratch.run(
        "down",
        &[QUICK_STOP, "-v", &format!("{data}:/data")],
        BUSYBOX,
        &[],
    );
    docker(&["stop", &down]);
    // Mounts something else at a path equal to the volume's name: the
    // engine's filter would match it, containers_using must not.
    scratch.run(
        "decoy",
        &[QUICK_STOP, "-v", &format!("{other}:/{data}")],
        BUSYBOX,
        &[],
    );

    let users = engine.containers_using(&data).unwrap();
    let seen: Vec<(&str, bool)> = users.iter().map(|c| (c.name.as_str(), c.running)).collect();
    let mut expected = [(up.as_str(), true), (down.as_str(), false)];
    expected.sort();
    assert_eq!(seen, expected, "sorted by name");
    let up_info = users.iter().find(|c| c.name == up).unwrap();
    assert_eq!(up_info.labels["role"], "app");

    let info = engine.container(&up).unwrap();
    assert!(info.running);
    assert_eq!(info.id, up_info.id);
    assert_eq!(
        engine.volume_mounts(&up).unwrap(),
        [
            VolumeMount {
                volume: data.clone(),
                destination: "/data".into(),
                read_only: false
            },
            VolumeMount {
                volume: other,
                destination: "/other".into(),
                read_only: true
            },
        ]
    );
}

#[test]
fn a_volume_in_use_names_the_running_containers() {
    let Some(engine) = engine_or_skip("a_volume_in_use_names_the_running_containers") else {
        return;
    };
    ensure_images();
    let mut scratch = Scratch::default();
    let data = scratch.volume("busy", &[]);
    engine.check_not_in_use(&data).unwrap();
    let c = scratch.run(
        "user",
        &[QUICK_STOP, "-v", &format!("{data}:/data")],
        BUSYBOX,
        &[],
    );
    let err = engine.check_not_in_use(&data).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Docker volume {data} is in use by running container(s) {c}: stop them first or pass --stop")
    );
    docker(&["stop", &c]);
    engine.check_not_in_use(&data).unwrap();
}

#[test]
fn stopped_containers_start_again_last_stopped_first() {
    let Some(engine) = engine_or_skip("stopped_containers_start_again_last_stopped_first") else {
        return;
    };
    ensure_images();
    let mut scratch = Scratch::default();
    let data = scratch.volume("guarded", &[]);
    let mount = format!("{data}:/data");
    let first = scratch.run("first", &[QUICK_STOP, "-v", &mount], BUSYBOX, &[]);
    let second = scratch.run("second", &[QUICK_STOP, "-v", &mount], BUSYBOX, &[]);
    let idle = scratch.run("idle", &[QUICK_STOP, "-v", &mount], BUSYBOX, &[]);
    docker(&["stop", &idle]);

    let users = engine.containers_using(&data).unwrap();
    let order: Vec<_> = [&first, &second, &idle]
        .iter()
        .map(|n| users.iter().find(|c| &&c.name == n).unwrap().clone())
        .collect();
    let mut stopped = StoppedContainers::stop(&engine, &order).unwrap();
    let names: Vec<&str> = stopped
        .containers()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [first.as_str(), second.as_str()],
        "a stopped container is not touched"
    );
    engine.check_not_in_use(&data).unwrap();

    std::thread::sleep(Duration::from_millis(200));
    let downtime = stopped.restart().unwrap();
    assert!(downtime >= Duration::from_millis(200), "{downtime:?}");
    assert!(engine.container(&first).unwrap().running);
    assert!(engine.container(&second).unwrap().running);
    assert!(
        !engine.container(&idle).unwrap().running,
        "only what was stopped is started"
    );
    assert!(
        started_at(&second) < started_at(&first),
        "reverse order of stopping"
    );
    assert_eq!(
        stopped.restart().unwrap(),
        downtime,
        "restart is idempotent"
    );
}

#[test]
fn dropping_the_guard_starts_the_containers_again() {
    let Some(engine) = engine_or_skip("dropping_the_guard_starts_the_containers_again") else {
        return;
    };
    ensure_images();
    let mut scratch = Scratch::default();
    let data = scratch.volume("dropped", &[]);
    let c = scratch.run(
        "c",
        &[QUICK_STOP, "-v", &format!("{data}:/data")],
        BUSYBOX,
        &[],
    );
    let result: Result<(), Error> = (|| {
        let _stopped = StoppedContainers::stop(&engine, &engine.containers_using(&data)?)?;
        assert!(!engine.container(&c)?.running);
        Err(Error::NoSuchVolume {
            name: "a backup that failed".into(),
        })
    })();
    assert!(result.is_err());
    assert!(engine.container(&c).unwrap().running);
}

#[test]
fn exec_shows_output_and_fails_on_a_non_zero_exit() {
    let Some(engine) = engine_or_skip("exec_shows_output_and_fails_on_a_non_zero_exit") else {
        return;
    };
    ensure_images();
    let mut scratch = Scratch::default();
    let c = scratch.run("exec", &[QUICK_STOP], BUSYBOX, &[]);

    let ok = engine
        .exec(&c, &strings(&["sh", "-c", "echo out; echo err >&2"]))
        .unwrap();
    assert_eq!(
        (ok.exit_code, ok.stdout.as_str(), ok.stderr.as_str()),
        (0, "out\n", "err\n")
    );

    let cmd = strings(&[
        "sh",
        "-c",
        "echo flushing; echo 'no space left' >&2; exit 3",
    ]);
    let err = engine.exec(&c, &cmd).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("`sh -c echo flushing; echo 'no space left' >&2; exit 3` in container {c} exited with code 3: no space left")
    );
    let out = engine.exec_unchecked(&c, &cmd).unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (3, "flushing\n"));

    let err = engine.exec(&c, &strings(&["no-such-program"])).unwrap_err();
    assert!(
        matches!(&err, Error::ExecFailed { exit_code, .. } if *exit_code != 0),
        "{err}"
    );

    docker(&["stop", &c]);
    let err = engine.exec(&c, &strings(&["true"])).unwrap_err();
    assert_eq!(err.to_string(), format!("container {c} is not running"));
}

#[test]
fn create_volume_keeps_driver_labels_options_and_refuses_an_existing_name() {
    let Some(engine) =
        engine_or_skip("create_volume_keeps_driver_labels_options_and_refuses_an_existing_name")
    else {
        return;
    };
    let mut scratch = Scratch::default();
    let name = scratch.name("restored");
    scratch.adopt_volume(&name);
    let labels = BTreeMap::from([("app".to_string(), "db".to_string())]);
    let options = BTreeMap::from([
        ("type".to_string(), "tmpfs".to_string()),
        ("device".to_string(), "tmpfs".to_string()),
        ("o".to_string(), "size=2m".to_string()),
    ]);
    let created = engine
        .create_volume(&name, "local", &labels, &options)
        .unwrap();
    assert_eq!(
        (created.labels, created.options),
        (labels.clone(), options.clone())
    );
    assert_eq!(engine.volume(&name).unwrap().driver, "local");

    let err = engine
        .create_volume(&name, "local", &labels, &options)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Docker volume {name} already exists: choose a new name or remove it first")
    );
}

#[test]
fn data_dir_is_the_mountpoint_on_the_engine_host() {
    let Some(engine) = engine_or_skip("data_dir_is_the_mountpoint_on_the_engine_host") else {
        return;
    };
    if cairn_docker::own_container_id().is_some() {
        eprintln!(
            "skipping data_dir_is_the_mountpoint_on_the_engine_host: this test runs in a container"
        );
        return;
    }
    let mut scratch = Scratch::default();
    let name = scratch.volume("located", &[]);
    let mut volume = engine.volume(&name).unwrap();
    assert_eq!(engine.data_dir(&volume).unwrap(), volume.mountpoint);

    volume.mountpoint = "/nonexistent/_data".into();
    assert_eq!(
        engine.data_dir(&volume).unwrap_err().to_string(),
        format!("cannot see the files of Docker volume {name} from here: mount it into cairn's container (`-v {name}:/volumes/{name}`) or run cairn on the engine's host")
    );
}
