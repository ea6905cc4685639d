//! Randomness for ids and salts.

use cairn_chunk::Id;

/// Random bytes from the kernel, mixed with the time and pid so that a
/// machine without a working `getrandom` still gets unique values.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut seed = [0u8; 32];
    // SAFETY: the buffer is valid for its length; getrandom writes at most that.
    let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    let mut h = blake3::Hasher::new();
    if got < 0 {
        h.update(&std::process::id().to_le_bytes());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.update(&now.as_nanos().to_le_bytes());
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        h.update(
            &N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes(),
        );
    }
    h.update(&seed);
    let mut out = [0u8; N];
    h.finalize_xof().fill(&mut out);
    out
}

/// A random id (repository ids, lock runs, salts).
pub fn random_id() -> Id {
    Id(random_bytes())
}

/// A name no other process or run will pick: `prefix` and 32 random hex
/// digits. Temporary and spool files are named this way and created
/// exclusively, so leftovers of a dead process can never be in the way of
/// a live one (a pid, reused after a process dies, could).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(random_bytes::<16>()))
}
