//! Finding and opening the repository named by `--repo`, `CAIRN_REPO`, or
//! the default under `$XDG_DATA_HOME`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_chunk::{parse_size, ChunkerParams, Compression};
use std::sync::Arc;

use cairn_repo::{Backend, Config, LocalBackend, LocationState, Repository};

use cairn_repo::format::crypto::{calibrate_iterations, Cipher, Secret};
use cairn_repo::store::keys::init_encrypted;

use crate::args::{ChunkArgs, Cli};
use crate::keys::{create_key_file, default_key_file, owner, CliKeys};

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

pub fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| home().join(fallback), PathBuf::from)
}

/// The repository location the user asked for.
pub fn location(cli: &Cli) -> String {
    cli.repo.clone().unwrap_or_else(|| {
        xdg("XDG_DATA_HOME", ".local/share")
            .join("cairn/repo")
            .display()
            .to_string()
    })
}

/// Every backend this process opened, so that outputs can report the
/// requests they made.
static OPENED: std::sync::Mutex<Vec<Arc<dyn Backend>>> = std::sync::Mutex::new(Vec::new());

/// The backend for a location: the one place that tells a URL from a path.
pub fn backend_for(cli: &Cli, location: &str) -> Result<Arc<dyn Backend>> {
    let backend: Arc<dyn Backend> = match location.split_once("://") {
        Some(("s3", _)) => {
            let mut options = cairn_s3::S3Options::default();
            if let Some(n) = cli.connections {
                options.connections = n.clamp(1, 256);
            }
            retry_limits_from_env(&mut options.retry)?;
            Arc::new(cairn_s3::S3Backend::from_url(location, &options)?)
        }
        Some((scheme, _)) => anyhow::bail!(
            "{location}: unsupported repository location scheme {scheme:?} (use a local path or s3://BUCKET/PREFIX)"
        ),
        None => Arc::new(LocalBackend::new(location)),
    };
    OPENED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(backend.clone());
    Ok(backend)
}

/// `CAIRN_S3_RETRIES` and `CAIRN_S3_RETRY_TIMEOUT` (seconds) bound the
/// retries of a failing request (defaults: 10 and 120).
fn retry_limits_from_env(retry: &mut cairn_s3::RetryOptions) -> Result<()> {
    let num = |var: &str| -> Result<Option<u64>> {
        match std::env::var(var) {
            Ok(v) => v
                .trim()
                .parse()
                .map(Some)
                .with_context(|| format!("{var}={v:?}: expected a whole number")),
            Err(_) => Ok(None),
        }
    };
    if let Some(n) = num("CAIRN_S3_RETRIES")? {
        retry.max_retries = n as usize;
    }
    if let Some(s) = num("CAIRN_S3_RETRY_TIMEOUT")? {
        retry.timeout = std::time::Duration::from_secs(s);
    }
    Ok(())
}

/// The requests every opened backend made so far (object stores count
/// them; a local directory does not).
pub fn request_stats() -> Option<cairn_repo::RequestStats> {
    let opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
    let all: Vec<_> = opened.iter().filter_map(|b| b.request_stats()).collect();
    if all.is_empty() {
        return None;
    }
    Some(
        all.iter()
            .fold(Default::default(), |mut t: cairn_repo::RequestStats, s| {
                t.put += s.put;
                t.get += s.get;
                t.list += s.list;
                t.delete += s.delete;
                t.head += s.head;
                t.bytes_sent += s.bytes_sent;
                t.bytes_received += s.bytes_received;
                t.failed += s.failed;
                t
            }),
    )
}

/// Where the local index cache lives.
pub fn cache_root(cli: &Cli) -> PathBuf {
    cli.cache_dir
        .clone()
        .unwrap_or_else(|| xdg("XDG_CACHE_HOME", ".cache"))
}

/// Open the repository, failing if it does not exist; an encrypted one is
/// unlocked with the password or key the user gave (or the key file made
/// for it at creation).
pub fn open(cli: &Cli) -> Result<Repository> {
    let loc = location(cli);
    let backend = backend_for(cli, &loc)?;
    let keys = CliKeys { cli };
    Ok(Repository::open_with(
        backend,
        Some(&cache_root(cli)),
        &keys,
    )?)
}

/// A config from `--chunk-*` and `--compression`.
pub fn config_from(args: &ChunkArgs) -> Result<Config> {
    let size = |s: &Option<String>| -> Result<Option<u32>> {
        s.as_deref()
            .map(|v| {
                let n = parse_size(v)?;
                u32::try_from(n).with_context(|| format!("chunk size {v} is too large"))
            })
            .transpose()
    };
    let mut params = match size(&args.chunk_avg)? {
        Some(avg) => ChunkerParams::from_avg(avg).unwrap_or(ChunkerParams {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        }),
        None => ChunkerParams::default(),
    };
    if let Some(min) = size(&args.chunk_min)? {
        params.min = min;
    }
    if let Some(max) = size(&args.chunk_max)? {
        params.max = max;
    }
    let params = params.validate()?;
    // New repositories are format 3: new data blobs are compressed in
    // frames of 256 KiB, at zstd:3 unless told otherwise (docs/FORMAT.md
    // 14; docs/PERFORMANCE.md has the measurements). `--format 2` keeps
    // the older format, for cairn versions before frames.
    let frames = args.format != Some(2);
    let compression: Compression = match &args.compression {
        Some(c) => c.parse()?,
        None if frames => Compression::Zstd(3),
        None => Compression::default(),
    };
    let mut config = Config::new(params, compression);
    if frames {
        config = config.with_frames(cairn_repo::format::frame::DEFAULT_FRAME_SIZE);
    }
    if let Some(v) = &args.pack_size {
        config.pack_size = pack_size(v)?;
    }
    Ok(config)
}

fn pack_size(v: &str) -> Result<u32> {
    let n = parse_size(v)?;
    match u32::try_from(n) {
        Ok(n) if (16 << 10..=1 << 30).contains(&n) => Ok(n),
        _ => anyhow::bail!("--pack-size {v}: must be between 16K and 1G"),
    }
}

/// How a new repository is protected.
pub enum Protection {
    /// Format 1, plaintext.
    None,
    /// Encrypted with the password or key file the user gave.
    Given,
    /// Encrypted with a new random key file, made at this path.
    NewKeyFile(PathBuf),
}

/// The time a password slot's Argon2id should take here.
const KDF_TARGET: std::time::Duration = std::time::Duration::from_millis(500);

/// Create a repository at `loc`: encrypted unless `insecure`, with the
/// user's password or key file, else a new key file in the config dir.
pub fn create(cli: &Cli, config: &Config, insecure: bool) -> Result<Protection> {
    create_like(cli, config, insecure, None, None)
}

/// As [`create`], cutting and naming chunks as `like` does when given.
pub fn create_like(
    cli: &Cli,
    config: &Config,
    insecure: bool,
    like: Option<&Repository>,
    cipher: Option<Cipher>,
) -> Result<Protection> {
    let backend = backend_for(cli, &location(cli))?;
    if insecure {
        Repository::init(&*backend, config)?;
        return Ok(Protection::None);
    }
    let given = CliKeys { cli }.given()?;
    let (secret, protection) = match given {
        Some(secret) => (secret, Protection::Given),
        None => {
            let path = default_key_file(&config.id);
            (create_key_file(&path)?, Protection::NewKeyFile(path))
        }
    };
    let iterations = match secret {
        Secret::Password(_) => calibrate_iterations(KDF_TARGET),
        Secret::KeyFile(_) => 1,
    };
    let chunking = like.map(|r| &**r.codec());
    init_encrypted(
        &*backend,
        config,
        &secret,
        iterations,
        &owner(),
        chunking,
        cipher,
    )?;
    Ok(protection)
}

/// The line that tells a user how their new repository is protected.
pub fn protection_note(loc: &str, p: &Protection) -> String {
    match p {
        Protection::None => format!("created plaintext repository at {loc} (not encrypted)"),
        Protection::Given => format!("created encrypted repository at {loc}"),
        Protection::NewKeyFile(path) => format!(
            "created encrypted repository at {loc}; its key is in {} (0600): keep a copy somewhere safe, \
             or add a password with `cairn key add`",
            path.display()
        ),
    }
}

/// Whether nothing is at `loc` yet (so `backup` may create a repository there).
pub fn is_vacant(cli: &Cli, loc: &str) -> Result<bool> {
    Ok(backend_for(cli, loc)?.probe()? != LocationState::Occupied)
}
