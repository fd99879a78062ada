//! The sans-IO protocol core.
//!
//! Nothing in this module performs I/O, reads a clock, spawns a thread or draws
//! randomness. Time arrives as an [`Instant`](std::time::Instant) argument and
//! randomness (client masks, handshake nonces) is supplied by the caller. This is
//! what the unit tests, the fuzz targets and the benchmarks drive directly: bytes
//! and an `Instant` go in, events and bytes to send come out.
//!
//! - [`handshake`]: the HTTP/1.1 upgrade, server and client side.
//! - [`frame`]: frame headers, opcodes, encoding and decoding.
//! - [`mask`]: the masking transform.
//! - [`utf8`]: the incremental UTF-8 validator for text messages.
//! - [`close`]: close codes and the rules for close frames.
//! - [`connection`]: the per-connection state machine for both roles.
//! - `deflate` (feature `deflate`): permessage-deflate negotiation, both roles,
//!   and the bounded per-message codec.
//!
//! # Driving a connection
//!
//! The handshake, then the connection, each fed with bytes from the socket:
//!
//! ```rust
//! use std::time::Instant;
//! use ferrows::proto::handshake::{Accept, ServerHandshake, Status};
//! use ferrows::proto::{Config, Connection, Event};
//!
//! /// Bytes arrived before the upgrade: returns the connection once it is accepted.
//! fn on_handshake_read(
//!     handshake: &mut ServerHandshake,
//!     read: &[u8],
//!     now: Instant,
//!     out: &mut Vec<u8>,
//! ) -> Option<Connection> {
//!     match handshake.feed(read) {
//!         Ok(Status::Partial) => None,
//!         Ok(Status::Complete { head: request, mut rest }) => match request.validate_upgrade() {
//!             Ok(upgrade) => {
//!                 // Decide on request.path(), request.origin(), upgrade.protocols() ...
//!                 upgrade.accept(&Accept::new(), out).ok()?;
//!                 let mut conn = Connection::server(Config::default(), now);
//!                 on_read(&mut conn, &mut rest, now, out); // frames sent right behind the request
//!                 Some(conn)
//!             }
//!             Err(refusal) => {
//!                 refusal.write_response(out); // 400, 405, 426 ...: write it, then close
//!                 None
//!             }
//!         },
//!         Err(refusal) => {
//!             refusal.write_response(out); // 431 or 400
//!             None
//!         }
//!     }
//! }
//!
//! /// Bytes arrived on an open connection: echo every message.
//! fn on_read(conn: &mut Connection, read: &mut [u8], now: Instant, out: &mut Vec<u8>) {
//!     if let Err(violation) = conn.handle_read(read, now) {
//!         log::info!("closing: {violation}"); // the Close with its code is already queued
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Text(text) => { let _ = conn.send_text(&text); }
//!             Event::Binary(data) => { let _ = conn.send_binary(&data); }
//!             Event::Ping(_) | Event::Pong(_) => {} // pongs are automatic
//!             Event::Close(_) => {}                 // the echo is already queued
//!         }
//!     }
//!     conn.poll_transmit(out); // write `out` to the socket
//!     // Arm a timer for conn.poll_timeout() and call conn.handle_timeout(now) when it fires;
//!     // close the socket once conn.is_closed() and `out` is written.
//! }
//! ```
//!
//! `handle_read` unmasks in place in the caller's read buffer, so a message is
//! copied once, into the event that carries it. A connection keeps no bytes of
//! its own between messages: only a header cut short by a read (inline, at most
//! 14 bytes) or the message being reassembled.
//!
//! # Behaviour
//!
//! What the core enforces, each rule with a test naming its RFC section:
//!
//! | Input from the peer | Answer |
//! |---|---|
//! | Request head over 8 KiB or over 64 headers (caller-settable) | 431 |
//! | Not GET | 405 with `Allow: GET` |
//! | HTTP/1.0, no `Host`, no `Upgrade: websocket`, no `Connection: Upgrade`, key not base64 of 16 bytes, malformed `Sec-WebSocket-Extensions` | 400 |
//! | `Sec-WebSocket-Version` other than 13 | 426 with `Sec-WebSocket-Version: 13` |
//! | Reserved opcode, RSV bit no extension negotiated, unmasked frame to a server, masked frame to a client, non-minimal length, 64-bit length with the top bit set | close 1002 |
//! | Control frame over 125 bytes or fragmented; continuation without a message; new message inside a fragmented one | close 1002 |
//! | Close with a 1-byte payload, or a code outside 1000–1003, 1007–1014, 3000–4999 | close 1002 |
//! | Invalid UTF-8 in a text message or a close reason (found at the first impossible byte, even mid-frame) | close 1007 |
//! | Frame over `max_frame_size`, message over `max_message_size` (checked against the declared length before any byte is buffered), more than `max_fragments` fragments | close 1009 |
//! | A compressed message that inflates past `max_message_size` (checked while inflating, whatever its compressed size) | close 1009 |
//! | Compressed data that does not inflate | close 1007 |
//! | RSV1 on a continuation or control frame, or without permessage-deflate negotiated | close 1002 |
//!
//! Error answers to the handshake are complete HTTP responses with
//! `Connection: close` and a short reason. After a violation the connection
//! stops reading; events decoded before it are still delivered.
//!
//! Defaults ([`Config`]), chosen so that the whole Autobahn testsuite
//! passes while a peer still cannot make the server hold unbounded memory:
//!
//! | Setting | Default |
//! |---|---|
//! | `max_frame_size` | 16 MiB |
//! | `max_message_size` | 16 MiB (buffers never grow past it) |
//! | `max_fragments` | 131,072 per message |
//! | `close_timeout` | 5 s after our Close, then the transport may be dropped |
//! | `keepalive` | Ping after 30 s with nothing received; give up 30 s later |
//! | `idle_timeout` | none (when set: close 1001 after this long without a data message) |
//!
//! Pings are answered automatically, only the latest one if several arrive
//! before the output is taken, echoing its bytes. A peer's Close is echoed once
//! with its code (an empty Close with an empty one); anything after it is
//! ignored. Codes 1005, 1006 and 1015 are never sent.
//!
//! # permessage-deflate
//!
//! With the `deflate` feature, the server side takes the first acceptable offer
//! of `Sec-WebSocket-Extensions: permessage-deflate` (RFC 7692 §5–7): an offer
//! with an unknown or repeated parameter, or window bits outside 8–15, is
//! declined and the next one is tried; with none the connection simply goes on
//! uncompressed. Incoming compressed messages are inflated as their frames
//! arrive and fail with 1009 the moment the output passes `max_message_size`: a
//! small bomb never costs more than the limit. Uncompressed messages stay legal
//! on a deflate connection. How the server binary configures it, and what it
//! costs in memory, is in `docs/deflate.md`.

pub mod close;
mod config;
pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
mod error;
mod event;
pub mod frame;
pub mod handshake;
pub mod mask;
mod spares;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::{Config, Keepalive};
pub use connection::{BurstPool, Connection};
pub use error::{ProtocolError, UsageError};
pub use event::{ControlPayload, Event, Received};
pub use frame::{FrameHeader, OpCode};
pub use spares::Spares;
pub(crate) use spares::{Spare, POOL_BYTES};

/// Which end of the connection this endpoint is.
///
/// RFC 6455 §5.1: a client masks every frame it sends and a server masks none;
/// each side rejects frames that break this rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The accepting side: expects masked frames, sends unmasked ones.
    Server,
    /// The connecting side: expects unmasked frames, sends masked ones.
    Client,
}
