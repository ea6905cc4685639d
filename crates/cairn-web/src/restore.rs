//! Restores from the browser (only with `--allow-restore`): a form, then a
//! dry run showing what would change, then the restore as a job with live
//! progress. Targets are directories below the restore root given at
//! start, or (through [`VolumeProvisioner`]) new Docker volumes.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use cairn_repo::ops::restore::{restore, NoRestoreProgress, RestoreOptions, RestoreOutcome};
use cairn_repo::{Id, NodeKind};
use percent_encoding::percent_decode;

use crate::auth::{Form, Session};
use crate::error::HttpError;
use crate::html::{esc, hidden, human_bytes, name_html, page, url_bytes};
use crate::jobs::{self, JobState, Kind};
use crate::pages::browse::{browse_link, resolve};
use crate::params::{components, safe_path, Params};
use crate::state::App;

/// Planned changes listed by a dry run, at most.
const SHOW_PLANNED: usize = 500;

/// Makes the Docker volume a restore goes into: the hook `restore
/// --to-docker-volume` plugs into. Without one, the form offers
/// directories only.
pub trait VolumeProvisioner: Send + Sync {
    /// Where volume `name` is mounted, if it exists (for a dry run, which
    /// must create nothing).
    fn existing(&self, name: &str) -> Result<Option<PathBuf>, String>;
    /// Create volume `name` (refusing one that exists and is not empty);
    /// the directory to restore into.
    fn create(&self, name: &str) -> Result<PathBuf, String>;
}

/// Where a restore goes, as the form says.
#[derive(Debug, Clone)]
enum Destination {
    /// A relative path below the restore root.
    Directory(Vec<u8>),
    /// A Docker volume by name.
    Volume(String),
}

/// Everything a restore form carries between its steps.
#[derive(Debug, Clone)]
struct Request {
    snapshot: String,
    path: Vec<u8>,
    dest: Destination,
    delete: bool,
    verify: bool,
}

fn allowed(app: &App) -> Result<(), HttpError> {
    if app.opts.allow_restore {
        Ok(())
    } else {
        Err(HttpError::forbidden(
            "this server is read-only; start it with `cairn serve --allow-restore --restore-root DIR` to restore",
        ))
    }
}

/// `GET /restore?snapshot=ID&path=P`: the form.
pub async fn form(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    RawQuery(q): RawQuery,
) -> Result<Html<String>, HttpError> {
    allowed(&app)?;
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    let spec = params.need("snapshot")?.to_string();
    let path = safe_path(params.bytes("path").unwrap_or_default())?;
    app.blocking(move |app| {
        let (id, snap) = app.find(&spec)?;
        resolve(app, &id, &snap, &path)?;
        Ok(Html(form_page(app, &session, &id, &path)))
    })
    .await
}

fn form_page(app: &App, session: &Session, id: &Id, path: &[u8]) -> String {
    let root = app.opts.restore_root.as_deref().unwrap_or(Path::new("?"));
    let volume = if app.opts.volumes.is_some() {
        r#"<p><label><input type="radio" name="dest" value="volume"> a new Docker volume named <input name="volume" size="30"></label></p>"#
    } else {
        ""
    };
    let body = format!(
        r#"<h1>Restore</h1><p>From snapshot <a href="{}">{}</a>, path <code>/{}</code></p>
<form method="post" action="/restore">{}{}{}
<p><label><input type="radio" name="dest" value="dir" checked> into the directory {}/<input name="target" size="40"></label></p>{volume}
<p><label><input type="checkbox" name="delete" value="1"> delete what the snapshot does not have</label>
<label><input type="checkbox" name="verify" value="1"> verify after restoring</label></p>
<p><button type="submit" name="step" value="preview">Preview (dry run)</button></p></form>"#,
        esc(&browse_link(id, path)),
        id.short(),
        name_html(path),
        hidden("csrf", &session.csrf),
        hidden("snapshot", &id.to_hex()),
        hidden("path", &url_bytes(path)),
        esc(&root.display().to_string()),
    );
    page("Restore", &body)
}

/// `POST /restore`: `step=preview` runs a dry run and asks to confirm;
/// `step=run` starts the restore.
pub async fn submit(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Extension(Form(form)): Extension<Form>,
) -> Result<Response, HttpError> {
    allowed(&app)?;
    let req = parse(&form)?;
    match form.text("step")? {
        Some("run") => start(app, req).await,
        _ => preview(app, session, req).await,
    }
}

fn parse(form: &Params) -> Result<Request, HttpError> {
    let dest = match form.text("dest")? {
        Some("volume") => Destination::Volume(volume_name(form.need("volume")?)?),
        _ => {
            let t = safe_path(form.text("target")?.unwrap_or_default().as_bytes())?;
            if t.is_empty() {
                return Err(HttpError::bad_request(
                    "give a target directory below the restore root",
                ));
            }
            Destination::Directory(t)
        }
    };
    Ok(Request {
        snapshot: form.need("snapshot")?.to_string(),
        // Carried percent-encoded: a form field cannot hold bytes that are not UTF-8.
        path: safe_path(
            &percent_decode(form.bytes("path").unwrap_or_default()).collect::<Vec<u8>>(),
        )?,
        dest,
        delete: form.flag("delete"),
        verify: form.flag("verify"),
    })
}

/// Docker's rule for volume names.
fn volume_name(name: &str) -> Result<String, HttpError> {
    let ok = name.len() >= 2
        && name.len() <= 255
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(HttpError::bad_request(format!(
            "invalid volume name {name:?}: letters, digits, _ . - only"
        )))
    }
}

/// A directory below the restore root, refusing any existing component
/// that is a symlink or not a directory: the library then writes below
/// the target through descriptors and never leaves it.
fn directory(app: &App, rel: &[u8]) -> Result<PathBuf, HttpError> {
    let root = app
        .opts
        .restore_root
        .as_deref()
        .ok_or_else(|| HttpError::forbidden("no restore root was given at start"))?;
    let target = root.join(OsStr::from_bytes(rel));
    let mut p = root.to_path_buf();
    for part in components(rel) {
        p.push(OsStr::from_bytes(part));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {} // lstat: a symlink is never `is_dir`
            Ok(_) => {
                return Err(HttpError::bad_request(format!(
                    "{}: exists and is not a directory (symlinks are refused)",
                    p.display()
                )))
            }
            Err(_) => break, // the rest is created by the restore
        }
    }
    Ok(target)
}

fn target_dir(app: &App, req: &Request, dry: bool) -> Result<PathBuf, HttpError> {
    match &req.dest {
        Destination::Directory(rel) => directory(app, rel),
        Destination::Volume(name) => {
            let hook = app.opts.volumes.as_ref().ok_or_else(|| {
                HttpError::bad_request("restoring into Docker volumes is not available here")
            })?;
            let found = if dry {
                hook.existing(name)
                    .map(|p| p.unwrap_or_else(|| PathBuf::from("/nonexistent/new-volume")))
            } else {
                hook.create(name)
            };
            found.map_err(|e| HttpError::bad_request(format!("volume {name}: {e}")))
        }
    }
}

fn options(req: &Request, target: PathBuf, dry_run: bool) -> RestoreOptions {
    RestoreOptions {
        target,
        delete: req.delete,
        verify: req.verify && !dry_run,
        dry_run,
        ..RestoreOptions::default()
    }
}

async fn preview(app: App, session: Session, req: Request) -> Result<Response, HttpError> {
    let slot = app.heavy_slot()?;
    app.blocking(move |app| {
        let _slot = slot;
        let (id, snap) = app.find(&req.snapshot)?;
        let target = target_dir(app, &req, true)?;
        let o = restore(
            &app.repo,
            &id,
            &snap,
            &req.path,
            &options(&req, target.clone(), true),
            &NoRestoreProgress,
        )?;
        Ok(Html(preview_page(&session, &req, &id, &target, &o)).into_response())
    })
    .await
}

fn preview_page(
    session: &Session,
    req: &Request,
    id: &Id,
    target: &Path,
    o: &RestoreOutcome,
) -> String {
    let body = format!(
        r#"<h1>Restore: dry run</h1><p>Snapshot {} path <code>/{}</code> into <code>{}</code></p>{}{}{}"#,
        id.short(),
        name_html(&req.path),
        esc(&target.display().to_string()),
        outcome_html(o, true),
        confirm_form(session, req, id),
        planned_table(o)
    );
    page("Restore: dry run", &body)
}

/// The dry run's list of changes (the first [`SHOW_PLANNED`]).
fn planned_table(o: &RestoreOutcome) -> String {
    let mut out = String::from(
        r#"<table class="list"><thead><tr><th>would</th><th>path</th><th class="num">bytes</th></tr></thead><tbody>"#,
    );
    for p in o.planned.iter().take(SHOW_PLANNED) {
        let bytes = if p.bytes > 0 {
            human_bytes(p.bytes)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{bytes}</td></tr>"#,
            p.action,
            esc(&p.path)
        );
    }
    out.push_str("</tbody></table>");
    if o.planned.len() > SHOW_PLANNED {
        let more = o.planned.len() - SHOW_PLANNED;
        let _ = write!(out, r#"<p class="muted">and {more} more</p>"#);
    }
    out
}

/// The same request again as `step=run`, above the list so that the
/// button is in view however long the list is.
fn confirm_form(session: &Session, req: &Request, id: &Id) -> String {
    let mut out = format!(
        r#"<form method="post" action="/restore">{}{}{}{}"#,
        hidden("csrf", &session.csrf),
        hidden("snapshot", &id.to_hex()),
        hidden("step", "run"),
        hidden("path", &url_bytes(&req.path))
    );
    match &req.dest {
        Destination::Directory(rel) => {
            out.push_str(&hidden("dest", "dir"));
            out.push_str(&hidden("target", &String::from_utf8_lossy(rel)));
        }
        Destination::Volume(name) => {
            out.push_str(&hidden("dest", "volume"));
            out.push_str(&hidden("volume", name));
        }
    }
    for (flag, on) in [("delete", req.delete), ("verify", req.verify)] {
        if on {
            out.push_str(&hidden(flag, "1"));
        }
    }
    let back = esc(&format!(
        "/restore?snapshot={}&path={}",
        id.to_hex(),
        url_bytes(&req.path)
    ));
    let _ = write!(
        out,
        r#"<p><button type="submit" class="danger">Restore now</button> <a href="{back}">change</a></p></form>"#
    );
    out
}

/// What a restore did (or would do), as HTML.
fn outcome_html(o: &RestoreOutcome, dry: bool) -> String {
    let verb = if dry { "would write" } else { "wrote" };
    let mut out = format!(
        r#"<p class="summary">{verb} {} files ({}), {} unchanged ({}), {} dirs, {} other entries, {} deleted{}{}</p>"#,
        o.files_written,
        human_bytes(o.bytes_written),
        o.files_unchanged,
        human_bytes(o.bytes_unchanged),
        o.dirs,
        o.others,
        o.deleted,
        if o.verified > 0 {
            format!(", {} verified", o.verified)
        } else {
            String::new()
        },
        if o.files_failed > 0 {
            format!(", {} failed", o.files_failed)
        } else {
            String::new()
        },
    );
    if !o.errors.is_empty() {
        out.push_str(r#"<ul class="error">"#);
        for e in o.errors.iter().take(100) {
            let _ = write!(out, "<li>{}</li>", esc(&e.to_string()));
        }
        out.push_str("</ul>");
    }
    out
}

async fn start(app: App, req: Request) -> Result<Response, HttpError> {
    let slot = app.heavy_slot()?;
    let (id, snap, total, target) = app
        .blocking({
            let req = req.clone();
            move |app| {
                let (id, snap) = app.find(&req.snapshot)?;
                let node = resolve(app, &id, &snap, &req.path)?;
                let total = match node.kind {
                    NodeKind::Dir if req.path.is_empty() => snap.summary.total_bytes,
                    _ => node.size,
                };
                let target = target_dir(app, &req, false)?;
                Ok((id, snap, total, target))
            }
        })
        .await?;
    let title = format!("restore of {} into {}", id.short(), target.display());
    let job = app.jobs.start(Kind::Restore, title, total);
    let job_id = job.id.clone();
    let repo = app.repo.clone();
    jobs::spawn(job, slot, move |job| {
        match restore(
            &repo,
            &id,
            &snap,
            &req.path,
            &options(&req, target, false),
            job,
        ) {
            Ok(o) => JobState::Done {
                ok: o.errors.is_empty(),
                html: outcome_html(&o, false),
            },
            Err(e) => JobState::Failed(e.to_string()),
        }
    });
    Ok(Redirect::to(&format!("/jobs/{job_id}")).into_response())
}
