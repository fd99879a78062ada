//! The client side: the opening request and the checks on the server's
//! response (RFC 6455 §4.1).

use super::accept::{accept_key, client_key};
use super::error::{HandshakeUsageError, ResponseError};
use super::extensions::{parse_extensions, parse_extensions_into, ExtensionOffer};
#[cfg(test)]
use super::head::HeadReader;
use super::head::{complete_len, HeadError, StickyReader};
use super::headers::{is_token, list_elements, Headers};
use super::response::{check_extra_header, push_header};
use super::url::WsUrl;
use super::{HandshakeLimits, Status};

/// What a client asks for: the URL, subprotocols, extensions and extra
/// fields. [`ClientRequest::encode`] writes the request.
///
/// ```
/// use ferrows::proto::handshake::{ClientRequest, Status};
///
/// let request = ClientRequest::new("ws://example.com:9001/chat?room=1")?
///     .protocol("chat")
///     .header("Origin", "http://example.com");
/// let mut out = Vec::new();
/// let mut handshake = request.encode(b"the sample nonce", &mut out)?;
/// assert_eq!(
///     out,
///     b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com:9001\r\nUpgrade: websocket\r\n\
///       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\
///       Origin: http://example.com\r\n\r\n"
/// );
///
/// let reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///     Sec-WebSocket-Protocol: chat\r\n\r\n";
/// match handshake.feed(reply) {
///     Ok(Status::Complete { head: response, rest }) => {
///         assert_eq!(response.protocol(), Some("chat"));
///         assert!(rest.is_empty());
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    url: WsUrl,
    protocols: Vec<String>,
    extensions: Option<String>,
    headers: Vec<(String, String)>,
    limits: HandshakeLimits,
}

impl ClientRequest {
    /// A request for `url` (`ws://` or `wss://`), with default limits.
    pub fn new(url: &str) -> Result<Self, HandshakeUsageError> {
        Ok(ClientRequest::from_url(WsUrl::parse(url)?))
    }

    /// A request for an already parsed URL.
    pub fn from_url(url: WsUrl) -> Self {
        ClientRequest {
            url,
            protocols: Vec::new(),
            extensions: None,
            headers: Vec::new(),
            limits: HandshakeLimits::default(),
        }
    }

    /// The URL asked for.
    pub fn url(&self) -> &WsUrl {
        &self.url
    }

    /// Offer a subprotocol; offers are sent in the order given, most
    /// preferred first. Each must be a token, and unique (RFC 6455 §4.1).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Offer extensions: `value` is sent as `Sec-WebSocket-Extensions` and
    /// must follow RFC 6455 §9.1.
    pub fn extensions(mut self, value: impl Into<String>) -> Self {
        self.extensions = Some(value.into());
        self
    }

    /// Add a request field (e.g. `Origin`, `Authorization`). The name must
    /// be a token, the value must hold no control character, and the fields
    /// the handshake writes itself are refused.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Limits on the server's response head.
    pub fn limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Appends the opening handshake (RFC 6455 §4.1) to `out` and returns
    /// the reader for the server's response.
    ///
    /// `nonce` is the 16 random bytes behind `Sec-WebSocket-Key`; the
    /// caller draws them, fresh for each connection. On an error nothing is
    /// appended.
    pub fn encode(&self, nonce: &[u8; 16], out: &mut Vec<u8>) -> Result<ClientHandshake, HandshakeUsageError> {
        // RFC 6455 §4.1 (10): subprotocols are non-empty tokens, "and MUST all
        // be unique strings".
        for (i, protocol) in self.protocols.iter().enumerate() {
            if !is_token(protocol.as_bytes()) {
                return Err(HandshakeUsageError::InvalidProtocol { protocol: protocol.clone() });
            }
            if self.protocols[..i].contains(protocol) {
                return Err(HandshakeUsageError::DuplicateProtocol { protocol: protocol.clone() });
            }
        }
        // RFC 6455 §4.1 (11) and §9.1.
        let offered = match &self.extensions {
            Some(value) => parse_extensions(value.as_bytes()).map_err(HandshakeUsageError::InvalidExtensions)?,
            None => Vec::new(),
        };
        for (name, value) in &self.headers {
            check_extra_header(name, value, RESERVED_REQUEST)?;
        }

        let key = client_key(nonce);
        // RFC 6455 §4.1 (2): "GET /resource name/ HTTP/1.1".
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.url.resource().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // RFC 6455 §4.1 (4): Host, with the port unless it is the default.
        push_header(out, "Host", self.url.host_header().as_bytes());
        // RFC 6455 §4.1 (5), (6), (7), (9).
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        push_header(out, "Sec-WebSocket-Key", key.as_bytes());
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
        if !self.protocols.is_empty() {
            push_header(out, "Sec-WebSocket-Protocol", self.protocols.join(", ").as_bytes());
        }
        if let Some(value) = &self.extensions {
            push_header(out, "Sec-WebSocket-Extensions", value.as_bytes());
        }
        for (name, value) in &self.headers {
            push_header(out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");

        Ok(ClientHandshake {
            head: StickyReader::new(self.limits),
            offer: Offer {
                expected_accept: accept_key(&key),
                protocols: self.protocols.clone(),
                extensions: offered.into_iter().map(|offer| offer.name).collect(),
            },
            key,
        })
    }
}

/// Fields of the opening request that only [`ClientRequest::encode`] writes.
const RESERVED_REQUEST: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// Reads and checks the server's response to our opening handshake.
///
/// Fed in any chunking, like [`ServerHandshake`](super::ServerHandshake),
/// under the same kind of limits. After an error, every later call returns
/// that error.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    head: StickyReader<ResponseError>,
    key: String,
    offer: Offer,
}

/// What the request offered, which the response must match.
#[derive(Debug, Clone)]
struct Offer {
    expected_accept: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
}

impl ClientHandshake {
    /// The `Sec-WebSocket-Key` we sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `Sec-WebSocket-Accept` value the server must send back.
    pub fn expected_accept(&self) -> &str {
        &self.offer.expected_accept
    }

    /// How many bytes of an incomplete head are buffered.
    pub fn buffered(&self) -> usize {
        self.head.reader.buffered()
    }

    /// Takes the next bytes from the server.
    ///
    /// Returns `Partial` until the head is complete, then the accepted
    /// [`Response`] and the bytes that followed it (the first frames). Any
    /// failure of RFC 6455 §4.1's checks is an error; the client then closes
    /// the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Status<Response>, ResponseError> {
        let limits = self.head.reader.limits();
        let offer = &self.offer;
        self.head.feed(bytes, |head, slots| {
            let (version, status, headers) =
                parse_response(head, slots).map_err(|err| ResponseError::from_head(err, limits))?;
            offer.validate(version, status, headers)
        })
    }

    #[cfg(test)]
    pub(crate) fn reader(&self) -> &HeadReader {
        &self.head.reader
    }
}

impl Offer {
    /// RFC 6455 §4.1: "the client MUST validate the server's response as
    /// follows".
    fn validate(&self, minor_version: u8, status: u16, headers: Headers) -> Result<Response, ResponseError> {
        // (1) "If the status code received from the server is not 101, the
        // client handles the response per HTTP procedures"; here, it fails.
        if status != 101 {
            return Err(ResponseError::UnexpectedStatus { status });
        }
        // RFC 9110 §15.2: 1xx responses do not exist in HTTP/1.0.
        if minor_version == 0 {
            return Err(ResponseError::UnsupportedHttpVersion);
        }
        // (2) Upgrade names "websocket", ASCII case-insensitively.
        if !headers.contains_token("Upgrade", "websocket") {
            return Err(ResponseError::MissingUpgrade);
        }
        // (3) Connection holds the token "Upgrade", ASCII case-insensitively.
        if !headers.contains_token("Connection", "Upgrade") {
            return Err(ResponseError::MissingConnectionUpgrade);
        }
        // (4) Sec-WebSocket-Accept is base64(SHA-1(key + GUID)); RFC 6455
        // §11.3.3: it MUST NOT appear more than once.
        match headers.count("Sec-WebSocket-Accept") {
            0 => return Err(ResponseError::MissingAccept),
            1 => {}
            _ => return Err(ResponseError::DuplicateAccept),
        }
        if headers.get("Sec-WebSocket-Accept") != Some(self.expected_accept.as_bytes()) {
            return Err(ResponseError::AcceptMismatch);
        }
        // (5) Only extensions that were offered.
        let mut extensions = Vec::new();
        for value in headers.get_all("Sec-WebSocket-Extensions") {
            parse_extensions_into(value, &mut extensions).map_err(ResponseError::MalformedExtensions)?;
        }
        if let Some(extension) = extensions.iter().find(|accepted| !self.extensions.contains(&accepted.name)) {
            return Err(ResponseError::ExtensionNotOffered { name: extension.name.clone() });
        }
        // (6) Only a subprotocol that was offered; RFC 6455 §4.2.2 and
        // §11.3.4: the server picks one, on one line.
        let protocol = match headers.count("Sec-WebSocket-Protocol") {
            0 => None,
            1 => {
                let value = headers.get("Sec-WebSocket-Protocol").unwrap_or_default();
                let mut elements = list_elements(value);
                let (Some(chosen), None) = (elements.next(), elements.next()) else {
                    return Err(if value.contains(&b',') {
                        ResponseError::MultipleProtocols
                    } else {
                        ResponseError::ProtocolNotOffered
                    });
                };
                let offered = self
                    .protocols
                    .iter()
                    .find(|offered| offered.as_bytes() == chosen)
                    .ok_or(ResponseError::ProtocolNotOffered)?;
                Some(offered.clone())
            }
            _ => return Err(ResponseError::MultipleProtocols),
        };
        Ok(Response { headers, protocol, extensions })
    }
}

/// Parses a complete response head with httparse.
fn parse_response(head: &[u8], slots: usize) -> Result<(u8, u16, Headers), HeadError> {
    let mut fields = vec![httparse::EMPTY_HEADER; slots];
    let mut response = httparse::Response::new(&mut fields);
    complete_len(response.parse(head), head.len())?;
    // httparse fills these in before it reports Complete.
    let (Some(version), Some(code)) = (response.version, response.code) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    let mut headers = Headers::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        headers.push(field.name, field.value);
    }
    Ok((version, code, headers))
}

/// A server's 101 response that passed RFC 6455 §4.1: the connection is
/// open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    headers: Headers,
    protocol: Option<String>,
    extensions: Vec<ExtensionOffer>,
}

impl Response {
    /// The subprotocol the server chose, one we offered.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The extensions the server accepted, with their parameters, in order;
    /// each is one we offered.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// All header fields of the response.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}

#[cfg(test)]
mod tests;
