//! Header fields as received, and the token-list rules that read them.

use std::fmt;

/// One header field as received: its name and its raw value bytes.
///
/// The value is kept as bytes because HTTP allows `obs-text` (bytes
/// 0x80–0xFF) in field values; [`Header::value_str`] gives it as text when
/// it is UTF-8.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Header {
    name: String,
    value: Vec<u8>,
}

impl Header {
    /// The field name as sent (compare it case-insensitively).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw field value, without leading or trailing whitespace.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The field value as text, or `None` when it is not UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &String::from_utf8_lossy(&self.value))
            .finish()
    }
}

/// The header fields of a request or response, in the order received.
///
/// Lookups compare names case-insensitively (RFC 9110 §5.1). A field may
/// appear several times; [`Headers::get`] gives the first and
/// [`Headers::get_all`] every one.
///
/// ```
/// use ferrows::proto::handshake::{HandshakeLimits, ServerHandshake, Status};
///
/// let mut handshake = ServerHandshake::new(HandshakeLimits::default());
/// let head = b"GET / HTTP/1.1\r\nhost: a\r\nX-Tag: one\r\nx-tag: two\r\n\r\n";
/// let Ok(Status::Complete { head: request, .. }) = handshake.feed(head) else {
///     panic!("complete request expected");
/// };
/// let headers = request.headers();
/// assert_eq!(headers.get("Host"), Some(&b"a"[..]));
/// assert_eq!(headers.get_all("X-TAG").collect::<Vec<_>>(), [&b"one"[..], &b"two"[..]]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    fields: Vec<Header>,
}

impl Headers {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Headers { fields: Vec::with_capacity(capacity) }
    }

    pub(crate) fn push(&mut self, name: &str, value: &[u8]) {
        self.fields.push(Header { name: name.to_owned(), value: trim_ows(value).to_vec() });
    }

    /// Number of header fields, repeated names counted each time.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no header fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All header fields in the order received.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.fields.iter()
    }

    /// The value of the first field called `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
    }

    /// The value of the first field called `name` (any case), as text;
    /// `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field called `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
    }

    /// How many fields are called `name` (any case).
    pub fn count(&self, name: &str) -> usize {
        self.fields.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count()
    }

    /// Whether the comma-separated lists in the fields called `name` hold
    /// `token`, compared case-insensitively (as `Connection` and `Upgrade`
    /// values are, RFC 9110 §7.6.1 and §7.8).
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).flat_map(list_elements).any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// The non-empty elements of a comma-separated list, trimmed.
///
/// RFC 9110 §5.6.1: a recipient accepts empty list elements and ignores them.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|element| !element.is_empty())
}

/// `value` without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// RFC 9110 §5.6.2 `token = 1*tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `value` may be sent as a field value we write: no CR, LF, NUL or
/// other control byte, so a caller's string can never end the line early
/// (RFC 9110 §5.5 forbids them; they are how response splitting works).
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_elements_skip_empty_and_trim() {
        let items: Vec<&[u8]> = list_elements(b" a ,, b\t,").collect();
        assert_eq!(items, [&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn trim_ows_edges() {
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b" x y "), b"x y");
    }

    #[test]
    fn rfc9110_5_6_2_token_chars() {
        assert!(is_token(b"permessage-deflate"));
        assert!(is_token(b"x!#$%&'*+-.^_`|~9"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a,b"));
        assert!(!is_token(b"a\"b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn field_values_reject_line_breaks() {
        assert!(is_field_value(b"text/plain; charset=utf-8"));
        assert!(!is_field_value(b"a\r\nSet-Cookie: x"));
        assert!(!is_field_value(b"a\0"));
    }

    #[test]
    fn contains_token_reads_every_line() {
        let mut h = Headers::default();
        h.push("Connection", b"keep-alive");
        h.push("connection", b" foo, UPGRADE ");
        assert!(h.contains_token("CONNECTION", "upgrade"));
        assert!(!h.contains_token("Connection", "close"));
        assert_eq!(h.count("connection"), 2);
    }
}
