//! A small WebDriver client (W3C protocol, JSON over HTTP) for driving
//! Debian's headless Chromium through chromedriver: enough to open pages,
//! find, click and type, read text and take screenshots.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::web::request;

/// Where Debian installs the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// See [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Why the browser tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("{p} not found (apt-get install -y chromium chromium-driver)"))
}

/// A chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Start chromedriver and a headless browser that saves downloads in `downloads`.
    pub fn start(downloads: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false
                }
            }
        }}});
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"].as_str().expect("a session id").to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json")];
        let r = request(&self.addr, method, path, &headers, body.as_bytes());
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}: {}", r.text()));
        assert!(r.status == 200, "webdriver {method} {path}: {}", v);
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Open a URL.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The first element matching a CSS selector, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = json!({"using": "css selector", "value": css}).to_string();
            let path = format!("/session/{}/element", self.session);
            let headers = [("Content-Type", "application/json")];
            let r = request(&self.addr, "POST", &path, &headers, body.as_bytes());
            if r.status == 200 {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                let id = v["value"]
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_string();
                return Element { b: self, id };
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's visible text; `None` while a page is being replaced.
    pub fn text(&self) -> Option<String> {
        let body =
            json!({"script": "return document.body ? document.body.innerText : '';", "args": []});
        let path = format!("/session/{}/execute/sync", self.session);
        let headers = [("Content-Type", "application/json")];
        let r = request(
            &self.addr,
            "POST",
            &path,
            &headers,
            body.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        (r.status == 200).then(|| v["value"].as_str().map(str::to_string))?
    }

    /// Wait until the page's text contains `what`.
    pub fn wait_for_text(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text().unwrap_or_default();
            if t.contains(what) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} never appeared; page:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Save a PNG of the viewport (the whole page height when `full`).
    pub fn screenshot(&self, path: &Path) {
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().unwrap());
        std::fs::write(path, png).unwrap();
    }

    /// Resize the window (a taller one captures long pages whole).
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = request(&self.addr, "DELETE", &path, &[], b"");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the current page.
pub struct Element<'a> {
    b: &'a Browser,
    id: String,
}

impl Element<'_> {
    /// Click it.
    pub fn click(&self) {
        let path = format!("/element/{}/click", self.id);
        self.b.session_call("POST", &path, Some(json!({})));
    }

    /// Type into it.
    pub fn send_keys(&self, text: &str) {
        let path = format!("/element/{}/value", self.id);
        self.b
            .session_call("POST", &path, Some(json!({ "text": text })));
    }

    /// Its visible text.
    pub fn text(&self) -> String {
        let path = format!("/element/{}/text", self.id);
        self.b
            .session_call("GET", &path, None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An attribute or property.
    pub fn attr(&self, name: &str) -> Option<String> {
        let path = format!("/element/{}/attribute/{name}", self.id);
        self.b
            .session_call("GET", &path, None)
            .as_str()
            .map(str::to_string)
    }
}

/// Standard base64 (screenshots arrive as such).
pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `target/web-screenshots`: test artifacts, never committed.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
