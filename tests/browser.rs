//! The demo page in a real browser: the `ferrows` binary serves `GET /`, and
//! `tests/browser/chat.mjs` drives two Chromium pages (Debian's `chromium`
//! through playwright-core) that chat through one room.
//!
//! Needs `node` (20 or later), `tests/browser/node_modules` and
//! `/usr/bin/chromium`; `.ci/install-browser` installs them. Anything missing
//! fails the test with that instruction: it is never skipped.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;
#[cfg(feature = "jwt")]
#[path = "support/tokens.rs"]
mod tokens;

use process::ServerProcess;

/// What `GET /` must answer with, byte for byte.
const DEMO_PAGE: &str = include_str!("../src/app/demo.html");

const CHROMIUM: &str = "/usr/bin/chromium";

const INSTALL: &str = "run `.ci/install-browser` (it installs Debian's chromium and tests/browser/node_modules)";

/// The script bounds itself at 60 s; this is only against a hang.
const SCRIPT_WITHIN: Duration = Duration::from_secs(90);

const HTTP_WITHIN: Duration = Duration::from_secs(10);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory (`target/` unless `CARGO_TARGET_DIR` moves it).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// Fails with the install instruction unless node, playwright-core and Chromium are all there.
fn require_browser_tools() {
    match Command::new("node").arg("--version").output() {
        Err(e) => panic!("cannot run `node` ({e}): install Node 20 or later, then {INSTALL}"),
        Ok(out) if !out.status.success() => panic!("`node --version` failed ({}): {INSTALL}", out.status),
        Ok(_) => {}
    }
    let playwright = manifest_dir().join("tests/browser/node_modules/playwright-core/package.json");
    assert!(playwright.is_file(), "{} is missing: {INSTALL}", playwright.display());
    assert!(Path::new(CHROMIUM).is_file(), "{CHROMIUM} is missing: {INSTALL}");
}

/// A response to a plain HTTP/1.1 GET: status code, headers, body.
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET path` over a plain TcpStream; the body is read by Content-Length, or to EOF without one.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_WITHIN)?;
    stream.set_read_timeout(Some(HTTP_WITHIN))?;
    stream.set_write_timeout(Some(HTTP_WITHIN))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html\r\nConnection: close\r\n\r\n")?;

    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside the response head"));
        }
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut response = HttpResponse { status, headers, body: received[head_end..].to_vec() };

    match response.header("content-length").map(str::parse::<usize>) {
        Some(Ok(length)) => {
            while response.body.len() < length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside the body"));
                }
                response.body.extend_from_slice(&chunk[..n]);
            }
            response.body.truncate(length);
        }
        Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad Content-Length: {e}"))),
        None => {
            stream.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

/// Runs `node tests/browser/chat.mjs URL SCREENSHOT`, killing it past `within`.
fn run_chat_script(
    url: &str,
    screenshot: &Path,
    token: Option<&str>,
    within: Duration,
) -> (ExitStatus, String, String) {
    let script = manifest_dir().join("tests/browser/chat.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(url)
        .arg(screenshot)
        // With a token, the script also checks recovery (the server keeps history).
        .args(token.map(|t| vec![t, "recover"]).unwrap_or_default())
        .current_dir(manifest_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}; {INSTALL}", script.display()));

    // Drained on their own threads so that a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));

    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll node") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
            panic!("the browser script did not finish within {within:?}:\nstdout:\n{out}\nstderr:\n{err}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    (status, stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default())
}

#[test]
fn chromium_chat_between_two_pages() {
    require_browser_tools();
    let mut server = ServerProcess::start("browser-ferrows", &["--loops", "2"], "info");

    let page = http_get(server.addr, "/").unwrap_or_else(|e| panic!("GET / from ferrows: {e}"));
    assert_eq!(page.status, 200, "GET / status; body:\n{}", String::from_utf8_lossy(&page.body));
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"), "GET / Content-Type");
    assert!(page.body == DEMO_PAGE.as_bytes(), "GET / must serve src/app/demo.html unchanged");

    let screenshot = target_dir().join("browser-chat.png");
    let _ = std::fs::remove_file(&screenshot);
    let (status, stdout, stderr) =
        run_chat_script(&format!("http://{}/", server.addr), &screenshot, None, SCRIPT_WITHIN);
    assert!(
        status.success() && stdout.lines().last() == Some("OK"),
        "the browser script failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nferrows log:\n{}",
        server.log_text()
    );

    let png = std::fs::read(&screenshot).unwrap_or_else(|e| panic!("read {}: {e}", screenshot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "{} is not a screenshot", screenshot.display());
    server.assert_running();
}

/// The same chat on a server that checks tokens: the page passes one as a
/// `bearer.` subprotocol entry, and Chromium accepts the protocol the server
/// answers. Then the pages' sessions are cut and what is published meanwhile
/// appears once they are back, marked as recovered.
#[cfg(feature = "jwt")]
#[test]
fn chromium_chat_with_a_token() {
    const SECRET: &str = "the browser test's secret, 32 bytes or more";
    require_browser_tools();
    // With history, so that the page gets back what was published while its session was cut.
    let args = ["--topics-history-size", "50"];
    let server = ServerProcess::start_with_env("browser-token", &args, "info", &[("FERROWS_AUTH_HMAC_SECRET", SECRET)]);
    let claims = serde_json::json!({
        "sub": "browser", "exp": tokens::unix_now() + 300, "topics": ["browser-*"], "publish": ["browser-*"],
    });
    let token = tokens::hs256(SECRET, &claims);
    let screenshot = target_dir().join("browser-chat-token.png");
    let url = format!("http://{}/", server.addr);
    let (status, stdout, stderr) = run_chat_script(&url, &screenshot, Some(&token), SCRIPT_WITHIN);
    assert!(
        status.success() && stdout.lines().last() == Some("OK"),
        "the browser script failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nferrows log:\n{}",
        server.log_text()
    );
    // Without the token the same room is shut.
    let mut client = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        client,
        "GET /rooms/browser-x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 401");
}
