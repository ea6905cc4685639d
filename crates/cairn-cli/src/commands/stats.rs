//! `cairn stats`: what the repository holds, how well it deduplicates, and
//! what each snapshot alone holds.
//!
//! Scope of the totals: with no SNAP and no filter they describe the whole
//! repository (every indexed blob, including data no snapshot uses any more
//! until a prune). With SNAP arguments or `--volume/--host/--tag` they
//! describe the distinct data and trees the selected snapshots reference,
//! found by walking their trees, so the ratios are those of that selection.

use anyhow::Result;
use cairn_repo::format::pack::BlobKind;
use cairn_repo::ops::stats::{self, Sizes};
use serde_json::{json, Value};

use crate::args::{Cli, StatsArgs};
use crate::location;
use crate::output::{human_bytes, Out};

pub fn stats(cli: &Cli, out: &Out, args: &StatsArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let filter = args.filter.filter();
    let all = repo.snapshots()?;
    let chosen: Vec<usize> = if args.snapshots.is_empty() {
        (0..all.len())
            .filter(|&n| filter.matches(&all[n].1))
            .collect()
    } else {
        let mut chosen = Vec::new();
        for spec in &args.snapshots {
            let id = cairn_repo::format::snapshot::select(&all, spec, &filter)?.0;
            let n = all
                .iter()
                .position(|(i, _)| *i == id)
                .expect("selected from all");
            if !chosen.contains(&n) {
                chosen.push(n);
            }
        }
        chosen
    };
    let narrowed = !args.snapshots.is_empty()
        || filter.volume.is_some()
        || filter.host.is_some()
        || !filter.tags.is_empty();

    let logical: u64 = chosen.iter().map(|&n| all[n].1.summary.total_bytes).sum();
    let (data, trees) = if narrowed {
        let roots: Vec<_> = chosen.iter().map(|&n| all[n].1.tree).collect();
        let r = stats::referenced(&repo, &roots)?;
        (r.data, r.trees)
    } else {
        let totals = |kind| -> Result<Sizes> {
            let t = repo.index().totals(kind)?;
            Ok(Sizes {
                count: t.count,
                raw: t.raw,
                stored: t.stored,
            })
        };
        (totals(BlobKind::Data)?, totals(BlobKind::Tree)?)
    };
    let unique = stats::exclusive(&repo, &all, &chosen)?;

    let stored = data.stored + trees.stored;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_snapshot: Vec<Value> = chosen
        .iter()
        .zip(&unique)
        .map(|(&n, u)| {
            let (id, s) = &all[n];
            json!({
                "id": id.to_hex(),
                "time": s.time,
                "volume": s.volume,
                "logical_bytes": s.summary.total_bytes,
                "unique_stored_bytes": u.stored,
                "unique_raw_bytes": u.raw,
            })
        })
        .collect();
    let doc = json!({
        "scope": if narrowed { "snapshots" } else { "repository" },
        "snapshots": chosen.len(),
        "logical_bytes": logical,
        "unique_bytes": data.raw,
        "stored_bytes": stored,
        "tree_bytes": trees.stored,
        "chunk_count": data.count,
        "average_chunk_bytes": data.raw.checked_div(data.count).unwrap_or(0),
        "dedup_ratio": ratio(logical, data.raw),
        "compression_ratio": ratio(data.raw, data.stored),
        "total_ratio": ratio(logical, stored),
        "per_snapshot": per_snapshot,
    });
    if out.json {
        out.json(&doc)?;
        return Ok(0);
    }
    println!(
        "scope:              {}",
        if narrowed {
            "data the selected snapshots reference"
        } else {
            "the whole repository"
        }
    );
    println!("snapshots:          {}", chosen.len());
    println!("logical size:       {}", human_bytes(logical));
    println!("unique data:        {}", human_bytes(data.raw));
    println!("stored size:        {}", human_bytes(stored));
    println!(
        "chunks:             {} (average {})",
        data.count,
        human_bytes(doc["average_chunk_bytes"].as_u64().unwrap_or(0))
    );
    println!("dedup ratio:        {:.2}", ratio(logical, data.raw));
    println!("compression ratio:  {:.2}", ratio(data.raw, data.stored));
    println!("overall:            {:.2}x", ratio(logical, stored));
    if !chosen.is_empty() {
        println!();
        println!(
            "{:<8}  {:<19}  {:<12}  {:>10}  {:>13}  {:>13}",
            "id", "time (UTC)", "volume", "size", "unique raw", "unique stored"
        );
        for (&n, u) in chosen.iter().zip(&unique) {
            let (id, s) = &all[n];
            println!(
                "{:<8}  {:<19}  {:<12}  {:>10}  {:>13}  {:>13}",
                id.short(),
                s.timestamp().format("%Y-%m-%d %H:%M:%S"),
                s.volume,
                human_bytes(s.summary.total_bytes),
                human_bytes(u.raw),
                human_bytes(u.stored)
            );
        }
        out.info("unique: data no other snapshot references (what forget + prune would free)");
    }
    Ok(0)
}
