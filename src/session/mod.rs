//! The session machine: one connection's whole life between bytes in and
//! bytes out, beyond the WebSocket protocol itself. Sans-IO, like
//! [`proto`](crate::proto): no sockets, no clocks, no threads.
//!
//! A [`Session`] reads the HTTP request head and, for a plain request, its
//! body (RFC 9112 framing); hands the application the decision on an upgrade
//! ([`Input::Upgrade`], answered with [`Session::accept`] or
//! [`Session::refuse`]) or the request to answer ([`Input::Http`], answered
//! with [`Session::answer`]); writes the 101 with the negotiated subprotocol
//! and permessage-deflate; then drives the [`proto::Connection`](crate::proto::Connection).
//! It owns the output queue and decides backpressure in one place: when
//! reading pauses, when a send is refused and what a publish does to a slow
//! consumer. It keeps the deadlines of the handshake, the HTTP body, the
//! close, the linger after the last byte, and the protocol's own timers.
//!
//! The driver (the runtime's event loop, or a test with a virtual clock) feeds
//! it bytes with [`handle_read`](Session::handle_read), writes what
//! [`output`](Session::output) holds, tells it of time passing with
//! [`handle_timeout`](Session::handle_timeout) at [`poll_timeout`](Session::poll_timeout),
//! and when [`is_finished`](Session::is_finished) ends it: at once after a
//! clean closing handshake, otherwise after a linger
//! ([`linger`](Session::linger)) that reads and drops what the peer still sends.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ferrows::session::{Input, Session, Settings};
//!
//! let settings = Settings::default();
//! let now = Instant::now();
//! let mut session: Session<()> = Session::new("192.0.2.1:5000".parse().unwrap(), &settings, now);
//! let mut request = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! let Some(Input::Upgrade(upgrade)) = session.handle_read(&mut request, &settings, now) else { panic!() };
//! assert_eq!(upgrade.request.path(), "/chat");
//! session.accept(&upgrade, None, (), &settings, now).unwrap();
//! let mut written = Vec::new();
//! session.output().write_to(&mut written).unwrap();
//! assert!(written.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! // Nothing arrives: the keepalive ping is the next deadline.
//! assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(30)));
//! ```

mod frame;
mod out_queue;
mod peer;
mod settings;

use std::net::SocketAddr;
use std::time::Instant;

pub use frame::{FramePool, SharedFrame};
pub use out_queue::{OutQueue, QueuePool, MAX_IOVECS};
pub use peer::PeerAddr;
pub use settings::{Settings, SlowConsumerPolicy};

use crate::proto::handshake::{
    write_error_response, Accept, HandshakeError, HandshakeUsageError, Request, ServerHandshake, Status, StatusCode,
    UpgradeRequest,
};
use crate::proto::{BurstPool, CloseCode, Connection, Event, ProtocolError, Received, UsageError};

/// Where a session is in its life.
// Open is the phase sessions spend their life in; boxing it instead would
// cost every session an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Phase {
    /// Reading the request head, until the deadline.
    Request { handshake: Box<ServerHandshake>, deadline: Instant },
    /// A plain HTTP request whose body is still arriving, until the deadline.
    Body { request: Box<Request>, body: Vec<u8>, length: usize, deadline: Instant },
    /// A complete request awaits the application's answer.
    Deciding { deadline: Instant },
    /// Upgraded: frames flow.
    Open(Connection),
    /// An HTTP answer is being written; then the connection ends.
    Answered { deadline: Instant },
    /// Everything is said: our side is shut down and what the peer still
    /// sends is read and dropped until its EOF or the deadline, so that
    /// closing never resets the connection under our last bytes.
    Lingering { deadline: Instant },
}

/// A complete upgrade request, for the application to decide on.
#[derive(Debug)]
pub struct UpgradeInput {
    /// The request: path, query, headers.
    pub request: Box<Request>,
    /// What the upgrade asks for: key, subprotocols, extensions.
    pub upgrade: UpgradeRequest,
    /// Bytes that came behind the request (the first frames), read once the session is open.
    pub rest: Vec<u8>,
}

/// What a read brought that the driver must act on.
#[derive(Debug)]
pub enum Input {
    /// A complete upgrade request: answer with [`Session::accept`] or [`Session::refuse`],
    /// then feed [`UpgradeInput::rest`] to [`Session::handle_read`].
    Upgrade(UpgradeInput),
    /// A complete plain HTTP request and its body: answer with [`Session::answer`].
    Http {
        /// The request head.
        request: Box<Request>,
        /// Its body (`Content-Length` bytes).
        body: Vec<u8>,
    },
    /// A request that is not one: answered (400, 405, 411, 413, 431, ...) and closing.
    BadRequest(String),
    /// The peer broke the WebSocket protocol: a Close with the code it earns is queued.
    Violation(ProtocolError),
}

/// What a deadline brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Expiry {
    /// Nothing to do yet.
    Pending,
    /// The request did not arrive (or the application did not answer) in time: end the connection.
    RequestTimedOut,
    /// The answer or the linger is over: end the connection.
    Over,
    /// The protocol gave up on the peer (no Close answer, no Pong): write
    /// what is queued, then end the connection if the peer does not take it.
    GaveUp,
    /// A protocol timer ran (a keepalive Ping was queued, say): write, go on.
    Ran,
}

/// How a session ended, as told to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseStatus {
    /// The peer's code, ours after a violation, 1005 without a code, 1006 for a lost connection.
    pub code: CloseCode,
    /// The reason that came with it.
    pub reason: String,
}

/// Why a send did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRefusal {
    /// Not upgraded, or closing.
    Closed,
    /// The output queue is over its limit.
    Backpressure,
    /// A misuse of the protocol API.
    Usage(UsageError),
}

/// What became of a frame offered to a session by [`Session::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued.
    Queued,
    /// Not open (not yet upgraded, or closing): nothing to count.
    NotOpen,
    /// Dropped: the output queue was full and the policy is to drop.
    Dropped,
    /// Not queued, and the session is closing with 1008: the queue was full
    /// and the policy is to close slow consumers.
    ClosedSlowConsumer,
}

/// Working memory that the sessions of one driver lend each other: a
/// session holds buffers only while it has traffic in progress
/// ([`Session::lend`]) and gives them back once it is idle
/// ([`Session::give_back`]), so that steady traffic allocates nothing and
/// an idle session is a few words.
#[derive(Debug, Default)]
pub struct Pool {
    /// The protocol's working memory: the frame being read, events, output being encoded.
    pub bursts: BurstPool,
    /// Output queues.
    pub queues: QueuePool,
    /// Frames shared by many queues.
    pub frames: FramePool,
}

/// One connection's session machine, with the application's state `S` once upgraded.
#[derive(Debug)]
pub struct Session<S> {
    phase: Phase,
    out: OutQueue,
    state: Option<S>,
    /// How the session ends: a close set for later while it is open, then
    /// how it ended. Boxed: most sessions have neither until they end.
    ending: Option<Box<Ending>>,
    peer: PeerAddr,
    read_paused: bool,
    upgraded: bool,
}

/// What a session knows of its end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// The application's close, due at a deadline (an identity's expiry).
    Due(ClosingTime),
    /// How it ended (the peer's Close, a violation, a policy).
    Ended(CloseStatus),
}

/// A close the application set for later: at `deadline`, with `code` and `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClosingTime {
    deadline: Instant,
    code: CloseCode,
    reason: &'static str,
}

impl<S> Session<S> {
    /// A session of a connection just accepted from `peer`: it waits for the request.
    pub fn new(peer: SocketAddr, settings: &Settings, now: Instant) -> Self {
        let handshake = Box::new(ServerHandshake::new(settings.handshake_limits));
        Self::with_phase(peer, Phase::Request { handshake, deadline: now + settings.handshake_timeout })
    }

    /// A session refused before its request is read (a connection limit): it
    /// answers `status` with `reason`, then ends.
    pub fn refused(peer: SocketAddr, status: StatusCode, reason: &str, settings: &Settings, now: Instant) -> Self {
        let mut session = Self::with_phase(peer, Phase::Answered { deadline: now });
        session.refuse(status, reason, settings, now);
        session
    }

    fn with_phase(peer: SocketAddr, phase: Phase) -> Self {
        Self {
            phase,
            out: OutQueue::default(),
            state: None,
            ending: None,
            peer: peer.into(),
            read_paused: false,
            upgraded: false,
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> PeerAddr {
        self.peer
    }

    /// Takes bytes read from the peer (unmasked in place for frames).
    ///
    /// Returns what the driver must act on, if anything; data messages of an
    /// open session wait in [`poll_message`](Self::poll_message), which must
    /// be given the same bytes: a message that came whole in them is lent
    /// from there, not copied. Poll every message before reusing `bytes`.
    pub fn handle_read(&mut self, bytes: &mut [u8], settings: &Settings, now: Instant) -> Option<Input> {
        match &mut self.phase {
            Phase::Request { handshake, deadline } => match handshake.feed(bytes) {
                Ok(Status::Partial) => None,
                Ok(Status::Complete { head, rest }) => {
                    let deadline = *deadline;
                    self.phase = Phase::Deciding { deadline };
                    if head.is_upgrade() {
                        self.upgrade_request(head, rest, settings, now)
                    } else {
                        self.http_request(head, rest, settings, now, deadline)
                    }
                }
                Err(refusal) => Some(self.bad_request(&refusal, settings, now)),
            },
            Phase::Body { body, length, .. } => {
                let take = (*length - body.len()).min(bytes.len());
                body.extend_from_slice(&bytes[..take]);
                if body.len() < *length {
                    return None;
                }
                let Phase::Body { request, body, .. } =
                    std::mem::replace(&mut self.phase, Phase::Deciding { deadline: now })
                else {
                    return None;
                };
                Some(Input::Http { request, body })
            }
            Phase::Open(conn) => match conn.handle_read_in_place(bytes, now) {
                Ok(()) => None,
                Err(violation) => {
                    self.set_close_status(violation.close_code(), &violation.to_string());
                    Some(Input::Violation(violation))
                }
            },
            // Nothing more is read from an answered request or a finished session.
            Phase::Deciding { .. } | Phase::Answered { .. } | Phase::Lingering { .. } => None,
        }
    }

    fn upgrade_request(&mut self, head: Request, rest: Vec<u8>, settings: &Settings, now: Instant) -> Option<Input> {
        match head.validate_upgrade() {
            Ok(upgrade) => Some(Input::Upgrade(UpgradeInput { request: Box::new(head), upgrade, rest })),
            Err(refusal) => Some(self.bad_request(&refusal, settings, now)),
        }
    }

    /// A plain request: its body is framed by `Content-Length`, within `max_http_body`.
    fn http_request(
        &mut self,
        request: Request,
        mut rest: Vec<u8>,
        settings: &Settings,
        now: Instant,
        deadline: Instant,
    ) -> Option<Input> {
        // RFC 9112 §6.3: without Transfer-Encoding, Content-Length frames the body.
        // Chunked bodies are not taken: the answer says to send a length.
        let length = match request.headers().get_str("Content-Length").map(str::trim) {
            _ if request.header("Transfer-Encoding").is_some() => {
                Err((StatusCode::LENGTH_REQUIRED, "send the body with a Content-Length"))
            }
            None => Ok(0),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                v.parse::<usize>().map_err(|_| (StatusCode::BAD_REQUEST, "invalid Content-Length"))
            }
            Some(_) => Err((StatusCode::BAD_REQUEST, "invalid Content-Length")),
        };
        let length = match length {
            Ok(n) if n > settings.max_http_body => Err((StatusCode::CONTENT_TOO_LARGE, "request body too large")),
            other => other,
        };
        match length {
            Err((status, reason)) => {
                self.refuse(status, reason, settings, now);
                Some(Input::BadRequest(format!("{} {}: {reason}", request.method(), request.path())))
            }
            Ok(length) if rest.len() >= length => {
                rest.truncate(length);
                Some(Input::Http { request: Box::new(request), body: rest })
            }
            Ok(length) => {
                self.phase = Phase::Body { request: Box::new(request), body: rest, length, deadline };
                None
            }
        }
    }

    fn bad_request(&mut self, refusal: &HandshakeError, settings: &Settings, now: Instant) -> Input {
        let mut response = Vec::new();
        refusal.write_response(&mut response);
        self.answer(response, settings, now);
        Input::BadRequest(refusal.to_string())
    }

    /// Upgrades after [`Input::Upgrade`]: queues the 101 with `protocol` (the
    /// application's choice, else the first of [`Settings::subprotocols`] the
    /// client offered) and the negotiated permessage-deflate, and opens the
    /// connection with the application's `state`.
    ///
    /// # Errors
    ///
    /// The application's `protocol` cannot go in a response: the session
    /// answers 500 instead and ends.
    pub fn accept(
        &mut self,
        input: &UpgradeInput,
        protocol: Option<String>,
        state: S,
        settings: &Settings,
        now: Instant,
    ) -> Result<(), HandshakeUsageError> {
        let upgrade = &input.upgrade;
        let protocol =
            protocol.or_else(|| settings.subprotocols.iter().find(|p| upgrade.protocols().contains(p)).cloned());
        let mut accept = Accept::new();
        if let Some(protocol) = protocol {
            accept = accept.protocol(protocol);
        }
        // RFC 7692 §5: take the first acceptable permessage-deflate offer, if any.
        #[cfg(feature = "deflate")]
        let deflate = crate::proto::deflate::negotiate_server(upgrade.extensions(), &settings.deflate);
        #[cfg(feature = "deflate")]
        if let Some((_, response)) = &deflate {
            accept = accept.extensions(response.clone());
        }
        let mut response = Vec::new();
        if let Err(e) = upgrade.accept(&accept, &mut response) {
            self.refuse(StatusCode::INTERNAL_SERVER_ERROR, "server error", settings, now);
            return Err(e);
        }
        self.out.push(response);
        self.state = Some(state);
        let conn = Connection::server(settings.protocol.clone(), now);
        #[cfg(feature = "deflate")]
        let conn = match &deflate {
            Some((params, _)) => conn.with_deflate(params, &settings.deflate),
            None => conn,
        };
        self.phase = Phase::Open(conn);
        self.upgraded = true;
        Ok(())
    }

    /// Refuses with `status` and a short `reason` as the body, then ends:
    /// the answer to an upgrade the application or the server turned down.
    pub fn refuse(&mut self, status: StatusCode, reason: &str, settings: &Settings, now: Instant) {
        let mut response = Vec::new();
        write_error_response(status, reason, &mut response);
        self.answer(response, settings, now);
    }

    /// Whether a complete request awaits the application's answer (an
    /// upgrade's decision, or a plain request's response).
    pub fn is_deciding(&self) -> bool {
        matches!(self.phase, Phase::Deciding { .. })
    }

    /// Answers a plain HTTP request with a complete response, then ends.
    pub fn answer(&mut self, response: Vec<u8>, settings: &Settings, now: Instant) {
        self.out.push(response);
        self.phase = Phase::Answered { deadline: now + settings.linger_timeout };
    }

    /// The next data message of an open session, lent from `bytes` (what
    /// the last [`handle_read`](Self::handle_read) was given) when it came
    /// whole in them: `Received::Text`, `Received::Binary`, or an owned
    /// `Event::Text` or `Event::Binary`. A Close is recorded as the session's
    /// close status; Pings and Pongs are the protocol's own.
    #[inline]
    pub fn poll_message<'a>(&mut self, bytes: &'a [u8]) -> Option<Received<'a>> {
        loop {
            let Phase::Open(conn) = &mut self.phase else { return None };
            let received = conn.poll_event_in(bytes)?;
            let Received::Event(event) = &received else { return Some(received) };
            match &**event {
                Event::Ping(_) | Event::Pong(_) => {}
                Event::Close(Some(frame)) => self.set_close_status(frame.code, &frame.reason),
                Event::Close(None) => self.set_close_status(CloseCode::NO_STATUS, ""),
                Event::Text(_) | Event::Binary(_) => return Some(received),
            }
        }
    }

    /// Lends the session working memory from `pool` for traffic about to
    /// come: a read, a send, a publish.
    #[inline]
    pub fn lend(&mut self, pool: &mut Pool) {
        // Only an open session's traffic is steady; a request is answered once.
        if let Phase::Open(conn) = &mut self.phase {
            conn.lend(&mut pool.bursts);
            self.out.lend(&mut pool.queues);
        }
    }

    /// Gives back to `pool` the working memory the session no longer needs:
    /// all of it once its messages are polled and its output written.
    pub fn give_back(&mut self, pool: &mut Pool) {
        if let Phase::Open(conn) = &mut self.phase {
            conn.give_back(&mut pool.bursts);
        }
        self.out.give_back(&mut pool.queues);
    }

    /// Sends through the open connection, unless its output is over `limit`
    /// (`usize::MAX` for the session whose event is being handled: its
    /// reading pauses instead).
    ///
    /// # Errors
    ///
    /// See [`SendRefusal`].
    pub fn send(
        &mut self,
        limit: usize,
        send: impl FnOnce(&mut Connection) -> Result<(), UsageError>,
    ) -> Result<(), SendRefusal> {
        if self.out.len() > limit {
            return Err(SendRefusal::Backpressure);
        }
        let Phase::Open(conn) = &mut self.phase else { return Err(SendRefusal::Closed) };
        send(conn).map_err(refusal)?;
        self.take_output();
        Ok(())
    }

    /// Sends a text (`text`) or binary message through the open connection,
    /// as [`send`](Self::send) does, its frame encoded straight into the
    /// output queue.
    ///
    /// # Errors
    ///
    /// See [`SendRefusal`].
    #[inline]
    pub fn send_message(&mut self, limit: usize, text: bool, payload: &[u8]) -> Result<(), SendRefusal> {
        if self.out.len() > limit {
            return Err(SendRefusal::Backpressure);
        }
        let Phase::Open(conn) = &mut self.phase else { return Err(SendRefusal::Closed) };
        self.out.push_with(|tail| conn.send_into(text, payload, tail)).map_err(refusal)
    }

    /// Starts the closing handshake (the Close is queued whatever the output's size).
    ///
    /// # Errors
    ///
    /// See [`SendRefusal`].
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), SendRefusal> {
        self.send(usize::MAX, |conn| conn.send_close(code, reason, now))
    }

    /// Offers a frame shared with other sessions (a publish): queued unless
    /// the session is not open or its output would go over
    /// [`Settings::max_out_queue`], where the slow-consumer policy applies.
    pub fn deliver(&mut self, frame: &SharedFrame, settings: &Settings, now: Instant) -> Delivered {
        if !self.is_open() {
            return Delivered::NotOpen;
        }
        // What the connection queued (Pongs, replies) goes first.
        self.take_output();
        if self.out.len() + frame.len() <= settings.max_out_queue {
            self.out.push_shared(frame.clone());
            return Delivered::Queued;
        }
        match settings.slow_consumer {
            SlowConsumerPolicy::Drop => Delivered::Dropped,
            SlowConsumerPolicy::Close => {
                log::info!("{}: closing a slow consumer (output queue full)", self.peer);
                let _ = self.close(CloseCode::POLICY_VIOLATION, "slow consumer: output queue full", now);
                self.set_close_status(CloseCode::POLICY_VIOLATION, "slow consumer");
                Delivered::ClosedSlowConsumer
            }
        }
    }

    /// The bytes to write, the connection's pending output included.
    pub fn output(&mut self) -> &mut OutQueue {
        self.take_output();
        &mut self.out
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Moves the protocol's pending output (replies, queued messages) to the output queue.
    fn take_output(&mut self) {
        if let Phase::Open(conn) = &mut self.phase {
            if conn.wants_write() {
                self.out.push_with(|bytes| conn.poll_transmit(bytes));
            }
        }
    }

    /// Whether reading is paused because the output is over its limit, after
    /// looking again; `true` in the result's second place when it just resumed.
    pub fn check_backpressure(&mut self, settings: &Settings) -> (bool, bool) {
        self.take_output();
        let was = self.read_paused;
        self.read_paused = self.out.len() > settings.max_out_queue;
        (self.read_paused, was && !self.read_paused)
    }

    /// The next instant the session needs the clock.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Request { deadline, .. }
            | Phase::Body { deadline, .. }
            | Phase::Deciding { deadline }
            | Phase::Answered { deadline }
            | Phase::Lingering { deadline } => Some(*deadline),
            Phase::Open(conn) => {
                let closing = match self.ending.as_deref() {
                    Some(Ending::Due(due)) if conn.can_send() => Some(due.deadline),
                    _ => None,
                };
                [conn.poll_timeout(), closing].into_iter().flatten().min()
            }
        }
    }

    /// Closes the open session with `code` and `reason` once `deadline` comes
    /// (the end of a token's validity), unless set again or cleared (`None`)
    /// before then. A later call replaces an earlier one.
    pub fn close_at(&mut self, deadline: Option<Instant>, code: CloseCode, reason: &'static str) {
        if matches!(self.ending.as_deref(), Some(Ending::Ended(_))) {
            return;
        }
        self.ending = deadline.map(|deadline| Box::new(Ending::Due(ClosingTime { deadline, code, reason })));
    }

    /// Time has come to `now`: runs what is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Expiry {
        if self.poll_timeout().is_none_or(|d| d > now) {
            return Expiry::Pending;
        }
        match &mut self.phase {
            Phase::Request { .. } | Phase::Body { .. } | Phase::Deciding { .. } => Expiry::RequestTimedOut,
            Phase::Answered { .. } | Phase::Lingering { .. } => Expiry::Over,
            Phase::Open(conn) => {
                if let Some(Ending::Due(due)) = self.ending.as_deref() {
                    if due.deadline <= now {
                        // Open until now (a due close counts only then): the Close is queued.
                        let _ = conn.send_close(due.code, due.reason, now);
                        self.ending = None;
                    }
                }
                let was_closed = conn.is_closed();
                conn.handle_timeout(now);
                if conn.timed_out() {
                    log::debug!("{}: no answer to keepalive ping", self.peer);
                }
                self.take_output();
                if !was_closed && self.is_closed_protocol() {
                    Expiry::GaveUp
                } else {
                    Expiry::Ran
                }
            }
        }
    }

    fn is_closed_protocol(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.is_closed())
    }

    /// Whether the session is upgraded and can still send.
    pub fn is_open(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.can_send())
    }

    /// Whether the session was upgraded (it stays so after it closed).
    pub fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Whether the request is still being read (head or body).
    pub fn is_reading_request(&self) -> bool {
        matches!(self.phase, Phase::Request { .. } | Phase::Body { .. })
    }

    /// Whether the session is lingering: the peer's EOF is expected.
    pub fn is_lingering(&self) -> bool {
        matches!(self.phase, Phase::Lingering { .. })
    }

    /// Whether the session wants to read: not paused for backpressure, and
    /// in a phase that reads.
    pub fn wants_read(&self) -> bool {
        !self.read_paused
            && match &self.phase {
                Phase::Request { .. } | Phase::Body { .. } | Phase::Lingering { .. } => true,
                Phase::Open(conn) => conn.wants_read(),
                Phase::Deciding { .. } | Phase::Answered { .. } => false,
            }
    }

    /// Whether everything is said and the queue is empty: time to end the
    /// connection (a driver with bytes of its own below the queue, such as TLS
    /// records, writes those first).
    pub fn is_finished(&self) -> bool {
        self.out.is_empty()
            && match &self.phase {
                Phase::Request { .. } | Phase::Body { .. } | Phase::Deciding { .. } | Phase::Lingering { .. } => false,
                Phase::Open(conn) => conn.is_closed() && !conn.wants_write(),
                Phase::Answered { .. } => true,
            }
    }

    /// Whether the closing handshake completed both ways: after it the peer
    /// sends nothing more, and the connection may end at once, without a linger.
    pub fn closed_cleanly(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.closed_cleanly())
    }

    /// Everything is written and our side is shut down: read and drop until
    /// the peer's EOF or [`Settings::linger_timeout`].
    pub fn linger(&mut self, settings: &Settings, now: Instant) {
        self.phase = Phase::Lingering { deadline: now + settings.linger_timeout };
    }

    /// Ends an upgraded session for the application, once: returns how it
    /// ended (1006 when nothing better is known). Sends fail from then on,
    /// while the state stays reachable until [`drop_state`](Self::drop_state).
    pub fn take_close_status(&mut self, now: Instant) -> Option<CloseStatus> {
        self.state.as_ref()?;
        if let Phase::Open(_) = self.phase {
            self.phase = Phase::Lingering { deadline: now };
        }
        match self.ending.take().map(|ending| *ending) {
            Some(Ending::Ended(status)) => Some(status),
            _ => Some(CloseStatus { code: CloseCode::ABNORMAL, reason: String::new() }),
        }
    }

    /// The application's state, once upgraded.
    pub fn state_mut(&mut self) -> Option<&mut S> {
        self.state.as_mut()
    }

    /// Drops the application's state (after it was told the session ended).
    pub fn drop_state(&mut self) {
        self.state = None;
    }

    /// Records how the session ended, unless a cause is already known.
    pub fn set_close_status(&mut self, code: CloseCode, reason: &str) {
        if !matches!(self.ending.as_deref(), Some(Ending::Ended(_))) {
            self.ending = Some(Box::new(Ending::Ended(CloseStatus { code, reason: reason.to_owned() })));
        }
    }
}

/// What a refused send of the connection means for the session.
fn refusal(error: UsageError) -> SendRefusal {
    match error {
        UsageError::Closed => SendRefusal::Closed,
        other => SendRefusal::Usage(other),
    }
}

#[cfg(test)]
mod tests;
