//! `cairn init`.

use anyhow::Result;
use serde_json::json;

use cairn_repo::format::crypto::Cipher;
use cairn_repo::Repository;

use crate::args::{Cli, FromKeyArgs, InitArgs};
use crate::keys::OtherKeys;
use crate::location::{self, Protection};
use crate::output::Out;

pub fn init(cli: &Cli, out: &Out, args: &InitArgs) -> Result<u8> {
    let loc = location::location(cli);
    let mut config = location::config_from(&args.chunk)?;
    let like = match &args.copy_chunker_params {
        Some(other) => Some(open_other(cli, other, &args.from)?),
        None => None,
    };
    if let Some(other) = &like {
        config.chunker = other.config().chunker;
    }
    let cipher = args.encryption.as_deref().and_then(Cipher::from_name);
    if cipher.is_some() && args.insecure_no_encryption {
        anyhow::bail!("--encryption and --insecure-no-encryption contradict each other");
    }
    let protection = location::create_like(
        cli,
        &config,
        args.insecure_no_encryption,
        like.as_ref(),
        cipher,
    )?;
    if out.json {
        let key_file = match &protection {
            Protection::NewKeyFile(p) => Some(p.clone()),
            _ => None,
        };
        out.json(&json!({
            "repository": loc,
            "encrypted": !matches!(protection, Protection::None),
            "key_file": key_file,
            "config": config,
        }))?;
    } else {
        out.info(&location::protection_note(&loc, &protection));
        out.info(&format!(
            "repository {}: chunks {}/{}/{} bytes, compression {}, packs of {} bytes",
            config.id.short(),
            config.chunker.min,
            config.chunker.avg,
            config.chunker.max,
            config.compression,
            config.pack_size
        ));
    }
    Ok(0)
}

/// The repository whose chunking `--copy-chunker-params` copies.
fn open_other(cli: &Cli, location: &str, keys: &FromKeyArgs) -> Result<Repository> {
    let keys = OtherKeys {
        cli,
        password_file: keys.from_password_file.clone(),
        password_command: keys.from_password_command.clone(),
        key_file: keys.from_key_file.clone(),
        env: "CAIRN_FROM_PASSWORD",
    };
    let backend = location::backend_for(cli, location)?;
    Ok(Repository::open_with(backend, None, &keys)?)
}
