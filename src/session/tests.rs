//! The session machine on a virtual clock: every deadline and every
//! backpressure policy, driven with bytes and instants only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::frame::{encode_frame, OpCode};

const PEER: &str = "192.0.2.7:40000";

fn start(settings: &Settings) -> (Session<u32>, Instant) {
    let now = crate::test_clock();
    (Session::new(PEER.parse().unwrap(), settings, now), now)
}

fn upgrade_request(extra: &str) -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A session past its 101, with the 101 already written.
fn open(settings: &Settings) -> (Session<u32>, Instant) {
    let (mut session, now) = start(settings);
    let Some(Input::Upgrade(input)) = session.handle_read(&mut upgrade_request(""), settings, now) else {
        panic!("an upgrade request");
    };
    session.accept(&input, None, 7, settings, now).unwrap();
    let head = written(&mut session);
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
    (session, now)
}

fn written<S>(session: &mut Session<S>) -> Vec<u8> {
    let mut out = Vec::new();
    session.output().write_to(&mut out).unwrap();
    out
}

fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(true, 0, opcode, payload, Some([1, 2, 3, 4]), &mut out);
    out
}

fn client_close(code: u16) -> Vec<u8> {
    client_frame(OpCode::Close, &code.to_be_bytes())
}

/// Reads as a driver does: the bytes, then every message they held.
fn read<S>(session: &mut Session<S>, mut bytes: Vec<u8>, settings: &Settings, now: Instant) -> Vec<Event> {
    assert!(session.handle_read(&mut bytes, settings, now).is_none());
    std::iter::from_fn(|| session.poll_message(&bytes).map(Received::into_event)).collect()
}

/// The opcode and payload of the one server frame in `bytes`.
fn server_frame(bytes: &[u8]) -> (u8, Vec<u8>) {
    assert!(bytes.len() >= 2 && bytes[1] < 126, "one short frame: {bytes:?}");
    let len = usize::from(bytes[1]);
    assert_eq!(bytes.len(), 2 + len, "one frame: {bytes:?}");
    (bytes[0] & 0x0f, bytes[2..].to_vec())
}

fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_request_that_does_not_arrive_in_time_ends_the_connection() {
    let settings = Settings { handshake_timeout: Duration::from_secs(10), ..Settings::default() };
    let (mut session, t0) = start(&settings);
    assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // Bytes trickling in do not move the deadline.
    assert!(session.handle_read(&mut b"GET / HTTP/1.1\r\n".to_vec(), &settings, t0 + Duration::from_secs(9)).is_none());
    assert_eq!(session.handle_timeout(t0 + Duration::from_secs(9)), Expiry::Pending);
    assert_eq!(session.handle_timeout(t0 + Duration::from_secs(10)), Expiry::RequestTimedOut);
}

#[test]
fn a_plain_request_is_framed_by_its_content_length() {
    let settings = Settings::default();
    let (mut session, now) = start(&settings);
    let mut head = b"POST /publish/x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello".to_vec();
    assert!(session.handle_read(&mut head, &settings, now).is_none(), "the body is incomplete");
    assert!(session.wants_read());
    let Some(Input::Http { request, body }) = session.handle_read(&mut b" world+extra".to_vec(), &settings, now) else {
        panic!("a whole request");
    };
    assert_eq!((request.method(), request.path(), &body[..]), ("POST", "/publish/x", &b"hello world"[..]));
    assert!(!session.wants_read(), "nothing more is read while the answer is decided");
    session.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(), &settings, now);
    assert!(!session.is_finished(), "the answer is not written yet");
    assert_eq!(status_line(&written(&mut session)), "HTTP/1.1 200 OK");
    assert!(session.is_finished());
}

#[test]
fn requests_the_server_does_not_take_are_answered_and_end() {
    let settings = Settings { max_http_body: 100, ..Settings::default() };
    let cases: [(&[u8], &str); 4] = [
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 411 Length Required"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", "HTTP/1.1 413 Content Too Large"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"\x16\x03\x01 not http\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    ];
    for (request, status) in cases {
        let (mut session, now) = start(&settings);
        let input = session.handle_read(&mut request.to_vec(), &settings, now);
        assert!(matches!(input, Some(Input::BadRequest(_))), "{input:?}");
        assert_eq!(status_line(&written(&mut session)), status);
        assert!(session.is_finished(), "{status}");
    }
}

#[test]
fn the_first_server_subprotocol_the_client_offered_is_chosen() {
    let settings = Settings { subprotocols: vec!["v2".into(), "v1".into()], ..Settings::default() };
    let (mut session, now) = start(&settings);
    let mut request = upgrade_request("Sec-WebSocket-Protocol: v1, v2\r\n");
    let Some(Input::Upgrade(input)) = session.handle_read(&mut request, &settings, now) else { panic!() };
    session.accept(&input, None, 0, &settings, now).unwrap();
    let head = String::from_utf8(written(&mut session)).unwrap();
    assert!(head.contains("\r\nSec-WebSocket-Protocol: v2\r\n"), "{head}");
    // An application's answer that cannot go in a header is a 500, not a 101.
    let (mut session, now) = start(&settings);
    let Some(Input::Upgrade(input)) = session.handle_read(&mut upgrade_request(""), &settings, now) else { panic!() };
    assert!(session.accept(&input, Some("bad value\r\n".into()), 0, &settings, now).is_err());
    assert_eq!(status_line(&written(&mut session)), "HTTP/1.1 500 Internal Server Error");
    assert!(session.is_finished());
}

#[test]
fn a_silent_peer_is_pinged_then_given_up() {
    let settings = Settings::default();
    let (mut session, t0) = open(&settings);
    let ping_at = t0 + Duration::from_secs(30);
    assert_eq!(session.poll_timeout(), Some(ping_at));
    assert_eq!(session.handle_timeout(ping_at - Duration::from_millis(1)), Expiry::Pending);
    assert_eq!(session.handle_timeout(ping_at), Expiry::Ran);
    assert_eq!(server_frame(&written(&mut session)), (0x9, Vec::new()), "a Ping");
    let give_up = ping_at + Duration::from_secs(30);
    assert_eq!(session.poll_timeout(), Some(give_up));
    assert_eq!(session.handle_timeout(give_up), Expiry::GaveUp);
    assert!(session.is_finished());
    assert_eq!(session.take_close_status(give_up).map(|s| s.code), Some(CloseCode::ABNORMAL));
}

#[test]
fn any_byte_from_the_peer_answers_the_ping() {
    let settings = Settings::default();
    let (mut session, t0) = open(&settings);
    let ping_at = t0 + Duration::from_secs(30);
    assert_eq!(session.handle_timeout(ping_at), Expiry::Ran);
    written(&mut session);
    let later = ping_at + Duration::from_secs(10);
    assert_eq!(read(&mut session, client_frame(OpCode::Pong, b""), &settings, later), []);
    assert_eq!(session.poll_timeout(), Some(later + Duration::from_secs(30)), "silence counts from the Pong");
}

#[test]
fn an_idle_timeout_closes_with_1001() {
    let protocol = crate::proto::Config { idle_timeout: Some(Duration::from_secs(90)), ..Default::default() };
    let settings = Settings { protocol: Arc::new(protocol), ..Settings::default() };
    let (mut session, t0) = open(&settings);
    let mut t = t0;
    // Pings and Pongs keep the connection, not the idle timer.
    while t + Duration::from_secs(20) < t0 + Duration::from_secs(90) {
        t += Duration::from_secs(20);
        assert_eq!(read(&mut session, client_frame(OpCode::Ping, b""), &settings, t), []);
        let _ = session.handle_timeout(t);
        written(&mut session);
    }
    let idle_at = t0 + Duration::from_secs(90);
    assert_eq!(session.handle_timeout(idle_at), Expiry::Ran);
    let (opcode, payload) = server_frame(&written(&mut session));
    assert_eq!((opcode, &payload[..2]), (0x8, &1001u16.to_be_bytes()[..]));
}

#[test]
fn a_close_without_an_answer_is_given_up_at_the_close_deadline() {
    let settings = Settings::default();
    let (mut session, t0) = open(&settings);
    session.close(CloseCode::NORMAL, "bye", t0).unwrap();
    assert_eq!(server_frame(&written(&mut session)).0, 0x8);
    assert_eq!(session.send(usize::MAX, |c| c.send_text("late")), Err(SendRefusal::Closed));
    let deadline = t0 + Duration::from_secs(5);
    assert_eq!(session.poll_timeout(), Some(deadline));
    assert_eq!(session.handle_timeout(deadline), Expiry::GaveUp);
    assert!(session.is_finished());
    assert!(!session.closed_cleanly(), "the peer never answered: linger, not a clean end");
}

#[test]
fn a_complete_closing_handshake_ends_at_once_and_anything_else_lingers() {
    let settings = Settings::default();
    let (mut session, t0) = open(&settings);
    session.close(CloseCode::NORMAL, "", t0).unwrap();
    written(&mut session);
    assert_eq!(read(&mut session, client_close(1000), &settings, t0), []);
    assert!(session.is_finished() && session.closed_cleanly());
    let status = session.take_close_status(t0).unwrap();
    assert_eq!(status.code, CloseCode::NORMAL);
    assert_eq!(session.take_close_status(t0).map(|s| s.code), Some(CloseCode::ABNORMAL), "until the state is dropped");
    session.drop_state();
    assert_eq!(session.take_close_status(t0), None, "told once the state is gone");

    // The peer's Close: echoed, then the linger reads until EOF or its deadline.
    let (mut session, t0) = open(&settings);
    assert_eq!(read(&mut session, client_close(4000), &settings, t0), []);
    assert_eq!(server_frame(&written(&mut session)), (0x8, 4000u16.to_be_bytes().to_vec()));
    assert!(session.is_finished());
    assert_eq!(session.take_close_status(t0).map(|s| s.code), Some(CloseCode(4000)));
    session.linger(&settings, t0);
    assert!(session.is_lingering() && session.wants_read());
    assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    assert_eq!(session.handle_timeout(t0 + Duration::from_secs(2)), Expiry::Over);
}

#[test]
fn a_violation_queues_the_close_it_earns() {
    let settings = Settings::default();
    let (mut session, now) = open(&settings);
    // RFC 6455 §5.1: a client frame must be masked.
    let mut unmasked = vec![0x81, 0x02, b'h', b'i'];
    let input = session.handle_read(&mut unmasked, &settings, now);
    assert!(matches!(input, Some(Input::Violation(_))), "{input:?}");
    let (opcode, payload) = server_frame(&written(&mut session));
    assert_eq!((opcode, &payload[..2]), (0x8, &1002u16.to_be_bytes()[..]));
    assert_eq!(session.take_close_status(now).map(|s| s.code), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn messages_reach_the_application_and_close_frames_do_not() {
    let settings = Settings::default();
    let (mut session, now) = open(&settings);
    let mut bytes = client_frame(OpCode::Text, b"one");
    bytes.extend(client_frame(OpCode::Ping, b"p"));
    bytes.extend(client_frame(OpCode::Binary, b"two"));
    bytes.extend(client_close(1000));
    let events = read(&mut session, bytes, &settings, now);
    assert_eq!(events, [Event::Text("one".into()), Event::Binary(b"two".to_vec())]);
    assert_eq!(session.take_close_status(now).map(|s| s.code), Some(CloseCode::NORMAL));
}

#[test]
fn publishes_to_a_slow_consumer_are_dropped_or_close_it() {
    let frame: SharedFrame = vec![0x81, 100].into_iter().chain([b'x'; 100]).collect::<Vec<u8>>().into();
    for (policy, expected) in
        [(SlowConsumerPolicy::Drop, Delivered::Dropped), (SlowConsumerPolicy::Close, Delivered::ClosedSlowConsumer)]
    {
        let settings = Settings { max_out_queue: 250, slow_consumer: policy, ..Settings::default() };
        let (mut session, now) = open(&settings);
        assert_eq!(session.deliver(&frame, &settings, now), Delivered::Queued);
        assert_eq!(session.deliver(&frame, &settings, now), Delivered::Queued);
        assert_eq!(session.queued(), 204);
        assert_eq!(session.deliver(&frame, &settings, now), expected, "{policy:?}");
        if policy == SlowConsumerPolicy::Close {
            // The Close goes out behind what was queued, whatever the limit.
            let out = written(&mut session);
            assert_eq!(out.len(), 204 + 2 + 2 + "slow consumer: output queue full".len());
            assert!(!session.is_open());
            assert_eq!(session.deliver(&frame, &settings, now), Delivered::NotOpen);
            assert_eq!(session.take_close_status(now).map(|s| s.code), Some(CloseCode::POLICY_VIOLATION));
        } else {
            assert_eq!(written(&mut session).len(), 204, "the dropped one never went in");
            assert_eq!(session.deliver(&frame, &settings, now), Delivered::Queued);
        }
    }
}

#[test]
fn output_over_its_limit_pauses_reading_and_refuses_other_sends() {
    let settings = Settings { max_out_queue: 100, ..Settings::default() };
    let (mut session, _) = open(&settings);
    let text = "y".repeat(120);
    // The session whose event is handled may always answer: its reading pauses instead.
    session.send(usize::MAX, |c| c.send_text(&text)).unwrap();
    assert_eq!(session.check_backpressure(&settings), (true, false));
    assert!(!session.wants_read());
    assert_eq!(session.send(settings.max_out_queue, |c| c.send_text("z")), Err(SendRefusal::Backpressure));
    written(&mut session);
    assert_eq!(session.check_backpressure(&settings), (false, true), "resumed once written");
    assert!(session.wants_read());
    assert_eq!(session.send(settings.max_out_queue, |c| c.send_text("z")), Ok(()));
}

#[test]
fn a_refused_connection_answers_then_ends() {
    let settings = Settings::default();
    let now = crate::test_clock();
    let mut session: Session<()> = Session::refused(
        PEER.parse().unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
        "too many connections",
        &settings,
        now,
    );
    assert!(!session.wants_read());
    assert_eq!(status_line(&written(&mut session)), "HTTP/1.1 503 Service Unavailable");
    assert!(session.is_finished());
    assert_eq!(session.handle_timeout(now + settings.linger_timeout), Expiry::Over);
}

#[test]
fn a_drain_closes_with_1001_after_what_was_queued() {
    let settings = Settings::default();
    let (mut session, t0) = open(&settings);
    let frame: SharedFrame = vec![0x81, 0x04, b'l', b'a', b's', b't'].into();
    assert_eq!(session.deliver(&frame, &settings, t0), Delivered::Queued);
    session.close(CloseCode::GOING_AWAY, "server shutting down", t0).unwrap();
    let out = written(&mut session);
    assert_eq!(&out[..6], &frame[..], "the publication first");
    let (opcode, payload) = server_frame(&out[6..]);
    assert_eq!((opcode, &payload[..2]), (0x8, &1001u16.to_be_bytes()[..]));
    // The peer answers within the close timeout: a clean end, no linger.
    let later = t0 + Duration::from_secs(1);
    assert_eq!(read(&mut session, client_close(1001), &settings, later), []);
    assert!(session.is_finished() && session.closed_cleanly());
    assert_eq!(session.take_close_status(later).map(|s| s.code), Some(CloseCode::GOING_AWAY));
}

#[test]
fn a_close_set_for_later_comes_at_its_deadline_and_can_be_moved() {
    let protocol = crate::proto::Config { keepalive: None, ..crate::proto::Config::default() };
    let settings = Settings { protocol: Arc::new(protocol), ..Settings::default() };
    let (mut session, now) = open(&settings);
    assert_eq!(session.poll_timeout(), None);
    session.close_at(Some(now + Duration::from_secs(60)), CloseCode(4001), "token expired");
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(60)));
    // Moved later (a refresh): nothing happens at the old deadline.
    session.close_at(Some(now + Duration::from_secs(90)), CloseCode(4001), "token expired");
    assert_eq!(session.handle_timeout(now + Duration::from_secs(60)), Expiry::Pending);
    assert!(written(&mut session).is_empty());
    assert_eq!(session.handle_timeout(now + Duration::from_secs(90)), Expiry::Ran);
    let (opcode, payload) = server_frame(&written(&mut session));
    assert_eq!((opcode, &payload[..2]), (0x8, &4001u16.to_be_bytes()[..]));
    assert_eq!(&payload[2..], b"token expired");
    assert!(!session.is_open());
    // Cleared: never comes.
    let (mut other, now) = open(&settings);
    other.close_at(Some(now + Duration::from_secs(5)), CloseCode(4001), "no token");
    other.close_at(None, CloseCode(4001), "no token");
    assert_eq!(other.poll_timeout(), None);
    assert_eq!(other.handle_timeout(now + Duration::from_secs(5)), Expiry::Pending);
    assert!(other.is_open());
}
