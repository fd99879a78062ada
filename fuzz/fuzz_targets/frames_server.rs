//! A client-to-server byte stream, cut into fuzz-chosen chunks, through the
//! server's connection state machine. It must never panic and never hold
//! more than the message limit.
#![no_main]

use std::time::{Duration, Instant};

use ferrows::proto::{Config, Connection};
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let Some((&plan, stream)) = data.split_first() else {
        return;
    };
    let mut config = Config::default();
    config.max_message_size = MAX_MESSAGE;
    config.max_frame_size = MAX_MESSAGE;
    config.max_fragments = 64;
    let mut now = Instant::now();
    let mut conn = Connection::server(config, now);
    let mut out = Vec::new();
    let mut stream = stream.to_vec();
    let mut pos = 0;
    let mut step = 0usize;
    while pos < stream.len() {
        let rest = stream.len() - pos;
        // Chunk sizes from the plan byte: mostly small, sometimes everything at once.
        let size = match (plan.rotate_left(step as u32 % 8) & 0x0f) as usize {
            0 => rest,
            n => n * (1 + step % 3),
        }
        .min(rest);
        let _ = conn.handle_read(&mut stream[pos..pos + size], now);
        pos += size;
        while let Some(event) = conn.poll_event() {
            drop(event);
        }
        // Besides the message being reassembled, only a Pong and a Close can wait.
        assert!(conn.buffered_bytes() <= MAX_MESSAGE + 1024, "held {} bytes", conn.buffered_bytes());
        out.clear();
        conn.poll_transmit(&mut out);
        if plan & 0x80 != 0 {
            now += Duration::from_secs(11);
            conn.handle_timeout(now);
        }
        step += 1;
    }
    if conn.is_closed() {
        assert!(!conn.wants_read());
    }
});
