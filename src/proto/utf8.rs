//! Incremental UTF-8 validation for text messages (RFC 6455 §8.1).
//!
//! A text message may arrive in many fragments, and each fragment in many
//! reads, with a character split anywhere. [`Utf8Validator`] checks each piece
//! as it arrives and fails at the first byte that cannot begin or continue a
//! valid sequence, even inside a fragment, rather than at the end of the
//! message. It is built on `std::str::from_utf8`, so the bulk of the work runs
//! at the standard library's speed; only the at most three bytes of a
//! character split between pieces are carried over.

use std::fmt;

/// The error for bytes that are not, and cannot become, valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Validates a UTF-8 stream fed in arbitrary pieces.
///
/// ```
/// use ferrows::proto::utf8::Utf8Validator;
/// let text = "κόσμε".as_bytes();
/// let mut v = Utf8Validator::new();
/// let mut out = String::new();
/// v.push(&text[..3], &mut out).unwrap(); // splits "ό"
/// v.push(&text[3..], &mut out).unwrap();
/// v.finish().unwrap();
/// assert_eq!(out, "κόσμε");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a character whose remaining bytes have not arrived yet.
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece of the stream.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] as soon as the bytes seen so far cannot be the start of
    /// valid UTF-8.
    #[inline]
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        self.run(bytes, |_| {})
    }

    /// Validates the next piece and appends its complete characters to `out`.
    ///
    /// Characters split at the end of `bytes` are appended once their last
    /// byte arrives.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] as soon as the bytes seen so far cannot be the start of
    /// valid UTF-8. What was appended before the error is left in `out`.
    #[inline]
    pub fn push(&mut self, bytes: &[u8], out: &mut String) -> Result<(), InvalidUtf8> {
        self.run(bytes, |s| out.push_str(s))
    }

    /// Checks that the stream did not end inside a character.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] if a character is incomplete.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.pending_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Forgets any incomplete character, ready for a new stream.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    fn run(&mut self, mut bytes: &[u8], mut sink: impl FnMut(&str)) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            bytes = self.complete_pending(bytes, &mut sink)?;
        }
        let split = incomplete_tail_start(bytes);
        let (body, tail) = bytes.split_at(split);
        sink(std::str::from_utf8(body).map_err(|_| InvalidUtf8)?);
        if !tail.is_empty() {
            check_prefix(tail)?;
            self.pending[..tail.len()].copy_from_slice(tail);
            // A tail is at most three bytes (the start of a four-byte sequence).
            self.pending_len = tail.len() as u8;
        }
        Ok(())
    }

    /// Adds bytes to the carried character; returns what is left of `bytes`.
    fn complete_pending<'a>(&mut self, bytes: &'a [u8], sink: &mut impl FnMut(&str)) -> Result<&'a [u8], InvalidUtf8> {
        let have = usize::from(self.pending_len);
        // The first pending byte passed `check_prefix`, so it is a lead byte of width 2..=4.
        let width = sequence_width(self.pending[0]);
        let take = (width - have).min(bytes.len());
        self.pending[have..have + take].copy_from_slice(&bytes[..take]);
        let have = have + take;
        if have < width {
            check_prefix(&self.pending[..have])?;
            self.pending_len = have as u8;
            return Ok(&bytes[take..]);
        }
        sink(std::str::from_utf8(&self.pending[..width]).map_err(|_| InvalidUtf8)?);
        self.pending_len = 0;
        Ok(&bytes[take..])
    }
}

/// Validates a whole buffer in one go: the same answer as `std::str::from_utf8(..).is_ok()`.
#[must_use]
pub fn is_valid(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

/// The number of bytes in a sequence that starts with `lead` (1 for anything that is not a multi-byte lead).
#[inline]
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// Where a multi-byte sequence cut short by the end of `bytes` begins (or `bytes.len()`).
#[inline]
fn incomplete_tail_start(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // Only the last three bytes can hold an unfinished sequence.
    for back in 1..=len.min(3) {
        let byte = bytes[len - back];
        if byte & 0xc0 != 0x80 {
            return if sequence_width(byte) > back { len - back } else { len };
        }
    }
    len
}

/// Checks that `bytes` (an unfinished sequence) can still become a valid character.
#[inline]
fn check_prefix(bytes: &[u8]) -> Result<(), InvalidUtf8> {
    match std::str::from_utf8(bytes) {
        // `error_len() == None` means "valid so far, input ended early".
        Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => Ok(()),
        _ => Err(InvalidUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], splits: &[usize]) -> (Result<(), InvalidUtf8>, String) {
        let mut v = Utf8Validator::new();
        let mut out = String::new();
        let mut start = 0;
        for &end in splits.iter().chain(std::iter::once(&bytes.len())) {
            if let Err(e) = v.push(&bytes[start..end], &mut out) {
                return (Err(e), out);
            }
            start = end;
        }
        (v.finish(), out)
    }

    #[test]
    fn rfc6455_8_1_agrees_with_std_for_every_two_way_split() {
        let samples: Vec<&[u8]> = vec![
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{800}\u{7ff}".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\xf8\x88\x80\x80\x80",
            b"ab\xe0\x80",
            b"\xf0\x9f\x98",
        ];
        for bytes in samples {
            let expected = std::str::from_utf8(bytes).is_ok();
            for split in 0..=bytes.len() {
                let (result, out) = feed_split(bytes, &[split]);
                assert_eq!(result.is_ok(), expected, "{bytes:x?} split at {split}");
                if expected {
                    assert_eq!(out.as_bytes(), bytes);
                }
            }
        }
    }

    #[test]
    fn rfc6455_8_1_fails_at_the_first_impossible_byte_not_at_the_end() {
        // U+110000 written as a four-byte sequence is out of range: after the
        // second byte no continuation can make it valid.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok \xf4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
        // A surrogate is rejected at its second byte.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xed"), Ok(()));
        assert_eq!(v.feed(b"\xa0"), Err(InvalidUtf8));
        // A lone continuation byte at once.
        assert_eq!(Utf8Validator::new().feed(b"\x80"), Err(InvalidUtf8));
    }

    #[test]
    fn rfc6455_8_1_a_stream_may_not_end_inside_a_character() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        v.feed(b"\xac").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn byte_at_a_time_matches_std() {
        for bytes in [&b"\xe2\x82\xac\xf0\x9f\x98\x80a"[..], b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc"] {
            let splits: Vec<usize> = (1..bytes.len()).collect();
            let (result, _) = feed_split(bytes, &splits);
            assert_eq!(result.is_ok(), std::str::from_utf8(bytes).is_ok(), "{bytes:x?}");
        }
    }
}
