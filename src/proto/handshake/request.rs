//! A parsed HTTP request, and its validation as a WebSocket upgrade.

use super::accept::is_valid_key;
use super::error::HandshakeError;
use super::extensions::{parse_extensions_into, ExtensionOffer};
use super::head::{complete_len, HeadError};
use super::headers::{is_token, list_elements, trim_ows, Headers};
use super::server::UpgradeRequest;

/// The HTTP version of a request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0: served as plain HTTP, never upgraded.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// An HTTP request head, parsed but not yet judged.
///
/// Any well-formed HTTP/1.x request comes out as a `Request`, so that a
/// runtime can route plain HTTP requests (health, metrics, …) elsewhere;
/// [`Request::validate_upgrade`] decides whether it is a valid WebSocket
/// handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: Option<String>,
    version: HttpVersion,
    headers: Headers,
}

impl Request {
    /// Parses a complete head (ending in CRLF CRLF) with httparse.
    pub(crate) fn parse(head: &[u8], slots: usize) -> Result<Request, HeadError> {
        let mut fields = vec![httparse::EMPTY_HEADER; slots];
        let mut request = httparse::Request::new(&mut fields);
        complete_len(request.parse(head), head.len())?;
        // httparse fills these in before it reports Complete; a None here
        // would be an httparse bug, and is still not a panic.
        let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version) else {
            return Err(HeadError::Malformed("incomplete request line"));
        };
        let version = match minor {
            0 => HttpVersion::Http10,
            _ => HttpVersion::Http11,
        };
        let (path, query) = split_target(target);
        let mut headers = Headers::with_capacity(request.headers.len());
        for field in request.headers.iter() {
            headers.push(field.name, field.value);
        }
        Ok(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            version,
            headers,
        })
    }

    /// The request method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path of the request target, without the query (`/` when the
    /// target is in absolute form with an empty path).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query of the request target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The HTTP version.
    pub fn version(&self) -> HttpVersion {
        self.version
    }

    /// All header fields, in order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// The `Host` field, when present and UTF-8.
    pub fn host(&self) -> Option<&str> {
        self.headers.get_str("Host")
    }

    /// The `Origin` field (RFC 6455 §10.2: what a browser says the script's
    /// origin is), when present and UTF-8.
    pub fn origin(&self) -> Option<&str> {
        self.headers.get_str("Origin")
    }

    /// The `Sec-WebSocket-Key` field, when present and UTF-8 (not checked).
    pub fn key(&self) -> Option<&str> {
        self.headers.get_str("Sec-WebSocket-Key")
    }

    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order of the
    /// client's preference, across every line of the field, trimmed; empty
    /// and non-UTF-8 elements are skipped (not checked further here).
    pub fn protocols(&self) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .get_all("Sec-WebSocket-Protocol")
            .flat_map(list_elements)
            .filter_map(|element| std::str::from_utf8(element).ok())
    }

    /// The extensions offered in `Sec-WebSocket-Extensions`, in order,
    /// across every line of the field (RFC 6455 §9.1).
    pub fn extensions(&self) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        let mut offers = Vec::new();
        for value in self.headers.get_all("Sec-WebSocket-Extensions") {
            parse_extensions_into(value, &mut offers).map_err(HandshakeError::MalformedExtensions)?;
        }
        Ok(offers)
    }

    /// Whether the request asks for a WebSocket upgrade (its `Upgrade`
    /// field names `websocket`).
    ///
    /// This is the routing test; it does not mean the handshake is valid:
    /// [`Request::validate_upgrade`] says that.
    pub fn is_upgrade(&self) -> bool {
        self.headers.contains_token("Upgrade", "websocket")
    }

    /// Checks the request against RFC 6455 §4.2.1 and gathers what the
    /// server needs to answer it.
    ///
    /// An error carries the status it earns; write it with
    /// [`HandshakeError::write_response`].
    pub fn validate_upgrade(&self) -> Result<UpgradeRequest, HandshakeError> {
        // RFC 6455 §4.2.1 (1): "An HTTP/1.1 or higher GET request".
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if self.version == HttpVersion::Http10 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }

        // RFC 6455 §4.2.1 (2): "A |Host| header field containing the server's
        // authority"; RFC 9112 §3.2: more than one Host earns 400.
        match self.headers.count("Host") {
            0 => return Err(HandshakeError::MissingHost),
            1 => {}
            _ => return Err(HandshakeError::DuplicateHost),
        }
        if self.headers.get("Host").is_some_and(<[u8]>::is_empty) {
            return Err(HandshakeError::MissingHost);
        }

        // RFC 6455 §4.2.1 (3): "An |Upgrade| header field containing the value
        // "websocket", treated as an ASCII case-insensitive value".
        if !self.headers.contains_token("Upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }

        // RFC 6455 §4.2.1 (4): "A |Connection| header field that includes the
        // token "Upgrade", treated as an ASCII case-insensitive value".
        if !self.headers.contains_token("Connection", "Upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }

        // RFC 6455 §4.2.1 (6): "A |Sec-WebSocket-Version| header field, with a
        // value of 13"; §4.4: otherwise 426 listing the versions we speak.
        // Checked before the key, so that a client of another version (whose
        // key may differ) learns which version to retry with.
        // RFC 6455 §11.3.5: it MUST NOT appear more than once in a request.
        match self.headers.count("Sec-WebSocket-Version") {
            0 => return Err(HandshakeError::UnsupportedVersion),
            1 => {}
            _ => return Err(HandshakeError::DuplicateVersion),
        }
        if self.headers.get("Sec-WebSocket-Version") != Some(&b"13"[..]) {
            return Err(HandshakeError::UnsupportedVersion);
        }

        // RFC 6455 §4.2.1 (5): "A |Sec-WebSocket-Key| header field with a
        // base64-encoded value that, when decoded, is 16 bytes in length";
        // §11.3.1: it MUST NOT appear more than once in a request.
        let key = match self.headers.count("Sec-WebSocket-Key") {
            0 => return Err(HandshakeError::MissingKey),
            1 => self.key().ok_or(HandshakeError::InvalidKey)?,
            _ => return Err(HandshakeError::DuplicateKey),
        };
        if !is_valid_key(key.as_bytes()) {
            return Err(HandshakeError::InvalidKey);
        }

        // RFC 6455 §4.2.1 (8) and §4.1: each offered subprotocol is a token.
        let mut protocols = Vec::new();
        for value in self.headers.get_all("Sec-WebSocket-Protocol") {
            for element in value.split(|&b| b == b',').map(trim_ows) {
                if element.is_empty() {
                    // RFC 9110 §5.6.1: empty list elements are ignored.
                    continue;
                }
                if !is_token(element) {
                    return Err(HandshakeError::MalformedProtocols);
                }
                // A token is ASCII, so this is never lossy.
                protocols.push(String::from_utf8_lossy(element).into_owned());
            }
        }

        // RFC 6455 §4.2.1 (9) and §9.1.
        let extensions = self.extensions()?;

        Ok(UpgradeRequest::new(key.to_owned(), protocols, extensions))
    }
}

/// Splits a request target into path and query.
///
/// RFC 9112 §3.2.2: a server MUST accept the absolute form
/// (`GET ws://host/path HTTP/1.1`); its scheme and authority are dropped
/// here, and the authority is left to the `Host` field.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let origin_form = if target.starts_with('/') {
        target
    } else if let Some((_, after_scheme)) = target.split_once("://") {
        after_scheme.find(['/', '?']).map_or("", |at| &after_scheme[at..])
    } else {
        // `*` (OPTIONS) or an authority (CONNECT): kept whole as the path.
        target
    };
    let (path, query) = match origin_form.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin_form, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splitting() {
        let cases = [
            ("/", ("/", None)),
            ("/chat?room=1&x", ("/chat", Some("room=1&x"))),
            ("/a?", ("/a", Some(""))),
            ("/a?b?c", ("/a", Some("b?c"))),
            ("ws://h:1/p?q", ("/p", Some("q"))),
            ("http://h", ("/", None)),
            ("http://h?q", ("/", Some("q"))),
            ("*", ("*", None)),
        ];
        for (target, expected) in cases {
            assert_eq!(split_target(target), expected, "{target}");
        }
    }

    #[test]
    fn parse_keeps_repeated_headers_in_order() {
        let head = b"GET /x?y HTTP/1.1\r\nA: 1\r\nb: 2\r\na:3 \r\n\r\n";
        let request = Request::parse(head, 8).unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/x");
        assert_eq!(request.query(), Some("y"));
        assert_eq!(request.version(), HttpVersion::Http11);
        let values: Vec<&[u8]> = request.headers().get_all("a").collect();
        assert_eq!(values, [&b"1"[..], &b"3"[..]]);
    }

    #[test]
    fn parse_rejects_bare_lf_before_crlf_end() {
        let head = b"GET / HTTP/1.1\nA: 1\n\nB: 2\r\n\r\n";
        assert!(matches!(Request::parse(head, 8), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn parse_too_many_headers() {
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(Request::parse(head, 1), Err(HeadError::TooManyHeaders));
    }
}
