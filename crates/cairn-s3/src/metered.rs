//! The HTTP layer under object_store: it counts every request and the bytes
//! of its bodies, and caps the requests in flight. Sitting below
//! object_store's retry loop, it sees each attempt, which is what the store
//! and the network see.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
    ReqwestConnector,
};
use object_store::ClientOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::stats::{RequestKind, RequestStats};

tokio::task_local! {
    /// PUT attempts made by the operation running in this task.
    static PUT_ATTEMPTS: Cell<u32>;
}

/// Run `op`, counting the PUT attempts it makes: a conditional create that
/// answers "exists" after more than one attempt may have been refused
/// because an earlier attempt of the same call got through.
pub(crate) async fn counting_puts<F: std::future::Future>(op: F) -> (F::Output, u32) {
    PUT_ATTEMPTS
        .scope(Cell::new(0), async {
            let out = op.await;
            (out, PUT_ATTEMPTS.with(Cell::get))
        })
        .await
}

/// Makes object_store's HTTP clients metered ones.
#[derive(Debug)]
pub(crate) struct MeteredConnector {
    stats: Arc<RequestStats>,
    slots: Arc<Semaphore>,
}

impl MeteredConnector {
    pub(crate) fn new(stats: Arc<RequestStats>, connections: usize) -> MeteredConnector {
        MeteredConnector {
            stats,
            slots: Arc::new(Semaphore::new(connections.max(1))),
        }
    }
}

impl HttpConnector for MeteredConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(MeteredService {
            inner,
            stats: self.stats.clone(),
            slots: self.slots.clone(),
        }))
    }
}

#[derive(Debug)]
struct MeteredService {
    inner: HttpClient,
    stats: Arc<RequestStats>,
    slots: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl HttpService for MeteredService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let kind = RequestKind::of(req.method(), req.uri().query());
        if kind == RequestKind::Put {
            let _ = PUT_ATTEMPTS.try_with(|n| n.set(n.get() + 1));
        }
        // The slot is held until the response body is read or dropped.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        self.stats.request(kind, req.body().content_length() as u64);
        let response = self
            .inner
            .execute(req)
            .await
            .inspect_err(|_| self.stats.failed())?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            self.stats.failed();
        }
        let (parts, body) = response.into_parts();
        let body = MeteredBody {
            inner: body,
            stats: self.stats.clone(),
            slot: Some(slot),
        };
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

struct MeteredBody {
    inner: HttpResponseBody,
    stats: Arc<RequestStats>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.stats.received(data.len() as u64);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.stats.failed();
                this.slot = None;
            }
            Poll::Ready(None) => this.slot = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
