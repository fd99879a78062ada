//! The few DER shapes a public key comes in (ITU-T X.690 §10): a reader of
//! one tag-length-value at a time, bounds-checked, that never panics.
//!
//! Only definite, minimal lengths are accepted (DER, not BER): a key file is
//! written once by a tool, so there is no lenient encoding to be kind to, and
//! one accepted encoding per key keeps the parser small.

/// SEQUENCE, constructed (X.690 §8.9).
pub(super) const SEQUENCE: u8 = 0x30;
/// OBJECT IDENTIFIER (X.690 §8.19).
pub(super) const OID: u8 = 0x06;
/// BIT STRING, primitive (X.690 §8.6).
pub(super) const BIT_STRING: u8 = 0x03;
/// INTEGER (X.690 §8.3).
pub(super) const INTEGER: u8 = 0x02;
/// NULL (X.690 §8.8): the parameters of rsaEncryption.
pub(super) const NULL: u8 = 0x05;

/// Lengths past this are no key of ours (an 8192-bit RSA key's DER is about
/// 1.1 KB): four length octets at most are read.
const MAX_LEN_OCTETS: usize = 4;

/// The input is not the DER that was expected; which part is of no use to
/// the caller, who reports a malformed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DerError;

/// Reads DER values from the front of a byte slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `input`.
    pub(super) fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// Whether everything has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads one value with tag `tag` and returns its contents.
    pub(super) fn read(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (&found, rest) = self.rest.split_first().ok_or(DerError)?;
        if found != tag {
            return Err(DerError);
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // X.690 §8.1.3.5: the long form; 0x80 alone is BER's indefinite length.
            let octets = usize::from(first & 0x7f);
            if octets == 0 || octets > MAX_LEN_OCTETS || rest.len() < octets {
                return Err(DerError);
            }
            let (len_bytes, after) = rest.split_at(octets);
            rest = after;
            // X.690 §10.1: the fewest octets, so no leading zero and no long
            // form for what the short form can say.
            if len_bytes[0] == 0 {
                return Err(DerError);
            }
            let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err(DerError);
            }
            len
        };
        if rest.len() < len {
            return Err(DerError);
        }
        let (contents, after) = rest.split_at(len);
        self.rest = after;
        Ok(contents)
    }

    /// Reads a SEQUENCE and returns a reader of its contents.
    pub(super) fn sequence(&mut self) -> Result<Reader<'a>, DerError> {
        self.read(SEQUENCE).map(Reader::new)
    }

    /// Reads a BIT STRING of whole bytes (X.690 §8.6.2: the first octet counts
    /// the unused bits of the last, none for a key) and returns them.
    pub(super) fn bit_string(&mut self) -> Result<&'a [u8], DerError> {
        match self.read(BIT_STRING)?.split_first() {
            Some((0, bits)) => Ok(bits),
            _ => Err(DerError),
        }
    }

    /// Reads a positive INTEGER in minimal form and returns its magnitude,
    /// without the sign octet.
    pub(super) fn positive_integer(&mut self) -> Result<&'a [u8], DerError> {
        match self.read(INTEGER)? {
            // X.690 §8.3.2: a leading 0x00 only where the next bit would
            // otherwise make the number negative.
            [0, magnitude @ ..] if magnitude.first().is_some_and(|b| b & 0x80 != 0) => Ok(magnitude),
            [0, ..] | [] => Err(DerError),
            [first, ..] if first & 0x80 != 0 => Err(DerError),
            magnitude => Ok(magnitude),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let mut r = Reader::new(&[OID, 2, 1, 2, NULL, 0]);
        assert_eq!(r.read(OID), Ok(&[1, 2][..]));
        assert_eq!(r.read(NULL), Ok(&[][..]));
        assert!(r.is_empty());

        let mut long = vec![OID, 0x81, 200];
        long.extend([7; 200]);
        assert_eq!(Reader::new(&long).read(OID).map(<[u8]>::len), Ok(200));
        let mut longer = vec![OID, 0x82, 0x01, 0x00];
        longer.extend([7; 256]);
        assert_eq!(Reader::new(&longer).read(OID).map(<[u8]>::len), Ok(256));
    }

    #[test]
    fn refuses_what_der_does_not_allow() {
        let refused: &[&[u8]] = &[
            &[],                                  // nothing to read
            &[OID],                               // no length
            &[NULL, 0],                           // another tag
            &[OID, 3, 1, 2],                      // contents shorter than the length
            &[OID, 0x80, 1, 0, 0],                // BER's indefinite length
            &[OID, 0x81, 5, 1, 2, 3, 4, 5],       // long form for a short length
            &[OID, 0x82, 0, 0x80],                // a leading zero length octet
            &[OID, 0x85, 1, 0, 0, 0, 0],          // more length octets than a key needs
            &[OID, 0x84, 0xff, 0xff, 0xff, 0xff], // a length far past the input
            &[OID, 0x82, 1],                      // length octets cut short
        ];
        for input in refused {
            assert_eq!(Reader::new(input).read(OID), Err(DerError), "{input:02x?}");
        }
    }

    #[test]
    fn bit_strings_of_whole_bytes_only() {
        assert_eq!(Reader::new(&[BIT_STRING, 3, 0, 0xaa, 0xbb]).bit_string(), Ok(&[0xaa, 0xbb][..]));
        assert_eq!(Reader::new(&[BIT_STRING, 1, 0]).bit_string(), Ok(&[][..]));
        assert_eq!(Reader::new(&[BIT_STRING, 2, 1, 0xaa]).bit_string(), Err(DerError));
        assert_eq!(Reader::new(&[BIT_STRING, 0]).bit_string(), Err(DerError));
    }

    #[test]
    fn positive_integers_in_minimal_form() {
        let int = |bytes: &[u8]| {
            let mut der = vec![INTEGER, bytes.len() as u8];
            der.extend(bytes);
            Reader::new(&der).positive_integer().map(<[u8]>::to_vec)
        };
        assert_eq!(int(&[1, 0, 1]), Ok(vec![1, 0, 1]));
        assert_eq!(int(&[0, 0x80]), Ok(vec![0x80]));
        assert_eq!(int(&[0x80]), Err(DerError), "negative");
        assert_eq!(int(&[0, 0x7f]), Err(DerError), "a needless leading zero");
        assert_eq!(int(&[0]), Err(DerError), "zero");
        assert_eq!(int(&[]), Err(DerError), "no octets");
    }

    #[test]
    fn sequences_nest() {
        let der = [SEQUENCE, 5, SEQUENCE, 3, OID, 1, 42];
        let mut outer = Reader::new(&der);
        let mut seq = outer.sequence().unwrap();
        let mut inner = seq.sequence().unwrap();
        assert_eq!(inner.read(OID), Ok(&[42][..]));
        assert!(inner.is_empty() && seq.is_empty() && outer.is_empty());
    }
}
