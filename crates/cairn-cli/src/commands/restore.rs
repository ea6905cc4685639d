//! `cairn restore`.

use anyhow::Result;
use cairn_repo::ops::restore::{self as engine, RestoreOptions};
use serde_json::json;

use super::inspect::split_spec;
use crate::args::{Cli, RestoreArgs};
use crate::location;
use crate::output::{human_bytes, Out};

pub fn restore(cli: &Cli, out: &Out, args: &RestoreArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let (spec, sub) = split_spec(&args.snapshot);
    let (id, snap) = repo.find_snapshot(spec, &args.filter.filter())?;
    crate::signals::install();
    // Into a Docker volume: created (or checked) first; containers stopped
    // for it are started again when `docker_target` is dropped.
    let mut docker_target = match &args.to_docker_volume {
        Some(name) => {
            let engine = cairn_docker::Engine::connect()?;
            let t = cairn_containers::prepare_restore(&engine, name, &snap, args.stop)?;
            if t.created {
                out.info(&format!("created Docker volume {name}"));
            }
            Some(t)
        }
        None => None,
    };
    let target = match (&docker_target, &args.target) {
        (Some(t), _) => t.path.clone(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => anyhow::bail!("restore: give --target DIR or --to-docker-volume NAME"),
    };
    let opts = RestoreOptions {
        target: target.clone(),
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
        // A volume ends identical to the snapshot (a new one is empty anyway).
        delete: args.delete || docker_target.is_some(),
        verify: args.verify,
        dry_run: args.dry_run,
    };
    let progress = out.bar(Some(snap.summary.total_bytes), "restore");
    let result = engine::restore(&repo, &id, &snap, sub.as_bytes(), &opts, &progress);
    progress.finish();
    let restarted = docker_target
        .as_mut()
        .and_then(|t| t.stopped.as_mut())
        .map(|s| s.restart());
    let o = result?;
    if let Some(r) = restarted {
        r?;
    }
    for e in &o.errors {
        eprintln!("error: {e}");
    }
    if out.json {
        out.json(&json!({
            "snapshot_id": id.to_hex(),
            "target": target,
            "docker_volume": args.to_docker_volume,
            "volume_created": docker_target.as_ref().map(|t| t.created),
            "dry_run": args.dry_run,
            "files_written": o.files_written,
            "files_unchanged": o.files_unchanged,
            "files_failed": o.files_failed,
            "bytes_written": o.bytes_written,
            "bytes_unchanged": o.bytes_unchanged,
            "dirs": o.dirs,
            "others": o.others,
            "deleted": o.deleted,
            "verified": o.verified,
            "errors": o.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "planned": o.planned,
        }))?;
    } else {
        for p in &o.planned {
            outln!("would {} {} ({})", p.action, p.path, human_bytes(p.bytes));
        }
        let verb = if args.dry_run {
            "would restore"
        } else {
            "restored"
        };
        out.info(&format!(
            "{verb} snapshot {} into {}: {} files written ({}), {} unchanged, {} dirs, {} other entries, {} deleted{}",
            id.short(),
            match &args.to_docker_volume {
                Some(v) => format!("Docker volume {v}"),
                None => target.display().to_string(),
            },
            o.files_written,
            human_bytes(o.bytes_written),
            o.files_unchanged,
            o.dirs,
            o.others,
            o.deleted,
            if args.verify { format!(", {} verified", o.verified) } else { String::new() }
        ));
    }
    if o.errors.is_empty() {
        Ok(0)
    } else {
        eprintln!(
            "error: {} path(s) could not be restored (listed above)",
            o.errors.len()
        );
        Ok(1)
    }
}
