//! Property tests: message sequences survive encode → split at every byte
//! offset → decode, in both roles; the incremental UTF-8 validator agrees
//! with `std::str::from_utf8` for every split of arbitrary bytes.

#[path = "support/memory.rs"]
mod memory;

use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::proto::utf8::Utf8Validator;
use ferrows::proto::{Config, Connection, ControlPayload, Event, Role};
use memory::*;
use proptest::prelude::*;

/// One item of a test conversation.
#[derive(Debug, Clone)]
enum Item {
    /// A data message, cut into fragments at the given sizes, with an
    /// optional Ping slipped in after the first fragment.
    Data {
        text: bool,
        payload: Vec<u8>,
        cuts: Vec<usize>,
        ping_inside: Option<Vec<u8>>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    let control = proptest::collection::vec(any::<u8>(), 0..=125);
    prop_oneof![
        4 => (
            ".{0,120}",
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
            proptest::collection::vec(0usize..80, 0..4),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=125)),
        )
            .prop_map(|(text, bytes, is_text, cuts, ping_inside)| {
                let payload = if is_text { text.into_bytes() } else { bytes };
                Item::Data { text: is_text, payload, cuts, ping_inside }
            }),
        1 => control.clone().prop_map(Item::Ping),
        1 => control.prop_map(Item::Pong),
    ]
}

/// Encodes the conversation as `sender` would and lists the events the receiver must report.
fn encode(items: &[Item], sender: Role) -> (Vec<u8>, Vec<Event>) {
    let mut masks = counting_masks();
    let mut mask = || if sender == Role::Client { Some(masks()) } else { None };
    let mut bytes = Vec::new();
    let mut events = Vec::new();
    for item in items {
        match item {
            Item::Data { text, payload, cuts, ping_inside } => {
                let mut pieces = Vec::new();
                let mut rest = &payload[..];
                for &cut in cuts {
                    let (head, tail) = rest.split_at(cut.min(rest.len()));
                    pieces.push(head);
                    rest = tail;
                }
                pieces.push(rest);
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    encode_frame(i == last, 0, opcode, piece, mask(), &mut bytes);
                    if let (0, Some(ping), false) = (i, ping_inside, i == last) {
                        encode_frame(true, 0, OpCode::Ping, ping, mask(), &mut bytes);
                        events.push(Event::Ping(ControlPayload::new(ping).unwrap()));
                    }
                }
                events.push(if *text {
                    Event::Text(String::from_utf8(payload.clone()).unwrap())
                } else {
                    Event::Binary(payload.clone())
                });
            }
            Item::Ping(p) => {
                encode_frame(true, 0, OpCode::Ping, p, mask(), &mut bytes);
                events.push(Event::Ping(ControlPayload::new(p).unwrap()));
            }
            Item::Pong(p) => {
                encode_frame(true, 0, OpCode::Pong, p, mask(), &mut bytes);
                events.push(Event::Pong(ControlPayload::new(p).unwrap()));
            }
        }
    }
    (bytes, events)
}

fn receiver(role: Role, clock: &Clock) -> Connection {
    match role {
        Role::Server => Connection::server(Config::default(), clock.now()),
        Role::Client => Connection::client(Config::default(), clock.now(), counting_masks()),
    }
}

/// Feeds `bytes` cut at `cuts` (sorted offsets) and returns every event.
fn decode_in_chunks(bytes: &[u8], cuts: &[usize], role: Role) -> Vec<Event> {
    let clock = Clock::new();
    let mut conn = receiver(role, &clock);
    let mut events = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let mut chunk = bytes[start..end].to_vec();
        conn.handle_read(&mut chunk, clock.now()).expect("valid stream");
        events.extend(drain_events(&mut conn));
        start = end;
    }
    // Pongs answering the pings wait in the output until it is taken.
    let mut pongs = Vec::new();
    conn.poll_transmit(&mut pongs);
    assert_eq!(conn.buffered_bytes(), 0, "nothing held once every message and every output is out");
    events
}

fn other(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_conversation_survives_a_split_at_every_offset(
        items in proptest::collection::vec(item(), 1..5),
        sender_is_client in any::<bool>(),
    ) {
        let sender = if sender_is_client { Role::Client } else { Role::Server };
        let (bytes, expected) = encode(&items, sender);
        for split in 0..=bytes.len() {
            let events = decode_in_chunks(&bytes, &[split], other(sender));
            prop_assert_eq!(&events, &expected, "split at {}", split);
        }
    }

    #[test]
    fn any_conversation_survives_random_chunking(
        items in proptest::collection::vec(item(), 1..8),
        sender_is_client in any::<bool>(),
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let sender = if sender_is_client { Role::Client } else { Role::Server };
        let (bytes, expected) = encode(&items, sender);
        let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(bytes.len() + 1)).collect();
        offsets.sort_unstable();
        prop_assert_eq!(decode_in_chunks(&bytes, &offsets, other(sender)), expected);
    }

    #[test]
    fn long_messages_use_every_length_form(
        len in prop_oneof![Just(125usize), Just(126), Just(65535), Just(65536), 66000usize..70000],
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        sender_is_client in any::<bool>(),
    ) {
        let sender = if sender_is_client { Role::Client } else { Role::Server };
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let items = [Item::Data { text: false, payload, cuts: vec![], ping_inside: None }];
        let (bytes, expected) = encode(&items, sender);
        let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(bytes.len() + 1)).collect();
        offsets.sort_unstable();
        prop_assert_eq!(decode_in_chunks(&bytes, &offsets, other(sender)), expected);
    }
}

/// Bytes that are often UTF-8 and often almost UTF-8.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        ".{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
        (".{0,20}", any::<prop::sample::Index>(), any::<u8>()).prop_map(|(s, at, byte)| {
            let mut bytes = s.into_bytes();
            let i = at.index(bytes.len() + 1);
            bytes.insert(i, byte);
            bytes
        }),
        (".{1,20}", any::<prop::sample::Index>()).prop_map(|(s, at)| {
            let mut bytes = s.into_bytes();
            let i = at.index(bytes.len());
            bytes.truncate(i);
            bytes
        }),
    ]
}

fn validate_split(bytes: &[u8], cuts: &[usize]) -> (bool, String) {
    let mut v = Utf8Validator::new();
    let mut out = String::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        if v.push(&bytes[start..end], &mut out).is_err() {
            return (false, out);
        }
        start = end;
    }
    (v.finish().is_ok(), out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn utf8_validator_agrees_with_std_for_every_split(bytes in utf8ish()) {
        let std_ok = std::str::from_utf8(&bytes).is_ok();
        for split in 0..=bytes.len() {
            let (ok, out) = validate_split(&bytes, &[split]);
            prop_assert_eq!(ok, std_ok, "split at {}", split);
            if ok {
                prop_assert_eq!(out.as_bytes(), &bytes[..]);
            }
        }
        let every: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(validate_split(&bytes, &every).0, std_ok);
    }

    #[test]
    fn utf8_validator_fails_no_later_than_the_first_bad_byte(bytes in utf8ish()) {
        // std reports the invalid sequence; the byte that shows it is invalid is at
        // most one past it, so no longer prefix may be accepted.
        if let Err(e) = std::str::from_utf8(&bytes) {
            if let Some(bad) = e.error_len() {
                let end = (e.valid_up_to() + bad + 1).min(bytes.len());
                let mut v = Utf8Validator::new();
                prop_assert!(v.feed(&bytes[..end]).is_err(), "accepted {:x?}", &bytes[..end]);
            }
        }
    }
}
