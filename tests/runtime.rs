//! The runtime over real sockets on 127.0.0.1.
//!
//! Echo with a real client library (tungstenite); frames written by hand for
//! what no library sends (fragments cut inside a character, violations, half
//! requests, connections dropped mid-frame); every close path with the code
//! the handler is told; deadlines with short configured timeouts, asserted
//! within bounds several times larger; a thousand concurrent clients over two
//! loops; backpressure; sends across sessions; and graceful shutdown. Each
//! test runs its own server on port 0 and stops it at the end.

#[path = "support/socket.rs"]
mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ferrows::app::Echo;
use ferrows::proto::frame::OpCode;
use ferrows::proto::handshake::StatusCode;
use ferrows::proto::{CloseCode, Keepalive};
use ferrows::runtime::{Context, Decision, Handler, Message, SendError, ServerConfig, SessionId, Upgrade};
use socket::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tungstenite::protocol::CloseFrame as WsCloseFrame;
use tungstenite::Message as WsMessage;

type WsClient = tungstenite::WebSocket<TcpStream>;

/// How long the handler's reports may take to arrive: generous, only against hangs.
const REPORT_WITHIN: Duration = Duration::from_secs(5);

/// Connects with tungstenite and completes the handshake for `path`.
fn ws_connect(server: &TestServer, path: &str) -> WsClient {
    ws_connect_with(server, server.url(path).into_client_request().expect("a valid request")).0
}

fn ws_connect_with(
    server: &TestServer,
    request: tungstenite::handshake::client::Request,
) -> (WsClient, tungstenite::handshake::client::Response) {
    let stream = TcpStream::connect(server.addr).expect("TCP connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set read timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set write timeout");
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    let (ws, response) = tungstenite::client(request, stream).expect("the WebSocket handshake succeeds");
    assert_eq!(response.status(), 101);
    (ws, response)
}

fn ws_read(ws: &mut WsClient) -> WsMessage {
    ws.read().expect("a message from the server")
}

/// Closes with `code` and reads until the server ends the TCP connection;
/// returns the server's Close.
fn ws_close(ws: &mut WsClient, code: u16, reason: &str) -> Option<WsCloseFrame<'static>> {
    let frame = WsCloseFrame { code: WsCloseCode::from(code), reason: reason.to_owned().into() };
    ws.close(Some(frame)).expect("send Close");
    let mut answer = None;
    loop {
        match ws.read() {
            Ok(WsMessage::Close(frame)) => answer = frame,
            Ok(other) => panic!("unexpected {other:?} while closing"),
            // For a client this means the server ended the TCP connection.
            Err(tungstenite::Error::ConnectionClosed) => {
                let _ = ws.get_mut().shutdown(Shutdown::Write);
                return answer;
            }
            Err(e) => panic!("closing handshake failed: {e}"),
        }
    }
}

/// The index of byte `offset` inside the first occurrence of `ch` in `text`.
fn inside_char(text: &str, ch: char, offset: usize) -> usize {
    assert!(offset > 0 && offset < ch.len_utf8(), "the cut must fall inside the character");
    text.find(ch).expect("the character is in the text") + offset
}

// Echo with a real client library.

#[test]
fn echo_returns_text_and_binary_messages_unchanged_including_1_mib_and_multibyte_utf8() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut ws = ws_connect(&server, "/");
    let messages = [
        WsMessage::Text("hello".into()),
        WsMessage::Text(String::new()),
        WsMessage::Text("naïve café — 日本語 ✓ 🦀🦀".into()),
        WsMessage::Text("ü".repeat(40_000)),
        WsMessage::Binary(vec![0, 1, 0xfe, 0xff]),
        WsMessage::Binary(Vec::new()),
        WsMessage::Binary(pattern(1 << 20)),
    ];
    for message in messages {
        ws.send(message.clone()).expect("send");
        let echo = ws_read(&mut ws);
        assert!(echo == message, "echo differs from what was sent ({} bytes sent)", message.len());
    }
    let answer = ws_close(&mut ws, 1000, "done");
    assert_eq!(answer.map(|f| f.code), Some(WsCloseCode::Normal));
    server.stop();
}

// Fragmented messages written by hand.

#[test]
fn fragmented_text_cut_inside_characters_with_pings_between_fragments_comes_back_whole() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut client = RawClient::open(server.addr, "/");
    let text = "naïve café — 日本語 ✓ 🦀 end";
    let bytes = text.as_bytes();
    let cut1 = inside_char(text, '日', 1);
    let cut2 = inside_char(text, '🦀', 2);

    // The first fragment ends inside '日'; a Ping between fragments is
    // answered while the message is still incomplete.
    client.send_frame(false, OpCode::Text, &bytes[..cut1]);
    client.send_frame(true, OpCode::Ping, b"between fragments");
    let pong = client.next_frame();
    assert_eq!(pong, Frame { fin: true, opcode: OpCode::Pong, payload: b"between fragments".to_vec() });

    // The middle fragment ends inside '🦀' and is written in two pieces.
    let middle = client_frame(false, OpCode::Continuation, &bytes[cut1..cut2]);
    let (head, tail) = middle.split_at(middle.len() / 2);
    client.send_raw(head);
    thread::sleep(Duration::from_millis(20));
    client.send_raw(tail);

    // A second Ping and the last fragment in one write.
    let mut last = client_frame(true, OpCode::Ping, b"\x00second\xff");
    last.extend(client_frame(true, OpCode::Continuation, &bytes[cut2..]));
    client.send_raw(&last);

    let mut frames = vec![client.next_frame(), client.next_frame()];
    frames.sort_by_key(|f| f.opcode.bits());
    assert_eq!(
        frames,
        [
            Frame { fin: true, opcode: OpCode::Text, payload: bytes.to_vec() },
            Frame { fin: true, opcode: OpCode::Pong, payload: b"\x00second\xff".to_vec() },
        ]
    );

    // Binary in many fragments, one of them empty.
    let data = pattern(3000);
    client.send_frame(false, OpCode::Binary, &data[..1000]);
    client.send_frame(false, OpCode::Continuation, &[]);
    client.send_frame(false, OpCode::Continuation, &data[1000..2999]);
    client.send_frame(true, OpCode::Continuation, &data[2999..]);
    assert_eq!(client.next_frame(), Frame { fin: true, opcode: OpCode::Binary, payload: data });

    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    server.stop();
}

// Ping and Pong.

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut ws = ws_connect(&server, "/");
    let full: Vec<u8> = (0..125).collect();
    for payload in [b"are you there?".to_vec(), Vec::new(), full] {
        ws.send(WsMessage::Ping(payload.clone())).expect("send Ping");
        match ws_read(&mut ws) {
            WsMessage::Pong(answer) => assert_eq!(answer, payload),
            other => panic!("expected a Pong, got {other:?}"),
        }
    }
    ws_close(&mut ws, 1000, "");
    server.stop();
}

#[test]
fn unsolicited_pong_gets_no_answer() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut client = RawClient::open(server.addr, "/");
    client.send_frame(true, OpCode::Pong, b"heartbeat");
    client.send_frame(true, OpCode::Text, b"after the pong");
    assert_eq!(client.next_frame(), Frame { fin: true, opcode: OpCode::Text, payload: b"after the pong".to_vec() });
    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    server.stop();
}

// Every close path, and what on_close is told.

#[test]
fn client_close_with_code_is_echoed_then_tcp_ends_and_on_close_gets_code_and_reason() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    client.send_close(3001, "done here");
    let close = client.expect_close();
    assert_eq!(close.close_code(), Some(3001), "RFC 6455 §5.5.1: the Close echoes the code");
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN), (CloseCode(3001), "done here".to_owned()));
    server.stop();
}

#[test]
fn client_close_with_a_library_completes_the_handshake_and_on_close_gets_1000() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut ws = ws_connect(&server, "/");
    ws.send(WsMessage::Text("before closing".into())).expect("send");
    assert_eq!(ws_read(&mut ws), WsMessage::Text("before closing".into()));
    let answer = ws_close(&mut ws, 1000, "finished");
    assert_eq!(answer.map(|f| f.code), Some(WsCloseCode::Normal));
    assert_eq!(next_close(&reports, REPORT_WITHIN), (CloseCode::NORMAL, "finished".to_owned()));
    server.stop();
}

#[test]
fn client_close_without_payload_gets_an_empty_close_and_on_close_gets_1005() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    client.send_frame(true, OpCode::Close, &[]);
    let close = client.expect_close();
    assert_eq!(close.payload, b"", "RFC 6455 §5.5.1: an empty Close is answered with an empty Close");
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN), (CloseCode::NO_STATUS, String::new()));
    server.stop();
}

#[test]
fn message_sent_right_before_the_clients_close_is_answered_before_the_close_echo() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    // One write: the server reads both in one go (the Autobahn 7.1.1 shape).
    let mut bytes = client_frame(true, OpCode::Text, b"last words");
    bytes.extend(client_frame(true, OpCode::Close, &1000u16.to_be_bytes()));
    client.send_raw(&bytes);
    let first = client.next_frame();
    assert_eq!(
        first,
        Frame { fin: true, opcode: OpCode::Text, payload: b"last words".to_vec() },
        "the echo of the message sent before the Close, then the Close"
    );
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::NORMAL);
    server.stop();
}

#[test]
fn server_close_from_the_handler_reaches_the_client_and_on_close_gets_its_code() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    // A message right behind the one that closes gets no echo: nothing follows a Close.
    let mut bytes = client_frame(true, OpCode::Text, CLOSE_ME.as_bytes());
    bytes.extend(client_frame(true, OpCode::Text, b"too late"));
    client.send_raw(&bytes);
    let close = client.expect_close();
    assert_eq!(close.close_code(), Some(SERVER_CLOSE_CODE.0));
    assert_eq!(close.close_reason(), SERVER_CLOSE_REASON);
    client.send_close(SERVER_CLOSE_CODE.0, "");
    client.expect_eof();
    let (code, _) = next_close(&reports, REPORT_WITHIN);
    assert_eq!(code, SERVER_CLOSE_CODE);
    server.stop();
}

#[test]
fn server_close_never_answered_ends_at_the_close_timeout_with_1006() {
    let mut config = quick_config();
    config.protocol.close_timeout = Some(Duration::from_millis(300));
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(config, 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    client.send_frame(true, OpCode::Text, CLOSE_ME.as_bytes());
    assert_eq!(client.expect_close().close_code(), Some(SERVER_CLOSE_CODE.0));
    // No answer: the server gives up after its close timeout.
    client.expect_eof_within(Duration::from_secs(3));
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::ABNORMAL);
    server.stop();
}

/// Closes every session as soon as it opens.
struct CloseOnOpen;

impl Handler for CloseOnOpen {
    type State = ();

    fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
        Decision::accept(())
    }

    fn on_open(&mut self, ctx: &mut Context<'_, ()>, session: SessionId) {
        ctx.close(session, CloseCode(4001), "not now").expect("the session just opened");
    }

    fn on_message(&mut self, _ctx: &mut Context<'_, ()>, _session: SessionId, _message: Message<'_>) {}
}

#[test]
fn close_from_on_open_follows_the_101() {
    let server = TestServer::start(quick_config(), 1, |_| CloseOnOpen);
    let mut client = RawClient::open(server.addr, "/");
    let close = client.expect_close();
    assert_eq!((close.close_code(), close.close_reason().as_str()), (Some(4001), "not now"));
    client.send_close(4001, "");
    client.expect_eof();
    server.stop();
}

// Many concurrent clients over two loops.

#[test]
fn thousand_concurrent_clients_over_two_loops_all_get_their_echo() {
    const THREADS: usize = 10;
    const PER_THREAD: usize = 100;
    const CLIENTS: usize = THREADS * PER_THREAD;
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 2, factory);

    // Phase 1: open every connection and keep it open.
    let mut groups: Vec<Vec<WsClient>> = thread::scope(|s| {
        let opening: Vec<_> =
            (0..THREADS).map(|_| s.spawn(|| (0..PER_THREAD).map(|_| ws_connect(&server, "/")).collect())).collect();
        opening.into_iter().map(|t| t.join().expect("a client thread")).collect()
    });
    let mut opened = BTreeSet::new();
    let mut per_loop = BTreeMap::<usize, usize>::new();
    for _ in 0..CLIENTS {
        match next_report(&reports, REPORT_WITHIN) {
            Report::Opened { session, loop_index, .. } => {
                assert!(opened.insert((loop_index, session)), "session {session} of loop {loop_index} opened twice");
                *per_loop.entry(loop_index).or_default() += 1;
            }
            other => panic!("a session closed while all were open: {other:?}"),
        }
    }
    // Linux's SO_REUSEPORT spreads connections over the loops' listeners by
    // hash; elsewhere the spread is up to which loop accepts first.
    if cfg!(target_os = "linux") {
        assert_eq!(per_loop.keys().copied().collect::<Vec<_>>(), [0, 1], "sessions on both loops: {per_loop:?}");
    }

    // Phase 2: every client sends one message and reads its own echo.
    thread::scope(|s| {
        for (t, group) in groups.iter_mut().enumerate() {
            s.spawn(move || {
                for (i, ws) in group.iter_mut().enumerate() {
                    ws.send(WsMessage::Text(format!("client {t}-{i}"))).expect("send");
                }
                for (i, ws) in group.iter_mut().enumerate() {
                    assert_eq!(ws_read(ws), WsMessage::Text(format!("client {t}-{i}")));
                }
            });
        }
    });

    // Phase 3: all close.
    thread::scope(|s| {
        for group in &mut groups {
            s.spawn(move || {
                for ws in group.iter_mut() {
                    let frame = WsCloseFrame { code: WsCloseCode::Normal, reason: "".into() };
                    ws.close(Some(frame)).expect("send Close");
                }
                for ws in group.iter_mut() {
                    loop {
                        match ws.read() {
                            Ok(WsMessage::Close(_)) => {}
                            Ok(other) => panic!("unexpected {other:?} while closing"),
                            Err(tungstenite::Error::ConnectionClosed) => {
                                let _ = ws.get_mut().shutdown(Shutdown::Write);
                                break;
                            }
                            Err(e) => panic!("closing handshake failed: {e}"),
                        }
                    }
                }
            });
        }
    });
    let mut closed = BTreeSet::new();
    for _ in 0..CLIENTS {
        match next_report(&reports, REPORT_WITHIN) {
            Report::Closed { session, loop_index, code, .. } => {
                assert_eq!(code, CloseCode::NORMAL);
                assert!(closed.insert((loop_index, session)), "session {session} of loop {loop_index} closed twice");
            }
            other => panic!("unexpected report while closing: {other:?}"),
        }
    }
    assert_eq!(closed, opened, "every opened session was closed once");
    drop(groups);
    server.stop();
}

// Keepalive.

fn keepalive_config(idle: Duration, timeout: Duration) -> ServerConfig {
    let mut config = quick_config();
    config.protocol.keepalive = Some(Keepalive { idle, timeout });
    config
}

#[test]
fn idle_session_gets_a_keepalive_ping() {
    let config = keepalive_config(Duration::from_millis(200), Duration::from_secs(5));
    let server = TestServer::start(config, 1, |_| Echo);
    let mut client = RawClient::open(server.addr, "/");
    let opened = Instant::now();
    let ping = client.next_frame();
    let waited = opened.elapsed();
    assert_eq!(ping.opcode, OpCode::Ping, "expected a keepalive Ping, got {ping:?}");
    assert!(waited < Duration::from_secs(2), "the Ping came {waited:?} after the handshake (idle is 200 ms)");
    assert!(waited >= Duration::from_millis(100), "the Ping came {waited:?} after the handshake, before idle");
    client.send_frame(true, OpCode::Pong, &ping.payload);
    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    server.stop();
}

#[test]
fn answered_keepalive_pings_keep_the_session_open() {
    let config = keepalive_config(Duration::from_millis(200), Duration::from_millis(200));
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(config, 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    // Each Ping answered: several idle-plus-timeout periods pass and the session lives on.
    for _ in 0..4 {
        let ping = client.next_frame();
        assert_eq!(ping.opcode, OpCode::Ping, "expected a keepalive Ping, got {ping:?}");
        client.send_frame(true, OpCode::Pong, &ping.payload);
    }
    client.send_frame(true, OpCode::Text, b"still here");
    loop {
        let frame = client.next_frame();
        match frame.opcode {
            OpCode::Ping => client.send_frame(true, OpCode::Pong, &frame.payload),
            OpCode::Text => {
                assert_eq!(frame.payload, b"still here");
                break;
            }
            _ => panic!("expected the echo, got {frame:?}"),
        }
    }
    assert!(matches!(next_report(&reports, REPORT_WITHIN), Report::Opened { .. }));
    assert!(reports.try_recv().is_err(), "the session must not have closed");
    client.send_close(1000, "");
    while client.next_frame().opcode != OpCode::Close {}
    client.expect_eof();
    server.stop();
}

#[test]
fn answered_keepalive_rounds_do_not_pile_up_timers() {
    // Each round moves a session's deadline earlier (the Pong brings the
    // next Ping closer than the Pong's timeout), leaving the later entry in
    // the wheel until it fires, 250 ms on: about five such entries per
    // session at any time. An entry firing for nothing must not make the
    // session arm one more for good.
    let config = keepalive_config(Duration::from_millis(50), Duration::from_millis(250));
    let server = TestServer::start(config, 1, |_| Echo);
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let mut client = RawClient::open(server.addr, "/");
            thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(2);
                let mut rounds = 0;
                while Instant::now() < until {
                    let ping = client.next_frame();
                    assert_eq!(ping.opcode, OpCode::Ping, "expected a keepalive Ping, got {ping:?}");
                    client.send_frame(true, OpCode::Pong, &ping.payload);
                    rounds += 1;
                }
                (client, rounds)
            })
        })
        .collect();
    let clients: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let rounds: usize = clients.iter().map(|(_, rounds)| rounds).sum();
    assert!(rounds >= 100, "{rounds} keepalive rounds in all");
    let timers = server.handle().metrics().armed_timers();
    assert!(timers <= 100, "{timers} timers armed for 10 sessions after {rounds} keepalive rounds");
    drop(clients);
    server.stop();
}

#[test]
fn silent_peer_is_dropped_after_the_keepalive_timeout_and_on_close_gets_1006() {
    let config = keepalive_config(Duration::from_millis(200), Duration::from_millis(200));
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(config, 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    let ping = client.next_frame();
    assert_eq!(ping.opcode, OpCode::Ping, "expected a keepalive Ping, got {ping:?}");
    // No Pong, nothing at all: the server gives up.
    client.expect_eof_within(Duration::from_secs(3));
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::ABNORMAL);
    server.stop();
}

// The handler's decision on the upgrade.

/// Refuses `/private`; picks the first subprotocol it speaks from the client's offer,
/// and a subprotocol nobody offered on `/wrong-protocol`.
struct Gate;

impl Handler for Gate {
    type State = ();

    fn upgrade(&mut self, request: &Upgrade<'_>) -> Decision<()> {
        match request.path() {
            "/private" => Decision::refuse(StatusCode::FORBIDDEN, "private area"),
            "/wrong-protocol" => Decision::Accept { protocol: Some("never-offered".into()), state: () },
            _ => {
                let protocol = request.protocols().iter().find(|p| ["chat.v2", "chat.v1"].contains(&p.as_str()));
                Decision::Accept { protocol: protocol.cloned(), state: () }
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
        if let Message::Text(text) = message {
            let _ = ctx.send_text(session, text);
        }
    }
}

#[test]
fn upgrade_rejected_by_the_handler_gets_its_status() {
    let server = TestServer::start(quick_config(), 1, |_| Gate);
    let answer = http_answer(&server, upgrade_request("/private", &[]).as_bytes());
    assert_eq!(status(&answer), 403, "got:\n{answer}");
    assert_eq!(header(&answer, "Connection").as_deref(), Some("close"), "in:\n{answer}");
    assert!(answer.ends_with("private area\n"), "the reason is the body:\n{answer}");
    assert!(header(&answer, "Sec-WebSocket-Accept").is_none(), "a refusal accepts nothing:\n{answer}");

    // A client library sees the status too.
    let stream = TcpStream::connect(server.addr).expect("TCP connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set read timeout");
    match tungstenite::client(server.url("/private"), stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 403);
        }
        Err(e) => panic!("expected an HTTP 403 failure, got {e}"),
        Ok(_) => panic!("the upgrade to /private succeeded"),
    }
    server.stop();
}

#[test]
fn subprotocol_chosen_from_the_offer_is_named_in_the_101() {
    let server = TestServer::start(quick_config(), 1, |_| Gate);

    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request("/", &["Sec-WebSocket-Protocol: superchat, chat.v1"]).as_bytes());
    let head = client.read_http_head();
    assert_eq!(status(&head), 101, "got:\n{head}");
    assert_eq!(header(&head, "Sec-WebSocket-Protocol").as_deref(), Some("chat.v1"), "in:\n{head}");
    drop(client);

    // Through a client library, which checks the answer against its offer.
    let mut request = server.url("/").into_client_request().expect("a valid request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", "chat.v2, chat.v1".parse().expect("a header value"));
    let (mut ws, response) = ws_connect_with(&server, request);
    let chosen = response.headers().get("Sec-WebSocket-Protocol").map(|v| v.to_str().expect("ASCII"));
    assert_eq!(chosen, Some("chat.v2"));
    ws.send(WsMessage::Text("over chat.v2".into())).expect("send");
    assert_eq!(ws_read(&mut ws), WsMessage::Text("over chat.v2".into()));
    ws_close(&mut ws, 1000, "");

    // No offer, no subprotocol.
    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request("/", &[]).as_bytes());
    let head = client.read_http_head();
    assert_eq!(status(&head), 101, "got:\n{head}");
    assert!(header(&head, "Sec-WebSocket-Protocol").is_none(), "nothing was offered:\n{head}");
    drop(client);
    server.stop();
}

#[test]
fn subprotocol_the_client_never_offered_is_refused_with_500() {
    let server = TestServer::start(quick_config(), 1, |_| Gate);
    let request = upgrade_request("/wrong-protocol", &["Sec-WebSocket-Protocol: chat.v1"]);
    let answer = http_answer(&server, request.as_bytes());
    assert_eq!(status(&answer), 500, "got:\n{answer}");
    server.stop();
}

// Per-connection state.

/// Counts each session's messages, from a start given in the query (`?from=N`),
/// and answers each message with the count so far.
struct Counter;

impl Handler for Counter {
    type State = u64;

    fn upgrade(&mut self, request: &Upgrade<'_>) -> Decision<u64> {
        let from = request.query().and_then(|q| q.strip_prefix("from=")).and_then(|n| n.parse().ok());
        Decision::accept(from.unwrap_or(0))
    }

    fn on_message(&mut self, ctx: &mut Context<'_, u64>, session: SessionId, _message: Message<'_>) {
        let Some(count) = ctx.state(session) else { return };
        *count += 1;
        let reply = count.to_string();
        let _ = ctx.send_text(session, &reply);
    }
}

#[test]
fn per_connection_state_counts_each_sessions_messages() {
    let server = TestServer::start(quick_config(), 1, |_| Counter);
    let mut a = ws_connect(&server, "/?from=100");
    let mut b = ws_connect(&server, "/");
    let exchange = |ws: &mut WsClient, expected: &str| {
        ws.send(WsMessage::Binary(b"tick".to_vec())).expect("send");
        assert_eq!(ws_read(ws), WsMessage::Text(expected.into()));
    };
    exchange(&mut a, "101");
    exchange(&mut b, "1");
    exchange(&mut a, "102");
    exchange(&mut a, "103");
    exchange(&mut b, "2");
    ws_close(&mut a, 1000, "");
    // A new session starts from its own state, whatever went before.
    let mut c = ws_connect(&server, "/");
    exchange(&mut c, "1");
    exchange(&mut b, "3");
    ws_close(&mut b, 1000, "");
    ws_close(&mut c, 1000, "");
    server.stop();
}

// Graceful shutdown.

#[test]
fn shutdown_sends_1001_and_join_returns_once_the_client_answers() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 2, factory);
    let mut client = RawClient::open(server.addr, "/");
    server.shutdown();
    let close = client.expect_close();
    assert_eq!(close.close_code(), Some(1001));
    client.send_close(1001, "");
    client.expect_eof();
    drop(client);
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::GOING_AWAY);
    join_within(server.into_handle(), Duration::from_secs(5));
}

#[test]
fn shutdown_finishes_even_when_a_client_never_answers_its_close() {
    let mut config = quick_config();
    config.protocol.close_timeout = Some(Duration::from_millis(300));
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(config, 1, factory);
    let mut client = RawClient::open(server.addr, "/");
    let handle = server.into_handle();
    handle.shutdown();
    assert_eq!(client.expect_close().close_code(), Some(1001));
    join_within(handle, Duration::from_secs(5));
    client.expect_eof();
    assert_eq!(next_close(&reports, REPORT_WITHIN).0, CloseCode::ABNORMAL);
}

#[test]
fn shutdown_handle_from_another_thread_stops_the_server_and_its_port() {
    let server = TestServer::start(quick_config(), 2, |_| Echo);
    let addr = server.addr;
    let handle = server.into_handle();
    let stopper = handle.shutdown_handle();
    thread::spawn(move || stopper.shutdown()).join().expect("the stopping thread");
    join_within(handle, Duration::from_secs(5));
    let refused = TcpStream::connect(addr);
    assert!(refused.is_err(), "the listeners are closed once the server stopped");
}

#[test]
fn shutdown_drops_a_connection_still_in_its_handshake() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut client = RawClient::connect(server.addr);
    client.send_raw(b"GET / HTTP/1.1\r\n");
    // Give the loop time to accept before it stops accepting.
    thread::sleep(Duration::from_millis(100));
    let handle = server.into_handle();
    handle.shutdown();
    client.expect_eof_within(Duration::from_secs(3));
    join_within(handle, Duration::from_secs(5));
}

// Bytes that arrive with the request.

#[test]
fn frames_right_behind_the_request_are_not_lost() {
    let server = TestServer::start(quick_config(), 1, |_| Echo);
    let mut client = RawClient::connect(server.addr);
    let mut bytes = upgrade_request("/", &[]).into_bytes();
    bytes.extend(client_frame(true, OpCode::Text, b"eager"));
    client.send_raw(&bytes);
    let head = client.read_http_head();
    assert_eq!(status(&head), 101, "got:\n{head}");
    assert_eq!(client.next_frame(), Frame { fin: true, opcode: OpCode::Text, payload: b"eager".to_vec() });
    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    server.stop();
}

// Backpressure.

#[test]
fn client_that_writes_before_reading_gets_every_echo_in_order() {
    // 8 MiB, more than the server's socket can buffer, so its queue does fill.
    const MESSAGES: usize = 8192;
    const SIZE: usize = 1 << 10;
    let mut config = quick_config();
    config.max_out_queue = 64 << 10;
    let server = TestServer::start(config, 1, |_| Echo);
    let mut client = RawClient::connect_with_receive_buffer(server.addr, 16 << 10).handshake("/");
    let mut writer = client.stream.try_clone().expect("clone the socket");
    let sending = thread::spawn(move || {
        use std::io::Write;
        for i in 0..MESSAGES {
            let mut payload = pattern(SIZE);
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            writer.write_all(&client_frame(true, OpCode::Binary, &payload)).expect("write a message");
        }
    });
    // Let the server's output back up before reading anything.
    thread::sleep(Duration::from_millis(300));
    let mut received = Vec::new();
    while received.len() < MESSAGES {
        let frame = client.next_frame();
        assert_eq!(frame.opcode, OpCode::Binary, "got {frame:?}");
        assert_eq!(frame.payload.len(), SIZE);
        received.push(u64::from_be_bytes(frame.payload[..8].try_into().expect("eight bytes")));
    }
    sending.join().expect("the writing thread");
    let expected: Vec<u64> = (0..MESSAGES as u64).collect();
    assert_eq!(received, expected, "every echo, in order");
    client.send_close(1000, "");
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    server.stop();
}

#[test]
fn client_half_close_after_its_close_frees_the_session_at_once() {
    let mut config = quick_config();
    config.linger_timeout = Duration::from_secs(30);
    config.protocol.close_timeout = Some(Duration::from_secs(30));
    let server = TestServer::start(config, 1, |_| Echo);
    let mut client = RawClient::open(server.addr, "/");
    client.send_close(1000, "");
    client.shutdown_write();
    assert_eq!(client.expect_close().close_code(), Some(1000));
    client.expect_eof();
    // Its EOF is already in: no waiting for the 30 s linger or close timeouts.
    server.stop_within(Duration::from_secs(5));
}

// Sends to other sessions.

/// Sends every message to every open session of its loop, the sender
/// included, and reports each send refused for backpressure.
struct Broadcast {
    refused: mpsc::Sender<SessionId>,
}

impl Handler for Broadcast {
    type State = ();

    fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
        Decision::accept(())
    }

    fn on_message(&mut self, ctx: &mut Context<'_, ()>, _session: SessionId, message: Message<'_>) {
        let targets: Vec<SessionId> = ctx.sessions().collect();
        for target in targets {
            let sent = match message {
                Message::Text(text) => ctx.send_text(target, text),
                Message::Binary(data) => ctx.send_binary(target, data),
            };
            if sent == Err(SendError::Backpressure) {
                let _ = self.refused.send(target);
            }
        }
    }
}

#[test]
fn broadcast_reaches_every_session_of_the_loop() {
    let (refused, _refusals) = mpsc::channel();
    let server = TestServer::start(quick_config(), 1, move |_| Broadcast { refused: refused.clone() });
    let mut clients: Vec<WsClient> = (0..3).map(|_| ws_connect(&server, "/")).collect();
    for sender in 0..clients.len() {
        let text = format!("from client {sender}");
        clients[sender].send(WsMessage::Text(text.clone())).expect("send");
        for (i, ws) in clients.iter_mut().enumerate() {
            assert_eq!(ws_read(ws), WsMessage::Text(text.clone()), "client {i}");
        }
    }
    for ws in &mut clients {
        ws_close(ws, 1000, "");
    }
    server.stop();
}

#[test]
fn sends_to_a_session_that_does_not_read_are_refused_while_its_sender_goes_on() {
    const MESSAGES: u64 = 512;
    let mut config = quick_config();
    config.max_out_queue = 64 << 10;
    let (refused, refusals) = mpsc::channel();
    let server = TestServer::start(config, 1, move |_| Broadcast { refused: refused.clone() });
    let mut slow = RawClient::connect_with_receive_buffer(server.addr, 16 << 10).handshake("/");
    let mut fast = ws_connect(&server, "/");
    // 8 MiB to both: far more than the slow client's socket buffers hold.
    for i in 0..MESSAGES {
        let mut payload = pattern(16 << 10);
        payload[..8].copy_from_slice(&i.to_be_bytes());
        fast.send(WsMessage::Binary(payload.clone())).expect("send");
        assert!(ws_read(&mut fast) == WsMessage::Binary(payload), "message {i} came back to its sender");
    }
    let refused: Vec<SessionId> = refusals.try_iter().collect();
    assert!(!refused.is_empty(), "no send was refused to a client that read nothing");
    assert!(refused.iter().all(|id| *id == refused[0]), "only the slow session is refused: {refused:?}");
    ws_close(&mut fast, 1000, "");

    // The slow client gets what was queued before its queue filled: a prefix, in order.
    slow.send_close(1000, "");
    let mut received = Vec::new();
    loop {
        let frame = slow.next_frame();
        match frame.opcode {
            OpCode::Binary => received.push(u64::from_be_bytes(frame.payload[..8].try_into().expect("eight bytes"))),
            OpCode::Close => break,
            _ => panic!("unexpected {frame:?}"),
        }
    }
    slow.expect_eof();
    let count = received.len() as u64;
    assert!(count > 0 && count < MESSAGES, "the slow client got {count} of {MESSAGES}");
    assert_eq!(received, (0..count).collect::<Vec<_>>(), "a prefix, in order");
    server.stop();
}
