//! The sans-IO protocol core.
//!
//! Nothing in this module performs I/O, reads a clock, spawns a thread or draws
//! randomness. Time arrives as an [`Instant`](std::time::Instant) argument and
//! randomness (client masks, handshake nonces) is supplied by the caller. This is
//! what the unit tests, the fuzz targets and the benchmarks drive directly.
//!
//! - [`handshake`]: the HTTP/1.1 upgrade, server and client side.
//! - [`frame`]: frame headers, opcodes, encoding and decoding.
//! - [`mask`]: the masking transform.
//! - [`utf8`]: the incremental UTF-8 validator for text messages.
//! - [`close`]: close codes and the rules for close frames.
//! - [`connection`]: the per-connection state machine for both roles.

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
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::{Config, Keepalive};
pub use connection::Connection;
pub use error::{ProtocolError, UsageError};
pub use event::{ControlPayload, Event};
pub use frame::{FrameHeader, OpCode};

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
