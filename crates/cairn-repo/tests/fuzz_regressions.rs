//! Inputs the fuzz targets in `fuzz/` found (or that review found while
//! writing them), each as the smallest input that shows the bug, and the
//! fuzzer's own input where it is a whole object (`tests/fuzz-regressions/`).

use std::path::Path;
use std::sync::Arc;

use cairn_repo::format::pack::{encode_trailer, parse_pack, BlobEntry, BlobKind};
use cairn_repo::format::segment::Segment;
use cairn_repo::{Error, Id, LocalBackend, Repository, Tree};

fn artifact(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tree of one file named `a` whose mode is encoded as `mode`, every
/// other field a one-byte zero.
fn tree_with_mode(mode: &[u8]) -> Vec<u8> {
    let mut t = vec![1, 1, 1, b'a', 0];
    t.extend_from_slice(mode);
    t.extend_from_slice(&[0; 15]);
    t
}

#[test]
fn fuzz_regression_tree_with_overlong_varint_is_rejected() {
    assert!(Tree::decode(&tree_with_mode(&[0])).is_ok());
    // 0 as two bytes used to decode as 0 too: a second encoding of the same
    // tree, with another id.
    assert!(Tree::decode(&tree_with_mode(&[0x80, 0x00])).is_err());
    assert!(Tree::decode(&tree_with_mode(&[0xed, 0x80, 0x00])).is_err());
    // What the fuzzer found: a size of 0x2aaaaaaa... written with a trailing
    // zero continuation byte.
    assert!(Tree::decode(&artifact("tree-overlong-varint")).is_err());
}

#[test]
fn fuzz_regression_tree_varint_with_bits_past_64_is_rejected() {
    // The tenth byte of a varint holds bit 63 only; 0x7f there used to be
    // cut to 1 silently, so both of these read as u64::MAX.
    let mut canonical = vec![0xff; 9];
    canonical.push(0x01);
    let mut lossy = vec![0xff; 9];
    lossy.push(0x7f);
    // After version, count, name (2), kind, mode, uid, gid and four time fields.
    let dev_at = 12;
    let with_dev = |dev: &[u8]| {
        let mut t = tree_with_mode(&[0]);
        t.splice(dev_at..dev_at + 1, dev.iter().copied());
        t
    };
    let tree = Tree::decode(&with_dev(&canonical)).unwrap();
    assert_eq!(tree.nodes[0].dev, u64::MAX);
    assert!(Tree::decode(&with_dev(&lossy)).is_err());
}

#[test]
fn fuzz_regression_segment_with_nonzero_reserved_bytes_is_rejected() {
    let mut seg = b"CRNINDX1".to_vec();
    seg.extend_from_slice(&0u32.to_le_bytes()); // supersedes nothing
    seg.extend_from_slice(&1u32.to_le_bytes()); // one pack
    seg.extend_from_slice(&[7; 32]);
    seg.extend_from_slice(&1u32.to_le_bytes()); // one blob
    seg.extend_from_slice(&[9; 32]); // blob id
    seg.extend_from_slice(&[0, 0]); // data, no flags
    let reserved_at = seg.len();
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(&5u32.to_le_bytes());
    seg.extend_from_slice(&5u32.to_le_bytes());
    seg.extend_from_slice(&16u64.to_le_bytes());
    assert_eq!(Segment::decode(&seg).unwrap().encode(), seg);
    // Reserved bytes that are not 0 used to be dropped on reading, so the
    // segment re-encoded to other bytes (and another name).
    seg[reserved_at] = 1;
    assert!(Segment::decode(&seg).is_err());
    assert!(Segment::decode(&artifact("segment-reserved-bytes")).is_err());
}

#[test]
fn fuzz_regression_pack_entry_whose_end_overflows_is_rejected() {
    // offset + stored_len wrapped past u64::MAX: a panic with overflow
    // checks, and without them an entry "within" the 16-byte data area.
    let entry = BlobEntry {
        id: Id::of(b"x"),
        kind: BlobKind::Data,
        flags: 0,
        stored_len: 2,
        raw_len: 2,
        offset: u64::MAX,
        frame: None,
    };
    let mut pack = vec![0u8; 16];
    pack.extend_from_slice(&encode_trailer(&[entry]));
    assert!(parse_pack(&pack).is_err());
}

/// Open a repository whose `config` holds `config`.
fn open_with_config(config: &[u8]) -> cairn_repo::Result<Repository> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config"), config).unwrap();
    Repository::open(Arc::new(LocalBackend::new(dir.path())), None)
}

#[test]
fn fuzz_regression_config_with_chunk_sizes_fastcdc_refuses_is_corrupt() {
    // Accepted before: backup then cut with these sizes, and FastCDC
    // asserts on a minimum of 0.
    let config = String::from_utf8(artifact("config-odd-chunk-avg")).unwrap();
    let err = open_with_config(config.as_bytes()).err();
    assert!(matches!(err, Some(Error::Corrupt { .. })), "{err:?}");
    let zero_min = config.replace("\"min\": 8192", "\"min\": 0");
    let zero_min = zero_min.replace("32615", "32768");
    let err = open_with_config(zero_min.as_bytes()).err();
    assert!(matches!(err, Some(Error::Corrupt { .. })), "{err:?}");
    let fixed = config.replace("32615", "32768");
    assert!(open_with_config(fixed.as_bytes()).is_ok());
}

#[test]
fn fuzz_regression_config_version_past_u32_is_a_newer_format() {
    // 2^32 + 1 used to be cut to 1 before the version check, and the
    // config then failed as corrupt instead of asking for a newer cairn.
    let config = String::from_utf8(artifact("config-odd-chunk-avg"))
        .unwrap()
        .replace("32615", "32768")
        .replace("\"version\": 1", "\"version\": 4294967297");
    let err = open_with_config(config.as_bytes()).err();
    assert!(matches!(err, Some(Error::NewerFormat { .. })), "{err:?}");
}
