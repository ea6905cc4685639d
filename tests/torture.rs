//! Crash torture: `cairn backup`, `cairn prune` and `cairn forget --prune`
//! killed with SIGKILL at random moments, alone and racing each other,
//! hundreds of times, in a repository of 64 KiB packs (so a backup writes
//! dozens of packs and a kill lands between any two of them). After every
//! batch of rounds:
//!
//! * `cairn check --read-data` exits 0 (warnings allowed);
//! * every snapshot a finished backup reported saved (and not forgotten
//!   since) is there, and every snapshot in the repository restores to
//!   exactly the tree it was taken of (path, type, size, mode, BLAKE3 of the
//!   content, symlink target), including snapshots of killed backups that
//!   got as far as saving theirs;
//! * a new backup and a prune succeed.
//!
//! Each round is one of: a backup; a prune; `forget ID --prune`; a backup
//! and a prune at once; backups of the same data from two hosts at once;
//! the sequence "forget the latest snapshot, prune while another backup
//! runs, back up the same data again, prune during that backup"; and two
//! prunes at once (one of them must be refused while the other runs). Any of them may be killed; the source
//! tree changes between rounds (new, rewritten, patched, re-moded, deleted
//! files, and files returning to content seen before).
//!
//! `cargo test --test torture -- --ignored --nocapture` runs the long
//! version (`CAIRN_TORTURE_KILLS`, default 500 kill points); the seed is
//! printed, and `CAIRN_TORTURE_SEED` replays a run (kill moments depend on
//! timing, so a replay is close, not exact). On failure the repository and
//! cache are kept in the temporary directory for a post-mortem, and the
//! last events are printed. The smoke test (about
//! ten kills) runs by default. Build the binary first: `cargo build -p
//! cairn-cli`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

/// splitmix64: small, fast, and the same everywhere for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------
// The source tree
// ---------------------------------------------------------------------------

/// One file's content, reproducible: random bytes from a seed, with small
/// patches written over them.
#[derive(Clone, Debug, PartialEq)]
struct Content {
    seed: u64,
    len: usize,
    patches: Vec<(usize, u64)>,
    mode: u32,
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        let mut data = random_bytes(self.seed, self.len);
        for &(at, seed) in &self.patches {
            if self.len == 0 {
                break;
            }
            let at = at % self.len;
            let end = (at + 700).min(self.len);
            data[at..end].copy_from_slice(&random_bytes(seed, end - at));
        }
        data
    }
}

/// A directory tree that changes between rounds: files appear, change
/// (rewritten, patched, made executable), return to an earlier content
/// (so data that was forgotten and pruned is stored again) and disappear.
struct Source {
    root: PathBuf,
    files: BTreeMap<String, Content>,
    /// Contents seen before, for files that come back.
    history: Vec<Content>,
    next_seed: u64,
    scale: usize,
}

impl Source {
    fn new(root: PathBuf, rng: &mut Rng, files: usize, scale: usize) -> Source {
        let mut s = Source {
            root,
            files: BTreeMap::new(),
            history: Vec::new(),
            next_seed: rng.next() >> 16,
            scale,
        };
        for _ in 0..files {
            s.add(rng);
        }
        s.sync();
        s
    }

    fn fresh(&mut self, rng: &mut Rng) -> Content {
        self.next_seed += 1;
        // Mostly small files, some spanning many chunks and packs.
        let len = match rng.below(10) {
            0..=5 => rng.below(4096) as usize,
            6..=8 => (16 << 10) + rng.below(200 << 10) as usize,
            _ => (300 << 10) + rng.below(900 << 10) as usize,
        } * self.scale
            / 4;
        Content {
            seed: self.next_seed,
            len,
            patches: Vec::new(),
            mode: 0o644,
        }
    }

    fn add(&mut self, rng: &mut Rng) {
        let dir = *rng.pick(&[
            "",
            "etc/",
            "data/",
            "data/base/",
            "data/base/16384/",
            "log/",
        ]);
        let name = format!("{dir}f{}", rng.below(1 << 20));
        let content = if !self.history.is_empty() && rng.chance(30) {
            rng.pick(&self.history).clone()
        } else {
            self.fresh(rng)
        };
        self.files.insert(name, content);
    }

    /// Change the tree for the next round.
    fn mutate(&mut self, rng: &mut Rng) {
        let n = self.files.len().max(1) as u64;
        for _ in 0..1 + rng.below(4) {
            self.add(rng);
        }
        let names: Vec<String> = self.files.keys().cloned().collect();
        for name in names {
            let roll = rng.below(n * 2);
            let Some(c) = self.files.get_mut(&name) else {
                continue;
            };
            match roll {
                0 => {
                    let old = self.files.remove(&name).unwrap();
                    self.history.push(old);
                }
                1 => {
                    self.history.push(c.clone());
                    c.patches.push((rng.below(1 << 30) as usize, rng.next()));
                }
                2 => {
                    self.history.push(c.clone());
                    self.next_seed += 1;
                    c.seed = self.next_seed;
                    c.patches.clear();
                }
                3 if !self.history.is_empty() => {
                    *c = rng.pick(&self.history).clone();
                }
                4 => c.mode = if c.mode == 0o644 { 0o755 } else { 0o600 },
                _ => {}
            }
        }
        self.sync();
    }

    /// Make the directory hold exactly `files`.
    fn sync(&self) {
        if self.root.exists() {
            remove_extra(&self.root, &self.root, &self.files);
        }
        for (name, c) in &self.files {
            let p = self.root.join(name);
            let data = c.bytes();
            let same = fs::read(&p).is_ok_and(|d| d == data);
            if !same {
                write(&p, &data);
            }
            if fs::metadata(&p).unwrap().mode() & 0o7777 != c.mode {
                fs::set_permissions(&p, fs::Permissions::from_mode(c.mode)).unwrap();
            }
        }
        let link = self.root.join("etc/current");
        if fs::symlink_metadata(&link).is_err() {
            fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("../data/base", &link).unwrap();
        }
    }
}

fn remove_extra(root: &Path, dir: &Path, keep: &BTreeMap<String, Content>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            remove_extra(root, &p, keep);
        } else if meta.is_file() && !keep.contains_key(&rel) {
            fs::remove_file(&p).unwrap();
        }
    }
}

/// What a tree holds: relative path → type, size, mode, BLAKE3 of the
/// content (files) or the target (symlinks).
type Manifest = BTreeMap<String, String>;

fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    manifest_rec(root, root, &mut out);
    out
}

fn manifest_rec(root: &Path, dir: &Path, out: &mut Manifest) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&p).unwrap();
        let mode = meta.mode() & 0o7777;
        let desc = if meta.is_dir() {
            manifest_rec(root, &p, out);
            format!("dir {mode:o}")
        } else if meta.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else {
            let hash = blake3::hash(&fs::read(&p).unwrap());
            format!("file {mode:o} {} {}", meta.len(), hash.to_hex())
        };
        out.insert(rel, desc);
    }
}

fn manifest_diff(want: &Manifest, got: &Manifest) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => d.push(format!("missing {k} ({v})")),
            Some(g) if g != v => d.push(format!("{k}: want {v}, got {g}")),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        d.push(format!("extra {k}"));
    }
    d
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Backup,
    Prune,
    ForgetPrune,
}

/// A running cairn command, and when to kill it.
struct Running {
    kind: Kind,
    child: Child,
    started: Instant,
    kill_after: Option<Duration>,
    out: PathBuf,
    err: PathBuf,
    what: String,
}

/// How a command ended.
struct Ended {
    kind: Kind,
    killed: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    what: String,
}

/// A prune refused because another prune holds the prune lock: expected
/// when two prunes run at once, a failure otherwise.
fn refused_by_other_prune(e: &Ended) -> bool {
    e.kind != Kind::Backup && e.code == Some(1) && e.stderr.contains("another prune is running")
}

struct Torture {
    env: Env,
    rng: Rng,
    seed: u64,
    n: u64,
    /// Typical duration of each kind of command, from runs that finished.
    typical: HashMap<Kind, Duration>,
    /// Kill points exercised (the process was running when killed).
    kills: BTreeMap<Kind, u64>,
    /// Commands that ran to the end.
    finished: BTreeMap<Kind, u64>,
    /// Tag → the tree that backup was taken of.
    manifests: HashMap<String, Manifest>,
    /// Snapshots finished backups reported saved.
    reported: BTreeSet<String>,
    /// Snapshots a forget was started for (they may or may not be gone).
    forgotten: BTreeSet<String>,
    main: Source,
    other: Source,
    batches: u64,
    restores: u64,
    /// Prunes refused because another prune ran at the same time.
    refused_prunes: u64,
    /// What happened, for the failure message.
    log: Vec<String>,
    /// Whether the commands under torture share one index cache (as one
    /// user's commands do), or each gets a fresh one.
    shared_cache: bool,
}

impl Torture {
    fn new(seed: u64, scale: usize, shared_cache: bool) -> Torture {
        let env = Env::new();
        env.ok(["init", "--pack-size", "64K"]);
        let mut rng = Rng(seed);
        let main = Source::new(env.path("src"), &mut rng, 40, scale);
        let other = Source::new(env.path("other"), &mut rng, 12, scale);
        Torture {
            env,
            rng,
            seed,
            n: 0,
            typical: HashMap::new(),
            kills: BTreeMap::new(),
            finished: BTreeMap::new(),
            manifests: HashMap::new(),
            reported: BTreeSet::new(),
            forgotten: BTreeSet::new(),
            main,
            other,
            batches: 0,
            restores: 0,
            log: Vec::new(),
            refused_prunes: 0,
            shared_cache,
        }
    }

    fn note(&mut self, line: String) {
        self.log.push(line);
    }

    /// Fail with the seed and the story so far; the repository and cache
    /// are kept for a post-mortem.
    fn fail(&self, msg: String) -> ! {
        let kept = std::env::temp_dir().join(format!("cairn-torture-{}", self.seed));
        let _ = fs::remove_dir_all(&kept);
        let copied = Command::new("cp")
            .arg("-a")
            .arg(self.env.dir.path())
            .arg(&kept)
            .status()
            .is_ok_and(|s| s.success());
        let from = self.log.len().saturating_sub(60);
        panic!(
            "seed {} (CAIRN_TORTURE_SEED={} replays it): {msg}\n{}--- the last events:\n{}",
            self.seed,
            self.seed,
            if copied {
                format!("(repository and cache kept in {})\n", kept.display())
            } else {
                String::new()
            },
            self.log[from..].join("\n")
        );
    }

    fn total_kills(&self) -> u64 {
        self.kills.values().sum()
    }

    /// A kill delay, uniform over the command's typical duration; `None`
    /// (let it finish) a quarter of the time.
    fn kill_delay(&mut self, kind: Kind) -> Option<Duration> {
        if self.rng.chance(25) {
            return None;
        }
        let typical = self.typical.get(&kind).copied()?;
        let micros = typical.as_micros().max(1000) as u64;
        Some(Duration::from_micros(self.rng.below(micros)))
    }

    fn spawn(&mut self, kind: Kind, args: &[String], kill_after: Option<Duration>) -> Running {
        self.n += 1;
        let out = self.env.path(&format!("out/{}.stdout", self.n));
        let err = self.env.path(&format!("out/{}.stderr", self.n));
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        let mut c = if self.shared_cache {
            self.env.cmd()
        } else {
            let mut c = Command::new(cairn_bin());
            c.arg("--repo")
                .arg(&self.env.repo)
                .arg("--cache-dir")
                .arg(self.env.path(&format!("out/cache-{}", self.n)));
            self.env.isolate(&mut c);
            c
        };
        c.arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        self.note(format!(
            "#{} start `cairn {}`{}",
            self.n,
            args.join(" "),
            kill_after.map_or(String::new(), |d| format!(", kill after {d:?}"))
        ));
        Running {
            kind,
            child: c.spawn().expect("spawn cairn"),
            started: Instant::now(),
            kill_after,
            out,
            err,
            what: format!("#{} `cairn {}`", self.n, args.join(" ")),
        }
    }

    /// A backup of `main` (or `other`) under a new tag; records its tree.
    fn backup_args(&mut self, other: bool, host: &str) -> Vec<String> {
        let tag = format!("t{}", self.n + 1);
        let src = if other { &self.other } else { &self.main };
        self.manifests.insert(tag.clone(), manifest(&src.root));
        let volume = if other { "other" } else { "main" };
        vec![
            "backup".into(),
            src.root.display().to_string(),
            "--volume".into(),
            volume.into(),
            "--host".into(),
            host.into(),
            "--tag".into(),
            tag,
        ]
    }

    fn spawn_backup(&mut self, other: bool, host: &str, kill: bool) -> Running {
        let args = self.backup_args(other, host);
        let delay = if kill {
            self.kill_delay(Kind::Backup)
        } else {
            None
        };
        self.spawn(Kind::Backup, &args, delay)
    }

    fn spawn_prune(&mut self, kill: bool) -> Running {
        let delay = if kill {
            self.kill_delay(Kind::Prune)
        } else {
            None
        };
        self.spawn(Kind::Prune, &["prune".into()], delay)
    }

    /// Wait for every process, killing each at its moment.
    fn finish(&mut self, mut procs: Vec<Running>) -> Vec<Ended> {
        let mut ended: Vec<Option<Ended>> = procs.iter().map(|_| None).collect();
        while ended.iter().any(Option::is_none) {
            for (i, p) in procs.iter_mut().enumerate() {
                if ended[i].is_some() {
                    continue;
                }
                let status = match p.child.try_wait().unwrap() {
                    Some(s) => Some(s),
                    None if p.kill_after.is_some_and(|d| p.started.elapsed() >= d) => {
                        let _ = p.child.kill(); // SIGKILL
                        Some(p.child.wait().unwrap())
                    }
                    None => None,
                };
                if let Some(status) = status {
                    let killed = status.signal() == Some(libc::SIGKILL);
                    ended[i] = Some(Ended {
                        kind: p.kind,
                        killed,
                        code: status.code(),
                        stdout: fs::read_to_string(&p.out).unwrap_or_default(),
                        stderr: fs::read_to_string(&p.err).unwrap_or_default(),
                        elapsed: p.started.elapsed(),
                        what: p.what.clone(),
                    });
                    if killed {
                        age_locks_of(&self.env.repo, p.child.id());
                        if p.kind != Kind::Backup {
                            remove_prune_locks(&self.env.repo);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        let ended: Vec<Ended> = ended.into_iter().map(Option::unwrap).collect();
        let prunes = ended.iter().filter(|e| e.kind != Kind::Backup).count();
        for e in &ended {
            self.judge(e, prunes > 1);
        }
        ended
    }

    /// Count a run; a run that was not killed must have succeeded, and a
    /// finished backup's snapshot is recorded.
    fn judge(&mut self, e: &Ended, prunes_at_once: bool) {
        let first_err = e.stderr.lines().next().unwrap_or("").to_string();
        self.note(format!(
            "{} ended after {:?}: {}{}",
            e.what,
            e.elapsed,
            if e.killed {
                "KILLED".to_string()
            } else {
                format!("exit {:?}", e.code)
            },
            if first_err.is_empty() {
                String::new()
            } else {
                format!(" ({first_err})")
            }
        ));
        if e.killed {
            *self.kills.entry(e.kind).or_default() += 1;
            return;
        }
        if prunes_at_once && refused_by_other_prune(e) {
            self.refused_prunes += 1;
            return;
        }
        if e.code != Some(0) {
            self.fail(format!(
                "{} failed (not killed) after {:?}:\n{}{}",
                e.what, e.elapsed, e.stdout, e.stderr
            ));
        }
        *self.finished.entry(e.kind).or_default() += 1;
        let t = self.typical.entry(e.kind).or_insert(e.elapsed);
        *t = (*t * 3 + e.elapsed) / 4;
        if e.kind == Kind::Backup {
            // Status lines may come first; the summary is the last line.
            let summary = e.stdout.lines().rfind(|l| !l.trim().is_empty());
            let v: Value = serde_json::from_str(summary.unwrap_or("")).unwrap_or_else(|err| {
                self.fail(format!(
                    "{}: stdout is not JSON ({err}): {}",
                    e.what, e.stdout
                ))
            });
            let id = v["snapshot_id"].as_str().expect("snapshot_id").to_string();
            self.note(format!("{} saved {id}", e.what));
            self.reported.insert(id);
        }
    }

    fn run_one(&mut self, p: Running) -> Ended {
        self.finish(vec![p]).pop().unwrap()
    }

    /// Snapshots in the repository: id → tags.
    fn snapshots(&self) -> BTreeMap<String, Vec<String>> {
        self.env
            .snapshots()
            .iter()
            .map(|s| {
                let id = s["id"].as_str().unwrap().to_string();
                let tags = s["tags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                (id, tags)
            })
            .collect()
    }

    fn latest_main(&self) -> Option<String> {
        let all = self.env.snapshots();
        all.iter()
            .filter(|s| s["volume"] == "main" && s["host"] == "alpha")
            .max_by_key(|s| s["time"].as_str().unwrap_or("").to_string())
            .map(|s| s["id"].as_str().unwrap().to_string())
    }

    // -- rounds -------------------------------------------------------------

    fn round(&mut self) {
        if self.rng.chance(60) {
            self.main.mutate(&mut self.rng);
        }
        let roll = self.rng.below(100);
        self.note(format!(
            "round: {}",
            match roll {
                0..=29 => "backup",
                30..=44 => "prune",
                45..=54 => "forget --prune",
                55..=74 => "backup and prune at once",
                75..=84 => "the same data from two hosts at once",
                85..=94 =>
                    "forget latest, prune during another backup, store again, prune during it",
                _ => "forget --prune and prune at once",
            }
        ));
        match roll {
            0..=29 => {
                let p = self.spawn_backup(false, "alpha", true);
                self.run_one(p);
            }
            30..=44 => {
                let p = self.spawn_prune(true);
                self.run_one(p);
            }
            45..=54 => self.forget_and_prune(),
            55..=74 => {
                // A backup and a prune at once; either, both or neither killed.
                let b = self.spawn_backup(false, "alpha", true);
                let p = self.spawn_prune(true);
                self.finish(vec![b, p]);
            }
            75..=84 => {
                // The same data from two hosts at once.
                let a = self.spawn_backup(false, "alpha", true);
                let b = self.spawn_backup(false, "beta", true);
                self.finish(vec![a, b]);
            }
            85..=94 => self.forget_latest_and_store_again(),
            _ => {
                // Two prunes at once.
                let f = self.spawn_forget_prune();
                let p = self.spawn_prune(true);
                self.finish(vec![f, p]);
            }
        }
    }

    /// `forget ID --prune` of a random snapshot (a plain prune if there is none).
    fn spawn_forget_prune(&mut self) -> Running {
        let present: Vec<String> = self.snapshots().into_keys().collect();
        if present.is_empty() {
            return self.spawn_prune(true);
        }
        let id = self.rng.pick(&present).clone();
        self.forgotten.insert(id.clone());
        let args = vec!["forget".into(), id, "--prune".into()];
        let delay = self.kill_delay(Kind::ForgetPrune);
        self.spawn(Kind::ForgetPrune, &args, delay)
    }

    fn forget_and_prune(&mut self) {
        let p = self.spawn_forget_prune();
        self.run_one(p);
    }

    /// The sequence from the issue: forget the latest snapshot; prune while
    /// another backup runs (the plan waits for it); back up the same data
    /// again while that plan is pending; prune during that backup.
    fn forget_latest_and_store_again(&mut self) {
        if let Some(latest) = self.latest_main() {
            self.forgotten.insert(latest.clone());
            self.note(format!("forget {latest}"));
            self.env.ok(["forget", latest.as_str()]);
        }
        let kill_other = self.rng.chance(30);
        let other = self.spawn_backup(true, "alpha", kill_other);
        std::thread::sleep(Duration::from_millis(self.rng.below(20)));
        let prune = self.spawn_prune(true);
        self.finish(vec![other, prune]);
        let again = self.spawn_backup(false, "alpha", true);
        let typical = self.typical.get(&Kind::Backup).copied().unwrap_or_default();
        std::thread::sleep(typical.mul_f64(self.rng.below(100) as f64 / 200.0));
        let prune = self.spawn_prune(true);
        self.finish(vec![again, prune]);
    }

    // -- verification -------------------------------------------------------

    /// check --read-data, every snapshot restores exactly, the reported
    /// ones are all there; then a new backup and a prune succeed.
    fn verify(&mut self) {
        self.batches += 1;
        self.note(format!("verify batch {}", self.batches));
        let check = self.env.run(["check", "--read-data"]);
        if check.status.code() != Some(0) {
            self.fail(format!(
                "check --read-data after batch {} failed:\n{}{}",
                self.batches,
                stdout(&check),
                stderr(&check)
            ));
        }
        let present = self.snapshots();
        for id in &self.reported {
            if !present.contains_key(id) && !self.forgotten.contains(id) {
                self.fail(format!(
                    "snapshot {id} was reported saved and never forgotten, but is gone"
                ));
            }
        }
        for (id, tags) in &present {
            let Some(tag) = tags.iter().find(|t| self.manifests.contains_key(*t)) else {
                self.fail(format!("snapshot {id} has no known tag: {tags:?}"));
            };
            let target = self.env.path(&format!("restore-{id}"));
            let out = self
                .env
                .run(["restore", id.as_str(), "--target", target.to_str().unwrap()]);
            if out.status.code() != Some(0) {
                self.fail(format!("restore of {id} ({tag}) failed:\n{}", stderr(&out)));
            }
            let diff = manifest_diff(&self.manifests[tag], &manifest(&target));
            if !diff.is_empty() {
                self.fail(format!(
                    "snapshot {id} ({tag}) restores differently from its tree:\n  {}",
                    diff.join("\n  ")
                ));
            }
            fs::remove_dir_all(&target).unwrap();
            self.restores += 1;
        }
        let b = self.spawn_backup(false, "alpha", false);
        self.run_one(b);
        let p = self.spawn_prune(false);
        self.run_one(p);
        // Keep the history short, so restores stay cheap.
        let present: Vec<String> = self.snapshots().into_keys().collect();
        if present.len() > 6 {
            let mut args = vec!["forget".to_string()];
            for id in &present[..present.len() - 4] {
                self.forgotten.insert(id.clone());
                args.push(id.clone());
            }
            self.env.ok(&args);
        }
        // Outputs of this batch are no longer needed.
        let _ = fs::remove_dir_all(self.env.path("out"));
    }

    fn report(&self, started: Instant) -> String {
        format!(
            "seed {}: {} kill points ({:?}), {} runs finished ({:?}), {} prunes refused while another ran, {} batches verified, {} restores compared, {:.1}s",
            self.seed,
            self.total_kills(),
            self.kills,
            self.finished.values().sum::<u64>(),
            self.finished,
            self.refused_prunes,
            self.batches,
            self.restores,
            started.elapsed().as_secs_f64()
        )
    }
}

/// A killed process's locks stay fresh for 30 minutes, and prunes defer
/// their plans for that long (by design, docs/FORMAT.md section 11). To
/// exercise plan execution within a test, age the dead process's lock:
/// rewrite the `time` field of each `locks/` object whose `pid` is the
/// killed process to a time long past, as if 30 minutes had gone by.
/// A killed prune's lock blocks every prune for 30 minutes, and in an
/// encrypted repository [`age_locks_of`] cannot read it: delete the prune
/// locks, as a user would after a prune crashed. (Only a second prune of
/// the "two prunes at once" round can lose its lock this way; it then runs
/// unguarded until it ends.)
fn remove_prune_locks(repo: &Path) {
    let Ok(dir) = fs::read_dir(repo.join("locks")) else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().starts_with("prune-") {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn age_locks_of(repo: &Path, pid: u32) {
    let Ok(dir) = fs::read_dir(repo.join("locks")) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(mut lock) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if lock["pid"].as_u64() == Some(u64::from(pid)) {
            lock["time"] = "2000-01-01T00:00:00.000Z".into();
            fs::write(e.path(), lock.to_string()).unwrap();
        }
    }
}

fn torture(kills_wanted: u64, rounds_per_batch: u64, scale: usize) {
    let seed = env_u64("CAIRN_TORTURE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let shared_cache = match std::env::var("CAIRN_TORTURE_CACHE").as_deref() {
        Ok("shared") => true,
        Ok("private") => false,
        _ => true,
    };
    eprintln!(
        "torture: seed {seed} (CAIRN_TORTURE_SEED={seed} replays this run), {kills_wanted} kill points wanted, {} index cache",
        if shared_cache { "shared" } else { "private" },
    );
    let started = Instant::now();
    let mut t = Torture::new(seed, scale, shared_cache);
    // Uncut runs first: they measure how long each command takes.
    let b = t.spawn_backup(false, "alpha", false);
    t.run_one(b);
    let b = t.spawn_backup(true, "alpha", false);
    t.run_one(b);
    let p = t.spawn_prune(false);
    t.run_one(p);
    let f = t.spawn_forget_prune();
    t.finish(vec![f]);
    let mut rounds = 0;
    while t.total_kills() < kills_wanted && rounds < kills_wanted * 4 + 20 {
        for _ in 0..rounds_per_batch {
            t.round();
            rounds += 1;
        }
        t.verify();
        if t.batches % 5 == 0 {
            eprintln!("torture: {}", t.report(started));
        }
    }
    eprintln!("torture: {rounds} rounds; {}", t.report(started));
    assert!(
        t.total_kills() >= kills_wanted,
        "only {} kill points in {rounds} rounds",
        t.total_kills()
    );
}

/// About ten kills, so every CI run exercises the machinery.
#[test]
fn crash_torture_smoke() {
    torture(env_u64("CAIRN_TORTURE_SMOKE_KILLS").unwrap_or(10), 6, 1);
}

/// Hundreds of kills (`CAIRN_TORTURE_KILLS`, default 500).
#[test]
#[ignore = "long run: cargo test --test torture -- --ignored --nocapture"]
fn crash_torture() {
    torture(env_u64("CAIRN_TORTURE_KILLS").unwrap_or(500), 10, 4);
}
