//! `cairn diff`: what changed between two snapshots.

use anyhow::Result;
use cairn_repo::ops::diff::{diff_trees, DiffSummary};
use serde_json::json;

use crate::args::{Cli, DiffArgs};
use crate::location;
use crate::output::{human_bytes, Out};

pub fn diff(cli: &Cli, out: &Out, args: &DiffArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let filter = args.filter.filter();
    let (id_a, a) = repo.find_snapshot(&args.first, &filter)?;
    let (id_b, b) = repo.find_snapshot(&args.second, &filter)?;
    let changes = diff_trees(&repo, &a.tree, &b.tree)?;
    let summary = DiffSummary::of(&changes);
    if out.json {
        out.json(&json!({
            "first": id_a.to_hex(),
            "second": id_b.to_hex(),
            "changes": changes,
            "summary": summary,
        }))?;
        return Ok(0);
    }
    for c in &changes {
        outln!("{}  {}", c.kind.marker(), c.path);
    }
    out.info(&format!(
        "{} -> {}: {} added ({}), {} removed ({}), {} modified ({} new), {} metadata only, {} changed type",
        id_a.short(),
        id_b.short(),
        summary.added,
        human_bytes(summary.bytes_added),
        summary.removed,
        human_bytes(summary.bytes_removed),
        summary.modified,
        human_bytes(summary.bytes_modified),
        summary.metadata,
        summary.type_changed
    ));
    Ok(0)
}
