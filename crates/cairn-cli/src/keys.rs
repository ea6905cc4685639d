//! Where secrets come from: CAIRN_PASSWORD, `--password-file`,
//! `--password-command`, `--key-file`, or the key file that `init` (or the
//! first `backup`) made in the user's config directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_repo::format::crypto::{fill_random, key_file_text, parse_key_file, Secret};
use cairn_repo::store::keys::{KeySource, Owner};
use cairn_repo::Id;
use zeroize::Zeroizing;

use crate::args::{Cli, NewSecretArgs};

/// `$XDG_CONFIG_HOME/cairn/keys/<repository id>.key`: where the key of a
/// repository made without a password lives.
pub fn default_key_file(repo_id: &Id) -> PathBuf {
    crate::location::xdg("XDG_CONFIG_HOME", ".config")
        .join("cairn/keys")
        .join(format!("{}.key", repo_id.to_hex()))
}

/// The secrets the command line and environment give.
pub struct CliKeys<'a> {
    pub cli: &'a Cli,
}

impl CliKeys<'_> {
    /// A password or key given explicitly, if any.
    pub fn given(&self) -> Result<Option<Secret>> {
        if let Some(path) = &self.cli.key_file {
            return read_key_file(path).map(Some);
        }
        if let Some(pw) = self.password()? {
            return Ok(Some(Secret::Password(pw)));
        }
        Ok(None)
    }

    fn password(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(path) = &self.cli.password_file {
            let text = Zeroizing::new(
                std::fs::read(path).with_context(|| format!("password file {}", path.display()))?,
            );
            return Ok(Some(first_line(&text)));
        }
        if let Some(cmd) = &self.cli.password_command {
            return run_password_command(cmd).map(Some);
        }
        Ok(std::env::var_os("CAIRN_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(|p| {
                Zeroizing::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec())
            }))
    }
}

impl KeySource for CliKeys<'_> {
    fn secrets(&self, repo_id: &Id) -> Result<Vec<Secret>, String> {
        match self.given() {
            Ok(Some(secret)) => return Ok(vec![secret]),
            Ok(None) => {}
            Err(e) => return Err(crate::one_line(&e)),
        }
        let default = default_key_file(repo_id);
        if default.exists() {
            return read_key_file(&default)
                .map(|s| vec![s])
                .map_err(|e| crate::one_line(&e));
        }
        Ok(Vec::new())
    }
}

/// The secrets given for a second repository (`copy --to`, `init
/// --copy-chunker-params`), falling back to its key file in the config dir.
pub struct OtherKeys<'a> {
    /// The command line, for the main repository's secrets.
    pub cli: &'a Cli,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub key_file: Option<PathBuf>,
    /// The environment variable holding its password.
    pub env: &'static str,
}

impl OtherKeys<'_> {
    fn given(&self) -> Result<Option<Secret>> {
        if let Some(path) = &self.key_file {
            return read_key_file(path).map(Some);
        }
        if let Some(path) = &self.password_file {
            let text = Zeroizing::new(
                std::fs::read(path).with_context(|| format!("password file {}", path.display()))?,
            );
            return Ok(Some(Secret::Password(first_line(&text))));
        }
        if let Some(cmd) = &self.password_command {
            return run_password_command(cmd).map(|p| Some(Secret::Password(p)));
        }
        Ok(std::env::var_os(self.env)
            .filter(|p| !p.is_empty())
            .map(|p| {
                Secret::Password(Zeroizing::new(
                    std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec(),
                ))
            }))
    }
}

impl KeySource for OtherKeys<'_> {
    /// Its own secrets if given, else the main repository's (one password
    /// for both is common), else its key file in the config dir.
    fn secrets(&self, repo_id: &Id) -> Result<Vec<Secret>, String> {
        match self.given() {
            Ok(Some(secret)) => return Ok(vec![secret]),
            Ok(None) => {}
            Err(e) => return Err(crate::one_line(&e)),
        }
        match (CliKeys { cli: self.cli }).given() {
            Ok(Some(secret)) => return Ok(vec![secret]),
            Ok(None) => {}
            Err(e) => return Err(crate::one_line(&e)),
        }
        let default = default_key_file(repo_id);
        if default.exists() {
            return read_key_file(&default)
                .map(|s| vec![s])
                .map_err(|e| crate::one_line(&e));
        }
        Ok(Vec::new())
    }
}

/// The first line of a password file, without its line end.
fn first_line(text: &[u8]) -> Zeroizing<Vec<u8>> {
    let end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
    let line = &text[..end];
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn run_password_command(cmd: &str) -> Result<Zeroizing<Vec<u8>>> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("password command {cmd:?}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "password command {cmd:?} failed ({}): {}",
            out.status,
            err.trim()
        );
    }
    let pw = first_line(&Zeroizing::new(out.stdout));
    if pw.is_empty() {
        bail!("password command {cmd:?} printed no password");
    }
    Ok(pw)
}

fn read_key_file(path: &Path) -> Result<Secret> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("key file {}", path.display()))?,
    );
    match parse_key_file(&text) {
        Some(key) => Ok(Secret::KeyFile(key)),
        None => bail!(
            "key file {}: not a cairn key file (expected one line `cairn-key-1:` and 64 hex digits)",
            path.display()
        ),
    }
}

/// Write a new random key file at `path` (0600, in a 0700 directory if it
/// has to be made); fails if something is there.
pub fn create_key_file(path: &Path) -> Result<Secret> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("{}", dir.display()))?;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    fill_random(&mut key[..])?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("key file {}", path.display()))?;
    f.write_all(key_file_text(&key).as_bytes())?;
    f.sync_all()?;
    Ok(Secret::KeyFile(key))
}

/// The new secret `key add` and `key passwd` install.
pub fn new_secret(args: &NewSecretArgs) -> Result<Secret> {
    if let Some(path) = &args.new_key_file {
        return if path.exists() {
            read_key_file(path)
        } else {
            create_key_file(path)
        };
    }
    if let Some(path) = &args.new_password_file {
        let text =
            Zeroizing::new(std::fs::read(path).with_context(|| format!("{}", path.display()))?);
        return non_empty(first_line(&text));
    }
    match std::env::var_os("CAIRN_NEW_PASSWORD") {
        Some(pw) => non_empty(Zeroizing::new(std::os::unix::ffi::OsStrExt::as_bytes(pw.as_os_str()).to_vec())),
        None => bail!("give the new password with --new-password-file or CAIRN_NEW_PASSWORD, or a key with --new-key-file"),
    }
}

fn non_empty(pw: Zeroizing<Vec<u8>>) -> Result<Secret> {
    if pw.is_empty() {
        bail!("the new password is empty");
    }
    Ok(Secret::Password(pw))
}

/// Who is adding a key slot (recorded in it).
pub fn owner() -> Owner {
    Owner {
        host: cairn_repo::ops::backup::hostname(),
        user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
    }
}
