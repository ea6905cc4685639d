//! What every `Backend` must do, written once and run against each
//! implementation: a local directory, moto, and any S3 endpoint given to
//! the tests.

use std::io;
use std::path::Path;

use cairn_repo::{Backend, BackendError, LocationState, ObjectInfo};

/// Run every check on `b`, a location nothing has written to yet; `scratch`
/// is a directory for files given to `put_file`.
pub fn run_all(b: &dyn Backend, scratch: &Path) {
    fresh_location_is_not_occupied(b);
    put_is_once_only(b);
    get_returns_what_was_put(b);
    get_range_reads_exactly_or_fails(b);
    missing_objects_are_typed_not_found(b);
    listing_is_sorted_sized_and_relative(b);
    delete_removes_and_tolerates_missing(b);
    put_file_consumes_its_file(b, scratch);
    threads_share_one_backend(b);
    location_is_occupied_after_a_put(b);
}

fn keys(list: &[ObjectInfo]) -> Vec<&str> {
    list.iter().map(|o| o.key.as_str()).collect()
}

pub fn fresh_location_is_not_occupied(b: &dyn Backend) {
    let state = b.probe().unwrap();
    assert_ne!(state, LocationState::Occupied, "{}", b.location());
}

pub fn location_is_occupied_after_a_put(b: &dyn Backend) {
    b.put("probe/x", b"x").unwrap();
    assert_eq!(b.probe().unwrap(), LocationState::Occupied);
}

pub fn put_is_once_only(b: &dyn Backend) {
    b.put("config", b"first").unwrap();
    let again = b.put("config", b"second");
    assert!(
        matches!(again, Err(BackendError::AlreadyExists { ref key }) if key.contains("config")),
        "{again:?}"
    );
    let same = b.put("config", b"first");
    assert!(
        matches!(same, Err(BackendError::AlreadyExists { .. })),
        "{same:?}"
    );
    assert_eq!(b.get("config").unwrap(), b"first");
}

pub fn get_returns_what_was_put(b: &dyn Backend) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    b.put("packs/00/big", &data).unwrap();
    assert_eq!(b.get("packs/00/big").unwrap(), data);
    b.put("packs/00/empty", b"").unwrap();
    assert_eq!(b.get("packs/00/empty").unwrap(), b"");
}

pub fn get_range_reads_exactly_or_fails(b: &dyn Backend) {
    b.put("packs/01/range", b"hello world").unwrap();
    assert_eq!(b.get_range("packs/01/range", 6, 5).unwrap(), b"world");
    assert_eq!(
        b.get_range("packs/01/range", 0, 11).unwrap(),
        b"hello world"
    );
    assert_eq!(b.get_range("packs/01/range", 3, 0).unwrap(), b"");
    for (offset, len) in [(6, 6), (11, 1), (50, 4)] {
        match b.get_range("packs/01/range", offset, len) {
            Err(BackendError::Io { key, source }) => {
                assert_eq!(
                    source.kind(),
                    io::ErrorKind::UnexpectedEof,
                    "{offset}+{len}"
                );
                assert!(key.contains("packs/01/range"), "{key}");
            }
            other => panic!("short read {offset}+{len} gave {other:?}"),
        }
    }
}

pub fn missing_objects_are_typed_not_found(b: &dyn Backend) {
    let is_not_found = |r: Result<Vec<u8>, BackendError>| match r {
        Err(BackendError::NotFound { key }) => key.contains("missing/key"),
        _ => false,
    };
    assert!(is_not_found(b.get("missing/key")));
    assert!(is_not_found(b.get_range("missing/key", 0, 4)));
    assert!(is_not_found(b.get_range("missing/key", 0, 0)));
}

pub fn listing_is_sorted_sized_and_relative(b: &dyn Backend) {
    for (key, data) in [
        ("list/ab/2", &b"22"[..]),
        ("list/aa/1", b"1"),
        ("list/b/3", b"333"),
        ("listing-not-a-dir", b"x"),
    ] {
        b.put(key, data).unwrap();
    }
    let all = b.list("list/").unwrap();
    assert_eq!(keys(&all), ["list/aa/1", "list/ab/2", "list/b/3"]);
    assert_eq!(all.iter().map(|o| o.size).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(b.list("nothing/").unwrap().is_empty());
    let everything = b.list("").unwrap();
    assert!(keys(&everything).contains(&"list/b/3"));
    assert!(keys(&everything).contains(&"listing-not-a-dir"));
    assert!(everything.windows(2).all(|w| w[0].key < w[1].key));
}

pub fn delete_removes_and_tolerates_missing(b: &dyn Backend) {
    b.put("locks/run-1", b"{}").unwrap();
    b.delete("locks/run-1").unwrap();
    assert!(matches!(
        b.get("locks/run-1"),
        Err(BackendError::NotFound { .. })
    ));
    assert!(b.list("locks/").unwrap().is_empty());
    b.delete("locks/run-1").unwrap();
    b.delete("locks/never-written").unwrap();
    // A deleted key may be written again (a lock's next sequence number
    // does not, but nothing forbids it).
    b.put("locks/run-1", b"{}").unwrap();
}

pub fn put_file_consumes_its_file(b: &dyn Backend, scratch: &Path) {
    let dir = b.staging_dir().unwrap_or_else(|| scratch.to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pack-staged");
    std::fs::write(&file, b"pack bytes").unwrap();
    b.put_file("packs/02/staged", &file).unwrap();
    assert!(!file.exists(), "put_file removes its file");
    assert_eq!(b.get("packs/02/staged").unwrap(), b"pack bytes");
    std::fs::write(&file, b"other bytes").unwrap();
    let again = b.put_file("packs/02/staged", &file);
    assert!(
        matches!(again, Err(BackendError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(!file.exists(), "put_file removes its file when refused too");
    assert_eq!(b.get("packs/02/staged").unwrap(), b"pack bytes");
}

pub fn threads_share_one_backend(b: &dyn Backend) {
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in 0..5 {
                    let key = format!("threads/{t}/{i}");
                    b.put(&key, key.as_bytes()).unwrap();
                    assert_eq!(b.get(&key).unwrap(), key.as_bytes());
                }
            });
        }
    });
    assert_eq!(b.list("threads/").unwrap().len(), 40);
}

/// More keys than one listing page holds (S3 pages at 1000): written from
/// several threads, then listed whole.
pub fn listing_spans_pages(b: &dyn Backend, n: usize) {
    let threads = 16;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    b.put(&format!("many/{i:05}"), b"").unwrap();
                }
            });
        }
    });
    let listed = b.list("many/").unwrap();
    assert_eq!(listed.len(), n);
    assert_eq!(listed[0].key, "many/00000");
    assert_eq!(listed[n - 1].key, format!("many/{:05}", n - 1));
    assert!(listed.windows(2).all(|w| w[0].key < w[1].key));
}
