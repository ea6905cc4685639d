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
    let opts = RestoreOptions {
        target: args.target.clone(),
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
        delete: args.delete,
        verify: args.verify,
        dry_run: args.dry_run,
    };
    crate::signals::install();
    let progress = out.bar(Some(snap.summary.total_bytes), "restore");
    let result = engine::restore(&repo, &id, &snap, sub.as_bytes(), &opts, &progress);
    progress.finish();
    let o = result?;
    for e in &o.errors {
        eprintln!("error: {e}");
    }
    if out.json {
        out.json(&json!({
            "snapshot_id": id.to_hex(),
            "target": args.target,
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
            args.target.display(),
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
