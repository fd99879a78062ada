//! The part of RESP2 (the Redis protocol) the bridge speaks: commands out as
//! arrays of bulk strings, and an incremental reader for replies and pushes.
//!
//! The reader is sans-IO like the protocol core: bytes are fed as they come,
//! and a value comes out only once it is whole. Lengths are checked against
//! limits before anything is allocated for them.

use std::fmt;

/// A RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`
    Error(Vec<u8>),
    /// `:1`
    Integer(i64),
    /// `$3\r\nfoo` (`None`: the null bulk string, `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None`: the null array, `*-1`).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The bytes of a simple or bulk string.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }
}

/// Appends a command (an array of bulk strings) to `out`.
pub(crate) fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(b"*");
    push_decimal(args.len(), out);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        push_bulk(&[arg], out);
    }
}

/// As [`encode_command`], each argument given in parts, written one after
/// another: a message built of a header and a frame is not first joined.
pub(crate) fn encode_command_parts(args: &[&[&[u8]]], out: &mut Vec<u8>) {
    out.extend_from_slice(b"*");
    push_decimal(args.len(), out);
    out.extend_from_slice(b"\r\n");
    for parts in args {
        push_bulk(parts, out);
    }
}

/// `$LEN\r\n` and the parts, then CRLF.
fn push_bulk(parts: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(b"$");
    push_decimal(parts.iter().map(|p| p.len()).sum(), out);
    out.extend_from_slice(b"\r\n");
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// A number in decimal, without allocating.
fn push_decimal(mut n: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Why the server's bytes cannot be read as RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RespError {
    /// Not RESP2 at all, or a malformed line.
    Syntax(&'static str),
    /// A bulk string or array larger than the limits.
    TooLarge,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Syntax(what) => write!(f, "not RESP: {what}"),
            RespError::TooLarge => f.write_str("a RESP value over the limits"),
        }
    }
}

/// Limits on what one value may hold.
const MAX_LINE: usize = 64;
/// The most items in one array (a READ script's answer holds up to this many
/// records). Memory follows the bytes that came, not this count.
pub(crate) const MAX_ARRAY: usize = 1 << 16;
const MAX_DEPTH: usize = 4;

/// Reads RESP2 values from bytes fed as they arrive.
///
/// A value is built only once all of it has come: until then each read
/// goes on checking where the last one stopped ([`Scan`]), so a large reply
/// arriving in many reads (or a byte at a time) costs its length once, not
/// once per read.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    /// Bytes of `buf` already taken by returned values.
    start: usize,
    /// The largest bulk string accepted.
    max_bulk: usize,
    /// How much of the value at `start` is known to be well-formed.
    scan: Scan,
}

/// The progress of checking the value at the reader's `start`.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes after `start` checked whole: where the next element begins.
    done: usize,
    /// The items each array opened so far still waits for, innermost last
    /// (at most [`MAX_DEPTH`] + 1 of them).
    open: Vec<usize>,
}

impl Reader {
    pub(crate) fn new(max_bulk: usize) -> Self {
        Self { buf: Vec::new(), start: 0, max_bulk, scan: Scan::default() }
    }

    /// Whether the value at `start` has all come, checking from where the
    /// last call stopped.
    fn whole(&mut self) -> Result<bool, RespError> {
        loop {
            let mut pos = self.start + self.scan.done;
            let Some(&kind) = self.buf.get(pos) else { return Ok(false) };
            if self.scan.open.len() > MAX_DEPTH {
                return Err(RespError::TooLarge);
            }
            if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
                return Err(RespError::Syntax("an unknown type byte"));
            }
            pos += 1;
            let limit = if matches!(kind, b'+' | b'-') { self.max_bulk } else { MAX_LINE };
            let Some(head) = line(&self.buf, &mut pos, limit)? else { return Ok(false) };
            match kind {
                b':' => {
                    number(head)?;
                }
                b'$' => {
                    if let Some(len) = length(head, self.max_bulk)? {
                        // Its header is read again when more comes: it is short.
                        if self.buf.len() < pos + len + 2 {
                            return Ok(false);
                        }
                        if &self.buf[pos + len..pos + len + 2] != b"\r\n" {
                            return Err(RespError::Syntax("a bulk string without its CRLF"));
                        }
                        pos += len + 2;
                    }
                }
                b'*' => {
                    if let Some(len @ 1..) = length(head, MAX_ARRAY)? {
                        self.scan.done = pos - self.start;
                        self.scan.open.push(len);
                        continue;
                    }
                }
                _ => {}
            }
            self.scan.done = pos - self.start;
            // An element is whole: so is every array it completes.
            loop {
                match self.scan.open.last_mut() {
                    None => return Ok(true),
                    Some(1) => {
                        self.scan.open.pop();
                    }
                    Some(left) => {
                        *left -= 1;
                        break;
                    }
                }
            }
        }
    }

    /// Adds bytes read from the connection.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole value, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    ///
    /// Bytes that are not RESP2, or a value over the limits: the connection
    /// is not usable any more.
    pub(crate) fn next_value(&mut self) -> Result<Option<Value>, RespError> {
        if !self.whole()? {
            return Ok(None);
        }
        let mut at = self.start;
        match parse(&self.buf, &mut at, self.max_bulk, 0)? {
            Some(value) => {
                self.start = at;
                self.scan.done = 0;
                if self.start > (64 << 10) && self.start * 2 > self.buf.len() {
                    // Give back the bytes already read once they are most of the buffer.
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }
}

/// The line at `at` (without its CRLF), or `None` if it is not all there.
/// A line longer than `limit` is refused, before its end comes if need be.
fn line<'a>(buf: &'a [u8], at: &mut usize, limit: usize) -> Result<Option<&'a [u8]>, RespError> {
    let rest = &buf[*at..];
    // A CRLF past the limit is not looked for: the line is too long anyway.
    let Some(end) = rest[..rest.len().min(limit.saturating_add(2))].windows(2).position(|w| w == b"\r\n") else {
        if rest.len() > limit + 1 {
            return Err(RespError::TooLarge);
        }
        return Ok(None);
    };
    if end > limit {
        return Err(RespError::TooLarge);
    }
    *at += end + 2;
    Ok(Some(&rest[..end]))
}

fn number(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits).ok().and_then(|s| s.parse().ok()).ok_or(RespError::Syntax("a bad number"))
}

/// A bulk string's or array's length: `None` for the null one (a negative
/// length), refused over `max`.
fn length(digits: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    let len = number(digits)?;
    if len < 0 {
        return Ok(None);
    }
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(Some(len)),
        _ => Err(RespError::TooLarge),
    }
}

fn parse(buf: &[u8], at: &mut usize, max_bulk: usize, depth: usize) -> Result<Option<Value>, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::TooLarge);
    }
    let Some(&kind) = buf.get(*at) else { return Ok(None) };
    if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(RespError::Syntax("an unknown type byte"));
    }
    let mut pos = *at + 1;
    // A length line is short; a simple string or error is held to the bulk limit.
    let limit = if matches!(kind, b'+' | b'-') { max_bulk } else { MAX_LINE };
    let Some(head) = line(buf, &mut pos, limit)? else { return Ok(None) };
    let value = match kind {
        b'+' => Value::Simple(head.to_vec()),
        b'-' => Value::Error(head.to_vec()),
        b':' => Value::Integer(number(head)?),
        b'$' => {
            if let Some(len) = length(head, max_bulk)? {
                if buf.len() < pos + len + 2 {
                    return Ok(None);
                }
                if &buf[pos + len..pos + len + 2] != b"\r\n" {
                    return Err(RespError::Syntax("a bulk string without its CRLF"));
                }
                let bytes = buf[pos..pos + len].to_vec();
                pos += len + 2;
                Value::Bulk(Some(bytes))
            } else {
                Value::Bulk(None)
            }
        }
        _ => {
            // b'*', the last kind left.
            if let Some(len) = length(head, MAX_ARRAY)? {
                let mut items = Vec::with_capacity(len.min(16));
                for _ in 0..len {
                    match parse(buf, &mut pos, max_bulk, depth + 1)? {
                        Some(item) => items.push(item),
                        None => return Ok(None),
                    }
                }
                Value::Array(Some(items))
            } else {
                Value::Array(None)
            }
        }
    };
    *at = pos;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Value>, RespError> {
        let mut reader = Reader::new(1 << 20);
        reader.feed(bytes);
        let mut values = Vec::new();
        while let Some(v) = reader.next_value()? {
            values.push(v);
        }
        Ok(values)
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&[b"PUBLISH", b"ch", b"a\r\nb"], &mut out);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n");
        let mut parts = Vec::new();
        encode_command_parts(&[&[b"PUB", b"LISH"], &[b"ch"], &[b"a\r", b"", b"\nb"]], &mut parts);
        assert_eq!(parts, out, "parts are written as one argument each");
        let mut zero = Vec::new();
        encode_command(&[b""], &mut zero);
        assert_eq!(zero, b"*1\r\n$0\r\n\r\n");
    }

    #[test]
    fn a_push_message_reads_back_at_every_split() {
        let bytes = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhe\r\no\r\n+OK\r\n:-3\r\n$-1\r\n-ERR no\r\n";
        let expected = vec![
            Value::Array(Some(vec![
                Value::Bulk(Some(b"message".to_vec())),
                Value::Bulk(Some(b"ch".to_vec())),
                Value::Bulk(Some(b"he\r\no".to_vec())),
            ])),
            Value::Simple(b"OK".to_vec()),
            Value::Integer(-3),
            Value::Bulk(None),
            Value::Error(b"ERR no".to_vec()),
        ];
        assert_eq!(read_all(bytes).unwrap(), expected);
        for split in 0..bytes.len() {
            let mut reader = Reader::new(1 << 20);
            let mut values = Vec::new();
            reader.feed(&bytes[..split]);
            while let Some(v) = reader.next_value().unwrap() {
                values.push(v);
            }
            reader.feed(&bytes[split..]);
            while let Some(v) = reader.next_value().unwrap() {
                values.push(v);
            }
            assert_eq!(values, expected, "split at {split}");
        }
    }

    #[test]
    fn a_reply_fed_a_byte_at_a_time_is_checked_once() {
        let mut bytes = b"*3\r\n*2\r\n$3\r\nabc\r\n:7\r\n$-1\r\n".to_vec();
        let last = b"*1\r\n+OK\r\n";
        let before_last = bytes.len();
        bytes.extend_from_slice(last);
        let mut reader = Reader::new(1 << 20);
        let (most, end) = bytes.split_at(bytes.len() - 1);
        for (i, byte) in most.iter().enumerate() {
            reader.feed(&[*byte]);
            assert_eq!(reader.next_value().unwrap(), None, "after {} bytes", i + 1);
            if i + 1 == before_last + 4 {
                assert_eq!(reader.scan.done, before_last + 4, "the last array's header is checked, not read again");
                assert_eq!(reader.scan.open, vec![1, 1]);
            }
        }
        reader.feed(end);
        let value = reader.next_value().unwrap().expect("the whole reply");
        let Value::Array(Some(items)) = value else { panic!("an array") };
        assert_eq!(items.len(), 3);
        assert_eq!(items[2], Value::Array(Some(vec![Value::Simple(b"OK".to_vec())])));
        assert_eq!((reader.scan.done, reader.scan.open.len()), (0, 0), "ready for the next value");
    }

    #[test]
    fn limits_are_checked_before_allocating() {
        assert_eq!(read_all(b"$99999999999\r\n"), Err(RespError::TooLarge));
        assert_eq!(read_all(b"*70000\r\n"), Err(RespError::TooLarge));
        assert_eq!(read_all(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), Err(RespError::TooLarge));
        assert!(read_all(b"?\r\n").is_err());
        assert!(read_all(b"$3\r\nabcd\r\n").is_err());
        assert!(read_all(&[b'$'; 100]).is_err());
        let mut long_simple = vec![b'+'];
        long_simple.resize((1 << 20) + 8, b'a');
        assert_eq!(read_all(&long_simple), Err(RespError::TooLarge), "a simple string without end, over the limit");
    }
}
