//! Faults between the backend and the store, injected by a proxy in front
//! of moto: transient 503s, slow answers and cut connections are retried
//! and the operation succeeds; a store that keeps failing gives one clear
//! error naming the key, within the retry bounds.

mod common;

use std::time::{Duration, Instant};

use cairn_repo::{Backend, BackendError};
use cairn_s3::{S3Backend, S3Options};
use common::proxy::{Fault, FaultProxy};
use common::{backend, moto, quick_options};

/// A backend reaching a fresh bucket of moto through a new proxy.
fn through_proxy(name: &str, options: &S3Options) -> Option<(S3Backend, FaultProxy)> {
    let moto = moto()?;
    let bucket = moto.bucket(name);
    let proxy = FaultProxy::start(moto.addr);
    let b = backend(&proxy.endpoint(), &format!("s3://{bucket}/r"), options);
    Some((b, proxy))
}

#[test]
fn a_storm_of_503s_is_retried() {
    let Some((b, proxy)) = through_proxy("storm", &quick_options()) else {
        return;
    };
    proxy.next([Fault::SlowDown; 3]);
    b.put("packs/aa/one", b"data").unwrap();
    proxy.next([Fault::SlowDown; 3]);
    assert_eq!(b.get("packs/aa/one").unwrap(), b"data");
    proxy.next([Fault::SlowDown; 3]);
    assert_eq!(b.list("packs/").unwrap().len(), 1);
    proxy.next([Fault::SlowDown; 3]);
    b.delete("packs/aa/one").unwrap();
    let s = b.stats();
    assert_eq!(s.failed, 12, "{s:?}");
    assert_eq!((s.put, s.get, s.list, s.delete), (4, 4, 4, 4), "{s:?}");
}

#[test]
fn a_503_between_listing_pages_is_retried() {
    let Some((b, proxy)) = through_proxy("pages", &quick_options()) else {
        return;
    };
    common::conformance::listing_spans_pages(&b, 1100);
    let seen = proxy.seen();
    // The first page passes, the request for the second fails twice.
    proxy.next([Fault::Pass, Fault::SlowDown, Fault::SlowDown]);
    assert_eq!(b.list("many/").unwrap().len(), 1100);
    assert_eq!(proxy.seen() - seen, 4);
}

#[test]
fn slow_answers_time_out_and_are_retried() {
    let mut options = quick_options();
    options.request_timeout = Duration::from_millis(500);
    let Some((b, proxy)) = through_proxy("slow", &options) else {
        return;
    };
    b.put("index/seg", b"segment").unwrap();
    proxy.next([Fault::Delay(Duration::from_secs(2))]);
    assert_eq!(b.get("index/seg").unwrap(), b"segment");
    assert!(b.stats().failed >= 1);
}

#[test]
fn a_put_whose_answer_is_lost_still_succeeds() {
    // The store has the object but the answer never arrives: the retry is
    // refused as a duplicate, and the backend sees the object is its own.
    let mut options = quick_options();
    options.request_timeout = Duration::from_millis(500);
    let Some((b, proxy)) = through_proxy("lost", &options) else {
        return;
    };
    proxy.next([Fault::Delay(Duration::from_secs(2))]);
    b.put("snapshots/s1", b"snapshot").unwrap();
    let s = b.stats();
    assert_eq!(
        (s.put, s.get),
        (2, 1),
        "put, put refused, get to compare: {s:?}"
    );
    proxy.next([Fault::Cut]);
    b.put("snapshots/s2", b"snapshot 2").unwrap();
    let s = b.stats();
    assert_eq!((s.put, s.get), (4, 2), "{s:?}");
    assert_eq!(b.get("snapshots/s1").unwrap(), b"snapshot");
    assert_eq!(b.get("snapshots/s2").unwrap(), b"snapshot 2");
    // A different object under a taken key is still refused.
    proxy.next([Fault::Cut]);
    let clash = b.put("snapshots/s2", b"something else");
    assert!(
        matches!(clash, Err(BackendError::AlreadyExists { .. })),
        "{clash:?}"
    );
}

#[test]
fn a_cut_download_is_resumed() {
    let Some((b, proxy)) = through_proxy("cut", &quick_options()) else {
        return;
    };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    b.put("packs/cc/pack", &data).unwrap();
    proxy.next([Fault::Cut]);
    assert_eq!(b.get("packs/cc/pack").unwrap(), data);
    proxy.next([Fault::Cut]);
    assert_eq!(
        b.get_range("packs/cc/pack", 1000, 50_000).unwrap(),
        data[1000..51_000]
    );
}

#[test]
fn a_store_that_keeps_failing_gives_one_error_naming_the_key() {
    let Some((b, proxy)) = through_proxy("down", &quick_options()) else {
        return;
    };
    proxy.always(Fault::SlowDown);
    let start = Instant::now();
    let err = b.put("packs/dd/doomed", b"data").unwrap_err();
    let elapsed = start.elapsed();
    let msg = err.to_string();
    assert!(matches!(err, BackendError::Remote { .. }), "{err:?}");
    assert!(msg.contains("/r/packs/dd/doomed"), "{msg}");
    assert!(msg.contains("503") && msg.contains("SlowDown"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        elapsed < Duration::from_secs(10),
        "gave up after {elapsed:?}"
    );
    let s = b.stats();
    assert_eq!(s.put, 5, "one attempt and max_retries retries: {s:?}");
    eprintln!("{msg}");
    let err = b.get("packs/dd/doomed").unwrap_err().to_string();
    assert!(
        err.contains("packs/dd/doomed") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn an_unreachable_store_fails_within_the_retry_timeout() {
    let Some(moto) = moto() else { return };
    let _ = moto;
    // A port nothing listens on: connections are refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = backend(
        &format!("http://127.0.0.1:{port}"),
        "s3://b/r",
        &quick_options(),
    );
    let start = Instant::now();
    let err = b.get("config").unwrap_err().to_string();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(err.starts_with("s3://b/r/config: "), "{err}");
    eprintln!("{err}");
}
