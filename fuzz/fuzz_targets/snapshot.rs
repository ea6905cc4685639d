//! `Snapshot::decode` on arbitrary bytes, under their own id (so the JSON
//! parser is reached) and under a wrong one (always refused). What decodes
//! must have a time that sorts (retention relies on it) and must store and
//! read back as the same snapshot.
#![no_main]

use cairn_repo::{Id, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut wrong = Id::of(data);
    wrong.0[0] ^= 1;
    assert!(
        Snapshot::decode(&wrong, data).is_err(),
        "accepted under a wrong id"
    );

    let Ok(snap) = Snapshot::decode(&Id::of(data), data) else {
        return;
    };
    assert!(
        chrono::DateTime::parse_from_rfc3339(&snap.time).is_ok(),
        "accepted time {:?}",
        snap.time
    );
    let bytes = snap.encode();
    let back = Snapshot::decode(&Id::of(&bytes), &bytes).expect("a stored snapshot reads back");
    // serde_json (without its float_roundtrip feature) parses floats to
    // within one ulp, not exactly: compare the duration apart.
    let (mut a, mut b) = (snap.clone(), back);
    let ulps =
        (a.summary.duration_s.to_bits() as i64 - b.summary.duration_s.to_bits() as i64).abs();
    assert!(
        ulps <= 1,
        "duration {} read back as {}",
        a.summary.duration_s,
        b.summary.duration_s
    );
    a.summary.duration_s = 0.0;
    b.summary.duration_s = 0.0;
    assert_eq!(a, b);
});
