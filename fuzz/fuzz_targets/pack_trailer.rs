//! The pack trailer parsers on arbitrary bytes: `parse_pack` on the input as
//! a whole pack, `parse_footer` on its last 28 bytes, and (because a random
//! input almost never carries a correct checksum) `parse_pack` and
//! `parse_entries` again on a pack built from the input with a correct
//! checksum, so the entry checks themselves get fuzzed. Whatever is
//! accepted must lie within the pack's data area (docs/FORMAT.md 6).
#![no_main]

use cairn_repo::format::pack::{
    parse_entries, parse_footer, parse_pack, BlobEntry, ENTRY_LEN, FOOTER_LEN, PACK_MAGIC,
};
use libfuzzer_sys::fuzz_target;

fn assert_within(entries: &[BlobEntry], data_len: u64) {
    for e in entries {
        let end = e.offset.checked_add(u64::from(e.stored_len));
        assert!(
            end.is_some_and(|end| end <= data_len),
            "blob at {} (+{}) accepted past the data area of {data_len} bytes",
            e.offset,
            e.stored_len
        );
    }
}

fn check_pack(pack: &[u8]) {
    if let Ok(entries) = parse_pack(pack) {
        let table = entries.len() * ENTRY_LEN;
        assert!(table + FOOTER_LEN <= pack.len());
        assert_within(&entries, (pack.len() - FOOTER_LEN - table) as u64);
    }
}

fuzz_target!(|data: &[u8]| {
    check_pack(data);
    if data.len() >= FOOTER_LEN {
        if let Ok((count, _)) = parse_footer(&data[data.len() - FOOTER_LEN..]) {
            assert!(count <= u32::MAX as usize);
        }
    }

    // First byte: how many entries; the last 52 * n bytes: the entry table;
    // the rest: the data area. The footer is made to match.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len() / ENTRY_LEN);
    let (area, table) = rest.split_at(rest.len() - n * ENTRY_LEN);
    let hash: [u8; 16] = blake3::hash(table).as_bytes()[..16].try_into().unwrap();
    let mut pack = rest.to_vec();
    pack.extend_from_slice(&hash);
    pack.extend_from_slice(&(n as u32).to_le_bytes());
    pack.extend_from_slice(PACK_MAGIC);
    check_pack(&pack);
    if let Ok(entries) = parse_entries(table, &hash, area.len() as u64) {
        assert_eq!(entries.len(), n);
        assert_within(&entries, area.len() as u64);
    }
});
