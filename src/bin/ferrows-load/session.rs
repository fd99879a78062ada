//! One client connection: the library's [`ClientConnection`] (socket,
//! handshake, protocol state, output), and what the run follows of it.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrows::client::{ClientBuilder, ClientConnection, ClientEvent, Error};
use ferrows::proto::handshake::WsUrl;
use ferrows::proto::{CloseCode, CloseFrame};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::replies::{Taken, MAX_HEADER};

/// How the end of the TCP connection by the server is described.
const SERVER_EOF: &str = "the server closed the TCP connection without a Close frame";

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
    /// It is open, and the mode takes its bytes from now on: they go to
    /// [`Handler::on_raw`] before the connection's parser, and what that
    /// writes goes to the socket as it is (frames the mode encoded). It is
    /// first called at once, with no bytes, to send the first messages.
    Raw,
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
    fn on_open(&mut self, conn: &mut ClientConnection, slot: usize, started: Instant, now: Instant) -> Opened;

    /// Something happened on an open connection (pongs and close replies are
    /// already queued by the connection).
    fn on_event(&mut self, conn: &mut ClientConnection, slot: usize, event: ClientEvent, now: Instant);

    /// The mode asked to act on this connection outside its events (see
    /// [`Nudge`](crate::worker::Nudge)): to start sending, say.
    fn on_nudge(&mut self, _conn: &mut ClientConnection, _slot: usize, _now: Instant) {}

    /// The bytes that came on a connection the mode took (see
    /// [`Opened::Raw`]), with an incomplete header left over from the last
    /// ones in front; frames to send go to `out`. What it does not take
    /// goes to the connection's parser, and so does all that comes after.
    fn on_raw(&mut self, _slot: usize, _input: &[u8], _out: &mut Vec<u8>, _now: Instant) -> Taken {
        Taken::Until { at: 0 }
    }
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

/// One client connection and what the run follows of it.
pub struct Session {
    /// The socket and the protocol.
    conn: ClientConnection,
    /// Whether the TCP connect completed.
    connected: bool,
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
    /// Whether the connection waits for the reply to its first message
    /// before it counts as open.
    awaiting_reply: bool,
    /// Whether the mode takes the bytes (see [`Opened::Raw`]).
    raw: bool,
    /// The start of a header that [`Handler::on_raw`] left over.
    carry: [u8; MAX_HEADER],
    /// How many bytes of `carry` are held.
    carried: usize,
    /// What [`Handler::on_raw`] wrote; `raw_out[..raw_written]` is on the socket.
    raw_out: Vec<u8>,
    /// See `raw_out`.
    raw_written: usize,
}

impl Session {
    /// Starts a non-blocking connect to `addr` from `source` (any local
    /// address if `None`) for `url`, with `client`'s settings.
    ///
    /// # Errors
    ///
    /// The socket could not be created, bound or started connecting, or the
    /// OS random source failed.
    pub fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        client: &ClientBuilder,
        url: &WsUrl,
        now: Instant,
        timeout: Duration,
    ) -> io::Result<Session> {
        let endpoint = client.endpoint_at(url.clone(), now).map_err(io::Error::other)?;
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
        let conn = ClientConnection::from_parts(stream, endpoint);
        #[cfg(feature = "tls")]
        let conn = match client.tls_client_config() {
            Some(config) if url.is_secure() => conn.with_tls(config, url.host()).map_err(io::Error::other)?,
            _ => conn,
        };
        Ok(Session {
            conn,
            connected: false,
            interest: Interest::READABLE | Interest::WRITABLE,
            token: Token(0),
            slot: 0,
            started: now,
            deadline: Some(now + timeout),
            we_closed: false,
            peer_close: None,
            violation: None,
            awaiting_reply: false,
            raw: false,
            carry: [0; MAX_HEADER],
            carried: 0,
            raw_out: Vec::new(),
            raw_written: 0,
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
        registry.register(self.conn.stream_mut(), token, self.interest)
    }

    /// Removes the socket from the poll, before it is dropped.
    pub fn deregister(&mut self, registry: &Registry) {
        // The socket is closed right after; a failure here changes nothing.
        let _ = registry.deregister(self.conn.stream_mut());
    }

    /// Registers for writes only while output is pending (or the connect is).
    ///
    /// # Errors
    ///
    /// The poll refused the change.
    pub fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let mut wanted = self.conn.interest();
        if self.raw_written < self.raw_out.len() {
            wanted |= Interest::WRITABLE;
        }
        if wanted != self.interest {
            registry.reregister(self.conn.stream_mut(), self.token, wanted)?;
            self.interest = wanted;
        }
        Ok(())
    }

    /// Whether the handshake completed (the session may have ended since).
    pub fn is_open(&self) -> bool {
        self.conn.endpoint().is_open()
    }

    /// Whether the session counts as open: the handshake completed and the
    /// reply the mode waits for, if any, came back.
    pub fn is_ready(&self) -> bool {
        self.is_open() && !self.awaiting_reply
    }

    /// Whether the connection uses permessage-deflate.
    pub fn uses_deflate(&self) -> bool {
        self.conn.endpoint().uses_deflate()
    }

    /// When the session next needs [`expire`](Self::expire).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Handles a readiness event; spurious ones do no harm. Returns how the
    /// session ended, if it did.
    pub fn ready<H: Handler>(
        &mut self,
        event: &mio::event::Event,
        scratch: &mut [u8],
        handler: &mut H,
        now: Instant,
        close_grace: Duration,
    ) -> Option<End> {
        if !self.connected {
            // Completes the connect if it is done, and sends the request.
            if let Err(e) = self.conn.on_writable(now) {
                return Some(self.failure(e));
            }
            // The request leaves the endpoint once the connect completed.
            self.connected = !self.conn.endpoint().wants_write();
            if !self.connected {
                return None;
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let drain = event.is_read_closed() || event.is_error();
            if let Some(end) = self.read_all(scratch, handler, now, close_grace, drain) {
                return Some(end);
            }
        }
        self.after_io(now, close_grace)
    }

    /// Reads until the socket has nothing more; `drain`: until it says so
    /// (the event reported its end or an error).
    ///
    /// [`ClientConnection::on_readable`] always reads until `WouldBlock`;
    /// this saves that last read where a short read already said the socket
    /// is empty, and stamps each read for the modes that want it.
    fn read_all<H: Handler>(
        &mut self,
        scratch: &mut [u8],
        handler: &mut H,
        mut now: Instant,
        close_grace: Duration,
        drain: bool,
    ) -> Option<End> {
        loop {
            // The mode's leftover header goes in front of what is read.
            let carried = if self.raw { self.carried } else { 0 };
            scratch[..carried].copy_from_slice(&self.carry[..carried]);
            match self.conn.read(&mut scratch[carried..]) {
                Ok(0) => return Some(self.lost(SERVER_EOF)),
                Ok(n) => {
                    if H::STAMP_EACH_READ {
                        now = Instant::now();
                    }
                    let end = carried + n;
                    let parse_from = if self.raw { self.give_raw(&scratch[..end], handler, now) } else { 0 };
                    if parse_from < end {
                        match self.conn.endpoint_mut().handle_read(&mut scratch[parse_from..end], now) {
                            Ok(()) => {}
                            // The connection already queued the Close with the code it earns.
                            Err(Error::Protocol(violation)) => {
                                self.violation.get_or_insert_with(|| violation.to_string());
                            }
                            Err(e) => return Some(self.failure(e)),
                        }
                        self.take_events(handler, now, close_grace);
                    }
                    // Linux's epoll reports new data with a new edge once a
                    // read came short of the buffer, so the read that would
                    // only say WouldBlock can be saved: it is one system call
                    // in three when every event brings one small message.
                    // Elsewhere readiness is re-armed only by a WouldBlock.
                    // A TLS read returns a record's plaintext, which says nothing of the socket.
                    if cfg!(any(target_os = "linux", target_os = "android"))
                        && !drain
                        && !self.conn.is_tls()
                        && end < scratch.len()
                    {
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(self.lost(&e.to_string())),
            }
        }
    }

    /// Hands `input` to the mode, which took the connection; returns where
    /// the bytes it leaves to the connection's parser start.
    fn give_raw(&mut self, input: &[u8], handler: &mut impl Handler, now: Instant) -> usize {
        self.carried = 0;
        match handler.on_raw(self.slot, input, &mut self.raw_out, now) {
            Taken::All { pending } => {
                let from = input.len() - pending.min(MAX_HEADER);
                self.carry[..input.len() - from].copy_from_slice(&input[from..]);
                self.carried = input.len() - from;
                input.len()
            }
            Taken::Until { at } => {
                self.raw = false;
                at
            }
        }
    }

    /// Writes what the mode encoded; `Ok(true)` when all of it is written.
    fn flush_raw(&mut self) -> io::Result<bool> {
        while self.raw_written < self.raw_out.len() {
            match self.conn.stream_mut().write(&self.raw_out[self.raw_written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.raw_written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.raw_out.clear();
        self.raw_written = 0;
        Ok(true)
    }

    /// Lets the mode act on an open session outside its events, then writes
    /// what it queued. Returns how the session ended, if it did.
    pub fn nudge(&mut self, handler: &mut impl Handler, now: Instant, close_grace: Duration) -> Option<End> {
        if self.awaiting_reply || self.we_closed || !self.is_open() {
            return None;
        }
        handler.on_nudge(&mut self.conn, self.slot, now);
        self.after_io(now, close_grace)
    }

    /// Hands the connection's events to the mode.
    fn take_events(&mut self, handler: &mut impl Handler, now: Instant, close_grace: Duration) {
        while let Some(event) = self.conn.poll_event() {
            match &event {
                ClientEvent::Open => {
                    match handler.on_open(&mut self.conn, self.slot, self.started, now) {
                        Opened::Ready => self.deadline = None,
                        Opened::Close => {
                            self.deadline = None;
                            self.send_close(now, close_grace);
                        }
                        // The handshake's deadline now bounds the wait for the reply.
                        Opened::AwaitReply => self.awaiting_reply = true,
                        Opened::Raw => {
                            self.deadline = None;
                            self.raw = true;
                            self.give_raw(&[], handler, now);
                        }
                    }
                    continue;
                }
                ClientEvent::Close(frame) => self.peer_close = Some(describe_close(frame.as_ref())),
                ClientEvent::Text(_) | ClientEvent::Binary(_) if self.awaiting_reply => {
                    self.awaiting_reply = false;
                    if !self.we_closed {
                        self.deadline = None;
                    }
                }
                _ => {}
            }
            handler.on_event(&mut self.conn, self.slot, event, now);
        }
    }

    /// Writes what is pending, then decides whether the session is over.
    fn after_io(&mut self, now: Instant, close_grace: Duration) -> Option<End> {
        // The mode's frames go first: the connection's (a Close) come after them.
        match self.flush_raw() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(self.lost(&e.to_string())),
        }
        if let Err(e) = self.conn.flush(now) {
            return Some(self.failure(e));
        }
        if !self.is_open() || self.conn.wants_write() {
            return None;
        }
        if let Some(violation) = &self.violation {
            return Some(End::Dropped("protocol error", violation.clone()));
        }
        if self.conn.endpoint().is_closed() {
            // RFC 6455 §7.1.1: the server should close the TCP connection
            // first, so that TIME_WAIT stays on its side; wait for that a while.
            self.deadline.get_or_insert(now + close_grace);
        }
        None
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
        if self.conn.close(CloseCode::NORMAL, "", now).is_ok() {
            self.we_closed = true;
            self.deadline = Some(now + close_grace);
        }
    }

    /// The deadline passed: the handshake took too long, or the close did.
    pub fn expire(&mut self) -> End {
        if !self.connected {
            End::Failed("connect", "timed out".to_owned())
        } else if !self.is_open() {
            End::Failed("handshake", "no response in time".to_owned())
        } else if self.awaiting_reply && !self.we_closed {
            End::Failed("first reply", "no reply in time".to_owned())
        } else {
            self.lost("timed out")
        }
    }

    /// How the session ends on an error of the client.
    fn failure(&self, e: Error) -> End {
        match e {
            Error::Handshake(e) => End::Failed("handshake", e.to_string()),
            #[cfg(feature = "deflate")]
            Error::Deflate(e) => End::Failed("handshake", format!("permessage-deflate response: {e}")),
            Error::Io(e) => self.lost(&e.to_string()),
            e => self.lost(&e.to_string()),
        }
    }

    /// How the session ends when the transport goes away (EOF, error or timeout).
    fn lost(&self, why: &str) -> End {
        if !self.connected {
            End::Failed("connect", why.to_owned())
        } else if !self.is_open() {
            End::Failed("handshake", why.to_owned())
        } else if let Some(violation) = &self.violation {
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
