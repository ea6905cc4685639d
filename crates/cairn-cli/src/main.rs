//! The `cairn` binary: parses arguments, shows progress, and wires
//! cairn-chunk and cairn-repo together. Every failure is one line on stderr.

#[macro_use]
mod output;
mod args;
mod commands;
mod keys;
mod location;
mod metrics;
mod profile;
mod signals;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = exit_code(&e);
            if json {
                let doc = serde_json::json!({
                    "schema_version": output::SCHEMA_VERSION,
                    "message_type": "error",
                    "error": one_line(&e),
                    "exit_code": code,
                });
                eprintln!("{doc}");
            } else {
                eprintln!("error: {}", one_line(&e));
            }
            ExitCode::from(code)
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
/// repository does not exist, 12 a wrong or missing password or key, 130
/// interrupted, 1 anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    use cairn_repo::Error;
    match e.chain().find_map(|c| c.downcast_ref::<Error>()) {
        Some(Error::NoRepository(_)) => 10,
        Some(Error::WrongKey(_) | Error::KeyRequired(_) | Error::KeySource(_)) => 12,
        Some(Error::Interrupted) => 130,
        _ => 1,
    }
}
