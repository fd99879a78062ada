//! Frame headers: decoding from a partial buffer, encoding into a caller's buffer.
//!
//! RFC 6455 §5.2:
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use super::error::ProtocolError;
use super::mask::apply_mask;
use super::Role;

/// The longest possible header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: a continuation of a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: a Close control frame.
    Close,
    /// 0x9: a Ping control frame.
    Ping,
    /// 0xA: a Pong control frame.
    Pong,
}

impl OpCode {
    /// The opcode for the four low bits of `bits`, if it is not reserved.
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits & 0x0f {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xa => Self::Pong,
            _ => return None,
        })
    }

    /// The opcode's four-bit value.
    #[must_use]
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xa,
        }
    }

    /// Whether this is a control opcode (Close, Ping, Pong).
    #[must_use]
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whether this is the final fragment of its message.
    pub fin: bool,
    /// RSV1, RSV2 and RSV3 as the three low bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// RSV1, as it appears in [`FrameHeader::rsv`] (used by permessage-deflate).
pub const RSV1: u8 = 0b100;

/// What [`decode_header`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A whole header: it and the number of bytes it took.
    Complete(FrameHeader, usize),
    /// The header is cut short; at least this many more bytes are needed.
    Partial(usize),
}

/// The rules a received header is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRules {
    /// Which end is receiving: a server requires masked frames, a client refuses them.
    pub role: Role,
    /// The RSV bits that negotiated extensions define (0 with no extension).
    pub allowed_rsv: u8,
}

/// Decodes a frame header from the start of `buf`, which may be incomplete.
///
/// Nothing is consumed until the header is complete: on
/// [`Decoded::Partial`] call again with more bytes from the same start.
///
/// # Errors
///
/// Any rule of RFC 6455 §5 a header alone can break: a reserved opcode, RSV
/// bits no extension allows, a masking bit wrong for the role, a length not in
/// its minimal form or with the top bit set, a control frame fragmented or over
/// 125 bytes. Each error is reported as soon as the bytes that show it arrive.
///
/// ```
/// use ferrows::proto::frame::{decode_header, Decoded, HeaderRules, OpCode};
/// use ferrows::proto::Role;
/// let rules = HeaderRules { role: Role::Client, allowed_rsv: 0 };
/// // An unmasked text frame "Hello" (RFC 6455 §5.7).
/// let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
/// let Decoded::Complete(header, len) = decode_header(&bytes, &rules).unwrap() else { panic!() };
/// assert_eq!((header.opcode, header.payload_len, len), (OpCode::Text, 5, 2));
/// assert_eq!(decode_header(&bytes[..1], &rules).unwrap(), Decoded::Partial(1));
/// ```
pub fn decode_header(buf: &[u8], rules: &HeaderRules) -> Result<Decoded, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Partial(2));
    };
    let fin = first & 0x80 != 0;
    let rsv = (first >> 4) & 0b111;
    // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them.
    if rsv & !rules.allowed_rsv != 0 {
        return Err(ProtocolError::ReservedBits(rsv));
    }
    // RFC 6455 §5.2: reserved opcodes fail the connection.
    let opcode = OpCode::from_bits(first).ok_or(ProtocolError::ReservedOpcode(first & 0x0f))?;
    if opcode.is_control() {
        // RFC 6455 §5.5: control frames MUST NOT be fragmented.
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        // RFC 7692 §6.1 and RFC 6455 §5.2: no extension defined here applies to control frames.
        if rsv != 0 {
            return Err(ProtocolError::ReservedBits(rsv));
        }
    }
    let Some(&second) = buf.get(1) else {
        return Ok(Decoded::Partial(1));
    };
    let masked = second & 0x80 != 0;
    // RFC 6455 §5.1: a server MUST close on an unmasked frame, a client on a masked one.
    match (rules.role, masked) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    let short_len = second & 0x7f;
    let len_bytes = match short_len {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    // RFC 6455 §5.5: all control frames MUST have a payload length of 125 bytes or less.
    if opcode.is_control() && len_bytes != 0 {
        return Err(ProtocolError::ControlFrameTooLong(if len_bytes == 2 { 126 } else { 127 }));
    }
    let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
    let Some(rest) = buf.get(2..2 + len_bytes) else {
        return Ok(Decoded::Partial(header_len - buf.len()));
    };
    let payload_len = match len_bytes {
        2 => {
            let len = u64::from(u16::from_be_bytes([rest[0], rest[1]]));
            // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            len
        }
        8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(rest);
            let len = u64::from_be_bytes(raw);
            // RFC 6455 §5.2: "the most significant bit MUST be 0".
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            if len <= u64::from(u16::MAX) {
                return Err(ProtocolError::NonMinimalLength);
            }
            len
        }
        _ => u64::from(short_len),
    };
    if buf.len() < header_len {
        return Ok(Decoded::Partial(header_len - buf.len()));
    }
    // The key is the header's last four bytes, all in `buf` (checked above).
    let mask = masked.then(|| {
        let mut key = [0u8; 4];
        key.copy_from_slice(&buf[header_len - 4..header_len]);
        key
    });
    Ok(Decoded::Complete(FrameHeader { fin, rsv, opcode, mask, payload_len }, header_len))
}

/// The most common header, recognised from its first byte and length byte
/// alone: a final, uncompressed Text or Binary frame of under 126 bytes,
/// masked as `rules` require. `None` for any other header, or when `buf`
/// does not hold all of it: [`decode_header`] then decides. Where this finds
/// a header, `decode_header` finds the same one.
#[inline]
#[must_use]
pub fn decode_short_data_header(buf: &[u8], rules: &HeaderRules) -> Option<(FrameHeader, usize)> {
    let [first, second, ..] = *buf else { return None };
    let opcode = match first {
        0x81 => OpCode::Text,
        0x82 => OpCode::Binary,
        _ => return None,
    };
    let masked = second & 0x80 != 0;
    let payload_len = second & 0x7f;
    if masked != matches!(rules.role, Role::Server) || payload_len >= 126 {
        return None;
    }
    let (mask, header_len) = if masked {
        let key: [u8; 4] = buf.get(2..6)?.try_into().ok()?;
        (Some(key), 6)
    } else {
        (None, 2)
    };
    Some((FrameHeader { fin: true, rsv: 0, opcode, mask, payload_len: u64::from(payload_len) }, header_len))
}

/// Appends the encoded form of `header` to `out`.
///
/// The length is written in its minimal form. The caller keeps control
/// frames at 125 bytes or less.
pub fn encode_header(header: &FrameHeader, out: &mut Vec<u8>) {
    let (bytes, len) = header_bytes(header);
    out.extend_from_slice(&bytes[..len]);
}

/// The encoded form of `header`, built on the stack: its bytes and how many.
fn header_bytes(header: &FrameHeader) -> ([u8; MAX_HEADER_LEN], usize) {
    let mut bytes = [0u8; MAX_HEADER_LEN];
    bytes[0] = (u8::from(header.fin) << 7) | ((header.rsv & 0b111) << 4) | header.opcode.bits();
    let mask_bit = if header.mask.is_some() { 0x80 } else { 0 };
    let len = header.payload_len;
    let mut at = 2;
    if len < 126 {
        bytes[1] = mask_bit | len as u8;
    } else if let Ok(short) = u16::try_from(len) {
        bytes[1] = mask_bit | 126;
        bytes[2..4].copy_from_slice(&short.to_be_bytes());
        at = 4;
    } else {
        bytes[1] = mask_bit | 127;
        bytes[2..10].copy_from_slice(&len.to_be_bytes());
        at = 10;
    }
    if let Some(mask) = header.mask {
        bytes[at..at + 4].copy_from_slice(&mask);
        at += 4;
    }
    (bytes, at)
}

/// Appends a whole frame (header and payload, masked if `mask` is given) to `out`.
///
/// ```
/// use ferrows::proto::frame::{encode_frame, OpCode};
/// let mut out = Vec::new();
/// encode_frame(true, 0, OpCode::Text, b"Hello", None, &mut out);
/// assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// ```
#[inline]
pub fn encode_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    if mask.is_none() && payload.len() < 126 {
        // A server's short frame: two header bytes.
        out.reserve(2 + payload.len());
        out.extend_from_slice(&[(u8::from(fin) << 7) | ((rsv & 0b111) << 4) | opcode.bits(), payload.len() as u8]);
        out.extend_from_slice(payload);
        return;
    }
    encode_long_or_masked_frame(
        &FrameHeader { fin, rsv, opcode, mask, payload_len: payload.len() as u64 },
        payload,
        out,
    );
}

/// [`encode_frame`] past its inlined common case.
#[inline(never)]
fn encode_long_or_masked_frame(header: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) {
    let (head, head_len) = header_bytes(header);
    out.reserve(head_len + payload.len());
    out.extend_from_slice(&head[..head_len]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = header.mask {
        apply_mask(&mut out[start..], mask, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: HeaderRules = HeaderRules { role: Role::Server, allowed_rsv: 0 };
    const CLIENT: HeaderRules = HeaderRules { role: Role::Client, allowed_rsv: 0 };

    fn decode(bytes: &[u8], rules: &HeaderRules) -> Result<Decoded, ProtocolError> {
        decode_header(bytes, rules)
    }

    #[test]
    fn rfc6455_5_7_examples_decode() {
        // A single-frame unmasked text message.
        let d = decode(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], &CLIENT).unwrap();
        assert_eq!(
            d,
            Decoded::Complete(FrameHeader { fin: true, rsv: 0, opcode: OpCode::Text, mask: None, payload_len: 5 }, 2)
        );
        // A single-frame masked text message.
        let d = decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f], &SERVER).unwrap();
        assert_eq!(
            d,
            Decoded::Complete(
                FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: OpCode::Text,
                    mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                    payload_len: 5
                },
                6
            )
        );
        // 256 bytes binary message in a single unmasked frame.
        let d = decode(&[0x82, 0x7e, 0x01, 0x00], &CLIENT).unwrap();
        assert!(matches!(d, Decoded::Complete(h, 4) if h.payload_len == 256));
        // 64KiB binary message in a single unmasked frame.
        let d = decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0], &CLIENT).unwrap();
        assert!(matches!(d, Decoded::Complete(h, 10) if h.payload_len == 65536));
    }

    #[test]
    fn rfc6455_5_2_partial_headers_report_what_is_missing() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        assert_eq!(decode(&full[..0], &SERVER), Ok(Decoded::Partial(2)));
        assert_eq!(decode(&full[..1], &SERVER), Ok(Decoded::Partial(1)));
        for cut in 2..full.len() {
            assert_eq!(decode(&full[..cut], &SERVER), Ok(Decoded::Partial(full.len() - cut)), "cut {cut}");
        }
        assert!(matches!(decode(&full, &SERVER), Ok(Decoded::Complete(_, 14))));
    }

    #[test]
    fn rfc6455_5_2_length_must_be_minimal() {
        assert_eq!(decode(&[0x82, 0x7e, 0x00, 0x7d], &CLIENT), Err(ProtocolError::NonMinimalLength));
        assert!(decode(&[0x82, 0x7e, 0x00, 0x7e], &CLIENT).is_ok());
        assert_eq!(decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff], &CLIENT), Err(ProtocolError::NonMinimalLength));
        assert!(decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0], &CLIENT).is_ok());
    }

    #[test]
    fn rfc6455_5_2_64_bit_length_top_bit_must_be_zero() {
        assert_eq!(decode(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0], &CLIENT), Err(ProtocolError::LengthOverflow));
    }

    #[test]
    fn rfc6455_5_2_reserved_opcodes_fail() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(decode(&[0x80 | op, 0x80], &SERVER), Err(ProtocolError::ReservedOpcode(op)));
        }
    }

    #[test]
    fn rfc6455_5_2_rsv_bits_need_an_extension() {
        for rsv in 1..8u8 {
            assert_eq!(decode(&[0x81 | (rsv << 4), 0x80], &SERVER), Err(ProtocolError::ReservedBits(rsv)));
        }
        let deflate = HeaderRules { role: Role::Server, allowed_rsv: RSV1 };
        assert!(decode(&[0xc1, 0x80, 0, 0, 0, 0], &deflate).is_ok());
        assert_eq!(decode(&[0xa1, 0x80], &deflate), Err(ProtocolError::ReservedBits(0b010)));
        // Control frames never carry RSV bits, whatever was negotiated.
        assert_eq!(decode(&[0xc9, 0x80], &deflate), Err(ProtocolError::ReservedBits(0b100)));
    }

    #[test]
    fn rfc6455_5_5_control_frames_are_short_and_whole() {
        assert_eq!(decode(&[0x09, 0x80], &SERVER), Err(ProtocolError::FragmentedControlFrame));
        assert_eq!(decode(&[0x88, 0xfe], &SERVER), Err(ProtocolError::ControlFrameTooLong(126)));
        assert_eq!(decode(&[0x8a, 0xff], &SERVER), Err(ProtocolError::ControlFrameTooLong(127)));
        assert!(decode(&[0x89, 0xfd, 0, 0, 0, 0], &SERVER).is_ok());
    }

    #[test]
    fn rfc6455_5_1_masking_follows_the_role() {
        assert_eq!(decode(&[0x81, 0x00], &SERVER), Err(ProtocolError::UnmaskedFrame));
        assert_eq!(decode(&[0x81, 0x80], &CLIENT), Err(ProtocolError::MaskedFrame));
    }

    #[test]
    fn encode_uses_the_minimal_length_form() {
        for (len, header_len) in [(0u64, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (1 << 40, 10)] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask, payload_len: len };
                let mut out = Vec::new();
                encode_header(&header, &mut out);
                let expected_len = header_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(out.len(), expected_len);
                let rules = if mask.is_some() { SERVER } else { CLIENT };
                assert_eq!(decode(&out, &rules), Ok(Decoded::Complete(header, expected_len)));
            }
        }
    }

    #[test]
    fn the_short_data_header_is_what_the_general_decoder_finds() {
        let mut found = 0;
        for role in [Role::Server, Role::Client] {
            for allowed_rsv in [0, RSV1] {
                let rules = HeaderRules { role, allowed_rsv };
                for first in 0..=255u8 {
                    for second in 0..=255u8 {
                        let bytes = [first, second, 9, 8, 7, 6];
                        for len in 0..=bytes.len() {
                            let Some(short) = decode_short_data_header(&bytes[..len], &rules) else { continue };
                            assert_eq!(decode(&bytes[..len], &rules), Ok(Decoded::Complete(short.0, short.1)));
                            found += 1;
                        }
                    }
                }
            }
        }
        // Text and Binary, 126 lengths, each role with its own masking, over the lengths of input that hold it.
        assert_eq!(found, 2 * 2 * 126 * (1 + 5));
    }

    #[test]
    fn short_frames_encode_as_any_frame_does() {
        for len in [0usize, 1, 16, 125, 126, 300] {
            let payload = vec![7u8; len];
            for (fin, rsv, opcode) in [(true, 0, OpCode::Text), (false, RSV1, OpCode::Binary), (true, 0, OpCode::Ping)]
            {
                let mut out = Vec::new();
                encode_frame(fin, rsv, opcode, &payload, None, &mut out);
                let mut expected = Vec::new();
                encode_header(&FrameHeader { fin, rsv, opcode, mask: None, payload_len: len as u64 }, &mut expected);
                expected.extend_from_slice(&payload);
                assert_eq!(out, expected);
            }
        }
    }
}
