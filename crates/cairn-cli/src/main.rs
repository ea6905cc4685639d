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

/// Allocations this large and up get their own mapping, handed back to the
/// system when freed.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Make glibc's allocator give large buffers (packs being uploaded, range
/// reads, Argon2's memory) back when they are freed. By default it raises
/// its mmap threshold to the size of each large block freed, up to 32 MiB,
/// after which 16 MiB pack buffers come from per-thread heaps that keep
/// the memory: with a dozen upload threads a backup to S3 peaked at 364
/// MiB instead of 80 (docs/PERFORMANCE.md). Setting the threshold turns
/// that adjustment off.
fn return_large_buffers_to_the_system() {
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

use clap::Parser;

fn main() -> ExitCode {
    return_large_buffers_to_the_system();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = exit_code(&e);
            if json {
                json_error(&one_line(&e), code);
            } else {
                eprintln!("error: {}", one_line(&e));
            }
            ExitCode::from(code)
        }
    }
}

/// The error form of `--json` mode, on stderr (docs/schema/error.json).
fn json_error(message: &str, code: u8) {
    let doc = serde_json::json!({
        "schema_version": output::SCHEMA_VERSION,
        "message_type": "error",
        "error": message,
        "exit_code": code,
    });
    eprintln!("{doc}");
}

/// A command line clap rejects: its usual message and exit code 2, or with
/// `--json` anywhere on it, the JSON error form. `--help` and `--version`
/// print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    if !json || !e.use_stderr() {
        e.exit();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    json_error(message, code);
    ExitCode::from(code)
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
