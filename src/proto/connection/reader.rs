//! The receiving half of a connection: bytes in, frames checked against the
//! limits, whole messages and control frames out as events.
//!
//! The reader knows frames and messages, not the closing handshake: what an
//! event means for the connection (a Pong to send, a Close to answer) is the
//! [`Connection`](super::Connection)'s business.

use crate::proto::close;
use crate::proto::config::Config;
use crate::proto::error::ProtocolError;
use crate::proto::event::{ControlPayload, Event};
use crate::proto::frame::{self, decode_header, Decoded, FrameHeader, HeaderRules, OpCode, MAX_HEADER_LEN};
use crate::proto::mask::apply_mask;
use crate::proto::utf8::Utf8Validator;

/// The decompressor of a connection that negotiated permessage-deflate.
#[cfg(feature = "deflate")]
pub(super) type Inflater = crate::proto::deflate::Inflater;
/// Without the feature there is no decompressor: `Option<&mut Inflater>` is always `None`.
#[cfg(not(feature = "deflate"))]
#[derive(Debug)]
pub(super) enum Inflater {}

/// Where the frame decoder is in the byte stream.
#[derive(Debug, Clone)]
enum ReadState {
    /// Between frames: the start of a header, kept only when a read cut it short.
    Header { buf: [u8; MAX_HEADER_LEN], len: usize },
    /// Inside a frame's payload.
    Payload { opcode: OpCode, fin: bool, remaining: u64, mask: Option<[u8; 4]>, offset: usize },
}

const NEW_HEADER: ReadState = ReadState::Header { buf: [0; MAX_HEADER_LEN], len: 0 };

/// The data message being reassembled.
#[derive(Debug)]
enum Message {
    None,
    /// `compressed`: the first frame had RSV1 set (RFC 7692 §6.1).
    Text {
        text: String,
        utf8: Utf8Validator,
        fragments: usize,
        compressed: bool,
    },
    Binary {
        data: Vec<u8>,
        fragments: usize,
        compressed: bool,
    },
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Self::None => 0,
            Self::Text { text, .. } => text.len(),
            Self::Binary { data, .. } => data.len(),
        }
    }

    fn is_compressed(&self) -> bool {
        matches!(self, Self::Text { compressed: true, .. } | Self::Binary { compressed: true, .. })
    }

    /// Appends payload (unmasked, and inflated if it was compressed), checking text as it comes.
    fn append(&mut self, chunk: &[u8], limit: usize) -> Result<(), ProtocolError> {
        match self {
            Self::Text { text, utf8, .. } => {
                reserve_within(text.capacity(), text.len(), chunk.len(), limit, |n| text.reserve_exact(n));
                // RFC 6455 §8.1 and §5.6: invalid UTF-8 fails the connection as soon as it is seen.
                utf8.push(chunk, text).map_err(|_| ProtocolError::InvalidUtf8)
            }
            Self::Binary { data, .. } => {
                reserve_within(data.capacity(), data.len(), chunk.len(), limit, |n| data.reserve_exact(n));
                data.extend_from_slice(chunk);
                Ok(())
            }
            // start_frame set up a message for every data frame.
            Self::None => Ok(()),
        }
    }
}

/// What a completed frame gives the connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Item {
    /// A control frame, or a message reassembled in the reader: boxed, so
    /// that the queue of a burst's items, lent messages above all, moves
    /// three words per item rather than the size of a control payload.
    Event(Box<Event>),
    /// A whole message that came in one frame within one read: unmasked (and
    /// checked, for text) in place, at `start..end` of the input.
    Lent { text: bool, start: usize, end: usize },
}

/// The frame decoder and the message being reassembled.
#[derive(Debug)]
pub(super) struct Reader {
    read: ReadState,
    message: Message,
    /// The payload of the control frame being read.
    control: ControlPayload,
}

impl Default for Reader {
    fn default() -> Self {
        Self { read: NEW_HEADER, message: Message::None, control: ControlPayload::EMPTY }
    }
}

impl Reader {
    /// Consumes bytes of `input` up to the end of the next frame; returns how
    /// many, and what that frame completed, if anything (a fragment of a
    /// message completes nothing).
    ///
    /// `input` is unmasked in place.
    #[inline]
    pub(super) fn read(
        &mut self,
        input: &mut [u8],
        config: &Config,
        rules: &HeaderRules,
        mut inflater: Option<&mut Inflater>,
    ) -> Result<(usize, Option<Item>), ProtocolError> {
        let mut used = 0;
        if let ReadState::Header { .. } = self.read {
            let Some((header, header_used)) = self.next_header(input, rules)? else {
                return Ok((input.len(), None));
            };
            used = header_used;
            if let Some(len) = self.whole_message(&header, input.len() - used, config) {
                let end = used + len;
                let text = header.opcode == OpCode::Text;
                lend(&mut input[used..end], text, header.mask)?;
                return Ok((end, Some(Item::Lent { text, start: used, end })));
            }
            self.start_frame(header, config)?;
        }
        // The payload often came with its header: read on in the same call.
        if matches!(self.read, ReadState::Payload { .. }) && used < input.len() {
            used += self.read_payload(&mut input[used..], config, inflater.as_deref_mut())?;
        }
        // A frame is complete once its payload is all in (at once, for an empty payload).
        if matches!(self.read, ReadState::Payload { remaining: 0, .. }) {
            return Ok((used, self.finish_frame(config, inflater)?.map(|event| Item::Event(Box::new(event)))));
        }
        Ok((used, None))
    }

    /// The payload's length, when the frame of `header` is a whole message
    /// (final, uncompressed, not a continuation, within the limits, no
    /// message in progress) and all of it is among the `available` bytes
    /// after the header: the common case, read with no copy.
    fn whole_message(&self, header: &FrameHeader, available: usize, config: &Config) -> Option<usize> {
        let data = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if !(data && header.fin && header.rsv == 0 && matches!(self.message, Message::None)) {
            return None;
        }
        let limit = config.max_frame_size.min(config.max_message_size).min(available);
        usize::try_from(header.payload_len).ok().filter(|&len| len <= limit)
    }

    /// Whether the reader is between frames and between messages: it holds nothing.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self.read, ReadState::Header { len: 0, .. }) && matches!(self.message, Message::None)
    }

    /// Bytes held for the message being reassembled.
    pub(super) fn buffered_bytes(&self) -> usize {
        match &self.message {
            Message::None => 0,
            Message::Text { text, .. } => text.capacity(),
            Message::Binary { data, .. } => data.capacity(),
        }
    }

    /// Forgets the frame and the message in progress (after a failure or the peer's Close).
    pub(super) fn reset(&mut self, inflater: Option<&mut Inflater>) {
        *self = Self::default();
        #[cfg(feature = "deflate")]
        if let Some(inflater) = inflater {
            inflater.end_message();
        }
        #[cfg(not(feature = "deflate"))]
        let _ = inflater;
    }

    /// Decodes the next frame's header from what an earlier read left of it
    /// and `input`: the header and how many bytes of `input` it took, or
    /// `None` when `input` ends first (its bytes are kept for the next read).
    #[inline]
    fn next_header(
        &mut self,
        input: &[u8],
        rules: &HeaderRules,
    ) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let ReadState::Header { mut buf, len } = self.read else {
            return Ok(None);
        };
        if len == 0 {
            // The common case: the whole header is in this read, decoded in place.
            if let Some(found) = frame::decode_short_data_header(input, rules) {
                return Ok(Some(found));
            }
            return Ok(match decode_header(input, rules)? {
                Decoded::Complete(header, used) => Some((header, used)),
                Decoded::Partial(_) => {
                    // Partial means the input is shorter than the header, so it fits.
                    buf[..input.len()].copy_from_slice(input);
                    self.read = ReadState::Header { buf, len: input.len() };
                    None
                }
            });
        }
        let take = (MAX_HEADER_LEN - len).min(input.len());
        buf[len..len + take].copy_from_slice(&input[..take]);
        Ok(match decode_header(&buf[..len + take], rules)? {
            Decoded::Complete(header, used) => {
                self.read = NEW_HEADER;
                Some((header, used - len))
            }
            Decoded::Partial(_) => {
                self.read = ReadState::Header { buf, len: len + take };
                None
            }
        })
    }

    /// Checks a new frame against the message in progress and the limits.
    fn start_frame(&mut self, header: FrameHeader, config: &Config) -> Result<(), ProtocolError> {
        let FrameHeader { fin, rsv, opcode, mask, payload_len } = header;
        // RFC 7692 §6.1: RSV1 (allowed by the header check only when deflate
        // was negotiated) marks the first frame of a compressed message.
        let compressed = rsv & frame::RSV1 != 0;
        if payload_len > config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge { len: payload_len, max: config.max_frame_size });
        }
        let max_message = config.max_message_size;
        match opcode {
            OpCode::Text | OpCode::Binary => {
                // RFC 6455 §5.4: fragments of one message are not interleaved with another.
                if !matches!(self.message, Message::None) {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                // A compressed message is measured as it inflates.
                if !compressed && payload_len > max_message as u64 {
                    return Err(ProtocolError::MessageTooLarge { max: max_message });
                }
                self.message = if opcode == OpCode::Text {
                    Message::Text { text: String::new(), utf8: Utf8Validator::new(), fragments: 1, compressed }
                } else {
                    Message::Binary { data: Vec::new(), fragments: 1, compressed }
                };
            }
            OpCode::Continuation => {
                // RFC 7692 §6.1: RSV1 is set only on the first frame of a message.
                if compressed {
                    return Err(ProtocolError::ReservedBits(rsv));
                }
                let max_fragments = config.max_fragments;
                let held = self.message.len() as u64;
                let message_compressed = self.message.is_compressed();
                let fragments = match &mut self.message {
                    // RFC 6455 §5.4: a continuation needs a message in progress.
                    Message::None => return Err(ProtocolError::UnexpectedContinuation),
                    Message::Text { fragments, .. } | Message::Binary { fragments, .. } => fragments,
                };
                *fragments += 1;
                if *fragments > max_fragments {
                    return Err(ProtocolError::TooManyFragments { max: max_fragments });
                }
                if !message_compressed && held + payload_len > max_message as u64 {
                    return Err(ProtocolError::MessageTooLarge { max: max_message });
                }
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.control = ControlPayload::EMPTY,
        }
        self.read = ReadState::Payload { opcode, fin, remaining: payload_len, mask, offset: 0 };
        Ok(())
    }

    /// Consumes payload bytes of the current frame; returns how many.
    fn read_payload(
        &mut self,
        input: &mut [u8],
        config: &Config,
        inflater: Option<&mut Inflater>,
    ) -> Result<usize, ProtocolError> {
        let ReadState::Payload { opcode, remaining, mask, offset, .. } = &mut self.read else {
            return Ok(0);
        };
        // `remaining` is at most the frame limit, a usize; the min keeps it in range either way.
        let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
        let chunk = &mut input[..n];
        if let Some(mask) = *mask {
            apply_mask(chunk, mask, *offset);
        }
        *remaining -= n as u64;
        *offset += n;
        if opcode.is_control() {
            // The header check keeps control payloads within 125 bytes, so this always fits.
            let _ = self.control.extend(chunk);
            Ok(n)
        } else {
            self.push_data(chunk, config, inflater)?;
            Ok(n)
        }
    }

    /// Adds unmasked payload to the message in progress.
    fn push_data(
        &mut self,
        chunk: &[u8],
        config: &Config,
        inflater: Option<&mut Inflater>,
    ) -> Result<(), ProtocolError> {
        let limit = config.max_message_size;
        #[cfg(feature = "deflate")]
        if self.message.is_compressed() {
            let (Some(inflater), message) = (inflater, &mut self.message) else {
                return Ok(());
            };
            let mut produced = message.len();
            return inflater.inflate(chunk, &mut produced, limit, &mut |piece| message.append(piece, limit));
        }
        #[cfg(not(feature = "deflate"))]
        let _ = inflater;
        self.message.append(chunk, limit)
    }

    /// Ends a compressed message: inflates what the sender's flush left out.
    fn finish_compressed(&mut self, config: &Config, inflater: Option<&mut Inflater>) -> Result<(), ProtocolError> {
        #[cfg(feature = "deflate")]
        if self.message.is_compressed() {
            let limit = config.max_message_size;
            let (Some(inflater), message) = (inflater, &mut self.message) else {
                return Ok(());
            };
            let mut produced = message.len();
            return inflater.finish(&mut produced, limit, &mut |piece| message.append(piece, limit));
        }
        #[cfg(not(feature = "deflate"))]
        let _ = (config, inflater);
        Ok(())
    }

    /// Ends a frame whose payload is complete: a control frame is an event, a
    /// final data frame ends its message.
    fn finish_frame(
        &mut self,
        config: &Config,
        inflater: Option<&mut Inflater>,
    ) -> Result<Option<Event>, ProtocolError> {
        let ReadState::Payload { opcode, fin, .. } = self.read else {
            return Ok(None);
        };
        self.read = NEW_HEADER;
        let event = match opcode {
            OpCode::Ping => Event::Ping(self.control),
            OpCode::Pong => Event::Pong(self.control),
            OpCode::Close => Event::Close(close::parse_close_payload(&self.control)?),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !fin {
                    return Ok(None);
                }
                self.finish_compressed(config, inflater)?;
                match std::mem::replace(&mut self.message, Message::None) {
                    Message::Text { text, utf8, .. } => {
                        utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                        Event::Text(text)
                    }
                    Message::Binary { data, .. } => Event::Binary(data),
                    Message::None => return Ok(None),
                }
            }
        };
        Ok(Some(event))
    }
}

/// Unmasks a whole message's payload in place and checks it, for text.
fn lend(payload: &mut [u8], text: bool, mask: Option<[u8; 4]>) -> Result<(), ProtocolError> {
    if let Some(mask) = mask {
        apply_mask(payload, mask, 0);
    }
    // RFC 6455 §8.1: a text message is UTF-8, checked before it is handed on.
    if text && std::str::from_utf8(payload).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(())
}

/// Grows a buffer for `additional` more bytes without letting its capacity
/// pass `limit` (the message limit): doubling as usual, but capped, so that a
/// message at the limit never holds up to twice the limit.
fn reserve_within(capacity: usize, len: usize, additional: usize, limit: usize, reserve_exact: impl FnOnce(usize)) {
    let needed = len + additional;
    if needed > capacity {
        let target = needed.max(capacity.saturating_mul(2)).min(limit.max(needed));
        reserve_exact(target - len);
    }
}
