//! `cairn backup --docker-volume/--docker-container/--docker-all` and
//! `cairn volumes`: the engine and cairn-containers decide, this renders.

use std::time::Instant;

use anyhow::{bail, Result};
use cairn_chunk::WalkOptions;
use cairn_containers::{backup_volume, Selection, VolumeBackup, VolumeBackupOptions};
use cairn_docker::Engine;
use cairn_repo::ops::backup::hostname;
use serde_json::{json, Value};

use super::backup::{open_or_create, read_exclude_files, summary_json};
use crate::args::{BackupArgs, Cli};
use crate::metrics::{self, VolumeMetrics};
use crate::output::{human_bytes, Out};

/// The host recorded for a Docker volume's snapshots: the engine's name
/// when cairn runs in a container (whose hostname changes every run).
fn host(args: &BackupArgs, engine: &Engine) -> Result<String> {
    Ok(match &args.host {
        Some(h) => h.clone(),
        None if cairn_docker::own_container_id().is_some() => engine.host_name()?,
        None => hostname(),
    })
}

/// Each selected volume its own snapshot; a volume that fails does not
/// stop the others (exit 1 at the end), unless it is the only one.
pub fn backup_volumes(
    cli: &Cli,
    out: &Out,
    args: &BackupArgs,
    engine: &Engine,
    selection: &Selection,
    hooks: Vec<Value>,
) -> Result<u8> {
    let volumes = cairn_containers::select_volumes(engine, selection)?;
    if volumes.is_empty() {
        bail!(
            "no Docker volume matches{}",
            if selection.labels.is_empty() {
                String::new()
            } else {
                format!(" --label {}", selection.labels.join(" --label "))
            }
        );
    }
    let mut excludes = args.excludes.clone();
    excludes.extend(read_exclude_files(&args.exclude_file)?);
    let opts = VolumeBackupOptions {
        host: host(args, engine)?,
        tags: args.tags.clone(),
        walk: WalkOptions {
            one_file_system: args.one_file_system,
            excludes,
        },
        dry_run: args.dry_run,
        stop: args.docker.stop,
    };
    let repo = open_or_create(cli, &args.chunk)?;
    // Before anything is stopped: Ctrl-C must reach the guard that starts
    // the containers again, not kill the process.
    crate::signals::install();
    let single = volumes.len() == 1;
    let mut done: Vec<VolumeBackup> = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut runs = Vec::new();
    for volume in &volumes {
        if crate::signals::interrupted() {
            return Err(cairn_repo::Error::Interrupted.into());
        }
        let started = Instant::now();
        let progress = out.bar(None, "backup");
        let result = backup_volume(&repo, engine, volume, &opts, &progress);
        progress.finish();
        runs.push((volume.name.clone(), started.elapsed().as_secs_f64()));
        match result {
            Ok(b) => {
                render_text(out, &b);
                done.push(b);
            }
            Err(e) if single || e.repo_error().is_some_and(is_interrupt) => {
                record_metrics(cli, &repo, args, &done, &runs)?;
                return Err(e.into());
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed.push((volume.name.clone(), e.to_string()));
            }
        }
    }
    record_metrics(cli, &repo, args, &done, &runs)?;
    if out.json {
        let mut per_volume = Vec::new();
        for b in &done {
            per_volume.push(volume_json(b, args.dry_run)?);
        }
        let mut doc = match (single, per_volume.first()) {
            (true, Some(one)) => one.clone(),
            _ => json!({}),
        };
        doc["volumes"] = json!(per_volume);
        doc["failed"] = json!(failed
            .iter()
            .map(|(v, e)| json!({"volume": v, "error": e}))
            .collect::<Vec<_>>());
        doc["hooks"] = json!(hooks);
        out.json(&doc)?;
    }
    let partial = done.iter().any(|b| !b.outcome.problems.is_empty());
    if partial {
        eprintln!("warning: some files could not be read consistently (listed above); the snapshots were saved without them or with the version read");
    }
    Ok(if !failed.is_empty() {
        1
    } else if partial {
        3
    } else {
        0
    })
}

fn is_interrupt(e: &cairn_repo::Error) -> bool {
    matches!(e, cairn_repo::Error::Interrupted)
}

fn record_metrics(
    cli: &Cli,
    repo: &cairn_repo::Repository,
    args: &BackupArgs,
    done: &[VolumeBackup],
    runs: &[(String, f64)],
) -> Result<()> {
    let (Some(path), false) = (&cli.metrics_file, args.dry_run) else {
        return Ok(());
    };
    let size = repo.stored_bytes().ok();
    let metrics: Vec<VolumeMetrics> = runs
        .iter()
        .map(|(name, duration_s)| VolumeMetrics {
            volume: name,
            summary: done
                .iter()
                .find(|b| &b.volume == name)
                .map(|b| &b.outcome.snapshot.summary),
            duration_s: *duration_s,
            repository_bytes: size,
        })
        .collect();
    metrics::record(path, &metrics)
}

/// The backup summary plus what the container handling did.
fn volume_json(b: &VolumeBackup, dry_run: bool) -> Result<Value> {
    let mut doc = summary_json(&b.outcome, dry_run)?;
    doc["docker"] = json!(b.outcome.snapshot.docker);
    doc["stopped_containers"] = json!(b.stopped);
    doc["downtime_s"] = json!(b.downtime.map(|d| d.as_secs_f64()));
    doc["live_pass"] = json!(b.live_pass);
    doc["torn_files"] = json!(b
        .outcome
        .problems
        .iter()
        .filter(|p| p.kind == cairn_repo::ops::backup::ProblemKind::ChangedWhileRead)
        .count());
    Ok(doc)
}

fn render_text(out: &Out, b: &VolumeBackup) {
    if out.json {
        return;
    }
    let s = &b.outcome.snapshot.summary;
    out.info(&format!(
        "{}: files: {} new, {} changed, {} unmodified; {} dirs; read {}, added {} ({} stored) in {:.2}s",
        b.volume,
        s.files_new,
        s.files_changed,
        s.files_unmodified,
        s.dirs,
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_added),
        human_bytes(s.bytes_added_stored),
        s.duration_s
    ));
    if let (Some(d), Some(live)) = (b.downtime, &b.live_pass) {
        out.info(&format!(
            "{}: {} stopped for {:.2}s (live pass first: read {} in {:.2}s)",
            b.volume,
            b.stopped.join(", "),
            d.as_secs_f64(),
            human_bytes(live.bytes_read),
            live.duration_s
        ));
    }
    match b.outcome.snapshot_id {
        Some(id) => outln!("snapshot {} saved (volume {})", id.to_hex(), b.volume),
        None => out.info(&format!("{}: dry run: nothing was written", b.volume)),
    }
}

/// `cairn volumes`: the engine's volumes, each with its latest snapshot.
pub fn volumes(cli: &Cli, out: &Out) -> Result<u8> {
    let engine = Engine::connect()?;
    let snapshots = match crate::location::open(cli) {
        Ok(repo) => repo.snapshots()?,
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<cairn_repo::Error>(),
                    Some(cairn_repo::Error::NoRepository(_))
                )
            }) =>
        {
            out.info(&format!("{}: no snapshots are listed", crate::one_line(&e)));
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let statuses = cairn_containers::volume_statuses(&engine, &snapshots)?;
    let now = chrono::Utc::now();
    if out.json {
        let list: Vec<Value> = statuses
            .iter()
            .map(|s| {
                let latest = s.latest.as_ref().map(|(id, snap)| {
                    json!({
                        "id": id.to_hex(),
                        "time": snap.time,
                        "host": snap.host,
                        "age_s": (now - snap.timestamp()).num_seconds(),
                        "size": snap.summary.total_bytes,
                    })
                });
                json!({
                    "name": s.volume.name,
                    "driver": s.volume.driver,
                    "labels": s.volume.labels,
                    "mountpoint": s.volume.mountpoint,
                    "created": s.volume.created,
                    "containers": s.containers,
                    "snapshots": s.snapshots,
                    "latest": latest,
                })
            })
            .collect();
        out.json(&json!({ "volumes": list }))?;
        return Ok(0);
    }
    outln!(
        "{:<32} {:<8} {:<10} {:>6} {:<12} {:>10}  containers",
        "volume",
        "driver",
        "latest",
        "count",
        "age",
        "size"
    );
    for s in &statuses {
        let (latest, age, size) = match &s.latest {
            Some((id, snap)) => (
                id.short(),
                age((now - snap.timestamp()).num_seconds()),
                human_bytes(snap.summary.total_bytes),
            ),
            None => ("-".into(), "never".into(), "-".into()),
        };
        outln!(
            "{:<32} {:<8} {:<10} {:>6} {:<12} {:>10}  {}",
            s.volume.name,
            s.volume.driver,
            latest,
            s.snapshots,
            age,
            size,
            s.containers.join(",")
        );
    }
    Ok(0)
}

/// `3d 4h`, `5m`, `12s`.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}
