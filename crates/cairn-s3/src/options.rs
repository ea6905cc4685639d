//! Tuning knobs of an S3 backend. The defaults suit a repository of ~16 MiB
//! packs reached over a WAN; tests shrink the timeouts.

use std::time::Duration;

/// How an [`S3Backend`](crate::S3Backend) talks to the store.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Requests in flight at once, at most, across every thread using the
    /// backend (and idle connections kept open for reuse). Throughput over a
    /// high-latency link grows with it; the callers must also issue that
    /// many operations at once for it to matter.
    pub connections: usize,
    /// Write with a conditional create (`If-None-Match: *`), so a key is
    /// never replaced even when two hosts race. Turn it off only for a store
    /// that rejects the header: then a `HEAD` before each `PUT` refuses
    /// existing keys, which is racy (two writers that both see the key
    /// missing both write, and the last one wins). That is harmless for keys
    /// named by their content (packs, segments, snapshots, plans) or by a
    /// random run (locks), not for `config` or a plan's `.wait`: see
    /// docs/s3.md.
    pub conditional_put: bool,
    /// Files larger than this are uploaded in parts (`put_file` only).
    pub multipart_threshold: u64,
    /// Size of each part of a multipart upload (S3 needs at least 5 MiB).
    pub part_size: usize,
    /// Bytes of file uploads (`put_file`, packs) held in memory at once,
    /// across every thread: a file is read whole before it is sent, so
    /// without a bound `connections` packs would sit in memory together.
    /// Uploads beyond it wait with their files on disk. A file larger than
    /// this takes the whole budget for itself.
    pub upload_memory: u64,
    /// Retries of failed requests.
    pub retry: RetryOptions,
    /// Longest time one request may take, body included, before it counts
    /// as failed (and is retried if the retry budget allows).
    pub request_timeout: Duration,
    /// Longest time to open a connection.
    pub connect_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            connections: 16,
            conditional_put: true,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            upload_memory: 64 << 20,
            retry: RetryOptions::default(),
            request_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Retries of one request: on 5xx answers (including `503 SlowDown`), 429,
/// 408, dropped connections and timeouts, with exponential backoff and
/// jitter. A request is given up after `max_retries` retries or once
/// `timeout` has passed since its first attempt, whichever comes first; the
/// worst case for one operation is therefore about `timeout` plus one
/// `request_timeout`.
#[derive(Clone, Debug)]
pub struct RetryOptions {
    /// Retries after the first attempt, at most.
    pub max_retries: usize,
    /// No retry starts after this long since the first attempt.
    pub timeout: Duration,
    /// Shortest wait before a retry. Waits use decorrelated jitter: each is
    /// drawn at random between this and `base` times the previous wait,
    /// capped at `max_backoff`, so hosts hit by one `SlowDown` spread out.
    pub initial_backoff: Duration,
    /// Longest wait before a retry.
    pub max_backoff: Duration,
    /// Growth factor of the waits.
    pub base: f64,
}

impl Default for RetryOptions {
    fn default() -> RetryOptions {
        RetryOptions {
            max_retries: 10,
            timeout: Duration::from_secs(120),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        }
    }
}

impl RetryOptions {
    pub(crate) fn to_object_store(&self) -> object_store::RetryConfig {
        object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                base: self.base,
            },
            max_retries: self.max_retries,
            retry_timeout: self.timeout,
        }
    }
}
