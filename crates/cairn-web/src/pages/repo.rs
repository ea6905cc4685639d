//! `/repository`: totals, the dedup and compression charts, damage, the
//! last check, and the form that runs `check --read-data-subset`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use cairn_chart::{hbars, Axis, Chart, Series, Side, Style};
use cairn_repo::ops::check::{check, CheckOptions, CheckReport};
use cairn_repo::ops::stats::{repository_totals, StatsReport};
use cairn_repo::{Id, Snapshot};

use crate::auth::{Form, Session};
use crate::error::HttpError;
use crate::html::{esc, hidden, human_bytes, page, time_ticks, x_time};
use crate::jobs::{self, JobState, Kind};
use crate::state::App;

/// `GET /repository`.
pub async fn handler(
    State(app): State<App>,
    Extension(session): Extension<Session>,
) -> Result<Html<String>, HttpError> {
    app.blocking(move |app| {
        let all = app.snapshots()?;
        let totals = repository_totals(&app.repo, &all)?;
        let mut body = String::from("<h1>Repository</h1>");
        body.push_str(&totals_html(app, &totals));
        body.push_str(&charts(&totals, &all));
        body.push_str(&damage_html(app)?);
        body.push_str(&check_html(app, &session));
        Ok(Html(page("Repository", &body)))
    })
    .await
}

fn totals_html(app: &App, r: &StatsReport) -> String {
    let c = app.repo.config();
    let rows = [
        ("snapshots", r.snapshots.to_string()),
        ("logical size", human_bytes(r.logical_bytes)),
        ("unique data", human_bytes(r.unique_bytes)),
        ("stored", human_bytes(r.stored_bytes)),
        ("of which trees", human_bytes(r.tree_bytes)),
        (
            "chunks",
            format!(
                "{} (average {})",
                r.chunk_count,
                human_bytes(r.average_chunk_bytes)
            ),
        ),
        ("dedup ratio", format!("{:.2}", r.dedup_ratio)),
        ("compression ratio", format!("{:.2}", r.compression_ratio)),
        ("overall", format!("{:.2}×", r.total_ratio)),
        (
            "chunker",
            format!(
                "min {} / avg {} / max {}",
                human_bytes(c.chunker.min.into()),
                human_bytes(c.chunker.avg.into()),
                human_bytes(c.chunker.max.into())
            ),
        ),
        ("compression", c.compression.to_string()),
        (
            "encrypted",
            if app.repo.unlocked_slot().is_some() {
                "yes"
            } else {
                "no"
            }
            .to_string(),
        ),
    ];
    let mut out = String::from(r#"<table class="attrs">"#);
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    out.push_str("</table>");
    out
}

fn bytes(v: f64) -> String {
    human_bytes(v as u64)
}

/// What dedup and compression do to the data (as `cairn stats` and
/// `cairn bench` measure it), and how backed-up and stored bytes grew.
fn charts(r: &StatsReport, all: &[(Id, Snapshot)]) -> String {
    let bars = hbars(
        "logical → after dedup → after compression",
        &[
            ("logical (all snapshots)", r.logical_bytes, "#1f77b4"),
            ("unique (after dedup)", r.unique_bytes, "#2ca02c"),
            ("stored (after compression)", r.stored_bytes, "#ff7f0e"),
        ],
        human_bytes,
    );
    let mut c = Chart::new("bytes backed up and bytes stored over time", "time (UTC)");
    if let (Some(first), Some(last)) = (all.first(), all.last()) {
        c.x_format = time_ticks(x_time(&last.1) - x_time(&first.1));
    }
    c.left = Axis {
        label: "cumulative bytes".into(),
        format: bytes,
    };
    let (mut logical, mut stored) = (0.0, 0.0);
    let mut backed = Vec::with_capacity(all.len());
    let mut kept = Vec::with_capacity(all.len());
    for (_, s) in all {
        let x = x_time(s);
        logical += s.summary.total_bytes as f64;
        stored += s.summary.bytes_added_stored as f64;
        backed.push((x, logical));
        kept.push((x, stored));
    }
    for (label, color, points) in [
        ("backed up (logical)", "#1f77b4", backed),
        ("stored", "#ff7f0e", kept),
    ] {
        c.series.push(Series {
            label: label.into(),
            color,
            style: Style::Line,
            side: Side::Left,
            points,
        });
    }
    format!("<figure>{bars}</figure><figure>{}</figure>", c.render())
}

fn damage_html(app: &App) -> Result<String, HttpError> {
    let snaps = app.damaged()?;
    let segs = app.repo.damaged_segments();
    if snaps.is_empty() && segs.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from(r#"<h2>Damage</h2><ul class="error">"#);
    for d in snaps.iter() {
        let _ = write!(
            out,
            "<li>snapshot {}: {}</li>",
            d.id.short(),
            esc(&d.reason)
        );
    }
    for d in &segs {
        let _ = write!(
            out,
            "<li>index segment {}: {}</li>",
            d.id.short(),
            esc(&d.reason)
        );
    }
    out.push_str(
        "</ul><p>Run <code>cairn check</code> and see README: “When check reports damage”.</p>",
    );
    Ok(out)
}

fn check_html(app: &App, session: &Session) -> String {
    let mut out = String::from("<h2>Check</h2>");
    match app.jobs.last_finished(Kind::Check) {
        Some(job) => {
            let _ = write!(
                out,
                "<p>Last check, started {} UTC:</p>",
                crate::html::time(&job.started)
            );
            out.push_str(&jobs::state_html(&job));
        }
        None => out.push_str("<p>No check has run since the server started.</p>"),
    }
    let _ = write!(
        out,
        r#"<form method="post" action="/repository/check">{}
<label>Read and verify <input type="number" name="percent" min="0" max="100" step="any" value="10" size="4">% of the packs</label>
<button type="submit">Run check</button></form>"#,
        hidden("csrf", &session.csrf)
    );
    out
}

/// `POST /repository/check`: start a check job and show it.
pub async fn start_check(
    State(app): State<App>,
    Extension(Form(form)): Extension<Form>,
) -> Result<Response, HttpError> {
    let percent: f64 = match form.text("percent")?.map(str::trim) {
        None | Some("") => 10.0,
        Some(v) => v
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| HttpError::bad_request("percent: a number from 0 to 100"))?,
    };
    let slot = app.heavy_slot()?;
    let title = format!("check, reading {percent}% of the packs");
    let job = app.jobs.start(Kind::Check, title, 0);
    let repo = app.repo.clone();
    let id = job.id.clone();
    jobs::spawn(job, slot, move |_| {
        match check(
            &repo,
            &CheckOptions {
                read_data_percent: percent,
            },
        ) {
            Ok(r) => JobState::Done {
                ok: r.ok(),
                html: report_html(&r),
            },
            Err(e) => JobState::Failed(e.to_string()),
        }
    });
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

/// A check report as HTML (at most 100 lines of findings).
fn report_html(r: &CheckReport) -> String {
    let mut out = format!(
        r#"<p class="summary">checked {} snapshots, {} trees, {} packs ({} read, {} blobs verified): {}</p>"#,
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
    );
    let lines: Vec<String> = r
        .errors
        .iter()
        .map(|e| format!("error: {e}"))
        .chain(r.damaged.iter().map(|d| {
            format!(
                "error: pack {} {}; needed by snapshot(s) {}",
                d.pack.short(),
                d.reason,
                d.snapshots.join(", ")
            )
        }))
        .chain(r.warnings.iter().map(|w| format!("warning: {w}")))
        .collect();
    if !lines.is_empty() {
        out.push_str("<ul>");
        for l in lines.iter().take(100) {
            let _ = write!(out, "<li>{}</li>", esc(l));
        }
        out.push_str("</ul>");
    }
    out
}
