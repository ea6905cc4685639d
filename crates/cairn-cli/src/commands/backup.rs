//! `cairn backup`.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn_chunk::WalkOptions;
use cairn_repo::ops::backup::{self as engine, hostname, BackupOptions};
use serde_json::json;

use crate::args::{BackupArgs, Cli};
use crate::location;
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

fn read_exclude_files(files: &[PathBuf]) -> Result<Vec<String>> {
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

fn absolute_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(p).with_context(|| format!("{}", p.display()))?;
            let abs = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
            // Normalise away `.` and trailing slashes so parents match.
            Ok(abs.components().collect::<PathBuf>())
        })
        .collect()
}

/// Open the repository, creating a missing local one with default settings.
fn open_or_create(cli: &Cli, args: &BackupArgs) -> Result<cairn_repo::Repository> {
    let loc = location::location(cli);
    if location::is_vacant(cli, &loc)? {
        let config = location::config_from(&args.chunk)?;
        let protection = location::create(cli, &config, false)?;
        // Said even with --quiet: it is the only time the key file is named.
        eprintln!("{}", location::protection_note(&loc, &protection));
    }
    location::open(cli)
}

pub fn backup(cli: &Cli, out: &Out, args: &BackupArgs) -> Result<u8> {
    let paths = absolute_paths(&args.paths)?;
    let mut excludes = args.excludes.clone();
    excludes.extend(read_exclude_files(&args.exclude_file)?);
    let mut opts = BackupOptions {
        volume: args
            .volume
            .clone()
            .unwrap_or_else(|| default_volume(&paths)),
        host: args.host.clone().unwrap_or_else(hostname),
        tags: args.tags.clone(),
        paths,
        parent: None,
        walk: WalkOptions {
            one_file_system: args.one_file_system,
            excludes,
        },
        dry_run: args.dry_run,
    };
    opts.validate()?;
    let repo = open_or_create(cli, args)?;
    opts.parent = match &args.parent {
        Some(spec) => Some(repo.find_snapshot(spec, &cairn_repo::Filter::default())?),
        None => engine::find_parent(&repo, &opts)?,
    };
    if out.verbose > 0 {
        match &opts.parent {
            Some((id, _)) => eprintln!("using parent snapshot {}", id.short()),
            None => eprintln!("no parent snapshot: reading every file"),
        }
    }
    crate::signals::install();
    let progress = out.bar(None, "backup");
    let result = engine::backup(&repo, &opts, &progress);
    progress.finish();
    let outcome = result?;
    let s = &outcome.snapshot.summary;
    let id = outcome.snapshot_id.map(|i| i.to_hex());
    if out.json {
        // The stored summary, plus what only this run knows; `errors` lists
        // the problems (the summary counts them).
        let mut doc = serde_json::to_value(s)?;
        doc["snapshot_id"] = json!(id);
        doc["parent"] = json!(outcome.snapshot.parent);
        doc["volume"] = json!(outcome.snapshot.volume);
        doc["dry_run"] = json!(args.dry_run);
        doc["errors"] = json!(outcome
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>());
        doc["problems"] = json!(outcome.problems);
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
    if outcome.problems.is_empty() {
        Ok(0)
    } else {
        eprintln!(
            "warning: {} file(s) could not be read consistently; the snapshot was saved without them or with the version read",
            outcome.problems.len()
        );
        Ok(3)
    }
}
