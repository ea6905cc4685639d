//! `cairn prune`, `cairn check` and `cairn repair index`.

use anyhow::{bail, Result};
use cairn_repo::ops::check::{check_with as run_check, CheckOptions};
use cairn_repo::ops::prune::{prune_with as run_prune, PruneOptions, PruneReport};
use cairn_repo::ops::repair::{repair_index, repair_snapshots, RepairSnapshotsOptions};
use cairn_repo::Repository;

use crate::args::{CheckArgs, Cli, PruneArgs, RepairArgs, RepairWhat};
use crate::location;
use crate::output::{human_bytes, Out};

/// `prune --max-unused` when not given (also used by `forget --prune`).
pub const DEFAULT_MAX_UNUSED: f64 = 5.0;

/// `10`, `10%` or `12.5` as a percentage in 0..=100.
pub fn percent(s: &str) -> Result<f64> {
    let v: f64 = match s.trim().trim_end_matches('%').parse() {
        Ok(v) => v,
        Err(_) => bail!("invalid percentage {s:?}: expected a number from 0 to 100"),
    };
    if !(0.0..=100.0).contains(&v) {
        bail!("invalid percentage {s:?}: expected a number from 0 to 100");
    }
    Ok(v)
}

pub fn prune(cli: &Cli, out: &Out, args: &PruneArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let opts = PruneOptions {
        max_unused_percent: percent(&args.max_unused)?,
        dry_run: args.dry_run,
        segment_entries: cairn_repo::ops::prune::SEGMENT_ENTRIES,
    };
    prune_and_report(&repo, out, &opts)
}

/// Prune and print the report (shared with `forget --prune`).
pub fn prune_and_report(repo: &Repository, out: &Out, opts: &PruneOptions) -> Result<u8> {
    crate::signals::install();
    let progress = out.bar(None, "prune");
    let r = run_prune(repo, opts, &progress);
    progress.finish();
    let r = r?;
    if out.json {
        out.json(&serde_json::json!({ "dry_run": opts.dry_run, "report": r }))?;
    } else {
        print_prune(out, opts.dry_run, &r);
    }
    Ok(0)
}

pub fn print_prune(out: &Out, dry_run: bool, r: &PruneReport) {
    out.info(&format!(
        "blobs: {} used, {} unused; packs: {} kept, {} to repack ({} blobs, {}), {} unused",
        r.blobs_used,
        r.blobs_unused,
        r.packs_kept,
        r.packs_repacked,
        r.blobs_repacked,
        human_bytes(r.bytes_repacked),
        r.packs_unused
    ));
    if dry_run {
        out.info("dry run: nothing was changed");
        return;
    }
    out.info(&format!(
        "deleted {} packs, freed {}{}",
        r.packs_deleted,
        human_bytes(r.bytes_freed),
        if r.packs_resurrected > 0 {
            format!(
                "; kept {} packs a newer snapshot needs",
                r.packs_resurrected
            )
        } else {
            String::new()
        }
    ));
    if r.packs_deferred > 0 {
        out.info(&format!(
            "{} packs will be deleted by the next prune once {} running backup(s) finish",
            r.packs_deferred, r.blocking_backups
        ));
    }
}

pub fn check(cli: &Cli, out: &Out, args: &CheckArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let read = match (&args.read_data_subset, args.read_data) {
        (Some(p), _) => percent(p)?,
        (None, true) => 100.0,
        (None, false) => 0.0,
    };
    crate::signals::install();
    let progress = out.bar(None, "check");
    let r = run_check(
        &repo,
        &CheckOptions {
            read_data_percent: read,
        },
        &progress,
    );
    progress.finish();
    let r = r?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for e in &r.errors {
        eprintln!("error: {e}");
    }
    for d in &r.damaged {
        let shown: Vec<&str> = d.paths.iter().take(20).map(String::as_str).collect();
        let more = d.paths.len().saturating_sub(shown.len());
        eprintln!(
            "error: pack {} {}; needed by snapshot(s) {} for: {}{}",
            d.pack,
            d.reason,
            if d.snapshots.is_empty() {
                "(none)".to_string()
            } else {
                d.snapshots.join(", ")
            },
            if shown.is_empty() {
                "(no file)".to_string()
            } else {
                shown.join(", ")
            },
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    if out.json {
        out.json(&serde_json::json!({ "ok": r.ok(), "report": r }))?;
    } else {
        out.info(&format!(
            "checked {} snapshots, {} trees, {} packs ({} read, {} blobs verified): {}",
            r.snapshots,
            r.trees,
            r.packs,
            r.packs_read,
            r.blobs_read,
            if r.ok() {
                "no errors".to_string()
            } else {
                format!("{} problem(s)", r.errors.len() + r.damaged.len())
            }
        ));
    }
    Ok(if r.ok() { 0 } else { 1 })
}

pub fn repair(cli: &Cli, out: &Out, args: &RepairArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    match args.what {
        RepairWhat::Index => repair_index_cmd(&repo, out),
        RepairWhat::Snapshots { dry_run } => repair_snapshots_cmd(&repo, out, dry_run),
    }
}

fn repair_index_cmd(repo: &Repository, out: &Out) -> Result<u8> {
    let r = repair_index(repo)?;
    for u in &r.unreadable {
        eprintln!("warning: {u} (left out of the index)");
    }
    if out.json {
        out.json(&r)?;
    } else {
        out.info(&format!(
            "rebuilt the index from {} packs ({} blobs), replacing {} segment(s)",
            r.packs, r.blobs, r.segments_replaced
        ));
    }
    Ok(0)
}

fn repair_snapshots_cmd(repo: &Repository, out: &Out, dry_run: bool) -> Result<u8> {
    let r = repair_snapshots(repo, &RepairSnapshotsOptions { dry_run })?;
    if out.json {
        out.json(&serde_json::json!({ "dry_run": dry_run, "report": r }))?;
        return Ok(0);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for d in &r.removed {
        outln!("{verb} snapshot {}: {}", d.id.short(), d.reason);
    }
    for s in &r.repaired {
        let to = s
            .replacement
            .map_or_else(|| "a new snapshot".to_string(), |id| id.short());
        let verb = if dry_run { "would replace" } else { "replaced" };
        outln!("{verb} snapshot {} by {to}, without:", s.original.short());
        for p in &s.dropped {
            outln!("  {p}");
        }
    }
    out.info(&format!(
        "{} snapshot(s) whole, {} {}, {} {}",
        r.intact,
        r.repaired.len(),
        if dry_run { "to replace" } else { "replaced" },
        r.removed.len(),
        if dry_run { "to remove" } else { "removed" },
    ));
    Ok(0)
}
