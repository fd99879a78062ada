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

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::close::{self, CloseCode};
use super::config::Config;
use super::error::{ProtocolError, UsageError};
use super::event::{Event, Received};
use super::frame::{self, HeaderRules, OpCode, MAX_CONTROL_PAYLOAD};
use super::Role;

mod burst;
mod reader;

use burst::Burst;
pub use burst::BurstPool;
use reader::Item;

/// Where the closing handshake stands.
#[derive(Debug)]
enum State {
    /// Messages flow both ways.
    Open {
        /// When the peer last sent anything or, once `pinged`, when our keepalive Ping went out.
        since: Instant,
        pinged: bool,
        /// When the last whole data message arrived (or the connection opened).
        last_message: Instant,
    },
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
#[derive(Debug)]
enum Failure {
    /// Boxed: a failed connection is rare, and the box keeps every connection's state small.
    Protocol(Box<ProtocolError>),
    KeepaliveTimeout,
    /// Our Close got no answer before the close timeout.
    CloseTimeout,
}

/// permessage-deflate state of a connection that negotiated it.
#[cfg(feature = "deflate")]
#[derive(Debug)]
struct Deflate {
    deflater: super::deflate::Deflater,
    inflater: super::deflate::Inflater,
    min_size: usize,
}

#[cfg(feature = "deflate")]
impl Deflate {
    /// Appends a message's frame, compressed: RFC 7692 §7.2.1, the whole
    /// message compressed and sent with RSV1 on its first frame.
    #[inline(never)]
    fn encode(&mut self, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
        let mut compressed = Vec::new();
        self.deflater.compress(payload, &mut compressed);
        frame::encode_frame(true, frame::RSV1, opcode, &compressed, mask, out);
    }
}

type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// The WebSocket protocol state of one connection, after the handshake.
///
/// See the [module documentation](self) for the driving loop.
pub struct Connection {
    /// Shared: many connections usually run with one configuration.
    config: Arc<Config>,
    state: State,
    /// `None` while idle.
    burst: Option<Box<Burst>>,
    /// Masking keys for frames a client sends; `None` for a server. Boxed
    /// again so that a server pays one word for it.
    masks: Option<Box<MaskSource>>,
    /// Boxed: most of it is only there when the extension was negotiated.
    #[cfg(feature = "deflate")]
    deflate: Option<Box<Deflate>>,
    rules: HeaderRules,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.rules.role)
            .field("state", &self.state)
            .field("burst", &self.burst)
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
        Self::new(Role::Client, config.into(), Some(Box::new(Box::new(masks))), now)
    }

    fn new(role: Role, config: Arc<Config>, masks: Option<Box<MaskSource>>, now: Instant) -> Self {
        Self {
            config,
            state: State::Open { since: now, pinged: false, last_message: now },
            burst: None,
            masks,
            #[cfg(feature = "deflate")]
            deflate: None,
            rules: HeaderRules { role, allowed_rsv: 0 },
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
        self.read(data, now, false)
    }

    /// Like [`handle_read`](Self::handle_read), but a message that came
    /// whole within `data` (one frame, uncompressed: the common case) is left
    /// there, unmasked and checked, and lent by
    /// [`poll_event_in`](Self::poll_event_in) rather than copied.
    ///
    /// Every event must be polled with `poll_event_in`, given these same
    /// bytes, before `data` is reused for another read.
    ///
    /// # Errors
    ///
    /// As for [`handle_read`](Self::handle_read).
    pub fn handle_read_in_place(&mut self, data: &mut [u8], now: Instant) -> Result<(), ProtocolError> {
        self.read(data, now, true)
    }

    fn read(&mut self, data: &mut [u8], now: Instant, in_place: bool) -> Result<(), ProtocolError> {
        if !self.wants_read() || data.is_empty() {
            return Ok(());
        }
        if let State::Open { since, pinged, .. } = &mut self.state {
            // Any byte from the peer shows it is alive.
            *since = now;
            *pinged = false;
        }
        let result = self.decode(data, now, in_place);
        if let Err(error) = &result {
            log::debug!("protocol violation: {error}");
            self.reset_reader();
            let burst = self.burst.get_or_insert_with(Box::default);
            burst.failure_pending = Some(error.clone());
            if burst.events.is_empty() {
                self.apply_failure();
            }
        }
        result
    }

    fn decode(&mut self, data: &mut [u8], now: Instant, in_place: bool) -> Result<(), ProtocolError> {
        let mut pos = 0;
        while pos < data.len() && self.wants_read() {
            #[cfg(feature = "deflate")]
            let inflater = self.deflate.as_deref_mut().map(|d| &mut d.inflater);
            #[cfg(not(feature = "deflate"))]
            let inflater = None;
            let burst = self.burst.get_or_insert_with(Box::default);
            let (used, item) = burst.reader.read(&mut data[pos..], &self.config, &self.rules, inflater)?;
            let item = match item {
                Some(Item::Lent { text, start, end }) if in_place => {
                    Some(Item::Lent { text, start: pos + start, end: pos + end })
                }
                // Copied out for a caller whose buffer is not lent.
                Some(Item::Lent { text, start, end }) => {
                    let payload = &data[pos + start..pos + end];
                    Some(Item::Event(Box::new(if text {
                        Event::Text(String::from_utf8_lossy(payload).into_owned())
                    } else {
                        Event::Binary(payload.to_vec())
                    })))
                }
                other => other,
            };
            pos += used;
            if let Some(item) = item {
                self.receive(item, now);
            }
        }
        Ok(())
    }

    /// Forgets the frame and the message in progress (after a failure or the peer's Close).
    fn reset_reader(&mut self) {
        #[cfg(feature = "deflate")]
        let inflater = self.deflate.as_deref_mut().map(|d| &mut d.inflater);
        #[cfg(not(feature = "deflate"))]
        let inflater = None;
        if let Some(burst) = self.burst.as_mut() {
            burst.reader.reset(inflater);
        }
    }

    /// Acts on what a frame completed, and queues it for [`poll_event`](Self::poll_event).
    fn receive(&mut self, item: Item, now: Instant) {
        let event = match item {
            Item::Event(event) => *event,
            lent @ Item::Lent { .. } => {
                if let State::Open { last_message, .. } = &mut self.state {
                    *last_message = now;
                }
                self.burst.get_or_insert_with(Box::default).events.push_back(lent);
                return;
            }
        };
        match &event {
            Event::Text(_) | Event::Binary(_) => {
                if let State::Open { last_message, .. } = &mut self.state {
                    *last_message = now;
                }
            }
            Event::Ping(payload) => {
                if matches!(self.state, State::Open { .. }) {
                    // RFC 6455 §5.5.2: the Pong echoes the Ping's application data,
                    // and goes out as soon as practical: ahead of anything queued
                    // later. Under a flood of pings, §5.5.3 lets only the most
                    // recent one be answered, which bounds the output.
                    let burst = self.burst.get_or_insert_with(Box::default);
                    if burst.pongs_queued < MAX_QUEUED_PONGS {
                        burst.pongs_queued += 1;
                        self.queue_frame(OpCode::Pong, payload);
                    } else {
                        burst.pending_pong = Some(*payload);
                    }
                }
            }
            Event::Pong(_) => {}
            Event::Close(frame) => {
                match self.state {
                    // RFC 6455 §5.5.1: the echo may wait until messages that came
                    // before the Close have been answered.
                    State::Open { .. } => self.state = State::PeerClosed { code: frame.as_ref().map(|f| f.code) },
                    State::LocalClosed { .. } => self.state = State::Closed,
                    State::PeerClosed { .. } | State::Closed | State::Failed(_) => return,
                }
                self.reset_reader();
            }
        }
        self.burst.get_or_insert_with(Box::default).events.push_back(Item::Event(Box::new(event)));
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
        let Some(error) = self.burst.as_mut().and_then(|b| b.failure_pending.take()) else {
            return;
        };
        if matches!(self.state, State::Open { .. }) {
            let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
            let reason = truncate_to_char_boundary(&error.to_string(), close::MAX_REASON_LEN).to_owned();
            // Every code a ProtocolError earns is sendable.
            let len = close::write_close_payload(error.close_code(), &reason, &mut payload).unwrap_or(0);
            self.queue_close_frame(&payload[..len]);
        }
        self.state = State::Failed(Failure::Protocol(Box::new(error)));
    }

    /// Returns the next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            match self.poll_item()? {
                Item::Event(event) => return Some(*event),
                // Only `handle_read_in_place` lends, and its events are polled with their bytes.
                Item::Lent { .. } => log::error!("a message read in place was polled without its bytes; dropped"),
            }
        }
    }

    /// Returns the next event, oldest first, lending a message that
    /// [`handle_read_in_place`](Self::handle_read_in_place) left in `data`.
    #[must_use]
    #[inline]
    pub fn poll_event_in<'a>(&mut self, data: &'a [u8]) -> Option<Received<'a>> {
        Some(match self.poll_item()? {
            Item::Event(event) => Received::Event(event),
            Item::Lent { text, start, end } => {
                let payload = data.get(start..end).unwrap_or_default();
                if text {
                    // Checked as it was read: this finds the same bytes valid.
                    Received::Text(std::str::from_utf8(payload).unwrap_or_default())
                } else {
                    Received::Binary(payload)
                }
            }
        })
    }

    #[inline]
    fn poll_item(&mut self) -> Option<Item> {
        let item = self.burst.as_mut().and_then(|b| b.events.pop_front());
        match item {
            None => {
                self.apply_failure();
                self.release_if_idle();
            }
            Some(Item::Event(ref event)) if matches!(**event, Event::Close(_)) => self.answer_close(),
            Some(_) => {}
        }
        item
    }

    /// Moves the bytes waiting to be sent to the end of `out`; returns whether there were any.
    ///
    /// When `out` is empty the internal buffer is swapped in rather than copied.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        // A pending failure waits for the events before it to be polled (the
        // peer's Close is answered when its own event is polled).
        if self.burst.as_ref().is_some_and(|b| b.events.is_empty()) {
            self.apply_failure();
        }
        self.flush_pong();
        let Some(burst) = self.burst.as_mut() else {
            return false;
        };
        burst.pongs_queued = 0;
        let any = !burst.out.is_empty();
        if any && out.is_empty() {
            std::mem::swap(out, &mut burst.out);
        } else if any {
            out.append(&mut burst.out);
        }
        self.release_if_idle();
        any
    }

    /// Frees the burst state once it holds nothing, unless it was lent by a pool.
    fn release_if_idle(&mut self) {
        if self.burst.as_ref().is_some_and(|b| b.is_idle() && !b.pooled) {
            self.burst = None;
        }
    }

    /// Lends the connection working memory from `pool` for the traffic about
    /// to come (a read, a send), so that it allocates none of its own. It
    /// keeps it until [`give_back`](Self::give_back).
    #[inline]
    pub fn lend(&mut self, pool: &mut BurstPool) {
        if self.burst.is_none() {
            self.burst = Some(pool.take());
        }
    }

    /// Gives the working memory back to `pool` once every event was polled
    /// and the output taken: an idle connection is a few words again. Only
    /// what a pool lent goes to the pool.
    pub fn give_back(&mut self, pool: &mut BurstPool) {
        if self.burst.as_ref().is_some_and(|b| b.is_idle()) {
            // What the connection allocated itself is freed, not pooled.
            if let Some(burst) = self.burst.take().filter(|b| b.pooled) {
                pool.put(burst);
            }
        }
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has work to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Open { since, pinged, last_message } => {
                let keepalive = self
                    .config
                    .keepalive
                    .map(|keepalive| since + if pinged { keepalive.timeout } else { keepalive.idle });
                let idle = self.config.idle_timeout.map(|idle| last_message + idle);
                match (keepalive, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::LocalClosed { deadline } => deadline,
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
        let (keepalive, idle_timeout) = (self.config.keepalive, self.config.idle_timeout);
        match self.state {
            State::Open { last_message, .. } if idle_timeout.is_some_and(|idle| now >= last_message + idle) => {
                log::debug!("no message from the peer within the idle timeout");
                // Open, so the close is accepted; the reason is short.
                let _ = self.send_close(CloseCode::GOING_AWAY, "idle timeout", now);
            }
            State::Open { since, pinged: true, .. } if keepalive.is_some_and(|k| now >= since + k.timeout) => {
                log::debug!("peer silent past the keepalive timeout");
                self.state = State::Failed(Failure::KeepaliveTimeout);
            }
            State::Open { pinged: false, last_message, .. } if keepalive.is_some() => {
                self.queue_frame(OpCode::Ping, &[]);
                self.state = State::Open { since: now, pinged: true, last_message };
            }
            State::Open { .. } => {}
            // RFC 6455 §7.1.1: the transport may be closed when the peer does not answer in time.
            State::LocalClosed { .. } => self.state = State::Failed(Failure::CloseTimeout),
            State::PeerClosed { .. } | State::Closed | State::Failed(_) => {}
        }
    }

    /// Whether the connection still reads: open, or waiting for the peer's Close.
    #[must_use]
    pub fn wants_read(&self) -> bool {
        matches!(self.state, State::Open { .. } | State::LocalClosed { .. })
            && self.burst.as_ref().is_none_or(|b| b.failure_pending.is_none())
    }

    /// Whether bytes are waiting for [`poll_transmit`](Self::poll_transmit).
    #[must_use]
    pub fn wants_write(&self) -> bool {
        self.burst.as_ref().is_some_and(|b| !b.out.is_empty() || b.pending_pong.is_some())
    }

    /// Whether the protocol is over: once the output is written, close the transport.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// Whether the closing handshake completed: both Close frames went, and
    /// the peer, having sent its Close, sends nothing more (RFC 6455 §5.5.1).
    #[must_use]
    pub fn closed_cleanly(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether messages can still be sent (no Close sent, no failure).
    #[must_use]
    pub fn can_send(&self) -> bool {
        matches!(self.state, State::Open { .. } | State::PeerClosed { .. })
    }

    /// The violation that failed the connection, if one did.
    #[must_use]
    pub fn protocol_error(&self) -> Option<&ProtocolError> {
        match &self.state {
            State::Failed(Failure::Protocol(error)) => Some(error),
            _ => self.burst.as_ref().and_then(|b| b.failure_pending.as_ref()),
        }
    }

    /// Whether the connection was given up because the peer stayed silent past the keepalive timeout.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        matches!(self.state, State::Failed(Failure::KeepaliveTimeout))
    }

    /// Bytes held for the message being reassembled and the output not yet polled.
    ///
    /// This is what an idle connection costs beyond its fixed size: zero once
    /// every message has been polled and every output taken.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        let burst = self.burst.as_ref().map_or(0, |b| b.reader.buffered_bytes() + b.out.capacity());
        #[cfg(feature = "deflate")]
        let codec = self.deflate.as_ref().map_or(0, |d| d.deflater.held_bytes() + d.inflater.held_bytes());
        #[cfg(not(feature = "deflate"))]
        let codec = 0;
        burst + codec
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
        if !matches!(self.state, State::Open { .. }) {
            return Err(UsageError::Closed);
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = close::write_close_payload(code, reason, &mut payload)?;
        self.queue_close_frame(&payload[..len]);
        let deadline = self.config.close_timeout.map(|t| now + t);
        self.state = State::LocalClosed { deadline };
        Ok(())
    }

    /// Queues a text (`text`) or binary message at the end of `out`, the
    /// caller's output buffer: as [`send_text`](Self::send_text) or
    /// [`send_binary`](Self::send_binary) followed by
    /// [`poll_transmit`](Self::poll_transmit) into `out`, without passing
    /// through the connection's own buffer when it holds nothing to go first.
    ///
    /// # Errors
    ///
    /// [`UsageError::Closed`] once a Close was sent or the connection failed.
    #[inline]
    pub fn send_into(&mut self, text: bool, payload: &[u8], out: &mut Vec<u8>) -> Result<(), UsageError> {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        if self.wants_write() {
            // What the connection holds (a Pong) goes first.
            self.send(opcode, payload)?;
            self.poll_transmit(out);
            return Ok(());
        }
        self.encode_message(opcode, payload, Some(out))
    }

    fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), UsageError> {
        self.encode_message(opcode, payload, None)
    }

    /// Appends a message's frame to `out`, or to the connection's own output
    /// when `None`: compressed when deflate applies, masked by a client.
    #[inline]
    fn encode_message(&mut self, opcode: OpCode, payload: &[u8], out: Option<&mut Vec<u8>>) -> Result<(), UsageError> {
        if !self.can_send() {
            return Err(UsageError::Closed);
        }
        let mask = self.masks.as_mut().map(|next| next());
        let out = match out {
            Some(out) => out,
            None => &mut self.burst.get_or_insert_with(Box::default).out,
        };
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_mut().filter(|d| payload.len() >= d.min_size) {
            deflate.encode(opcode, payload, mask, out);
            return Ok(());
        }
        frame::encode_frame(true, 0, opcode, payload, mask, out);
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
        if let Some(pong) = self.burst.as_mut().and_then(|b| b.pending_pong.take()) {
            self.queue_frame(OpCode::Pong, &pong);
        }
    }

    fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.masks.as_mut().map(|next| next());
        let out = &mut self.burst.get_or_insert_with(Box::default).out;
        frame::encode_frame(true, 0, opcode, payload, mask, out);
    }
}

/// Pongs answered one for one between two takes of the output; past this, only the latest Ping is answered.
const MAX_QUEUED_PONGS: u8 = 16;

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

#[cfg(test)]
mod tests;
