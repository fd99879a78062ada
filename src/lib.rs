//! ferrows: a WebSocket server built on a hand-rolled RFC 6455 protocol engine.
//!
//! The crate is layered so that every byte of protocol logic can be driven
//! without a socket:
//!
//! - [`proto`] is the sans-IO core: the HTTP upgrade handshake, the frame codec,
//!   message reassembly, the close rules and the per-connection state machine.
//!   It is fed with bytes and an [`Instant`](std::time::Instant) and polled for
//!   events and output; it never reads a clock, spawns a thread or opens a socket.
//!
//! The runtime (event loops on mio), broadcasting and the server binary are
//! built on top of this core, and so is [`client`], the client side
//! (blocking, or on a mio loop).
//!
//! ```
//! use std::time::Instant;
//! use ferrows::proto::{Config, Connection, Event};
//!
//! let now = Instant::now();
//! let mut server = Connection::server(Config::default(), now);
//! // A masked text frame "Hello" from a client (RFC 6455 §5.7).
//! let mut bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! server.handle_read(&mut bytes, now).unwrap();
//! assert_eq!(server.poll_event(), Some(Event::Text("Hello".into())));
//!
//! server.send_text("Hi").unwrap();
//! let mut out = Vec::new();
//! server.poll_transmit(&mut out);
//! assert_eq!(out, [0x81, 0x02, b'H', b'i']);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "server")]
pub mod app;
pub mod client;
#[cfg(feature = "redis")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod config;
pub mod prometheus;
pub mod proto;
pub mod runtime;
pub mod session;
#[cfg(feature = "tls")]
mod tls_io;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Where the sans-IO core's unit tests get their time: the core itself never
/// reads a clock (`.ci/run` checks that nothing under `src/proto` does).
#[cfg(test)]
pub(crate) fn test_clock() -> std::time::Instant {
    std::time::Instant::now()
}
