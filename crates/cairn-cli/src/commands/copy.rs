//! `cairn copy`: snapshots to another repository, sending only what it lacks.

use anyhow::Result;
use cairn_repo::ops::copy;
use cairn_repo::Repository;
use serde_json::json;

use crate::args::{Cli, CopyArgs};
use crate::keys::OtherKeys;
use crate::location;
use crate::output::{human_bytes, Out};

pub fn copy(cli: &Cli, out: &Out, args: &CopyArgs) -> Result<u8> {
    let src = location::open(cli)?;
    let keys = OtherKeys {
        cli,
        password_file: args.keys.to_password_file.clone(),
        password_command: args.keys.to_password_command.clone(),
        key_file: args.keys.to_key_file.clone(),
        env: "CAIRN_TO_PASSWORD",
    };
    let dst = Repository::open_with(
        location::backend_for(cli, &args.to)?,
        Some(&location::cache_root(cli)),
        &keys,
    )?;
    let chosen = copy::select(&src, &args.snapshots, &args.filter.filter())?;
    crate::signals::install();
    let progress = out.bar(None, "copy");
    let r = copy::copy_with(&src, &dst, &chosen, &progress);
    progress.finish();
    let r = r?;
    if out.json {
        out.json(&json!({ "to": args.to, "report": r }))?;
        return Ok(0);
    }
    for (from, to) in &r.copied {
        outln!("copied snapshot {} as {}", from.short(), to.short());
    }
    out.info(&format!(
        "{} snapshot(s) copied, {} already there; sent {} blobs ({}), {} already present{}",
        r.copied.len(),
        r.skipped.len(),
        r.blobs_sent,
        human_bytes(r.bytes_sent),
        r.blobs_present,
        if r.translated {
            " (chunk ids recomputed: the repositories cut chunks differently; `init --copy-chunker-params` avoids that)"
        } else {
            ""
        }
    ));
    Ok(0)
}
