//! Shared helpers for the end-to-end tests: finding the `cairn` binary,
//! running it against a private repository and cache, building source
//! trees, and comparing trees entry by entry.
//!
//! Every test gets its own [`Env`]: a temporary directory that holds the
//! repository, the source tree(s), the restore target(s) and the cache, and
//! that is also `$HOME`, `$XDG_CACHE_HOME` and `$XDG_DATA_HOME` for the child
//! process, so no test ever touches the real home directory.

#![allow(dead_code)]

pub mod forge;
pub mod schema;
pub mod web;
pub mod webdriver;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

/// The `cairn` binary: `$CAIRN_BIN`, else `<test exe dir>/../cairn`, else
/// built once with `cargo build -p cairn-cli`.
pub fn cairn_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CAIRN_BIN").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "CAIRN_BIN={} does not exist", p.display());
            return p;
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test>-<hash>  →  target/<profile>/cairn
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            let candidate = profile_dir.join("cairn");
            if candidate.is_file() {
                return candidate;
            }
        }
        build_cairn()
    })
}

fn build_cairn() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", "cairn-cli"])
        .current_dir(root)
        .status()
        .unwrap_or_else(|e| panic!("running {cargo:?} build -p cairn-cli: {e}"));
    assert!(status.success(), "cargo build -p cairn-cli failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("cairn");
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// Whether the tests run as root (owners, devices, unreadable files differ).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------
// A private environment per test
// ---------------------------------------------------------------------------

/// One test's world: a temp dir with the repository, cache, sources, targets.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("cairn-e2e-")
            .tempdir()
            .expect("tempdir");
        let repo = dir.path().join("repo");
        let cache = dir.path().join("cache");
        fs::create_dir_all(dir.path().join("home")).unwrap();
        Env { dir, repo, cache }
    }

    /// A path inside the environment.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `cairn` command with `--repo` and `--cache-dir` of this environment
    /// and a home directory inside it.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(cairn_bin());
        c.arg("--repo")
            .arg(&self.repo)
            .arg("--cache-dir")
            .arg(&self.cache);
        self.isolate(&mut c);
        c
    }

    /// Point every home-derived location of `c` into the environment.
    pub fn isolate(&self, c: &mut Command) {
        let home = self.dir.path().join("home");
        c.env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env_remove("CAIRN_PASSWORD")
            .env_remove("CAIRN_PASSWORD_FILE")
            .env_remove("CAIRN_PASSWORD_COMMAND")
            .env_remove("CAIRN_KEY_FILE")
            .env_remove("CAIRN_REPO")
            .env_remove("CAIRN_CACHE_DIR")
            .env_remove("CAIRN_CONFIG")
            .env_remove("CAIRN_METRICS_FILE")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LOG");
    }

    /// Run cairn with `args` (after `--repo`/`--cache-dir`).
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cmd();
        c.args(args);
        run_cmd(c)
    }

    /// Run cairn and require exit 0; returns the output.
    pub fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.run(&args);
        assert_exit(&out, 0, &format!("cairn {}", show_args(&args)));
        out
    }

    /// Run cairn with `--json`, require exit 0 and parse stdout.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["--json".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        let out = self.run(&all);
        assert_exit(&out, 0, &format!("cairn {}", show_args(&all)));
        parse_json(&out)
    }

    /// `backup PATH --json` (plus extra args), exit 0 required.
    pub fn backup(&self, src: &Path, extra: &[&str]) -> Value {
        let mut args: Vec<OsString> = vec!["backup".into(), src.into()];
        args.extend(extra.iter().map(OsString::from));
        self.json(&args)
    }

    /// `restore SPEC --target DIR` (plus extra args), exit 0 required.
    pub fn restore(&self, spec: &str, target: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            spec.into(),
            "--target".into(),
            target.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.ok(&args)
    }

    /// `snapshots --json` as an array.
    pub fn snapshots(&self) -> Vec<Value> {
        match self.json(["snapshots"]).get("snapshots") {
            Some(Value::Array(a)) => a.clone(),
            other => panic!("snapshots --json has no snapshots array: {other:?}"),
        }
    }

    /// Paths listed by `ls SNAP --json`, sorted.
    pub fn ls_paths(&self, spec: &str) -> Vec<String> {
        let v = self.json(["ls", spec]);
        let mut paths: Vec<String> = v["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("ls --json is not an array: {v}"))
            .iter()
            .map(|e| e["path"].as_str().expect("ls entry has a path").to_string())
            .collect();
        paths.sort();
        paths
    }

    /// Back up a fresh small tree and restore it: the repository still works.
    pub fn assert_repo_usable(&self) {
        let src = self.path("usable-check-src");
        let _ = fs::remove_dir_all(&src);
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/f.txt"), b"still usable\n").unwrap();
        fs::write(src.join("g.bin"), random_bytes(99, 10_000)).unwrap();
        let b = self.backup(&src, &[]);
        let id = b["snapshot_id"].as_str().expect("snapshot_id").to_string();
        let target = self.path("usable-check-target");
        let _ = fs::remove_dir_all(&target);
        self.restore(&id, &target, &[]);
        assert_trees_equal(&src, &target);
    }
}

/// Run a prepared command, capturing output.
pub fn run_cmd(mut c: Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cairn_bin().display()))
}

fn show_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Require an exit code, printing both streams otherwise.
pub fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The summary of a `--json` run: stdout's last line (status lines, if
/// any, come before it), which must be one JSON object.
pub fn parse_json(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "stdout's last line is not one JSON document: {e}\n--- stdout\n{}--- stderr\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Exit 1 with exactly one non-empty line on stderr, no panic or backtrace.
/// Returns that line.
pub fn assert_one_line_error(o: &Output, what: &str) -> String {
    assert_exit(o, 1, what);
    let err = stderr(o);
    assert_no_panic(&err, what);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one line on stderr, got {}:\n{err}",
        lines.len()
    );
    lines[0].to_string()
}

pub fn assert_no_panic(err: &str, what: &str) {
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!err.contains(bad), "{what}: stderr shows a panic:\n{err}");
    }
}

// ---------------------------------------------------------------------------
// Building trees
// ---------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Write a file, creating its parent directories.
pub fn write(path: &Path, data: impl AsRef<[u8]>) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// Set atime and mtime (nanoseconds) without following a symlink.
pub fn set_mtime(path: &Path, sec: i64, nsec: u32) {
    let t = filetime::FileTime::from_unix_time(sec, nsec);
    filetime::set_symlink_file_times(path, t, t)
        .unwrap_or_else(|e| panic!("set times on {}: {e}", path.display()));
}

pub fn mkfifo(path: &Path, mode: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Give every entry below `root` (children first, root excluded) a distinct
/// nanosecond mtime, so that restored times can be checked exactly.
pub fn stamp_mtimes(root: &Path, base_sec: i64) {
    let mut n = 0i64;
    stamp_rec(root, base_sec, &mut n);
}

fn stamp_rec(dir: &Path, base: i64, n: &mut i64) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            stamp_rec(&p, base, n);
        }
        *n += 1;
        set_mtime(
            &p,
            base + *n * 3600,
            ((123_456_789 + *n * 1_000_003) % 1_000_000_000) as u32,
        );
    }
}

/// A small everyday tree: a few files in a few directories.
pub fn small_tree(root: &Path) {
    write(&root.join("readme.txt"), b"hello cairn\n");
    write(&root.join("etc/app.conf"), b"key = value\n");
    write(&root.join("data/one.bin"), random_bytes(1, 20_000));
    write(&root.join("data/two.bin"), random_bytes(2, 3_000));
    write(&root.join("data/nested/deep/three.txt"), b"three\n");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(&root.join("empty-file"), b"");
}

// ---------------------------------------------------------------------------
// Comparing trees
// ---------------------------------------------------------------------------

/// Extended attributes as sorted (name, value) pairs.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What we know about one entry of a tree.
#[derive(Debug)]
pub struct EntryInfo {
    pub meta: fs::Metadata,
    pub target: Option<Vec<u8>>,
    pub xattrs: Result<Xattrs, String>,
}

/// Every entry below `root` keyed by its relative path bytes; the root is
/// the empty path.
pub fn scan(root: &Path) -> BTreeMap<Vec<u8>, EntryInfo> {
    let mut out = BTreeMap::new();
    scan_rec(root, root, &mut out);
    out
}

fn scan_rec(root: &Path, p: &Path, out: &mut BTreeMap<Vec<u8>, EntryInfo>) {
    let meta = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let rel = p
        .strip_prefix(root)
        .unwrap()
        .as_os_str()
        .as_bytes()
        .to_vec();
    let target = meta
        .file_type()
        .is_symlink()
        .then(|| fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec());
    let xattrs = read_xattrs(p);
    let is_dir = meta.is_dir();
    out.insert(
        rel,
        EntryInfo {
            meta,
            target,
            xattrs,
        },
    );
    if is_dir {
        for e in fs::read_dir(p).unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display())) {
            scan_rec(root, &e.unwrap().path(), out);
        }
    }
}

fn read_xattrs(p: &Path) -> Result<Xattrs, String> {
    let names = xattr::list(p).map_err(|e| e.to_string())?;
    let mut v: Xattrs = names
        .map(|n| {
            let val = xattr::get(p, &n).ok().flatten().unwrap_or_default();
            (n.as_bytes().to_vec(), val)
        })
        .collect();
    v.sort();
    Ok(v)
}

fn show(rel: &[u8]) -> String {
    if rel.is_empty() {
        "<root>".into()
    } else {
        String::from_utf8_lossy(rel).into_owned()
    }
}

fn kind_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFCHR => "chardev",
        libc::S_IFBLK => "blockdev",
        libc::S_IFSOCK => "socket",
        _ => "unknown",
    }
}

/// Every difference between tree `a` (expected) and tree `b` (actual): the
/// set of paths, type, mode bits, owner, size, content, mtime (except the
/// roots'), symlink target, xattrs, device numbers, and hard-link structure.
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    let ea = scan(a);
    let eb = scan(b);
    let mut diffs = Vec::new();
    for rel in ea.keys() {
        if !eb.contains_key(rel) {
            diffs.push(format!("{}: missing from {}", show(rel), b.display()));
        }
    }
    for rel in eb.keys() {
        if !ea.contains_key(rel) {
            diffs.push(format!("{}: unexpected in {}", show(rel), b.display()));
        }
    }
    for (rel, x) in &ea {
        let Some(y) = eb.get(rel) else { continue };
        let name = show(rel);
        let (mx, my) = (&x.meta, &y.meta);
        let (kx, ky) = (kind_name(mx.mode()), kind_name(my.mode()));
        if kx != ky {
            diffs.push(format!("{name}: type {kx} != {ky}"));
            continue;
        }
        if kx != "symlink" && mx.mode() & 0o7777 != my.mode() & 0o7777 {
            diffs.push(format!(
                "{name}: mode {:o} != {:o}",
                mx.mode() & 0o7777,
                my.mode() & 0o7777
            ));
        }
        if (mx.uid(), mx.gid()) != (my.uid(), my.gid()) {
            diffs.push(format!(
                "{name}: owner {}:{} != {}:{}",
                mx.uid(),
                mx.gid(),
                my.uid(),
                my.gid()
            ));
        }
        if !rel.is_empty() && (mx.mtime(), mx.mtime_nsec()) != (my.mtime(), my.mtime_nsec()) {
            diffs.push(format!(
                "{name}: mtime {}.{:09} != {}.{:09}",
                mx.mtime(),
                mx.mtime_nsec(),
                my.mtime(),
                my.mtime_nsec()
            ));
        }
        if x.target != y.target {
            diffs.push(format!(
                "{name}: symlink target {:?} != {:?}",
                x.target.as_deref().map(String::from_utf8_lossy),
                y.target.as_deref().map(String::from_utf8_lossy)
            ));
        }
        if let (Ok(xa), Ok(ya)) = (&x.xattrs, &y.xattrs) {
            if xa != ya {
                diffs.push(format!("{name}: xattrs {xa:?} != {ya:?}"));
            }
        }
        if matches!(kx, "chardev" | "blockdev") && mx.rdev() != my.rdev() {
            diffs.push(format!("{name}: rdev {:#x} != {:#x}", mx.rdev(), my.rdev()));
        }
        if kx == "file" {
            if mx.len() != my.len() {
                diffs.push(format!("{name}: size {} != {}", mx.len(), my.len()));
            } else {
                let (pa, pb) = (
                    a.join(OsStr::from_bytes(rel)),
                    b.join(OsStr::from_bytes(rel)),
                );
                if fs::read(&pa).unwrap() != fs::read(&pb).unwrap() {
                    diffs.push(format!("{name}: content differs"));
                }
            }
            if mx.nlink() != my.nlink() {
                diffs.push(format!("{name}: nlink {} != {}", mx.nlink(), my.nlink()));
            }
        }
    }
    // Hard links: paths that share an inode in `a` share one in `b`, and
    // paths that do not, do not.
    let groups = |m: &BTreeMap<Vec<u8>, EntryInfo>| -> HashMap<Vec<u8>, (u64, u64)> {
        m.iter()
            .filter(|(_, e)| !e.meta.is_dir())
            .map(|(k, e)| (k.clone(), (e.meta.dev(), e.meta.ino())))
            .collect()
    };
    let (ga, gb) = (groups(&ea), groups(&eb));
    let keys: Vec<&Vec<u8>> = ga.keys().filter(|k| gb.contains_key(*k)).collect();
    for (i, p) in keys.iter().enumerate() {
        for q in &keys[i + 1..] {
            let same_a = ga[*p] == ga[*q];
            let same_b = gb[*p] == gb[*q];
            if same_a != same_b {
                diffs.push(format!(
                    "{} and {}: hard-linked in source: {same_a}, in restore: {same_b}",
                    show(p),
                    show(q)
                ));
            }
        }
    }
    diffs
}

/// Panic with every difference if the trees differ.
pub fn assert_trees_equal(expected: &Path, actual: &Path) {
    let d = compare_trees(expected, actual);
    assert!(
        d.is_empty(),
        "{} differs from {} in {} way(s):\n  {}",
        actual.display(),
        expected.display(),
        d.len(),
        d.join("\n  ")
    );
}

/// Relative paths of every entry below `root` (root excluded), sorted, as text.
pub fn list_tree(root: &Path) -> Vec<String> {
    scan(root)
        .into_keys()
        .filter(|k| !k.is_empty())
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect()
}

/// Whether `cairn mount` can run here (root, /dev/fuse, fusermount3), or
/// why not.
pub fn fuse_usable() -> Result<(), &'static str> {
    if !is_root() {
        return Err("not root");
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("no /dev/fuse");
    }
    if Command::new("fusermount3").arg("-V").output().is_err() {
        return Err("no fusermount3 (install fuse3)");
    }
    Ok(())
}

/// Point `c` at the loopback S3 server at `endpoint` with the test
/// credentials, a repository password, and retries short enough for tests.
pub fn s3_test_env(c: &mut Command, endpoint: &str) {
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env("CAIRN_PASSWORD", "s3-test")
        .env("CAIRN_S3_RETRIES", "3")
        .env("CAIRN_S3_RETRY_TIMEOUT", "5");
}
