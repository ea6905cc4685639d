//! Downloads: one file's content, or a directory as a tar stream. The
//! repository is read on the blocking pool and sent through a small
//! channel as it is read, so memory stays a few chunks whatever the size,
//! and a client that goes away stops the reading.

use std::io::{self, Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use cairn_repo::format::tree::ChunkRef;
use cairn_repo::{Node, NodeKind, Repository};
use tokio::sync::mpsc;

use crate::error::HttpError;
use crate::pages::browse::resolve;
use crate::params::{components, safe_path, Params};
use crate::state::App;

mod tarball;

/// Buffered bytes sent at once.
const PIECE: usize = 256 << 10;

type Piece = Result<Bytes, io::Error>;

/// A `Write` that sends what it gets to a response body; fails with
/// `BrokenPipe` once the client has gone.
pub struct ChannelWriter {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Piece>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(PIECE),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// End the body with an error, so the client sees a broken download
    /// rather than a short one.
    fn fail(self, e: io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A file's content as a reader, one verified chunk at a time.
pub struct ChunkReader<'a> {
    repo: &'a Repository,
    chunks: std::slice::Iter<'a, ChunkRef>,
    current: io::Cursor<Vec<u8>>,
}

impl<'a> ChunkReader<'a> {
    /// Read `node`'s content.
    pub fn new(repo: &'a Repository, node: &'a Node) -> ChunkReader<'a> {
        ChunkReader {
            repo,
            chunks: node.content.iter(),
            current: io::Cursor::new(Vec::new()),
        }
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            let Some(c) = self.chunks.next() else {
                return Ok(0);
            };
            let data = self.repo.read_blob(&c.id).map_err(io::Error::other)?;
            if data.len() != c.len as usize {
                return Err(io::Error::other(format!(
                    "chunk {} is {} bytes, the tree says {}",
                    c.id.short(),
                    data.len(),
                    c.len
                )));
            }
            self.current = io::Cursor::new(data);
        }
    }
}

/// What a download request names: the snapshot and a node in it.
async fn target(app: &App, spec: String, q: Option<String>) -> Result<(Vec<u8>, Node), HttpError> {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    let path = safe_path(params.bytes("path").unwrap_or_default())?;
    app.blocking(move |app| {
        let (id, snap) = app.find(&spec)?;
        let node = resolve(app, &id, &snap, &path)?;
        Ok((path, node))
    })
    .await
}

/// `Content-Disposition` for a raw name: an ASCII fallback and the exact
/// bytes percent-encoded (RFC 6266/5987).
fn disposition(name: &[u8]) -> HeaderValue {
    let ascii: String = name
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.+".contains(&b) {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    let exact = percent_encoding::percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    let v = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn streaming(rx: mpsc::Receiver<Piece>, kind: &'static str, name: &[u8]) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_DISPOSITION, disposition(name));
    resp
}

/// `GET /snapshots/{id}/file?path=P`: one file's content.
pub async fn file(
    State(app): State<App>,
    Path(spec): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, HttpError> {
    let slot = app.heavy_slot()?;
    let (path, node) = target(&app, spec, q).await?;
    if node.kind != NodeKind::File {
        return Err(HttpError::bad_request(
            "not a regular file: download a directory as tar",
        ));
    }
    let name = components(&path).last().unwrap_or(b"file").to_vec();
    let (tx, rx) = mpsc::channel(4);
    let size = node.size;
    let repo = app.repo.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut out = ChannelWriter::new(tx);
        let copied =
            io::copy(&mut ChunkReader::new(&repo, &node), &mut out).and_then(|_| out.flush());
        if let Err(e) = copied {
            out.fail(e);
        }
    });
    let mut resp = streaming(rx, "application/octet-stream", &name);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(resp)
}

/// `GET /snapshots/{id}/tar?path=P`: a directory and everything below it.
pub async fn tar(
    State(app): State<App>,
    Path(spec): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, HttpError> {
    let slot = app.heavy_slot()?;
    let (path, node) = target(&app, spec, q).await?;
    if node.kind != NodeKind::Dir {
        return Err(HttpError::bad_request(
            "not a directory: download a file as it is",
        ));
    }
    let mut name = components(&path).last().unwrap_or(b"snapshot").to_vec();
    name.extend_from_slice(b".tar");
    let (tx, rx) = mpsc::channel(4);
    let worker = app.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut out = ChannelWriter::new(tx);
        let written = tarball::write(&worker, &node, &mut out).and_then(|_| out.flush());
        if let Err(e) = written {
            out.fail(e);
        }
    });
    Ok(streaming(rx, "application/x-tar", &name))
}
