//! One client connection: its socket, the opening handshake, the protocol
//! state and the output not yet written.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

#[cfg(feature = "deflate")]
use ferrows::proto::deflate::{accept_server_response, DeflateConfig};
use ferrows::proto::handshake::{ClientHandshake, ClientRequest, Response, Status};
use ferrows::proto::{CloseCode, CloseFrame, Config, Connection, Event};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::random::SharedPool;

/// Output capacity kept once everything is written; more is given back.
const KEEP_OUT_CAPACITY: usize = 4096;

/// What a mode wants of a connection whose handshake just completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// It is open.
    Ready,
    /// Start closing it at once.
    Close,
    /// A message was sent on it; it counts as open once a message comes back
    /// (an echo, an acknowledgement), and as failed if none does before the
    /// handshake's deadline.
    AwaitReply,
}

/// What a mode does with an open connection.
///
/// `slot` names the connection within its thread (its slab key) for as long
/// as it lives, so that a mode can keep per-connection state in a `Vec`; a
/// later connection may get the same slot, and `on_open` says when.
pub trait Handler {
    /// Whether `now` is read from the clock for every read from a socket,
    /// rather than once per batch of poll events: a mode that measures
    /// delays across many connections wants it, since a batch can take
    /// long to handle.
    const STAMP_EACH_READ: bool = false;

    /// The handshake completed at `now`; the TCP connect began at `started`.
    fn on_open(&mut self, conn: &mut Connection, slot: usize, started: Instant, now: Instant) -> Opened;

    /// Something happened on an open connection (pongs and close replies are
    /// already queued by the connection).
    fn on_event(&mut self, conn: &mut Connection, slot: usize, event: Event, now: Instant);

    /// The mode asked to act on this connection outside its events (see
    /// [`Nudge`](crate::worker::Nudge)): to start sending, say.
    fn on_nudge(&mut self, _conn: &mut Connection, _slot: usize, _now: Instant) {}
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It never opened: what failed (connect, handshake) and why.
    Failed(&'static str, String),
    /// It was open and ended without our asking: what happened and the details.
    Dropped(&'static str, String),
    /// It ended after we sent a Close; clean if the server answered it.
    Closed {
        /// Whether the server's Close came back.
        clean: bool,
    },
    /// It was still opening when the run ended.
    Cancelled,
}

/// What the session is waiting for.
enum State {
    /// The TCP connect; the request is already in the output.
    Connecting(ClientHandshake),
    /// The server's response to the request.
    Handshaking(ClientHandshake),
    /// The WebSocket protocol runs.
    Open(Connection),
    /// Only while moving between states.
    Moving,
}

/// What every session of a thread uses while it handles I/O.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The protocol settings of new connections.
    pub config: &'a Config,
    /// The permessage-deflate offer the request made, if any.
    #[cfg(feature = "deflate")]
    pub deflate: Option<&'a DeflateConfig>,
    /// The thread's random source.
    pub pool: &'a SharedPool,
    /// How long to wait for the server's Close reply and then its TCP close.
    pub close_grace: Duration,
}

/// One client connection and everything it holds.
pub struct Session {
    /// The socket.
    stream: TcpStream,
    /// Where the session stands.
    state: State,
    /// Bytes to send; `out[..written]` are already sent.
    out: Vec<u8>,
    /// How much of `out` is sent.
    written: usize,
    /// The interest registered with the poll.
    interest: Interest,
    /// The session's poll token.
    token: Token,
    /// The session's slab key, which the mode knows it by.
    slot: usize,
    /// When the TCP connect began.
    started: Instant,
    /// When to give up waiting: for the handshake, or for the end of the close.
    deadline: Option<Instant>,
    /// Whether we sent a Close.
    we_closed: bool,
    /// The server's Close, described, once it came.
    peer_close: Option<String>,
    /// The server's first protocol violation, described.
    violation: Option<String>,
    /// Whether the connection uses permessage-deflate.
    deflate: bool,
    /// Whether the connection waits for the reply to its first message
    /// before it counts as open.
    awaiting_reply: bool,
}

impl Session {
    /// Starts a non-blocking connect to `addr` from `source` (any local
    /// address if `None`), with the request queued behind it.
    ///
    /// # Errors
    ///
    /// The socket could not be created, bound or started connecting.
    pub fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        request: &ClientRequest,
        pool: &SharedPool,
        now: Instant,
        timeout: Duration,
    ) -> io::Result<Session> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        if let Some(ip) = source {
            // Port 0: each source address has its own ephemeral ports.
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if connect_in_progress(&e) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(socket.into());
        let mut out = Vec::new();
        let handshake =
            request.encode(&pool.nonce(), &mut out).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Session {
            stream,
            state: State::Connecting(handshake),
            out,
            written: 0,
            interest: Interest::READABLE | Interest::WRITABLE,
            token: Token(0),
            slot: 0,
            started: now,
            deadline: Some(now + timeout),
            we_closed: false,
            peer_close: None,
            violation: None,
            deflate: false,
            awaiting_reply: false,
        })
    }

    /// Registers the socket with the poll under `token`; the mode will know
    /// the session as `slot`.
    ///
    /// # Errors
    ///
    /// The poll refused it.
    pub fn register(&mut self, registry: &Registry, token: Token, slot: usize) -> io::Result<()> {
        self.token = token;
        self.slot = slot;
        registry.register(&mut self.stream, token, self.interest)
    }

    /// Removes the socket from the poll, before it is dropped.
    pub fn deregister(&mut self, registry: &Registry) {
        // The socket is closed right after; a failure here changes nothing.
        let _ = registry.deregister(&mut self.stream);
    }

    /// Registers for writes only while output is pending (or the connect is).
    ///
    /// # Errors
    ///
    /// The poll refused the change.
    pub fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let wanted = if matches!(self.state, State::Connecting(_)) || self.written < self.out.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if wanted != self.interest {
            registry.reregister(&mut self.stream, self.token, wanted)?;
            self.interest = wanted;
        }
        Ok(())
    }

    /// Whether the handshake completed (the session may have ended since).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Whether the session counts as open: the handshake completed and the
    /// reply the mode waits for, if any, came back.
    pub fn is_ready(&self) -> bool {
        self.is_open() && !self.awaiting_reply
    }

    /// Whether the connection uses permessage-deflate.
    pub fn uses_deflate(&self) -> bool {
        self.deflate
    }

    /// When the session next needs [`expire`](Self::expire).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Handles a readiness event; spurious ones do no harm. Returns how the
    /// session ended, if it did.
    pub fn ready(
        &mut self,
        event: &mio::event::Event,
        scratch: &mut [u8],
        env: Env<'_>,
        handler: &mut impl Handler,
        now: Instant,
    ) -> Option<End> {
        if let State::Connecting(_) = self.state {
            match self.connect_result() {
                Ok(true) => {
                    if let State::Connecting(handshake) = std::mem::replace(&mut self.state, State::Moving) {
                        self.state = State::Handshaking(handshake);
                    }
                }
                Ok(false) => return None,
                Err(e) => return Some(End::Failed("connect", e.to_string())),
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let drain = event.is_read_closed() || event.is_error();
            if let Some(end) = self.read_all(scratch, env, handler, now, drain) {
                return Some(end);
            }
        }
        self.after_io(now, env.close_grace)
    }

    /// Lets the mode act on an open session outside its events, then writes
    /// what it queued. Returns how the session ended, if it did.
    pub fn nudge(&mut self, handler: &mut impl Handler, now: Instant, close_grace: Duration) -> Option<End> {
        if self.awaiting_reply || self.we_closed {
            return None;
        }
        let State::Open(conn) = &mut self.state else {
            return None;
        };
        handler.on_nudge(conn, self.slot, now);
        self.after_io(now, close_grace)
    }

    /// Whether the TCP connect completed (`Ok(false)`: not yet).
    fn connect_result(&mut self) -> io::Result<bool> {
        // mio: on a writable event, check `take_error`, then `peer_addr` to
        // tell a completed connect from a spurious wakeup.
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads until the socket has nothing more; `drain`: until it says so
    /// (the event reported its end or an error).
    fn read_all<H: Handler>(
        &mut self,
        scratch: &mut [u8],
        env: Env<'_>,
        handler: &mut H,
        mut now: Instant,
        drain: bool,
    ) -> Option<End> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Some(self.lost("the server closed the TCP connection without a Close frame")),
                Ok(n) => {
                    if H::STAMP_EACH_READ {
                        now = Instant::now();
                    }
                    if let Err(end) = self.received(&mut scratch[..n], env, handler, now) {
                        return Some(end);
                    }
                    // Linux's epoll reports new data with a new edge once a
                    // read came short of the buffer, so the read that would
                    // only say WouldBlock can be saved: it is one system call
                    // in two when every event brings one small message.
                    // Elsewhere (Windows above all) readiness is re-armed only
                    // by a WouldBlock.
                    if cfg!(any(target_os = "linux", target_os = "android")) && !drain && n < scratch.len() {
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(self.lost(&e.to_string())),
            }
        }
    }

    /// Takes bytes read from the socket; `Err` carries how the session ended.
    fn received(&mut self, data: &mut [u8], env: Env<'_>, handler: &mut impl Handler, now: Instant) -> Result<(), End> {
        let State::Handshaking(handshake) = &mut self.state else {
            self.feed(data, handler, now);
            return Ok(());
        };
        match handshake.feed(data) {
            Ok(Status::Partial) => Ok(()),
            Ok(Status::Complete { head: response, mut rest }) => {
                let conn = Connection::client(env.config.clone(), now, env.pool.masks());
                let mut conn = self.negotiate(conn, &response, env)?;
                let opened = handler.on_open(&mut conn, self.slot, self.started, now);
                self.state = State::Open(conn);
                match opened {
                    Opened::Ready => self.deadline = None,
                    Opened::Close => {
                        self.deadline = None;
                        self.send_close(now, env.close_grace);
                    }
                    // The handshake's deadline now bounds the wait for the reply.
                    Opened::AwaitReply => self.awaiting_reply = true,
                }
                // Frames the server sent right behind its response.
                self.feed(&mut rest, handler, now);
                Ok(())
            }
            Err(e) => Err(End::Failed("handshake", e.to_string())),
        }
    }

    /// Applies the extensions the server accepted to a new connection.
    #[cfg(feature = "deflate")]
    fn negotiate(&mut self, conn: Connection, response: &Response, env: Env<'_>) -> Result<Connection, End> {
        let Some(config) = env.deflate else {
            return Ok(conn);
        };
        match accept_server_response(response.extensions(), config) {
            Ok(Some(params)) => {
                self.deflate = true;
                Ok(conn.with_deflate(&params, config))
            }
            // RFC 7692 §5: the server declined; both ends go on uncompressed.
            Ok(None) => Ok(conn),
            // RFC 7692 §7: an invalid response fails the connection.
            Err(e) => Err(End::Failed("handshake", format!("permessage-deflate response: {e}"))),
        }
    }

    /// Applies the extensions the server accepted to a new connection: none
    /// are offered without the `deflate` feature.
    #[cfg(not(feature = "deflate"))]
    fn negotiate(&mut self, conn: Connection, _response: &Response, _env: Env<'_>) -> Result<Connection, End> {
        Ok(conn)
    }

    /// Feeds an open connection and hands its events to the mode.
    fn feed(&mut self, data: &mut [u8], handler: &mut impl Handler, now: Instant) {
        let State::Open(conn) = &mut self.state else {
            return;
        };
        if data.is_empty() {
            return;
        }
        if let Err(violation) = conn.handle_read(data, now) {
            // The connection already queued the Close with the code it earns.
            self.violation.get_or_insert_with(|| violation.to_string());
        }
        while let Some(event) = conn.poll_event() {
            match &event {
                Event::Close(frame) => self.peer_close = Some(describe_close(frame.as_ref())),
                Event::Text(_) | Event::Binary(_) if self.awaiting_reply => {
                    self.awaiting_reply = false;
                    if !self.we_closed {
                        self.deadline = None;
                    }
                }
                _ => {}
            }
            handler.on_event(conn, self.slot, event, now);
        }
    }

    /// Writes what is pending, then decides whether the session is over.
    fn after_io(&mut self, now: Instant, close_grace: Duration) -> Option<End> {
        if let Err(e) = self.flush() {
            return Some(self.lost(&e.to_string()));
        }
        let State::Open(conn) = &self.state else {
            return None;
        };
        if self.written < self.out.len() {
            return None;
        }
        if let Some(violation) = &self.violation {
            return Some(End::Dropped("protocol error", violation.clone()));
        }
        if conn.is_closed() {
            // RFC 6455 §7.1.1: the server should close the TCP connection
            // first, so that TIME_WAIT stays on its side; wait for that a while.
            self.deadline.get_or_insert(now + close_grace);
        }
        None
    }

    /// Moves the connection's output to the socket until it would block.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Connecting(_) | State::Moving => return Ok(()),
            State::Handshaking(_) => {}
            State::Open(conn) => {
                conn.poll_transmit(&mut self.out);
            }
        }
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > KEEP_OUT_CAPACITY {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Starts the closing handshake (the run is ending). Returns how the
    /// session ended if it could not wait for the server's answer.
    pub fn close(&mut self, now: Instant, close_grace: Duration) -> Option<End> {
        if !self.is_open() {
            return Some(End::Cancelled);
        }
        self.send_close(now, close_grace);
        self.after_io(now, close_grace)
    }

    /// Queues our Close, unless one was sent or the connection is over.
    fn send_close(&mut self, now: Instant, close_grace: Duration) {
        if let State::Open(conn) = &mut self.state {
            if conn.can_send() && conn.send_close(CloseCode::NORMAL, "", now).is_ok() {
                self.we_closed = true;
                self.deadline = Some(now + close_grace);
            }
        }
    }

    /// The deadline passed: the handshake took too long, or the close did.
    pub fn expire(&mut self) -> End {
        match self.state {
            State::Connecting(_) => End::Failed("connect", "timed out".to_owned()),
            State::Handshaking(_) => End::Failed("handshake", "no response in time".to_owned()),
            State::Open(_) if self.awaiting_reply && !self.we_closed => {
                End::Failed("first reply", "no reply in time".to_owned())
            }
            State::Open(_) | State::Moving => self.lost("timed out"),
        }
    }

    /// How the session ends when the transport goes away (EOF, error or timeout).
    fn lost(&self, why: &str) -> End {
        match self.state {
            State::Connecting(_) => End::Failed("connect", why.to_owned()),
            State::Handshaking(_) | State::Moving => End::Failed("handshake", why.to_owned()),
            State::Open(_) => {
                if let Some(violation) = &self.violation {
                    End::Dropped("protocol error", violation.clone())
                } else if self.we_closed {
                    End::Closed { clean: self.peer_close.is_some() }
                } else if let Some(close) = &self.peer_close {
                    End::Dropped("closed by the server", close.clone())
                } else {
                    End::Dropped("connection lost", why.to_owned())
                }
            }
        }
    }
}

/// The peer's Close in words: its code and reason.
fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        None => "no status code (1005)".to_owned(),
        Some(frame) if frame.reason.is_empty() => format!("code {}", frame.code),
        Some(frame) => format!("code {} {:?}", frame.code, frame.reason),
    }
}

/// Whether a non-blocking connect's error only says it has begun.
fn connect_in_progress(e: &io::Error) -> bool {
    // EINPROGRESS has no stable `io::ErrorKind`; its number depends on the OS.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const EINPROGRESS: i32 = 115;
    #[cfg(any(target_os = "solaris", target_os = "illumos"))]
    const EINPROGRESS: i32 = 150;
    #[cfg(all(
        unix,
        not(any(target_os = "linux", target_os = "android", target_os = "solaris", target_os = "illumos"))
    ))]
    const EINPROGRESS: i32 = 36; // macOS and the BSDs
    #[cfg(unix)]
    if e.raw_os_error() == Some(EINPROGRESS) {
        return true;
    }
    // Windows reports WSAEWOULDBLOCK.
    e.kind() == io::ErrorKind::WouldBlock
}
