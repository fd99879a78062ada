//! Test tier "memory": helpers that drive connections in memory with a virtual clock, no socket.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::proto::{Config, Connection, Event, ProtocolError};

/// A virtual clock: one real instant taken once, then moved by hand.
pub struct Clock {
    now: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self { now: Instant::now() }
    }
    pub fn now(&self) -> Instant {
        self.now
    }
    pub fn advance(&mut self, by: Duration) -> Instant {
        self.now += by;
        self.now
    }
}

/// A predictable mask source for tests (real clients draw from the OS).
pub fn counting_masks() -> impl FnMut() -> [u8; 4] + Send + 'static {
    let mut n: u32 = 0x1234_5678;
    move || {
        n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        n.to_be_bytes()
    }
}

/// One frame as a client would send it (masked).
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, 0, opcode, payload, Some([0xa1, 0x5b, 0x07, 0xfe]), &mut out);
    out
}

/// One frame as a server would send it (unmasked).
pub fn server_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, 0, opcode, payload, None, &mut out);
    out
}

/// Feeds `bytes` in one read and returns the result and every event.
pub fn feed(conn: &mut Connection, bytes: &[u8], now: Instant) -> (Result<(), ProtocolError>, Vec<Event>) {
    let mut data = bytes.to_vec();
    let result = conn.handle_read(&mut data, now);
    (result, drain_events(conn))
}

pub fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub fn transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    out
}

pub fn server(clock: &Clock) -> Connection {
    Connection::server(Config::default(), clock.now())
}

pub fn server_with(config: Config, clock: &Clock) -> Connection {
    Connection::server(config, clock.now())
}

pub fn client(clock: &Clock) -> Connection {
    Connection::client(Config::default(), clock.now(), counting_masks())
}

/// Decodes every frame a server wrote, as a client would, returning the events.
pub fn decode_as_client(bytes: &[u8], clock: &Clock) -> Vec<Event> {
    let mut config = Config::default();
    config.keepalive = None;
    let mut c = Connection::client(config, clock.now(), counting_masks());
    let (result, events) = feed(&mut c, bytes, clock.now());
    result.expect("the server wrote valid frames");
    events
}
