//! What a record looks like on a topic's Redis channel: a fixed header the
//! bridge writes, then what the APPEND script adds around the application's
//! bytes (see `src/cluster/scripts.rs`).
//!
//! ```text
//! "FRR1" | run: u64 | exclude: u8 (0 or 1) | loop: u32 | session key: u32 | generation: u16
//!        | offset (decimal) | ' ' | epoch (0 to 16 ASCII bytes) | ' ' | data
//! ```
//!
//! Numbers are big-endian. `run` tells the bridge its own records, whose
//! `exclude` (the session left out, and its loop) means something only
//! here; without one, the three fields are zero. A record that is not kept
//! has offset `0` and an empty epoch. Unlike a frame's envelope there is no
//! sequence number: a kept record's offset is its place, given by Redis.

use crate::runtime::{Position, SessionId};

/// What a record message starts with, beside the frames' `FRW1`.
const MAGIC: &[u8; 4] = b"FRR1";
/// The fixed header's length.
pub(crate) const HEADER_LEN: usize = 4 + 8 + 1 + 4 + 4 + 2;
/// The longest epoch taken from Redis.
pub(crate) const MAX_EPOCH: usize = 16;
/// The longest offset in decimal (`u64::MAX` has 20 digits).
const MAX_OFFSET_DIGITS: usize = 20;

/// A record message read back from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordMessage<'a> {
    /// The appending bridge's run.
    pub(crate) run: u64,
    /// The session left out, and its loop, on the appending node.
    pub(crate) exclude: Option<(usize, SessionId)>,
    /// The record's offset (0: not kept).
    pub(crate) offset: u64,
    /// The topic's epoch (empty: not kept).
    pub(crate) epoch: &'a str,
    /// The application's bytes.
    pub(crate) data: &'a [u8],
}

impl RecordMessage<'_> {
    /// The record's place in its topic; `None` for a record not kept.
    pub(crate) fn position(&self) -> Option<Position> {
        (self.offset != 0).then(|| Position { offset: self.offset, epoch: self.epoch.to_owned() })
    }
}

/// Whether a message on a topic's channel is a record rather than a frame.
pub(crate) fn is_record(payload: &[u8]) -> bool {
    payload.starts_with(MAGIC)
}

/// The header the bridge writes before what the script adds. An exclude
/// whose numbers do not fit its fields (never seen: slab keys and loop
/// indexes stay far below) is left out.
pub(crate) fn header(run: u64, exclude: Option<(usize, SessionId)>) -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4..12].copy_from_slice(&run.to_be_bytes());
    let fields =
        exclude.and_then(|(at, id)| Some((u32::try_from(at).ok()?, u32::try_from(id.key).ok()?, id.generation)));
    if let Some((at, key, generation)) = fields {
        out[12] = 1;
        out[13..17].copy_from_slice(&at.to_be_bytes());
        out[17..21].copy_from_slice(&key.to_be_bytes());
        out[21..23].copy_from_slice(&generation.to_be_bytes());
    }
    out
}

/// The whole message, as the APPEND script (or a PUBLISH of a record not
/// kept) leaves it on the channel.
pub(crate) fn encode(message: &RecordMessage<'_>) -> Vec<u8> {
    let mut out = header(message.run, message.exclude).to_vec();
    out.extend_from_slice(message.offset.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message.epoch.as_bytes());
    out.push(b' ');
    out.extend_from_slice(message.data);
    out
}

/// Reads a record message; `None` for anything that is not exactly the
/// layout above (so that what decodes encodes back to the same bytes).
pub(crate) fn decode(bytes: &[u8]) -> Option<RecordMessage<'_>> {
    let (head, rest) = (bytes.get(..HEADER_LEN)?, bytes.get(HEADER_LEN..)?);
    if &head[..4] != MAGIC {
        return None;
    }
    let run = u64::from_be_bytes(head[4..12].try_into().ok()?);
    let exclude = match head[12] {
        0 if head[13..].iter().all(|&b| b == 0) => None,
        1 => {
            let at = u32::from_be_bytes(head[13..17].try_into().ok()?);
            let key = u32::from_be_bytes(head[17..21].try_into().ok()?);
            let generation = u16::from_be_bytes(head[21..23].try_into().ok()?);
            let id = SessionId { key: usize::try_from(key).ok()?, generation };
            Some((usize::try_from(at).ok()?, id))
        }
        _ => return None,
    };
    let (offset, rest) = split_space(rest, MAX_OFFSET_DIGITS)?;
    let (epoch, data) = split_space(rest, MAX_EPOCH)?;
    let offset = parse_offset(offset)?;
    let epoch = epoch_str(epoch)?;
    // Kept: an offset from 1 and an epoch; not kept: neither.
    if (offset == 0) != epoch.is_empty() {
        return None;
    }
    Some(RecordMessage { run, exclude, offset, epoch, data })
}

/// The bytes before the first space (at most `limit` of them) and those after it.
fn split_space(bytes: &[u8], limit: usize) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().take(limit + 1).position(|&b| b == b' ')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// An offset as Redis writes it: decimal digits, no sign, no leading zero.
pub(crate) fn parse_offset(digits: &[u8]) -> Option<u64> {
    let canonical = match digits {
        [] => false,
        [b'0', _, ..] => false,
        _ => digits.len() <= MAX_OFFSET_DIGITS && digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An epoch: at most [`MAX_EPOCH`] printable ASCII bytes, no space.
pub(crate) fn epoch_str(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > MAX_EPOCH || !bytes.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(key: usize, generation: u16) -> SessionId {
        SessionId { key, generation }
    }

    #[test]
    fn a_record_reads_back() {
        let kept = RecordMessage {
            run: 0x0102_0304_0506_0708,
            exclude: Some((3, session(77, 9))),
            offset: 42,
            epoch: "0a1b2c3d",
            data: b"hello world \x00\xff",
        };
        let bytes = encode(&kept);
        assert_eq!(&bytes[..4], b"FRR1");
        assert!(bytes.ends_with(b"42 0a1b2c3d hello world \x00\xff"));
        assert_eq!(decode(&bytes), Some(kept.clone()));
        assert_eq!(kept.position(), Some(Position { offset: 42, epoch: "0a1b2c3d".into() }));

        let loose = RecordMessage { run: 1, exclude: None, offset: 0, epoch: "", data: b"" };
        let bytes = encode(&loose);
        assert!(bytes.ends_with(b"0  "), "{bytes:?}");
        assert_eq!(decode(&bytes), Some(loose.clone()));
        assert_eq!(loose.position(), None);
        let top = RecordMessage { run: u64::MAX, exclude: None, offset: u64::MAX, epoch: "e", data: b" " };
        assert_eq!(decode(&encode(&top)), Some(top));
    }

    #[test]
    fn the_header_is_what_the_script_prepends() {
        let head = header(5, Some((1, session(2, 3))));
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(b"7 ep x");
        let message = decode(&bytes).unwrap();
        assert_eq!(
            (message.run, message.exclude, message.offset, message.epoch),
            (5, Some((1, session(2, 3))), 7, "ep")
        );
        assert_eq!(message.data, b"x");
        // A key past u32 is left out rather than cut.
        assert_eq!(header(5, Some((1, session(usize::MAX, 3))))[12..], [0; HEADER_LEN - 12]);
    }

    #[test]
    fn anything_else_is_refused() {
        let good = encode(&RecordMessage { run: 1, exclude: None, offset: 12, epoch: "abc", data: b"d" });
        let with_tail = |tail: &[u8]| {
            let mut bytes = good[..HEADER_LEN].to_vec();
            bytes.extend_from_slice(tail);
            bytes
        };
        let refused: [(&str, Vec<u8>); 13] = [
            ("no epoch", with_tail(b"12 ")),
            ("no space at all", with_tail(b"12")),
            ("a leading zero", with_tail(b"012 abc d")),
            ("a sign", with_tail(b"+12 abc d")),
            ("not digits", with_tail(b"1x abc d")),
            ("an empty offset", with_tail(b" abc d")),
            ("past u64", with_tail(b"18446744073709551616 abc d")),
            ("a long epoch", with_tail(b"1 0123456789abcdef0 d")),
            ("a control byte in the epoch", with_tail(b"1 a\tb d")),
            ("not ASCII", with_tail("1 é d".as_bytes())),
            ("kept without an epoch", with_tail(b"1  d")),
            ("an epoch at offset 0", with_tail(b"0 abc d")),
            ("another magic", [b"FRW1", &good[4..]].concat()),
        ];
        for (why, bytes) in refused {
            assert_eq!(decode(&bytes), None, "{why}");
        }
        let mut flag = good.clone();
        flag[12] = 2;
        assert_eq!(decode(&flag), None, "an exclude flag past 1");
        let mut stray = good.clone();
        stray[20] = 1;
        assert_eq!(decode(&stray), None, "exclude fields without the flag");
        // Cut anywhere before the data, it is refused; cut in the data, it is another record.
        for len in 0..good.len() - 1 {
            assert_eq!(decode(&good[..len]), None, "cut at {len}");
        }
        assert!(decode(&good).is_some());
    }
}
