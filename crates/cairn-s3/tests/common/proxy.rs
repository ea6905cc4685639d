//! A fault-injecting HTTP/1.1 proxy between a backend and the S3 server.
//! Each client connection carries one request: the proxy reads it whole,
//! then, as its script says, answers `503 SlowDown` itself, or forwards it
//! and delays the answer, cuts it halfway, or passes it on.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Forward it and pass the answer back.
    Pass,
    /// Answer `503 SlowDown` without forwarding.
    SlowDown,
    /// Forward it, then hold the answer back this long.
    Delay(Duration),
    /// Forward it (so the server acts on it), then send half the answer
    /// and close the connection.
    Cut,
}

#[derive(Default)]
struct Script {
    next: VecDeque<Fault>,
    /// For requests after the script: `None` passes them.
    then: Option<Fault>,
    seen: usize,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl FaultProxy {
    /// A proxy on a free 127.0.0.1 port forwarding to `upstream`. Its
    /// threads live as long as the test binary and touch only loopback.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let fault = shared.lock().unwrap().take();
                thread::spawn(move || {
                    let _ = serve(client, upstream, fault);
                });
            }
        });
        FaultProxy { addr, script }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Apply `faults` to the next requests, one each.
    pub fn next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().unwrap().next.extend(faults);
    }

    /// Apply `fault` to every request after the scripted ones.
    pub fn always(&self, fault: Fault) {
        self.script.lock().unwrap().then = Some(fault);
    }

    /// Requests seen so far.
    pub fn seen(&self) -> usize {
        self.script.lock().unwrap().seen
    }
}

impl Script {
    fn take(&mut self) -> Fault {
        self.seen += 1;
        self.next.pop_front().or(self.then).unwrap_or(Fault::Pass)
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                         <Message>Please reduce your request rate.</Message></Error>";

fn serve(client: TcpStream, upstream: SocketAddr, fault: Fault) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(request) = read_request(&mut reader)? else {
        return Ok(());
    };
    let mut client = client;
    if fault == Fault::SlowDown {
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            SLOW_DOWN.len()
        );
        client.write_all(head.as_bytes())?;
        return client.write_all(SLOW_DOWN.as_bytes());
    }
    let answer = forward(upstream, &request)?;
    match fault {
        Fault::Delay(d) => thread::sleep(d),
        Fault::Cut => {
            client.write_all(&answer[..answer.len() / 2])?;
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    client.write_all(&answer)
}

/// One request, head and body, with `Connection: close` in place of any
/// connection header; `None` if the client closed without sending one.
fn read_request(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    if chunked {
        read_chunked(r, &mut head)?;
    } else {
        let start = head.len();
        head.resize(start + length, 0);
        r.read_exact(&mut head[start..])?;
    }
    Ok(Some(head))
}

/// Copy a chunked body as it is, through its last chunk and trailer.
fn read_chunked(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut size_line = String::new();
        r.read_line(&mut size_line)?;
        out.extend_from_slice(size_line.as_bytes());
        let hex = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(hex, 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            loop {
                let mut trailer = String::new();
                r.read_line(&mut trailer)?;
                out.extend_from_slice(trailer.as_bytes());
                if trailer == "\r\n" || trailer.is_empty() {
                    return Ok(());
                }
            }
        }
        let start = out.len();
        out.resize(start + size + 2, 0);
        r.read_exact(&mut out[start..])?;
    }
}

/// Send `request` upstream and read the answer to the end (the request
/// asked the server to close).
fn forward(upstream: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(30)))?;
    server.write_all(request)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    Ok(force_close(answer))
}

/// Make the answer say `Connection: close`, since the proxy closes the
/// client connection after it.
fn force_close(answer: Vec<u8>) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|l| [l.as_bytes(), b"\r\n"].concat())
        .collect();
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&answer[end + 4..]);
    out
}
