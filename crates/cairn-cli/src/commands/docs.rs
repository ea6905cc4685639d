//! `cairn completions SHELL` and `cairn man`: generated from the argument
//! definitions, so they never drift from what the binary accepts.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::args::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cairn", &mut out);
    print_raw(&out);
    Ok(0)
}

pub fn man(dir: Option<&Path>) -> Result<u8> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        print_raw(&out);
        return Ok(0);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("{}", dir.display()))?;
    Ok(0)
}

fn print_raw(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        outln!("{line}");
    }
}
