//! The per-connection state machine, for both roles.
//!
//! A [`Connection`] is what remains of a WebSocket after the handshake: it is
//! fed the bytes that arrive ([`Connection::handle_read`]) and the passing of
//! time ([`Connection::handle_timeout`]), and polled for what happened
//! ([`Connection::poll_event`]), for bytes to send
//! ([`Connection::poll_transmit`]) and for when it next needs the clock
//! ([`Connection::poll_timeout`]). It answers pings and close frames by itself,
//! enforces the limits, and turns any violation into a Close frame with the
//! code it earns followed by a terminal state.
//!
//! ```
//! use std::time::Instant;
//! use ferrows::proto::{Config, Connection, Event};
//!
//! /// Answers every text message with its length, given bytes just read.
//! fn on_read(conn: &mut Connection, read: &mut [u8], now: Instant, out: &mut Vec<u8>) {
//!     if let Err(violation) = conn.handle_read(read, now) {
//!         eprintln!("closing: {violation}"); // the Close frame is already queued
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         if let Event::Text(text) = event {
//!             let _ = conn.send_text(&text.len().to_string());
//!         }
//!     }
//!     conn.poll_transmit(out); // write `out` to the socket
//!     // then arm a timer for `conn.poll_timeout()`, and close the socket once
//!     // `conn.is_closed()` and `out` is written.
//! }
//! # let _ = on_read;
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::close::{self, CloseCode};
use super::config::Config;
use super::error::{ProtocolError, UsageError};
use super::event::{ControlPayload, Event};
use super::frame::{
    self, decode_header, Decoded, FrameHeader, HeaderRules, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;
use super::Role;

/// Where the closing handshake stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a Close and wait for the peer's, until the deadline.
    LocalClosed { deadline: Option<Instant> },
    /// The peer's Close arrived first. Events decoded before it can still be
    /// answered; our echo (with this code) is queued once its event is polled.
    PeerClosed { code: Option<CloseCode> },
    /// The closing handshake is complete (or the close deadline passed):
    /// once the output is written the transport can be closed.
    Closed,
    /// The peer broke the protocol, or fell silent past the keepalive timeout.
    Failed(Failure),
}

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    Protocol(ProtocolError),
    KeepaliveTimeout,
}

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

/// permessage-deflate state of a connection that negotiated it.
#[cfg(feature = "deflate")]
#[derive(Debug)]
struct Deflate {
    deflater: super::deflate::Deflater,
    inflater: super::deflate::Inflater,
    min_size: usize,
}

type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// The WebSocket protocol state of one connection, after the handshake.
///
/// See the [module documentation](self) for the driving loop.
pub struct Connection {
    /// Shared: many connections usually run with one configuration.
    config: Arc<Config>,
    rules: HeaderRules,
    state: State,
    read: ReadState,
    message: Message,
    /// The payload of the control frame being read (empty, unallocated, between control frames).
    control: Vec<u8>,
    events: VecDeque<Event>,
    out: Vec<u8>,
    /// The latest unanswered Ping (RFC 6455 §5.5.3: only the most recent needs a Pong).
    pending_pong: Option<Vec<u8>>,
    /// Pongs queued since the output was last taken.
    pongs_queued: u8,
    /// A violation found by the decoder, acted on once the events decoded
    /// before it have been polled (so that replies to them go out first).
    failure_pending: Option<ProtocolError>,
    /// Masking keys for frames a client sends; `None` for a server.
    masks: Option<MaskSource>,
    last_received: Instant,
    /// When the last whole data message arrived (or the connection opened).
    last_message: Instant,
    ping_sent: Option<Instant>,
    /// Boxed: most of it is only there when the extension was negotiated.
    #[cfg(feature = "deflate")]
    deflate: Option<Box<Deflate>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.rules.role)
            .field("state", &self.state)
            .field("read", &self.read)
            .field("message_len", &self.message.len())
            .field("events", &self.events.len())
            .field("out", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The server end of a connection whose handshake completed at `now`.
    #[must_use]
    ///
    /// `config` may be an `Arc<Config>` shared by many connections.
    pub fn server(config: impl Into<Arc<Config>>, now: Instant) -> Self {
        Self::new(Role::Server, config.into(), None, now)
    }

    /// The client end of a connection whose handshake completed at `now`.
    ///
    /// `masks` supplies the masking key of every frame the client sends
    /// (RFC 6455 §5.3: unpredictable, from a strong source of entropy).
    #[must_use]
    pub fn client(
        config: impl Into<Arc<Config>>,
        now: Instant,
        masks: impl FnMut() -> [u8; 4] + Send + 'static,
    ) -> Self {
        Self::new(Role::Client, config.into(), Some(Box::new(masks)), now)
    }

    fn new(role: Role, config: Arc<Config>, masks: Option<MaskSource>, now: Instant) -> Self {
        Self {
            config,
            rules: HeaderRules { role, allowed_rsv: 0 },
            state: State::Open,
            read: NEW_HEADER,
            message: Message::None,
            control: Vec::new(),
            events: VecDeque::new(),
            out: Vec::new(),
            pending_pong: None,
            pongs_queued: 0,
            failure_pending: None,
            masks,
            last_received: now,
            last_message: now,
            ping_sent: None,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// Turns on permessage-deflate with the parameters the handshake agreed
    /// (RFC 7692): RSV1 becomes legal on the first frame of a data message,
    /// such messages are inflated (never past `max_message_size`), and
    /// messages of at least `config.min_message_size` bytes are sent
    /// compressed.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(
        mut self,
        params: &super::deflate::DeflateParams,
        config: &super::deflate::DeflateConfig,
    ) -> Self {
        let direction = params.for_role(self.rules.role);
        self.rules.allowed_rsv = frame::RSV1;
        self.deflate = Some(Box::new(Deflate {
            deflater: super::deflate::Deflater::new(
                config.level,
                direction.compress_window_bits,
                direction.compress_no_context_takeover,
            ),
            inflater: super::deflate::Inflater::new(
                direction.inflate_window_bits,
                direction.inflate_no_context_takeover,
            ),
            min_size: config.min_message_size,
        }));
        self
    }

    /// Which end this is.
    #[must_use]
    pub fn role(&self) -> Role {
        self.rules.role
    }

    /// The configuration this connection runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes bytes received from the peer at `now`.
    ///
    /// `data` is unmasked in place (the caller's read buffer is scratch
    /// space), so a message is copied only once, into the event that carries
    /// it. Bytes after the peer's Close, or after a failure, are ignored.
    ///
    /// # Errors
    ///
    /// The first protocol violation found. Reading stops there. The events
    /// decoded before it can still be polled and answered; once
    /// [`poll_event`](Self::poll_event) has returned `None`, the Close frame
    /// with the code the violation earns is queued and the connection is
    /// [closed](Self::is_closed).
    pub fn handle_read(&mut self, data: &mut [u8], now: Instant) -> Result<(), ProtocolError> {
        if !self.wants_read() {
            return Ok(());
        }
        if !data.is_empty() {
            // Any byte from the peer shows it is alive.
            self.last_received = now;
            self.ping_sent = None;
        }
        let events_before = self.events.len();
        let decoded = self.decode(data);
        if self.config.idle_timeout.is_some()
            && self.events.iter().skip(events_before).any(|e| matches!(e, Event::Text(_) | Event::Binary(_)))
        {
            self.last_message = now;
        }
        match decoded {
            Ok(()) => Ok(()),
            Err(error) => {
                log::debug!("protocol violation: {error}");
                self.drop_message();
                self.read = NEW_HEADER;
                self.failure_pending = Some(error.clone());
                if self.events.is_empty() {
                    self.apply_failure();
                }
                Err(error)
            }
        }
    }

    fn decode(&mut self, data: &mut [u8]) -> Result<(), ProtocolError> {
        let mut pos = 0;
        while pos < data.len() && self.wants_read() {
            pos += match self.read {
                ReadState::Header { .. } => self.read_header(&data[pos..])?,
                ReadState::Payload { .. } => self.read_payload(&mut data[pos..])?,
            };
        }
        Ok(())
    }

    /// Consumes header bytes; returns how many.
    fn read_header(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let ReadState::Header { mut buf, len } = self.read else {
            return Ok(0);
        };
        if len == 0 {
            // The common case: the whole header is in this read, decode it in place.
            match decode_header(input, &self.rules)? {
                Decoded::Complete(header, used) => {
                    self.start_frame(header)?;
                    Ok(used)
                }
                Decoded::Partial(_) => {
                    // Partial means the input is shorter than the header, so it fits.
                    buf[..input.len()].copy_from_slice(input);
                    self.read = ReadState::Header { buf, len: input.len() };
                    Ok(input.len())
                }
            }
        } else {
            let take = (MAX_HEADER_LEN - len).min(input.len());
            buf[len..len + take].copy_from_slice(&input[..take]);
            match decode_header(&buf[..len + take], &self.rules)? {
                Decoded::Complete(header, used) => {
                    self.read = NEW_HEADER;
                    self.start_frame(header)?;
                    Ok(used - len)
                }
                Decoded::Partial(_) => {
                    self.read = ReadState::Header { buf, len: len + take };
                    Ok(take)
                }
            }
        }
    }

    /// Checks a new frame against the message in progress and the limits.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        let FrameHeader { fin, rsv, opcode, mask, payload_len } = header;
        // RFC 7692 §6.1: RSV1 (allowed by the header check only when deflate
        // was negotiated) marks the first frame of a compressed message.
        let compressed = rsv & frame::RSV1 != 0;
        if payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge { len: payload_len, max: self.config.max_frame_size });
        }
        let max_message = self.config.max_message_size;
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
                let max_fragments = self.config.max_fragments;
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
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.control.clear(),
        }
        self.read = ReadState::Payload { opcode, fin, remaining: payload_len, mask, offset: 0 };
        if payload_len == 0 {
            self.finish_frame()?;
        }
        Ok(())
    }

    /// Consumes payload bytes of the current frame; returns how many.
    fn read_payload(&mut self, input: &mut [u8]) -> Result<usize, ProtocolError> {
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
        let done = *remaining == 0;
        if opcode.is_control() {
            // The header check keeps control payloads within 125 bytes.
            self.control.extend_from_slice(chunk);
        } else {
            self.push_data(chunk)?;
        }
        if done {
            self.finish_frame()?;
        }
        Ok(n)
    }

    /// Adds unmasked payload to the message in progress.
    fn push_data(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        #[cfg(feature = "deflate")]
        if self.message.is_compressed() {
            let (Some(deflate), message) = (self.deflate.as_mut(), &mut self.message) else {
                return Ok(());
            };
            let mut produced = message.len();
            return deflate.inflater.inflate(chunk, &mut produced, limit, &mut |piece| message.append(piece, limit));
        }
        self.message.append(chunk, limit)
    }

    /// Ends a compressed message: inflates what the sender's flush left out.
    fn finish_compressed(&mut self) -> Result<(), ProtocolError> {
        #[cfg(feature = "deflate")]
        if self.message.is_compressed() {
            let limit = self.config.max_message_size;
            let (Some(deflate), message) = (self.deflate.as_mut(), &mut self.message) else {
                return Ok(());
            };
            let mut produced = message.len();
            return deflate.inflater.finish(&mut produced, limit, &mut |piece| message.append(piece, limit));
        }
        Ok(())
    }

    /// Forgets the message in progress (after a failure or the peer's Close).
    fn drop_message(&mut self) {
        self.message = Message::None;
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_mut() {
            deflate.inflater.end_message();
        }
    }

    /// Acts on a frame whose payload is complete.
    fn finish_frame(&mut self) -> Result<(), ProtocolError> {
        let ReadState::Payload { opcode, fin, .. } = self.read else {
            return Ok(());
        };
        self.read = NEW_HEADER;
        match opcode {
            OpCode::Ping => {
                let payload = std::mem::take(&mut self.control);
                self.events.push_back(Event::Ping(control_payload(&payload)));
                if self.state == State::Open {
                    // RFC 6455 §5.5.2: the Pong echoes the Ping's application data,
                    // and goes out as soon as practical: ahead of anything queued
                    // later. Under a flood of pings, §5.5.3 lets only the most
                    // recent one be answered, which bounds the output.
                    if self.pongs_queued < MAX_QUEUED_PONGS {
                        self.pongs_queued += 1;
                        self.queue_frame(OpCode::Pong, &payload);
                    } else {
                        self.pending_pong = Some(payload);
                    }
                }
            }
            OpCode::Pong => {
                self.events.push_back(Event::Pong(control_payload(&self.control)));
                self.control = Vec::new();
            }
            OpCode::Close => self.receive_close()?,
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if fin {
                    self.finish_compressed()?;
                    let event = match std::mem::replace(&mut self.message, Message::None) {
                        Message::Text { text, utf8, .. } => {
                            utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                            Event::Text(text)
                        }
                        Message::Binary { data, .. } => Event::Binary(data),
                        Message::None => return Ok(()),
                    };
                    self.events.push_back(event);
                }
            }
        }
        Ok(())
    }

    fn receive_close(&mut self) -> Result<(), ProtocolError> {
        let frame = close::parse_close_payload(&std::mem::take(&mut self.control))?;
        match self.state {
            // RFC 6455 §5.5.1: the echo may wait until messages that came
            // before the Close have been answered.
            State::Open => self.state = State::PeerClosed { code: frame.as_ref().map(|f| f.code) },
            State::LocalClosed { .. } => self.state = State::Closed,
            State::PeerClosed { .. } | State::Closed | State::Failed(_) => return Ok(()),
        }
        self.drop_message();
        self.events.push_back(Event::Close(frame));
        Ok(())
    }

    /// Answers the peer's Close (RFC 6455 §5.5.1), echoing its code; an empty
    /// Close is answered with an empty one (1005 is never sent).
    fn answer_close(&mut self) {
        let State::PeerClosed { code } = self.state else {
            return;
        };
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        // A code that passed the receive check is sendable.
        let len = code.map_or(0, |code| close::write_close_payload(code, "", &mut payload).unwrap_or(0));
        self.queue_close_frame(&payload[..len]);
        self.state = State::Closed;
    }

    /// Fails the connection (RFC 6455 §7.1.7) for a violation found earlier:
    /// a Close with the code it earns, unless one was already sent, then a
    /// terminal state.
    fn apply_failure(&mut self) {
        let Some(error) = self.failure_pending.take() else {
            return;
        };
        if self.state == State::Open {
            let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
            let reason = truncate_to_char_boundary(&error.to_string(), close::MAX_REASON_LEN).to_owned();
            // Every code a ProtocolError earns is sendable.
            let len = close::write_close_payload(error.close_code(), &reason, &mut payload).unwrap_or(0);
            self.queue_close_frame(&payload[..len]);
        }
        self.state = State::Failed(Failure::Protocol(error));
    }

    /// Returns the next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        match event {
            None => self.apply_failure(),
            Some(Event::Close(_)) => self.answer_close(),
            Some(_) => {}
        }
        event
    }

    /// Moves the bytes waiting to be sent to the end of `out`; returns whether there were any.
    ///
    /// When `out` is empty the internal buffer is swapped in rather than copied.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        // A pending failure waits for the events before it to be polled (the
        // peer's Close is answered when its own event is polled).
        if self.events.is_empty() {
            self.apply_failure();
        }
        self.flush_pong();
        self.pongs_queued = 0;
        if self.out.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
        true
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has work to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Open => {
                let keepalive = self.config.keepalive.map(|keepalive| match self.ping_sent {
                    Some(sent) => sent + keepalive.timeout,
                    None => self.last_received + keepalive.idle,
                });
                let idle = self.config.idle_timeout.map(|idle| self.last_message + idle);
                match (keepalive, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::LocalClosed { deadline } => *deadline,
            State::PeerClosed { .. } | State::Closed | State::Failed(_) => None,
        }
    }

    /// Lets time pass: sends a keepalive Ping, or gives up on a silent peer
    /// or on a Close that was never answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.poll_timeout() else {
            return;
        };
        if now < due {
            return;
        }
        match self.state {
            State::Open if self.config.idle_timeout.is_some_and(|idle| now >= self.last_message + idle) => {
                log::debug!("no message from the peer within the idle timeout");
                // Open, so the close is accepted; the reason is short.
                let _ = self.send_close(CloseCode::GOING_AWAY, "idle timeout", now);
            }
            State::Open
                if self.config.keepalive.is_some_and(|k| self.ping_sent.is_some_and(|s| now >= s + k.timeout)) =>
            {
                log::debug!("peer silent past the keepalive timeout");
                self.state = State::Failed(Failure::KeepaliveTimeout);
            }
            State::Open if self.ping_sent.is_none() => {
                self.queue_frame(OpCode::Ping, &[]);
                self.ping_sent = Some(now);
            }
            State::Open => {}
            // RFC 6455 §7.1.1: the transport may be closed when the peer does not answer in time.
            State::LocalClosed { .. } => self.state = State::Closed,
            State::PeerClosed { .. } | State::Closed | State::Failed(_) => {}
        }
    }

    /// Whether the connection still reads: open, or waiting for the peer's Close.
    #[must_use]
    pub fn wants_read(&self) -> bool {
        self.failure_pending.is_none() && matches!(self.state, State::Open | State::LocalClosed { .. })
    }

    /// Whether bytes are waiting for [`poll_transmit`](Self::poll_transmit).
    #[must_use]
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.pending_pong.is_some()
    }

    /// Whether the protocol is over: once the output is written, close the transport.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// Whether messages can still be sent (no Close sent, no failure).
    #[must_use]
    pub fn can_send(&self) -> bool {
        matches!(self.state, State::Open | State::PeerClosed { .. })
    }

    /// The violation that failed the connection, if one did.
    #[must_use]
    pub fn protocol_error(&self) -> Option<&ProtocolError> {
        match &self.state {
            State::Failed(Failure::Protocol(error)) => Some(error),
            _ => self.failure_pending.as_ref(),
        }
    }

    /// Whether the connection was given up because the peer stayed silent past the keepalive timeout.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.state == State::Failed(Failure::KeepaliveTimeout)
    }

    /// Bytes held for the message being reassembled and the output not yet polled.
    ///
    /// This is what an idle connection costs beyond its fixed size: zero once
    /// every message has been polled and every output taken.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        let message = match &self.message {
            Message::None => 0,
            Message::Text { text, .. } => text.capacity(),
            Message::Binary { data, .. } => data.capacity(),
        };
        #[cfg(feature = "deflate")]
        let codec = self.deflate.as_ref().map_or(0, |d| d.deflater.held_bytes() + d.inflater.held_bytes());
        #[cfg(not(feature = "deflate"))]
        let codec = 0;
        message + self.out.capacity() + codec
    }

    /// Queues a text message.
    ///
    /// # Errors
    ///
    /// [`UsageError::Closed`] once a Close was sent or the connection failed.
    pub fn send_text(&mut self, text: &str) -> Result<(), UsageError> {
        self.send(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// [`UsageError::Closed`] once a Close was sent or the connection failed.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), UsageError> {
        self.send(OpCode::Binary, data)
    }

    /// Queues a Ping.
    ///
    /// # Errors
    ///
    /// A payload over 125 bytes, or [`UsageError::Closed`].
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited Pong (RFC 6455 §5.5.3: a unidirectional heartbeat).
    ///
    /// # Errors
    ///
    /// A payload over 125 bytes, or [`UsageError::Closed`].
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), UsageError> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Starts the closing handshake at `now` with `code` and `reason`.
    ///
    /// The connection keeps reading (messages the peer sent before seeing our
    /// Close are still delivered) until the peer's Close arrives or the close
    /// timeout passes.
    ///
    /// # Errors
    ///
    /// A code that may not be sent, a reason over 123 bytes, or
    /// [`UsageError::Closed`] if a Close was already sent.
    pub fn send_close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), UsageError> {
        if self.state != State::Open {
            return Err(UsageError::Closed);
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = close::write_close_payload(code, reason, &mut payload)?;
        self.queue_close_frame(&payload[..len]);
        let deadline = self.config.close_timeout.map(|t| now + t);
        self.state = State::LocalClosed { deadline };
        Ok(())
    }

    fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), UsageError> {
        if !self.can_send() {
            return Err(UsageError::Closed);
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_mut().filter(|d| payload.len() >= d.min_size) {
            // RFC 7692 §7.2.1: compress the whole message, send it with RSV1 on its first frame.
            let mut compressed = Vec::new();
            deflate.deflater.compress(payload, &mut compressed);
            let mask = self.masks.as_mut().map(|next| next());
            frame::encode_frame(true, frame::RSV1, opcode, &compressed, mask, &mut self.out);
            return Ok(());
        }
        self.queue_frame(opcode, payload);
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), UsageError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLong(payload.len()));
        }
        self.send(opcode, payload)
    }

    /// Queues our Close: any Pong owed goes first, since nothing may follow a Close.
    fn queue_close_frame(&mut self, payload: &[u8]) {
        self.flush_pong();
        self.queue_frame(OpCode::Close, payload);
    }

    fn flush_pong(&mut self) {
        if let Some(pong) = self.pending_pong.take() {
            self.queue_frame(OpCode::Pong, &pong);
        }
    }

    fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.masks.as_mut().map(|next| next());
        frame::encode_frame(true, 0, opcode, payload, mask, &mut self.out);
    }
}

/// Pongs answered one for one between two takes of the output; past this, only the latest Ping is answered.
const MAX_QUEUED_PONGS: u8 = 16;

/// A control frame's payload as an event carries it; the frame header check
/// keeps it within 125 bytes.
fn control_payload(payload: &[u8]) -> ControlPayload {
    ControlPayload::new(payload).unwrap_or(ControlPayload::EMPTY)
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

fn truncate_to_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
