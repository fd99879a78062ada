//! Echo's fast path: frames encoded and masked once, sent by copying their
//! bytes, and replies counted from the server's frame headers, their
//! payloads skipped unread.
//!
//! A load generator that builds, masks, parses and checks every message as
//! a client library does costs as much per message as the server it loads,
//! and measures itself as much as the server. On this path a message costs
//! the copy of its frame out and a header's parse in. Every frame of a run
//! carries the same masking key and payload: a server cannot tell (RFC 6455
//! §5.3 asks for unpredictable keys against proxies that cache, which a
//! loopback benchmark has none of). Round trips are sampled: the first
//! message of each write is stamped, and its reply, the same number of
//! replies later (echoes come back in order), gives its round-trip time.

use std::collections::VecDeque;
use std::time::Instant;

use ferrows::proto::frame::{decode_header, encode_frame, Decoded, HeaderRules, OpCode};
use ferrows::proto::Role;

/// The longest frame header.
pub use ferrows::proto::frame::MAX_HEADER_LEN as MAX_HEADER;

/// A client's rules for the server's frame headers, with no extension.
const RULES: HeaderRules = HeaderRules { role: Role::Client, allowed_rsv: 0 };

/// What [`Replies::scan`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// All of them but the last `pending` bytes: the start of a header, to be
    /// given again in front of the next bytes.
    All {
        /// Bytes of an incomplete header at the end.
        pending: usize,
    },
    /// The bytes before `at`; from `at` on comes a frame this path does not
    /// count (a Close, a ping, anything but an echo of ours), which the
    /// connection's parser takes, with all that follows.
    Until {
        /// Where the uncounted frame starts.
        at: usize,
    },
}

/// One message as a frame, masked and ready to be copied onto the wire.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The whole frame.
    frame: Vec<u8>,
    /// Its opcode, which the echo must carry too.
    opcode: OpCode,
    /// Its payload's length, which the echo must have too.
    size: usize,
}

impl Prepared {
    /// A final text (else binary) frame of `payload`, masked with `key`.
    pub fn new(text: bool, payload: &[u8], key: [u8; 4]) -> Self {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mut frame = Vec::new();
        encode_frame(true, 0, opcode, payload, Some(key), &mut frame);
        Prepared { frame, opcode, size: payload.len() }
    }

    /// Appends `count` copies of the frame to `out`.
    pub fn put(&self, count: usize, out: &mut Vec<u8>) {
        out.reserve(self.frame.len() * count);
        for _ in 0..count {
            out.extend_from_slice(&self.frame);
        }
    }
}

/// One connection's count: messages sent, replies received, and the send
/// times of the sampled messages still in flight.
#[derive(Debug, Default)]
pub struct Replies {
    /// Messages sent.
    pub sent: u64,
    /// Replies received whole.
    pub received: u64,
    /// Payload bytes of the reply being received that are still to come.
    skip: u64,
    /// Sampled messages in flight: their number (0 for the first sent) and
    /// when they were sent, oldest first.
    stamps: VecDeque<(u64, Instant)>,
}

impl Replies {
    /// Counts the echoes of `expected` in `input`; `on_reply` gets the
    /// round-trip time of each sampled one, measured to `now`.
    pub fn scan(&mut self, input: &[u8], expected: &Prepared, now: Instant, mut on_reply: impl FnMut(u64)) -> Taken {
        let mut at = 0;
        loop {
            if self.skip > 0 {
                let take = usize::try_from(self.skip).map_or(input.len() - at, |skip| skip.min(input.len() - at));
                self.skip -= take as u64;
                at += take;
                if self.skip > 0 {
                    return Taken::All { pending: 0 };
                }
                self.complete(now, &mut on_reply);
            }
            let rest = &input[at..];
            if rest.is_empty() {
                return Taken::All { pending: 0 };
            }
            // A header that breaks a rule is the connection's to refuse.
            let (header, len) = match decode_header(rest, &RULES) {
                Ok(Decoded::Complete(header, len)) => (header, len),
                Ok(Decoded::Partial(_)) => return Taken::All { pending: rest.len() },
                Err(_) => return Taken::Until { at },
            };
            // Final, with our opcode and length: an echo.
            if !header.fin || header.opcode != expected.opcode || header.payload_len != expected.size as u64 {
                return Taken::Until { at };
            }
            at += len;
            self.skip = header.payload_len;
            if self.skip == 0 {
                self.complete(now, &mut on_reply);
            }
        }
    }

    /// One more reply came whole.
    fn complete(&mut self, now: Instant, on_reply: &mut impl FnMut(u64)) {
        if self.stamps.front().is_some_and(|&(number, _)| number == self.received) {
            if let Some((_, sent)) = self.stamps.pop_front() {
                on_reply(now.saturating_duration_since(sent).as_nanos() as u64);
            }
        }
        self.received += 1;
    }

    /// Sends as many copies of `frame` as it takes to have `in_flight`
    /// messages out, stamping the first with `now`.
    pub fn top_up(&mut self, frame: &Prepared, in_flight: usize, now: Instant, out: &mut Vec<u8>) {
        let out_now = self.sent - self.received;
        let owed = (in_flight as u64).saturating_sub(out_now);
        if owed == 0 {
            return;
        }
        self.stamps.push_back((self.sent, now));
        self.sent += owed;
        frame.put(owed as usize, out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An unmasked server frame of `opcode` with `len` payload bytes.
    fn reply(opcode: u8, len: usize) -> Vec<u8> {
        let mut frame = Vec::new();
        let opcode = OpCode::from_bits(opcode).unwrap();
        encode_frame(true, 0, opcode, &vec![b'x'; len], None, &mut frame);
        frame
    }

    #[test]
    fn prepared_frames_are_masked_with_the_length_encoded_as_the_rfc_says() {
        let small = Prepared::new(false, b"abcd", [1, 2, 3, 4]);
        assert_eq!(small.frame, [0x82, 0x84, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3, b'd' ^ 4]);
        let medium = Prepared::new(true, &[b'a'; 300], [0; 4]);
        assert_eq!(&medium.frame[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(medium.frame.len(), 4 + 4 + 300);
        let large = Prepared::new(false, &vec![0; 70_000], [0; 4]);
        assert_eq!(&large.frame[..2], &[0x82, 0x80 | 127]);
        assert_eq!(u64::from_be_bytes(large.frame[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn replies_are_counted_across_any_split_and_sampled_round_trips_measured() {
        for size in [0, 16, 200, 70_000] {
            let frame = Prepared::new(false, &vec![7; size], [9, 8, 7, 6]);
            let stream: Vec<u8> = (0..5).flat_map(|_| reply(0x2, size)).collect();
            for chunk in [1, 3, 11, 4096] {
                let start = Instant::now();
                let mut replies = Replies::default();
                let mut out = Vec::new();
                replies.top_up(&frame, 5, start, &mut out);
                assert_eq!((replies.sent, out.len()), (5, 5 * frame.frame.len()));
                let later = start + Duration::from_micros(250);
                let mut rtts = Vec::new();
                let mut carry = Vec::new();
                for piece in stream.chunks(chunk) {
                    carry.extend_from_slice(piece);
                    match replies.scan(&carry, &frame, later, |rtt| rtts.push(rtt)) {
                        Taken::All { pending } => {
                            assert!(pending < MAX_HEADER);
                            carry.drain(..carry.len() - pending);
                        }
                        Taken::Until { at } => panic!("an echo was not counted at {at} (size {size}, chunk {chunk})"),
                    }
                }
                assert_eq!(replies.received, 5, "size {size}, chunk {chunk}");
                assert_eq!(rtts, [250_000], "the first message of the write is the sampled one");
            }
        }
    }

    #[test]
    fn a_frame_that_is_no_echo_of_ours_stops_the_count_at_its_header() {
        let frame = Prepared::new(false, &[0; 16], [0; 4]);
        let now = Instant::now();
        for other in [reply(0x8, 2), reply(0x9, 0), reply(0x1, 16), reply(0x2, 17)] {
            let mut stream = reply(0x2, 16);
            let at = stream.len();
            stream.extend_from_slice(&other);
            let mut replies = Replies::default();
            assert_eq!(replies.scan(&stream, &frame, now, |_| {}), Taken::Until { at });
            assert_eq!(replies.received, 1);
        }
        // A fragment, or a masked frame from a server, is not counted either.
        let mut fragment = reply(0x2, 16);
        fragment[0] &= 0x7f;
        let mut masked = reply(0x2, 16);
        masked[1] |= 0x80;
        for stream in [fragment, masked] {
            assert_eq!(Replies::default().scan(&stream, &frame, now, |_| {}), Taken::Until { at: 0 });
        }
    }

    #[test]
    fn top_up_sends_only_what_is_owed() {
        let frame = Prepared::new(false, &[0; 8], [0; 4]);
        let now = Instant::now();
        let mut replies = Replies::default();
        let mut out = Vec::new();
        replies.top_up(&frame, 4, now, &mut out);
        replies.received = 3;
        out.clear();
        replies.top_up(&frame, 4, now, &mut out);
        assert_eq!((replies.sent, out.len()), (7, 3 * frame.frame.len()));
        out.clear();
        replies.top_up(&frame, 4, now, &mut out);
        assert!(out.is_empty());
    }
}
