//! `/snapshots/{id}?path=P`: a directory of a snapshot, a page of entries
//! at a time, or one entry's attributes.

use std::fmt::Write as _;

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use cairn_repo::{Id, Node, NodeKind, Snapshot};

use crate::error::HttpError;
use crate::html::{
    esc, human_bytes, mode_string, name_html, node_time, page, pager, time, url_bytes, url_segment,
};
use crate::params::{child, components, safe_path, Params};
use crate::state::App;

/// Entries per page: a directory of 100,000 entries is shown in pages.
const PER_PAGE: usize = 1000;

/// `GET /snapshots/{id}?path=P&from=N`.
pub async fn handler(
    State(app): State<App>,
    Path(spec): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Html<String>, HttpError> {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    let path = safe_path(params.bytes("path").unwrap_or_default())?;
    let from = params.number("from", 0)?;
    app.blocking(move |app| {
        let (id, snap) = app.find(&spec)?;
        let node = resolve(app, &id, &snap, &path)?;
        let mut body = header(app, &id, &snap, &path, &node);
        match node.kind {
            NodeKind::Dir => body.push_str(&listing(app, &id, &path, &node, from)?),
            _ => body.push_str(&attributes(&path, &node)),
        }
        let title = format!("{} {}", id.short(), String::from_utf8_lossy(&path));
        Ok(Html(page(&title, &body)))
    })
    .await
}

/// Follow a checked path from the snapshot's root, through the tree cache.
pub fn resolve(app: &App, id: &Id, snap: &Snapshot, path: &[u8]) -> Result<Node, HttpError> {
    // The root as a directory node with the attributes the backup recorded.
    let root = snap.root.clone().unwrap_or_default();
    let mut node = Node {
        kind: NodeKind::Dir,
        subtree: Some(snap.tree),
        mode: if snap.root.is_some() {
            root.mode
        } else {
            0o755
        },
        uid: root.uid,
        gid: root.gid,
        mtime: cairn_repo::format::tree::Timestamp {
            sec: root.mtime_sec,
            nsec: root.mtime_nsec,
        },
        ..Node::default()
    };
    for part in components(path) {
        let tree = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(t)) => app.tree(&t)?,
            _ => return Err(no_such(id, path)),
        };
        node = tree.find(part).cloned().ok_or_else(|| no_such(id, path))?;
    }
    Ok(node)
}

fn no_such(id: &Id, path: &[u8]) -> HttpError {
    HttpError::not_found(format!(
        "{}: no such path in snapshot {}",
        String::from_utf8_lossy(path),
        id.short()
    ))
}

/// Link to a path of a snapshot.
pub fn browse_link(id: &Id, path: &[u8]) -> String {
    if path.is_empty() {
        format!("/snapshots/{}", id.to_hex())
    } else {
        format!("/snapshots/{}?path={}", id.to_hex(), url_bytes(path))
    }
}

fn header(app: &App, id: &Id, snap: &Snapshot, path: &[u8], node: &Node) -> String {
    let mut crumbs = format!(r#"<a href="{}">{}</a>"#, browse_link(id, b""), id.short());
    let mut so_far: Vec<u8> = Vec::new();
    for part in components(path) {
        so_far = child(&so_far, part);
        let _ = write!(
            crumbs,
            r#" / <a href="{}">{}</a>"#,
            esc(&browse_link(id, &so_far)),
            name_html(part)
        );
    }
    let mut out = format!(
        r#"<h1 class="crumbs">{crumbs}</h1>
<p>volume <a href="/volumes/{vlink}">{volume}</a> · {t} UTC · host {host}{tags}</p><p class="actions">"#,
        vlink = url_segment(&snap.volume),
        volume = esc(&snap.volume),
        t = time(&snap.timestamp()),
        host = esc(&snap.host),
        tags = snap
            .tags
            .iter()
            .map(|t| format!(r#" <span class="tag">{}</span>"#, esc(t)))
            .collect::<String>(),
    );
    let q = url_bytes(path);
    let hex = id.to_hex();
    match node.kind {
        NodeKind::Dir => {
            let _ = write!(
                out,
                r#"<a class="button" href="/snapshots/{hex}/tar?path={q}">Download as tar</a> "#
            );
        }
        NodeKind::File => {
            let _ = write!(
                out,
                r#"<a class="button" href="/snapshots/{hex}/file?path={q}">Download</a> "#
            );
        }
        _ => {}
    }
    if app.opts.allow_restore {
        let _ = write!(
            out,
            r#"<a class="button" href="/restore?snapshot={hex}&amp;path={q}">Restore…</a>"#
        );
    }
    out.push_str("</p>");
    out
}

fn listing(app: &App, id: &Id, path: &[u8], node: &Node, from: usize) -> Result<String, HttpError> {
    let Some(tree_id) = node.subtree else {
        return Ok("<p>(empty)</p>".into());
    };
    let tree = app.tree(&tree_id)?;
    let link = |f: usize| {
        format!(
            "{}{}from={f}",
            browse_link(id, path),
            if path.is_empty() { "?" } else { "&" }
        )
    };
    let nav = pager(tree.nodes.len(), from, PER_PAGE, &link);
    let mut out = format!(
        r#"<p class="muted">{} entries</p>{nav}<table class="list"><thead><tr><th>name</th><th>mode</th><th>owner</th><th class="num">size</th><th>modified (UTC)</th><th></th></tr></thead><tbody>"#,
        tree.nodes.len()
    );
    for n in tree.nodes.iter().skip(from).take(PER_PAGE) {
        let p = child(path, &n.name);
        let slash = if n.kind == NodeKind::Dir { "/" } else { "" };
        let get = match n.kind {
            NodeKind::File => format!(
                r#"<a href="/snapshots/{}/file?path={}">download</a>"#,
                id.to_hex(),
                url_bytes(&p)
            ),
            NodeKind::Dir => format!(
                r#"<a href="/snapshots/{}/tar?path={}">tar</a>"#,
                id.to_hex(),
                url_bytes(&p)
            ),
            _ => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr><td class="name"><a href="{}">{}{slash}</a></td><td><code>{}</code></td><td>{}:{}</td><td class="num">{}</td><td>{}</td><td>{get}</td></tr>"#,
            esc(&browse_link(id, &p)),
            name_html(&n.name),
            mode_string(n),
            n.uid,
            n.gid,
            if n.kind == NodeKind::File {
                human_bytes(n.size)
            } else {
                String::new()
            },
            node_time(&n.mtime).get(..19).unwrap_or_default(),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&nav);
    Ok(out)
}

fn attributes(path: &[u8], n: &Node) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("path", name_html(path)),
        ("type", format!("{:?}", n.kind).to_lowercase()),
        (
            "mode",
            format!("<code>{}</code> ({:o})", mode_string(n), n.mode),
        ),
        ("owner", format!("uid {} gid {}", n.uid, n.gid)),
        (
            "size",
            format!("{} ({} bytes)", human_bytes(n.size), n.size),
        ),
        ("modified", format!("{} UTC", node_time(&n.mtime))),
        ("changed", format!("{} UTC", node_time(&n.ctime))),
        ("links", n.nlink.to_string()),
        ("inode", format!("{} on device {:#x}", n.inode, n.dev)),
        ("chunks", n.content.len().to_string()),
    ];
    if n.kind == NodeKind::Symlink {
        rows.push(("target", name_html(&n.target)));
    }
    if matches!(n.kind, NodeKind::CharDev | NodeKind::BlockDev) {
        rows.push(("device", format!("{:#x}", n.rdev)));
    }
    for (k, v) in &n.xattrs {
        let shown: String = hex::encode(&v[..v.len().min(64)]);
        rows.push(("xattr", format!("{} = <code>{shown}</code>", name_html(k))));
    }
    let mut out = String::from(r#"<table class="attrs">"#);
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    out.push_str("</table>");
    out
}
