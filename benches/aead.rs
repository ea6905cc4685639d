//! CPU cost per byte of the AEAD candidates for sealing cairn's objects, on
//! one thread, at a chunk's size (32 KiB) and a frame's (256 KiB). Each
//! seal and open includes its per-object key setup; the last rows are
//! cairn's own sealing (nonce, key derivation and output buffer included).
//! Run: `cargo bench --bench aead` (CPU time of this process, so the load
//! other processes put on the machine disturbs it little).

use std::hint::black_box;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use cairn_repo::format::aead::{Cipher, SealingKey};

const KEY: [u8; 32] = [7; 32];
const NONCE24: [u8; 24] = [9; 24];
const AAD: &[u8] = b"cairn2:data-frame";

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU nanoseconds per byte of `f` over `buf`, best of five half-second
/// rounds (the best is the one least disturbed).
fn ns_per_byte(buf: &mut [u8], mut f: impl FnMut(&mut [u8])) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = cpu_seconds();
        let mut bytes = 0usize;
        while cpu_seconds() - start < 0.5 {
            for _ in 0..16 {
                f(black_box(&mut *buf));
                bytes += buf.len();
            }
        }
        best = best.min((cpu_seconds() - start) * 1e9 / bytes as f64);
    }
    best
}

/// One candidate: seal `buf` in place (tag dropped), and open a sealed copy.
struct Candidate {
    name: &'static str,
    seal: fn(&mut [u8]) -> [u8; 16],
    open: fn(&mut [u8], &[u8; 16]),
}

fn rc_xchacha_seal(buf: &mut [u8]) -> [u8; 16] {
    let c = chacha20poly1305::XChaCha20Poly1305::new(&KEY.into());
    let tag = c
        .encrypt_in_place_detached(&NONCE24.into(), AAD, buf)
        .unwrap();
    tag.into()
}

fn rc_xchacha_open(buf: &mut [u8], tag: &[u8; 16]) {
    let c = chacha20poly1305::XChaCha20Poly1305::new(&KEY.into());
    c.decrypt_in_place_detached(&NONCE24.into(), AAD, buf, tag.into())
        .unwrap();
}

fn rc_aes_gcm_seal(buf: &mut [u8]) -> [u8; 16] {
    let c = aes_gcm::Aes256Gcm::new(&KEY.into());
    let nonce: [u8; 12] = NONCE24[..12].try_into().unwrap();
    c.encrypt_in_place_detached(&nonce.into(), AAD, buf)
        .unwrap()
        .into()
}

fn rc_aes_gcm_open(buf: &mut [u8], tag: &[u8; 16]) {
    let c = aes_gcm::Aes256Gcm::new(&KEY.into());
    let nonce: [u8; 12] = NONCE24[..12].try_into().unwrap();
    c.decrypt_in_place_detached(&nonce.into(), AAD, buf, tag.into())
        .unwrap();
}

fn rc_aes_gcm_siv_seal(buf: &mut [u8]) -> [u8; 16] {
    let c = aes_gcm_siv::Aes256GcmSiv::new(&KEY.into());
    let nonce: [u8; 12] = NONCE24[..12].try_into().unwrap();
    c.encrypt_in_place_detached(&nonce.into(), AAD, buf)
        .unwrap()
        .into()
}

fn rc_aes_gcm_siv_open(buf: &mut [u8], tag: &[u8; 16]) {
    let c = aes_gcm_siv::Aes256GcmSiv::new(&KEY.into());
    let nonce: [u8; 12] = NONCE24[..12].try_into().unwrap();
    c.decrypt_in_place_detached(&nonce.into(), AAD, buf, tag.into())
        .unwrap();
}

/// XChaCha20-Poly1305 through aws-lc's ChaCha20-Poly1305: the subkey is
/// HChaCha20 of the key and the nonce's first 16 bytes, the 96-bit nonce
/// four zero bytes and the last 8 (the XChaCha20 construction).
fn lc_xchacha_key() -> (LessSafeKey, Nonce) {
    let prefix: [u8; 16] = NONCE24[..16].try_into().unwrap();
    let sub = chacha20::hchacha::<chacha20::cipher::consts::U10>(&KEY.into(), &prefix.into());
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&NONCE24[16..]);
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &sub).unwrap());
    (key, Nonce::assume_unique_for_key(n))
}

fn lc_seal(key: LessSafeKey, nonce: Nonce, buf: &mut [u8]) -> [u8; 16] {
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(AAD), buf)
        .unwrap();
    tag.as_ref().try_into().unwrap()
}

fn lc_open(key: LessSafeKey, nonce: Nonce, buf: &mut [u8], tag: &[u8; 16]) {
    key.open_in_place_separate_tag(nonce, Aad::from(AAD), tag, buf)
        .unwrap();
}

fn lc_xchacha_seal(buf: &mut [u8]) -> [u8; 16] {
    let (key, nonce) = lc_xchacha_key();
    lc_seal(key, nonce, buf)
}

fn lc_xchacha_open(buf: &mut [u8], tag: &[u8; 16]) {
    let (key, nonce) = lc_xchacha_key();
    lc_open(key, nonce, buf, tag)
}

fn lc_aes_gcm_key() -> (LessSafeKey, Nonce) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
    let n: [u8; 12] = NONCE24[..12].try_into().unwrap();
    (key, Nonce::assume_unique_for_key(n))
}

fn lc_aes_gcm_seal(buf: &mut [u8]) -> [u8; 16] {
    let (key, nonce) = lc_aes_gcm_key();
    lc_seal(key, nonce, buf)
}

fn lc_aes_gcm_open(buf: &mut [u8], tag: &[u8; 16]) {
    let (key, nonce) = lc_aes_gcm_key();
    lc_open(key, nonce, buf, tag)
}

fn main() {
    let candidates = [
        Candidate {
            name: "xchacha20-poly1305 (chacha20poly1305, before)",
            seal: rc_xchacha_seal,
            open: rc_xchacha_open,
        },
        Candidate {
            name: "xchacha20-poly1305 (hchacha + aws-lc-rs)",
            seal: lc_xchacha_seal,
            open: lc_xchacha_open,
        },
        Candidate {
            name: "aes-256-gcm (aes-gcm)",
            seal: rc_aes_gcm_seal,
            open: rc_aes_gcm_open,
        },
        Candidate {
            name: "aes-256-gcm (aws-lc-rs)",
            seal: lc_aes_gcm_seal,
            open: lc_aes_gcm_open,
        },
        Candidate {
            name: "aes-256-gcm-siv (aes-gcm-siv)",
            seal: rc_aes_gcm_siv_seal,
            open: rc_aes_gcm_siv_open,
        },
    ];
    // The implementations must agree where they compute the same thing.
    let mut a = vec![5u8; 1000];
    let mut b = a.clone();
    assert_eq!(rc_xchacha_seal(&mut a), lc_xchacha_seal(&mut b));
    assert_eq!(a, b);
    let (mut a, mut b) = (vec![5u8; 1000], vec![5u8; 1000]);
    assert_eq!(rc_aes_gcm_seal(&mut a), lc_aes_gcm_seal(&mut b));
    assert_eq!(a, b);

    println!("CPU ns per byte, one thread (lower is better; GB/s = 1 / ns)");
    println!(
        "{:46} {:>9} {:>9} {:>9} {:>9}",
        "cipher", "seal 32K", "open 32K", "seal 256K", "open 256K"
    );
    for c in &candidates {
        let mut row = Vec::new();
        for len in [32 << 10, 256 << 10] {
            let mut buf = vec![0x5au8; len];
            row.push(ns_per_byte(&mut buf, |b| {
                black_box((c.seal)(b));
            }));
            let tag = (c.seal)(&mut buf);
            // Opening decrypts in place: each round opens a fresh copy of
            // the sealed bytes, so open includes one memcpy (its cost is the
            // last row).
            let sealed = buf.clone();
            row.push(ns_per_byte(&mut buf, |b| {
                b.copy_from_slice(&sealed);
                (c.open)(b, &tag);
            }));
        }
        println!(
            "{:46} {:9.3} {:9.3} {:9.3} {:9.3}",
            c.name, row[0], row[1], row[2], row[3]
        );
    }
    // What cairn pays per object: a random nonce, the object key derived
    // from it, and the sealed bytes in a buffer of their own.
    for cipher in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
        let key = SealingKey::new(cipher, &KEY);
        let mut row = Vec::new();
        for len in [32 << 10, 256 << 10] {
            let mut buf = vec![0x5au8; len];
            row.push(ns_per_byte(&mut buf, |b| {
                black_box(key.seal(AAD, b).unwrap());
            }));
            let sealed = key.seal(AAD, &buf).unwrap();
            row.push(ns_per_byte(&mut buf, |b| {
                key.open_then(AAD, &sealed, |p| black_box(p.len())).unwrap();
                black_box(b);
            }));
        }
        println!(
            "{:46} {:9.3} {:9.3} {:9.3} {:9.3}",
            format!("cairn SealingKey {}", cipher.name()),
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    let mut buf = vec![0x5au8; 256 << 10];
    let src = buf.clone();
    println!(
        "{:46} {:9} {:9} {:9.3}",
        "reference: memcpy 256K",
        "",
        "",
        ns_per_byte(&mut buf, |b| b.copy_from_slice(&src))
    );
}
