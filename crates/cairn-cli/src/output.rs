//! How results reach the user: JSON on stdout with `--json`, text otherwise,
//! and progress on stderr only when it is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// Progress of a long command: with `--json`, status lines on stdout
    /// (at most two a second, then the summary); else a bar on stderr when
    /// it is a terminal; else nothing. `total`: bytes expected, if known.
    pub fn bar(&self, total: Option<u64>, what: &'static str) -> Progress {
        let show = !self.quiet && !self.json && std::io::stderr().is_terminal();
        Progress {
            bar: show.then(|| terminal_bar(total, what)),
            status: self.json.then(|| {
                let started = Instant::now();
                Status {
                    command: what,
                    started,
                    // The first event prints a line at once.
                    last: Mutex::new(started.checked_sub(STATUS_EVERY).unwrap_or(started)),
                    current: Mutex::new(String::new()),
                }
            }),
            bytes_total: AtomicU64::new(total.unwrap_or(0)),
            bytes_total_known: AtomicBool::new(total.is_some()),
            files_total: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }
}

fn terminal_bar(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} [{elapsed_precise}] {bytes} {bytes_per_sec}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Status lines of `--json` mode.
struct Status {
    command: &'static str,
    started: Instant,
    last: Mutex<Instant>,
    current: Mutex<String>,
}

/// Time between two status lines, at least.
const STATUS_EVERY: Duration = Duration::from_millis(500);

/// Progress of one command (see [`Out::bar`]); problems are always printed,
/// one line each on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    status: Option<Status>,
    /// Bytes expected, once known (given at the start, or as the command
    /// learns them).
    bytes_total: AtomicU64,
    bytes_total_known: AtomicBool,
    /// Files or other items expected; 0 when unknown.
    files_total: AtomicU64,
    bytes: AtomicU64,
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

    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        self.maybe_status();
    }

    fn set_current(&self, path: &std::path::Path) {
        if let Some(st) = &self.status {
            *st.current.lock().unwrap_or_else(|p| p.into_inner()) = path.display().to_string();
        }
    }

    /// A status line, if the last one is old enough.
    fn maybe_status(&self) {
        let Some(st) = &self.status else {
            return;
        };
        {
            let mut last = st.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < STATUS_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let elapsed = st.started.elapsed().as_secs_f64();
        let done = self.bytes.load(Ordering::Relaxed);
        let total = self
            .bytes_total_known
            .load(Ordering::Relaxed)
            .then(|| self.bytes_total.load(Ordering::Relaxed));
        let files_total = Some(self.files_total.load(Ordering::Relaxed)).filter(|&n| n > 0);
        let fraction = total
            .filter(|&t| t > 0)
            .map(|t| (done as f64 / t as f64).min(1.0));
        let eta = fraction
            .filter(|&f| f > 0.0)
            .map(|f| elapsed * (1.0 - f) / f);
        let current = st.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let doc = serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "message_type": "status",
            "command": st.command,
            "elapsed_s": elapsed,
            "files_done": self.entries.load(Ordering::Relaxed),
            "files_total": files_total,
            "bytes_done": done,
            "bytes_total": total,
            "percent_done": fraction.map(|f| f * 100.0),
            "eta_s": eta,
            "current": current,
        });
        outln!("{doc}");
    }
}

impl cairn_repo::ops::backup::Progress for Progress {
    fn read_bytes(&self, n: u64) {
        self.add_bytes(n);
    }
    fn entry_done(&self) {
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.maybe_status();
    }
    fn reading(&self, path: &std::path::Path) {
        self.set_current(path);
    }
    fn problem(&self, problem: &cairn_repo::ops::backup::BackupProblem) {
        self.line(&format!("warning: {problem}"));
    }
    fn cancelled(&self) -> bool {
        crate::signals::interrupted()
    }
}

impl cairn_repo::ops::restore::RestoreProgress for Progress {
    fn bytes(&self, n: u64) {
        self.add_bytes(n);
    }
    fn file_done(&self, path: &std::path::Path) {
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.set_current(path);
        self.maybe_status();
    }
    fn cancelled(&self) -> bool {
        crate::signals::interrupted()
    }
}

/// check, prune and copy: items are packs or snapshots (`files_done` and
/// `files_total` in the status lines).
impl cairn_repo::ops::progress::WorkProgress for Progress {
    fn expect(&self, items: u64, bytes: u64) {
        self.files_total.fetch_add(items, Ordering::Relaxed);
        if bytes > 0 {
            self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
            self.bytes_total_known.store(true, Ordering::Relaxed);
            if let Some(b) = &self.bar {
                b.set_length(self.bytes_total.load(Ordering::Relaxed));
            }
        }
    }
    fn advance(&self, items: u64, bytes: u64) {
        self.entries.fetch_add(items, Ordering::Relaxed);
        self.add_bytes(bytes);
    }
    fn working_on(&self, what: &str) {
        if let Some(st) = &self.status {
            *st.current.lock().unwrap_or_else(|p| p.into_inner()) = what.to_string();
        }
    }
    fn cancelled(&self) -> bool {
        crate::signals::interrupted()
    }
}

/// Bytes in binary units, as humans read them (as the charts label them).
pub fn human_bytes(n: u64) -> String {
    cairn_chart::bytes_label(n)
}
