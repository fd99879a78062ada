//! The client over real sockets: against the ferrows server in-process,
//! against tungstenite's server side, and against a bare server on a plain
//! socket that shows the frames as they were sent.

#[path = "support/socket.rs"]
mod socket;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ferrows::app::App;
use ferrows::client::{Client, ClientBuilder, ClientConnection, ClientEvent, Error, Message};
use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::proto::handshake::{Accept, HandshakeLimits, ServerHandshake, Status, UpgradeRequest};
use ferrows::proto::{CloseCode, Config, Keepalive, ProtocolError};
use ferrows::runtime::OriginPolicy;
use mio::{Events, Poll, Token};
use socket::*;

fn echo_server() -> TestServer {
    TestServer::start(quick_config(), 1, |_| App::default())
}

/// A client builder that cannot hang a test.
fn builder() -> ClientBuilder {
    ClientBuilder::new().read_timeout(Some(IO_TIMEOUT)).write_timeout(Some(IO_TIMEOUT))
}

/// Bytes with no pattern a compressor could use.
fn noise(len: usize) -> Vec<u8> {
    let mut n: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            n ^= n << 13;
            n ^= n >> 17;
            n ^= n << 5;
            n as u8
        })
        .collect()
}

#[test]
fn echoes_text_binary_and_large_messages() {
    let server = echo_server();
    let mut client = builder().deflate(false).connect(&server.url("/echo")).unwrap();
    client.send_text("hello").unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text("hello".into()));
    client.send_binary(&[0, 1, 2, 255]).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Binary(vec![0, 1, 2, 255]));
    client.send_text("").unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text(String::new()));

    let large = noise(8 << 20);
    client.send_binary(&large).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Binary(large));
    let text = "é≠🦀".repeat(100_000);
    client.send_text(&text).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text(text));
    assert_eq!(client.close(CloseCode::NORMAL, "").unwrap().map(|f| f.code), Some(CloseCode::NORMAL));
}

#[test]
fn a_ping_comes_back_as_a_pong() {
    let server = echo_server();
    let mut client = builder().connect(&server.url("/echo")).unwrap();
    client.send_ping(b"are you there").unwrap();
    match client.recv().unwrap() {
        Message::Pong(payload) => assert_eq!(&*payload, b"are you there"),
        other => panic!("expected a Pong, got {other:?}"),
    }
    assert!(matches!(client.send_ping(&[0; 126]), Err(Error::Usage(_))));
}

#[test]
fn rfc6455_7_1_2_our_close_is_answered_with_its_code() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = builder().connect(&server.url("/")).unwrap();
    let answer = client.close(CloseCode(4001), "done").unwrap().expect("a code in the answer");
    assert_eq!(answer.code, CloseCode(4001));
    assert_eq!(next_close(&reports, IO_TIMEOUT), (CloseCode(4001), "done".to_owned()));
    assert!(matches!(client.send_text("late"), Err(Error::Closed { code: CloseCode(4001), .. })));
    assert!(matches!(client.close(CloseCode::NORMAL, ""), Err(Error::Closed { .. })));
}

#[test]
fn rfc6455_5_5_1_the_servers_close_is_returned_and_echoed() {
    let (factory, reports) = ReportingEcho::factory();
    let server = TestServer::start(quick_config(), 1, factory);
    let mut client = builder().connect(&server.url("/")).unwrap();
    client.send_text(CLOSE_ME).unwrap();
    match client.recv().unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!((frame.code, frame.reason.as_str()), (SERVER_CLOSE_CODE, SERVER_CLOSE_REASON));
        }
        other => panic!("expected the server's Close, got {other:?}"),
    }
    // The echo (its code, no reason) completed the server's closing handshake.
    assert_eq!(next_close(&reports, IO_TIMEOUT).0, SERVER_CLOSE_CODE);
    let after = client.recv().unwrap_err();
    assert!(matches!(&after, Error::Closed { code, reason } if *code == SERVER_CLOSE_CODE && reason == "bye"));
    assert!(matches!(client.send_text("late"), Err(Error::Closed { .. })));
}

#[test]
fn rfc6455_4_1_the_server_picks_one_of_the_offered_subprotocols() {
    let mut config = quick_config();
    config.subprotocols = vec!["chat.v2".into(), "chat.v1".into()];
    let server = TestServer::start(config, 1, |_| App::default());
    let url = server.url("/echo");
    let client = builder().protocol("chat.v1").protocol("chat.v2").connect(&url).unwrap();
    assert_eq!(client.protocol(), Some("chat.v2"));
    let client = builder().protocol("other").connect(&url).unwrap();
    assert_eq!(client.protocol(), None);
    let client = builder().connect(&url).unwrap();
    assert_eq!(client.protocol(), None);
}

#[test]
fn rfc7692_deflate_is_on_by_default_and_messages_round_trip() {
    let server = echo_server();
    let mut client = builder().connect(&server.url("/echo")).unwrap();
    assert_eq!(client.uses_deflate(), cfg!(feature = "deflate"));
    let text = "a compressible sentence, said again and again. ".repeat(20_000);
    client.send_text(&text).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text(text));
    let data = noise(100_000);
    client.send_binary(&data).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Binary(data));

    let plain = builder().deflate(false).connect(&server.url("/echo")).unwrap();
    assert!(!plain.uses_deflate());
}

#[test]
fn a_refused_handshake_is_an_error_with_its_status() {
    let server = echo_server();
    let error = builder().connect(&server.url("/nowhere")).unwrap_err();
    assert!(matches!(error, Error::Handshake(_)), "{error:?}");
    assert_eq!(error.status(), Some(404));

    let mut config = quick_config();
    config.allowed_origins = OriginPolicy::list(["http://good.example"]).unwrap();
    let server = TestServer::start(config, 1, |_| App::default());
    let url = server.url("/echo");
    let refused = builder().header("Origin", "http://evil.example").connect(&url).unwrap_err();
    assert_eq!(refused.status(), Some(403));
    builder().header("Origin", "http://good.example").connect(&url).unwrap();
}

#[test]
fn urls_the_client_cannot_connect_to() {
    assert!(matches!(Client::connect("http://127.0.0.1/"), Err(Error::Url(_))));
    assert!(matches!(Client::connect("ws://127.0.0.1/#x"), Err(Error::Url(_))));
    assert!(matches!(Client::connect("wss://127.0.0.1/"), Err(Error::TlsUnavailable)));
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(matches!(Client::connect(&format!("ws://{refused}/")), Err(Error::Io(_))));
}

#[test]
fn a_read_timeout_leaves_the_client_usable() {
    let server = echo_server();
    let timeout = Duration::from_millis(200);
    let mut client = builder().read_timeout(Some(timeout)).connect(&server.url("/echo")).unwrap();
    let started = Instant::now();
    assert!(matches!(client.recv(), Err(Error::Timeout)));
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < IO_TIMEOUT, "waited {waited:?}");
    client.send_text("still here").unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text("still here".into()));
}

#[test]
fn from_stream_runs_over_a_stream_the_caller_connected() {
    let server = echo_server();
    let stream = TcpStream::connect(server.addr).unwrap();
    let mut client = Client::from_stream(stream, &server.url("/echo")).unwrap();
    client.send_text("over my own socket").unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text("over my own socket".into()));
}

#[test]
fn against_tungstenite_pings_are_answered_and_its_close_is_echoed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let echo = ws.read().unwrap();
        ws.send(tungstenite::Message::Ping(b"tick".to_vec())).unwrap();
        ws.send(echo).unwrap();
        let pong = ws.read().unwrap();
        let close = tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Away,
            reason: "going".into(),
        };
        ws.close(Some(close)).unwrap();
        // Reads until the client's echo of the Close completes the handshake.
        let end = loop {
            match ws.read() {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        (pong, end)
    });
    let mut client = builder().deflate(false).connect(&format!("ws://{addr}/")).unwrap();
    client.send_binary(b"bytes").unwrap();
    assert_eq!(client.recv().unwrap(), Message::Binary(b"bytes".to_vec()));
    assert!(matches!(client.recv().unwrap(), Message::Close(Some(f)) if f.code == CloseCode::GOING_AWAY));
    let (pong, end) = server.join().unwrap();
    assert_eq!(pong, tungstenite::Message::Pong(b"tick".to_vec()));
    assert!(matches!(end, tungstenite::Error::ConnectionClosed), "{end:?}");
}

/// A frame as the bare server read it off the wire.
#[derive(Debug)]
struct WireFrame {
    rsv: u8,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    /// Unmasked, still compressed if it was.
    payload: Vec<u8>,
}

/// One connection on a plain socket, its handshake answered by the sans-IO
/// server side.
struct BareConn {
    stream: TcpStream,
    /// The request's `Origin`.
    origin: Option<String>,
    buf: Vec<u8>,
}

impl BareConn {
    fn fill(&mut self) -> usize {
        let mut chunk = [0; 64 << 10];
        let n = self.stream.read(&mut chunk).expect("read from the client");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill() > 0, "EOF inside a frame");
        }
        self.buf.drain(..n).collect()
    }

    fn read_frame(&mut self) -> WireFrame {
        let head = self.take(2);
        let len = match head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes(self.take(2).try_into().unwrap())),
            127 => u64::from_be_bytes(self.take(8).try_into().unwrap()),
            n => u64::from(n),
        };
        let mask: Option<[u8; 4]> = (head[1] & 0x80 != 0).then(|| self.take(4).try_into().unwrap());
        let mut payload = self.take(len as usize);
        if let Some(mask) = mask {
            payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= mask[i % 4]);
        }
        WireFrame { rsv: head[0] & 0x70, opcode: OpCode::from_bits(head[0]).unwrap(), mask, payload }
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
        let mut out = Vec::new();
        encode_frame(true, 0, opcode, payload, mask, &mut out);
        self.stream.write_all(&out).unwrap();
    }
}

/// A one-connection server: answers the handshake (permessage-deflate when
/// `deflate` and offered), then runs `script` on the connection.
fn bare_server<T: Send + 'static>(
    deflate: bool,
    script: impl FnOnce(BareConn) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut conn = BareConn { stream, origin: None, buf: Vec::new() };
        let mut handshake = ServerHandshake::new(HandshakeLimits::default());
        let (request, rest) = loop {
            let n = conn.fill();
            assert!(n > 0, "EOF before the request was complete");
            if let Status::Complete { head, rest } = handshake.feed(&std::mem::take(&mut conn.buf)).unwrap() {
                break (head, rest);
            }
        };
        conn.buf = rest;
        conn.origin = request.origin().map(str::to_owned);
        let upgrade = request.validate_upgrade().unwrap();
        let mut response = Vec::new();
        upgrade.accept(&accept_for(&upgrade, deflate), &mut response).unwrap();
        conn.stream.write_all(&response).unwrap();
        script(conn)
    });
    (addr, handle)
}

/// The answer to an upgrade: permessage-deflate when `deflate` and offered.
#[cfg(feature = "deflate")]
fn accept_for(upgrade: &UpgradeRequest, deflate: bool) -> Accept {
    let config = ferrows::proto::deflate::DeflateConfig::default();
    match ferrows::proto::deflate::negotiate_server(upgrade.extensions(), &config) {
        Some((_, value)) if deflate => Accept::new().extensions(value),
        _ => Accept::new(),
    }
}

/// The answer to an upgrade: nothing to negotiate without the feature.
#[cfg(not(feature = "deflate"))]
fn accept_for(_upgrade: &UpgradeRequest, _deflate: bool) -> Accept {
    Accept::new()
}

#[test]
fn rfc6455_5_3_each_frame_has_a_fresh_masking_key() {
    const FRAMES: usize = 600;
    let (addr, server) = bare_server(false, |mut conn| {
        let frames: Vec<WireFrame> = (0..FRAMES).map(|_| conn.read_frame()).collect();
        (conn.origin, frames)
    });
    let mut client = builder().header("Origin", "http://here.example").connect(&format!("ws://{addr}/")).unwrap();
    for i in 0..FRAMES {
        client.send_text(&i.to_string()).unwrap();
    }
    let (origin, frames) = server.join().unwrap();
    assert_eq!(origin.as_deref(), Some("http://here.example"));
    let keys: Vec<[u8; 4]> =
        frames.iter().map(|f| f.mask.expect("RFC 6455 §5.1: a client masks every frame")).collect();
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    // 600 random 32-bit keys (spanning refills of the 1 KiB pool): a repeat
    // is astronomically unlikely, a counter or a constant key is caught.
    assert_eq!(distinct.len(), FRAMES);
    assert!(keys.windows(2).all(|w| u32::from_be_bytes(w[1]) != u32::from_be_bytes(w[0]).wrapping_add(1)));
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!((frame.opcode, frame.payload.as_slice()), (OpCode::Text, i.to_string().as_bytes()));
        assert_eq!(frame.rsv, 0, "no RSV bit without an extension");
    }
}

#[cfg(feature = "deflate")]
#[test]
fn rfc7692_6_messages_go_out_compressed_with_rsv1() {
    let (addr, server) = bare_server(true, |mut conn| conn.read_frame());
    let mut client = builder().connect(&format!("ws://{addr}/")).unwrap();
    assert!(client.uses_deflate());
    let text = "to be compressed ".repeat(1000);
    client.send_text(&text).unwrap();
    let frame = server.join().unwrap();
    assert_eq!(frame.rsv, 0x40, "RSV1 on a compressed message");
    assert!(frame.payload.len() < text.len() / 10, "{} bytes on the wire", frame.payload.len());
}

#[test]
fn a_servers_violation_is_closed_with_the_code_it_earns() {
    let (addr, server) = bare_server(false, |mut conn| {
        conn.send_frame(OpCode::Text, b"fine", None);
        // RFC 6455 §5.1: a client must fail a masked frame from a server.
        conn.send_frame(OpCode::Text, b"masked", Some([1, 2, 3, 4]));
        conn.read_frame()
    });
    let mut client = builder().connect(&format!("ws://{addr}/")).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text("fine".into()));
    let error = client.recv().unwrap_err();
    assert!(matches!(error, Error::Protocol(ProtocolError::MaskedFrame)), "{error:?}");
    let close = server.join().unwrap();
    assert_eq!(close.opcode, OpCode::Close);
    assert_eq!(close.payload[..2], 1002u16.to_be_bytes());
    assert!(matches!(client.recv(), Err(Error::Closed { code: CloseCode::PROTOCOL_ERROR, .. })));
}

#[test]
fn a_connection_lost_without_a_close_is_an_io_error() {
    let (addr, server) = bare_server(false, drop);
    let mut client = builder().connect(&format!("ws://{addr}/")).unwrap();
    server.join().unwrap();
    let error = client.recv().unwrap_err();
    assert!(matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof), "{error:?}");
    assert_eq!(error.close_code(), Some(CloseCode::ABNORMAL));
}

#[test]
fn close_after_the_servers_close_came_in_answers_it() {
    let (addr, server) = bare_server(false, |mut conn| {
        let mut both = Vec::new();
        encode_frame(true, 0, OpCode::Text, b"last", None, &mut both);
        encode_frame(true, 0, OpCode::Close, &[0x0f, 0xa2], None, &mut both);
        conn.stream.write_all(&both).unwrap();
        conn.read_frame()
    });
    let mut client = builder().connect(&format!("ws://{addr}/")).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text("last".into()));
    let answer = client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(answer.map(|f| f.code), Some(CloseCode(4002)));
    let echo = server.join().unwrap();
    assert_eq!((echo.opcode, echo.payload.as_slice()), (OpCode::Close, &[0x0f, 0xa2][..]));
}

#[test]
fn close_gives_up_when_the_server_never_answers() {
    let (addr, server) = bare_server(false, |mut conn| {
        let close = conn.read_frame();
        // Hold the connection open without answering.
        thread::sleep(Duration::from_millis(600));
        close
    });
    let mut config = Config::default();
    config.close_timeout = Some(Duration::from_millis(200));
    let mut client = builder().config(config).connect(&format!("ws://{addr}/")).unwrap();
    let started = Instant::now();
    assert!(matches!(client.close(CloseCode::NORMAL, "bye"), Err(Error::Timeout)));
    assert!(started.elapsed() < Duration::from_millis(550), "took {:?}", started.elapsed());
    assert_eq!(server.join().unwrap().opcode, OpCode::Close);
}

#[test]
fn a_silent_server_gets_a_keepalive_ping_while_recv_waits() {
    let (addr, server) = bare_server(false, |mut conn| {
        let ping = conn.read_frame();
        conn.send_frame(OpCode::Text, b"seen", None);
        ping
    });
    let mut config = Config::default();
    config.keepalive = Some(Keepalive { idle: Duration::from_millis(100), timeout: Duration::from_secs(5) });
    let mut client = builder().config(config).connect(&format!("ws://{addr}/")).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text("seen".into()));
    assert_eq!(server.join().unwrap().opcode, OpCode::Ping);
}

#[test]
fn a_mio_loop_drives_many_connections_on_one_thread() {
    const CONNECTIONS: usize = 64;
    let server = TestServer::start(quick_config(), 2, |_| App::default());
    let builder = builder();
    let url = server.url("/echo");
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(256);
    let mut scratch = vec![0; 64 << 10];
    let now = Instant::now();
    let mut conns: Vec<Option<ClientConnection>> = (0..CONNECTIONS)
        .map(|i| {
            let mut conn = ClientConnection::connect(&builder, server.addr, &url, now).unwrap();
            let interest = conn.interest();
            poll.registry().register(conn.stream_mut(), Token(i), interest).unwrap();
            Some(conn)
        })
        .collect();
    let mut echoed = 0;
    let deadline = now + IO_TIMEOUT;
    while conns.iter().any(Option::is_some) {
        assert!(Instant::now() < deadline, "{} connections still open", conns.iter().flatten().count());
        poll.poll(&mut events, Some(Duration::from_millis(50))).unwrap();
        let now = Instant::now();
        for event in events.iter() {
            let Some(conn) = conns[event.token().0].as_mut() else { continue };
            if event.is_writable() {
                conn.on_writable(now).unwrap();
            }
            if event.is_readable() || event.is_read_closed() {
                conn.on_readable(&mut scratch, now).unwrap();
            }
        }
        for (i, slot) in conns.iter_mut().enumerate() {
            let Some(conn) = slot else { continue };
            conn.handle_timeout(now).unwrap();
            while let Some(event) = conn.poll_event() {
                match event {
                    ClientEvent::Open => conn.send_text(&format!("hello from {i}")).unwrap(),
                    ClientEvent::Text(text) => {
                        assert_eq!(text, format!("hello from {i}"));
                        echoed += 1;
                        conn.close(CloseCode::NORMAL, "", now).unwrap();
                    }
                    ClientEvent::Close(frame) => assert_eq!(frame.map(|f| f.code), Some(CloseCode::NORMAL)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            conn.flush(now).unwrap();
            if conn.is_finished() {
                poll.registry().deregister(conn.stream_mut()).unwrap();
                *slot = None;
            } else {
                let interest = conn.interest();
                poll.registry().reregister(conn.stream_mut(), Token(i), interest).unwrap();
            }
        }
    }
    assert_eq!(echoed, CONNECTIONS);
}
