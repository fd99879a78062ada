//! Frames built from fuzz input are encoded, masked and unmasked, then
//! decoded: headers and payloads must come back unchanged, and the messages
//! must come out of a connection of the other role unchanged.
#![no_main]

use std::time::Instant;

use ferrows::proto::frame::{decode_header, encode_frame, Decoded, FrameHeader, HeaderRules, OpCode, RSV1};
use ferrows::proto::mask::apply_mask;
use ferrows::proto::{Config, Connection, Event, Role};
use libfuzzer_sys::fuzz_target;

const OPCODES: [OpCode; 6] =
    [OpCode::Continuation, OpCode::Text, OpCode::Binary, OpCode::Close, OpCode::Ping, OpCode::Pong];

fuzz_target!(|data: &[u8]| {
    frames(data);
    messages(data);
});

/// Header and payload round trip for arbitrary (even protocol-invalid) frame shapes.
fn frames(mut data: &[u8]) {
    while data.len() >= 7 {
        let (head, rest) = data.split_at(7);
        let flags = head[0];
        let opcode = OPCODES[usize::from(flags & 0x07) % OPCODES.len()];
        let masked = flags & 0x08 != 0;
        let len = usize::from(u16::from_le_bytes([head[1], head[2]])).min(rest.len());
        let len = if opcode.is_control() { len.min(125) } else { len };
        let mask = masked.then(|| [head[3], head[4], head[5], head[6]]);
        let payload = &rest[..len];
        data = &rest[len..];
        let fin = opcode.is_control() || flags & 0x10 != 0;
        let rsv = if opcode.is_control() { 0 } else { (flags >> 5) & RSV1 };

        let mut wire = Vec::new();
        encode_frame(fin, rsv, opcode, payload, mask, &mut wire);
        let rules = HeaderRules { role: if masked { Role::Server } else { Role::Client }, allowed_rsv: RSV1 };
        let Ok(Decoded::Complete(header, used)) = decode_header(&wire, &rules) else {
            panic!("an encoded header must decode");
        };
        assert_eq!(header, FrameHeader { fin, rsv, opcode, mask, payload_len: len as u64 });
        let mut body = wire[used..].to_vec();
        if let Some(mask) = mask {
            apply_mask(&mut body, mask, 0);
        }
        assert_eq!(body, payload);
        // Every cut-short prefix asks for more bytes, never errs.
        for cut in 0..used {
            assert!(matches!(decode_header(&wire[..cut], &rules), Ok(Decoded::Partial(n)) if n > 0));
        }
    }
}

/// Valid messages sent by one role arrive unchanged at the other.
fn messages(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let sender = if flags & 1 == 0 { Role::Client } else { Role::Server };
    let now = Instant::now();
    let mut config = Config::default();
    config.keepalive = None;
    let mut seed = u32::from(flags).wrapping_mul(2_654_435_761);
    let masks = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed.to_le_bytes()
    };
    let (mut tx, mut rx) = match sender {
        Role::Client => (Connection::client(config.clone(), now, masks), Connection::server(config, now)),
        Role::Server => (Connection::server(config.clone(), now), Connection::client(config, now, masks)),
    };
    let mut expected = Vec::new();
    for (i, piece) in body.chunks(1 + usize::from(flags >> 2)).enumerate() {
        if i % 2 == 0 {
            let text = String::from_utf8_lossy(piece).into_owned();
            tx.send_text(&text).unwrap();
            expected.push(Event::Text(text));
        } else {
            tx.send_binary(piece).unwrap();
            expected.push(Event::Binary(piece.to_vec()));
        }
    }
    let mut wire = Vec::new();
    tx.poll_transmit(&mut wire);
    rx.handle_read(&mut wire, now).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert_eq!(events, expected);
}
