//! cairn-web: `cairn serve`, a web interface to one repository: every
//! volume's history at a glance, browsing and downloading snapshots,
//! diffs, repository statistics and checks, and (when allowed) restores.
//!
//! The server holds one open [`cairn_repo::Repository`] and calls the same
//! library operations the CLI does (`ops::diff`, `ops::restore`,
//! `ops::check`, `ops::stats`); it never runs the `cairn` binary. Every
//! repository read runs on tokio's blocking pool; heavy work (downloads,
//! diffs, checks, restores) also needs one of a few slots, and is refused
//! with 503 when they are all taken.
//!
//! # Pages as strings
//!
//! HTML is built with `format!` and one escaping helper
//! ([`cairn_chart::escape`], re-exported in `html`) that every
//! interpolated value goes through. A template crate was weighed: askama
//! checks templates at compile time but adds a proc-macro tree and a second
//! language; maud escapes by default but is a large macro DSL. The pages
//! here are a handful of tables and forms, so plain functions that return
//! `String` keep the build small and the code greppable, and the rule
//! "nothing reaches a page without `esc`, `name_html` or a number" is
//! easy to check by reading. Charts are SVG drawn by `cairn-chart`, the
//! crate `cairn bench --svg` uses too. There is no front-end build: one
//! stylesheet and one 30-line script (restore and check progress) are
//! compiled into the binary, and every page but the progress page works
//! without JavaScript.
//!
//! Security (details in `docs/web.md`): a token compared in constant time
//! (bearer header, or `?token=` once, which starts a cookie session), a
//! CSRF token on every POST, a strict Content-Security-Policy, paths
//! checked before they reach the library, restores only below a root
//! given at start.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cairn_repo::{LocalBackend, Repository};
//! let repo = Repository::open(Arc::new(LocalBackend::new("/srv/cairn")), None)?;
//! let server = cairn_web::Server::bind(repo, cairn_web::ServeOptions::default())?;
//! println!("{}", server.url());
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod auth;
mod error;
mod html;
mod jobs;
mod pages;
mod params;
mod restore;
mod state;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use cairn_repo::Repository;

pub use error::Error;
pub use restore::VolumeProvisioner;

use state::App;

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to listen on (`127.0.0.1:8490`; port 0 picks a free one).
    pub listen: String,
    /// The access token; `None` generates a random one.
    pub token: Option<String>,
    /// Offer restores (otherwise the server only reads the repository).
    pub allow_restore: bool,
    /// Restores go below this directory (required with `allow_restore`).
    pub restore_root: Option<PathBuf>,
    /// A volume whose latest snapshot is older than this is shown stale.
    pub stale_after: Duration,
    /// Heavy requests (downloads, diffs, checks, restores) at once.
    pub heavy_slots: usize,
    /// Creates Docker volumes to restore into, when available.
    pub volumes: Option<Arc<dyn VolumeProvisioner>>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            listen: "127.0.0.1:8490".into(),
            token: None,
            allow_restore: false,
            restore_root: None,
            stale_after: Duration::from_secs(26 * 3600),
            heavy_slots: 2,
            volumes: None,
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: std::net::TcpListener,
    app: App,
}

impl Server {
    /// Check the options, bind the address and prepare the state.
    pub fn bind(repo: Repository, mut opts: ServeOptions) -> Result<Server, Error> {
        state::tune_allocator();
        if opts.allow_restore {
            opts.restore_root = Some(restore_root(opts.restore_root.as_deref())?);
        }
        let listener = std::net::TcpListener::bind(&opts.listen).map_err(|source| Error::Bind {
            addr: opts.listen.clone(),
            source,
        })?;
        listener.set_nonblocking(true)?;
        let auth = auth::Auth::new(opts.token.take())?;
        let app = App::new(repo, opts, auth);
        // Read the snapshot list now, so the first page is as fast as the rest.
        app.snapshots().map_err(|e| {
            Error::Io(std::io::Error::other(format!(
                "reading snapshots: {}",
                e.message
            )))
        })?;
        Ok(Server { listener, app })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL to open: it carries the token, which starts a session.
    pub fn url(&self) -> String {
        let addr = self
            .local_addr()
            .map_or_else(|_| self.app.opts.listen.clone(), |a| a.to_string());
        format!("http://{addr}/?token={}", self.app.auth.token())
    }

    /// Serve until Ctrl-C or SIGTERM.
    pub fn run(self) -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(16)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            axum::serve(listener, router(self.app))
                .with_graceful_shutdown(shutdown())
                .await
        })?;
        Ok(())
    }
}

fn restore_root(given: Option<&std::path::Path>) -> Result<PathBuf, Error> {
    let path = given.ok_or_else(|| Error::RestoreRoot {
        path: String::new(),
        reason: "--allow-restore needs --restore-root DIR: restores go below it".into(),
    })?;
    let bad = |reason: String| Error::RestoreRoot {
        path: path.display().to_string(),
        reason,
    };
    let real = path.canonicalize().map_err(|e| bad(e.to_string()))?;
    if !real.is_dir() {
        return Err(bad("not a directory".into()));
    }
    Ok(real)
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/job.js");

/// Every route; see `docs/web.md`.
fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/", get(pages::volumes::handler))
        .route("/volumes/{name}", get(pages::history::handler))
        .route("/snapshots/{id}", get(pages::browse::handler))
        .route("/snapshots/{id}/file", get(stream::file))
        .route("/snapshots/{id}/tar", get(stream::tar))
        .route("/diff", get(pages::diff::handler))
        .route("/repository", get(pages::repo::handler))
        .route("/repository/check", post(pages::repo::start_check))
        .route("/restore", get(restore::form).post(restore::submit))
        .route("/jobs/{id}", get(jobs::page_handler))
        .route("/jobs/{id}/status", get(jobs::status_handler))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::guard));
    Router::new()
        .merge(guarded)
        .route(
            "/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route(
            "/assets/job.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
        )
        .fallback(|| async { error::HttpError::not_found("no such page").into_response() })
        .layer(middleware::from_fn(auth::headers))
        .with_state(app)
}
