//! `Segment::decode` on arbitrary bytes. A segment is named by the hash of
//! its bytes, so what decodes must encode back to exactly those bytes.
#![no_main]

use cairn_repo::format::segment::Segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(seg) = Segment::decode(data) else {
        return;
    };
    let bytes = seg.encode();
    assert_eq!(bytes, data, "decoded segment re-encodes to other bytes");
    assert_eq!(Segment::decode(&bytes).as_ref(), Ok(&seg));
});
