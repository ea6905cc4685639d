//! `cairn stats`: what the repository holds and how well it deduplicates.

use anyhow::Result;
use cairn_repo::pack::BlobKind;
use serde_json::json;

use crate::args::{Cli, StatsArgs};
use crate::location;
use crate::output::{human_bytes, Out};

pub fn stats(cli: &Cli, out: &Out, args: &StatsArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let filter = args.filter.filter();
    let all = repo.snapshots()?;
    let chosen: Vec<_> = if args.snapshots.is_empty() {
        all.iter()
            .filter(|(_, s)| filter.matches(s))
            .cloned()
            .collect()
    } else {
        args.snapshots
            .iter()
            .map(|spec| cairn_repo::snapshot::select(&all, spec, &filter).cloned())
            .collect::<Result<_, _>>()?
    };
    let logical: u64 = chosen.iter().map(|(_, s)| s.summary.total_bytes).sum();
    let data = repo.index().totals(BlobKind::Data)?;
    let trees = repo.index().totals(BlobKind::Tree)?;
    let stored = data.stored + trees.stored;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let doc = json!({
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
    });
    if out.json {
        out.json(&doc)?;
        return Ok(0);
    }
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
    Ok(0)
}
