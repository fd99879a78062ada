//! The HTTP/1.1 upgrade handshake (RFC 6455 §4), server and client side.
//!
//! Everything here is sans-IO: bytes go in through `feed`, responses and
//! requests are appended to a caller's `Vec<u8>`, and the client's nonce is
//! supplied by the caller.
//!
//! The server side works in two steps so that a runtime can route plain HTTP
//! requests (health checks, metrics, a publish API) elsewhere:
//!
//! 1. [`ServerHandshake::feed`] accumulates the request head under the
//!    caller's [`HandshakeLimits`] and parses it once its end is seen, giving a
//!    [`Request`] and the bytes that followed the head.
//! 2. [`Request::validate_upgrade`] applies RFC 6455 §4.2.1 and gives an
//!    [`UpgradeRequest`], which the caller answers with
//!    [`UpgradeRequest::accept`] (the 101 response) or rejects with
//!    [`write_error_response`].
//!
//! Every [`HandshakeError`] knows the status it earns and can write the
//! complete HTTP error response with [`HandshakeError::write_response`].
//!
//! ```
//! use ferrows::proto::handshake::{Accept, HandshakeLimits, ServerHandshake, Status};
//!
//! let mut handshake = ServerHandshake::new(HandshakeLimits::default());
//! let mut out = Vec::new();
//! let chunks: [&[u8]; 2] = [
//!     b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n",
//!     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
//! ];
//! for chunk in chunks {
//!     match handshake.feed(chunk) {
//!         Ok(Status::Partial) => continue,
//!         Ok(Status::Complete { head: request, rest }) => {
//!             assert_eq!(request.path(), "/chat");
//!             assert!(rest.is_empty());
//!             match request.validate_upgrade() {
//!                 Ok(upgrade) => upgrade.accept(&Accept::new().protocol("chat"), &mut out)?,
//!                 Err(err) => err.write_response(&mut out),
//!             }
//!         }
//!         Err(err) => err.write_response(&mut out),
//!     }
//! }
//! let response = String::from_utf8(out).unwrap();
//! assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
//! assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
//! # Ok::<(), ferrows::proto::handshake::HandshakeUsageError>(())
//! ```
//!
//! The client side is [`ClientRequest`] (encode the request) and
//! [`ClientHandshake`] (feed and validate the response, RFC 6455 §4.1).

mod accept;
mod client;
mod error;
mod extensions;
mod head;
mod headers;
mod request;
mod response;
mod server;
mod url;

pub use accept::{accept_key, client_key, WEBSOCKET_GUID};
pub use client::{ClientHandshake, ClientRequest, Response};
pub use error::{HandshakeError, HandshakeUsageError, ResponseError};
pub use extensions::{parse_extensions, ExtensionError, ExtensionOffer, ExtensionParam};
pub use headers::{Header, Headers};
pub use request::{HttpVersion, Request};
pub use response::{write_error_response, write_error_response_with_headers, write_response, StatusCode};
pub use server::{Accept, ServerHandshake, UpgradeRequest};
pub use url::{UrlError, WsUrl};

/// Bounds on what a peer may send before its handshake head is complete.
///
/// The defaults are 8 KiB and 64 header fields, the same order as common
/// HTTP servers. Both are checked before anything is allocated for the
/// offending input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeLimits {
    /// Most bytes the head (request or status line, headers and the final
    /// empty line) may take. Going over earns 431.
    pub max_head_bytes: usize,
    /// Most header fields the head may carry. Going over earns 431.
    pub max_headers: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits { max_head_bytes: 8192, max_headers: 64 }
    }
}

/// The outcome of feeding bytes to a handshake parser.
///
/// Partial input is not an error: `Partial` asks for more bytes.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// The head is not complete yet; every byte fed so far is kept.
    Partial,
    /// The head is complete.
    Complete {
        /// The parsed head.
        head: T,
        /// Bytes that followed the head in the input: the first WebSocket
        /// frame bytes, which belong to the connection and not to the handshake.
        rest: Vec<u8>,
    },
}
