//! Test harness: a moto S3 server on 127.0.0.1, buckets and prefixes in it,
//! and backends pointed at it.
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod conformance;
pub mod proxy;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_s3::{AwsEnv, S3Backend, S3Options};

/// A moto server for the whole test binary: the one at `CAIRN_S3_MOTO`
/// (`127.0.0.1:PORT`, as tests/s3/start-moto.sh starts it), or one of its
/// own. That one is started through a shell that waits on its stdin, a
/// pipe from this process: when the test binary exits, however it exits,
/// the pipe closes and the shell stops moto.
pub struct Moto {
    pub addr: SocketAddr,
    _watchdog: Option<Child>,
}

/// Set to make a missing moto a failure instead of a skip (CI sets it).
const REQUIRE: &str = "CAIRN_S3_REQUIRE_MOTO";
/// Address of a running moto to use.
const SHARED: &str = "CAIRN_S3_MOTO";

/// The shared moto server, or `None` (with a message saying why the test
/// is skipped) if moto is not installed.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(start_moto).as_ref()
}

fn start_moto() -> Option<Moto> {
    if let Ok(addr) = std::env::var(SHARED) {
        let addr: SocketAddr = addr.parse().expect("CAIRN_S3_MOTO is 127.0.0.1:PORT");
        wait_until_answering(addr, Duration::from_secs(30));
        return Some(Moto {
            addr,
            _watchdog: None,
        });
    }
    let installed = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let msg = "moto_server not found: S3 tests skipped (pip install 'moto[server]', \
                   or run tests/s3/start-moto.sh)";
        assert!(std::env::var_os(REQUIRE).is_none(), "{msg}");
        // Straight to stderr: libtest hides what passing tests print.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
        return None;
    }
    let port = free_port();
    let script = "moto_server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & pid=$!; \
                  trap 'kill $pid 2>/dev/null' EXIT; read _ignored; exit 0";
    let watchdog = Command::new("sh")
        .args(["-c", script, "moto-watchdog", &port.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until_answering(addr, Duration::from_secs(60));
    Some(Moto {
        addr,
        _watchdog: Some(watchdog),
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_answering(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if raw_request(addr, "GET", "/").is_ok_and(|r| r.starts_with("HTTP/1.")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server on {addr} did not answer within {limit:?}");
}

/// One unsigned HTTP/1.1 request; moto does not check signatures.
pub fn raw_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new bucket, named for the test and unique even on a moto that
    /// other test binaries and earlier runs use.
    pub fn bucket(&self, name: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000;
        let n = N.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("{name}-{}-{run}-{n}", std::process::id());
        let answer = raw_request(self.addr, "PUT", &format!("/{bucket}")).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "creating {bucket}: {answer}"
        );
        bucket
    }
}

/// The environment a test backend is configured from: keys and endpoint,
/// no shared files (so no developer's ~/.aws leaks in).
pub fn env_for(endpoint: &str) -> AwsEnv {
    AwsEnv::from_vars([
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("HOME", "/nonexistent"),
    ])
}

/// Options for tests: quick to give up, so failures show in seconds.
pub fn quick_options() -> S3Options {
    let mut o = S3Options::default();
    o.retry.max_retries = 4;
    o.retry.timeout = Duration::from_secs(5);
    o.retry.initial_backoff = Duration::from_millis(20);
    o.retry.max_backoff = Duration::from_millis(200);
    o.request_timeout = Duration::from_secs(10);
    o.connect_timeout = Duration::from_secs(2);
    o
}

pub fn backend(endpoint: &str, url: &str, options: &S3Options) -> S3Backend {
    S3Backend::with_env(url, options, &env_for(endpoint)).unwrap()
}
