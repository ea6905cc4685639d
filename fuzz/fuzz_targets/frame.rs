//! The frame decoders (docs/FORMAT.md 14) on arbitrary bytes: the input is
//! `[n][data area][n 60-byte entries]`; `parse_table_in` reads the entries
//! in the framed layout, and every accepted frame member is then decoded
//! (`decode_frame`) from the data area and cut out (`member`). What is
//! accepted must lie within the data area, inside its frame, and re-encode
//! to exactly the input (a pack is named by the hash of its bytes).
#![no_main]

use cairn_repo::format::frame::{decode_frame, member};
use cairn_repo::format::pack::{encode_entries, parse_table_in, FRAMED_ENTRY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len() / FRAMED_ENTRY_LEN);
    let (area, table) = rest.split_at(rest.len() - n * FRAMED_ENTRY_LEN);
    let Ok(entries) = parse_table_in(table, area.len() as u64, true) else {
        return;
    };
    assert_eq!(encode_entries(&entries), table, "table re-encodes to other bytes");
    for e in &entries {
        let start = e.offset as usize;
        let stored = &area[start..start + e.stored_len as usize];
        let Some(f) = e.frame else {
            continue;
        };
        assert!(u64::from(f.pos) + u64::from(e.raw_len) <= u64::from(f.raw_len));
        // Bounded: a forged frame length must not make the decoder allocate
        // without limit (zstd's bulk decompressor allocates raw_len).
        if f.raw_len > 1 << 20 {
            continue;
        }
        if let Ok(plain) = decode_frame(stored.into(), e.compressed(), f.raw_len) {
            assert_eq!(plain.len(), f.raw_len as usize);
            let m = member(&plain, e).expect("a member inside its frame");
            assert_eq!(m.len(), e.raw_len as usize);
        }
    }
});
