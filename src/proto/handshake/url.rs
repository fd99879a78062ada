//! `ws:` and `wss:` URLs (RFC 6455 §3).
//!
//! ```text
//! ws-URI  = "ws:"  "//" host [ ":" port ] path [ "?" query ]
//! wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]
//! ```
//!
//! Only what a client needs to open a connection and write its request is
//! parsed; anything else in the URL is refused rather than guessed at.

use core::net::Ipv6Addr;
use std::fmt;
use std::str::FromStr;

/// A parsed `ws://` or `wss://` URL.
///
/// ```
/// use ferrows::proto::handshake::WsUrl;
///
/// let url: WsUrl = "wss://[::1]:9001/chat?room=7".parse()?;
/// assert!(url.is_secure());
/// assert_eq!(url.host(), "::1");
/// assert_eq!(url.port(), 9001);
/// assert_eq!(url.resource(), "/chat?room=7");
/// assert_eq!(url.host_header(), "[::1]:9001");
///
/// let url = WsUrl::parse("ws://example.com")?;
/// assert_eq!((url.port(), url.resource(), url.host_header().as_str()), (80, "/", "example.com"));
/// # Ok::<(), ferrows::proto::handshake::UrlError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    secure: bool,
    host: String,
    port: u16,
    resource: String,
}

/// Why a string is not a usable WebSocket URL.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlError {
    /// No `scheme:` at the start.
    MissingScheme,
    /// RFC 6455 §3: the scheme is neither `ws` nor `wss`.
    UnsupportedScheme,
    /// `user:password@` is not supported (credentials do not belong in a
    /// WebSocket URL).
    UserInfo,
    /// RFC 6455 §3: "Fragment identifiers ... MUST NOT be used".
    Fragment,
    /// No `//host` after the scheme, or an empty host.
    MissingHost,
    /// The host is neither a name, an IPv4 address nor a bracketed IPv6
    /// address.
    InvalidHost,
    /// The port is not a number from 1 to 65535.
    InvalidPort,
    /// A character that must be percent-encoded in a path or query.
    InvalidCharacter {
        /// Byte offset of the character in the URL.
        offset: usize,
    },
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::MissingScheme => f.write_str("missing scheme"),
            UrlError::UnsupportedScheme => f.write_str("scheme must be ws or wss"),
            UrlError::UserInfo => f.write_str("user information is not supported"),
            UrlError::Fragment => f.write_str("fragments are not allowed"),
            UrlError::MissingHost => f.write_str("missing host"),
            UrlError::InvalidHost => f.write_str("invalid host"),
            UrlError::InvalidPort => f.write_str("invalid port"),
            UrlError::InvalidCharacter { offset } => {
                write!(f, "character at byte {offset} must be percent-encoded")
            }
        }
    }
}

impl std::error::Error for UrlError {}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (the scheme in any case).
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let (scheme, rest) = url.split_once(':').ok_or(UrlError::MissingScheme)?;
        // RFC 6455 §3: only the ws and wss schemes; RFC 3986 §3.1: schemes
        // are case-insensitive.
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else if scheme.is_empty() || !scheme.bytes().all(is_scheme_char) {
            return Err(UrlError::MissingScheme);
        } else {
            return Err(UrlError::UnsupportedScheme);
        };
        // RFC 6455 §3: "Fragment identifiers are meaningless in the context
        // of WebSocket URIs and MUST NOT be used on these URIs."
        if url.contains('#') {
            return Err(UrlError::Fragment);
        }
        let rest = rest.strip_prefix("//").ok_or(UrlError::MissingHost)?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            // RFC 6455 §3: the default ports are 80 and 443; RFC 3986 §3.2.3:
            // an empty port means the default.
            None | Some("") => default_port(secure),
            Some(digits) => parse_port(digits)?,
        };

        let resource_offset = url.len() - resource.len();
        if let Some(at) = resource.bytes().position(|b| !is_resource_char(b)) {
            return Err(UrlError::InvalidCharacter { offset: resource_offset + at });
        }
        // RFC 6455 §3: an empty path is "/"; the query is kept as given.
        let resource = if resource.starts_with('/') { resource.to_owned() } else { format!("/{resource}") };

        Ok(WsUrl { secure, host: host.to_owned(), port, resource })
    }

    /// Whether the scheme is `wss` (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The host: a name, an IPv4 address, or an IPv6 address without its
    /// brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default when the URL has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The resource name sent in the request line: path and query
    /// (RFC 6455 §3).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.resource.split_once('?').map_or(self.resource.as_str(), |(path, _)| path)
    }

    /// The query (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.resource.split_once('?').map(|(_, query)| query)
    }

    /// The `Host` field value: the host (IPv6 in brackets) and the port
    /// unless it is the scheme's default (RFC 6455 §4.1, RFC 9110 §7.2).
    pub fn host_header(&self) -> String {
        let mut value = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port != default_port(self.secure) {
            value.push(':');
            value.push_str(&self.port.to_string());
        }
        value
    }
}

impl FromStr for WsUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<WsUrl, UrlError> {
        WsUrl::parse(url)
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.resource)
    }
}

fn default_port(secure: bool) -> u16 {
    if secure {
        443
    } else {
        80
    }
}

/// Splits `host[:port]` or `[v6]:port`; the port is still text.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]" (zone identifiers
        // and IPvFuture are not supported).
        let (literal, after) = bracketed.split_once(']').ok_or(UrlError::InvalidHost)?;
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::InvalidHost);
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlError::InvalidHost)?),
        };
        return Ok((literal, port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    // A conservative reg-name: what DNS names and IPv4 addresses use. The
    // value goes into the Host field verbatim, so nothing else is let in.
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
        return Err(UrlError::InvalidHost);
    }
    Ok((host, port))
}

fn parse_port(digits: &str) -> Result<u16, UrlError> {
    // `u16::from_str` would accept a leading `+`; a port is digits only.
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::InvalidPort);
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`, loosely.
fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// RFC 3986 §3.3 and §3.4: `pchar`, `/` and `?`; anything else in a path or
/// query must be percent-encoded.
fn is_resource_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            // unreserved
            b'-' | b'.' | b'_' | b'~'
            // pct-encoded
            | b'%'
            // sub-delims
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            | b':' | b'@' | b'/' | b'?'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_3_url_table() {
        // (url, secure, host, port, resource, Host field)
        let cases = [
            ("ws://example.com", false, "example.com", 80, "/", "example.com"),
            ("ws://example.com/", false, "example.com", 80, "/", "example.com"),
            ("wss://example.com", true, "example.com", 443, "/", "example.com"),
            ("WSS://Example.com:443/a", true, "Example.com", 443, "/a", "Example.com"),
            ("ws://example.com:80/a", false, "example.com", 80, "/a", "example.com"),
            ("ws://example.com:443/", false, "example.com", 443, "/", "example.com:443"),
            ("wss://example.com:80/", true, "example.com", 80, "/", "example.com:80"),
            ("ws://h:9001/p/q?x=1&y", false, "h", 9001, "/p/q?x=1&y", "h:9001"),
            ("ws://h?x", false, "h", 80, "/?x", "h"),
            ("ws://h:/p", false, "h", 80, "/p", "h"),
            ("ws://127.0.0.1:8080/", false, "127.0.0.1", 8080, "/", "127.0.0.1:8080"),
            ("ws://[::1]:9001/chat", false, "::1", 9001, "/chat", "[::1]:9001"),
            ("wss://[2001:db8::7]/", true, "2001:db8::7", 443, "/", "[2001:db8::7]"),
            ("ws://h/a%20b;c=d:e@f", false, "h", 80, "/a%20b;c=d:e@f", "h"),
        ];
        for (input, secure, host, port, resource, host_header) in cases {
            let url = WsUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.is_secure(), secure, "{input}");
            assert_eq!(url.host(), host, "{input}");
            assert_eq!(url.port(), port, "{input}");
            assert_eq!(url.resource(), resource, "{input}");
            assert_eq!(url.host_header(), host_header, "{input}");
        }
    }

    #[test]
    fn rfc6455_3_rejected_urls() {
        let cases = [
            ("example.com/chat", UrlError::MissingScheme),
            ("://h/", UrlError::MissingScheme),
            ("http://example.com/", UrlError::UnsupportedScheme),
            ("https://example.com/", UrlError::UnsupportedScheme),
            ("ws:example.com", UrlError::MissingHost),
            ("ws://", UrlError::MissingHost),
            ("ws:///path", UrlError::MissingHost),
            ("ws://:80/", UrlError::MissingHost),
            ("ws://user:pw@h/", UrlError::UserInfo),
            ("ws://user@h/", UrlError::UserInfo),
            ("ws://h/#frag", UrlError::Fragment),
            ("ws://h/p?q#", UrlError::Fragment),
            ("ws://h:0/", UrlError::InvalidPort),
            ("ws://h:65536/", UrlError::InvalidPort),
            ("ws://h:+80/", UrlError::InvalidPort),
            ("ws://h:8a/", UrlError::InvalidPort),
            ("ws://[::1/", UrlError::InvalidHost),
            ("ws://[nope]/", UrlError::InvalidHost),
            ("ws://[::1]x/", UrlError::InvalidHost),
            ("ws://[fe80::1%25eth0]/", UrlError::InvalidHost),
            ("ws://h h/", UrlError::InvalidHost),
            ("ws://h\r\nX: y/", UrlError::InvalidHost),
            ("ws://h/a b", UrlError::InvalidCharacter { offset: 8 }),
            ("ws://h/\r\n", UrlError::InvalidCharacter { offset: 7 }),
            ("ws://h/é", UrlError::InvalidCharacter { offset: 7 }),
        ];
        for (input, expected) in cases {
            assert_eq!(WsUrl::parse(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn path_and_query() {
        let url = WsUrl::parse("ws://h/a/b?c=d?e").unwrap();
        assert_eq!(url.path(), "/a/b");
        assert_eq!(url.query(), Some("c=d?e"));
        let url = WsUrl::parse("ws://h").unwrap();
        assert_eq!((url.path(), url.query()), ("/", None));
    }

    #[test]
    fn display_round_trips() {
        for input in ["ws://h/", "wss://[::1]:9/x?y", "ws://a.b:8080/c"] {
            let url = WsUrl::parse(input).unwrap();
            assert_eq!(WsUrl::parse(&url.to_string()).unwrap(), url);
        }
    }
}
