//! `cairn init`.

use anyhow::Result;
use serde_json::json;

use crate::args::{Cli, InitArgs};
use crate::location;
use crate::output::Out;

pub fn init(cli: &Cli, out: &Out, args: &InitArgs) -> Result<u8> {
    let loc = location::location(cli);
    let config = location::config_from(&args.chunk)?;
    location::init_at(&loc, &config)?;
    if out.json {
        out.json(&json!({ "repository": loc, "config": config }))?;
    } else {
        out.info(&format!(
            "created cairn repository {} at {loc} (chunks {}/{}/{} bytes, compression {})",
            config.id.short(),
            config.chunker.min,
            config.chunker.avg,
            config.chunker.max,
            config.compression
        ));
    }
    Ok(0)
}
