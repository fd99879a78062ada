//! Error types: a peer's violation of the protocol, and the caller's misuse.

use std::fmt;

use super::close::CloseCode;

/// A violation of RFC 6455 by the peer.
///
/// Each variant earns a close code ([`ProtocolError::close_code`]); the
/// [`Connection`](super::Connection) queues a Close frame with that code and
/// stops reading. A violation is never a panic.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame used an opcode that RFC 6455 §5.2 reserves.
    ReservedOpcode(u8),
    /// A frame set RSV bits that no negotiated extension defines (the bits, shifted to 0..=7).
    ReservedBits(u8),
    /// A client sent an unmasked frame to a server (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A server sent a masked frame to a client (RFC 6455 §5.1).
    MaskedFrame,
    /// A payload length was not encoded in its minimal form (RFC 6455 §5.2).
    NonMinimalLength,
    /// A 64-bit payload length had its most significant bit set (RFC 6455 §5.2).
    LengthOverflow,
    /// A control frame carried more than 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong(u64),
    /// A control frame had FIN clear (RFC 6455 §5.5).
    FragmentedControlFrame,
    /// A continuation frame arrived with no message in progress (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A new data frame started while a fragmented message was in progress (RFC 6455 §5.4).
    ExpectedContinuation,
    /// A frame declared a payload longer than the configured frame limit.
    FrameTooLarge {
        /// The declared payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message grew past the configured message limit.
    MessageTooLarge {
        /// The configured limit.
        max: usize,
    },
    /// A message was split into more fragments than the configured limit.
    TooManyFragments {
        /// The configured limit.
        max: usize,
    },
    /// A text message (or a close reason) was not valid UTF-8 (RFC 6455 §8.1).
    InvalidUtf8,
    /// A compressed message could not be inflated (RFC 7692 §8.1: fail with 1007).
    InvalidCompressedData,
    /// A Close frame carried a one-byte payload (RFC 6455 §5.5.1).
    CloseFrameTooShort,
    /// A Close frame carried a code a peer may not send (RFC 6455 §7.4).
    InvalidCloseCode(u16),
}

impl ProtocolError {
    /// The close code this violation earns.
    #[must_use]
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } | Self::TooManyFragments { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::ReservedBits(bits) => write!(f, "reserved bits set without an extension ({bits:#05b})"),
            Self::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            Self::MaskedFrame => f.write_str("masked frame from a server"),
            Self::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            Self::LengthOverflow => f.write_str("64-bit payload length with the top bit set"),
            Self::ControlFrameTooLong(len) => write!(f, "control frame of {len} bytes (over 125)"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::UnexpectedContinuation => f.write_str("continuation frame without a message in progress"),
            Self::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            Self::FrameTooLarge { len, max } => write!(f, "frame of {len} bytes over the limit of {max}"),
            Self::MessageTooLarge { max } => write!(f, "message over the limit of {max} bytes"),
            Self::TooManyFragments { max } => write!(f, "message in more than {max} fragments"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            Self::InvalidCompressedData => f.write_str("compressed data that does not inflate"),
            Self::CloseFrameTooShort => f.write_str("close frame with a one-byte payload"),
            Self::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent by a peer"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A misuse of the API by the caller (not the peer's fault).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// The connection has sent a Close frame or has failed; nothing more can be sent.
    Closed,
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    ControlPayloadTooLong(usize),
    /// A close code that an endpoint may not put in a Close frame (1005, 1006, 1015, or out of range).
    UnsendableCloseCode(u16),
    /// A close reason that does not fit in a control frame with its code (over 123 bytes).
    CloseReasonTooLong(usize),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the connection is closing or closed"),
            Self::ControlPayloadTooLong(len) => write!(f, "control payload of {len} bytes (over 125)"),
            Self::UnsendableCloseCode(code) => write!(f, "close code {code} may not be sent"),
            Self::CloseReasonTooLong(len) => write!(f, "close reason of {len} bytes (over 123)"),
        }
    }
}

impl std::error::Error for UsageError {}
