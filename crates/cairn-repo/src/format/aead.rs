//! The ciphers objects are sealed with (docs/FORMAT.md 13). Both take a
//! 24-byte random nonce and derive a key of their own per object from it:
//! XChaCha20-Poly1305 by HChaCha20 (as its definition says), AES-256-GCM by
//! keyed BLAKE3, so GCM's short nonce never repeats under one key. The
//! per-object AEAD is aws-lc's (assembly using AVX2, AVX-512, AES-NI and
//! carry-less multiply where the CPU has them). Pure: no I/O.

use aws_lc_rs::aead::{Aad, Algorithm, LessSafeKey, Nonce, UnboundKey};
use chacha20::cipher::consts::U10;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 24;
/// Bytes of an authentication tag.
pub const TAG_LEN: usize = 16;
/// What sealing adds to an object.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A repository's cipher, named by its config's `encryption` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// Format 2 and older format-3 repositories.
    XChaCha20Poly1305,
    /// Format 3 only: AES-256-GCM under a key derived per object.
    Aes256Gcm,
}

impl Cipher {
    /// The name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::XChaCha20Poly1305 => "xchacha20-poly1305",
            Cipher::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// The cipher a config names, if this cairn knows it.
    pub fn from_name(name: &str) -> Option<Cipher> {
        [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// The cipher of a new repository of format `version`: AES-256-GCM
    /// where this CPU has AES and carry-less multiply instructions (there it
    /// costs a tenth as much), XChaCha20-Poly1305 elsewhere and in format 2,
    /// which older cairn versions read.
    pub fn for_new_repository(version: u32) -> Cipher {
        if version >= 3 && aes_in_hardware() {
            Cipher::Aes256Gcm
        } else {
            Cipher::XChaCha20Poly1305
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn aes_in_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn aes_in_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_in_hardware() -> bool {
    false
}

/// Decryption failed: the key is wrong, or the object was changed.
#[derive(Debug, thiserror::Error)]
#[error("authentication failed (wrong key, or the object was altered)")]
pub struct OpenError;

/// A key every object of one cipher is sealed under, through the key
/// derived per object from it and the object's nonce. Wiped when dropped.
pub struct SealingKey {
    cipher: Cipher,
    /// XChaCha20-Poly1305: the data key. AES-256-GCM: the root the object
    /// keys are derived from (never a GCM key itself).
    key: Zeroizing<[u8; 32]>,
}

impl SealingKey {
    /// The sealing key of `cipher` for a repository's data key.
    pub fn new(cipher: Cipher, data_key: &[u8; 32]) -> SealingKey {
        let key = match cipher {
            Cipher::XChaCha20Poly1305 => Zeroizing::new(*data_key),
            Cipher::Aes256Gcm => Zeroizing::new(blake3::derive_key(
                "cairn 2026-11 aes-256-gcm object keys",
                data_key,
            )),
        };
        SealingKey { cipher, key }
    }

    /// The cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The AEAD key and 96-bit nonce of the object with this nonce; the
    /// derived bytes are wiped here, aws-lc wipes its copy when the key is
    /// dropped (its allocations are cleansed when freed).
    fn object_key(&self, nonce: &[u8]) -> (LessSafeKey, Nonce) {
        let mut sub = Zeroizing::new([0u8; 32]);
        let algorithm: &'static Algorithm = match self.cipher {
            Cipher::XChaCha20Poly1305 => {
                let prefix: &[u8; 16] = nonce[..16].try_into().expect("16 bytes");
                let mut h = chacha20::hchacha::<U10>((&*self.key).into(), prefix.into());
                sub.copy_from_slice(&h);
                h.as_mut_slice().zeroize();
                &aws_lc_rs::aead::CHACHA20_POLY1305
            }
            Cipher::Aes256Gcm => {
                let mut h = blake3::Hasher::new_keyed(&self.key);
                h.update(&nonce[..16]);
                h.finalize_xof().fill(&mut sub[..]);
                h.zeroize();
                &aws_lc_rs::aead::AES_256_GCM
            }
        };
        let key = UnboundKey::new(algorithm, &sub[..]).expect("a 32-byte key fits both ciphers");
        let mut short = [0u8; 12];
        short[4..].copy_from_slice(&nonce[16..NONCE_LEN]);
        (LessSafeKey::new(key), Nonce::assume_unique_for_key(short))
    }

    /// `nonce (24 random bytes) | ciphertext | tag` of `plain`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.resize(NONCE_LEN, 0);
        super::crypto::fill_random(&mut out)?;
        out.extend_from_slice(plain);
        let (nonce, body) = out.split_at_mut(NONCE_LEN);
        let (key, nonce) = self.object_key(nonce);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
            .map_err(|_| std::io::Error::other("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The plain bytes of an object [`SealingKey::seal`] made, decrypted
    /// straight from `sealed` into the result (no copy of the ciphertext).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut plain = vec![0u8; sealed.len().saturating_sub(OVERHEAD)];
        self.open_into(aad, sealed, &mut plain)?;
        Ok(plain)
    }

    /// Decrypt `sealed` into `out`, which has exactly its plain length.
    fn open_into(&self, aad: &[u8], sealed: &[u8], out: &mut [u8]) -> Result<(), OpenError> {
        if sealed.len() < OVERHEAD || out.len() != sealed.len() - OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let (key, nonce) = self.object_key(nonce);
        key.open_separate_gather(nonce, Aad::from(aad), ct, tag, out)
            .map_err(|_| OpenError)
    }

    /// `then` of the plain bytes of `sealed`, decrypted into a buffer this
    /// thread keeps: what is only decompressed (most blobs and frames) is
    /// then neither allocated nor zeroed per object.
    pub fn open_then<R>(
        &self,
        aad: &[u8],
        sealed: &[u8],
        then: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, OpenError> {
        // Taken out, not borrowed: `then` may open another object.
        let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let len = sealed.len().saturating_sub(OVERHEAD);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let opened = self.open_into(aad, sealed, &mut buf[..len]);
        let out = opened.map(|()| then(&buf[..len]));
        // Plain data, not a secret: like every freed buffer of decoded
        // data it is not wiped. An outsized object's buffer is not kept.
        if buf.len() <= SCRATCH_KEPT {
            SCRATCH.with(|s| *s.borrow_mut() = buf);
        }
        out
    }
}

/// The largest buffer [`SealingKey::open_then`] keeps per thread: a frame
/// of 256 KiB with room to spare.
const SCRATCH_KEPT: usize = 1 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [SealingKey; 2] {
        [
            SealingKey::new(Cipher::XChaCha20Poly1305, &[3; 32]),
            SealingKey::new(Cipher::Aes256Gcm, &[3; 32]),
        ]
    }

    #[test]
    fn xchacha_is_the_published_construction() {
        // What format 2 wrote with RustCrypto's XChaCha20Poly1305 must open
        // here byte for byte: the draft's test vector (section A.3.1).
        let key: [u8; 32] =
            hex::decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .unwrap()
                .try_into()
                .unwrap();
        let nonce = hex::decode("404142434445464748494a4b4c4d4e4f5051525354555657").unwrap();
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let sealed = [
            nonce,
            hex::decode(concat!(
                "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb",
                "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452",
                "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9",
                "21f9664c97637da9768812f615c68b13b52e",
                "c0875924c1c7987947deafd8780acf49"
            ))
            .unwrap(),
        ]
        .concat();
        let k = SealingKey::new(Cipher::XChaCha20Poly1305, &key);
        assert_eq!(k.open(&aad, &sealed).unwrap(), plain);
    }

    #[test]
    fn xchacha_agrees_with_what_format_2_was_written_with() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let key = [0x42u8; 32];
        let ours = SealingKey::new(Cipher::XChaCha20Poly1305, &key);
        let theirs = chacha20poly1305::XChaCha20Poly1305::new(&key.into());
        for len in [0, 1, 63, 64, 65, 1000, 32 << 10, (256 << 10) + 7] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let sealed = ours.seal(b"cairn2:data", &plain).unwrap();
            let nonce: &[u8; 24] = sealed[..24].try_into().unwrap();
            let payload = Payload {
                msg: &plain,
                aad: b"cairn2:data",
            };
            let expected = theirs.encrypt(nonce.into(), payload).unwrap();
            assert_eq!(&sealed[24..], &expected[..], "length {len}");
            assert_eq!(ours.open(b"cairn2:data", &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn both_ciphers_round_trip_and_refuse_changes() {
        for k in both() {
            let sealed = k.seal(b"ad", b"hello").unwrap();
            assert_eq!(sealed.len(), 5 + OVERHEAD);
            assert_eq!(k.open(b"ad", &sealed).unwrap(), b"hello");
            assert!(k.open(b"other ad", &sealed).is_err());
            for i in 0..sealed.len() {
                let mut flipped = sealed.clone();
                flipped[i] ^= 0x10;
                assert!(k.open(b"ad", &flipped).is_err(), "bit in byte {i}");
            }
            assert!(k.open(b"ad", &sealed[..OVERHEAD - 1]).is_err());
            assert_eq!(
                k.open_then(b"ad", &sealed, <[u8]>::to_vec).unwrap(),
                b"hello"
            );
            assert!(k.open_then(b"ad", &sealed[1..], <[u8]>::len).is_err());
            assert_eq!(k.open(b"", &k.seal(b"", b"").unwrap()).unwrap(), b"");
        }
    }

    #[test]
    fn ciphers_and_keys_do_not_open_each_others_objects() {
        let [x, a] = both();
        assert!(a.open(b"", &x.seal(b"", b"data").unwrap()).is_err());
        assert!(x.open(b"", &a.seal(b"", b"data").unwrap()).is_err());
        let other = SealingKey::new(Cipher::Aes256Gcm, &[4; 32]);
        assert!(other.open(b"", &a.seal(b"", b"data").unwrap()).is_err());
    }

    #[test]
    fn aes_objects_get_keys_of_their_own() {
        // Same key, same last 8 nonce bytes, another prefix: another object
        // key, so another keystream for the same plain bytes.
        let [_, a] = both();
        let (mut n1, mut n2) = ([1u8; 24], [1u8; 24]);
        n2[0] = 2;
        let plain = [0u8; 64];
        let stream = |n: &mut [u8; 24]| {
            let (key, nonce) = a.object_key(n);
            let mut buf = plain;
            let _tag = key
                .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf)
                .unwrap();
            buf
        };
        assert_ne!(stream(&mut n1), stream(&mut n2));
        assert_eq!(stream(&mut n1), stream(&mut [1u8; 24]));
    }

    #[test]
    fn names_round_trip() {
        for c in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            assert_eq!(Cipher::from_name(c.name()), Some(c));
        }
        assert_eq!(Cipher::from_name("aes-128-gcm"), None);
        assert_eq!(Cipher::for_new_repository(2), Cipher::XChaCha20Poly1305);
    }
}
