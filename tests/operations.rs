//! The `ferrows` binary as an operator runs it: a process of its own on a real
//! port, driven by real clients (tungstenite, and plain sockets).
//!
//! - `GET /metrics` after known traffic, read back through the reference parser
//!   (Python's `prometheus_client`, via `tests/python/metrics_check.py`);
//! - SIGTERM: every session gets what was published before the signal, then
//!   Close 1001; health checks and new upgrades get 503 meanwhile; exit 0;
//! - a second signal ends the process at once;
//! - `GET /healthz` and the metrics' content type.
//!
//! Needs `python3` with `prometheus_client` (`tests/run` installs it); without
//! them the metrics test fails with that instruction: it is never skipped.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

#[path = "support/process.rs"]
mod process;

use process::{ServerProcess, START_WITHIN};

type Ws = tungstenite::WebSocket<TcpStream>;

/// Socket timeouts: only there so that a broken server fails a test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's default drain timeout.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack on top of the drain timeout for the process to exit.
const EXIT_MARGIN: Duration = Duration::from_secs(5);
/// How soon a second signal must end the process.
const SECOND_SIGNAL_EXIT_WITHIN: Duration = Duration::from_secs(3);
const PYTHON_WITHIN: Duration = Duration::from_secs(30);

const INSTALL_PROMETHEUS_CLIENT: &str = "install it: python3 -m pip install prometheus_client; tests/run does";

/// The RFC 6455 §1.3 example key.
const EXAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

// The server process.

/// Starts `ferrows --loops LOOPS`; returns once `GET /healthz` answers 200.
/// Its log goes to `operations-NAME.log` in the test's temporary directory.
fn start_server(name: &str, loops: usize) -> ServerProcess {
    let mut server = ServerProcess::start(&format!("operations-{name}"), &["--loops", &loops.to_string()], "info");
    let deadline = Instant::now() + START_WITHIN;
    loop {
        server.assert_running();
        if get(server.addr, "/healthz").is_ok_and(|r| r.status == 200) {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "ferrows did not answer GET /healthz with 200 on {} within {START_WITHIN:?}; its log:\n{}",
            server.addr,
            server.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// Plain HTTP over a TcpStream.

/// A whole HTTP response: the server answers one request per connection, then closes.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `request` as is and reads the answer until the server closes the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<HttpResponse> {
    let mut stream = connect(addr)?;
    stream.write_all(request)?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid(format!("no complete HTTP head in {:?}", String::from_utf8_lossy(&received))))?
        + 4;
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut response = HttpResponse { status, head, body: received[head_end..].to_vec() };
    if let Some(length) = response.header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        if response.body.len() < length {
            return Err(invalid(format!("{} body bytes of {length}", response.body.len())));
        }
        response.body.truncate(length);
    }
    Ok(response)
}

fn get(addr: SocketAddr, path: &str) -> io::Result<HttpResponse> {
    exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// `POST path` with a JSON body; fails the test unless it is answered.
fn post_json(addr: SocketAddr, path: &str, body: &str) -> HttpResponse {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, request.as_bytes()).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// A valid WebSocket upgrade request for `path`.
fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {EXAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

// WebSocket clients.

fn ws_connect(addr: SocketAddr, path: &str) -> Ws {
    let stream = connect(addr).unwrap_or_else(|e| panic!("TCP connect to {addr}: {e}"));
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}{path}"), stream).unwrap_or_else(|e| panic!("upgrade on {path}: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// The next text message (control frames skipped).
fn read_text(ws: &mut Ws) -> String {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => return text,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("expected a text message, got {other:?}"),
            Err(e) => panic!("expected a text message, got an error: {e}"),
        }
    }
}

/// A `/pubsub` client subscribed to `topic` (its ack read).
fn subscriber(addr: SocketAddr, topic: &str) -> Ws {
    let mut ws = ws_connect(addr, "/pubsub");
    ws.send(Message::Text(format!(r#"{{"op":"subscribe","topics":["{topic}"]}}"#))).expect("send a subscribe");
    let ack = read_text(&mut ws);
    assert_eq!(ack, format!(r#"{{"type":"ack","op":"subscribe","topics":["{topic}"]}}"#));
    ws
}

/// What a subscriber of `topic` receives for a publish of the JSON `data`.
fn delivery(topic: &str, data: &str) -> String {
    format!(r#"{{"type":"message","topic":"{topic}","data":{data}}}"#)
}

/// Reads until the server ends the TCP connection, answering its Close if that is still due.
/// Returns the server's Close frame, if one came during this call.
fn read_until_closed(ws: &mut Ws) -> Option<CloseFrame<'static>> {
    let mut close = None;
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => close = Some(frame.expect("a Close frame with a status code")),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected {other:?} while closing"),
            // For a client this means the server ended the TCP connection.
            Err(tungstenite::Error::ConnectionClosed) => {
                let _ = ws.get_mut().shutdown(Shutdown::Write);
                return close;
            }
            Err(e) => panic!("the closing handshake failed: {e}"),
        }
    }
}

// The metrics through prometheus_client.

/// One sample as the reference parser read it.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    samples: Vec<Sample>,
}

fn python_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/metrics_check.py")
}

/// Runs the parser script on `input`; returns its exit status, stdout and stderr.
fn run_metrics_check(input: &str) -> (ExitStatus, String, String) {
    let mut child = Command::new("python3")
        .arg(python_script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3 and prometheus_client; {INSTALL_PROMETHEUS_CLIENT}")
        });
    let mut stdin = child.stdin.take().expect("the script's stdin");
    let input = input.to_owned();
    // Written from a thread, so that neither side can block the other on a full pipe.
    let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
    let (done_tx, done_rx) = mpsc::channel();
    let pid = child.id();
    thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done_rx.recv_timeout(PYTHON_WITHIN) {
        Ok(output) => output.expect("wait for python3"),
        Err(_) => panic!("python3 {} (pid {pid}) did not finish within {PYTHON_WITHIN:?}", python_script().display()),
    };
    writer.join().expect("the writer thread").expect("write the metrics to python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, stdout, stderr)
}

/// Fails with the install instruction unless python3 can import prometheus_client.
fn require_prometheus_client() {
    let (status, _, stderr) = run_metrics_check("");
    assert_ne!(status.code(), Some(3), "prometheus_client is missing: {INSTALL_PROMETHEUS_CLIENT}\n{stderr}");
    assert!(status.success(), "python3 {} failed on empty input ({status}):\n{stderr}", python_script().display());
}

/// Parses the exposition `text` with prometheus_client; fails the test on any parse error.
fn parse_with_prometheus_client(text: &str) -> Vec<Family> {
    let (status, stdout, stderr) = run_metrics_check(text);
    assert_ne!(status.code(), Some(3), "prometheus_client is missing: {INSTALL_PROMETHEUS_CLIENT}\n{stderr}");
    assert!(
        status.success(),
        "prometheus_client could not parse GET /metrics ({status}):\n{stderr}\nthe text:\n{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the script's output is not JSON ({e}): {stdout}"));
    let families = json["families"].as_array().unwrap_or_else(|| panic!("no families in {stdout}"));
    families
        .iter()
        .map(|family| Family {
            name: family["name"].as_str().expect("a family name").to_owned(),
            kind: family["type"].as_str().expect("a family type").to_owned(),
            samples: family["samples"]
                .as_array()
                .expect("a family's samples")
                .iter()
                .map(|sample| Sample {
                    name: sample["name"].as_str().expect("a sample name").to_owned(),
                    labels: sample["labels"]
                        .as_object()
                        .expect("a sample's labels")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().expect("a label value").to_owned()))
                        .collect(),
                    value: sample["value"].as_f64().expect("a sample value"),
                })
                .collect(),
        })
        .collect()
}

/// Every sample of the parsed families.
struct Samples(Vec<Sample>);

impl Samples {
    fn of(families: &[Family]) -> Samples {
        Samples(families.iter().flat_map(|f| f.samples.iter().cloned()).collect())
    }

    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample `name{labels}`; fails if there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .matching(name)
            .filter(|s| {
                s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        match found.as_slice() {
            [one] => one.value,
            [] => panic!(
                "no sample {name}{labels:?}; the samples of {name}: {:?}",
                self.matching(name).collect::<Vec<_>>()
            ),
            many => panic!("{} samples {name}{labels:?}: {many:?}", many.len()),
        }
    }

    /// The one unlabelled sample `name`.
    fn single(&self, name: &str) -> f64 {
        self.value(name, &[])
    }

    fn sum(&self, name: &str) -> f64 {
        self.matching(name).map(|s| s.value).sum()
    }
}

/// The families a `# TYPE` line declares, with their type.
fn declared_families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap_or_default().to_owned();
            let kind = parts.next().unwrap_or_default().to_owned();
            (name, kind)
        })
        .collect()
}

// The tests.

#[test]
fn metrics_parse_with_prometheus_client_after_real_traffic() {
    require_prometheus_client();
    let server = start_server("metrics", 2);
    let addr = server.addr;

    // Three echo clients, five messages each.
    let mut echoes: Vec<Ws> = (0..3).map(|_| ws_connect(addr, "/echo")).collect();
    for (c, ws) in echoes.iter_mut().enumerate() {
        for i in 0..5 {
            let text = format!("echo {c}.{i}");
            ws.send(Message::Text(text.clone())).expect("send to /echo");
            assert_eq!(read_text(ws), text);
        }
    }
    // Two subscribers of `t`, then one publish through the HTTP API.
    let mut subscribers: Vec<Ws> = (0..2).map(|_| subscriber(addr, "t")).collect();
    let published = post_json(addr, "/publish/t", r#"{"n":1}"#);
    assert_eq!(published.status, 200, "POST /publish/t: {published:?}");
    for ws in &mut subscribers {
        assert_eq!(read_text(ws), delivery("t", r#"{"n":1}"#));
    }
    // An upgrade the handler refuses (no WebSocket service at the path), and a request that is not HTTP.
    let refused = exchange(addr, upgrade_request("/nowhere").as_bytes()).expect("an answer to the upgrade");
    assert_eq!(refused.status, 404, "{refused:?}");
    let malformed = exchange(addr, b"this is not http\r\n\r\n").expect("an answer to the malformed request");
    assert_eq!(malformed.status, 400, "{malformed:?}");
    // One echo client closes normally; the server's EOF ends its session on the server's books too.
    let mut leaving = echoes.pop().expect("three echo clients");
    leaving.close(Some(CloseFrame { code: WsCloseCode::Normal, reason: "done".into() })).expect("send Close");
    let answer = read_until_closed(&mut leaving).expect("the server answers the Close");
    assert_eq!(u16::from(answer.code), 1000);

    let response = get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let text = response.text();
    let families = parse_with_prometheus_client(&text);

    // Every family declared was parsed, with its type, and every sample line.
    for (name, kind) in declared_families(&text) {
        // The parser names a counter's family without the `_total` suffix.
        let family = families
            .iter()
            .find(|f| f.name == name || name.strip_suffix("_total") == Some(f.name.as_str()))
            .unwrap_or_else(|| panic!("family {name} was not parsed; parsed: {families:?}"));
        assert_eq!(family.kind, kind, "the type of {name}");
    }
    let sample_lines = text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
    let samples = Samples::of(&families);
    assert_eq!(samples.0.len(), sample_lines, "samples parsed vs sample lines in:\n{text}");
    for family in ["ferrows_open_connections", "ferrows_handshake_rejections", "ferrows_closes", "ferrows_api_requests"]
    {
        assert!(families.iter().any(|f| f.name == family), "family {family} is missing from:\n{text}");
    }

    // Still open: two echo clients and two subscribers.
    let open = 4.0;
    assert_eq!(samples.single("ferrows_open_connections"), open);
    let per_loop: Vec<&Sample> = samples.matching("ferrows_loop_open_connections").collect();
    assert_eq!(per_loop.len(), 2, "one gauge per loop: {per_loop:?}");
    assert_eq!(samples.sum("ferrows_loop_open_connections"), open, "the per-loop gauges add up to the total");
    assert_eq!(samples.single("ferrows_upgrades_total"), 5.0, "3 echo and 2 pub/sub sessions");
    // 5 sessions, the POST, the refused upgrade, the malformed request, GET /metrics (and health checks).
    let accepted = samples.single("ferrows_connections_accepted_total");
    assert!(accepted >= 9.0, "connections accepted: {accepted}");
    // 15 echoed messages and 2 subscribes came in; 15 echoes, 2 acks and 2 deliveries went out.
    assert_eq!(samples.single("ferrows_messages_received_total"), 17.0);
    assert_eq!(samples.single("ferrows_messages_sent_total"), 19.0);
    assert!(samples.single("ferrows_received_bytes_total") > 0.0);
    assert!(samples.single("ferrows_sent_bytes_total") > 0.0);
    assert_eq!(samples.value("ferrows_closes_total", &[("code", "1000")]), 1.0);
    assert_eq!(samples.sum("ferrows_closes_total"), 1.0, "one session ended");
    assert_eq!(samples.value("ferrows_handshake_rejections_total", &[("reason", "handler")]), 1.0);
    assert_eq!(samples.value("ferrows_handshake_rejections_total", &[("reason", "bad_request")]), 1.0);
    assert_eq!(samples.sum("ferrows_handshake_rejections_total"), 2.0, "no other rejection");
    assert_eq!(samples.single("ferrows_subscriptions"), 2.0);
    assert_eq!(samples.single("ferrows_topics"), 1.0);
    assert_eq!(samples.value("ferrows_api_requests_total", &[("call", "publish"), ("status", "200")]), 1.0);
    assert_eq!(samples.sum("ferrows_api_requests_total"), 1.0);
    assert_eq!(samples.single("ferrows_messages_dropped_total"), 0.0);
    assert_eq!(samples.single("ferrows_slow_consumers_closed_total"), 0.0);
    assert_eq!(samples.single("ferrows_draining"), 0.0);
    drop((echoes, subscribers, server));
}

#[cfg(unix)]
#[test]
fn sigterm_drains_every_session_then_exits_zero() {
    const CLIENTS: usize = 20;
    const MESSAGES: usize = 50;
    let mut server = start_server("sigterm-drain", 2);
    let addr = server.addr;
    let mut clients: Vec<Ws> = (0..CLIENTS).map(|_| subscriber(addr, "news")).collect();
    for n in 0..MESSAGES {
        let answer = post_json(addr, "/publish/news", &format!(r#"{{"n":{n}}}"#));
        assert_eq!(answer.status, 200, "publish {n}: {answer:?}");
    }

    server.terminate();
    let signalled = Instant::now();
    for (c, ws) in clients.iter_mut().enumerate() {
        for n in 0..MESSAGES {
            let text = read_text(ws);
            assert_eq!(text, delivery("news", &format!(r#"{{"n":{n}}}"#)), "client {c}, delivery {n}");
        }
        // tungstenite queues its answer to the Close and sends it on the next read: held for now.
        match ws.read() {
            Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001, "client {c}: {frame:?}"),
            other => panic!("client {c}: expected Close 1001 after the deliveries, got {other:?}"),
        }
    }

    // Every session waits for its closing handshake: the server is draining.
    let health = get(addr, "/healthz").expect("GET /healthz while draining");
    assert_eq!(health.status, 503, "GET /healthz while draining: {health:?}");
    let upgrade =
        exchange(addr, upgrade_request("/pubsub").as_bytes()).expect("an answer to an upgrade while draining");
    assert_eq!(upgrade.status, 503, "an upgrade while draining: {upgrade:?}");

    for (c, ws) in clients.iter_mut().enumerate() {
        assert!(read_until_closed(ws).is_none(), "client {c}: a second Close");
    }
    let within = (DRAIN_TIMEOUT + EXIT_MARGIN).saturating_sub(signalled.elapsed());
    let Some(status) = server.wait_exit(within) else {
        panic!(
            "ferrows did not exit within {:?} of SIGTERM; its log:\n{}",
            DRAIN_TIMEOUT + EXIT_MARGIN,
            server.log_text()
        );
    };
    assert!(status.success(), "ferrows exited with {status} after SIGTERM; its log:\n{}", server.log_text());
}

#[cfg(unix)]
#[test]
fn a_second_signal_exits_at_once() {
    let mut server = start_server("second-signal", 1);
    // A client that completes the upgrade and then never answers the server's Close.
    let mut stream = connect(server.addr).expect("TCP connect");
    stream.write_all(upgrade_request("/echo").as_bytes()).expect("send the upgrade");
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).expect("read the upgrade's answer");
        assert!(n > 0, "EOF before the end of the upgrade's answer");
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "expected 101, got:\n{head}");
    received.drain(..head_end);

    server.terminate();
    // The server's Close 1001 shows that the first signal was handled.
    while received.len() < 4 {
        let n = stream.read(&mut chunk).expect("read the server's Close");
        assert!(n > 0, "EOF instead of the server's Close");
        received.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(received[0], 0x88, "expected a Close frame, got {received:?}");
    assert_eq!(u16::from_be_bytes([received[2], received[3]]), 1001, "the Close code in {received:?}");

    server.terminate();
    let Some(status) = server.wait_exit(SECOND_SIGNAL_EXIT_WITHIN) else {
        panic!(
            "ferrows did not exit within {SECOND_SIGNAL_EXIT_WITHIN:?} of a second SIGTERM (drain timeout {DRAIN_TIMEOUT:?}); \
             its log:\n{}",
            server.log_text()
        );
    };
    assert!(!status.success(), "a second signal must end the process with a failure status, got {status}");
    drop(stream);
}

#[test]
fn healthz_answers_200_while_running() {
    let server = start_server("healthz", 1);
    let health = get(server.addr, "/healthz").expect("GET /healthz");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.text().trim(), "ok");
    // Still 200 with a session open.
    let mut ws = ws_connect(server.addr, "/echo");
    ws.send(Message::Text("hi".into())).expect("send to /echo");
    assert_eq!(read_text(&mut ws), "hi");
    let health = get(server.addr, "/healthz").expect("GET /healthz");
    assert_eq!(health.status, 200, "{health:?}");
}

#[test]
fn metrics_is_text_format_content_type() {
    let server = start_server("metrics-content-type", 1);
    let response = get(server.addr, "/metrics").expect("GET /metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("Content-Type").unwrap_or_else(|| panic!("no Content-Type in {response:?}"));
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "Content-Type: {content_type}");
    assert!(response.text().contains("# TYPE ferrows_open_connections gauge"), "{}", response.text());
}
