//! `cairn init`.

use anyhow::Result;
use serde_json::json;

use crate::args::{Cli, InitArgs};
use crate::location::{self, Protection};
use crate::output::Out;

pub fn init(cli: &Cli, out: &Out, args: &InitArgs) -> Result<u8> {
    let loc = location::location(cli);
    let config = location::config_from(&args.chunk)?;
    let protection = location::create(cli, &config, args.insecure_no_encryption)?;
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
