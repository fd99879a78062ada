//! Compressed messages through a server with permessage-deflate, with
//! fuzz-chosen settings and chunking. The inflated output must never pass the
//! message limit, and a message compressed by a client must come back whole.
#![no_main]

use std::time::Instant;

use ferrows::proto::deflate::{DeflateConfig, DeflateParams};
use ferrows::proto::frame::{encode_frame, OpCode, RSV1};
use ferrows::proto::{Config, Connection, Event};
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE: usize = 64 << 10;
/// The inflater's state while a message is in progress (zlib-rs's 47 KiB)
/// and the window it keeps between messages (32 KiB at most), which are not
/// message data.
const CODEC_STATE: usize = 80 << 10;

fuzz_target!(|data: &[u8]| {
    let Some((&settings, rest)) = data.split_first() else {
        return;
    };
    let Some((&chunking, payload)) = rest.split_first() else {
        return;
    };
    let params = DeflateParams {
        server_no_context_takeover: settings & 1 != 0,
        client_no_context_takeover: settings & 2 != 0,
        server_max_window_bits: 9 + (settings >> 2) % 7,
        client_max_window_bits: 9 + (settings >> 5) % 7,
    };
    let mut config = Config::default();
    config.max_message_size = MAX_MESSAGE;
    config.keepalive = None;
    let now = Instant::now();
    let deflate = DeflateConfig::default();

    // Arbitrary bytes as the compressed payload of one or two messages.
    let mut server = Connection::server(config.clone(), now).with_deflate(&params, &deflate);
    let mut wire = Vec::new();
    let (first, second) = payload.split_at(payload.len() / 2);
    let opcode = if settings & 0x80 != 0 { OpCode::Text } else { OpCode::Binary };
    encode_frame(true, RSV1, opcode, first, Some([1, 2, 3, 4]), &mut wire);
    encode_frame(false, RSV1, OpCode::Binary, second, Some([5, 6, 7, 8]), &mut wire);
    encode_frame(true, 0, OpCode::Continuation, &[], Some([5, 6, 7, 8]), &mut wire);
    let size = 1 + usize::from(chunking);
    let mut out = Vec::new();
    for chunk in wire.chunks_mut(size) {
        let _ = server.handle_read(chunk, now);
        while let Some(event) = server.poll_event() {
            match event {
                Event::Text(t) => assert!(t.len() <= MAX_MESSAGE),
                Event::Binary(b) => assert!(b.len() <= MAX_MESSAGE),
                _ => {}
            }
        }
        assert!(server.buffered_bytes() <= MAX_MESSAGE + CODEC_STATE + 1024, "held {}", server.buffered_bytes());
        out.clear();
        server.poll_transmit(&mut out);
    }

    // The same bytes as a message compressed by a client come back unchanged.
    let mut client = Connection::client(config.clone(), now, || [7, 7, 7, 7]).with_deflate(&params, &deflate);
    let mut server = Connection::server(config, now).with_deflate(&params, &deflate);
    client.send_binary(payload).unwrap();
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    for chunk in wire.chunks_mut(size) {
        server.handle_read(chunk, now).unwrap();
    }
    if payload.len() <= MAX_MESSAGE {
        assert_eq!(server.poll_event(), Some(Event::Binary(payload.to_vec())));
    }
});
