//! The `cairn` binary: parses arguments, shows progress, and wires
//! cairn-chunk and cairn-repo together. Every failure is one line on stderr.

#[macro_use]
mod output;
mod args;
mod commands;
mod keys;
mod location;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes on one line, without repeating a cause that the
/// message above it already includes.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace('\n', " ")
}

/// Exit codes integrators already handle (restic's numbers): 10 the
/// repository does not exist, 12 a wrong or missing password or key, 1
/// anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    use cairn_repo::Error;
    match e.chain().find_map(|c| c.downcast_ref::<Error>()) {
        Some(Error::NoRepository(_)) => 10,
        Some(Error::WrongKey(_) | Error::KeyRequired(_) | Error::KeySource(_)) => 12,
        _ => 1,
    }
}
