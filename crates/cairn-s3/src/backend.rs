//! [`S3Backend`]: cairn's `Backend` over object_store's S3 client.
//!
//! Long because each `Backend` operation carries its retry, metering and
//! error mapping beside it; the pieces that stand alone (options, profile,
//! location, stats) are in their own files.

use std::future::Future;
use std::io::{self, Read};
use std::path::Path as LocalPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_repo::{Backend, BackendError, LocationState, ObjectInfo};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, S3ConditionalPut};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, WriteMultipart};

use crate::aws_env::{self, AwsEnv, ResolvedSettings};
use crate::error::{RemoteError, S3Error};
use crate::location::S3Location;
use crate::metered::{counting_puts, MeteredConnector};
use crate::options::S3Options;
use crate::stats::{RequestStats, RequestStatsSnapshot};
use crate::stream::RangeStream;

/// Parts of one multipart upload in flight at once: each holds a part in
/// memory, and several uploads may run side by side.
const PARTS_IN_FLIGHT: usize = 4;

/// The upload budget is counted in units of this many bytes (a semaphore
/// takes at most `u32::MAX` permits at once).
const BUDGET_UNIT: u64 = 64 << 10;

/// Threads of the backend's I/O runtime: requests wait on the network, so
/// two keep many connections busy.
const IO_THREADS: usize = 2;

/// A repository under a prefix of an S3 bucket.
///
/// Its methods block: they run on the calling thread with the backend's
/// own small tokio runtime driving the connections, so plain threads, many
/// at once, can share one backend. They must not be called from inside
/// another tokio runtime.
pub struct S3Backend {
    store: AmazonS3,
    location: S3Location,
    options: S3Options,
    settings: ResolvedSettings,
    stats: Arc<RequestStats>,
    /// What is left of `options.upload_memory`, in `BUDGET_UNIT`s.
    upload_budget: tokio::sync::Semaphore,
    runtime: tokio::runtime::Runtime,
}

impl S3Backend {
    /// A backend for `s3://BUCKET/PREFIX`, configured from the process
    /// environment as AWS's tools are (see [`AwsEnv`]).
    pub fn from_url(url: &str, options: &S3Options) -> Result<S3Backend, S3Error> {
        S3Backend::with_env(url, options, &AwsEnv::from_process())
    }

    /// A backend for `url` configured from `env` only.
    pub fn with_env(url: &str, options: &S3Options, env: &AwsEnv) -> Result<S3Backend, S3Error> {
        let location = S3Location::parse(url)?;
        let (builder, client, settings) = aws_env::configure(env, &location)?;
        let stats = Arc::new(RequestStats::default());
        let client = client
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_pool_max_idle_per_host(options.connections);
        let conditional = if options.conditional_put {
            S3ConditionalPut::ETagMatch
        } else {
            S3ConditionalPut::Disabled
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("cairn-s3-io")
            .enable_all()
            .build()
            .map_err(S3Error::Runtime)?;
        let _guard = runtime.enter();
        let store = builder
            .with_client_options(client)
            .with_retry(options.retry.to_object_store())
            .with_http_connector(MeteredConnector::new(stats.clone(), options.connections))
            .with_conditional_put(conditional)
            // One key per delete: a plain DELETE is in every S3 dialect,
            // the bulk POST is not (and needs Content-MD5).
            .with_disable_bulk_delete(true)
            .build()
            .map_err(|source| S3Error::Config {
                bucket: location.bucket.clone(),
                source,
            })?;
        drop(_guard);
        Ok(S3Backend {
            store,
            location,
            options: options.clone(),
            settings,
            stats,
            upload_budget: tokio::sync::Semaphore::new(budget_units(options.upload_memory) as usize),
            runtime,
        })
    }

    /// Requests made and bytes moved so far.
    pub fn stats(&self) -> RequestStatsSnapshot {
        self.stats.snapshot()
    }

    /// The endpoint, region, addressing and credential source in use.
    pub fn settings(&self) -> &ResolvedSettings {
        &self.settings
    }

    /// The bucket and prefix.
    pub fn s3_location(&self) -> &S3Location {
        &self.location
    }

    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// How errors name a key: the whole URL, so a user can find it.
    fn name(&self, key: &str) -> String {
        let mut l = self.location.to_string();
        if !key.is_empty() {
            l.push('/');
            l.push_str(key);
        }
        l
    }

    fn path(&self, key: &str) -> Result<Path, BackendError> {
        Path::parse(self.location.key(key)).map_err(|e| self.remote(key, &e))
    }

    fn remote(&self, key: &str, e: &(dyn std::error::Error + 'static)) -> BackendError {
        BackendError::Remote {
            key: self.name(key),
            source: Box::new(RemoteError::new(e)),
        }
    }

    pub(crate) fn err(&self, key: &str, e: object_store::Error) -> BackendError {
        match e {
            object_store::Error::NotFound { .. } => BackendError::NotFound {
                key: self.name(key),
            },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => BackendError::AlreadyExists {
                key: self.name(key),
            },
            e => self.remote(key, &e),
        }
    }

    /// A put answered "not found" means the bucket is missing, which is no
    /// `NotFound` of the key.
    fn put_err(&self, key: &str, e: object_store::Error) -> BackendError {
        match e {
            object_store::Error::NotFound { .. } => self.remote(key, &e),
            e => self.err(key, e),
        }
    }

    fn short(&self, key: &str, offset: u64, len: u64, size: u64) -> BackendError {
        let msg = format!("wanted {len} bytes at offset {offset}, the object has {size}");
        BackendError::Io {
            key: self.name(key),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, msg),
        }
    }

    /// Run `op` again after a timeout or a cut connection that object_store
    /// did not retry itself: it retries those only for requests it knows to
    /// be idempotent, and a conditional create or a delete is safe to repeat
    /// (a repeated create that finds its own object is settled by
    /// `settle_existing`). Bounded by the same retry options.
    async fn replaying<T, F, Fut>(&self, mut op: F) -> object_store::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let retry = &self.options.retry;
        let start = Instant::now();
        let mut replays = 0;
        loop {
            match op().await {
                Err(e)
                    if cut_short(&e)
                        && replays < retry.max_retries
                        && start.elapsed() < retry.timeout =>
                {
                    replays += 1;
                    tokio::time::sleep(backoff(retry, replays)).await;
                }
                other => return other,
            }
        }
    }

    /// Run a request that changes nothing again after any failure of the
    /// HTTP exchange itself (a listing cut off between pages, say), which
    /// object_store retries only for some requests. Bounded as retries are.
    async fn retrying_reads<T, F, Fut>(&self, mut op: F) -> object_store::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let retry = &self.options.retry;
        let start = Instant::now();
        let mut replays = 0;
        loop {
            match op().await {
                Err(e)
                    if transport_failure(&e)
                        && replays < retry.max_retries
                        && start.elapsed() < retry.timeout =>
                {
                    replays += 1;
                    tokio::time::sleep(backoff(retry, replays)).await;
                }
                other => return other,
            }
        }
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        let path = self.path(key)?;
        if !self.options.conditional_put {
            return self.put_after_head(key, &path, data).await;
        }
        let create = || {
            self.store
                .put_opts(&path, data.clone().into(), PutMode::Create.into())
        };
        match counting_puts(self.replaying(create)).await {
            (Ok(_), _) => Ok(()),
            (Err(object_store::Error::AlreadyExists { .. }), attempts) if attempts > 1 => {
                self.settle_existing(key, &path, &data).await
            }
            (Err(e), _) => Err(self.put_err(key, e)),
        }
    }

    /// A create refused after a retry: if the stored object is our data,
    /// the refused attempt was preceded by one of ours that got through.
    async fn settle_existing(
        &self,
        key: &str,
        path: &Path,
        data: &Bytes,
    ) -> Result<(), BackendError> {
        let stored = self.fetch(path).await.map_err(|e| self.err(key, e))?;
        if stored == *data {
            Ok(())
        } else {
            Err(BackendError::AlreadyExists {
                key: self.name(key),
            })
        }
    }

    /// Put-once without conditional requests: racy, see
    /// [`S3Options::conditional_put`].
    async fn put_after_head(
        &self,
        key: &str,
        path: &Path,
        data: Bytes,
    ) -> Result<(), BackendError> {
        self.refuse_existing(key, path).await?;
        // object_store marks an overwrite idempotent and retries it fully.
        self.store
            .put_opts(path, data.into(), PutMode::Overwrite.into())
            .await
            .map(drop)
            .map_err(|e| self.put_err(key, e))
    }

    async fn refuse_existing(&self, key: &str, path: &Path) -> Result<(), BackendError> {
        match self.store.head(path).await {
            Ok(_) => Err(BackendError::AlreadyExists {
                key: self.name(key),
            }),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Wait until `bytes` of upload memory are free and take them (all of
    /// the budget when `bytes` is more), until the permit is dropped.
    async fn reserve_upload(&self, bytes: u64) -> tokio::sync::SemaphorePermit<'_> {
        let whole = budget_units(self.options.upload_memory);
        let units = budget_units(bytes).min(whole);
        self.upload_budget
            .acquire_many(units)
            .await
            .expect("the upload budget is never closed")
    }

    async fn fetch(&self, path: &Path) -> object_store::Result<Bytes> {
        self.store.get(path).await?.bytes().await
    }

    /// A large file in parts. object_store 0.14 completes a multipart
    /// upload without `If-None-Match`, so put-once is a `HEAD` first, racy
    /// as with `conditional_put: false`; only packs are this large, and
    /// racing writers of a pack write the same bytes.
    async fn put_multipart(&self, key: &str, file: &LocalPath) -> Result<(), BackendError> {
        let path = self.path(key)?;
        self.refuse_existing(key, &path).await?;
        let mut reader = std::fs::File::open(file).map_err(|e| local_err(file, e))?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| self.put_err(key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.options.part_size);
        let mut buf = vec![0u8; self.options.part_size];
        loop {
            let n = match read_full(&mut reader, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(local_err(file, e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.put_err(key, e));
            }
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map(drop)
            .map_err(|e| self.put_err(key, e))
    }

    async fn range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        let path = self.path(key)?;
        if len == 0 {
            return self
                .store
                .head(&path)
                .await
                .map(|_| Vec::new())
                .map_err(|e| self.err(key, e));
        }
        match self.store.get_range(&path, offset..offset + len).await {
            Ok(b) if b.len() as u64 == len => Ok(Vec::from(b)),
            Ok(b) => Err(self.short(key, offset, len, offset + b.len() as u64)),
            Err(e) => Err(self.range_failed(key, &path, offset, len, e).await),
        }
    }

    /// A range request that failed: a missing object is `NotFound`, a range
    /// past its end a short read, anything else the store's error.
    async fn range_failed(
        &self,
        key: &str,
        path: &Path,
        offset: u64,
        len: u64,
        e: object_store::Error,
    ) -> BackendError {
        if let object_store::Error::NotFound { .. } = e {
            return BackendError::NotFound {
                key: self.name(key),
            };
        }
        // A range that starts past the end is refused (416) rather than
        // answered short; tell that apart from a real failure.
        match self.store.head(path).await {
            Ok(meta) if meta.size < offset + len => self.short(key, offset, len, meta.size),
            Err(object_store::Error::NotFound { .. }) => BackendError::NotFound {
                key: self.name(key),
            },
            _ => self.err(key, e),
        }
    }

    async fn list_under(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        // object_store lists whole path segments; list the directory part
        // and keep the keys that start with the rest.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let full = self.location.key(dir);
        let full = full.trim_end_matches('/');
        let dir_path = if full.is_empty() {
            None
        } else {
            Some(Path::parse(full).map_err(|e| self.remote(prefix, &e))?)
        };
        // A listing cut off between pages is taken again from the start:
        // object_store retries failed requests, not a body that breaks off.
        let mut out = self
            .retrying_reads(|| self.list_once(dir_path.as_ref(), prefix))
            .await
            .map_err(|e| self.err(prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn list_once(
        &self,
        dir: Option<&Path>,
        prefix: &str,
    ) -> object_store::Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut objects = self.store.list(dir);
        while let Some(meta) = objects.next().await {
            let meta = match meta {
                Ok(m) => m,
                // No bucket: nothing under the prefix, as for a missing directory.
                Err(e) if no_such_bucket(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            if let Some(key) = self.location.relative(meta.location.as_ref()) {
                if key.starts_with(prefix) {
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: meta.size,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn first_object(&self) -> Result<LocationState, BackendError> {
        let prefix = if self.location.prefix.is_empty() {
            None
        } else {
            Some(Path::parse(&self.location.prefix).map_err(|e| self.remote("", &e))?)
        };
        let first = self
            .retrying_reads(|| async { self.store.list(prefix.as_ref()).try_next().await })
            .await;
        match first {
            Ok(Some(_)) => Ok(LocationState::Occupied),
            Ok(None) => Ok(LocationState::Empty),
            Err(e) if no_such_bucket(&e) => Ok(LocationState::Missing),
            Err(e) => Err(self.err("", e)),
        }
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.to_string()
    }

    fn concurrency(&self) -> usize {
        self.options.connections.max(1)
    }

    fn remote(&self) -> bool {
        true
    }

    fn request_stats(&self) -> Option<cairn_repo::RequestStats> {
        let s = self.stats();
        Some(cairn_repo::RequestStats {
            put: s.put,
            get: s.get,
            list: s.list,
            delete: s.delete,
            head: s.head,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            failed: s.failed,
        })
    }

    /// `Missing` when the bucket does not exist, `Empty` when no object
    /// has the prefix (a prefix exists only through its objects). One
    /// listing page.
    fn probe(&self) -> Result<LocationState, BackendError> {
        self.block_on(self.first_object())
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<(), BackendError> {
        self.block_on(self.put_bytes(key, Bytes::copy_from_slice(data)))
    }

    /// Files up to `multipart_threshold` are read whole and put as `put`
    /// does; larger ones go up in parts. Either waits first until its
    /// memory fits in what `upload_memory` has left.
    fn put_file(&self, key: &str, file: &LocalPath) -> Result<(), BackendError> {
        let result = match std::fs::metadata(file) {
            Err(e) => Err(local_err(file, e)),
            Ok(m) if m.len() > self.options.multipart_threshold => {
                let held = (PARTS_IN_FLIGHT as u64 + 1) * self.options.part_size as u64;
                self.block_on(async {
                    let _budget = self.reserve_upload(held).await;
                    self.put_multipart(key, file).await
                })
            }
            Ok(m) => self.block_on(async {
                let _budget = self.reserve_upload(m.len()).await;
                match std::fs::read(file) {
                    Ok(data) => self.put_bytes(key, data.into()).await,
                    Err(e) => Err(local_err(file, e)),
                }
            }),
        };
        let _ = std::fs::remove_file(file);
        result
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, BackendError> {
        let path = self.path(key)?;
        self.block_on(self.fetch(&path))
            .map(Vec::from)
            .map_err(|e| self.err(key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        self.block_on(self.range(key, offset, len))
    }

    /// One GET whose body is handed over as it arrives (see
    /// [`RangeStream`]); it holds a connection until read or dropped.
    fn open_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send + '_>, BackendError> {
        if len == 0 {
            return Ok(Box::new(io::Cursor::new(self.get_range(key, offset, 0)?)));
        }
        let path = self.path(key)?;
        let options = GetOptions::new().with_range(Some(offset..offset + len));
        match self.block_on(self.store.get_opts(&path, options)) {
            Ok(got) => Ok(Box::new(RangeStream::new(
                self,
                key,
                got.into_stream(),
                len,
            ))),
            Err(e) => Err(self.block_on(self.range_failed(key, &path, offset, len, e))),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.block_on(self.list_under(prefix))
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        let path = self.path(key)?;
        match self.block_on(self.replaying(|| self.store.delete(&path))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }
}

/// `bytes` in budget units, rounded up, at least one and at most what a
/// semaphore hands out at once.
fn budget_units(bytes: u64) -> u32 {
    bytes
        .div_ceil(BUDGET_UNIT)
        .clamp(1, u64::from(u32::MAX >> 4)) as u32
}

fn local_err(file: &LocalPath, e: io::Error) -> BackendError {
    BackendError::from_io(file.display().to_string(), e)
}

/// Fill `buf` unless the file ends first; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// object_store reports a listing of a missing bucket as a generic error;
/// S3's error code says what it is.
fn no_such_bucket(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
        || e.to_string().contains("<Code>NoSuchBucket</Code>")
}

/// Whether `e` is a timeout or a connection cut mid-request, which
/// object_store leaves unretried for requests it cannot tell are safe to repeat.
fn cut_short(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            return matches!(
                h.kind(),
                HttpErrorKind::Timeout | HttpErrorKind::Interrupted
            );
        }
        source = s.source();
    }
    false
}

/// Any failure of the HTTP exchange itself (not an answer from the
/// store): safe to repeat for a request that changes nothing, such as a
/// listing.
fn transport_failure(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<HttpError>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The wait before replay `n` (from 1): exponential, capped, with jitter.
fn backoff(retry: &crate::RetryOptions, n: usize) -> Duration {
    let ceiling = retry
        .initial_backoff
        .mul_f64(retry.base.powi(n as i32 - 1))
        .min(retry.max_backoff);
    ceiling.mul_f64(0.5 + 0.5 * jitter())
}

/// A number in [0, 1) that differs between calls and processes.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryOptions;

    #[test]
    fn replay_waits_grow_and_stay_bounded() {
        let r = RetryOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryOptions::default()
        };
        assert!(backoff(&r, 1) <= Duration::from_millis(100));
        assert!(backoff(&r, 1) >= Duration::from_millis(50));
        assert!(backoff(&r, 30) <= Duration::from_secs(1));
        assert!(backoff(&r, 30) >= Duration::from_millis(500));
    }

    #[test]
    fn upload_budget_units_round_up_and_stay_in_range() {
        assert_eq!(budget_units(0), 1);
        assert_eq!(budget_units(1), 1);
        assert_eq!(budget_units(BUDGET_UNIT + 1), 2);
        assert_eq!(budget_units(64 << 20), 1024);
        assert_eq!(budget_units(u64::MAX), u32::MAX >> 4);
    }

    #[test]
    fn short_reads_fill_what_they_can() {
        let mut src: &[u8] = b"abc";
        let mut buf = [0u8; 5];
        assert_eq!(read_full(&mut src, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }
}
