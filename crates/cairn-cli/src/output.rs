//! How results reach the user: JSON on stdout with `--json`, text otherwise,
//! and progress on stderr only when it is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// `println!` for stdout that ends the process the way a Unix tool does
/// when the reader went away (`cairn ls | head`): by SIGPIPE, quietly,
/// instead of a panic.
macro_rules! outln {
    () => { $crate::output::write_line(format_args!("")) };
    ($($t:tt)*) => { $crate::output::write_line(format_args!($($t)*)) };
}

/// One line on stdout (see [`outln!`]).
pub fn write_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            die_of_sigpipe();
        }
    }
}

fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default action and raising the signal is what a
    // C program writing to a closed pipe would undergo.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// The version of every JSON output's schema (docs/json.md): bumped when a
/// field is removed or changes meaning; adding fields does not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// Output settings from the global flags.
#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Out {
    /// Print a command's result on stdout: one JSON object on one line,
    /// with `schema_version` and `message_type: "summary"` (after any
    /// `status` lines), and `requests` (what the object store was asked)
    /// when the repository is a remote one. docs/json.md has the schemas.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut doc = serde_json::to_value(value)?;
        let map = doc
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("internal error: a JSON result must be an object"))?;
        map.insert("schema_version".into(), SCHEMA_VERSION.into());
        map.insert("message_type".into(), "summary".into());
        if let Some(stats) = crate::location::request_stats() {
            map.insert("requests".into(), serde_json::to_value(stats)?);
        }
        outln!("{}", serde_json::to_string(&doc)?);
        Ok(())
    }

    /// An informational line on stderr, unless quiet.
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// A progress bar counting bytes, if stderr is a terminal.
    pub fn bar(&self, total: Option<u64>, what: &str) -> Progress {
        let show = !self.quiet && std::io::stderr().is_terminal();
        let bar = show.then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg} [{elapsed_precise}] {bytes} {bytes_per_sec} {pos_files}"
            };
            bar.set_style(
                ProgressStyle::with_template(&template.replace("{pos_files}", ""))
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            entries: AtomicU64::new(0),
        }
    }
}

/// Progress on stderr; problems always printed (one line each).
pub struct Progress {
    bar: Option<ProgressBar>,
    entries: AtomicU64,
}

impl Progress {
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }
}

impl cairn_repo::ops::backup::Progress for Progress {
    fn read_bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    fn entry_done(&self) {
        self.entries.fetch_add(1, Ordering::Relaxed);
    }
    fn problem(&self, problem: &cairn_repo::ops::backup::BackupProblem) {
        self.line(&format!("warning: {problem}"));
    }
}

impl cairn_repo::ops::restore::RestoreProgress for Progress {
    fn bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
}

/// Bytes in binary units, as humans read them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
