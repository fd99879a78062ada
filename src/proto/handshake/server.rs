//! The server side: incremental request parsing and the 101 response.

use super::accept::accept_key;
use super::error::{HandshakeError, HandshakeUsageError};
use super::extensions::{parse_extensions, ExtensionOffer};
#[cfg(test)]
use super::head::HeadReader;
use super::head::StickyReader;
use super::request::Request;
use super::response::{check_extra_header, push_header};
use super::{HandshakeLimits, Status};

/// Reads a client's request head from bytes fed in any chunking.
///
/// Bytes are buffered until the end of the head (`\r\n\r\n`) is seen, under
/// the caller's [`HandshakeLimits`]; the search resumes where the previous
/// one stopped, and httparse runs once, on the complete head. Going over
/// the byte limit fails as soon as it happens, without waiting for the end.
///
/// After `Complete`, the reader is empty again and the next byte fed starts
/// a new request. After an error, every later call returns that error.
///
/// ```
/// use ferrows::proto::handshake::{HandshakeLimits, ServerHandshake, Status};
///
/// let mut handshake = ServerHandshake::new(HandshakeLimits::default());
/// assert_eq!(handshake.feed(b"GET /health HTTP/1.1\r\nHost: a\r\n"), Ok(Status::Partial));
/// let Ok(Status::Complete { head: request, rest }) = handshake.feed(b"\r\n\x81\x00") else {
///     panic!("complete request expected");
/// };
/// assert_eq!(request.path(), "/health");
/// assert!(!request.is_upgrade());
/// assert_eq!(rest, b"\x81\x00");
/// ```
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    head: StickyReader<HandshakeError>,
}

impl ServerHandshake {
    /// A reader with the given limits.
    pub fn new(limits: HandshakeLimits) -> Self {
        ServerHandshake { head: StickyReader::new(limits) }
    }

    /// The limits in force.
    pub fn limits(&self) -> HandshakeLimits {
        self.head.reader.limits()
    }

    /// How many bytes of an incomplete head are buffered.
    pub fn buffered(&self) -> usize {
        self.head.reader.buffered()
    }

    /// Takes the next bytes from the peer.
    ///
    /// Returns `Partial` until the head is complete, then the parsed
    /// [`Request`] and the bytes that followed the head. Errors are the
    /// peer's fault: 431 over the limits, 400 for bytes that are not an
    /// HTTP/1.x request.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Status<Request>, HandshakeError> {
        let limits = self.head.reader.limits();
        self.head.feed(bytes, |head, slots| {
            Request::parse(head, slots).map_err(|err| HandshakeError::from_head(err, limits))
        })
    }

    #[cfg(test)]
    pub(crate) fn reader(&self) -> &HeadReader {
        &self.head.reader
    }
}

impl Default for ServerHandshake {
    /// A reader with [`HandshakeLimits::default`].
    fn default() -> Self {
        ServerHandshake::new(HandshakeLimits::default())
    }
}

/// A request that passed RFC 6455 §4.2.1, with what the server needs to
/// choose its answer.
///
/// Made by [`Request::validate_upgrade`]; the [`Request`] itself still holds
/// the path, `Host`, `Origin` and every other field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    key: String,
    protocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
}

impl UpgradeRequest {
    pub(crate) fn new(key: String, protocols: Vec<String>, extensions: Vec<ExtensionOffer>) -> Self {
        UpgradeRequest { key, protocols, extensions }
    }

    /// The client's `Sec-WebSocket-Key`, checked to be base64 of 16 bytes.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` value for this request's key.
    pub fn accept_key(&self) -> String {
        accept_key(&self.key)
    }

    /// The subprotocols offered, in the client's order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The extensions offered, in order (RFC 6455 §9.1).
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Appends the 101 response that completes the handshake (RFC 6455
    /// §4.2.2).
    ///
    /// The chosen subprotocol must be one the client offered, and the
    /// extensions value must parse and name only offered extensions;
    /// otherwise nothing is appended and the caller's mistake is returned.
    ///
    /// ```
    /// use ferrows::proto::handshake::{Accept, HandshakeLimits, ServerHandshake, Status};
    ///
    /// let mut handshake = ServerHandshake::new(HandshakeLimits::default());
    /// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Protocol: v2.chat, v1.chat\r\n\r\n";
    /// let Ok(Status::Complete { head: request, .. }) = handshake.feed(head) else {
    ///     panic!("complete request expected");
    /// };
    /// let upgrade = request.validate_upgrade().unwrap();
    /// let mut out = Vec::new();
    /// assert!(upgrade.accept(&Accept::new().protocol("v3.chat"), &mut out).is_err());
    /// upgrade.accept(&Accept::new().protocol("v1.chat"), &mut out)?;
    /// assert_eq!(
    ///     out,
    ///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
    ///       Sec-WebSocket-Protocol: v1.chat\r\n\r\n"
    /// );
    /// # Ok::<(), ferrows::proto::handshake::HandshakeUsageError>(())
    /// ```
    pub fn accept(&self, accept: &Accept, out: &mut Vec<u8>) -> Result<(), HandshakeUsageError> {
        // RFC 6455 §4.2.2 (5.4): the subprotocol, if any, is "one of the
        // values ... from the client's handshake".
        if let Some(protocol) = &accept.protocol {
            if !self.protocols.iter().any(|offered| offered == protocol) {
                return Err(HandshakeUsageError::ProtocolNotOffered { protocol: protocol.clone() });
            }
        }
        // RFC 6455 §9.1: the server accepts extensions from the client's
        // offer; §4.1 has the client fail the connection otherwise.
        if let Some(value) = &accept.extensions {
            let accepted = parse_extensions(value.as_bytes()).map_err(HandshakeUsageError::InvalidExtensions)?;
            for extension in accepted {
                if !self.extensions.iter().any(|offer| offer.name == extension.name) {
                    return Err(HandshakeUsageError::ExtensionNotOffered { name: extension.name });
                }
            }
        }
        for (name, value) in &accept.headers {
            check_extra_header(name, value, RESERVED_101)?;
        }

        // RFC 6455 §4.2.2 (5.1)–(5.3): the status line, Upgrade, Connection
        // and Sec-WebSocket-Accept.
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        push_header(out, "Sec-WebSocket-Accept", self.accept_key().as_bytes());
        if let Some(protocol) = &accept.protocol {
            push_header(out, "Sec-WebSocket-Protocol", protocol.as_bytes());
        }
        if let Some(value) = &accept.extensions {
            push_header(out, "Sec-WebSocket-Extensions", value.as_bytes());
        }
        for (name, value) in &accept.headers {
            push_header(out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Fields of the 101 response that only [`UpgradeRequest::accept`] writes.
const RESERVED_101: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// The server's decision to accept a handshake: the subprotocol, the
/// extensions and any extra response fields.
///
/// ```
/// use ferrows::proto::handshake::Accept;
///
/// let accept = Accept::new()
///     .protocol("chat")
///     .extensions("permessage-deflate; server_no_context_takeover")
///     .header("Set-Cookie", "session=1");
/// # let _ = accept;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
    extensions: Option<String>,
    headers: Vec<(String, String)>,
}

impl Accept {
    /// Accept with no subprotocol, no extension and no extra field.
    pub fn new() -> Self {
        Accept::default()
    }

    /// Speak `protocol`, which must be one the client offered.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Send `value` as `Sec-WebSocket-Extensions`; it must follow RFC 6455
    /// §9.1 and name only extensions the client offered.
    pub fn extensions(mut self, value: impl Into<String>) -> Self {
        self.extensions = Some(value.into());
        self
    }

    /// Add a response field. The name must be a token, the value must hold
    /// no control character, and the fields the handshake writes itself are
    /// refused.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests;
