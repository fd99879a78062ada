//! The runtime over real sockets: what a misbehaving peer gets.
//!
//! Handshake deadlines, protocol violations (each earns its Close code, then
//! EOF), connections dropped mid-frame, and requests that are not WebSocket
//! upgrades (complete HTTP answers, never a hang). Deadlines use short
//! configured timeouts and are asserted within bounds several times larger.
//! Each test runs its own server on port 0 and stops it at the end.

#[path = "support/socket.rs"]
mod socket;

use std::time::{Duration, Instant};

use ferrows::app::Echo;
use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::proto::CloseCode;
use ferrows::runtime::ServerConfig;
use socket::*;

/// How long the handler's reports may take to arrive: generous, only against hangs.
const REPORT_WITHIN: Duration = Duration::from_secs(5);

// Handshake deadline.

fn handshake_deadline_config() -> ServerConfig {
    let mut config = quick_config();
    config.handshake_timeout = Duration::from_millis(300);
    config
}

#[test]
fn half_a_request_is_dropped_at_the_handshake_deadline() {
    let server = TestServer::start(handshake_deadline_config(), 1, |_| Echo);
    let started = Instant::now();
    let mut client = RawClient::connect(server.addr);
    client.send_raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webso");
    client.expect_eof_within(Duration::from_secs(3));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "dropped {waited:?} after connecting, before the deadline");
    server.stop();
}

#[test]
fn silent_connection_is_dropped_at_the_handshake_deadline() {
    let server = TestServer::start(handshake_deadline_config(), 1, |_| Echo);
    let mut client = RawClient::connect(server.addr);
    client.expect_eof_within(Duration::from_secs(3));
    server.stop();
}

// Violations: the Close with the code each earns, then EOF.

/// Sends `bytes` on an open session and expects Close `code`, EOF, and `on_close(code)`.
fn assert_violation_closes_with(config: ServerConfig, bytes: &[u8], code: u16) {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(config, 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    client.send_raw(bytes);
    let close = client.expect_close();
    assert_eq!(close.close_code(), Some(code), "reason: {:?}", close.close_reason());
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode(code));
    server.stop();
}

fn small_message_config() -> ServerConfig {
    let mut config = quick_config();
    config.protocol.max_message_size = 1000;
    config
}

#[test]
fn oversized_message_gets_close_1009() {
    assert_violation_closes_with(small_message_config(), &client_frame(true, OpCode::Binary, &pattern(2000)), 1009);
}

#[test]
fn oversized_fragmented_message_gets_close_1009() {
    let mut bytes = client_frame(false, OpCode::Text, &[b'a'; 600]);
    bytes.extend(client_frame(true, OpCode::Continuation, &[b'b'; 600]));
    assert_violation_closes_with(small_message_config(), &bytes, 1009);
}

#[test]
fn invalid_utf8_text_gets_close_1007() {
    let bytes = client_frame(true, OpCode::Text, b"valid, then \xff\xfe");
    assert_violation_closes_with(quick_config(), &bytes, 1007);
}

#[test]
fn text_ending_inside_a_character_gets_close_1007() {
    // "é" is C3 A9: the message ends after its first byte.
    let bytes = client_frame(true, OpCode::Text, b"caf\xc3");
    assert_violation_closes_with(quick_config(), &bytes, 1007);
}

#[test]
fn unmasked_client_frame_gets_close_1002() {
    let mut bytes = Vec::new();
    encode_frame(true, 0, OpCode::Text, b"not masked", None, &mut bytes);
    assert_violation_closes_with(quick_config(), &bytes, 1002);
}

#[test]
fn messages_before_a_violation_are_answered_before_its_close() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    let mut bytes = client_frame(true, OpCode::Text, b"first");
    bytes.extend(client_frame(true, OpCode::Ping, b"ping before"));
    bytes.extend(client_frame(true, OpCode::Text, b"bad \xc0\x80 text"));
    bytes.extend(client_frame(true, OpCode::Text, b"never read"));
    client.send_raw(&bytes);
    let mut answers = vec![client.next_frame(), client.next_frame()];
    answers.sort_by_key(|f| f.opcode.bits());
    assert_eq!(
        answers,
        [
            Frame { fin: true, opcode: OpCode::Text, payload: b"first".to_vec() },
            Frame { fin: true, opcode: OpCode::Pong, payload: b"ping before".to_vec() },
        ]
    );
    assert_eq!(client.expect_close().close_code(), Some(1007));
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::INVALID_PAYLOAD);
    server.stop();
}

/// One frame as a client sends it, with RSV bits.
fn client_frame_rsv(rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(true, rsv, opcode, payload, Some([1, 2, 3, 4]), &mut out);
    out
}

#[test]
fn each_protocol_violation_gets_the_close_code_it_earns() {
    let mut config = quick_config();
    config.protocol.max_frame_size = 2000;
    config.protocol.max_message_size = 3000;
    config.protocol.max_fragments = 4;
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(config, 1, factory);
    let fragments = |sizes: &[usize]| -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Binary } else { OpCode::Continuation };
            bytes.extend(client_frame(i + 1 == sizes.len(), opcode, &pattern(size)));
        }
        bytes
    };
    let mut text_then_text = client_frame(false, OpCode::Text, b"first half");
    text_then_text.extend(client_frame(true, OpCode::Text, b"not a continuation"));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved opcode 0x3", vec![0x83, 0x80, 1, 2, 3, 4], 1002),
        ("reserved control opcode 0xB", vec![0x8b, 0x80, 1, 2, 3, 4], 1002),
        ("RSV1 with no extension", client_frame_rsv(0b100, OpCode::Text, b"x"), 1002),
        ("RSV3 with no extension", client_frame_rsv(0b001, OpCode::Binary, b"x"), 1002),
        ("Ping over 125 bytes", client_frame(true, OpCode::Ping, &[0; 126]), 1002),
        ("fragmented Ping", client_frame(false, OpCode::Ping, b"x"), 1002),
        ("continuation with no message", client_frame(true, OpCode::Continuation, b"x"), 1002),
        ("new message inside a fragmented one", text_then_text, 1002),
        ("one-byte Close", client_frame(true, OpCode::Close, &[0x03]), 1002),
        ("Close with 1005 on the wire", client_frame(true, OpCode::Close, &1005u16.to_be_bytes()), 1002),
        ("Close with code 999", client_frame(true, OpCode::Close, &999u16.to_be_bytes()), 1002),
        ("Close reason not UTF-8", client_frame(true, OpCode::Close, b"\x03\xe8\xff"), 1007),
        ("frame over max_frame_size", client_frame(true, OpCode::Binary, &pattern(2001)), 1009),
        ("more fragments than max_fragments", fragments(&[1, 1, 1, 1, 1]), 1009),
        ("fragments over max_message_size", fragments(&[1600, 1600]), 1009),
    ];
    for (name, bytes, code) in cases {
        let mut client = RawClient::open(server.addr, "/");
        client.send_raw(&bytes);
        let close = client.expect_close();
        assert_eq!(close.close_code(), Some(code), "{name}: reason {:?}", close.close_reason());
        client.expect_eof();
        assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode(code), "{name}: the code on_close gets");
    }
    // Within the limits, the same shapes pass.
    let mut client = RawClient::open(server.addr, "/");
    client.send_raw(&fragments(&[1000, 1000, 999, 1]));
    let echo = client.next_frame();
    assert_eq!((echo.opcode, echo.payload.len()), (OpCode::Binary, 3000));
    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    server.stop();
}

// A connection dropped mid-frame.

#[test]
fn client_dropped_mid_frame_frees_its_session_with_1006() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    assert!(matches!(next_report(&reports, REPORT_WITHIN), Report::Opened { open_sessions: 1, .. }));
    let frame = client_frame(true, OpCode::Binary, &pattern(100));
    client.send_raw(&frame[..frame.len() / 2]);
    drop(client);
    assert_eq!(next_close(&reports, REPORT_WITHIN), (CloseCode::ABNORMAL, String::new()));
    // The next session is the only one its loop has open.
    let mut next = RawClient::open(server.addr, "/");
    match next_report(&reports, REPORT_WITHIN) {
        Report::Opened { open_sessions, .. } => assert_eq!(open_sessions, 1, "the dropped session is still open"),
        other => panic!("expected the second session to open, got {other:?}"),
    }
    next.send_close(1000, "");
    assert_eq!(next.expect_close().close_code(), Some(1000));
    next.expect_eof();
    server.stop();
}

#[test]
fn connection_dropped_during_the_handshake_never_reaches_the_handler() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut dropped = RawClient::connect(server.addr);
    dropped.send_raw(&upgrade_request("/", &[]).as_bytes()[..40]);
    drop(dropped);
    let mut client = RawClient::open(server.addr, "/");
    assert!(
        matches!(next_report(&reports, REPORT_WITHIN), Report::Opened { open_sessions: 1, .. }),
        "the first report is the second connection's open"
    );
    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::NORMAL);
    assert!(reports.try_recv().is_err(), "one open, one close: {:?}", reports.try_recv());
    server.stop();
}

// Requests that are not WebSocket upgrades.

#[test]
fn garbage_instead_of_http_gets_400_and_the_connection_closes() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut seed: u32 = 0x9e37_79b9;
    let mut random: Vec<u8> = (0..300)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        })
        .collect();
    random.extend_from_slice(b"\r\n\r\n");
    let tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec();
    for request in [b"hello\r\n\r\n".to_vec(), random, tls_hello, b"GET\r\n\r\n".to_vec()] {
        let answer = http_answer(&server, &request);
        assert_eq!(status(&answer), 400, "for {request:?}:\n{answer}");
        assert_eq!(header(&answer, "Connection").as_deref(), Some("close"), "in:\n{answer}");
    }
    server.stop();
}

#[test]
fn plain_get_without_upgrade_headers_is_refused_with_connection_close() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let answer = http_answer(&server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(matches!(status(&answer), 400 | 426), "got:\n{answer}");
    assert_eq!(header(&answer, "Connection").as_deref(), Some("close"), "in:\n{answer}");
    server.stop();
}

#[test]
fn websocket_version_8_gets_426_naming_version_13() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let request = upgrade_request("/", &[]).replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let answer = http_answer(&server, request.as_bytes());
    assert_eq!(status(&answer), 426, "got:\n{answer}");
    assert_eq!(header(&answer, "Sec-WebSocket-Version").as_deref(), Some("13"), "in:\n{answer}");
    assert_eq!(header(&answer, "Connection").as_deref(), Some("close"), "in:\n{answer}");
    server.stop();
}

#[test]
fn post_gets_405_allowing_get() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let request = upgrade_request("/", &[]).replacen("GET", "POST", 1);
    let answer = http_answer(&server, request.as_bytes());
    assert_eq!(status(&answer), 405, "got:\n{answer}");
    assert_eq!(header(&answer, "Allow").as_deref(), Some("GET"), "in:\n{answer}");
    server.stop();
}

#[test]
fn oversized_request_head_gets_431() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let big = format!("X-Filler: {}", "f".repeat(10_000));
    let answer = http_answer(&server, upgrade_request("/", &[&big]).as_bytes());
    assert_eq!(status(&answer), 431, "got:\n{answer}");
    server.stop();
}

// permessage-deflate: a decompression bomb over a real socket.

/// A few dozen KiB that inflate to 64 MiB get Close 1009 from a server whose
/// message limit is 1 MiB: inflation stops at the limit, whatever the input.
#[cfg(feature = "deflate")]
#[test]
fn decompression_bomb_gets_close_1009() {
    use flate2::{Compress, Compression, FlushCompress};

    let mut config = quick_config();
    config.protocol.max_message_size = 1 << 20;
    let server = TestServer::start(config, 1, |_| Echo);
    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request("/", &["Sec-WebSocket-Extensions: permessage-deflate"]).as_bytes());
    let head = client.read_http_head();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(header(&head, "Sec-WebSocket-Extensions").is_some_and(|v| v.starts_with("permessage-deflate")), "{head}");

    let zeros = vec![0u8; 64 << 20];
    let mut deflate = Compress::new(Compression::default(), false);
    let mut bomb = Vec::with_capacity(128 << 10);
    deflate.compress_vec(&zeros, &mut bomb, FlushCompress::Sync).unwrap();
    assert!(deflate.total_in() as usize == zeros.len() && bomb.len() < 128 << 10, "{} bytes", bomb.len());
    bomb.truncate(bomb.len() - 4);
    let mut frame = Vec::new();
    encode_frame(true, ferrows::proto::frame::RSV1, OpCode::Binary, &bomb, Some([1, 2, 3, 4]), &mut frame);
    // The server may close before it has read everything: a failed write is fine.
    let _ = std::io::Write::write_all(&mut client.stream, &frame);
    assert_eq!(client.expect_close().close_code(), Some(1009));
    client.expect_eof();
    server.stop();
}

// Plain HTTP requests handed to the handler.

struct Plain;

impl ferrows::runtime::Handler for Plain {
    type State = ();
    fn upgrade(&mut self, _r: &ferrows::runtime::Upgrade<'_>) -> ferrows::runtime::Decision<()> {
        ferrows::runtime::Decision::accept(())
    }
    fn on_message(
        &mut self,
        _c: &mut ferrows::runtime::Context<'_, ()>,
        _s: ferrows::runtime::SessionId,
        _m: ferrows::runtime::Message<'_>,
    ) {
    }
    fn on_http(
        &mut self,
        _ctx: &mut ferrows::runtime::Context<'_, ()>,
        request: &ferrows::runtime::HttpRequest<'_>,
    ) -> ferrows::runtime::HttpResponse {
        let body = format!("{} {} {}", request.method(), request.path(), String::from_utf8_lossy(request.body()));
        ferrows::runtime::HttpResponse::new(ferrows::proto::handshake::StatusCode::OK, "text/plain", body.as_bytes())
    }
}

#[test]
fn plain_http_requests_reach_the_handler_with_their_body() {
    let mut config = quick_config();
    config.max_http_body = 100;
    let server = TestServer::start(config, 1, |_| Plain);
    let answer = http_answer(&server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Connection: close\r\n") && answer.ends_with("GET /health "), "{answer}");
    // A body sent in pieces.
    let mut client = RawClient::connect(server.addr);
    client.send_raw(b"POST /publish/x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello");
    std::thread::sleep(Duration::from_millis(50));
    client.send_raw(b" world");
    let answer = String::from_utf8_lossy(&client.read_to_end()).into_owned();
    assert!(answer.ends_with("POST /publish/x hello world"), "{answer}");
    let answer = http_answer(&server, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    assert_eq!(status(&answer), 413, "{answer}");
    let answer = http_answer(&server, b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(status(&answer), 411, "{answer}");
    let answer = http_answer(&server, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n");
    assert_eq!(status(&answer), 400, "{answer}");
    server.stop();
}
