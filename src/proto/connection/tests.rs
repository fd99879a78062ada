//! What the burst state costs, when it goes, and its event queue.

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
    let text = |s: &str| Event::Text(s.into());
    queue.push_back(text("a"));
    queue.push_back(text("b"));
    assert_eq!(queue.pop_front(), Some(text("a")));
    queue.push_back(text("c"));
    assert_eq!(queue.pop_front(), Some(text("b")));
    assert_eq!(queue.pop_front(), Some(text("c")));
    assert!(queue.is_empty());
    assert_eq!(queue.pop_front(), None);
}
