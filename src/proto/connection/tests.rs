//! What the burst state costs, when it goes, its event queue, and messages read in place.

use super::*;

fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame::encode_frame(fin, 0, opcode, payload, Some([1, 2, 3, 4]), &mut bytes);
    bytes
}

#[test]
fn an_idle_connection_is_a_few_words() {
    // Every open socket of a server holds one: a regression here costs
    // memory on every idle connection.
    assert!(std::mem::size_of::<Connection>() <= 80, "{}", std::mem::size_of::<Connection>());
}

#[test]
fn the_burst_state_lives_until_everything_is_polled() {
    let now = crate::test_clock();
    let mut conn = Connection::server(Config::default(), now);
    let mut out = Vec::new();
    // A message cut in two keeps its state between the reads.
    conn.handle_read(&mut client_frame(false, OpCode::Text, b"he"), now).unwrap();
    assert_eq!(conn.poll_event(), None);
    assert!(conn.burst.is_some());
    let mut bytes = client_frame(true, OpCode::Continuation, b"llo");
    bytes.extend(client_frame(true, OpCode::Ping, b"p"));
    conn.handle_read(&mut bytes, now).unwrap();
    assert_eq!(conn.poll_event(), Some(Event::Text("hello".into())));
    conn.send_text("hello").unwrap();
    assert!(conn.poll_transmit(&mut out));
    assert!(conn.burst.is_some(), "the Ping's event is not polled yet");
    assert!(matches!(conn.poll_event(), Some(Event::Ping(_))));
    assert_eq!(conn.poll_event(), None);
    assert!(conn.burst.is_none());
    assert!(!conn.poll_transmit(&mut out));
    // Output alone (a keepalive Ping) lives until it is taken.
    conn.handle_timeout(now + std::time::Duration::from_secs(30));
    assert!(conn.wants_write());
    assert!(conn.poll_transmit(&mut out));
    assert!(conn.burst.is_none());
}

#[test]
fn the_event_queue_keeps_its_order() {
    let mut queue = burst::EventQueue::default();
    let text = |s: &str| Item::Event(Box::new(Event::Text(s.into())));
    queue.push_back(text("a"));
    queue.push_back(text("b"));
    assert_eq!(queue.pop_front(), Some(text("a")));
    queue.push_back(text("c"));
    assert_eq!(queue.pop_front(), Some(text("b")));
    assert_eq!(queue.pop_front(), Some(text("c")));
    assert!(queue.is_empty());
    assert_eq!(queue.pop_front(), None);
}

#[test]
fn whole_messages_are_lent_from_the_read_others_copied() {
    let now = crate::test_clock();
    let mut conn = Connection::server(Config::default(), now);
    let mut data = client_frame(true, OpCode::Text, b"whole");
    data.extend(client_frame(true, OpCode::Ping, b"p"));
    data.extend(client_frame(true, OpCode::Binary, &[1, 2, 3]));
    data.extend(client_frame(false, OpCode::Text, b"frag"));
    data.extend(client_frame(true, OpCode::Continuation, b"ment"));
    // A whole frame cut short by the end of the read is reassembled.
    let tail = client_frame(true, OpCode::Text, b"cut short");
    data.extend(&tail[..8]);
    conn.handle_read_in_place(&mut data, now).unwrap();
    let range = data.as_ptr_range();
    let Some(Received::Text(text)) = conn.poll_event_in(&data) else { panic!() };
    assert_eq!(text, "whole");
    assert!(range.contains(&text.as_ptr()), "lent, not copied");
    assert!(matches!(conn.poll_event_in(&data), Some(Received::Event(e)) if matches!(*e, Event::Ping(_))));
    assert_eq!(conn.poll_event_in(&data), Some(Received::Binary(&[1, 2, 3][..])));
    assert_eq!(conn.poll_event_in(&data), Some(Received::Event(Box::new(Event::Text("fragment".into())))));
    assert_eq!(conn.poll_event_in(&data), None);
    let mut rest = tail[8..].to_vec();
    conn.handle_read_in_place(&mut rest, now).unwrap();
    assert_eq!(conn.poll_event_in(&rest), Some(Received::Event(Box::new(Event::Text("cut short".into())))));
    // The plain read copies what it would have lent.
    let mut data = client_frame(true, OpCode::Text, b"copied");
    conn.handle_read(&mut data, now).unwrap();
    assert_eq!(conn.poll_event(), Some(Event::Text("copied".into())));
}

#[test]
fn invalid_utf8_in_a_whole_frame_fails_after_the_messages_before_it() {
    let now = crate::test_clock();
    let mut conn = Connection::server(Config::default(), now);
    let mut data = client_frame(true, OpCode::Text, b"fine");
    data.extend(client_frame(true, OpCode::Text, b"\xff"));
    data.extend(client_frame(true, OpCode::Text, b"never seen"));
    assert_eq!(conn.handle_read_in_place(&mut data, now), Err(ProtocolError::InvalidUtf8));
    assert_eq!(conn.poll_event_in(&data), Some(Received::Text("fine")));
    assert_eq!(conn.poll_event_in(&data), None);
    let mut out = Vec::new();
    assert!(conn.poll_transmit(&mut out));
    assert_eq!([out[0], out[2], out[3]], [0x88, 0x03, 0xef], "a Close with 1007: {out:?}");
}

#[test]
fn a_pool_lends_the_burst_state_and_takes_it_back() {
    let now = crate::test_clock();
    let mut pool = BurstPool::default();
    let mut a = Connection::server(Config::default(), now);
    let mut b = Connection::server(Config::default(), now);
    a.lend(&mut pool);
    let mut data = client_frame(true, OpCode::Text, b"hi");
    a.handle_read_in_place(&mut data, now).unwrap();
    assert_eq!(a.poll_event_in(&data), Some(Received::Text("hi")));
    a.send_text("hi").unwrap();
    assert_eq!(a.poll_event_in(&data), None);
    assert!(a.burst.is_some(), "a lent state stays until given back");
    a.give_back(&mut pool);
    assert!(a.burst.is_some(), "not while output waits");
    // The driver's buffer takes the output and leaves its own (empty) in its place.
    let mut out = Vec::with_capacity(64);
    assert!(a.poll_transmit(&mut out));
    a.give_back(&mut pool);
    assert!(a.burst.is_none());
    assert_eq!(pool.len(), 1);
    // The next connection gets it, output buffer and all.
    b.lend(&mut pool);
    assert!(pool.is_empty());
    assert!(b.burst.as_ref().is_some_and(|burst| burst.out.capacity() > 0));
}

#[test]
fn a_header_cut_by_a_read_still_lends_its_payload() {
    let now = crate::test_clock();
    let mut conn = Connection::server(Config::default(), now);
    let frame = client_frame(true, OpCode::Binary, b"whole");
    conn.handle_read_in_place(&mut frame[..3].to_vec(), now).unwrap();
    assert_eq!(conn.poll_event_in(&[]), None);
    let mut rest = frame[3..].to_vec();
    conn.handle_read_in_place(&mut rest, now).unwrap();
    let Some(Received::Binary(data)) = conn.poll_event_in(&rest) else { panic!() };
    assert_eq!(data, b"whole");
    assert!(rest.as_ptr_range().contains(&data.as_ptr()), "lent, not copied");
}

#[test]
fn send_into_writes_after_what_the_connection_holds() {
    let now = crate::test_clock();
    let mut conn = Connection::server(Config::default(), now);
    let frame = |opcode, payload: &[u8]| {
        let mut bytes = Vec::new();
        frame::encode_frame(true, 0, opcode, payload, None, &mut bytes);
        bytes
    };
    // Nothing held: the frame goes straight to the end of the caller's buffer.
    let mut out = b"before".to_vec();
    conn.send_into(true, b"hi", &mut out).unwrap();
    assert_eq!(out, [&b"before"[..], &frame(OpCode::Text, b"hi")].concat());
    assert!(!conn.wants_write());
    // A Pong owed goes first.
    conn.handle_read(&mut client_frame(true, OpCode::Ping, b"p"), now).unwrap();
    assert!(matches!(conn.poll_event(), Some(Event::Ping(_))));
    let mut out = Vec::new();
    conn.send_into(false, &[7], &mut out).unwrap();
    assert_eq!(out, [frame(OpCode::Pong, b"p"), frame(OpCode::Binary, &[7])].concat());
    assert!(!conn.wants_write());
    // After our Close, nothing more.
    conn.send_close(CloseCode::NORMAL, "", now).unwrap();
    let mut out = Vec::new();
    assert_eq!(conn.send_into(true, b"late", &mut out), Err(UsageError::Closed));
    assert!(out.is_empty());
    assert!(conn.poll_transmit(&mut out));
    assert_eq!(out, frame(OpCode::Close, &[0x03, 0xe8]));
}
