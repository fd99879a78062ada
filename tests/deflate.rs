//! permessage-deflate in the connection state machine (RFC 7692), driven in
//! memory: compressed round trips in both roles and for every window size,
//! bounded inflation, corrupt data, and the RSV1 rules.
#![cfg(feature = "deflate")]

#[path = "support/memory.rs"]
mod memory;

use ferrows::proto::deflate::{DeflateConfig, DeflateParams};
use ferrows::proto::frame::{encode_frame, OpCode, RSV1};
use ferrows::proto::{CloseCode, Config, Connection, Event, ProtocolError};
use flate2::{Compress, Compression, FlushCompress};
use memory::*;

fn params(server_bits: u8, client_bits: u8, server_nct: bool, client_nct: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }
}

fn pair(p: &DeflateParams, config: Config, clock: &Clock) -> (Connection, Connection) {
    let deflate = DeflateConfig::default();
    let server = Connection::server(config.clone(), clock.now()).with_deflate(p, &deflate);
    let client = Connection::client(config, clock.now(), counting_masks()).with_deflate(p, &deflate);
    (server, client)
}

fn json_like(n: usize) -> String {
    (0..n).map(|i| format!("{{\"id\":{i},\"name\":\"user-{}\",\"active\":{}}},", i % 97, i % 2 == 0)).collect()
}

/// Raw deflate of `data` with a sync flush and the tail removed, as a peer would send it.
fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    loop {
        let taken = c.total_in() as usize;
        c.compress_vec(&data[taken..], &mut out, FlushCompress::Sync).unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn compressed_client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, RSV1, opcode, payload, Some([9, 8, 7, 6]), &mut out);
    out
}

#[test]
fn rfc7692_7_2_messages_round_trip_for_every_window_and_takeover_setting() {
    let clock = Clock::new();
    let text = json_like(400);
    let binary: Vec<u8> = text.bytes().rev().collect();
    for bits in 9..=15u8 {
        for (server_nct, client_nct) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = params(bits, 24 - bits, server_nct, client_nct);
            let (mut server, mut client) = pair(&p, Config::default(), &clock);
            for _ in 0..3 {
                client.send_text(&text).unwrap();
                client.send_binary(&binary).unwrap();
                server.send_text(&text).unwrap();
            }
            let wire = transmit(&mut client);
            assert!(wire.len() < text.len(), "client output is compressed ({} bytes)", wire.len());
            let (result, events) = feed(&mut server, &wire, clock.now());
            result.unwrap();
            assert_eq!(events.len(), 6, "bits {bits} nct {server_nct}/{client_nct}");
            for pair in events.chunks(2) {
                assert_eq!(pair[0], Event::Text(text.clone()));
                assert_eq!(pair[1], Event::Binary(binary.clone()));
            }
            let wire = transmit(&mut server);
            assert!(wire.len() < text.len());
            let (result, events) = feed(&mut client, &wire, clock.now());
            result.unwrap();
            assert_eq!(events, vec![Event::Text(text.clone()); 3]);
        }
    }
}

#[test]
fn rfc7692_7_2_compressed_stream_survives_a_split_at_every_offset() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (_, mut client) = pair(&p, Config::default(), &clock);
    let messages = [json_like(20), "κόσμε ".repeat(40), json_like(3)];
    for m in &messages {
        client.send_text(m).unwrap();
    }
    let wire = transmit(&mut client);
    for split in 0..=wire.len() {
        let (mut server, _) = pair(&p, Config::default(), &clock);
        let (a, b) = wire.split_at(split);
        let (r1, mut events) = feed(&mut server, a, clock.now());
        let (r2, more) = feed(&mut server, b, clock.now());
        r1.unwrap();
        r2.unwrap();
        events.extend(more);
        let expected: Vec<Event> = messages.iter().map(|m| Event::Text(m.clone())).collect();
        assert_eq!(events, expected, "split at {split}");
    }
}

#[test]
fn rfc7692_8_1_a_decompression_bomb_stops_at_the_message_limit_with_1009() {
    let clock = Clock::new();
    let mut config = Config::default();
    config.max_message_size = 1 << 20;
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, config, &clock);
    // 64 MiB of zeros deflate to about 64 KiB.
    let bomb = raw_deflate(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100 << 10, "{}", bomb.len());
    let wire = compressed_client_frame(true, OpCode::Binary, &bomb);
    let mut max_held = 0;
    let mut result = Ok(());
    for chunk in wire.chunks(4096) {
        let (r, _) = feed(&mut server, chunk, clock.now());
        max_held = max_held.max(server.buffered_bytes());
        if r.is_err() {
            result = r;
            break;
        }
    }
    assert_eq!(result, Err(ProtocolError::MessageTooLarge { max: 1 << 20 }));
    // The message never grew past the limit (the rest is the inflater's window and tables).
    assert!(max_held <= (1 << 20) + (64 << 10), "held {max_held} bytes");
    let close = decode_as_client(&transmit(&mut server), &clock);
    assert!(matches!(&close[0], Event::Close(Some(f)) if f.code == CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn rfc7692_8_1_corrupt_compressed_data_fails_with_1007() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, Config::default(), &clock);
    // 0xff starts a block of the reserved type 3: not deflate.
    let wire = compressed_client_frame(true, OpCode::Text, &[0xff, 0xff, 0xff, 0x00]);
    let (result, _) = feed(&mut server, &wire, clock.now());
    assert_eq!(result, Err(ProtocolError::InvalidCompressedData));
    let close = decode_as_client(&transmit(&mut server), &clock);
    assert!(matches!(&close[0], Event::Close(Some(f)) if f.code == CloseCode::INVALID_PAYLOAD));
}

#[test]
fn rfc7692_6_1_rsv1_on_a_continuation_frame_is_a_protocol_error() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, Config::default(), &clock);
    let mut wire = compressed_client_frame(false, OpCode::Text, &raw_deflate(b"hello "));
    wire.extend(compressed_client_frame(true, OpCode::Continuation, &raw_deflate(b"world")));
    let (result, _) = feed(&mut server, &wire, clock.now());
    assert_eq!(result, Err(ProtocolError::ReservedBits(0b100)));
}

#[test]
fn rfc7692_6_1_rsv1_on_a_control_frame_is_a_protocol_error() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, Config::default(), &clock);
    let wire = compressed_client_frame(true, OpCode::Ping, b"");
    let (result, _) = feed(&mut server, &wire, clock.now());
    assert_eq!(result, Err(ProtocolError::ReservedBits(0b100)));
}

#[test]
fn rfc7692_6_1_rsv1_without_negotiation_is_a_protocol_error() {
    let clock = Clock::new();
    let mut server = server(&clock);
    let wire = compressed_client_frame(true, OpCode::Text, &raw_deflate(b"hello"));
    let (result, _) = feed(&mut server, &wire, clock.now());
    assert_eq!(result, Err(ProtocolError::ReservedBits(0b100)));
}

#[test]
fn rfc7692_6_uncompressed_messages_are_accepted_on_a_deflate_connection() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, Config::default(), &clock);
    let mut wire = client_frame(true, OpCode::Text, b"plain");
    // One compressed payload over two frames: RSV1 on the first only.
    let compressed = raw_deflate(b"split message");
    let (head, tail) = compressed.split_at(compressed.len() / 2);
    wire.extend(compressed_client_frame(false, OpCode::Text, head));
    wire.extend(client_frame(true, OpCode::Continuation, tail));
    let (result, events) = feed(&mut server, &wire, clock.now());
    result.unwrap();
    assert_eq!(events, vec![Event::Text("plain".into()), Event::Text("split message".into())]);
}

#[test]
fn rfc7692_8_1_invalid_utf8_inside_compressed_text_fails_with_1007() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, Config::default(), &clock);
    let wire = compressed_client_frame(true, OpCode::Text, &raw_deflate(b"ok \xf4\x90\x80\x80 not ok"));
    let (result, _) = feed(&mut server, &wire, clock.now());
    assert_eq!(result, Err(ProtocolError::InvalidUtf8));
}

#[test]
fn short_messages_are_sent_uncompressed() {
    let clock = Clock::new();
    let p = params(15, 15, false, false);
    let (mut server, _) = pair(&p, Config::default(), &clock);
    server.send_text("hi").unwrap();
    assert_eq!(transmit(&mut server), server_frame(true, OpCode::Text, b"hi"));
}

#[test]
fn without_context_takeover_an_idle_connection_holds_no_codec_state() {
    let clock = Clock::new();
    let text = json_like(100);
    let (mut server, mut client) = pair(&params(15, 15, true, true), Config::default(), &clock);
    client.send_text(&text).unwrap();
    feed(&mut server, &transmit(&mut client), clock.now()).0.unwrap();
    server.send_text(&text).unwrap();
    transmit(&mut server);
    assert_eq!(server.buffered_bytes(), 0);

    let (mut server, mut client) = pair(&params(15, 15, false, false), Config::default(), &clock);
    client.send_text(&text).unwrap();
    feed(&mut server, &transmit(&mut client), clock.now()).0.unwrap();
    server.send_text(&text).unwrap();
    transmit(&mut server);
    assert!(server.buffered_bytes() > 32 << 10, "context takeover keeps the windows");
}

#[test]
fn with_context_takeover_an_idle_inflater_holds_only_the_peers_window() {
    let clock = Clock::new();
    // Each message repeats much of the one before, so the client refers back across messages.
    let messages: Vec<String> = (0..6).map(|i| json_like(40 + i)).collect();
    for (bits, window) in [(9, 512), (10, 1 << 10), (12, 4 << 10), (15, 32 << 10)] {
        let (mut server, mut client) = pair(&params(15, bits, true, false), Config::default(), &clock);
        for m in &messages {
            client.send_text(m).unwrap();
            let (result, events) = feed(&mut server, &transmit(&mut client), clock.now());
            result.unwrap();
            assert_eq!(events, vec![Event::Text(m.clone())], "bits {bits}");
            let held = server.buffered_bytes();
            assert!(held > 0 && held <= window, "bits {bits}: {held} bytes held");
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of messages, compressed in either role with any agreed
        /// parameters, decodes unchanged however the stream is cut.
        #[test]
        fn compressed_conversations_survive_any_chunking(
            messages in proptest::collection::vec((any::<bool>(), ".{0,300}", proptest::collection::vec(any::<u8>(), 0..300)), 1..6),
            settings in any::<u8>(),
            server_sends in any::<bool>(),
            mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let clock = Clock::new();
            let p = params(9 + settings % 7, 9 + (settings >> 3) % 7, settings & 0x40 != 0, settings & 0x80 != 0);
            let (mut server, mut client) = pair(&p, Config::default(), &clock);
            let (sender, receiver) = if server_sends { (&mut server, &mut client) } else { (&mut client, &mut server) };
            let mut expected = Vec::new();
            for (is_text, text, bytes) in &messages {
                // Repeat to make the data compressible enough to be sent compressed.
                if *is_text {
                    let t = text.repeat(3);
                    sender.send_text(&t).unwrap();
                    expected.push(Event::Text(t));
                } else {
                    let b = bytes.repeat(3);
                    sender.send_binary(&b).unwrap();
                    expected.push(Event::Binary(b));
                }
            }
            let wire = transmit(sender);
            let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(wire.len() + 1)).collect();
            offsets.sort_unstable();
            let mut events = Vec::new();
            let mut start = 0;
            for end in offsets.into_iter().chain(std::iter::once(wire.len())) {
                let (result, more) = feed(receiver, &wire[start..end], clock.now());
                prop_assert_eq!(result, Ok(()));
                events.extend(more);
                start = end;
            }
            prop_assert_eq!(events, expected);
        }
    }
}
