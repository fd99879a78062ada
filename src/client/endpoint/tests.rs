//! The sans-IO client against the sans-IO server side, in memory, with a
//! virtual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::handshake::{Accept, HandshakeLimits, ResponseError, ServerHandshake, Status};
use crate::proto::{Config, Connection, Event, ProtocolError};

/// Predictable masking keys: tests only.
fn counting_masks() -> impl FnMut() -> [u8; 4] + Send + 'static {
    let mut n: u32 = 0;
    move || {
        n += 1;
        n.to_be_bytes()
    }
}

fn endpoint(builder: &ClientBuilder, url: &str, now: Instant) -> Endpoint {
    Endpoint::new(builder, url.parse().unwrap(), b"the sample nonce", counting_masks(), now).unwrap()
}

fn transmit(endpoint: &mut Endpoint) -> Vec<u8> {
    let mut out = Vec::new();
    endpoint.poll_transmit(&mut out);
    out
}

/// Answers the client's request as a server would: the chosen subprotocol
/// (the first offered), permessage-deflate when offered and `deflate` is
/// set. Returns the response and the server's protocol state.
fn serve(request: &[u8], deflate: bool, now: Instant) -> (Vec<u8>, Connection) {
    let mut handshake = ServerHandshake::new(HandshakeLimits::default());
    let Ok(Status::Complete { head, .. }) = handshake.feed(request) else { panic!("an incomplete request") };
    let upgrade = head.validate_upgrade().unwrap();
    let mut accept = Accept::new();
    if let Some(protocol) = upgrade.protocols().first() {
        accept = accept.protocol(protocol.clone());
    }
    #[cfg(feature = "deflate")]
    let mut server = Connection::server(Config::default(), now);
    #[cfg(not(feature = "deflate"))]
    let server = Connection::server(Config::default(), now);
    #[cfg(feature = "deflate")]
    if deflate {
        let config = crate::proto::deflate::DeflateConfig::default();
        if let Some((params, value)) = crate::proto::deflate::negotiate_server(upgrade.extensions(), &config) {
            accept = accept.extensions(value);
            server = server.with_deflate(&params, &config);
        }
    }
    let _ = deflate;
    let mut response = Vec::new();
    upgrade.accept(&accept, &mut response).unwrap();
    (response, server)
}

#[test]
fn the_request_carries_the_builders_offers() {
    let builder = ClientBuilder::new().protocol("chat").protocol("superchat").header("Origin", "http://example.com");
    let request =
        String::from_utf8(transmit(&mut endpoint(&builder, "ws://example.com:9001/room?x=1", Instant::now()))).unwrap();
    assert!(request.starts_with("GET /room?x=1 HTTP/1.1\r\nHost: example.com:9001\r\n"), "{request}");
    assert!(request.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), "{request}");
    assert!(request.contains("\r\nSec-WebSocket-Protocol: chat, superchat\r\n"), "{request}");
    assert!(request.contains("\r\nOrigin: http://example.com\r\n"), "{request}");
    assert_eq!(request.contains("Sec-WebSocket-Extensions: permessage-deflate"), cfg!(feature = "deflate"));
    let without =
        String::from_utf8(transmit(&mut endpoint(&builder.deflate(false), "ws://h/", Instant::now()))).unwrap();
    assert!(!without.contains("Sec-WebSocket-Extensions"), "{without}");
}

#[test]
fn invalid_offers_are_refused_before_anything_is_sent() {
    let now = Instant::now();
    let url = || "ws://h/".parse().unwrap();
    let bad_protocol = ClientBuilder::new().protocol("two words");
    assert!(matches!(Endpoint::new(&bad_protocol, url(), &[0; 16], counting_masks(), now), Err(Error::Request(_))));
    let reserved = ClientBuilder::new().header("Sec-WebSocket-Key", "x");
    assert!(matches!(Endpoint::new(&reserved, url(), &[0; 16], counting_masks(), now), Err(Error::Request(_))));
}

#[test]
fn rfc6455_4_1_the_handshake_opens_in_any_chunking_and_frames_behind_it_are_kept() {
    let now = Instant::now();
    let builder = ClientBuilder::new().protocol("chat");
    let mut client = endpoint(&builder, "ws://h/", now);
    let (mut response, mut server) = serve(&transmit(&mut client), false, now);
    server.send_text("first").unwrap();
    server.poll_transmit(&mut response);

    let head_len = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    for (i, byte) in response.iter_mut().enumerate() {
        assert_eq!(client.is_open(), i >= head_len);
        client.handle_read(std::slice::from_mut(byte), now).unwrap();
    }
    assert!(client.is_open());
    assert_eq!(client.protocol(), Some("chat"));
    assert!(!client.uses_deflate());
    assert_eq!(client.poll_event(), Some(ClientEvent::Open));
    assert_eq!(client.poll_event(), Some(ClientEvent::Text("first".into())));
    assert_eq!(client.poll_event(), None);
}

#[test]
fn rfc6455_5_3_every_frame_is_masked_with_the_next_key() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new().deflate(false), "ws://h/", now);
    let (mut response, mut server) = serve(&transmit(&mut client), false, now);
    client.handle_read(&mut response, now).unwrap();
    client.send_text("a").unwrap();
    client.send_binary(b"b").unwrap();
    client.send_ping(b"c").unwrap();
    let mut frames = transmit(&mut client);
    // Two header bytes, then the key, then one payload byte, for each frame.
    let keys: Vec<&[u8]> = frames.chunks(7).map(|frame| &frame[2..6]).collect();
    assert_eq!(keys, [[0, 0, 0, 1], [0, 0, 0, 2], [0, 0, 0, 3]]);
    server.handle_read(&mut frames, now).unwrap();
    assert_eq!(server.poll_event(), Some(Event::Text("a".into())));
    assert_eq!(server.poll_event(), Some(Event::Binary(b"b".to_vec())));
    assert!(matches!(server.poll_event(), Some(Event::Ping(p)) if *p == *b"c"));
}

#[test]
fn a_refusal_is_a_handshake_error_with_its_status() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new(), "ws://h/", now);
    let _ = transmit(&mut client);
    let mut refusal = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    let error = client.handle_read(&mut refusal, now).unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(matches!(error, Error::Handshake(ResponseError::UnexpectedStatus { status: 404 })));
    assert!(client.is_closed());
    assert!(!client.wants_read());
    assert!(matches!(client.send_text("x"), Err(Error::NotOpen)));
}

#[test]
fn a_wrong_accept_value_fails_the_handshake() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new(), "ws://h/", now);
    let mut reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
        .to_vec();
    assert!(matches!(client.handle_read(&mut reply, now), Err(Error::Handshake(ResponseError::AcceptMismatch))));
    // No event follows a failed handshake.
    assert_eq!(client.poll_event(), None);
}

#[test]
fn the_handshake_gives_up_at_the_connect_timeout() {
    let now = Instant::now();
    let builder = ClientBuilder::new().connect_timeout(Some(Duration::from_secs(3)));
    let mut client = endpoint(&builder, "ws://h/", now);
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(3)));
    client.handle_timeout(now + Duration::from_secs(2)).unwrap();
    assert!(matches!(client.handle_timeout(now + Duration::from_secs(3)), Err(Error::Timeout)));
    assert!(client.is_closed());
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn a_violation_comes_after_the_messages_before_it() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new(), "ws://h/", now);
    let (mut bytes, _server) = serve(&transmit(&mut client), false, now);
    bytes.extend_from_slice(b"\x81\x02ok");
    // RFC 6455 §5.1: a masked frame from a server.
    bytes.extend_from_slice(b"\x81\x81\x00\x00\x00\x00a");
    let error = client.handle_read(&mut bytes, now).unwrap_err();
    assert!(matches!(error, Error::Protocol(ProtocolError::MaskedFrame)));
    assert_eq!(client.poll_event(), Some(ClientEvent::Open));
    assert_eq!(client.poll_event(), Some(ClientEvent::Text("ok".into())));
    assert_eq!(client.poll_event(), None);
    let close = transmit(&mut client);
    // A masked Close with 1002.
    assert_eq!(close[..2], [0x88, 0x80 | (close.len() - 6) as u8]);
    assert!(client.is_closed());
}

#[test]
fn rfc6455_7_1_2_the_closing_handshake_completes_with_the_servers_echo() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new(), "ws://h/", now);
    let (mut response, mut server) = serve(&transmit(&mut client), false, now);
    client.handle_read(&mut response, now).unwrap();
    client.close(CloseCode(4000), "bye", now).unwrap();
    assert!(matches!(client.send_text("late"), Err(Error::Usage(_))));
    server.handle_read(&mut transmit(&mut client), now).unwrap();
    assert!(
        matches!(server.poll_event(), Some(Event::Close(Some(f))) if f.code == CloseCode(4000) && f.reason == "bye")
    );
    let mut echo = Vec::new();
    server.poll_transmit(&mut echo);
    client.handle_read(&mut echo, now).unwrap();
    assert_eq!(client.poll_event(), Some(ClientEvent::Open));
    assert!(matches!(client.poll_event(), Some(ClientEvent::Close(Some(f))) if f.code == CloseCode(4000)));
    assert!(client.is_closed());
}

#[cfg(feature = "deflate")]
#[test]
fn rfc7692_deflate_is_agreed_and_messages_round_trip_compressed() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new(), "ws://h/", now);
    let (mut bytes, mut server) = serve(&transmit(&mut client), true, now);
    let text = "compressible ".repeat(100);
    server.send_text(&text).unwrap();
    let before = bytes.len();
    server.poll_transmit(&mut bytes);
    assert!(bytes.len() - before < text.len() / 4, "the server's frame is compressed");
    assert_eq!(bytes[before] & 0x40, 0x40, "RSV1 marks a compressed message");
    client.handle_read(&mut bytes, now).unwrap();
    assert!(client.uses_deflate());
    assert_eq!(client.poll_event(), Some(ClientEvent::Open));
    assert_eq!(client.poll_event(), Some(ClientEvent::Text(text.clone())));

    client.send_text(&text).unwrap();
    let mut frame = transmit(&mut client);
    assert!(frame.len() < text.len() / 4);
    server.handle_read(&mut frame, now).unwrap();
    assert_eq!(server.poll_event(), Some(Event::Text(text)));
}

#[cfg(feature = "deflate")]
#[test]
fn rfc7692_7_an_invalid_deflate_answer_fails_the_connection() {
    let now = Instant::now();
    let mut client = endpoint(&ClientBuilder::new(), "ws://h/", now);
    let mut reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n\r\n"
        .to_vec();
    assert!(matches!(client.handle_read(&mut reply, now), Err(Error::Deflate(_))));
    assert!(client.is_closed());
    assert!(!client.is_open());
}
