//! Long work started from a form (restores, checks): it runs on the
//! blocking pool while the browser polls its progress, and its summary
//! stays for the job page and the repository page.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use crate::error::HttpError;
use crate::html::{esc, human_bytes, page, time};
use crate::state::App;

/// Jobs kept for their pages, at most.
const KEEP: usize = 64;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A restore (or its dry run).
    Restore,
    /// `check`.
    Check,
}

/// Where a job is.
#[derive(Clone, Debug)]
pub enum JobState {
    /// Still working.
    Running,
    /// Finished; `ok` is false when it found problems.
    Done {
        /// No errors.
        ok: bool,
        /// The summary, as HTML.
        html: String,
    },
    /// Stopped by an error.
    Failed(String),
}

/// One job.
pub struct Job {
    /// Random, unguessable.
    pub id: String,
    /// What it does.
    pub kind: Kind,
    /// A line for the page.
    pub title: String,
    /// When it started.
    pub started: chrono::DateTime<chrono::Utc>,
    /// Bytes to go through, if known.
    pub total: u64,
    done: AtomicU64,
    state: Mutex<JobState>,
}

impl Job {
    /// Its state now.
    pub fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Record the outcome.
    pub fn finish(&self, state: JobState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }
}

impl cairn_repo::ops::restore::RestoreProgress for Job {
    fn bytes(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// The jobs of this server, newest last.
#[derive(Default)]
pub struct Jobs(Mutex<Vec<Arc<Job>>>);

impl Jobs {
    /// Register a running job.
    pub fn start(&self, kind: Kind, title: String, total: u64) -> Arc<Job> {
        let mut raw = [0u8; 12];
        let _ = cairn_repo::format::crypto::fill_random(&mut raw);
        let job = Arc::new(Job {
            id: hex::encode(raw),
            kind,
            title,
            started: chrono::Utc::now(),
            total,
            done: AtomicU64::new(0),
            state: Mutex::new(JobState::Running),
        });
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.push(job.clone());
        if all.len() > KEEP {
            all.remove(0);
        }
        job
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().find(|j| j.id == id).cloned()
    }

    /// The newest job of a kind that has finished.
    pub fn last_finished(&self, kind: Kind) -> Option<Arc<Job>> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .rev()
            .find(|j| j.kind == kind && !matches!(j.state(), JobState::Running))
            .cloned()
    }
}

/// Run `work` for `job` on the blocking pool, holding `slot` until it ends.
pub fn spawn<F>(job: Arc<Job>, slot: tokio::sync::OwnedSemaphorePermit, work: F)
where
    F: FnOnce(&Job) -> JobState + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let state = work(&job);
        // Free the slot first: whoever sees the job done may start another.
        drop(slot);
        job.finish(state);
    });
}

/// `GET /jobs/{id}`: progress while running (the script polls the status
/// and reloads when done; without scripts, a reload link), then the summary.
pub async fn page_handler(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(job) = app.jobs.get(&id) else {
        return HttpError::not_found(format!("no job {id}")).into_response();
    };
    let mut body = format!(
        "<h1>{}</h1><p>started {} UTC</p>",
        esc(&job.title),
        time(&job.started)
    );
    body.push_str(&state_html(&job));
    body.push_str(match job.kind {
        Kind::Check => r#"<p><a href="/repository">Back to the repository</a></p>"#,
        Kind::Restore => r#"<p><a href="/">Back to the volumes</a></p>"#,
    });
    Html(page(&job.title, &body)).into_response()
}

/// The part of a job page that depends on its state.
pub fn state_html(job: &Job) -> String {
    let mut out = String::new();
    match job.state() {
        JobState::Running => {
            let done = job.done.load(Ordering::Relaxed);
            let _ = write!(
                out,
                r#"<div id="job" data-status="/jobs/{id}/status">
<progress id="bar" max="{t}" value="{done}"></progress>
<span id="done">{d}</span> of {total}
<p class="muted">working… <noscript><a href="/jobs/{id}">reload</a> to see progress</noscript></p></div>
<script src="/assets/job.js"></script>"#,
                id = esc(&job.id),
                t = job.total.max(1),
                d = human_bytes(done),
                total = human_bytes(job.total)
            );
        }
        JobState::Done { ok, html } => {
            let (class, word) = if ok {
                ("ok", "done")
            } else {
                ("error", "finished with problems")
            };
            let _ = write!(out, r#"<p id="outcome" class="{class}">{word}</p>{html}"#);
        }
        JobState::Failed(e) => {
            let _ = write!(
                out,
                r#"<p id="outcome" class="error">failed: {}</p>"#,
                esc(&e)
            );
        }
    }
    out
}

/// `GET /jobs/{id}/status`: JSON for the progress script.
pub async fn status_handler(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(job) = app.jobs.get(&id) else {
        return HttpError::not_found(format!("no job {id}")).into_response();
    };
    let (state, ok) = match job.state() {
        JobState::Running => ("running", true),
        JobState::Done { ok, .. } => ("done", ok),
        JobState::Failed(_) => ("failed", false),
    };
    let done = job.done.load(Ordering::Relaxed);
    let v = serde_json::json!({
        "state": state,
        "ok": ok,
        "done": done,
        "total": job.total,
        "done_text": human_bytes(done),
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}
