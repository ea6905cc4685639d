//! (Over 500 lines with its tests: secrets, key slots and the codec that
//! uses them are one piece of the format, read together.)
//!
//! Encryption (docs/FORMAT.md section 13): the repository's
//! secrets, authenticated encryption of every object, and the key slots
//! that wrap the secrets under passwords or key files. Pure: no I/O.
//!
//! The ciphers are in [`crate::format::aead`], each with a random 24-byte
//! nonce per object: a random nonce that long never repeats in practice,
//! so no counter has to be kept consistent between the many hosts that
//! write one repository. Each object's associated data names its kind and,
//! for blobs, its id, so no valid ciphertext can be passed off as another
//! object.

use std::borrow::Cow;

use argon2::{Algorithm, Argon2, Params, Version};
use cairn_chunk::{Id, IdHasher};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::format::aead::SealingKey;
pub use crate::format::aead::{Cipher, OpenError, NONCE_LEN, OVERHEAD, TAG_LEN};
use crate::format::pack::BlobKind;

/// What an encrypted object is: part of its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// The repository config.
    Config,
    /// A blob in a pack; its id is bound too.
    Blob(BlobKind),
    /// A frame of several blobs (docs/FORMAT.md 14); no id is bound, the
    /// members' keyed ids are checked after decoding.
    Frame(BlobKind),
    /// A pack's table of entries.
    PackTable,
    /// An index segment.
    Index,
    /// A snapshot.
    Snapshot,
    /// A prune plan.
    Plan,
    /// A plan's wait list.
    Wait,
    /// A backup lock.
    Lock,
    /// The repository secrets inside a key slot.
    KeySlot,
}

impl Domain {
    fn label(self) -> &'static [u8] {
        match self {
            Domain::Config => b"config",
            Domain::Blob(BlobKind::Data) => b"data",
            Domain::Blob(BlobKind::Tree) => b"tree",
            Domain::Frame(BlobKind::Data) => b"data-frame",
            Domain::Frame(BlobKind::Tree) => b"tree-frame",
            Domain::PackTable => b"pack-table",
            Domain::Index => b"index",
            Domain::Snapshot => b"snapshot",
            Domain::Plan => b"plan",
            Domain::Wait => b"wait",
            Domain::Lock => b"lock",
            Domain::KeySlot => b"key-slot",
        }
    }

    fn aad(self, id: Option<&Id>) -> Vec<u8> {
        let mut aad = b"cairn2:".to_vec();
        aad.extend_from_slice(self.label());
        if let Some(id) = id {
            aad.push(b':');
            aad.extend_from_slice(&id.0);
        }
        aad
    }
}

/// Fill `buf` from the kernel's random number generator.
pub fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, which is writable.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(())
}

/// The secrets of an encrypted repository: the key every object is sealed
/// with, the key blob ids are hashed with, and the chunker's gear seed;
/// with the repository's cipher. Wiped from memory when dropped.
pub struct Keys {
    data: Zeroizing<[u8; 32]>,
    id: Zeroizing<[u8; 32]>,
    chunker: u64,
    sealing: SealingKey,
}

/// Bytes of the serialized secrets (data key, id key, chunker seed).
const KEYS_LEN: usize = 72;

impl Keys {
    /// Fresh random secrets (sealing with XChaCha20-Poly1305 until
    /// [`Keys::with_cipher`] says otherwise).
    pub fn generate() -> std::io::Result<Keys> {
        let mut bytes = Zeroizing::new([0u8; KEYS_LEN]);
        fill_random(&mut bytes[..])?;
        Ok(Keys::from_bytes(&bytes))
    }

    /// Fresh secrets that name and cut chunks as `other` does (its id key
    /// and chunker seed), with a data key of their own: a repository made
    /// with them deduplicates against `other`'s chunks, and `copy` between
    /// the two sends only what is missing.
    pub fn sharing_chunking_with(other: &Keys) -> std::io::Result<Keys> {
        let mut keys = Keys::generate()?;
        keys.id = other.id.clone();
        keys.chunker = other.chunker;
        Ok(keys)
    }

    /// These secrets sealing objects with `cipher` (the config names it:
    /// it is not one of the secrets).
    pub fn with_cipher(mut self, cipher: Cipher) -> Keys {
        self.sealing = SealingKey::new(cipher, &self.data);
        self
    }

    /// The cipher objects are sealed with.
    pub fn cipher(&self) -> Cipher {
        self.sealing.cipher()
    }

    fn from_bytes(b: &[u8; KEYS_LEN]) -> Keys {
        let mut data = Zeroizing::new([0u8; 32]);
        let mut id = Zeroizing::new([0u8; 32]);
        data.copy_from_slice(&b[..32]);
        id.copy_from_slice(&b[32..64]);
        let sealing = SealingKey::new(Cipher::XChaCha20Poly1305, &data);
        Keys {
            data,
            id,
            chunker: u64::from_le_bytes(b[64..72].try_into().expect("8 bytes")),
            sealing,
        }
    }

    fn to_bytes(&self) -> Zeroizing<[u8; KEYS_LEN]> {
        let mut b = Zeroizing::new([0u8; KEYS_LEN]);
        b[..32].copy_from_slice(&self.data[..]);
        b[32..64].copy_from_slice(&self.id[..]);
        b[64..].copy_from_slice(&self.chunker.to_le_bytes());
        b
    }

    /// How blob ids are computed: keyed BLAKE3.
    pub fn id_hasher(&self) -> IdHasher {
        IdHasher::Keyed(self.id.clone())
    }

    /// The chunker's gear seed (never 0, which would mean "unkeyed").
    pub fn chunker_seed(&self) -> u64 {
        self.chunker | 1
    }

    /// Encrypt `plain` as an object of `domain` (`id`: a blob's id).
    pub fn seal(&self, domain: Domain, id: Option<&Id>, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        self.sealing.seal(&domain.aad(id), plain)
    }

    /// Decrypt and authenticate an object sealed by [`Keys::seal`].
    pub fn open(
        &self,
        domain: Domain,
        id: Option<&Id>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        self.sealing.open(&domain.aad(id), sealed)
    }
}

/// Key slots are sealed with XChaCha20-Poly1305 whatever the repository's
/// cipher: a slot is opened before the config says which that is.
fn slot_key(kek: &[u8; 32]) -> SealingKey {
    SealingKey::new(Cipher::XChaCha20Poly1305, kek)
}

/// What unlocks a key slot.
pub enum Secret {
    /// A password (stretched with Argon2id).
    Password(Zeroizing<Vec<u8>>),
    /// The 32 random bytes of a key file (no stretching needed).
    KeyFile(Zeroizing<[u8; 32]>),
}

/// Argon2id parameters, stored with each password slot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// 16 random bytes, hex.
    pub salt: String,
}

/// A key slot: the repository secrets wrapped under one password or key
/// file, stored in clear as `keys/<slot id>` (JSON). `access` leaves room
/// for a later write-only slot (one that can add backups but not read);
/// this version writes and accepts only `full`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format (1).
    pub version: u32,
    /// `password` or `key-file`.
    pub kind: String,
    /// `full`.
    pub access: String,
    /// When it was added (RFC 3339).
    pub created: String,
    /// Host and user that added it (informational).
    pub host: String,
    /// User that added it (informational).
    pub user: String,
    /// How the password is stretched (password slots only).
    pub kdf: Option<KdfParams>,
    /// The sealed secrets, hex.
    pub wrapped: String,
}

/// Why a slot does not open.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Wrong password or key file (or a slot of the other kind).
    #[error("wrong password or key")]
    WrongSecret,
    /// The slot itself is malformed.
    #[error("malformed key slot: {0}")]
    Malformed(String),
}

/// Memory Argon2id uses for new password slots.
pub const KDF_MEMORY_KIB: u32 = 64 * 1024;

/// Argon2id iterations that take about `target` here with 64 MiB, measured
/// once (clamped to 1..=16).
pub fn calibrate_iterations(target: std::time::Duration) -> u32 {
    let salt = [0u8; 16];
    let start = std::time::Instant::now();
    let _ = stretch(b"calibration", &salt, KDF_MEMORY_KIB, 1, 1);
    let one = start.elapsed().as_secs_f64().max(0.001);
    ((target.as_secs_f64() / one).round() as u32).clamp(1, 16)
}

fn stretch(
    password: &[u8],
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    lanes: u32,
) -> Result<Zeroizing<[u8; 32]>, SlotError> {
    let params = Params::new(memory_kib, iterations, lanes, Some(32))
        .map_err(|e| SlotError::Malformed(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password, salt, &mut out[..])
        .map_err(|e| SlotError::Malformed(e.to_string()))?;
    Ok(out)
}

fn key_file_kek(key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake3::derive_key("cairn 2026-11 key-file slot", key))
}

impl KeySlot {
    /// Wrap `keys` under `secret`; a password is stretched with Argon2id at
    /// `iterations` passes over 64 MiB.
    pub fn wrap(
        keys: &Keys,
        secret: &Secret,
        iterations: u32,
        host: &str,
        user: &str,
    ) -> std::io::Result<KeySlot> {
        let (kind, kdf, kek) = match secret {
            Secret::Password(pw) => {
                let mut salt = [0u8; 16];
                fill_random(&mut salt)?;
                let kek = stretch(pw, &salt, KDF_MEMORY_KIB, iterations, 1)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let kdf = KdfParams {
                    algorithm: "argon2id".into(),
                    memory_kib: KDF_MEMORY_KIB,
                    iterations,
                    parallelism: 1,
                    salt: hex::encode(salt),
                };
                ("password", Some(kdf), kek)
            }
            Secret::KeyFile(k) => ("key-file", None, key_file_kek(k)),
        };
        let wrapped = slot_key(&kek).seal(&Domain::KeySlot.aad(None), &keys.to_bytes()[..])?;
        Ok(KeySlot {
            version: 1,
            kind: kind.into(),
            access: "full".into(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: host.into(),
            user: user.into(),
            kdf,
            wrapped: hex::encode(wrapped),
        })
    }

    /// The secrets, if `secret` opens this slot.
    pub fn unwrap(&self, secret: &Secret) -> Result<Keys, SlotError> {
        if self.version != 1 || self.access != "full" {
            return Err(SlotError::Malformed(format!(
                "slot version {} with access {:?} is not supported by this cairn",
                self.version, self.access
            )));
        }
        let kek = match (secret, self.kind.as_str(), &self.kdf) {
            (Secret::Password(pw), "password", Some(k)) => {
                if k.algorithm != "argon2id" || k.memory_kib > 4 << 20 || k.iterations > 64 {
                    return Err(SlotError::Malformed(format!(
                        "unsupported key derivation {k:?}"
                    )));
                }
                let salt = hex::decode(&k.salt).map_err(|e| SlotError::Malformed(e.to_string()))?;
                stretch(pw, &salt, k.memory_kib, k.iterations, k.parallelism)?
            }
            (Secret::KeyFile(key), "key-file", None) => key_file_kek(key),
            _ => return Err(SlotError::WrongSecret),
        };
        let sealed = hex::decode(&self.wrapped).map_err(|e| SlotError::Malformed(e.to_string()))?;
        let plain = Zeroizing::new(
            slot_key(&kek)
                .open(&Domain::KeySlot.aad(None), &sealed)
                .map_err(|_| SlotError::WrongSecret)?,
        );
        let bytes: &[u8; KEYS_LEN] = plain[..]
            .try_into()
            .map_err(|_| SlotError::Malformed("wrapped secrets have the wrong length".into()))?;
        Ok(Keys::from_bytes(bytes))
    }
}

/// The text of a key file: one line, `cairn-key-1:` and 64 hex digits.
pub fn key_file_text(key: &[u8; 32]) -> Zeroizing<String> {
    Zeroizing::new(format!("cairn-key-1:{}\n", hex::encode(key)))
}

/// The key in a key file's text.
pub fn parse_key_file(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let hex_part = text.trim().strip_prefix("cairn-key-1:")?;
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_part, &mut key[..]).ok()?;
    Some(key)
}

/// How a repository's objects are stored: in clear (format 1) or sealed
/// (format 2); and how its blob ids are computed.
pub enum Codec {
    /// Format 1: plaintext, plain BLAKE3 ids.
    Plain,
    /// Format 2: sealed, keyed ids.
    Sealed(Keys),
}

impl Codec {
    /// Whether objects are encrypted.
    pub fn is_sealed(&self) -> bool {
        matches!(self, Codec::Sealed(_))
    }

    /// Whether `other` names and cuts chunks exactly as this one does, so a
    /// blob id means the same bytes in both repositories.
    pub fn same_chunking(&self, other: &Codec) -> bool {
        match (self, other) {
            (Codec::Plain, Codec::Plain) => true,
            (Codec::Sealed(a), Codec::Sealed(b)) => a.id[..] == b.id[..] && a.chunker == b.chunker,
            _ => false,
        }
    }

    /// The id of a blob with these plain bytes.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        match self {
            Codec::Plain => Id::of(data),
            Codec::Sealed(k) => Id(*blake3::keyed_hash(&k.id, data).as_bytes()),
        }
    }

    /// A hasher that ends in [`Codec::blob_id`] of everything fed to it,
    /// for checking blobs too large to hold in memory at once.
    pub fn blob_hasher(&self) -> blake3::Hasher {
        match self {
            Codec::Plain => blake3::Hasher::new(),
            Codec::Sealed(k) => blake3::Hasher::new_keyed(&k.id),
        }
    }

    /// How blob ids are computed, for the chunk pipeline.
    pub fn id_hasher(&self) -> IdHasher {
        match self {
            Codec::Plain => IdHasher::Plain,
            Codec::Sealed(k) => k.id_hasher(),
        }
    }

    /// The chunker's gear seed (0: the published table).
    pub fn chunker_seed(&self) -> u64 {
        match self {
            Codec::Plain => 0,
            Codec::Sealed(k) => k.chunker_seed(),
        }
    }

    /// Seal an object (format 1: unchanged).
    pub fn seal(
        &self,
        domain: Domain,
        id: Option<&Id>,
        plain: Vec<u8>,
    ) -> std::io::Result<Vec<u8>> {
        match self {
            Codec::Plain => Ok(plain),
            Codec::Sealed(k) => k.seal(domain, id, &plain),
        }
    }

    /// Open an object (format 1: unchanged).
    pub fn open(
        &self,
        domain: Domain,
        id: Option<&Id>,
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, OpenError> {
        match self {
            Codec::Plain => Ok(stored),
            Codec::Sealed(k) => k.open(domain, id, &stored),
        }
    }

    /// `then` of an object's plain bytes, for objects that are only
    /// decoded further (blobs, frames): format 1 hands the stored bytes
    /// over as they are, a sealed object is decrypted straight from them
    /// into a buffer the thread reuses. `then` copies what it keeps.
    pub fn open_then<R>(
        &self,
        domain: Domain,
        id: Option<&Id>,
        stored: Cow<'_, [u8]>,
        then: impl FnOnce(Cow<'_, [u8]>) -> R,
    ) -> Result<R, OpenError> {
        match self {
            Codec::Plain => Ok(then(stored)),
            Codec::Sealed(k) => k
                .sealing
                .open_then(&domain.aad(id), &stored, |plain| then(Cow::Borrowed(plain))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_objects_open_only_as_themselves() {
        let keys = Keys::generate().unwrap();
        let id = Id::of(b"x");
        let sealed = keys
            .seal(Domain::Blob(BlobKind::Data), Some(&id), b"hello")
            .unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(
            keys.open(Domain::Blob(BlobKind::Data), Some(&id), &sealed)
                .unwrap(),
            b"hello"
        );
        // Another id, another kind, a flipped bit, another key: all refused.
        assert!(keys
            .open(Domain::Blob(BlobKind::Data), Some(&Id::of(b"y")), &sealed)
            .is_err());
        assert!(keys
            .open(Domain::Blob(BlobKind::Tree), Some(&id), &sealed)
            .is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys
            .open(Domain::Blob(BlobKind::Data), Some(&id), &flipped)
            .is_err());
        let other = Keys::generate().unwrap();
        assert!(other
            .open(Domain::Blob(BlobKind::Data), Some(&id), &sealed)
            .is_err());
        assert!(keys.open(Domain::Snapshot, None, &sealed[..10]).is_err());
        // A blob is never opened as a frame, nor a frame as a blob.
        assert!(keys
            .open(Domain::Frame(BlobKind::Data), None, &sealed)
            .is_err());
        let frame = keys
            .seal(Domain::Frame(BlobKind::Data), None, b"two blobs")
            .unwrap();
        assert!(keys
            .open(Domain::Blob(BlobKind::Data), Some(&id), &frame)
            .is_err());
        assert!(keys
            .open(Domain::Frame(BlobKind::Data), None, &frame)
            .is_ok());
    }

    #[test]
    fn slots_open_with_their_secret_only() {
        let keys = Keys::generate().unwrap();
        let pw = Secret::Password(Zeroizing::new(b"correct horse".to_vec()));
        let slot = KeySlot::wrap(&keys, &pw, 1, "h", "u").unwrap();
        let back = slot.unwrap(&pw).unwrap();
        assert_eq!(back.to_bytes()[..], keys.to_bytes()[..]);
        let wrong = Secret::Password(Zeroizing::new(b"wrong".to_vec()));
        assert!(matches!(slot.unwrap(&wrong), Err(SlotError::WrongSecret)));
        let file = Secret::KeyFile(Zeroizing::new([9u8; 32]));
        assert!(matches!(slot.unwrap(&file), Err(SlotError::WrongSecret)));
        let fslot = KeySlot::wrap(&keys, &file, 1, "h", "u").unwrap();
        assert!(fslot.unwrap(&file).is_ok());
        assert!(fslot.kdf.is_none());
    }

    #[test]
    fn key_file_text_round_trips_and_rejects_garbage() {
        let key = [7u8; 32];
        let text = key_file_text(&key);
        assert_eq!(*parse_key_file(&text).unwrap(), key);
        assert!(parse_key_file("cairn-key-1:abc").is_none());
        assert!(parse_key_file("").is_none());
    }

    #[test]
    fn keyed_ids_differ_between_repositories() {
        let (a, b) = (
            Codec::Sealed(Keys::generate().unwrap()),
            Codec::Sealed(Keys::generate().unwrap()),
        );
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_eq!(Codec::Plain.blob_id(b"same"), Id::of(b"same"));
        assert_ne!(a.chunker_seed(), b.chunker_seed());
    }
}
