//! Handshake errors: the peer's faults, per side, and the caller's misuse.

use std::fmt;

use super::extensions::ExtensionError;
use super::head::HeadError;
use super::response::{write_response_unchecked, StatusCode};
use super::url::UrlError;

/// Why a client's request was refused: the peer's fault, with the status it
/// earns.
///
/// [`HandshakeError::write_response`] writes the complete HTTP answer. The
/// text of each error (its `Display`) names the rule broken and never quotes
/// the peer's bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head went past `max_head_bytes` (431).
    HeadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The head had more than `max_headers` fields (431).
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// The bytes are not an HTTP/1.x request (400).
    MalformedRequest {
        /// What was wrong.
        reason: &'static str,
    },
    /// RFC 6455 §4.1: the method must be GET (405, with `Allow: GET`).
    MethodNotAllowed,
    /// RFC 6455 §4.1: HTTP/1.1 or later is required (400).
    UnsupportedHttpVersion,
    /// RFC 6455 §4.2.1: no `Host` field (400).
    MissingHost,
    /// RFC 9112 §3.2: more than one `Host` field (400).
    DuplicateHost,
    /// RFC 6455 §4.2.1: `Upgrade` does not name `websocket` (400).
    MissingUpgrade,
    /// RFC 6455 §4.2.1: `Connection` does not name `Upgrade` (400).
    MissingConnectionUpgrade,
    /// RFC 6455 §4.4: `Sec-WebSocket-Version` is missing or not 13 (426, with
    /// `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// RFC 6455 §11.3.5: `Sec-WebSocket-Version` sent more than once (400).
    DuplicateVersion,
    /// RFC 6455 §4.2.1: no `Sec-WebSocket-Key` (400).
    MissingKey,
    /// RFC 6455 §11.3.1: `Sec-WebSocket-Key` sent more than once (400).
    DuplicateKey,
    /// RFC 6455 §4.2.1: the key is not base64 of 16 bytes (400).
    InvalidKey,
    /// RFC 6455 §4.1: a `Sec-WebSocket-Protocol` element is not a token (400).
    MalformedProtocols,
    /// RFC 6455 §9.1: `Sec-WebSocket-Extensions` does not parse (400).
    MalformedExtensions(ExtensionError),
}

impl HandshakeError {
    /// The HTTP status this error earns.
    pub fn status(&self) -> StatusCode {
        match self {
            HandshakeError::HeadTooLarge { .. } | HandshakeError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HandshakeError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HandshakeError::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            HandshakeError::MalformedRequest { .. }
            | HandshakeError::UnsupportedHttpVersion
            | HandshakeError::MissingHost
            | HandshakeError::DuplicateHost
            | HandshakeError::MissingUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::DuplicateVersion
            | HandshakeError::MissingKey
            | HandshakeError::DuplicateKey
            | HandshakeError::InvalidKey
            | HandshakeError::MalformedProtocols
            | HandshakeError::MalformedExtensions(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Appends the complete HTTP response for this error: its status, the
    /// fields the status calls for (`Allow: GET` on 405,
    /// `Sec-WebSocket-Version: 13` on 426), `Connection: close` and this
    /// error's text as the body.
    ///
    /// ```
    /// use ferrows::proto::handshake::HandshakeError;
    ///
    /// let mut out = Vec::new();
    /// HandshakeError::UnsupportedVersion.write_response(&mut out);
    /// let text = String::from_utf8(out).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    /// ```
    pub fn write_response(&self, out: &mut Vec<u8>) {
        let headers: &[(&str, &str)] = match self {
            // RFC 9110 §15.5.6: a 405 response MUST carry `Allow`.
            HandshakeError::MethodNotAllowed => &[("Allow", "GET")],
            // RFC 6455 §4.4: answer with the versions the server speaks.
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
            _ => &[],
        };
        write_response_unchecked(self.status(), headers, &self.to_string(), out);
    }

    pub(crate) fn from_head(err: HeadError, limits: super::HandshakeLimits) -> Self {
        match err {
            HeadError::TooLarge => HandshakeError::HeadTooLarge { limit: limits.max_head_bytes },
            HeadError::TooManyHeaders => HandshakeError::TooManyHeaders { limit: limits.max_headers },
            HeadError::Malformed(reason) => HandshakeError::MalformedRequest { reason },
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::HeadTooLarge { limit } => {
                write!(f, "request head larger than {limit} bytes")
            }
            HandshakeError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields")
            }
            HandshakeError::MalformedRequest { reason } => write!(f, "malformed request: {reason}"),
            HandshakeError::MethodNotAllowed => f.write_str("WebSocket handshake must use GET"),
            HandshakeError::UnsupportedHttpVersion => f.write_str("WebSocket handshake requires HTTP/1.1"),
            HandshakeError::MissingHost => f.write_str("missing Host"),
            HandshakeError::DuplicateHost => f.write_str("more than one Host"),
            HandshakeError::MissingUpgrade => f.write_str("Upgrade must include websocket"),
            HandshakeError::MissingConnectionUpgrade => f.write_str("Connection must include Upgrade"),
            HandshakeError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version must be 13"),
            HandshakeError::DuplicateVersion => f.write_str("more than one Sec-WebSocket-Version"),
            HandshakeError::MissingKey => f.write_str("missing Sec-WebSocket-Key"),
            HandshakeError::DuplicateKey => f.write_str("more than one Sec-WebSocket-Key"),
            HandshakeError::InvalidKey => f.write_str("Sec-WebSocket-Key must be base64 of 16 bytes"),
            HandshakeError::MalformedProtocols => f.write_str("malformed Sec-WebSocket-Protocol"),
            HandshakeError::MalformedExtensions(err) => {
                write!(f, "malformed Sec-WebSocket-Extensions: {err}")
            }
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::MalformedExtensions(err) => Some(err),
            _ => None,
        }
    }
}

/// Why a server's response to our request was refused (RFC 6455 §4.1, the
/// client's checks): the peer's fault.
///
/// The client answers none of these on the wire; it closes the connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The head went past `max_head_bytes`.
    HeadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The head had more than `max_headers` fields.
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// The bytes are not an HTTP/1.x response.
    MalformedResponse {
        /// What was wrong.
        reason: &'static str,
    },
    /// A 101 response must be HTTP/1.1 or later.
    UnsupportedHttpVersion,
    /// RFC 6455 §4.1: the status is not 101; the handshake failed.
    UnexpectedStatus {
        /// The status the server sent.
        status: u16,
    },
    /// RFC 6455 §4.1: `Upgrade` does not name `websocket`.
    MissingUpgrade,
    /// RFC 6455 §4.1: `Connection` does not name `Upgrade`.
    MissingConnectionUpgrade,
    /// RFC 6455 §4.1: no `Sec-WebSocket-Accept`.
    MissingAccept,
    /// RFC 6455 §11.3.3: `Sec-WebSocket-Accept` sent more than once.
    DuplicateAccept,
    /// RFC 6455 §4.1: `Sec-WebSocket-Accept` does not match our key.
    AcceptMismatch,
    /// RFC 6455 §4.1: the server chose a subprotocol we did not offer.
    ProtocolNotOffered,
    /// RFC 6455 §4.2.2: the server must choose at most one subprotocol.
    MultipleProtocols,
    /// RFC 6455 §4.1: the server accepted an extension we did not offer.
    ExtensionNotOffered {
        /// The extension's name (a token, checked by the parser).
        name: String,
    },
    /// RFC 6455 §9.1: `Sec-WebSocket-Extensions` does not parse.
    MalformedExtensions(ExtensionError),
}

impl ResponseError {
    /// The status the server sent, when that is why the handshake failed.
    pub fn status(&self) -> Option<u16> {
        match self {
            ResponseError::UnexpectedStatus { status } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn from_head(err: HeadError, limits: super::HandshakeLimits) -> Self {
        match err {
            HeadError::TooLarge => ResponseError::HeadTooLarge { limit: limits.max_head_bytes },
            HeadError::TooManyHeaders => ResponseError::TooManyHeaders { limit: limits.max_headers },
            HeadError::Malformed(reason) => ResponseError::MalformedResponse { reason },
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::HeadTooLarge { limit } => {
                write!(f, "response head larger than {limit} bytes")
            }
            ResponseError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields")
            }
            ResponseError::MalformedResponse { reason } => {
                write!(f, "malformed response: {reason}")
            }
            ResponseError::UnsupportedHttpVersion => f.write_str("101 response must be HTTP/1.1"),
            ResponseError::UnexpectedStatus { status } => {
                write!(f, "server answered {status} instead of 101")
            }
            ResponseError::MissingUpgrade => f.write_str("Upgrade must be websocket"),
            ResponseError::MissingConnectionUpgrade => f.write_str("Connection must include Upgrade"),
            ResponseError::MissingAccept => f.write_str("missing Sec-WebSocket-Accept"),
            ResponseError::DuplicateAccept => f.write_str("more than one Sec-WebSocket-Accept"),
            ResponseError::AcceptMismatch => f.write_str("Sec-WebSocket-Accept does not match the key"),
            ResponseError::ProtocolNotOffered => f.write_str("server chose a subprotocol that was not offered"),
            ResponseError::MultipleProtocols => f.write_str("server chose several subprotocols"),
            ResponseError::ExtensionNotOffered { name } => {
                write!(f, "server accepted extension {name}, which was not offered")
            }
            ResponseError::MalformedExtensions(err) => {
                write!(f, "malformed Sec-WebSocket-Extensions: {err}")
            }
        }
    }
}

impl std::error::Error for ResponseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResponseError::MalformedExtensions(err) => Some(err),
            _ => None,
        }
    }
}

/// The caller asked for something the protocol does not allow; no peer is at
/// fault and nothing was written.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeUsageError {
    /// The client URL is not a usable `ws:` or `wss:` URL.
    Url(UrlError),
    /// RFC 6455 §4.2.2: the server may only choose a subprotocol the client
    /// offered.
    ProtocolNotOffered {
        /// The subprotocol asked for.
        protocol: String,
    },
    /// RFC 6455 §4.1: a subprotocol must be a non-empty token.
    InvalidProtocol {
        /// The subprotocol asked for.
        protocol: String,
    },
    /// RFC 6455 §4.1: offered subprotocols "MUST all be unique strings".
    DuplicateProtocol {
        /// The repeated subprotocol.
        protocol: String,
    },
    /// RFC 6455 §9.1: the server may only accept extensions the client
    /// offered.
    ExtensionNotOffered {
        /// The extension's name.
        name: String,
    },
    /// The `Sec-WebSocket-Extensions` value given does not follow RFC 6455
    /// §9.1.
    InvalidExtensions(ExtensionError),
    /// A header name that is not a token.
    InvalidHeaderName {
        /// The name given.
        name: String,
    },
    /// A header value with a control character (CR, LF, NUL, …).
    InvalidHeaderValue {
        /// The field's name.
        name: String,
    },
    /// A field this module writes itself (`Upgrade`, `Sec-WebSocket-Accept`,
    /// `Content-Length`, …) given as an extra header.
    ReservedHeader {
        /// The field's name.
        name: String,
    },
}

impl fmt::Display for HandshakeUsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeUsageError::Url(err) => write!(f, "invalid WebSocket URL: {err}"),
            HandshakeUsageError::ProtocolNotOffered { protocol } => {
                write!(f, "subprotocol {protocol:?} was not offered by the client")
            }
            HandshakeUsageError::InvalidProtocol { protocol } => {
                write!(f, "subprotocol {protocol:?} is not a token")
            }
            HandshakeUsageError::DuplicateProtocol { protocol } => {
                write!(f, "subprotocol {protocol:?} offered twice")
            }
            HandshakeUsageError::ExtensionNotOffered { name } => {
                write!(f, "extension {name:?} was not offered by the client")
            }
            HandshakeUsageError::InvalidExtensions(err) => {
                write!(f, "invalid Sec-WebSocket-Extensions value: {err}")
            }
            HandshakeUsageError::InvalidHeaderName { name } => {
                write!(f, "header name {name:?} is not a token")
            }
            HandshakeUsageError::InvalidHeaderValue { name } => {
                write!(f, "value of header {name:?} has a control character")
            }
            HandshakeUsageError::ReservedHeader { name } => {
                write!(f, "header {name:?} is written by the handshake itself")
            }
        }
    }
}

impl std::error::Error for HandshakeUsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeUsageError::Url(err) => Some(err),
            HandshakeUsageError::InvalidExtensions(err) => Some(err),
            _ => None,
        }
    }
}

impl From<UrlError> for HandshakeUsageError {
    fn from(err: UrlError) -> Self {
        HandshakeUsageError::Url(err)
    }
}

impl super::head::FromHeadError for HandshakeError {
    fn from_head(err: HeadError, limits: super::HandshakeLimits) -> Self {
        HandshakeError::from_head(err, limits)
    }
}

impl super::head::FromHeadError for ResponseError {
    fn from_head(err: HeadError, limits: super::HandshakeLimits) -> Self {
        ResponseError::from_head(err, limits)
    }
}
