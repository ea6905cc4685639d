//! `cairn run`: a profile's volumes backed up one after another, each
//! one's retention policy applied, then prune and check when due; and
//! `cairn config check|example`.
//!
//! Over 500 lines: a profile run (choose volumes, back up, apply the
//! policy, maintain, report) reads top to bottom as one sequence.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command as Shell;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use cairn_chunk::WalkOptions;
use cairn_containers::VolumeBackupOptions;
use cairn_repo::ops::backup::{hostname, BackupOptions, BackupOutcome};
use cairn_repo::ops::check::{check, CheckOptions, CheckReport};
use cairn_repo::ops::forget;
use cairn_repo::ops::prune::{prune, PruneOptions, PruneReport};
use cairn_repo::{Filter, Repository};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::backup::{absolute_paths, open_or_create, run_engine, summary_json};
use super::maintain::{percent, DEFAULT_MAX_UNUSED};
use crate::args::{ChunkArgs, Cli, ConfigCommand, RunArgs};
use crate::metrics::{self, VolumeMetrics};
use crate::output::{human_bytes, Out};
use crate::profile::{self, Profile, Volume};

/// How one volume's turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// Snapshot saved, every file read.
    Ok,
    /// Snapshot saved without some files (exit 3).
    Partial,
    /// No snapshot.
    Failed,
}

/// One volume's turn.
struct Turn {
    name: String,
    status: Status,
    backup: Option<BackupOutcome>,
    duration_s: f64,
    removed: usize,
    error: Option<String>,
}

pub fn run(cli: &Cli, out: &Out, args: &RunArgs, profile: Option<&Profile>) -> Result<u8> {
    let Some(profile) = profile else {
        bail!(
            "run: no profile: give --config FILE or write {} (`cairn config example` prints one)",
            profile::default_path().display()
        );
    };
    let chosen = choose(profile, &args.volumes)?;
    let repo = if args.dry_run {
        crate::location::open(cli)?
    } else {
        open_or_create(cli, &ChunkArgs::default())?
    };
    let host = profile.host.clone().unwrap_or_else(hostname);
    crate::signals::install();
    let mut turns = Vec::new();
    for (name, volume) in chosen {
        if crate::signals::interrupted() {
            break;
        }
        let turn = one_volume(&repo, out, args.dry_run, &host, name, volume);
        if !out.json {
            print_turn(&turn);
        }
        turns.push(turn);
    }
    let interrupted = crate::signals::interrupted();
    let maintenance = if args.dry_run || interrupted {
        Maintenance::default()
    } else {
        maintain(cli, &repo, profile)
    };
    if !args.dry_run {
        record_metrics(cli, &repo, &turns)?;
    }
    if interrupted {
        return Err(cairn_repo::Error::Interrupted.into());
    }
    report(out, args.dry_run, &turns, &maintenance)?;
    Ok(exit_code(&turns, &maintenance))
}

/// The volumes to back up: those named (each must be in the profile), or all.
fn choose<'a>(profile: &'a Profile, names: &[String]) -> Result<Vec<(&'a str, &'a Volume)>> {
    if profile.volumes.is_empty() {
        bail!("run: the profile has no [volumes.NAME] section");
    }
    if names.is_empty() {
        return Ok(profile
            .volumes
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .collect());
    }
    names
        .iter()
        .map(|n| match profile.volumes.get_key_value(n) {
            Some((n, v)) => Ok((n.as_str(), v)),
            None => bail!(
                "run: no volume {n:?} in the profile (it has: {})",
                profile
                    .volumes
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect()
}

/// Pre hook, backup, post hook, then the retention policy.
fn one_volume(
    repo: &Repository,
    out: &Out,
    dry_run: bool,
    host: &str,
    name: &str,
    volume: &Volume,
) -> Turn {
    let started = Instant::now();
    let mut turn = Turn {
        name: name.to_string(),
        status: Status::Failed,
        backup: None,
        duration_s: 0.0,
        removed: 0,
        error: None,
    };
    let backed_up = match volume
        .pre
        .as_deref()
        .map(|cmd| hook("pre", cmd, name, None))
    {
        Some(Err(e)) => Err(e),
        _ => backup_volume(repo, out, dry_run, host, name, volume),
    };
    turn.duration_s = started.elapsed().as_secs_f64();
    match backed_up {
        Ok(outcome) => {
            turn.status = if outcome.problems.is_empty() {
                Status::Ok
            } else {
                Status::Partial
            };
            turn.backup = Some(outcome);
        }
        Err(e) => turn.error = Some(crate::one_line(&e)),
    }
    if let Some(cmd) = &volume.post {
        if let Err(e) = hook("post", cmd, name, Some(turn.status)) {
            eprintln!("warning: volume {name}: {}", crate::one_line(&e));
        }
    }
    // A policy applied while backups fail would thin out the last good
    // snapshots with nothing new to replace them.
    if turn.status != Status::Failed {
        if let Some(keep) = &volume.keep {
            // A Docker volume's snapshots carry the volume's own name.
            let snapshot_volume = volume.docker_volume.as_deref().unwrap_or(name);
            match apply_policy(repo, dry_run, host, snapshot_volume, keep) {
                Ok(n) => turn.removed = n,
                Err(e) => {
                    turn.status = Status::Failed;
                    turn.error = Some(format!("forget: {}", crate::one_line(&e)));
                }
            }
        }
    }
    turn
}

fn backup_volume(
    repo: &Repository,
    out: &Out,
    dry_run: bool,
    host: &str,
    name: &str,
    volume: &Volume,
) -> Result<BackupOutcome> {
    let walk = WalkOptions {
        one_file_system: volume.one_file_system,
        excludes: volume.exclude.clone(),
    };
    let path = match (&volume.path, &volume.docker_volume) {
        (Some(p), _) => p.clone(),
        (None, Some(docker_volume)) => {
            // The same operation as `backup --docker-volume`: driver and
            // labels recorded, containers stopped when asked or labelled.
            let engine = cairn_docker::Engine::connect()?;
            let info = engine.volume(docker_volume)?;
            let opts = VolumeBackupOptions {
                host: host.to_string(),
                tags: volume.tags.clone(),
                walk,
                dry_run,
                stop: volume.stop,
            };
            let progress = out.bar(None, "backup");
            let result = cairn_containers::backup_volume(repo, &engine, &info, &opts, &progress);
            progress.finish();
            let done = result?;
            if let Some(d) = done.downtime {
                out.info(&format!(
                    "{name}: {} stopped for {:.2}s",
                    done.stopped.join(", "),
                    d.as_secs_f64()
                ));
            }
            return Ok(done.outcome);
        }
        (None, None) => bail!("the volume has neither `path` nor `docker-volume`"),
    };
    let opts = BackupOptions {
        paths: absolute_paths(&[path])?,
        volume: name.to_string(),
        host: host.to_string(),
        tags: volume.tags.clone(),
        parent: None,
        latest_parent: false,
        walk,
        dry_run,
        docker: None,
    };
    opts.validate()?;
    run_engine(repo, out, opts, None)
}

/// Run a hook with sh -c; its output goes to stderr so that stdout stays
/// the summary. It learns the volume (and after the backup, the outcome).
fn hook(which: &str, cmd: &str, volume: &str, status: Option<Status>) -> Result<()> {
    let mut shell = Shell::new("sh");
    shell.arg("-c").arg(cmd).env("CAIRN_VOLUME", volume);
    if let Some(s) = status {
        shell.env(
            "CAIRN_STATUS",
            serde_json::to_value(s)?.as_str().unwrap_or(""),
        );
    }
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let status = shell
        .stdout(stderr)
        .status()
        .with_context(|| format!("{which} hook {cmd:?}"))?;
    if !status.success() {
        bail!("{which} hook {cmd:?} failed ({status})");
    }
    Ok(())
}

/// Forget this volume's snapshots (from this host) that the policy does
/// not keep; the number removed (or that would be).
fn apply_policy(
    repo: &Repository,
    dry_run: bool,
    host: &str,
    name: &str,
    keep: &profile::Keep,
) -> Result<usize> {
    let filter = Filter {
        volume: Some(name.to_string()),
        host: Some(host.to_string()),
        tags: Vec::new(),
    };
    let all = repo.snapshot_list()?.snapshots;
    let plans = forget::plan_policy(&keep.policy(), &all, &filter)?;
    let removed = plans.iter().map(|p| p.remove.len()).sum();
    if !dry_run {
        forget::forget(repo, &plans)?;
    }
    Ok(removed)
}

/// What prune and check did after the backups (each only when due).
#[derive(Default)]
struct Maintenance {
    prune: Option<Result<PruneReport, String>>,
    check: Option<Result<CheckReport, String>>,
}

/// When `run` last pruned and checked this repository from this machine.
#[derive(Default, Serialize, Deserialize)]
struct RunState {
    last_prune: Option<u64>,
    last_check: Option<u64>,
}

fn maintain(cli: &Cli, repo: &Repository, profile: &Profile) -> Maintenance {
    let state_path = &state_path(cli, repo);
    let mut state: RunState = std::fs::read(state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let now = unix_now();
    let mut done = Maintenance::default();
    if due(state.last_prune, &profile.prune_every, now) {
        let opts = PruneOptions {
            max_unused_percent: DEFAULT_MAX_UNUSED,
            dry_run: false,
            segment_entries: cairn_repo::ops::prune::SEGMENT_ENTRIES,
        };
        let result = prune(repo, &opts).map_err(|e| e.to_string());
        if result.is_ok() {
            state.last_prune = Some(now);
        }
        done.prune = Some(result);
    }
    if due(state.last_check, &profile.check_every, now) {
        let result = percent(&profile.check_read_data_subset)
            .and_then(|p| {
                Ok(check(
                    repo,
                    &CheckOptions {
                        read_data_percent: p,
                    },
                )?)
            })
            .map_err(|e| crate::one_line(&e));
        if result.is_ok() {
            state.last_check = Some(now);
        }
        done.check = Some(result);
    }
    if let Err(e) = save_state(state_path, &state) {
        eprintln!("warning: {}: {e}", state_path.display());
    }
    done
}

/// Whether an interval (`1d`, `0` for never) has passed since `last`.
fn due(last: Option<u64>, every: &str, now: u64) -> bool {
    match profile::parse_every(every) {
        Ok(Some(every)) => last.is_none_or(|t| now.saturating_sub(t) >= every.as_secs()),
        _ => false,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Beside the repository's index cache: when this machine last pruned
/// and checked it.
fn state_path(cli: &Cli, repo: &Repository) -> PathBuf {
    crate::location::cache_root(cli)
        .join("cairn")
        .join(repo.config().id.to_hex())
        .join("run-state.json")
}

fn save_state(path: &Path, state: &RunState) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(tmp.as_file(), state)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn record_metrics(cli: &Cli, repo: &Repository, turns: &[Turn]) -> Result<()> {
    let Some(path) = &cli.metrics_file else {
        return Ok(());
    };
    let size = repo.stored_bytes().ok();
    let runs: Vec<VolumeMetrics> = turns
        .iter()
        .map(|t| VolumeMetrics {
            volume: &t.name,
            summary: t.backup.as_ref().map(|b| &b.snapshot.summary),
            duration_s: t.duration_s,
            repository_bytes: size,
        })
        .collect();
    metrics::record(path, &runs)
}

/// 1 when a volume failed or maintenance found a problem, 3 when a
/// snapshot misses files, else 0.
fn exit_code(turns: &[Turn], m: &Maintenance) -> u8 {
    let maintenance_failed = matches!(m.prune, Some(Err(_)))
        || matches!(&m.check, Some(Err(_)))
        || matches!(&m.check, Some(Ok(r)) if !r.ok());
    if maintenance_failed || turns.iter().any(|t| t.status == Status::Failed) {
        1
    } else if turns.iter().any(|t| t.status == Status::Partial) {
        3
    } else {
        0
    }
}

fn print_turn(t: &Turn) {
    match (&t.backup, &t.error) {
        (Some(b), _) => {
            let s = &b.snapshot.summary;
            let saved = b.snapshot_id.map_or_else(
                || "dry run".to_string(),
                |id| format!("snapshot {}", id.short()),
            );
            outln!(
                "{}: {saved}, read {}, added {}{}{}",
                t.name,
                human_bytes(s.bytes_read),
                human_bytes(s.bytes_added_stored),
                if b.problems.is_empty() {
                    String::new()
                } else {
                    format!(", {} file(s) unreadable", b.problems.len())
                },
                if t.removed > 0 {
                    format!(", forgot {} snapshot(s)", t.removed)
                } else {
                    String::new()
                }
            );
        }
        (None, Some(e)) => eprintln!("error: volume {}: {e}", t.name),
        (None, None) => {}
    }
    if let (Some(_), Some(e)) = (&t.backup, &t.error) {
        eprintln!("error: volume {}: {e}", t.name);
    }
}

fn report(out: &Out, dry_run: bool, turns: &[Turn], m: &Maintenance) -> Result<()> {
    if out.json {
        let volumes = turns
            .iter()
            .map(|t| turn_json(t, dry_run))
            .collect::<Result<Vec<Value>>>()?;
        let prune = m.prune.as_ref().map(|r| match r {
            Ok(r) => json!({ "ok": true, "report": r }),
            Err(e) => json!({ "ok": false, "error": e }),
        });
        let check = m.check.as_ref().map(|r| match r {
            Ok(r) => json!({ "ok": r.ok(), "report": r }),
            Err(e) => json!({ "ok": false, "error": e }),
        });
        return out.json(&json!({
            "dry_run": dry_run,
            "volumes": volumes,
            "prune": prune,
            "check": check,
            "exit_code": exit_code(turns, m),
        }));
    }
    match &m.prune {
        Some(Ok(r)) => out.info(&format!(
            "prune: deleted {} packs, freed {}",
            r.packs_deleted,
            human_bytes(r.bytes_freed)
        )),
        Some(Err(e)) => eprintln!("error: prune: {e}"),
        None => {}
    }
    match &m.check {
        Some(Ok(r)) if r.ok() => out.info(&format!(
            "check: {} snapshots, {} packs ({} read): no errors",
            r.snapshots, r.packs, r.packs_read
        )),
        Some(Ok(r)) => {
            for e in &r.errors {
                eprintln!("error: check: {e}");
            }
            for d in &r.damaged {
                eprintln!("error: check: pack {} {}", d.pack, d.reason);
            }
        }
        Some(Err(e)) => eprintln!("error: check: {e}"),
        None => {}
    }
    let failed = turns.iter().filter(|t| t.status == Status::Failed).count();
    out.info(&format!(
        "{} volume(s) backed up, {failed} failed",
        turns.len() - failed
    ));
    Ok(())
}

fn turn_json(t: &Turn, dry_run: bool) -> Result<Value> {
    Ok(json!({
        "volume": t.name,
        "status": t.status,
        "backup": t.backup.as_ref().map(|b| summary_json(b, dry_run)).transpose()?,
        "forgotten": t.removed,
        "duration_s": t.duration_s,
        "error": t.error,
    }))
}

/// `cairn config check [FILE]` and `cairn config example`.
pub fn config(cli: &Cli, out: &Out, what: &ConfigCommand) -> Result<u8> {
    match what {
        ConfigCommand::Example => {
            if out.json {
                out.json(&json!({ "example": profile::EXAMPLE }))?;
            } else {
                outln!("{}", profile::EXAMPLE.trim_end());
            }
            Ok(0)
        }
        ConfigCommand::Check { file } => {
            let path = file
                .clone()
                .or_else(|| cli.config.clone())
                .unwrap_or_else(profile::default_path);
            let p = profile::load(&path)?;
            if out.json {
                out.json(&json!({
                    "file": path,
                    "repository": p.repository,
                    "volumes": p.volumes.keys().collect::<Vec<_>>(),
                }))?;
            } else {
                outln!(
                    "{}: ok: repository {}, {} volume(s): {}",
                    path.display(),
                    p.repository,
                    p.volumes.len(),
                    p.volumes
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(0)
        }
    }
}
