//! Close codes and the rules for Close frames (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use super::error::{ProtocolError, UsageError};

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// A plain number with the registered codes as constants, so that codes from
/// the private range (4000–4999) and library range (3000–3999) are first-class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint cannot accept this type of data.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no code was present. Never sent in a frame.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a Close frame. Never sent in a frame.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a message's data was inconsistent with its type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the server is restarting (registered with IANA).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later, the server is overloaded (registered with IANA).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway or proxy got an invalid answer upstream (registered with IANA).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed. Never sent in a frame.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether a peer may send this code in a Close frame.
    ///
    /// RFC 6455 §7.4.1 and §7.4.2: 1000–1003 and 1007–1011 are defined for
    /// use on the wire, 1000–2999 are left to the RFC and the IANA registry,
    /// which has since added 1012 (service restart), 1013 (try again later)
    /// and 1014 (bad gateway), and 3000–4999 are for libraries, frameworks
    /// and applications. 1004 is reserved, 1005, 1006 and 1015 must never be
    /// put in a Close frame, and everything else is either unassigned in the
    /// registry range or outside any range.
    #[must_use]
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether this endpoint may put the code in a Close frame it sends:
    /// the codes a peer may send ([`is_valid_on_wire`](Self::is_valid_on_wire)).
    #[must_use]
    pub fn is_sendable(self) -> bool {
        self.is_valid_on_wire()
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The content of a Close frame that carried a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: String,
}

/// The longest close reason that fits in a control frame beside its code.
pub const MAX_REASON_LEN: usize = 123;

/// Parses and checks the payload of a Close frame received from a peer.
///
/// Returns `None` for an empty payload (no status code; reported as 1005).
///
/// # Errors
///
/// A one-byte payload, a code a peer may not send, or a reason that is not
/// UTF-8.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        // RFC 6455 §5.5.1: if there is a body, its first two bytes are the code.
        [_] => Err(ProtocolError::CloseFrameTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            // RFC 6455 §7.4: only defined codes may appear on the wire.
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            // RFC 6455 §5.5.1: the reason is UTF-8; §8.1 makes invalid data a failure (1007).
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason: reason.to_owned() }))
        }
    }
}

/// Checks a Close this endpoint is about to send and writes its payload.
///
/// # Errors
///
/// A code that may not be sent (1005, 1006, 1015, out of range) or a reason
/// over 123 bytes.
pub fn write_close_payload(code: CloseCode, reason: &str, out: &mut [u8; 125]) -> Result<usize, UsageError> {
    if !code.is_sendable() {
        return Err(UsageError::UnsendableCloseCode(code.0));
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(UsageError::CloseReasonTooLong(reason.len()));
    }
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    Ok(2 + reason.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_7_4_codes_accepted_from_a_peer() {
        for code in (0u16..=u16::MAX).map(CloseCode) {
            // 1012–1014: registered with IANA since (service restart, try again later, bad gateway).
            let expected = matches!(code.0, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(code.is_valid_on_wire(), expected, "code {code}");
            assert_eq!(code.is_sendable(), expected, "code {code}");
            let payload = code.0.to_be_bytes();
            assert_eq!(parse_close_payload(&payload).is_ok(), expected, "code {code}");
        }
    }

    #[test]
    fn rfc6455_5_5_1_one_byte_close_payload_is_a_protocol_error() {
        let err = parse_close_payload(&[3]).unwrap_err();
        assert_eq!(err, ProtocolError::CloseFrameTooShort);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn rfc6455_5_5_1_empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn rfc6455_5_5_1_reason_must_be_utf8() {
        let err = parse_close_payload(&[0x03, 0xe8, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
        let ok = parse_close_payload(&[0x03, 0xe8, b'b', b'y', b'e']).unwrap().unwrap();
        assert_eq!(ok, CloseFrame { code: CloseCode::NORMAL, reason: "bye".into() });
    }

    #[test]
    fn rfc6455_7_4_1_reserved_codes_are_never_sent() {
        let mut buf = [0u8; 125];
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(write_close_payload(CloseCode(code), "", &mut buf), Err(UsageError::UnsendableCloseCode(code)));
        }
        assert_eq!(write_close_payload(CloseCode::NORMAL, "ok", &mut buf), Ok(4));
        assert_eq!(&buf[..4], &[0x03, 0xe8, b'o', b'k']);
    }

    #[test]
    fn rfc6455_5_5_close_reason_fits_in_a_control_frame() {
        let mut buf = [0u8; 125];
        let long = "x".repeat(124);
        assert_eq!(write_close_payload(CloseCode::NORMAL, &long, &mut buf), Err(UsageError::CloseReasonTooLong(124)));
        assert_eq!(write_close_payload(CloseCode::NORMAL, &long[..123], &mut buf), Ok(125));
    }
}
