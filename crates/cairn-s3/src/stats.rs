//! Requests and bytes on the wire, counted per HTTP request (every page of
//! a listing, every part of an upload, every retry), so that a command can
//! report what it cost at the store.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// What one HTTP request does, as S3 bills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// PutObject, UploadPart, Create/CompleteMultipartUpload.
    Put,
    /// GetObject, whole or ranged.
    Get,
    /// One page of ListObjectsV2.
    List,
    /// DeleteObject(s), AbortMultipartUpload.
    Delete,
    /// HeadObject.
    Head,
}

impl RequestKind {
    /// The kind of a request from its method and query string.
    pub(crate) fn of(method: &http::Method, query: Option<&str>) -> RequestKind {
        let has = |param: &str| {
            query.is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(param)))
        };
        match *method {
            http::Method::HEAD => RequestKind::Head,
            http::Method::GET if has("list-type") || has("uploads") => RequestKind::List,
            http::Method::GET => RequestKind::Get,
            http::Method::DELETE => RequestKind::Delete,
            http::Method::POST if has("delete") => RequestKind::Delete,
            _ => RequestKind::Put,
        }
    }
}

/// Live counters, shared by every request of one backend.
#[derive(Debug, Default)]
pub struct RequestStats {
    put: AtomicU64,
    get: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    head: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    failed: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestStatsSnapshot {
    /// PUT requests (and multipart create/complete).
    pub put: u64,
    /// GET requests for object content.
    pub get: u64,
    /// Listing pages (up to 1000 keys each).
    pub list: u64,
    /// DELETE requests.
    pub delete: u64,
    /// HEAD requests.
    pub head: u64,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Attempts that failed and were retried or reported: answers 5xx, 429
    /// or 408, and requests that got no complete answer.
    pub failed: u64,
}

impl RequestStats {
    /// The counters now.
    pub fn snapshot(&self) -> RequestStatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestStatsSnapshot {
            put: l(&self.put),
            get: l(&self.get),
            list: l(&self.list),
            delete: l(&self.delete),
            head: l(&self.head),
            bytes_sent: l(&self.bytes_sent),
            bytes_received: l(&self.bytes_received),
            failed: l(&self.failed),
        }
    }

    pub(crate) fn request(&self, kind: RequestKind, body_bytes: u64) {
        let counter = match kind {
            RequestKind::Put => &self.put,
            RequestKind::Get => &self.get,
            RequestKind::List => &self.list,
            RequestKind::Delete => &self.delete,
            RequestKind::Head => &self.head,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(body_bytes, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl RequestStatsSnapshot {
    /// All requests.
    pub fn requests(&self) -> u64 {
        self.put + self.get + self.list + self.delete + self.head
    }

    /// What happened between `earlier` and this snapshot (one command's
    /// share of a backend that lives longer).
    pub fn since(&self, earlier: &RequestStatsSnapshot) -> RequestStatsSnapshot {
        RequestStatsSnapshot {
            put: self.put - earlier.put,
            get: self.get - earlier.get,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            head: self.head - earlier.head,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            failed: self.failed - earlier.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn requests_are_classified_as_s3_bills_them() {
        let k = |m: Method, q: Option<&str>| RequestKind::of(&m, q);
        assert_eq!(
            k(Method::GET, Some("list-type=2&prefix=r%2F")),
            RequestKind::List
        );
        assert_eq!(k(Method::GET, None), RequestKind::Get);
        assert_eq!(k(Method::HEAD, None), RequestKind::Head);
        assert_eq!(
            k(Method::PUT, Some("partNumber=1&uploadId=x")),
            RequestKind::Put
        );
        assert_eq!(k(Method::POST, Some("uploads")), RequestKind::Put);
        assert_eq!(k(Method::POST, Some("delete")), RequestKind::Delete);
        assert_eq!(k(Method::DELETE, Some("uploadId=x")), RequestKind::Delete);
    }

    #[test]
    fn snapshots_subtract() {
        let s = RequestStats::default();
        s.request(RequestKind::Put, 10);
        let a = s.snapshot();
        s.request(RequestKind::Get, 0);
        s.received(7);
        let d = s.snapshot().since(&a);
        assert_eq!((d.put, d.get, d.bytes_sent, d.bytes_received), (0, 1, 0, 7));
        assert_eq!(s.snapshot().requests(), 2);
    }
}
