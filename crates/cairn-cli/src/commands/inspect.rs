//! `cairn snapshots`, `cairn ls` and `cairn cat`: read-only views.

use anyhow::{bail, Result};
use cairn_repo::ops::walk::{walk_paths, Descend};
use cairn_repo::{Id, Node, NodeKind, Repository, Snapshot};
use serde_json::{json, Value};

use crate::args::{CatArgs, Cli, FilterArgs, LsArgs};
use crate::location;
use crate::output::{human_bytes, Out};

/// A snapshot as `snapshots --json` and `cat snapshot` show it.
pub fn snapshot_json(id: &Id, s: &Snapshot) -> Value {
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": s.time,
        "host": s.host,
        "volume": s.volume,
        "tags": s.tags,
        "paths": s.paths,
        "tree": s.tree,
        "parent": s.parent,
        "root": s.root,
        "size": s.summary.total_bytes,
        "summary": s.summary,
        "program": s.program,
        "docker": s.docker,
    })
}

pub fn snapshots(cli: &Cli, out: &Out, args: &FilterArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let filter = args.filter();
    let all = repo.snapshot_list()?;
    let all_damaged = all.damaged.clone();
    for d in &all.damaged {
        eprintln!(
            "warning: snapshot {} is damaged ({}); remove it with `cairn forget {}` or run `cairn repair snapshots`",
            d.id.short(),
            d.reason,
            d.id.short()
        );
    }
    let list: Vec<(Id, Snapshot)> = all
        .snapshots
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    if out.json {
        let rows: Vec<_> = list.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        let damaged: Vec<_> = all_damaged
            .iter()
            .map(|d| json!({"id": d.id, "reason": d.reason}))
            .collect();
        out.json(&json!({ "snapshots": rows, "damaged": damaged }))?;
        return Ok(0);
    }
    outln!(
        "{:<8}  {:<19}  {:<12}  {:<12}  {:<10}  {:>10}  paths",
        "id",
        "time",
        "host",
        "volume",
        "tags",
        "size"
    );
    for (id, s) in &list {
        let time = s.timestamp().format("%Y-%m-%d %H:%M:%S").to_string();
        let paths: Vec<String> = s.paths.iter().map(|p| p.display().to_string()).collect();
        outln!(
            "{:<8}  {:<19}  {:<12}  {:<12}  {:<10}  {:>10}  {}",
            id.short(),
            time,
            s.host,
            s.volume,
            s.tags.join(","),
            human_bytes(s.summary.total_bytes),
            paths.join(" ")
        );
    }
    out.info(&format!("{} snapshot(s)", list.len()));
    Ok(0)
}

/// Split `SNAP:SUBPATH`.
pub fn split_spec(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

fn kind_char(k: NodeKind) -> char {
    match k {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDev => 'c',
        NodeKind::BlockDev => 'b',
        NodeKind::Socket => 's',
    }
}

fn mode_string(n: &Node) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind_char(n.kind));
    for shift in [6, 3, 0] {
        let bits = (n.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn node_json(path: &str, n: &Node) -> Value {
    let mut v = json!({
        "path": path,
        "type": n.kind,
        "mode": format!("{:o}", n.mode),
        "uid": n.uid,
        "gid": n.gid,
        "size": n.size,
        "mtime": format!("{}.{:09}", n.mtime.sec, n.mtime.nsec),
    });
    if n.kind == NodeKind::Symlink {
        v["target"] = json!(String::from_utf8_lossy(&n.target));
    }
    v
}

pub fn ls(cli: &Cli, out: &Out, args: &LsArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let (spec, inline_path) = split_spec(&args.snapshot);
    let sub = args.path.as_deref().unwrap_or(inline_path);
    let (id, snap) = repo.find_snapshot(spec, &args.filter.filter())?;
    let start = repo.resolve_path(&id, &snap, sub.as_bytes())?;
    let prefix = sub.trim_matches('/').to_string();
    let mut rows = Vec::new();
    if start.kind == NodeKind::Dir {
        collect(&repo, &start, &prefix, &mut rows)?;
    } else {
        rows.push((prefix, start));
    }
    if out.json {
        let entries: Vec<_> = rows.iter().map(|(p, n)| node_json(p, n)).collect();
        out.json(&json!({ "snapshot_id": id.to_hex(), "entries": entries }))?;
        return Ok(0);
    }
    for (path, n) in rows {
        if args.long {
            let time = chrono::DateTime::from_timestamp(n.mtime.sec, n.mtime.nsec)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let extra = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.target))
            } else {
                String::new()
            };
            outln!(
                "{} {:>5} {:>5} {:>12} {} {path}{extra}",
                mode_string(&n),
                n.uid,
                n.gid,
                n.size,
                time
            );
        } else {
            outln!("{path}");
        }
    }
    Ok(0)
}

/// Every node below `dir`, depth first, with paths relative to the root.
fn collect(
    repo: &Repository,
    dir: &Node,
    prefix: &str,
    rows: &mut Vec<(String, Node)>,
) -> Result<()> {
    let Some(tree_id) = dir.subtree else {
        return Ok(());
    };
    let mut failed = None;
    walk_paths(
        repo,
        &tree_id,
        prefix,
        &mut |path, node| {
            rows.push((path.to_string(), node.clone()));
            Ok(Descend::Yes)
        },
        &mut |_, e| {
            failed.get_or_insert(e);
        },
    )?;
    failed.map_or(Ok(()), |e| Err(e.into()))
}

pub fn cat(cli: &Cli, out: &Out, args: &CatArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let value = match (args.kind.as_str(), args.id.as_deref()) {
        ("config", _) => serde_json::to_value(repo.config())?,
        ("snapshot", Some(spec)) => {
            let (id, s) = repo.find_snapshot(spec, &cairn_repo::Filter::default())?;
            snapshot_json(&id, &s)
        }
        ("tree", Some(hex)) => {
            let id: Id = hex.parse()?;
            let tree = repo.load_tree(&id)?;
            json!({ "id": id, "nodes": tree.nodes })
        }
        (kind, None) => bail!("cat {kind} needs an id"),
        (kind, Some(_)) => bail!("unknown object kind {kind}"),
    };
    // Every object prints as JSON, with or without --json.
    out.json(&value)?;
    Ok(0)
}
