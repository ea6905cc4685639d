//! Errors: [`Error`] for starting the server, [`HttpError`] for one request
//! (a status and a message the page shows, escaped).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::html::{esc, page};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The restore root is missing or not a directory.
    #[error("restore root {path}: {reason}")]
    RestoreRoot {
        /// The directory given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The async runtime could not start, or serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The repository could not be read at start.
    #[error(transparent)]
    Repository(#[from] cairn_repo::Error),
}

/// A failed request: the status and what to tell the user.
#[derive(Debug)]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// One line for the user.
    pub message: String,
}

impl HttpError {
    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 403.
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A 503: every slot for heavy work is taken.
    pub fn busy() -> HttpError {
        HttpError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is busy with other downloads, diffs, checks or restores; try again in a moment".into(),
        }
    }
}

impl From<cairn_repo::Error> for HttpError {
    fn from(e: cairn_repo::Error) -> HttpError {
        use cairn_repo::Error as E;
        let status = match &e {
            E::NoSnapshot(_) | E::NoSuchPath { .. } => StatusCode::NOT_FOUND,
            E::Ambiguous { .. } | E::BadSnapshotId(_) | E::BadPattern { .. } => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("error");
        let body = format!(
            r#"<h1>{}</h1><p class="error">{}</p>"#,
            esc(title),
            esc(&self.message)
        );
        let mut resp = axum::response::Html(page(title, &body)).into_response();
        *resp.status_mut() = self.status;
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        resp
    }
}
