//! `/volumes/{name}`: one volume's snapshots on a time line, a chart of
//! their logical size and of what each added, and a form to diff two.

use std::fmt::Write as _;

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use cairn_chart::{Axis, Chart, Series, Side, Style};
use cairn_repo::{Id, Snapshot};

use crate::error::HttpError;
use crate::html::{esc, human_bytes, page, pager, time, time_ticks, url_segment, x_time};
use crate::pages::volumes::by_volume;
use crate::params::Params;
use crate::state::App;

/// Snapshots listed per page (the chart always shows them all).
const PER_PAGE: usize = 100;

/// `GET /volumes/{name}?from=N`.
pub async fn handler(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Html<String>, HttpError> {
    let from = Params::parse(q.unwrap_or_default().as_bytes()).number("from", 0)?;
    app.blocking(move |app| {
        let all = app.snapshots()?;
        let volumes = by_volume(&all);
        let v = volumes
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| HttpError::not_found(format!("no volume {name:?}")))?;
        Ok(Html(render(&name, &v.snapshots, from)))
    })
    .await
}

fn render(name: &str, snaps: &[&(Id, Snapshot)], from: usize) -> String {
    let mut body = format!(
        r#"<h1>Volume {}</h1><p>{} snapshot(s) from {} to {} UTC</p>"#,
        esc(name),
        snaps.len(),
        time(&snaps[0].1.timestamp()),
        time(&snaps[snaps.len() - 1].1.timestamp())
    );
    body.push_str(&chart(name, snaps));
    body.push_str(
        r#"<form method="get" action="/diff"><p>Pick an older snapshot (A) and a newer one (B), then <button type="submit">Diff A → B</button></p>"#,
    );
    let link = |f: usize| format!("/volumes/{}?from={f}", url_segment(name));
    let nav = pager(snaps.len(), from, PER_PAGE, &link);
    body.push_str(&nav);
    body.push_str(
        r#"<table class="list"><thead><tr><th>A</th><th>B</th><th>time (UTC)</th><th>id</th><th>host</th><th>tags</th>
<th class="num">size</th><th class="num">added</th><th class="num">new / changed files</th></tr></thead><tbody>"#,
    );
    // Newest first; by default B is the newest and A the one before it.
    for (i, (id, s)) in snaps.iter().rev().enumerate().skip(from).take(PER_PAGE) {
        let hex = id.to_hex();
        let check = |pick: usize| if i == pick { " checked" } else { "" };
        let _ = write!(
            body,
            r#"<tr><td><input type="radio" name="a" value="{hex}"{a}></td><td><input type="radio" name="b" value="{hex}"{b}></td>
<td>{t}</td><td><a href="/snapshots/{hex}">{short}</a></td><td>{host}</td><td>{tags}</td>
<td class="num">{size}</td><td class="num">{added}</td><td class="num">{new} / {changed}</td></tr>"#,
            a = check(1),
            b = check(0),
            t = time(&s.timestamp()),
            short = id.short(),
            host = esc(&s.host),
            tags = s
                .tags
                .iter()
                .map(|t| format!(r#"<span class="tag">{}</span>"#, esc(t)))
                .collect::<String>(),
            size = human_bytes(s.summary.total_bytes),
            added = human_bytes(s.summary.bytes_added_stored),
            new = s.summary.files_new,
            changed = s.summary.files_changed,
        );
    }
    body.push_str("</tbody></table></form>");
    body.push_str(&nav);
    page(&format!("Volume {name}"), &body)
}

fn bytes(v: f64) -> String {
    human_bytes(v as u64)
}

/// Logical size (line, left axis) and stored bytes added (bars, right
/// axis) per snapshot, against time.
fn chart(name: &str, snaps: &[&(Id, Snapshot)]) -> String {
    let x = x_time;
    let mut c = Chart::new(
        &format!("{name}: size and bytes added per snapshot"),
        "time (UTC)",
    );
    c.x_format = time_ticks(x(&snaps[snaps.len() - 1].1) - x(&snaps[0].1));
    c.left = Axis {
        label: "logical size".into(),
        format: bytes,
    };
    c.right = Some(Axis {
        label: "stored bytes added".into(),
        format: bytes,
    });
    c.series.push(Series {
        label: "logical size".into(),
        color: "#1f77b4",
        style: Style::Line,
        side: Side::Left,
        points: snaps
            .iter()
            .map(|(_, s)| (x(s), s.summary.total_bytes as f64))
            .collect(),
    });
    c.series.push(Series {
        label: "stored bytes added (right axis)".into(),
        color: "#ff7f0e",
        style: Style::Bars,
        side: Side::Right,
        points: snaps
            .iter()
            .map(|(_, s)| (x(s), s.summary.bytes_added_stored as f64))
            .collect(),
    });
    format!(r#"<figure>{}</figure>"#, c.render())
}
