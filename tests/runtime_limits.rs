//! Admission over real sockets: connection limits (503), the origin policy
//! (403), subprotocol choice, the idle timeout, draining, and the counters
//! that record each.

#[path = "support/socket.rs"]
mod socket;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ferrows::app::{App, AppConfig};
use ferrows::proto::frame::OpCode;
use ferrows::runtime::{Metrics, OriginPolicy, ServerConfig};
use socket::{header, quick_config, status, upgrade_request, RawClient, ReportingEcho, TestServer, IO_TIMEOUT};

fn echo_server(config: ServerConfig, loops: usize) -> TestServer {
    let (factory, _reports) = ReportingEcho::factory();
    TestServer::start(config, loops, factory)
}

/// The answer to an upgrade of `path` with `extra` header lines: the response head.
fn upgrade(addr: SocketAddr, extra: &[&str]) -> (RawClient, String) {
    let mut client = RawClient::connect(addr);
    client.send_raw(upgrade_request("/", extra).as_bytes());
    let head = client.read_http_head();
    (client, head)
}

/// The value of `name{labels}` in the server's metrics.
fn metric(metrics: &Metrics, sample: &str) -> u64 {
    let mut text = String::new();
    metrics.render(&mut text);
    text.lines()
        .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .parse()
        .expect("an integer value")
}

/// Polls `cond` until it holds or a deadline passes.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {IO_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn connections_over_max_connections_get_503_and_are_counted() {
    let mut config = quick_config();
    config.max_connections = 2;
    let server = echo_server(config, 2);
    let metrics = server.handle().metrics();
    let mut a = RawClient::open(server.addr, "/");
    let b = RawClient::open(server.addr, "/");
    for _ in 0..3 {
        let (mut refused, head) = upgrade(server.addr, &[]);
        assert_eq!(status(&head), 503, "{head}");
        assert_eq!(refused.read_to_end(), b"too many connections\n");
    }
    assert_eq!(metric(&metrics, "ferrows_handshake_rejections_total{reason=\"max_connections\"}"), 3);
    assert_eq!(metric(&metrics, "ferrows_open_connections"), 2);
    // A freed slot is usable again.
    a.send_close(1000, "");
    a.expect_close();
    a.expect_eof();
    eventually("the closed connection is freed", || {
        let (mut c, head) = upgrade(server.addr, &[]);
        let ok = status(&head) == 101;
        if ok {
            c.send_close(1000, "");
            c.expect_close();
        }
        ok
    });
    drop(b);
    server.stop();
}

#[test]
fn max_connections_per_ip_counts_each_address_apart() {
    let mut config = quick_config();
    config.max_connections_per_ip = Some(1);
    let server = echo_server(config, 1);
    let _first = RawClient::open(server.addr, "/");
    let (_, head) = upgrade(server.addr, &[]);
    assert_eq!(status(&head), 503, "{head}");
    // Another loopback address is another client (Linux routes all of 127/8 to lo).
    if cfg!(target_os = "linux") {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        std::io::Write::write_all(&mut stream, upgrade_request("/", &[]).as_bytes()).unwrap();
        let mut answer = [0u8; 12];
        std::io::Read::read_exact(&mut stream, &mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 101");
    }
    let metrics = server.handle().metrics();
    assert_eq!(metric(&metrics, "ferrows_handshake_rejections_total{reason=\"max_connections_per_ip\"}"), 1);
    server.stop();
}

#[test]
fn origins_outside_the_policy_get_403() {
    let mut config = quick_config();
    config.allowed_origins = OriginPolicy::list(["https://chat.example.com", "*.example.org"]).unwrap();
    let server = echo_server(config, 1);
    for (origin, expected) in [
        (Some("https://chat.example.com"), 101),
        (Some("http://a.b.example.org"), 101),
        (None, 101),
        (Some("https://evil.test"), 403),
        (Some("https://chat.example.com.evil.test"), 403),
        (Some("null"), 403),
    ] {
        let line = origin.map(|o| format!("Origin: {o}"));
        let extra: Vec<&str> = line.iter().map(String::as_str).collect();
        let (_, head) = upgrade(server.addr, &extra);
        assert_eq!(status(&head), expected, "origin {origin:?}:\n{head}");
    }
    let metrics = server.handle().metrics();
    assert_eq!(metric(&metrics, "ferrows_handshake_rejections_total{reason=\"origin\"}"), 3);
    server.stop();
}

#[test]
fn the_servers_first_subprotocol_the_client_offered_is_chosen() {
    let mut config = quick_config();
    config.subprotocols = vec!["chat.v2".into(), "chat.v1".into()];
    let server = echo_server(config, 1);
    let (_, head) = upgrade(server.addr, &["Sec-WebSocket-Protocol: chat.v1, chat.v2"]);
    assert_eq!(header(&head, "Sec-WebSocket-Protocol").as_deref(), Some("chat.v2"), "{head}");
    let (_, head) = upgrade(server.addr, &["Sec-WebSocket-Protocol: other"]);
    assert_eq!(status(&head), 101);
    assert_eq!(header(&head, "Sec-WebSocket-Protocol"), None, "{head}");
    server.stop();
}

#[test]
fn a_silent_session_is_closed_after_the_idle_timeout() {
    let mut config = quick_config();
    config.protocol.idle_timeout = Some(Duration::from_millis(300));
    let server = echo_server(config, 1);
    let mut client = RawClient::open(server.addr, "/");
    client.send_frame(true, OpCode::Text, b"still here");
    assert_eq!(client.next_frame().payload, b"still here");
    let started = Instant::now();
    let close = client.expect_close();
    assert_eq!(close.close_code(), Some(1001));
    assert_eq!(close.close_reason(), "idle timeout");
    assert!(started.elapsed() >= Duration::from_millis(250), "closed early: {:?}", started.elapsed());
    server.stop();
}

#[test]
fn draining_refuses_upgrades_answers_health_503_and_closes_sessions_with_1001() {
    let mut config = quick_config();
    config.drain_timeout = Duration::from_secs(5);
    let server = TestServer::start(config, 2, |_| App::new(AppConfig::default()));
    let health = |server: &TestServer| {
        let mut c = RawClient::connect(server.addr);
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        status(&String::from_utf8_lossy(&c.read_to_end()))
    };
    assert_eq!(health(&server), 200);
    let mut sessions: Vec<RawClient> = (0..4).map(|_| RawClient::open(server.addr, "/echo")).collect();
    for s in &mut sessions {
        s.send_frame(true, OpCode::Text, b"before");
        assert_eq!(s.next_frame().payload, b"before");
    }
    server.shutdown();
    for s in &mut sessions {
        let close = s.expect_close();
        assert_eq!(close.close_code(), Some(1001), "{close:?}");
    }
    // The sessions have not answered their Close yet: the server is draining.
    assert_eq!(health(&server), 503);
    let mut late = RawClient::connect(server.addr);
    late.send_raw(upgrade_request("/echo", &[]).as_bytes());
    assert_eq!(status(&late.read_http_head()), 503);
    assert!(server.handle().metrics().draining());
    for s in &mut sessions {
        s.send_close(1001, "");
        s.expect_eof();
    }
    server.stop_within(Duration::from_secs(3));
}
