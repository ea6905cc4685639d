//! The S3 backend against moto's S3 server on 127.0.0.1: the conformance
//! suite, paging, multipart uploads, request accounting, and what moto
//! does with conditional writes.

mod common;

use std::time::Instant;

use cairn_repo::{Backend, BackendError, LocationState};
use common::{backend, conformance, moto, quick_options, raw_request};

#[test]
fn s3_backend_passes_the_conformance_suite() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("conformance");
    let scratch = tempfile::tempdir().unwrap();
    let b = backend(
        &moto.endpoint(),
        &format!("s3://{bucket}/hosts/db1/"),
        &quick_options(),
    );
    conformance::run_all(&b, scratch.path());
    // Keys are relative to the prefix, and nothing lands outside it.
    let answer = raw_request(moto.addr, "GET", &format!("/{bucket}?list-type=2")).unwrap();
    assert!(answer.contains("<Key>hosts/db1/config</Key>"), "{answer}");
    assert!(!answer.contains("<Key>config</Key>"), "{answer}");
}

#[test]
fn a_bucket_root_is_a_location_too() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("root");
    let scratch = tempfile::tempdir().unwrap();
    let b = backend(
        &moto.endpoint(),
        &format!("s3://{bucket}"),
        &quick_options(),
    );
    conformance::run_all(&b, scratch.path());
}

#[test]
fn listing_follows_continuation_pages() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("paging");
    let b = backend(
        &moto.endpoint(),
        &format!("s3://{bucket}/r"),
        &quick_options(),
    );
    let start = Instant::now();
    conformance::listing_spans_pages(&b, 1100);
    let before = b.stats();
    b.list("many/").unwrap();
    let pages = b.stats().since(&before).list;
    assert_eq!(pages, 2, "1100 keys are two pages of 1000");
    eprintln!("1100 puts and 2 listings in {:?}", start.elapsed());
}

#[test]
fn a_missing_bucket_probes_missing_and_lists_nothing() {
    let Some(moto) = moto() else { return };
    let b = backend(&moto.endpoint(), "s3://no-such-bucket/r", &quick_options());
    assert_eq!(b.probe().unwrap(), LocationState::Missing);
    assert!(b.list("snapshots/").unwrap().is_empty());
    assert!(matches!(
        b.get("config"),
        Err(BackendError::NotFound { .. })
    ));
    let empty = backend(
        &moto.endpoint(),
        &format!("s3://{}/r", moto.bucket("empty")),
        &quick_options(),
    );
    assert_eq!(empty.probe().unwrap(), LocationState::Empty);
}

#[test]
fn prefixes_need_not_end_at_a_slash() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("partial");
    let b = backend(
        &moto.endpoint(),
        &format!("s3://{bucket}/r"),
        &quick_options(),
    );
    for key in ["plans/abc", "plans/abc.wait", "plans/abd", "plansx/y"] {
        b.put(key, b"{}").unwrap();
    }
    let keys: Vec<_> = b
        .list("plans/ab")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["plans/abc", "plans/abc.wait", "plans/abd"]);
}

#[test]
fn moto_honours_if_none_match_so_put_once_needs_no_head() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("conditional");
    let b = backend(
        &moto.endpoint(),
        &format!("s3://{bucket}/r"),
        &quick_options(),
    );
    b.put("config", b"one").unwrap();
    let again = b.put("config", b"two");
    assert!(
        matches!(again, Err(BackendError::AlreadyExists { .. })),
        "{again:?}"
    );
    let s = b.stats();
    assert_eq!(
        (s.put, s.head, s.get),
        (2, 0, 0),
        "the store refused the second put itself: {s:?}"
    );
    assert_eq!(b.get("config").unwrap(), b"one");
}

#[test]
fn without_conditional_put_a_head_guards_each_put() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("unconditional");
    let mut options = quick_options();
    options.conditional_put = false;
    let b = backend(&moto.endpoint(), &format!("s3://{bucket}/r"), &options);
    b.put("config", b"one").unwrap();
    let again = b.put("config", b"two");
    assert!(
        matches!(again, Err(BackendError::AlreadyExists { .. })),
        "{again:?}"
    );
    let s = b.stats();
    assert_eq!((s.put, s.head), (1, 2), "{s:?}");
    assert_eq!(b.get("config").unwrap(), b"one");
}

#[test]
fn large_files_go_up_in_parts() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("multipart");
    let mut options = quick_options();
    options.multipart_threshold = 6 << 20;
    options.part_size = 5 << 20;
    let b = backend(&moto.endpoint(), &format!("s3://{bucket}/r"), &options);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pack");
    let data: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    b.put_file("packs/ab/large", &file).unwrap();
    assert!(!file.exists());
    assert_eq!(b.get("packs/ab/large").unwrap(), data);
    let s = b.stats();
    // Create, three parts, complete.
    assert_eq!(s.put, 5, "{s:?}");
    assert!(s.bytes_sent >= data.len() as u64);
    std::fs::write(&file, &data[..7 << 20]).unwrap();
    let again = b.put_file("packs/ab/large", &file);
    assert!(
        matches!(again, Err(BackendError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(!file.exists());
}

#[test]
fn uploads_beyond_the_memory_budget_wait_their_turn() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("budget");
    let mut options = quick_options();
    // Less than one file: each takes the whole budget, one at a time.
    options.upload_memory = 64 << 10;
    let b = backend(&moto.endpoint(), &format!("s3://{bucket}/r"), &options);
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for t in 0..6u8 {
            let (b, dir) = (&b, dir.path());
            s.spawn(move || {
                let file = dir.join(format!("pack{t}"));
                std::fs::write(&file, vec![t; 300 << 10]).unwrap();
                b.put_file(&format!("packs/{t}"), &file).unwrap();
                assert!(!file.exists());
            });
        }
    });
    for t in 0..6u8 {
        assert_eq!(b.get(&format!("packs/{t}")).unwrap(), vec![t; 300 << 10]);
    }
}

#[test]
fn stats_count_requests_and_bytes_by_kind() {
    let Some(moto) = moto() else { return };
    let bucket = moto.bucket("stats");
    let b = backend(
        &moto.endpoint(),
        &format!("s3://{bucket}/r"),
        &quick_options(),
    );
    b.put("a", &[1u8; 1000]).unwrap();
    b.get("a").unwrap();
    b.get_range("a", 10, 100).unwrap();
    b.list("").unwrap();
    b.delete("a").unwrap();
    b.probe().unwrap();
    let s = b.stats();
    assert_eq!(
        (s.put, s.get, s.list, s.delete, s.head, s.failed),
        (1, 2, 2, 1, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.bytes_sent, 1000);
    assert!(s.bytes_received >= 1100, "{s:?}");
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["put"], 1);
    assert_eq!(json["bytes_sent"], 1000);
}
