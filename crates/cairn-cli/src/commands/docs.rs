//! `cairn completions SHELL` and `cairn man`: generated from the argument
//! definitions, so they never drift from what the binary accepts.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::args::Cli;
use crate::output::Out;

/// With `--json`, the script is the `script` field of the summary.
pub fn completions(out: &Out, shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cairn", &mut script);
    if out.json {
        out.json(&serde_json::json!({
            "shell": shell.to_string(),
            "script": String::from_utf8_lossy(&script),
        }))?;
    } else {
        print_raw(&script);
    }
    Ok(0)
}

/// With `--json`, the page is the `page` field of the summary, or with
/// `--dir` the files written are listed.
pub fn man(out: &Out, dir: Option<&Path>) -> Result<u8> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        if out.json {
            out.json(&serde_json::json!({ "page": String::from_utf8_lossy(&page) }))?;
        } else {
            print_raw(&page);
        }
        return Ok(0);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("{}", dir.display()))?;
    if out.json {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("{}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path().display().to_string())
            .filter(|p| p.ends_with(".1"))
            .collect();
        files.sort();
        out.json(&serde_json::json!({ "dir": dir, "files": files }))?;
    }
    Ok(0)
}

fn print_raw(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        outln!("{line}");
    }
}
