//! What fills a message after its send time.

use std::fmt::Write;

/// The filler of a message, chosen by `--payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A repeating sequence: bytes 0 to 250 (binary) or the digits 0 to 9 (text).
    Pattern,
    /// JSON-like records with varying numbers, compressible the way API or
    /// chat traffic is.
    Json,
}

impl Payload {
    /// The name on the command line and in the RESULT line.
    pub fn name(self) -> &'static str {
        match self {
            Payload::Pattern => "pattern",
            Payload::Json => "json",
        }
    }

    /// The payload named `name` on the command line.
    pub fn from_name(name: &str) -> Option<Payload> {
        match name {
            "pattern" => Some(Payload::Pattern),
            "json" => Some(Payload::Json),
            _ => None,
        }
    }

    /// `len` bytes of binary filler.
    pub fn binary(self, len: usize) -> Vec<u8> {
        match self {
            Payload::Pattern => (0..len).map(|i| (i % 251) as u8).collect(),
            Payload::Json => json(len).into_bytes(),
        }
    }

    /// `len` bytes of text filler, all ASCII, so that any prefix of it may be
    /// replaced without splitting a character.
    pub fn text(self, len: usize) -> String {
        match self {
            Payload::Pattern => (0..len).map(|i| char::from(b'0' + (i % 10) as u8)).collect(),
            Payload::Json => json(len),
        }
    }
}

/// Exactly `len` bytes of JSON-like ASCII text: a list of records whose
/// numbers vary, cut off at `len`.
pub fn json(len: usize) -> String {
    let mut out = String::with_capacity(len + 80);
    out.push('[');
    let mut i: u64 = 0;
    while out.len() < len {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            r#"{{"id":{},"user":"user-{}","score":{},"tags":["a","b"]}},"#,
            100 + i,
            (i * 37) % 100,
            (i * 7919) % 1000
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// The decimal number `text` starts with, and what follows it; `None` if it
/// starts with no digit or the number passes `u64`. This is how the modes read
/// numbers out of messages without parsing them whole.
pub fn leading_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for b in text[..digits].bytes() {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((n, &text[digits..]))
}

/// Appends `count` bytes of ASCII filler.
pub fn pad(out: &mut String, count: usize) {
    out.extend(std::iter::repeat_n('x', count));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_numbers() {
        assert_eq!(leading_number("123,rest"), Some((123, ",rest")));
        assert_eq!(leading_number("0"), Some((0, "")));
        assert_eq!(leading_number("18446744073709551615x"), Some((u64::MAX, "x")));
        assert_eq!(leading_number("18446744073709551616"), None);
        assert_eq!(leading_number("-1"), None);
        assert_eq!(leading_number(""), None);
    }

    #[test]
    fn fillers_have_the_exact_length() {
        for len in [0, 1, 8, 16, 57, 1024, 4099] {
            for payload in [Payload::Pattern, Payload::Json] {
                assert_eq!(payload.binary(len).len(), len);
                let text = payload.text(len);
                assert_eq!(text.len(), len);
                assert!(text.is_ascii());
            }
        }
        assert!(json(80).starts_with(r#"[{"id":100,"user":"user-0","score":0,"tags":["a","b"]},{"id":101"#));
    }

    #[test]
    fn names_round_trip() {
        for payload in [Payload::Pattern, Payload::Json] {
            assert_eq!(Payload::from_name(payload.name()), Some(payload));
        }
        assert_eq!(Payload::from_name("random"), None);
    }
}
