//! Status codes and the complete HTTP responses this module writes.

use std::fmt;

use super::error::HandshakeUsageError;
use super::headers::{is_field_value, is_token};

/// An HTTP status code (RFC 9110 §15), 100 to 599.
///
/// ```
/// use ferrows::proto::handshake::StatusCode;
///
/// assert_eq!(StatusCode::UPGRADE_REQUIRED.as_u16(), 426);
/// assert_eq!(StatusCode::new(418).map(StatusCode::reason_phrase), Some("I'm a teapot"));
/// assert_eq!(StatusCode::new(1000), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 101: the handshake succeeded (RFC 6455 §4.2.2).
    pub const SWITCHING_PROTOCOLS: StatusCode = StatusCode(101);
    /// 200.
    pub const OK: StatusCode = StatusCode(200);
    /// 400: the request is not a valid handshake.
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 401.
    pub const UNAUTHORIZED: StatusCode = StatusCode(401);
    /// 403: e.g. an `Origin` the server refuses (RFC 6455 §4.2.2).
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    /// 404: no WebSocket service at this path.
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    /// 405: the handshake method must be GET.
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    /// 411: a body without a `Content-Length`.
    pub const LENGTH_REQUIRED: StatusCode = StatusCode(411);
    /// 413: a body over the server's limit.
    pub const CONTENT_TOO_LARGE: StatusCode = StatusCode(413);
    /// 426: unsupported `Sec-WebSocket-Version` (RFC 6455 §4.4).
    pub const UPGRADE_REQUIRED: StatusCode = StatusCode(426);
    /// 429.
    pub const TOO_MANY_REQUESTS: StatusCode = StatusCode(429);
    /// 431: the head went over the caller's limits.
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: StatusCode = StatusCode(431);
    /// 500.
    pub const INTERNAL_SERVER_ERROR: StatusCode = StatusCode(500);
    /// 503: e.g. the server is at its connection limit.
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);

    /// The status `code`, or `None` outside 100–599.
    pub const fn new(code: u16) -> Option<StatusCode> {
        if matches!(code, 100..=599) {
            Some(StatusCode(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// The standard reason phrase (RFC 9110 §15), or `""` for a code that
    /// has none; an empty reason phrase is valid (RFC 9112 §4).
    pub fn reason_phrase(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            101 => "Switching Protocols",
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            204 => "No Content",
            206 => "Partial Content",
            301 => "Moved Permanently",
            302 => "Found",
            303 => "See Other",
            304 => "Not Modified",
            307 => "Temporary Redirect",
            308 => "Permanent Redirect",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            408 => "Request Timeout",
            409 => "Conflict",
            410 => "Gone",
            411 => "Length Required",
            413 => "Content Too Large",
            414 => "URI Too Long",
            415 => "Unsupported Media Type",
            418 => "I'm a teapot",
            421 => "Misdirected Request",
            422 => "Unprocessable Content",
            426 => "Upgrade Required",
            428 => "Precondition Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            505 => "HTTP Version Not Supported",
            _ => "",
        }
    }

    /// Whether a response with this status carries no body (RFC 9110 §6.4.1:
    /// 1xx, 204 and 304).
    fn forbids_body(self) -> bool {
        self.0 < 200 || self.0 == 204 || self.0 == 304
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason_phrase())
    }
}

/// Appends a complete HTTP/1.1 response that closes the connection: the
/// status line, `Connection: close`, `Content-Type: text/plain;
/// charset=utf-8`, `Content-Length` and `body` followed by a newline.
///
/// Control characters in `body` are written escaped (`\r` as `\\r`, …), so
/// text that came from a peer cannot forge a header or a second response.
/// For 1xx, 204 and 304, which have no body, only the status line and
/// `Connection: close` are written.
///
/// ```
/// use ferrows::proto::handshake::{write_error_response, StatusCode};
///
/// let mut out = Vec::new();
/// write_error_response(StatusCode::FORBIDDEN, "origin not allowed", &mut out);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\
///       Content-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n\r\n\
///       origin not allowed\n"
/// );
/// ```
pub fn write_error_response(status: StatusCode, body: &str, out: &mut Vec<u8>) {
    write_response_unchecked(status, &[], body, out);
}

/// Like [`write_error_response`], with extra header fields after
/// `Content-Length` (e.g. `Retry-After` on a 503).
///
/// Names must be tokens and values must hold no control characters; on an
/// error nothing is appended. The framing fields this function writes
/// (`Connection`, `Content-Type`, `Content-Length`, `Transfer-Encoding`)
/// are refused as extras.
///
/// ```
/// use ferrows::proto::handshake::{write_error_response_with_headers, StatusCode};
///
/// let mut out = Vec::new();
/// write_error_response_with_headers(
///     StatusCode::SERVICE_UNAVAILABLE,
///     &[("Retry-After", "5")],
///     "server is full",
///     &mut out,
/// )?;
/// assert!(out.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
/// # Ok::<(), ferrows::proto::handshake::HandshakeUsageError>(())
/// ```
pub fn write_error_response_with_headers(
    status: StatusCode,
    headers: &[(&str, &str)],
    body: &str,
    out: &mut Vec<u8>,
) -> Result<(), HandshakeUsageError> {
    for (name, value) in headers {
        check_extra_header(name, value, FRAMING_HEADERS)?;
    }
    write_response_unchecked(status, headers, body, out);
    Ok(())
}

/// Header fields that only [`write_error_response`] itself may write.
const FRAMING_HEADERS: &[&str] = &["Connection", "Content-Type", "Content-Length", "Transfer-Encoding"];

/// Checks a caller's extra header field before anything is written.
pub(crate) fn check_extra_header(name: &str, value: &str, reserved: &[&str]) -> Result<(), HandshakeUsageError> {
    if !is_token(name.as_bytes()) {
        return Err(HandshakeUsageError::InvalidHeaderName { name: name.into() });
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(HandshakeUsageError::ReservedHeader { name: name.into() });
    }
    if !is_field_value(value.as_bytes()) {
        return Err(HandshakeUsageError::InvalidHeaderValue { name: name.into() });
    }
    Ok(())
}

/// Writes the response; `headers` have been checked by the caller.
pub(crate) fn write_response_unchecked(status: StatusCode, headers: &[(&str, &str)], body: &str, out: &mut Vec<u8>) {
    let body = escape_body(body);
    write_head_and_body(status, "text/plain; charset=utf-8", headers, body.as_bytes(), out);
}

/// Writes a complete HTTP/1.1 response of any content: status line,
/// `Connection: close`, `Content-Type`, `Content-Length`, the extra `headers`,
/// then `body` (left out for statuses that forbid one).
///
/// ```
/// use ferrows::proto::handshake::{write_response, StatusCode};
///
/// let mut out = Vec::new();
/// write_response(StatusCode::OK, "application/json", &[], b"{\"ok\":true}", &mut out)?;
/// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"));
/// assert!(out.ends_with(b"\r\n\r\n{\"ok\":true}"));
/// # Ok::<(), ferrows::proto::handshake::HandshakeUsageError>(())
/// ```
///
/// # Errors
///
/// A content type or extra header that is not a valid field, or an extra
/// header that is one of the framing fields written here; nothing is
/// appended then.
pub fn write_response(
    status: StatusCode,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), HandshakeUsageError> {
    check_extra_header("Content-Type", content_type, &[])?;
    for (name, value) in headers {
        check_extra_header(name, value, FRAMING_HEADERS)?;
    }
    write_head_and_body(status, content_type, headers, body, out);
    Ok(())
}

fn write_head_and_body(
    status: StatusCode,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, usize::from(status.as_u16()));
    out.push(b' ');
    out.extend_from_slice(status.reason_phrase().as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\n");
    let body = (!status.forbids_body()).then_some(body);
    if let Some(body) = body {
        push_header(out, "Content-Type", content_type.as_bytes());
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, body.len());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        push_header(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

/// `body` with control characters escaped, and a final newline.
fn escape_body(body: &str) -> String {
    let mut escaped = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped.push('\n');
    escaped
}

/// Appends `name: value\r\n`.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through a formatter.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn error_response_is_complete_http() {
        let mut out = Vec::new();
        write_error_response(StatusCode::NOT_FOUND, "no such path", &mut out);
        assert_eq!(
            text(&out),
            "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\n\
             no such path\n"
        );
    }

    #[test]
    fn every_listed_status_has_a_reason() {
        for code in [400, 403, 404, 405, 426, 431, 500, 503] {
            let status = StatusCode::new(code).unwrap();
            assert!(!status.reason_phrase().is_empty(), "{code}");
            let mut out = Vec::new();
            write_error_response(status, "x", &mut out);
            let response = text(&out);
            assert!(response.starts_with(&format!("HTTP/1.1 {status}\r\n")));
            assert!(response.contains("\r\nConnection: close\r\n"));
            assert!(response.ends_with("\r\n\r\nx\n"));
        }
    }

    #[test]
    fn unknown_status_has_empty_reason() {
        let mut out = Vec::new();
        write_error_response(StatusCode::new(599).unwrap(), "", &mut out);
        assert!(text(&out).starts_with("HTTP/1.1 599 \r\n"));
        assert!(text(&out).contains("Content-Length: 1\r\n"));
    }

    #[test]
    fn body_cannot_split_the_response() {
        let mut out = Vec::new();
        write_error_response(StatusCode::BAD_REQUEST, "bad\r\n\r\nHTTP/1.1 200 OK\u{0}é", &mut out);
        let response = text(&out);
        assert_eq!(response.matches("\r\n\r\n").count(), 1);
        assert!(response.ends_with("bad\\r\\n\\r\\nHTTP/1.1 200 OK\\u{0}é\n"));
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.ends_with(&format!("\r\nContent-Length: {}", body.len())));
    }

    #[test]
    fn bodiless_statuses_write_no_body() {
        let mut out = Vec::new();
        write_error_response(StatusCode::new(204).unwrap(), "ignored", &mut out);
        assert_eq!(text(&out), "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn extra_headers_are_checked() {
        let mut out = Vec::new();
        let bad: &[(&str, &str)] = &[("Bad Name", "x"), ("X-Ok", "a\r\nb"), ("content-length", "1"), ("", "x")];
        for header in bad {
            assert!(write_error_response_with_headers(
                StatusCode::BAD_REQUEST,
                std::slice::from_ref(header),
                "x",
                &mut out
            )
            .is_err());
        }
        assert!(out.is_empty());
        write_error_response_with_headers(StatusCode::BAD_REQUEST, &[("X-A", "b c")], "x", &mut out).unwrap();
        assert!(text(&out).contains("\r\nX-A: b c\r\n\r\n"));
    }

    #[test]
    fn decimal_digits() {
        for n in [0usize, 7, 10, 431, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(text(&out), n.to_string());
        }
    }
}
