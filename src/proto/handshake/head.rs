//! Incremental accumulation of an HTTP head, shared by both sides.
//!
//! The reader only looks for the end of the head; parsing is left to httparse,
//! called once the end has been seen. Each byte is scanned a bounded number of
//! times however the input is chunked, so a peer trickling its head one byte
//! at a time costs linear work, not quadratic.

use super::{HandshakeLimits, Status};

/// The empty line that ends an HTTP head (RFC 9112 §2.1).
const END_OF_HEAD: &[u8; 4] = b"\r\n\r\n";

/// Why the head could not be taken as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// More than `max_head_bytes` without the end of the head.
    TooLarge,
    /// More than `max_headers` header fields.
    TooManyHeaders,
    /// httparse rejected the head; the text names what was wrong.
    Malformed(&'static str),
}

/// A complete head and the bytes that followed it.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) bytes: Vec<u8>,
    pub(crate) rest: Vec<u8>,
}

/// Buffers a head until its end is seen, within the caller's limits.
#[derive(Debug, Clone)]
pub(crate) struct HeadReader {
    limits: HandshakeLimits,
    buf: Vec<u8>,
    /// How much of `buf` has already been searched for the end of the head.
    scanned: usize,
    /// Bytes examined by the end-of-head search, for the linearity tests.
    #[cfg(test)]
    pub(crate) scan_steps: usize,
    /// Calls into httparse, for the "parse once" tests.
    #[cfg(test)]
    pub(crate) parses: usize,
}

impl HeadReader {
    pub(crate) fn new(limits: HandshakeLimits) -> Self {
        HeadReader {
            limits,
            buf: Vec::new(),
            scanned: 0,
            #[cfg(test)]
            scan_steps: 0,
            #[cfg(test)]
            parses: 0,
        }
    }

    pub(crate) fn limits(&self) -> HandshakeLimits {
        self.limits
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes `bytes`; returns the head once its end has been seen.
    ///
    /// Only bytes that can still belong to a head within the limit are copied
    /// into the buffer, so the buffer never grows past `max_head_bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<Head>, HeadError> {
        let room = self.limits.max_head_bytes.saturating_sub(self.buf.len());
        let take = room.min(bytes.len());
        let (head_part, after) = bytes.split_at(take);
        self.buf.extend_from_slice(head_part);

        // The terminator may straddle two reads: resume three bytes before
        // where the last search stopped, and never earlier. `scanned` never
        // exceeds `buf.len()`, so the slice below is in bounds.
        let start = self.scanned.saturating_sub(END_OF_HEAD.len() - 1);
        let found = find_end_of_head(&self.buf[start..]).map(|at| start + at + END_OF_HEAD.len());
        #[cfg(test)]
        {
            self.scan_steps += self.buf.len() - start;
        }
        self.scanned = self.buf.len();

        match found {
            Some(end) => {
                let mut head = std::mem::take(&mut self.buf);
                let mut rest = head.split_off(end);
                rest.extend_from_slice(after);
                self.scanned = 0;
                Ok(Some(Head { bytes: head, rest }))
            }
            // The buffer is full and holds no end of head: no later byte can
            // complete a head within the limit, so fail now rather than wait.
            None if self.buf.len() >= self.limits.max_head_bytes => Err(HeadError::TooLarge),
            None => Ok(None),
        }
    }

    /// Drops whatever is buffered.
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
        self.scanned = 0;
    }

    /// How many httparse header slots to offer for `head`.
    ///
    /// A header field takes at least one line, so the line count bounds the
    /// slots needed; the caller's limit bounds them from above. The slots are
    /// allocated only for a head that fitted within `max_head_bytes`.
    pub(crate) fn header_slots(&self, head: &[u8]) -> usize {
        let lines = head.iter().filter(|&&b| b == b'\n').count();
        lines.min(self.limits.max_headers)
    }

    #[cfg(test)]
    pub(crate) fn note_parse(&mut self) {
        self.parses += 1;
    }

    #[cfg(not(test))]
    pub(crate) fn note_parse(&mut self) {}
}

/// How each side reports a head that could not be taken whole.
pub(crate) trait FromHeadError: Clone {
    fn from_head(err: HeadError, limits: HandshakeLimits) -> Self;
}

/// A [`HeadReader`] whose first error is final: every later call returns it,
/// and the buffered bytes are freed at once.
#[derive(Debug, Clone)]
pub(crate) struct StickyReader<E> {
    pub(crate) reader: HeadReader,
    failed: Option<E>,
}

impl<E: FromHeadError> StickyReader<E> {
    pub(crate) fn new(limits: HandshakeLimits) -> Self {
        Self { reader: HeadReader::new(limits), failed: None }
    }

    /// Takes `bytes`; once the head is complete, `parse` turns it (given the
    /// number of header slots to offer httparse) into the caller's value.
    pub(crate) fn feed<T>(
        &mut self,
        bytes: &[u8],
        parse: impl FnOnce(&[u8], usize) -> Result<T, E>,
    ) -> Result<Status<T>, E> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.read(bytes, parse);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.reader.clear();
        }
        result
    }

    fn read<T>(&mut self, bytes: &[u8], parse: impl FnOnce(&[u8], usize) -> Result<T, E>) -> Result<Status<T>, E> {
        let limits = self.reader.limits();
        let head = match self.reader.feed(bytes) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(Status::Partial),
            Err(err) => return Err(E::from_head(err, limits)),
        };
        let slots = self.reader.header_slots(&head.bytes);
        self.reader.note_parse();
        Ok(Status::Complete { head: parse(&head.bytes, slots)?, rest: head.rest })
    }
}

/// Position of the first `\r\n\r\n` in `bytes`.
fn find_end_of_head(bytes: &[u8]) -> Option<usize> {
    bytes.windows(END_OF_HEAD.len()).position(|w| w == END_OF_HEAD)
}

/// Maps an httparse failure to our head error.
pub(crate) fn from_httparse(err: httparse::Error) -> HeadError {
    match err {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::Malformed("invalid status code"),
        httparse::Error::Token => HeadError::Malformed("invalid token"),
        httparse::Error::Version => HeadError::Malformed("unsupported HTTP version"),
    }
}

/// Checks httparse's verdict on a head that we found to end at `head_len`.
pub(crate) fn complete_len(
    status: Result<httparse::Status<usize>, httparse::Error>,
    head_len: usize,
) -> Result<(), HeadError> {
    match status {
        Ok(httparse::Status::Complete(n)) if n == head_len => Ok(()),
        // httparse also accepts a bare LF as a line end (RFC 9112 §2.2 allows
        // it), which would let it see the head end before our CRLF CRLF; we
        // require CRLF so that both agree on where the frames begin.
        Ok(httparse::Status::Complete(_)) => Err(HeadError::Malformed("bare LF in head")),
        Ok(httparse::Status::Partial) => Err(HeadError::Malformed("incomplete head")),
        Err(err) => Err(from_httparse(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(max_head_bytes: usize) -> HeadReader {
        HeadReader::new(HandshakeLimits { max_head_bytes, max_headers: 64 })
    }

    #[test]
    fn terminator_straddling_reads_is_found() {
        let mut r = reader(100);
        assert!(r.feed(b"GET / HTTP/1.1\r").unwrap().is_none());
        assert!(r.feed(b"\n\r").unwrap().is_none());
        let head = r.feed(b"\nabc").unwrap().unwrap();
        assert_eq!(head.bytes, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(head.rest, b"abc");
    }

    #[test]
    fn head_exactly_at_limit_is_accepted() {
        let text = b"GET / HTTP/1.1\r\n\r\n";
        let mut r = reader(text.len());
        let mut input = text.to_vec();
        input.extend_from_slice(b"frame bytes past the limit");
        let head = r.feed(&input).unwrap().unwrap();
        assert_eq!(head.bytes, text);
        assert_eq!(head.rest, b"frame bytes past the limit");
    }

    #[test]
    fn limit_reached_without_terminator_fails_at_once() {
        let mut r = reader(16);
        assert!(r.feed(&[b'a'; 15]).unwrap().is_none());
        assert_eq!(r.feed(b"a").unwrap_err(), HeadError::TooLarge);
        assert_eq!(r.buffered(), 16);
    }

    #[test]
    fn byte_at_a_time_scanning_is_linear() {
        let mut r = reader(8192);
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < 8000 {
            head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaa\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let mut done = false;
        for &b in &head {
            if r.feed(&[b]).unwrap().is_some() {
                done = true;
            }
        }
        assert!(done);
        // Each byte is looked at once on its own read and at most three more
        // times as part of a straddle window.
        assert!(r.scan_steps <= 4 * head.len(), "{} steps", r.scan_steps);
    }

    #[test]
    fn slots_are_bounded_by_lines_and_limit() {
        let r = HeadReader::new(HandshakeLimits { max_head_bytes: 100, max_headers: 2 });
        assert_eq!(r.header_slots(b"GET / HTTP/1.1\r\n\r\n"), 2);
        let r = reader(100);
        assert_eq!(r.header_slots(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"), 3);
    }
}
