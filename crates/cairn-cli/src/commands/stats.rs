//! `cairn stats`: what the repository holds, how well it deduplicates, and
//! what each snapshot alone holds (scoping rules in cairn-repo's ops::stats).

use anyhow::Result;
use cairn_repo::ops::stats;

use crate::args::{Cli, StatsArgs};
use crate::location;
use crate::output::{human_bytes, Out};

pub fn stats(cli: &Cli, out: &Out, args: &StatsArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let r = stats::stats(&repo, &args.snapshots, &args.filter.filter())?;
    if out.json {
        out.json(&r)?;
        return Ok(0);
    }
    let scope = match r.scope {
        "snapshots" => "data the selected snapshots reference",
        _ => "the whole repository",
    };
    outln!("scope:              {scope}");
    outln!("snapshots:          {}", r.snapshots);
    outln!("logical size:       {}", human_bytes(r.logical_bytes));
    outln!("unique data:        {}", human_bytes(r.unique_bytes));
    outln!("stored size:        {}", human_bytes(r.stored_bytes));
    outln!(
        "chunks:             {} (average {})",
        r.chunk_count,
        human_bytes(r.average_chunk_bytes)
    );
    outln!("dedup ratio:        {:.2}", r.dedup_ratio);
    outln!("compression ratio:  {:.2}", r.compression_ratio);
    outln!("overall:            {:.2}x", r.total_ratio);
    if r.per_snapshot.is_empty() {
        return Ok(0);
    }
    outln!();
    outln!(
        "{:<8}  {:<19}  {:<12}  {:>10}  {:>13}  {:>13}",
        "id",
        "time (UTC)",
        "volume",
        "size",
        "unique raw",
        "unique stored"
    );
    for u in &r.per_snapshot {
        let time = chrono::DateTime::parse_from_rfc3339(&u.time)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| u.time.clone());
        outln!(
            "{:<8}  {:<19}  {:<12}  {:>10}  {:>13}  {:>13}",
            u.id.short(),
            time,
            u.volume,
            human_bytes(u.logical_bytes),
            human_bytes(u.unique_raw_bytes),
            human_bytes(u.unique_stored_bytes)
        );
    }
    out.info("unique: data no other snapshot references (what forget + prune would free)");
    Ok(0)
}
