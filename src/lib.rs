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
//! built on top of this core.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod proto;
