//! `/diff?a=ID&b=ID`: what changed between two snapshots, through the
//! library's diff (equal subtrees are skipped unread, as `cairn diff` does).

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::response::Html;
use cairn_repo::ops::diff::{diff_trees, Change, ChangeKind, DiffSummary};
use cairn_repo::Id;

use crate::error::HttpError;
use crate::html::{esc, human_bytes, page, pager, time};
use crate::pages::browse::browse_link;
use crate::params::Params;
use crate::state::App;

/// Changes listed per page.
const PER_PAGE: usize = 2000;

/// `GET /diff?a=ID&b=ID&from=N`.
pub async fn handler(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> Result<Html<String>, HttpError> {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    let (a, b) = (params.need("a")?.to_string(), params.need("b")?.to_string());
    let from = params.number("from", 0)?;
    let slot = app.heavy_slot()?;
    app.blocking(move |app| {
        let _slot = slot;
        let (id_a, snap_a) = app.find(&a)?;
        let (id_b, snap_b) = app.find(&b)?;
        let changes = diff_trees(&app.repo, &snap_a.tree, &snap_b.tree)?;
        let mut body = format!(
            r#"<h1>Diff</h1><p>A <a href="{}">{}</a> ({} UTC, {}) → B <a href="{}">{}</a> ({} UTC, {})</p>"#,
            browse_link(&id_a, b""),
            id_a.short(),
            time(&snap_a.timestamp()),
            esc(&snap_a.volume),
            browse_link(&id_b, b""),
            id_b.short(),
            time(&snap_b.timestamp()),
            esc(&snap_b.volume),
        );
        body.push_str(&summary(&DiffSummary::of(&changes)));
        body.push_str(&table(&changes, (&id_a, &id_b), from));
        Ok(Html(page("Diff", &body)))
    })
    .await
}

fn summary(s: &DiffSummary) -> String {
    format!(
        r#"<p class="summary"><span class="added">{} added ({})</span> · <span class="removed">{} removed ({})</span> · <span class="modified">{} modified ({} new)</span> · {} metadata only · {} changed type</p>"#,
        s.added,
        human_bytes(s.bytes_added),
        s.removed,
        human_bytes(s.bytes_removed),
        s.modified,
        human_bytes(s.bytes_modified),
        s.metadata,
        s.type_changed
    )
}

fn table(changes: &[Change], (a, b): (&Id, &Id), from: usize) -> String {
    if changes.is_empty() {
        return "<p>The snapshots are identical.</p>".into();
    }
    let link = |f: usize| format!("/diff?a={}&b={}&from={f}", a.to_hex(), b.to_hex());
    let nav = pager(changes.len(), from, PER_PAGE, &link);
    let mut out = format!(
        r#"{nav}<table class="list diff"><thead><tr><th></th><th>path</th><th class="num">bytes</th></tr></thead><tbody>"#
    );
    for c in changes.iter().skip(from).take(PER_PAGE) {
        let (class, side) = match c.kind {
            ChangeKind::Added => ("added", b),
            ChangeKind::Removed => ("removed", a),
            ChangeKind::Modified => ("modified", b),
            ChangeKind::Metadata | ChangeKind::Type => ("meta", b),
        };
        // The library gives paths as text; one that was not UTF-8 (shown
        // with U+FFFD) cannot be linked back to its entry.
        let trimmed = c.path.trim_end_matches('/');
        let path = if c.path.contains('\u{fffd}') {
            esc(&c.path)
        } else {
            format!(
                r#"<a href="{}">{}</a>"#,
                esc(&browse_link(side, trimmed.as_bytes())),
                esc(&c.path)
            )
        };
        let _ = write!(
            out,
            r#"<tr class="{class}"><td><code>{}</code></td><td>{path}</td><td class="num">{}</td></tr>"#,
            c.kind.marker(),
            if c.bytes > 0 {
                human_bytes(c.bytes)
            } else {
                String::new()
            }
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&nav);
    out
}
