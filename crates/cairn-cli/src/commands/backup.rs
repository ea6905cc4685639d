//! `cairn backup`.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_chunk::WalkOptions;
use cairn_repo::ops::backup::{self as engine, hostname, BackupOptions, BackupOutcome};
use cairn_repo::Repository;
use serde_json::json;

use crate::args::{BackupArgs, ChunkArgs, Cli};
use crate::location;
use crate::metrics::{self, VolumeMetrics};
use crate::output::{human_bytes, Out};

/// The volume name: the last component of the single path, or for Docker's
/// `/var/lib/docker/volumes/NAME/_data` layout, NAME.
fn default_volume(paths: &[PathBuf]) -> String {
    let name = |p: &Path| -> String {
        let last = p
            .file_name()
            .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned());
        match last.as_deref() {
            Some("_data") => p
                .parent()
                .and_then(Path::file_name)
                .map_or_else(|| "_data".into(), |n| n.to_string_lossy().into_owned()),
            Some(n) => n.to_string(),
            None => "root".into(),
        }
    };
    paths.iter().map(|p| name(p)).collect::<Vec<_>>().join("+")
}

pub(crate) fn read_exclude_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("exclude file {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}

pub(crate) fn absolute_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(p).with_context(|| format!("{}", p.display()))?;
            normalise(p)
        })
        .collect()
}

/// Absolute, without `.` and trailing slashes, so parents match.
fn normalise(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
    Ok(abs.components().collect::<PathBuf>())
}

/// Open the repository, creating a missing one with default settings.
pub(crate) fn open_or_create(cli: &Cli, chunk: &ChunkArgs) -> Result<Repository> {
    let loc = location::location(cli);
    if location::is_vacant(cli, &loc)? {
        let config = location::config_from(chunk)?;
        let protection = location::create(cli, &config, false)?;
        // Said even with --quiet: it is the only time the key file is named.
        eprintln!("{}", location::protection_note(&loc, &protection));
    }
    location::open(cli)
}

/// A backup that ran: what the engine returned, and the repository's size
/// afterwards when metrics asked for it.
pub(crate) struct Done {
    pub outcome: BackupOutcome,
    pub repository_bytes: Option<u64>,
}

pub fn backup(cli: &Cli, out: &Out, args: &BackupArgs) -> Result<u8> {
    let d = &args.docker;
    // The pre-command decides whether anything runs; the post-command runs
    // however the rest ended.
    let result = match &d.pre {
        Some(cmd) => cairn_containers::run_host_command("pre", cmd).map_err(Into::into),
        None => Ok(()),
    }
    .and_then(|()| backup_after_pre(cli, out, args));
    let post = match &d.post {
        Some(cmd) => cairn_containers::run_host_command("post", cmd),
        None => Ok(()),
    };
    match (result, post) {
        (Ok(code), Ok(())) => Ok(code),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(post)) => {
            eprintln!("error: {post}");
            Err(e)
        }
    }
}

/// `--exec` commands, then the backup of Docker volumes, a command's
/// output or paths.
fn backup_after_pre(cli: &Cli, out: &Out, args: &BackupArgs) -> Result<u8> {
    let d = &args.docker;
    let selection = d.selection();
    if d.stop && selection.is_empty() {
        anyhow::bail!("--stop stops the containers using a Docker volume: give --docker-volume, --docker-container or --docker-all");
    }
    let engine = if selection.is_empty() && d.exec.is_empty() {
        None
    } else {
        Some(cairn_docker::Engine::connect()?)
    };
    let mut hooks = Vec::new();
    if let Some(engine) = &engine {
        for spec in &d.exec {
            let spec: cairn_containers::ExecSpec = spec.parse()?;
            let output = cairn_containers::run_exec(engine, &spec)?;
            eprint!("{}{}", output.stdout, output.stderr);
            hooks.push(json!({
                "container": spec.container,
                "cmd": spec.cmd,
                "exit_code": output.exit_code,
                "stdout": output.stdout,
                "stderr": output.stderr,
            }));
        }
    }
    match engine {
        Some(engine) if !selection.is_empty() => {
            super::docker::backup_volumes(cli, out, args, &engine, &selection, hooks)
        }
        _ => backup_paths(cli, out, args, hooks),
    }
}

/// PATHs, or with --stdin-from-command the command's output as one file.
fn backup_paths(
    cli: &Cli,
    out: &Out,
    args: &BackupArgs,
    hooks: Vec<serde_json::Value>,
) -> Result<u8> {
    let started = Instant::now();
    let spooled = match &args.docker.stdin_from_command {
        Some(cmd) => {
            let name = args.docker.stdin_name.as_deref().unwrap_or("stdin");
            let spool_dir = cli.cache_dir.as_deref().filter(|d| d.is_dir());
            Some(cairn_containers::spool_command(cmd, name, spool_dir)?)
        }
        None => None,
    };
    let paths = match &spooled {
        Some(s) => vec![s.path.clone()],
        None => args.paths.clone(),
    };
    let volume = match (&args.volume, &spooled) {
        (Some(v), _) => v.clone(),
        (None, Some(_)) => args
            .docker
            .stdin_name
            .clone()
            .unwrap_or_else(|| "stdin".into()),
        (None, None) => default_volume(
            &paths
                .iter()
                .map(|p| normalise(p))
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    let result = backup_into(cli, out, args, &paths, &volume);
    if let (Some(path), false) = (&cli.metrics_file, args.dry_run) {
        let done = result.as_ref().ok();
        metrics::record(
            path,
            &[VolumeMetrics {
                volume: &volume,
                summary: done.map(|d| &d.outcome.snapshot.summary),
                duration_s: started.elapsed().as_secs_f64(),
                repository_bytes: done.and_then(|d| d.repository_bytes),
            }],
        )?;
    }
    let done = result?;
    render(out, args.dry_run, &done.outcome, hooks)?;
    Ok(exit_code(&done.outcome))
}

fn backup_into(
    cli: &Cli,
    out: &Out,
    args: &BackupArgs,
    paths: &[PathBuf],
    volume: &str,
) -> Result<Done> {
    let paths = absolute_paths(paths)?;
    let mut excludes = args.excludes.clone();
    excludes.extend(read_exclude_files(&args.exclude_file)?);
    let opts = BackupOptions {
        volume: volume.to_string(),
        host: args.host.clone().unwrap_or_else(hostname),
        tags: args.tags.clone(),
        paths,
        parent: None,
        latest_parent: false,
        walk: WalkOptions {
            one_file_system: args.one_file_system,
            excludes,
        },
        dry_run: args.dry_run,
        docker: None,
    };
    opts.validate()?;
    let repo = open_or_create(cli, &args.chunk)?;
    let outcome = run_engine(&repo, out, opts, args.parent.as_deref())?;
    let repository_bytes = match cli.metrics_file {
        Some(_) => Some(repo.stored_bytes()?),
        None => None,
    };
    Ok(Done {
        outcome,
        repository_bytes,
    })
}

/// Back up into an open repository, with progress; `parent`: the
/// snapshot the user named instead of the latest of the same volume.
pub(crate) fn run_engine(
    repo: &Repository,
    out: &Out,
    mut opts: BackupOptions,
    parent: Option<&str>,
) -> Result<BackupOutcome> {
    // Without --parent the engine chooses the latest snapshot itself, after
    // its lock is written (docs/FORMAT.md section 11).
    match parent {
        Some(spec) => opts.parent = Some(repo.find_snapshot(spec, &cairn_repo::Filter::default())?),
        None => opts.latest_parent = true,
    }
    crate::signals::install();
    let progress = out.bar(None, "backup");
    let result = engine::backup(repo, &opts, &progress);
    progress.finish();
    let outcome = result?;
    if out.verbose > 0 {
        match &outcome.snapshot.parent {
            Some(id) => eprintln!("used parent snapshot {}", id.short()),
            None => eprintln!("no parent snapshot: read every file"),
        }
    }
    Ok(outcome)
}

/// 0, or 3 when some files could not be read consistently.
pub(crate) fn exit_code(outcome: &BackupOutcome) -> u8 {
    if outcome.problems.is_empty() {
        0
    } else {
        3
    }
}

/// The summary: the stored one plus what only this run knows as JSON, or
/// a line of text and the snapshot id.
pub(crate) fn render(
    out: &Out,
    dry_run: bool,
    outcome: &BackupOutcome,
    hooks: Vec<serde_json::Value>,
) -> Result<()> {
    let s = &outcome.snapshot.summary;
    let id = outcome.snapshot_id.map(|i| i.to_hex());
    if out.json {
        let mut doc = summary_json(outcome, dry_run)?;
        doc["hooks"] = json!(hooks);
        out.json(&doc)?;
    } else {
        out.info(&format!(
            "files: {} new, {} changed, {} unmodified; {} dirs; read {}, added {} ({} stored) in {:.2}s",
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            s.dirs,
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_added),
            human_bytes(s.bytes_added_stored),
            s.duration_s
        ));
        match &id {
            Some(id) => outln!("snapshot {id} saved"),
            None => out.info("dry run: nothing was written"),
        }
    }
    if !outcome.problems.is_empty() {
        eprintln!(
            "warning: {} file(s) could not be read consistently; the snapshot was saved without them or with the version read",
            outcome.problems.len()
        );
    }
    Ok(())
}

/// The stored summary plus what only this run knows; `errors` lists the
/// problems (the summary counts them).
pub(crate) fn summary_json(outcome: &BackupOutcome, dry_run: bool) -> Result<serde_json::Value> {
    let mut doc = serde_json::to_value(&outcome.snapshot.summary)?;
    doc["snapshot_id"] = json!(outcome.snapshot_id.map(|i| i.to_hex()));
    doc["parent"] = json!(outcome.snapshot.parent);
    doc["volume"] = json!(outcome.snapshot.volume);
    doc["dry_run"] = json!(dry_run);
    doc["errors"] = json!(outcome
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>());
    doc["problems"] = json!(outcome.problems);
    Ok(doc)
}
