//! What can go wrong on the client side.

use std::fmt;
use std::io;

#[cfg(feature = "deflate")]
use crate::proto::deflate::DeflateNegotiationError;
use crate::proto::handshake::{HandshakeUsageError, ResponseError, UrlError};
use crate::proto::{CloseCode, ProtocolError, UsageError};

/// Why a client call failed.
///
/// A close the peer asked for is not an error:
/// [`Client::recv`](super::Client::recv) reports it as
/// [`Message::Close`](super::Message::Close). [`Error::Closed`] is what a call
/// on a connection that is already over returns.
///
/// ```
/// use ferrows::client::{Client, Error};
///
/// match Client::connect("http://example.com/") {
///     Err(Error::Url(e)) => println!("not a WebSocket URL: {e}"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The URL is not a usable `ws://` or `wss://` URL (RFC 6455 §3).
    Url(UrlError),
    /// A `wss://` URL, and no trust for the server's certificate was given
    /// ([`ClientBuilder::tls_roots`](super::ClientBuilder::tls_roots)), or
    /// the `tls` feature is off. A TLS stream of the caller's goes to
    /// [`ClientBuilder::connect_stream`](super::ClientBuilder::connect_stream).
    TlsUnavailable,
    /// The opening request could not be written: a subprotocol that is not a
    /// token, a header the handshake writes itself, a bad header value.
    Request(HandshakeUsageError),
    /// The transport failed: connect refused, reset, or the server closed
    /// the TCP connection without a Close frame (`UnexpectedEof`, what
    /// applications report as 1006).
    Io(io::Error),
    /// Nothing came in time: the connect and opening handshake, a read or a
    /// write, the keepalive, or the peer's answer to our Close.
    Timeout,
    /// The server refused the upgrade or answered it wrongly (RFC 6455 §4.1).
    /// [`Error::status`] gives the HTTP status of a refusal.
    Handshake(ResponseError),
    /// The server accepted permessage-deflate with parameters that break
    /// RFC 7692 §7 or were not offered; the connection is failed.
    #[cfg(feature = "deflate")]
    Deflate(DeflateNegotiationError),
    /// The server broke the protocol. A Close with the code the violation
    /// earns ([`ProtocolError::close_code`]) was sent and the connection is
    /// over.
    Protocol(ProtocolError),
    /// The connection is over: the closing handshake took place (the code
    /// and reason of the peer's Close, 1005 when it had none) or the
    /// connection failed earlier (the code we sent, or 1006).
    Closed {
        /// The close code.
        code: CloseCode,
        /// The close reason.
        reason: String,
    },
    /// A misuse: a control payload over 125 bytes, a close code that may
    /// not be sent, a reason over 123 bytes.
    Usage(UsageError),
    /// The opening handshake has not completed yet (non-blocking
    /// connections only).
    NotOpen,
    /// The operating system's random source failed; no masking key or
    /// handshake nonce can be drawn without it.
    Random(getrandom::Error),
}

impl Error {
    /// The HTTP status of a refused handshake (404, 403, 503, ...).
    ///
    /// ```
    /// use ferrows::client::Error;
    /// use ferrows::proto::handshake::ResponseError;
    ///
    /// let refused = Error::Handshake(ResponseError::UnexpectedStatus { status: 404 });
    /// assert_eq!(refused.status(), Some(404));
    /// assert_eq!(Error::Timeout.status(), None);
    /// ```
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Handshake(e) => e.status(),
            _ => None,
        }
    }

    /// The close code that describes how the connection ended, when it
    /// ended: the one sent for a protocol violation, the one of a finished
    /// closing handshake, 1006 for a lost connection.
    ///
    /// ```
    /// use ferrows::client::Error;
    /// use ferrows::proto::{CloseCode, ProtocolError};
    ///
    /// assert_eq!(Error::Protocol(ProtocolError::InvalidUtf8).close_code(), Some(CloseCode::INVALID_PAYLOAD));
    /// ```
    #[must_use]
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(e) => Some(e.close_code()),
            Error::Closed { code, .. } => Some(*code),
            Error::Io(_) => Some(CloseCode::ABNORMAL),
            _ => None,
        }
    }

    /// An I/O error as the client reports it: a socket's read or write
    /// timeout becomes [`Error::Timeout`].
    pub(crate) fn from_io(e: io::Error) -> Error {
        match e.kind() {
            // A socket timeout reads as WouldBlock on Unix and TimedOut on Windows.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
            _ => Error::Io(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(e) => write!(f, "invalid WebSocket URL: {e}"),
            Error::TlsUnavailable => f.write_str(
                "wss:// needs trusted roots (ClientBuilder::tls_roots, `tls` feature) or a TLS stream (connect_stream)",
            ),
            Error::Request(e) => write!(f, "invalid opening request: {e}"),
            Error::Io(e) => write!(f, "transport error: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            #[cfg(feature = "deflate")]
            Error::Deflate(e) => write!(f, "invalid permessage-deflate response: {e}"),
            Error::Protocol(e) => write!(f, "the server broke the protocol: {e} (closed with {})", e.close_code()),
            Error::Closed { code, reason } if reason.is_empty() => write!(f, "connection closed ({code})"),
            Error::Closed { code, reason } => write!(f, "connection closed ({code} {reason:?})"),
            Error::Usage(e) => e.fmt(f),
            Error::NotOpen => f.write_str("the opening handshake has not completed"),
            Error::Random(e) => write!(f, "the OS random source failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Url(e) => Some(e),
            Error::Request(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Handshake(e) => Some(e),
            #[cfg(feature = "deflate")]
            Error::Deflate(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Usage(e) => Some(e),
            // getrandom's error implements std's Error only with its `std` feature.
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::from_io(e)
    }
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Url(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

impl From<HandshakeUsageError> for Error {
    fn from(e: HandshakeUsageError) -> Self {
        match e {
            HandshakeUsageError::Url(e) => Error::Url(e),
            e => Error::Request(e),
        }
    }
}
