//! The connection state machine, driven in memory with a virtual clock.
//! Each test names the RFC 6455 section whose rule it checks.

#[path = "support/memory.rs"]
mod memory;

use std::time::Duration;

use ferrows::proto::frame::OpCode;
use ferrows::proto::{CloseCode, CloseFrame, Config, Connection, ControlPayload, Event, ProtocolError, UsageError};
use memory::*;

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// The close code the server sent, read back as a client.
fn sent_close_code(conn: &mut Connection, clock: &Clock) -> Option<CloseCode> {
    let out = transmit(conn);
    decode_as_client(&out, clock).into_iter().find_map(|e| match e {
        Event::Close(frame) => Some(frame.map_or(CloseCode::NO_STATUS, |f| f.code)),
        _ => None,
    })
}

fn assert_fails_with(bytes: &[u8], expected: ProtocolError, code: CloseCode) {
    let clock = Clock::new();
    let mut s = server(&clock);
    let (result, _) = feed(&mut s, bytes, clock.now());
    assert_eq!(result, Err(expected.clone()));
    assert!(s.is_closed());
    assert!(!s.wants_read());
    assert_eq!(s.protocol_error(), Some(&expected));
    assert_eq!(sent_close_code(&mut s, &clock), Some(code));
}

#[test]
fn rfc6455_5_6_text_and_binary_messages_are_delivered() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Text, "héllo".as_bytes());
    bytes.extend(client_frame(true, OpCode::Binary, &[0, 1, 2, 255]));
    bytes.extend(client_frame(true, OpCode::Text, b""));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    assert_eq!(
        events,
        vec![Event::Text("héllo".into()), Event::Binary(vec![0, 1, 2, 255]), Event::Text(String::new())]
    );
    assert!(!s.wants_write());
}

#[test]
fn rfc6455_5_4_fragments_reassemble_with_control_frames_between() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(false, OpCode::Text, b"frag");
    bytes.extend(client_frame(true, OpCode::Ping, b"p1"));
    bytes.extend(client_frame(false, OpCode::Continuation, b"men"));
    bytes.extend(client_frame(true, OpCode::Pong, b"unsolicited"));
    bytes.extend(client_frame(true, OpCode::Continuation, b"ted"));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    assert_eq!(
        events,
        vec![
            Event::Ping(ControlPayload::new(b"p1").unwrap()),
            Event::Pong(ControlPayload::new(b"unsolicited").unwrap()),
            Event::Text("fragmented".into()),
        ]
    );
    assert_eq!(decode_as_client(&transmit(&mut s), &clock), vec![Event::Pong(ControlPayload::new(b"p1").unwrap())]);
}

#[test]
fn rfc6455_5_4_continuation_without_a_message_is_a_protocol_error() {
    assert_fails_with(
        &client_frame(true, OpCode::Continuation, b"x"),
        ProtocolError::UnexpectedContinuation,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn rfc6455_5_4_a_new_message_inside_a_fragmented_one_is_a_protocol_error() {
    let mut bytes = client_frame(false, OpCode::Binary, b"a");
    bytes.extend(client_frame(true, OpCode::Text, b"b"));
    assert_fails_with(&bytes, ProtocolError::ExpectedContinuation, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn rfc6455_5_1_server_requires_masked_frames() {
    assert_fails_with(
        &server_frame(true, OpCode::Text, b"hi"),
        ProtocolError::UnmaskedFrame,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn rfc6455_5_1_client_refuses_masked_frames() {
    let clock = Clock::new();
    let mut c = client(&clock);
    let (result, _) = feed(&mut c, &client_frame(true, OpCode::Text, b"hi"), clock.now());
    assert_eq!(result, Err(ProtocolError::MaskedFrame));
    // The client's own Close is masked, as every client frame must be.
    let out = transmit(&mut c);
    assert_eq!(out[0], 0x88);
    assert_eq!(out[1] & 0x80, 0x80);
}

#[test]
fn rfc6455_5_2_reserved_bits_and_opcodes_are_protocol_errors() {
    let mut rsv = client_frame(true, OpCode::Text, b"x");
    rsv[0] |= 0x40;
    assert_fails_with(&rsv, ProtocolError::ReservedBits(0b100), CloseCode::PROTOCOL_ERROR);
    let mut op = client_frame(true, OpCode::Text, b"x");
    op[0] = 0x83;
    assert_fails_with(&op, ProtocolError::ReservedOpcode(3), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn rfc6455_5_5_control_frames_over_125_bytes_are_protocol_errors() {
    let bytes = client_frame(true, OpCode::Ping, &[0u8; 126]);
    assert_fails_with(&bytes, ProtocolError::ControlFrameTooLong(126), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn rfc6455_5_5_fragmented_control_frames_are_protocol_errors() {
    let bytes = client_frame(false, OpCode::Ping, b"x");
    assert_fails_with(&bytes, ProtocolError::FragmentedControlFrame, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn rfc6455_5_5_2_every_ping_gets_a_pong_with_its_exact_bytes() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Ping, b"first");
    bytes.extend(client_frame(true, OpCode::Ping, &[0xff, 0x00, 0x80]));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    assert_eq!(events.len(), 2);
    assert!(s.wants_write());
    let mut expected = server_frame(true, OpCode::Pong, b"first");
    expected.extend(server_frame(true, OpCode::Pong, &[0xff, 0x00, 0x80]));
    assert_eq!(transmit(&mut s), expected);
    assert!(!s.wants_write());
}

#[test]
fn rfc6455_5_5_3_under_a_ping_flood_only_the_latest_is_answered() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let bytes: Vec<u8> = (0..100u8).flat_map(|i| client_frame(true, OpCode::Ping, &[i])).collect();
    feed(&mut s, &bytes, clock.now()).0.unwrap();
    let pongs: Vec<Event> = decode_as_client(&transmit(&mut s), &clock);
    // The first ones one for one, then the most recent: the output stays bounded.
    let mut expected: Vec<Event> = (0..16u8).map(|i| Event::Pong(ControlPayload::new(&[i]).unwrap())).collect();
    expected.push(Event::Pong(ControlPayload::new(&[99]).unwrap()));
    assert_eq!(pongs, expected);
}

#[test]
fn rfc6455_5_5_2_pong_goes_out_before_a_message_completed_after_the_ping() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(false, OpCode::Text, b"frag");
    bytes.extend(client_frame(true, OpCode::Ping, b"p"));
    bytes.extend(client_frame(true, OpCode::Continuation, b"ment"));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    for event in events {
        if let Event::Text(text) = event {
            s.send_text(&text).unwrap();
        }
    }
    let mut expected = server_frame(true, OpCode::Pong, b"p");
    expected.extend(server_frame(true, OpCode::Text, b"fragment"));
    assert_eq!(transmit(&mut s), expected);
}

#[test]
fn rfc6455_7_1_7_replies_to_messages_before_a_violation_precede_the_close() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Text, b"hello");
    let mut bad = client_frame(true, OpCode::Text, b"x");
    bad[0] |= 0x20; // RSV2
    bytes.extend(bad);
    bytes.extend(client_frame(true, OpCode::Ping, b"never answered"));
    let mut data = bytes.clone();
    assert_eq!(s.handle_read(&mut data, clock.now()), Err(ProtocolError::ReservedBits(0b010)));
    assert!(!s.wants_read());
    assert!(!s.is_closed(), "the failure waits until the earlier events are handled");
    assert_eq!(s.poll_event(), Some(Event::Text("hello".into())));
    s.send_text("hello").unwrap();
    assert_eq!(s.poll_event(), None);
    assert!(s.is_closed());
    let events = decode_as_client(&transmit(&mut s), &clock);
    assert_eq!(events[0], Event::Text("hello".into()));
    assert!(matches!(&events[1], Event::Close(Some(f)) if f.code == CloseCode::PROTOCOL_ERROR));
    assert_eq!(events.len(), 2);
}

#[test]
fn rfc6455_5_5_1_close_is_echoed_with_its_code_and_reading_stops() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Close, &close_payload(1001, "going"));
    // RFC 6455 §5.5.1: data after Close is ignored; a second Close gets no second answer.
    bytes.extend(client_frame(true, OpCode::Text, b"late"));
    bytes.extend(client_frame(true, OpCode::Close, &close_payload(1000, "")));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    assert_eq!(events, vec![Event::Close(Some(CloseFrame { code: CloseCode::GOING_AWAY, reason: "going".into() }))]);
    assert!(s.is_closed());
    assert!(!s.wants_read());
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Close, &close_payload(1001, "")));
    let (result, events) = feed(&mut s, &client_frame(true, OpCode::Close, &[]), clock.now());
    assert_eq!((result, events), (Ok(()), vec![]));
    assert!(transmit(&mut s).is_empty());
    assert_eq!(s.send_text("too late"), Err(UsageError::Closed));
}

#[test]
fn rfc6455_5_5_1_replies_to_messages_before_the_peers_close_precede_the_echo() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Text, b"last words");
    bytes.extend(client_frame(true, OpCode::Close, &close_payload(1000, "")));
    let mut data = bytes.clone();
    s.handle_read(&mut data, clock.now()).unwrap();
    assert!(!s.wants_read());
    assert_eq!(s.poll_event(), Some(Event::Text("last words".into())));
    assert!(s.can_send() && !s.is_closed());
    s.send_text("last words").unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Close(_))));
    assert!(s.is_closed());
    assert_eq!(s.send_text("too late"), Err(UsageError::Closed));
    let mut expected = server_frame(true, OpCode::Text, b"last words");
    expected.extend(server_frame(true, OpCode::Close, &close_payload(1000, "")));
    assert_eq!(transmit(&mut s), expected);
}

#[test]
fn rfc6455_5_5_1_empty_close_is_answered_with_an_empty_close() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let (result, events) = feed(&mut s, &client_frame(true, OpCode::Close, &[]), clock.now());
    result.unwrap();
    assert_eq!(events, vec![Event::Close(None)]);
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Close, &[]));
}

#[test]
fn rfc6455_5_5_1_pending_pong_goes_before_the_close_echo() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Ping, b"p");
    bytes.extend(client_frame(true, OpCode::Close, &close_payload(1000, "")));
    feed(&mut s, &bytes, clock.now()).0.unwrap();
    let mut expected = server_frame(true, OpCode::Pong, b"p");
    expected.extend(server_frame(true, OpCode::Close, &close_payload(1000, "")));
    assert_eq!(transmit(&mut s), expected);
}

#[test]
fn rfc6455_7_4_close_codes_a_peer_may_not_send_are_protocol_errors() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let bytes = client_frame(true, OpCode::Close, &close_payload(code, ""));
        assert_fails_with(&bytes, ProtocolError::InvalidCloseCode(code), CloseCode::PROTOCOL_ERROR);
    }
    // 1012–1014 were registered with IANA after RFC 6455 (§7.4.2 leaves 1000–2999 to its registry).
    for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
        let clock = Clock::new();
        let mut s = server(&clock);
        let (result, _) = feed(&mut s, &client_frame(true, OpCode::Close, &close_payload(code, "")), clock.now());
        assert_eq!(result, Ok(()), "code {code}");
        assert_eq!(sent_close_code(&mut s, &clock), Some(CloseCode(code)));
    }
}

#[test]
fn rfc6455_5_5_1_one_byte_close_payload_is_a_protocol_error() {
    assert_fails_with(
        &client_frame(true, OpCode::Close, &[0x03]),
        ProtocolError::CloseFrameTooShort,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn rfc6455_5_5_1_close_reason_must_be_utf8() {
    let mut payload = close_payload(1000, "");
    payload.extend([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80]);
    assert_fails_with(
        &client_frame(true, OpCode::Close, &payload),
        ProtocolError::InvalidUtf8,
        CloseCode::INVALID_PAYLOAD,
    );
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_inside_a_frame_before_it_ends() {
    let clock = Clock::new();
    let mut s = server(&clock);
    // A 100-byte text frame whose first 20 bytes already hold an impossible sequence.
    let mut payload = b"valid start ".to_vec();
    payload.extend([0xf4, 0x90, 0x80, 0x80]);
    payload.resize(100, b'x');
    let bytes = client_frame(true, OpCode::Text, &payload);
    let (result, _) = feed(&mut s, &bytes[..6 + 20], clock.now());
    assert_eq!(result, Err(ProtocolError::InvalidUtf8));
    assert_eq!(sent_close_code(&mut s, &clock), Some(CloseCode::INVALID_PAYLOAD));
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_in_the_fragment_that_shows_it() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let (result, _) = feed(&mut s, &client_frame(false, OpCode::Text, "κόσμε".as_bytes()), clock.now());
    result.unwrap();
    let (result, _) = feed(&mut s, &client_frame(false, OpCode::Continuation, &[0xf4, 0x90, 0x80, 0x80]), clock.now());
    assert_eq!(result, Err(ProtocolError::InvalidUtf8));
}

#[test]
fn rfc6455_8_1_text_ending_inside_a_character_is_invalid() {
    let mut bytes = client_frame(false, OpCode::Text, &[0xe2, 0x82]);
    bytes.extend(client_frame(true, OpCode::Continuation, &[]));
    assert_fails_with(&bytes, ProtocolError::InvalidUtf8, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn rfc6455_8_1_characters_split_across_fragments_are_valid() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let text = "€𝄞".as_bytes();
    let mut bytes = Vec::new();
    for (i, byte) in text.iter().enumerate() {
        let op = if i == 0 { OpCode::Text } else { OpCode::Continuation };
        bytes.extend(client_frame(i == text.len() - 1, op, &[*byte]));
    }
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    assert_eq!(events, vec![Event::Text("€𝄞".into())]);
}

#[test]
fn rfc6455_10_4_frame_over_the_limit_fails_with_1009_at_its_header() {
    let mut config = Config::default();
    config.max_frame_size = 1000;
    let clock = Clock::new();
    let mut s = server_with(config, &clock);
    let bytes = client_frame(true, OpCode::Binary, &[0u8; 1001]);
    // Only the header has arrived: the declared length alone decides.
    let (result, _) = feed(&mut s, &bytes[..8], clock.now());
    assert_eq!(result, Err(ProtocolError::FrameTooLarge { len: 1001, max: 1000 }));
    assert_eq!(sent_close_code(&mut s, &clock), Some(CloseCode::MESSAGE_TOO_BIG));
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn rfc6455_10_4_message_over_the_limit_fails_with_1009() {
    let mut config = Config::default();
    config.max_message_size = 100;
    let clock = Clock::new();
    let mut s = server_with(config, &clock);
    let mut bytes = client_frame(false, OpCode::Binary, &[1u8; 60]);
    bytes.extend(client_frame(true, OpCode::Continuation, &[2u8; 41]));
    let (result, _) = feed(&mut s, &bytes, clock.now());
    assert_eq!(result, Err(ProtocolError::MessageTooLarge { max: 100 }));
    assert_eq!(sent_close_code(&mut s, &clock), Some(CloseCode::MESSAGE_TOO_BIG));
    // Exactly at the limit is fine.
    let mut s = server_with(s.config().clone(), &clock);
    let mut bytes = client_frame(false, OpCode::Binary, &[1u8; 60]);
    bytes.extend(client_frame(true, OpCode::Continuation, &[2u8; 40]));
    assert_eq!(feed(&mut s, &bytes, clock.now()).0, Ok(()));
}

#[test]
fn rfc6455_10_4_too_many_fragments_fail_with_1009() {
    let mut config = Config::default();
    config.max_fragments = 3;
    let clock = Clock::new();
    let mut s = server_with(config, &clock);
    let mut bytes = client_frame(false, OpCode::Text, b"");
    for _ in 0..3 {
        bytes.extend(client_frame(false, OpCode::Continuation, b""));
    }
    let (result, _) = feed(&mut s, &bytes, clock.now());
    assert_eq!(result, Err(ProtocolError::TooManyFragments { max: 3 }));
    assert_eq!(sent_close_code(&mut s, &clock), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn message_buffer_never_holds_more_than_the_limit() {
    let mut config = Config::default();
    config.max_message_size = 1000;
    let clock = Clock::new();
    let mut s = server_with(config, &clock);
    let bytes = client_frame(true, OpCode::Binary, &[7u8; 1000]);
    for chunk in bytes[..bytes.len() - 1].chunks(3) {
        feed(&mut s, chunk, clock.now()).0.unwrap();
        assert!(s.buffered_bytes() <= 1000, "{}", s.buffered_bytes());
    }
    let (result, events) = feed(&mut s, &bytes[bytes.len() - 1..], clock.now());
    result.unwrap();
    assert_eq!(events, vec![Event::Binary(vec![7u8; 1000])]);
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn events_before_a_violation_are_kept() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let mut bytes = client_frame(true, OpCode::Text, b"before");
    bytes.extend(server_frame(true, OpCode::Text, b"unmasked"));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    assert_eq!(result, Err(ProtocolError::UnmaskedFrame));
    assert_eq!(events, vec![Event::Text("before".into())]);
}

#[test]
fn rfc6455_7_1_7_after_a_failure_input_is_ignored() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let _ = feed(&mut s, &server_frame(true, OpCode::Text, b"x"), clock.now());
    let (result, events) = feed(&mut s, &client_frame(true, OpCode::Text, b"more"), clock.now());
    assert_eq!((result, events), (Ok(()), vec![]));
}

#[test]
fn rfc6455_7_1_2_local_close_keeps_reading_until_the_peer_answers() {
    let mut clock = Clock::new();
    let mut s = server(&clock);
    s.send_close(CloseCode::NORMAL, "done", clock.now()).unwrap();
    assert_eq!(s.send_close(CloseCode::NORMAL, "again", clock.now()), Err(UsageError::Closed));
    assert_eq!(s.send_binary(b"x"), Err(UsageError::Closed));
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Close, &close_payload(1000, "done")));
    assert!(s.wants_read() && !s.is_closed());
    clock.advance(Duration::from_secs(1));
    let mut bytes = client_frame(true, OpCode::Text, b"in flight");
    // A Ping after our Close gets no Pong: nothing may follow a Close.
    bytes.extend(client_frame(true, OpCode::Ping, b""));
    bytes.extend(client_frame(true, OpCode::Close, &close_payload(1000, "")));
    let (result, events) = feed(&mut s, &bytes, clock.now());
    result.unwrap();
    assert_eq!(events[0], Event::Text("in flight".into()));
    assert_eq!(events[2], Event::Close(Some(CloseFrame { code: CloseCode::NORMAL, reason: String::new() })));
    assert!(s.is_closed());
    assert!(transmit(&mut s).is_empty(), "no second Close, no Pong");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn rfc6455_7_1_1_close_deadline_ends_an_unanswered_close() {
    let mut clock = Clock::new();
    let mut s = server(&clock);
    s.send_close(CloseCode::GOING_AWAY, "", clock.now()).unwrap();
    let deadline = clock.now() + Duration::from_secs(5);
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(clock.advance(Duration::from_millis(4999)));
    assert!(!s.is_closed());
    s.handle_timeout(clock.advance(Duration::from_millis(1)));
    assert!(s.is_closed());
    assert!(!s.wants_read());
}

#[test]
fn keepalive_pings_a_silent_peer_and_gives_up_when_it_stays_silent() {
    let mut clock = Clock::new();
    let mut s = server(&clock);
    let start = clock.now();
    assert_eq!(s.poll_timeout(), Some(start + Duration::from_secs(30)));
    // Traffic pushes the ping back.
    clock.advance(Duration::from_secs(20));
    feed(&mut s, &client_frame(true, OpCode::Text, b"hi"), clock.now()).0.unwrap();
    assert_eq!(s.poll_timeout(), Some(clock.now() + Duration::from_secs(30)));
    s.handle_timeout(clock.advance(Duration::from_secs(29)));
    assert!(!s.wants_write());
    s.handle_timeout(clock.advance(Duration::from_secs(1)));
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Ping, b""));
    assert_eq!(s.poll_timeout(), Some(clock.now() + Duration::from_secs(30)));
    s.handle_timeout(clock.advance(Duration::from_secs(30)));
    assert!(s.is_closed());
    assert!(s.timed_out());
}

#[test]
fn keepalive_is_satisfied_by_a_pong() {
    let mut clock = Clock::new();
    let mut s = server(&clock);
    s.handle_timeout(clock.advance(Duration::from_secs(30)));
    assert!(s.wants_write());
    transmit(&mut s);
    clock.advance(Duration::from_secs(10));
    feed(&mut s, &client_frame(true, OpCode::Pong, b""), clock.now()).0.unwrap();
    s.handle_timeout(clock.advance(Duration::from_secs(25)));
    assert!(!s.is_closed());
    assert_eq!(s.poll_timeout(), Some(clock.now() + Duration::from_secs(5)));
}

#[test]
fn keepalive_can_be_turned_off() {
    let mut config = Config::default();
    config.keepalive = None;
    let mut clock = Clock::new();
    let mut s = server_with(config, &clock);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(clock.advance(Duration::from_secs(3600)));
    assert!(!s.wants_write() && !s.is_closed());
}

#[test]
fn idle_timeout_closes_with_1001_when_no_message_arrives() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_secs(60));
    let mut clock = Clock::new();
    let mut s = server_with(config, &clock);
    // Keepalive pings at 30 s; the peer's pong keeps the connection alive but is not a message.
    s.handle_timeout(clock.advance(Duration::from_secs(30)));
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Ping, b""));
    feed(&mut s, &client_frame(true, OpCode::Pong, b""), clock.now()).0.unwrap();
    // A message at 40 s moves the idle deadline to 100 s.
    clock.advance(Duration::from_secs(10));
    feed(&mut s, &client_frame(true, OpCode::Text, b"hi"), clock.now()).0.unwrap();
    while s.poll_event().is_some() {}
    s.handle_timeout(clock.advance(Duration::from_secs(59)));
    assert!(s.can_send(), "closed before the idle timeout");
    transmit(&mut s);
    s.handle_timeout(clock.advance(Duration::from_secs(1)));
    assert!(!s.can_send());
    let mut close = 1001u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"idle timeout");
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Close, &close));
}

#[test]
fn rfc6455_5_3_client_masks_every_frame_with_a_fresh_key() {
    let clock = Clock::new();
    let mut c = client(&clock);
    c.send_text("abc").unwrap();
    c.send_text("abc").unwrap();
    let out = transmit(&mut c);
    assert_eq!(out.len(), 2 * (2 + 4 + 3));
    let (first, second) = out.split_at(9);
    assert_eq!(first[1], 0x83);
    assert_ne!(first[2..6], second[2..6], "each frame has its own key");
    let mut s = server(&clock);
    let (result, events) = feed(&mut s, &out, clock.now());
    result.unwrap();
    assert_eq!(events, vec![Event::Text("abc".into()), Event::Text("abc".into())]);
}

#[test]
fn usage_errors_for_oversized_control_payloads_and_unsendable_codes() {
    let clock = Clock::new();
    let mut s = server(&clock);
    assert_eq!(s.send_ping(&[0; 126]), Err(UsageError::ControlPayloadTooLong(126)));
    assert_eq!(s.send_close(CloseCode::NO_STATUS, "", clock.now()), Err(UsageError::UnsendableCloseCode(1005)));
    assert_eq!(
        s.send_close(CloseCode::NORMAL, &"x".repeat(124), clock.now()),
        Err(UsageError::CloseReasonTooLong(124))
    );
    assert!(s.can_send());
    s.send_pong(b"heartbeat").unwrap();
    assert_eq!(transmit(&mut s), server_frame(true, OpCode::Pong, b"heartbeat"));
}

#[test]
fn an_idle_connection_holds_no_buffers() {
    let clock = Clock::new();
    let mut s = server(&clock);
    let bytes = client_frame(true, OpCode::Text, &[b'a'; 4096]);
    feed(&mut s, &bytes, clock.now()).0.unwrap();
    assert_eq!(s.buffered_bytes(), 0);
    // A header cut short is kept inline, not on the heap.
    feed(&mut s, &bytes[..3], clock.now()).0.unwrap();
    assert_eq!(s.buffered_bytes(), 0);
}
