//! `/`: one row per volume. Everything here comes from the snapshots'
//! recorded summaries, so the page reads no tree and stays fast however
//! many snapshots there are.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Html;
use cairn_repo::{Id, Snapshot};

use crate::error::HttpError;
use crate::html::{age, esc, human_bytes, page, time, url_segment};
use crate::state::App;

/// What a volume's snapshots add up to.
pub struct VolumeSummary<'a> {
    /// The volume name.
    pub name: &'a str,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<&'a (Id, Snapshot)>,
}

impl VolumeSummary<'_> {
    /// The newest snapshot.
    pub fn latest(&self) -> &(Id, Snapshot) {
        self.snapshots[self.snapshots.len() - 1]
    }

    /// Bytes the volume's backups added to packs: what it costs, counting
    /// data shared with another volume where it was stored first.
    pub fn stored(&self) -> u64 {
        self.snapshots
            .iter()
            .map(|(_, s)| s.summary.bytes_added_stored)
            .sum()
    }

    /// All its snapshots' logical bytes over the plain bytes they added.
    pub fn dedup_ratio(&self) -> Option<f64> {
        let logical: u64 = self
            .snapshots
            .iter()
            .map(|(_, s)| s.summary.total_bytes)
            .sum();
        let added: u64 = self
            .snapshots
            .iter()
            .map(|(_, s)| s.summary.bytes_added)
            .sum();
        (added > 0).then(|| logical as f64 / added as f64)
    }
}

/// Snapshots grouped by volume, volumes by name.
pub fn by_volume(all: &[(Id, Snapshot)]) -> Vec<VolumeSummary<'_>> {
    let mut groups: BTreeMap<&str, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in all {
        groups.entry(s.1.volume.as_str()).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(name, snapshots)| VolumeSummary { name, snapshots })
        .collect()
}

/// `GET /`.
pub async fn handler(State(app): State<App>) -> Result<Html<String>, HttpError> {
    app.blocking(|app| {
        let all = app.snapshots()?;
        let damaged = app.damaged()?;
        Ok(Html(render(app, &all, damaged.len())))
    })
    .await
}

fn render(app: &App, all: &[(Id, Snapshot)], damaged: usize) -> String {
    let now = chrono::Utc::now();
    let stale = app.opts.stale_after.as_secs() as i64;
    let mut body = String::from("<h1>Volumes</h1>");
    if damaged > 0 {
        let _ = write!(
            body,
            r#"<p class="error">{damaged} snapshot(s) cannot be read; see <a href="/repository">Repository</a>.</p>"#
        );
    }
    let volumes = by_volume(all);
    if volumes.is_empty() {
        body.push_str("<p>No snapshots yet: back something up with <code>cairn backup</code>.</p>");
        return page("Volumes", &body);
    }
    body.push_str(
        r#"<table class="list"><thead><tr><th>volume</th><th>snapshots</th><th>latest</th><th>age</th>
<th class="num">size</th><th class="num">stored</th><th class="num">dedup</th><th>added per snapshot</th></tr></thead><tbody>"#,
    );
    for v in &volumes {
        let (id, s) = v.latest();
        let secs = (now - s.timestamp()).num_seconds();
        let class = if secs > stale { "stale" } else { "fresh" };
        let added: Vec<u64> = v
            .snapshots
            .iter()
            .map(|(_, s)| s.summary.bytes_added_stored)
            .collect();
        let _ = write!(
            body,
            r#"<tr><td><a href="/volumes/{link}">{name}</a></td><td class="num">{count}</td>
<td><a href="/snapshots/{hex}">{short}</a> {when}</td><td class="{class}">{age}</td>
<td class="num">{size}</td><td class="num">{stored}</td><td class="num">{ratio}</td><td>{spark}</td></tr>"#,
            link = url_segment(v.name),
            name = esc(v.name),
            count = v.snapshots.len(),
            hex = id.to_hex(),
            short = id.short(),
            when = time(&s.timestamp()),
            age = age(secs),
            size = human_bytes(s.summary.total_bytes),
            stored = human_bytes(v.stored()),
            ratio = v.dedup_ratio().map_or("–".into(), |r| format!("{r:.1}×")),
            spark = cairn_chart::sparkline(&added, 160, 24, "#1f77b4"),
        );
    }
    let _ = write!(
        body,
        r#"</tbody></table><p class="muted">Age turns red after {}. Stored: bytes the volume's backups added to the repository. Dedup: logical bytes of all its snapshots over the new bytes they brought.</p>"#,
        age(stale)
    );
    page("Volumes", &body)
}
