//! The `Sec-WebSocket-Extensions` grammar of RFC 6455 §9.1.
//!
//! ```text
//! extension-list = 1#extension
//! extension      = extension-token *( ";" extension-param )
//! extension-param = token [ "=" ( token | quoted-string ) ]
//! ```
//!
//! The parser is one forward pass over the bytes with no backtracking; each
//! byte is examined once and copied at most once.

use std::fmt;

use super::headers::is_tchar;

/// One extension named in a `Sec-WebSocket-Extensions` header, with its
/// parameters in the order given.
///
/// The same type serves a client's offers and a server's acceptances; a
/// client may offer one extension several times with different parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<ExtensionParam>,
}

impl ExtensionOffer {
    /// The first parameter called `name` (case-insensitive, as tokens are).
    pub fn param(&self, name: &str) -> Option<&ExtensionParam> {
        self.params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// Writes the offer back in header syntax, e.g.
/// `permessage-deflate; client_max_window_bits=10`.
///
/// Every name and value is a token (the parser enforces it), so no quoting
/// is needed.
impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for param in &self.params {
            write!(f, "; {}", param.name)?;
            if let Some(value) = &param.value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// One `name[=value]` parameter of an extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionParam {
    /// The parameter token.
    pub name: String,
    /// The value, unquoted and unescaped; `None` for a bare parameter.
    pub value: Option<String>,
}

/// Why a `Sec-WebSocket-Extensions` value does not follow RFC 6455 §9.1.
///
/// Offsets are byte positions in the value that was parsed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionError {
    /// The value names no extension at all (`1#extension` needs one).
    Empty,
    /// A token (extension name, parameter name or value) was expected.
    ExpectedToken {
        /// Where the token should have started.
        offset: usize,
    },
    /// A byte that cannot appear here.
    UnexpectedByte {
        /// Where the byte is.
        offset: usize,
    },
    /// A quoted string with no closing quote.
    UnterminatedQuotedString {
        /// Where the opening quote is.
        offset: usize,
    },
    /// A quoted value that, once unescaped, is not a token (RFC 6455 §9.1
    /// requires it to be one).
    QuotedValueNotToken {
        /// Where the opening quote is.
        offset: usize,
    },
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::Empty => f.write_str("no extension named"),
            ExtensionError::ExpectedToken { offset } => {
                write!(f, "token expected at byte {offset}")
            }
            ExtensionError::UnexpectedByte { offset } => {
                write!(f, "unexpected byte at {offset}")
            }
            ExtensionError::UnterminatedQuotedString { offset } => {
                write!(f, "quoted string opened at byte {offset} is not closed")
            }
            ExtensionError::QuotedValueNotToken { offset } => {
                write!(f, "quoted value at byte {offset} is not a token")
            }
        }
    }
}

impl std::error::Error for ExtensionError {}

/// Parses one `Sec-WebSocket-Extensions` header value (RFC 6455 §9.1).
///
/// Whitespace is allowed around `,`, `;` and `=`; empty list elements are
/// ignored (RFC 9110 §5.6.1); a quoted value is unescaped and must then be a
/// token. A request may carry the header on several lines: parse each and
/// concatenate the lists, in order.
///
/// ```
/// use ferrows::proto::handshake::{parse_extensions, ExtensionParam};
///
/// let offers = parse_extensions(
///     b"permessage-deflate; client_max_window_bits, x-foo; level=\"1\"",
/// )?;
/// assert_eq!(offers.len(), 2);
/// assert_eq!(offers[0].name, "permessage-deflate");
/// assert_eq!(
///     offers[0].params,
///     [ExtensionParam { name: "client_max_window_bits".into(), value: None }]
/// );
/// assert_eq!(offers[1].param("level").and_then(|p| p.value.as_deref()), Some("1"));
/// # Ok::<(), ferrows::proto::handshake::ExtensionError>(())
/// ```
pub fn parse_extensions(value: &[u8]) -> Result<Vec<ExtensionOffer>, ExtensionError> {
    let mut offers = Vec::new();
    parse_extensions_into(value, &mut offers)?;
    Ok(offers)
}

/// Parses one header value and appends its offers to `offers`.
pub(crate) fn parse_extensions_into(value: &[u8], offers: &mut Vec<ExtensionOffer>) -> Result<(), ExtensionError> {
    let mut cursor = Cursor { bytes: value, pos: 0 };
    let before = offers.len();
    loop {
        cursor.skip_ows();
        match cursor.peek() {
            None => break,
            // RFC 9110 §5.6.1: empty list elements are accepted and ignored.
            Some(b',') => {
                cursor.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cursor.token()?;
        let mut params = Vec::new();
        loop {
            cursor.skip_ows();
            match cursor.peek() {
                None => break,
                Some(b',') => {
                    cursor.pos += 1;
                    break;
                }
                Some(b';') => {
                    cursor.pos += 1;
                    cursor.skip_ows();
                    params.push(cursor.param()?);
                }
                Some(_) => return Err(ExtensionError::UnexpectedByte { offset: cursor.pos }),
            }
        }
        offers.push(ExtensionOffer { name, params });
    }
    // RFC 6455 §9.1: `extension-list = 1#extension`, at least one.
    if offers.len() == before {
        return Err(ExtensionError::Empty);
    }
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `1*tchar`, as an owned string.
    fn token(&mut self) -> Result<String, ExtensionError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(ExtensionError::ExpectedToken { offset: start });
        }
        // tchar is a subset of ASCII, so these bytes are one char each.
        Ok(self.bytes[start..self.pos].iter().map(|&b| char::from(b)).collect())
    }

    /// `token [ "=" ( token | quoted-string ) ]`, the cursor just past `;`.
    fn param(&mut self) -> Result<ExtensionParam, ExtensionError> {
        let name = self.token()?;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Ok(ExtensionParam { name, value: None });
        }
        self.pos += 1;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') { self.quoted_token()? } else { self.token()? };
        Ok(ExtensionParam { name, value: Some(value) })
    }

    /// A quoted-string (RFC 9110 §5.6.4), unescaped; it must hold a token.
    fn quoted_token(&mut self) -> Result<String, ExtensionError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(ExtensionError::UnterminatedQuotedString { offset: open });
            };
            self.pos += 1;
            let b = match b {
                b'"' => break,
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                b'\\' => {
                    let Some(escaped) = self.peek() else {
                        return Err(ExtensionError::UnterminatedQuotedString { offset: open });
                    };
                    self.pos += 1;
                    escaped
                }
                other => other,
            };
            // RFC 6455 §9.1: "the value after quoted-string unescaping MUST
            // conform to the 'token' ABNF", so any other byte (including
            // the SP, HTAB and obs-text that qdtext would allow) is an error
            // here; this also keeps `value` ASCII.
            if !is_tchar(b) {
                return Err(ExtensionError::QuotedValueNotToken { offset: open });
            }
            value.push(char::from(b));
        }
        if value.is_empty() {
            return Err(ExtensionError::QuotedValueNotToken { offset: open });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| ExtensionParam { name: (*n).into(), value: v.map(Into::into) })
                .collect(),
        }
    }

    #[test]
    fn rfc6455_9_1_single_extension() {
        assert_eq!(parse_extensions(b"foo").unwrap(), [offer("foo", &[])]);
    }

    #[test]
    fn rfc6455_9_1_example_list() {
        // The example of RFC 6455 §9.1.
        assert_eq!(
            parse_extensions(b"foo, bar; baz=2").unwrap(),
            [offer("foo", &[]), offer("bar", &[("baz", Some("2"))])]
        );
    }

    #[test]
    fn rfc6455_9_1_whitespace_around_separators() {
        assert_eq!(
            parse_extensions(b" \tdeflate-x ; a = 1 ;b\t,  other ").unwrap(),
            [offer("deflate-x", &[("a", Some("1")), ("b", None)]), offer("other", &[])]
        );
    }

    #[test]
    fn rfc6455_9_1_quoted_values_are_unescaped() {
        assert_eq!(
            parse_extensions(br#"x; a="10"; b="v\-1""#).unwrap(),
            [offer("x", &[("a", Some("10")), ("b", Some("v-1"))])]
        );
    }

    #[test]
    fn rfc6455_9_1_quoted_value_must_be_token() {
        for bad in [&br#"x; a="1 0""#[..], br#"x; a="""#, br#"x; a="a,b""#, br#"x; a="\"""#] {
            assert!(
                matches!(parse_extensions(bad), Err(ExtensionError::QuotedValueNotToken { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rfc6455_9_1_empty_elements_are_ignored() {
        assert_eq!(parse_extensions(b", a,, b ,").unwrap(), [offer("a", &[]), offer("b", &[])]);
    }

    #[test]
    fn rfc6455_9_1_malformed_values() {
        let cases: &[(&[u8], ExtensionError)] = &[
            (b"", ExtensionError::Empty),
            (b" , ,", ExtensionError::Empty),
            (b";a", ExtensionError::ExpectedToken { offset: 0 }),
            (b"a;", ExtensionError::ExpectedToken { offset: 2 }),
            (b"a; =1", ExtensionError::ExpectedToken { offset: 3 }),
            (b"a; b=", ExtensionError::ExpectedToken { offset: 5 }),
            (b"a; b=,", ExtensionError::ExpectedToken { offset: 5 }),
            (b"a b", ExtensionError::UnexpectedByte { offset: 2 }),
            (b"a; b=c d", ExtensionError::UnexpectedByte { offset: 7 }),
            (b"a; b=\"c", ExtensionError::UnterminatedQuotedString { offset: 5 }),
            (b"a; b=\"c\\", ExtensionError::UnterminatedQuotedString { offset: 5 }),
            (b"a=1", ExtensionError::UnexpectedByte { offset: 1 }),
            ("é".as_bytes(), ExtensionError::ExpectedToken { offset: 0 }),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_extensions(input), Err(*expected), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn display_round_trips() {
        let offers = parse_extensions(b"permessage-deflate; client_max_window_bits=\"10\"; x").unwrap();
        let text = offers[0].to_string();
        assert_eq!(text, "permessage-deflate; client_max_window_bits=10; x");
        assert_eq!(parse_extensions(text.as_bytes()).unwrap(), offers);
    }

    #[test]
    fn long_input_parses_in_one_pass() {
        // Many small offers and one long quoted value: nothing here is
        // re-scanned, so this stays linear in the input length.
        let mut value = Vec::new();
        for _ in 0..2000 {
            value.extend_from_slice(b"e; p=\"v\", ");
        }
        value.extend_from_slice(b"last; q=\"");
        value.extend(std::iter::repeat_n(b'a', 10_000));
        value.push(b'"');
        let offers = parse_extensions(&value).unwrap();
        assert_eq!(offers.len(), 2001);
        assert_eq!(offers[2000].params[0].value.as_ref().map(String::len), Some(10_000));
    }
}
