//! The config file and key slots (docs/FORMAT.md sections 4 and 13):
//! reading a repository's config, unlocking an encrypted one with the
//! secrets a caller supplies, and adding, listing and removing key slots.

use std::sync::Arc;

use cairn_chunk::Id;
use serde::{Deserialize, Serialize};

use crate::format::config::{Config, FORMAT_VERSION};
use crate::format::crypto::{Cipher, Codec, Domain, KeySlot, Keys, Secret, SlotError};
use crate::format::layout::{self, FileType};
use crate::store::backend::{BackendError, LocationState};
use crate::{Backend, Error, Result};

/// Where the secrets to unlock an encrypted repository come from. Asked
/// only for an encrypted repository, with its id, so a caller can look up a
/// key file by id or run a password command only when one is needed.
pub trait KeySource {
    /// Secrets to try, in order.
    fn secrets(&self, repo_id: &Id) -> std::result::Result<Vec<Secret>, String>;
}

/// No secrets: opens plaintext repositories only.
pub struct NoKeys;

impl KeySource for NoKeys {
    fn secrets(&self, _: &Id) -> std::result::Result<Vec<Secret>, String> {
        Ok(Vec::new())
    }
}

/// The clear part of a format-2 config: everything else is sealed.
#[derive(Serialize, Deserialize)]
struct SealedConfig {
    version: u32,
    id: Id,
    encryption: String,
    /// The sealed JSON of [`Config`], hex.
    config: String,
}

/// A repository's config, how its objects are stored, and which key slot
/// unlocked it.
pub(crate) struct Opened {
    pub config: Config,
    pub codec: Arc<Codec>,
    pub slot: Option<Id>,
}

/// Read the config, unlocking an encrypted repository.
pub(crate) fn read_config(backend: &dyn Backend, keys: &dyn KeySource) -> Result<Opened> {
    let location = backend.location();
    let bytes = match backend.get(layout::CONFIG) {
        Ok(b) => b,
        Err(BackendError::NotFound { .. }) => {
            return Err(match backend.probe()? {
                LocationState::Occupied => Error::NotARepository(location),
                _ => Error::NoRepository(location),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("config", &location, e))?;
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version > u64::from(FORMAT_VERSION) {
        return Err(Error::NewerFormat {
            location,
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: FORMAT_VERSION,
        });
    }
    // Format 3 may be plaintext or encrypted: only a sealed config has an
    // `encryption` field (docs/FORMAT.md 14).
    if version < 2 || (version >= 3 && value.get("encryption").is_none()) {
        let config: Config =
            serde_json::from_value(value).map_err(|e| Error::corrupt("config", &location, e))?;
        check_chunker(&config, &location)?;
        return Ok(Opened {
            config,
            codec: Arc::new(Codec::Plain),
            slot: None,
        });
    }
    let sealed: SealedConfig =
        serde_json::from_value(value).map_err(|e| Error::corrupt("config", &location, e))?;
    // Checked before any secret is asked for: a cipher this cairn does not
    // know is never guessed at.
    let cipher = match Cipher::from_name(&sealed.encryption) {
        Some(Cipher::Aes256Gcm) if sealed.version < 3 => {
            return Err(Error::corrupt(
                "config",
                &location,
                "aes-256-gcm in a format-2 repository",
            ))
        }
        Some(c) => c,
        None => {
            return Err(Error::UnknownEncryption {
                location,
                name: sealed.encryption,
            })
        }
    };
    let (keys, slot) = unlock(backend, &sealed.id, keys)?;
    let keys = keys.with_cipher(cipher);
    let ct = hex::decode(&sealed.config).map_err(|e| Error::corrupt("config", &location, e))?;
    let plain = keys
        .open(Domain::Config, Some(&sealed.id), &ct)
        .map_err(|e| Error::corrupt("config", &location, e))?;
    let config: Config =
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt("config", &location, e))?;
    if config.id != sealed.id {
        return Err(Error::corrupt(
            "config",
            &location,
            "sealed id differs from the clear one",
        ));
    }
    check_chunker(&config, &location)?;
    Ok(Opened {
        config,
        codec: Arc::new(Codec::Sealed(keys)),
        slot: Some(slot),
    })
}

/// Backup cuts with these sizes as they are, and FastCDC asserts on sizes
/// out of its range: such a config is damage.
fn check_chunker(config: &Config, location: &str) -> Result<()> {
    config
        .chunker
        .validate()
        .map(drop)
        .map_err(|e| Error::corrupt("config", location, e))
}

/// Try every secret the source gives against every key slot.
fn unlock(backend: &dyn Backend, repo_id: &Id, source: &dyn KeySource) -> Result<(Keys, Id)> {
    let location = backend.location();
    let secrets = source.secrets(repo_id).map_err(Error::KeySource)?;
    if secrets.is_empty() {
        return Err(Error::KeyRequired(location));
    }
    let slots = list_slots(backend)?;
    for secret in &secrets {
        for (id, slot) in &slots {
            match slot.unwrap(secret) {
                Ok(keys) => return Ok((keys, *id)),
                Err(SlotError::WrongSecret | SlotError::Malformed(_)) => continue,
            }
        }
    }
    Err(Error::WrongKey(location))
}

/// Every key slot that parses (a damaged one is skipped: others may open).
pub fn list_slots(backend: &dyn Backend) -> Result<Vec<(Id, KeySlot)>> {
    let mut out = Vec::new();
    for obj in backend.list(FileType::Key.prefix())? {
        let Some(id) = layout::parse(FileType::Key, &obj.key) else {
            continue;
        };
        match backend.get(&obj.key) {
            Ok(bytes) => {
                if let Ok(slot) = serde_json::from_slice::<KeySlot>(&bytes) {
                    out.push((id, slot));
                }
            }
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Store a slot under a fresh random name; its id.
fn put_slot(backend: &dyn Backend, slot: &KeySlot) -> Result<Id> {
    let id = crate::random::random_id();
    let bytes = serde_json::to_vec_pretty(slot).expect("slot serializes");
    backend.put(&layout::key(FileType::Key, &id), &bytes)?;
    Ok(id)
}

/// Who adds a slot, recorded in it (informational).
pub struct Owner {
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
}

/// Create an encrypted (format 2, or 3 with frames) repository: fresh secrets (naming and
/// cutting chunks as the encrypted repository `chunking_of` does, if given),
/// one key slot for `secret`, then the sealed config. `cipher`: the one
/// asked for, else the best for this machine (docs/FORMAT.md 13).
pub fn init_encrypted(
    backend: &dyn Backend,
    config: &Config,
    secret: &Secret,
    iterations: u32,
    owner: &Owner,
    chunking_of: Option<&Codec>,
    cipher: Option<Cipher>,
) -> Result<()> {
    let version = config.version.max(2);
    let cipher = cipher.unwrap_or_else(|| Cipher::for_new_repository(version));
    if cipher == Cipher::Aes256Gcm && version < 3 {
        return Err(Error::CipherNeedsFormat3(cipher.name()));
    }
    crate::store::repository::require_vacant(backend)?;
    let keys = match chunking_of {
        Some(Codec::Sealed(other)) => Keys::sharing_chunking_with(other),
        _ => Keys::generate(),
    }
    .map_err(|e| Error::io("/dev/urandom", e))?;
    let slot = KeySlot::wrap(&keys, secret, iterations, &owner.host, &owner.user)
        .map_err(|e| Error::io("/dev/urandom", e))?;
    put_slot(backend, &slot)?;
    let mut inner = config.clone();
    // Format 2, or 3 for a config with frames (docs/FORMAT.md 14).
    inner.version = version;
    let keys = keys.with_cipher(cipher);
    let plain = serde_json::to_vec(&inner).expect("config serializes");
    let ct = keys
        .seal(Domain::Config, Some(&inner.id), &plain)
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let header = SealedConfig {
        version: inner.version,
        id: inner.id,
        encryption: keys.cipher().name().into(),
        config: hex::encode(ct),
    };
    backend.put(
        layout::CONFIG,
        &serde_json::to_vec_pretty(&header).expect("serializes"),
    )?;
    Ok(())
}

/// Add a key slot for `secret` to an open encrypted repository.
pub fn add_slot(
    repo: &crate::Repository,
    secret: &Secret,
    iterations: u32,
    owner: &Owner,
) -> Result<Id> {
    let Codec::Sealed(keys) = &**repo.codec() else {
        return Err(Error::NotEncrypted(repo.backend().location()));
    };
    let slot = KeySlot::wrap(keys, secret, iterations, &owner.host, &owner.user)
        .map_err(|e| Error::io("/dev/urandom", e))?;
    put_slot(&**repo.backend(), &slot)
}

/// Remove key slot `id`; refused when it is the last one, or when it is
/// the one that opened the repository and no other works for the caller.
pub fn remove_slot(repo: &crate::Repository, id: &Id) -> Result<()> {
    let slots = list_slots(&**repo.backend())?;
    if !slots.iter().any(|(s, _)| s == id) {
        return Err(Error::NoSuchKey(id.short()));
    }
    if slots.len() == 1 {
        return Err(Error::LastKey(id.short()));
    }
    repo.backend().delete(&layout::key(FileType::Key, id))?;
    Ok(())
}
