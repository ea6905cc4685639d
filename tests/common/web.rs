//! For the `cairn serve` tests: the server as a child process, and a
//! minimal HTTP/1.1 client (one request per connection, chunked bodies
//! decoded) that the HTTP tests and the WebDriver client share.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Env;

/// The token every test server is started with.
pub const TOKEN: &str = "test-token-0123456789";

/// A running `cairn serve`; killed when dropped.
pub struct Served {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The URL it printed (with `?token=`).
    pub url: String,
}

impl Served {
    /// `cairn serve --listen 127.0.0.1:0 EXTRA...` on the environment's
    /// repository, with no Docker engine in reach (no volume restores).
    pub fn start(env: &Env, extra: &[&str]) -> Served {
        let mut c = env.cmd();
        c.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
        Served::spawn(c, extra)
    }

    /// As [`Served::start`], with the machine's Docker engine.
    pub fn start_with_docker(env: &Env, extra: &[&str]) -> Served {
        Served::spawn(env.cmd(), extra)
    }

    fn spawn(mut c: Command, extra: &[&str]) -> Served {
        c.args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("CAIRN_SERVE_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("cairn serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(url.starts_with("http://"), "cairn serve printed {line:?}");
        let addr = url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Served { child, addr, url }
    }

    /// GET with the bearer token.
    pub fn get(&self, path: &str) -> Response {
        request(
            &self.addr,
            "GET",
            path,
            &[("Authorization", &bearer())],
            b"",
        )
    }

    /// GET, requiring 200; the body as text.
    pub fn page(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.text()
    }

    /// A session cookie, obtained the way a browser does (`?token=`).
    pub fn session(&self) -> Session {
        let r = request(&self.addr, "GET", &format!("/?token={TOKEN}"), &[], b"");
        assert_eq!(r.status, 303, "token in query redirects");
        let cookie = r.header("set-cookie").expect("a session cookie");
        let cookie = cookie.split(';').next().unwrap().to_string();
        let page = request(
            &self.addr,
            "GET",
            "/repository",
            &[("Cookie", &cookie)],
            b"",
        );
        let text = page.text();
        let csrf = text
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the repository page carries a CSRF token")
            .to_string();
        Session { cookie, csrf }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Bearer TOKEN`.
pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A browser-like session: its cookie and the CSRF token of its forms.
pub struct Session {
    /// `cairn_session=...`.
    pub cookie: String,
    /// The `csrf` form field.
    pub csrf: String,
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request and read the whole response.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(&raw_request(addr, method, path, headers, body))
        .unwrap();
    parse_response(&read_response(&mut s))
}

/// The bytes of one response: up to its length, the end of its chunked
/// body, or the end of the connection (some servers keep it open).
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let complete = match length {
                Some(n) => body.len() >= n,
                None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                return raw;
            }
        }
        match s.read(&mut buf).unwrap() {
            0 => return raw,
            n => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// The bytes of a request (also used to start one and never read it).
pub fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    out
}

fn parse_response(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            panic!("truncated chunked body");
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        assert!(data.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A form body: `k=v&...` with values percent-encoded.
pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Percent-encode everything but unreserved characters.
pub fn pct(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}
