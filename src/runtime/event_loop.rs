//! One event loop: a thread with its own poll, listeners, sessions and timers.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::handler::{Context, Decision, Handler, Message, SessionId, Upgrade};
use super::http::{HttpRequest, HttpResponse};
use super::listener::Listener;
use super::metrics::{LoopCounters, Rejection};
use super::pubsub::{Delivery, Membership, Topics};
use super::session::{Phase, Session};
use super::stream::Stream;
use super::timer::TimerWheel;
use super::{ServerConfig, Shared};
use crate::proto::handshake::{write_error_response, Accept, Request, ServerHandshake, Status, StatusCode};
use crate::proto::{CloseCode, Connection, Event};

/// Bits of a token that hold the session's generation.
const GENERATION_BITS: u32 = 16;
/// The waker's token; listeners count down from just below it.
pub(crate) const WAKER: Token = Token(usize::MAX);
const FIRST_LISTENER: usize = usize::MAX - 1;
/// Whether a read that does not fill the buffer drained the socket: so with
/// epoll's edge-triggered readiness; elsewhere reads go on until `WouldBlock`.
const SHORT_READ_DRAINS: bool = cfg!(any(target_os = "linux", target_os = "android"));
/// Output the read turns of one iteration may queue before the sessions are
/// written, rather than at the end of the iteration. Message-sized buffers
/// of many sessions, freed all at once after the writes, let the allocator
/// hand that memory back to the kernel and fault it in again on the next
/// iteration (glibc trims a heap whose top grows past 128 KiB).
const FLUSH_AFTER: usize = 64 << 10;
/// Reads per session per wakeup before other sessions get their turn.
const READS_PER_TURN: usize = 16;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections over a limit that a loop answers (503) at once; past it they
/// are closed without an answer, so a flood costs no memory.
const MAX_REFUSED_AT_ONCE: usize = 1024;
/// The least time between two warnings about refused connections.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

fn session_token(key: usize, generation: u16) -> Token {
    Token((key << GENERATION_BITS) | usize::from(generation))
}

fn split_token(token: Token) -> (usize, u16) {
    (token.0 >> GENERATION_BITS, (token.0 & ((1 << GENERATION_BITS) - 1)) as u16)
}

/// An event loop, built on the caller's thread and run on its own.
pub(crate) struct EventLoop<H: Handler> {
    index: usize,
    poll: Poll,
    listeners: Vec<Listener>,
    sessions: Slab<Session<H::State>>,
    next_generation: u16,
    handler: H,
    wheel: TimerWheel,
    scratch: Vec<u8>,
    config: Arc<ServerConfig>,
    /// The protocol settings, shared by every connection of the loop.
    protocol: Arc<crate::proto::Config>,
    shared: Arc<Shared>,
    /// Publishes from other loops.
    inbox: std::sync::mpsc::Receiver<Delivery>,
    topics: Topics,
    /// Sessions given output from outside their own I/O (handler callbacks,
    /// publishes), written once at the end of the loop iteration.
    touched: Vec<usize>,
    /// Sessions that stopped reading before `WouldBlock` and must be read again.
    unfinished_reads: Vec<usize>,
    fired: Vec<usize>,
    /// Bytes the read turns queued since the last flush.
    queued_since_flush: usize,
    accept_paused_until: Option<Instant>,
    /// Set when shutdown began: the instant after which remaining sessions are dropped.
    drain_deadline: Option<Instant>,
    /// Sessions that upgraded and are not yet freed: what a shutdown waits for.
    upgraded: usize,
    /// Sessions refused for a connection limit, still being answered.
    refused_at_limit: usize,
    last_limit_warning: Option<Instant>,
}

impl<H: Handler> EventLoop<H> {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        listeners: Vec<Listener>,
        inbox: std::sync::mpsc::Receiver<Delivery>,
        handler: H,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let mut listeners = listeners;
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(&mut listener.socket, Token(FIRST_LISTENER - i), Interest::READABLE)?;
        }
        let now = Instant::now();
        Ok(Self {
            index,
            poll,
            listeners,
            sessions: Slab::new(),
            next_generation: 0,
            handler,
            wheel: TimerWheel::new(now),
            scratch: vec![0; config.read_buffer_size.max(4096)],
            protocol: Arc::new(config.protocol.clone()),
            config,
            shared,
            inbox,
            topics: Topics::default(),
            touched: Vec::new(),
            unfinished_reads: Vec::new(),
            fired: Vec::new(),
            queued_since_flush: 0,
            accept_paused_until: None,
            drain_deadline: None,
            upgraded: 0,
            refused_at_limit: 0,
            last_limit_warning: None,
        })
    }

    /// Runs until shutdown completes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    WAKER => self.drain_inbox(now),
                    Token(t) if t > FIRST_LISTENER - self.listeners.len() => {
                        self.accept(FIRST_LISTENER - t, now);
                    }
                    token => {
                        let (key, generation) = split_token(token);
                        // Stale events (for a session that ended) are ignored.
                        if self.sessions.get(key).is_none_or(|s| s.generation != generation) {
                            continue;
                        }
                        let queued_before = self.sessions.get(key).map_or(0, |s| s.out.len());
                        // Writable needs no action of its own: the flush writes.
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key, now, event.is_read_closed() || event.is_error());
                        }
                        self.touch(key);
                        let queued = self.sessions.get(key).map_or(0, |s| s.out.len());
                        self.queued_since_flush += queued.saturating_sub(queued_before);
                        if self.queued_since_flush >= FLUSH_AFTER {
                            self.flush_touched(now);
                        }
                    }
                }
            }
            self.retry_reads(now);
            self.expire_timers(now);
            self.flush_touched(now);
            self.resume_accepting(now);
            if self.shared.shutdown.load(Ordering::Acquire) && self.drain_deadline.is_none() {
                self.begin_shutdown(now);
            }
            if let Some(deadline) = self.drain_deadline {
                if self.upgraded == 0 || now >= deadline {
                    self.finish_shutdown(now);
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.unfinished_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.wheel.poll_timeout(now),
            self.accept_paused_until.map(|t| t.saturating_duration_since(now)),
            self.drain_deadline.map(|t| t.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn accept(&mut self, listener: usize, now: Instant) {
        // Accepting goes on while draining, so that health checks are
        // answered (503); upgrades are refused then.
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(l) = self.listeners.get(listener) else { return };
            match l.socket.accept() {
                Ok((socket, peer)) => {
                    self.counters().accepted.add(1);
                    // Linux copies TCP_NODELAY from the listener to what it accepts.
                    if !cfg!(any(target_os = "linux", target_os = "android")) {
                        if let Err(e) = socket.set_nodelay(true) {
                            log::debug!("{peer}: cannot set TCP_NODELAY: {e}");
                        }
                    }
                    if let Some(stream) = self.stream_for(listener, socket, peer) {
                        self.open_session(stream, peer, now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE) or buffers: the pending
                    // connection stays in the backlog and the listener stays
                    // readable, so retrying at once would spin. Pause instead.
                    log::warn!("accept failed, pausing for {ACCEPT_BACKOFF:?}: {e}");
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            // Edge-triggered: connections that waited in the backlog raise no new event.
            for i in 0..self.listeners.len() {
                self.accept(i, now);
            }
        }
    }

    /// The accepted socket as a session's stream: TLS on a `wss://` listener.
    fn stream_for(&self, listener: usize, socket: mio::net::TcpStream, peer: std::net::SocketAddr) -> Option<Stream> {
        #[cfg(feature = "tls")]
        if let Some(acceptor) = self.listeners.get(listener).and_then(|l| l.tls.as_ref()) {
            return match acceptor.accept() {
                Ok(tls) => Some(Stream::tls(socket, tls)),
                Err(e) => {
                    log::warn!("{peer}: cannot start TLS: {e}");
                    None
                }
            };
        }
        let _ = (listener, peer);
        Some(Stream::plain(socket))
    }

    fn open_session(&mut self, mut stream: Stream, peer: std::net::SocketAddr, now: Instant) {
        let admission = self.admit(peer.ip());
        if let Err(why) = admission {
            self.warn_refused(peer, why, now);
            if self.refused_at_limit >= MAX_REFUSED_AT_ONCE {
                // Dropping the socket closes it unanswered.
                self.shared.counters.reject(why);
                return;
            }
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll.registry().register(&mut stream.socket, session_token(key, generation), Interest::READABLE)
        {
            log::warn!("{peer}: cannot register connection: {e}");
            return;
        }
        let handshake = ServerHandshake::new(self.config.handshake_limits);
        let deadline = now + self.config.handshake_timeout;
        let session = entry.insert(Session::new(
            stream,
            peer,
            generation,
            Phase::Handshake { handshake: Box::new(handshake), deadline },
        ));
        session.admitted = admission.is_ok();
        self.counters().connections.set(self.sessions.len() as u64);
        if let Err(why) = admission {
            // RFC 9110 §15.6.4: 503, the server cannot take the connection now.
            self.refused_at_limit += 1;
            self.reject(key, why, StatusCode::SERVICE_UNAVAILABLE, "too many connections", now);
            self.settle(key, now);
            return;
        }
        log::debug!("{peer}: connected");
        // Data may have arrived with the connection. epoll reports what is
        // already there when a socket is added; elsewhere, read it now, as
        // edge-triggered readiness might not report it again.
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            self.read(key, now, true);
        }
        self.touch(key);
    }

    fn counters(&self) -> &LoopCounters {
        &self.shared.counters.loops[self.index]
    }

    /// Counts a connection against the limits, or says which one it is over.
    fn admit(&self, ip: std::net::IpAddr) -> Result<(), Rejection> {
        let counters = &self.shared.counters;
        if counters.admitted.fetch_add(1, Ordering::AcqRel) >= self.config.max_connections {
            counters.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejection::MaxConnections);
        }
        if let Some(limit) = self.config.max_connections_per_ip {
            let mut per_ip = counters.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = per_ip.entry(ip).or_default();
            if *count >= limit {
                drop(per_ip);
                counters.admitted.fetch_sub(1, Ordering::AcqRel);
                return Err(Rejection::MaxConnectionsPerIp);
            }
            *count += 1;
        }
        Ok(())
    }

    /// Undoes [`admit`](Self::admit) for a connection that ended.
    fn release(&self, ip: std::net::IpAddr) {
        let counters = &self.shared.counters;
        counters.admitted.fetch_sub(1, Ordering::AcqRel);
        if self.config.max_connections_per_ip.is_some() {
            let mut per_ip = counters.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }

    /// Logs a refused connection: at debug each time, as a warning at most every few seconds.
    fn warn_refused(&mut self, peer: std::net::SocketAddr, why: Rejection, now: Instant) {
        let limit = match why {
            Rejection::MaxConnectionsPerIp => {
                format!("max_connections_per_ip ({})", self.config.max_connections_per_ip.unwrap_or_default())
            }
            _ => format!("max_connections ({})", self.config.max_connections),
        };
        if self.last_limit_warning.is_none_or(|t| now >= t + LIMIT_WARNING_INTERVAL) {
            self.last_limit_warning = Some(now);
            log::warn!("{peer}: connection refused with 503: {limit} reached (further refusals logged at debug)");
        } else {
            log::debug!("{peer}: connection refused with 503: {limit} reached");
        }
    }

    /// Refuses a request before any session opened: counted, answered with `status`.
    fn reject(&mut self, key: usize, why: Rejection, status: StatusCode, reason: &str, now: Instant) {
        self.shared.counters.reject(why);
        let mut response = Vec::new();
        write_error_response(status, reason, &mut response);
        self.refuse(key, response, now);
    }

    /// Reads until the socket would block, the output backs up, or this session had its turn.
    ///
    /// `until_blocked: false` lets a short read end it (Linux): edge-triggered
    /// epoll reports bytes that arrive after this wakeup with a new event, so
    /// a read that did not fill the buffer took all there was, and the read
    /// that would only say `WouldBlock` is saved. A peer's FIN that came with
    /// the data is reported in this event (read-closed), and the caller then
    /// asks to read until blocked, so the EOF is seen.
    fn read(&mut self, key: usize, now: Instant, until_blocked: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(session) = self.sessions.get_mut(key) else { return };
            if !session.wants_read() {
                return;
            }
            let short_read_drains = SHORT_READ_DRAINS && session.stream.short_read_drains();
            match session.stream.read(&mut self.scratch) {
                Ok(0) => {
                    if !matches!(session.phase, Phase::Lingering { .. }) {
                        log::debug!("{}: connection closed by peer", session.peer);
                    }
                    self.end_session(key, now);
                    return;
                }
                Ok(n) => {
                    self.counters().bytes_in.add(n as u64);
                    self.received(key, n, now);
                    // Stop as soon as the output backs up, not at the end of the turn.
                    if let Some(session) = self.sessions.get_mut(key) {
                        session.read_paused = session.out.len() > self.config.max_out_queue;
                    }
                    if short_read_drains && !until_blocked && n < self.scratch.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A TLS failure (scanners, plaintext clients on a wss:// port)
                    // is logged as such, at debug: not worth a warning each.
                    #[cfg(feature = "tls")]
                    let tls = e.get_ref().is_some_and(|inner| inner.is::<crate::tls_io::TlsFailure>());
                    #[cfg(not(feature = "tls"))]
                    let tls = false;
                    if tls && matches!(session.phase, Phase::Handshake { .. }) {
                        self.shared.counters.reject(Rejection::Tls);
                    }
                    let what = if tls { "closing" } else { "read failed" };
                    log::debug!("{}: {what}: {e}", session.peer);
                    self.end_session(key, now);
                    return;
                }
            }
        }
        self.unfinished_reads.push(key);
    }

    fn retry_reads(&mut self, now: Instant) {
        let keys = std::mem::take(&mut self.unfinished_reads);
        for key in keys {
            self.read(key, now, true);
            self.touch(key);
        }
    }

    /// Handles `n` bytes just read into the scratch buffer.
    fn received(&mut self, key: usize, n: usize, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        match &mut session.phase {
            Phase::Handshake { handshake, .. } => match handshake.feed(&self.scratch[..n]) {
                Ok(Status::Partial) => {}
                Ok(Status::Complete { head, rest }) if head.is_upgrade() => self.upgrade(key, &head, rest, now),
                Ok(Status::Complete { head, rest }) => self.http(key, head, rest, now),
                Err(refusal) => {
                    log::debug!("{}: bad request: {refusal}", session.peer);
                    let mut response = Vec::new();
                    refusal.write_response(&mut response);
                    self.shared.counters.reject(Rejection::BadRequest);
                    self.refuse(key, response, now);
                }
            },
            Phase::Open(conn) => {
                if let Err(violation) = conn.handle_read(&mut self.scratch[..n], now) {
                    log::warn!("{}: closing with {}: {violation}", session.peer, violation.close_code());
                    session.set_close_status(violation.close_code(), &violation.to_string());
                }
                self.deliver_events(key, now);
            }
            Phase::HttpBody { body, length, .. } => {
                let take = (*length - body.len()).min(n);
                body.extend_from_slice(&self.scratch[..take]);
                if body.len() == *length {
                    self.answer_http(key, now);
                }
            }
            // Nothing more is read from a refused request or a finished session.
            Phase::Refused { .. } | Phase::Lingering { .. } => {}
        }
    }

    fn upgrade(&mut self, key: usize, request: &Request, mut rest: Vec<u8>, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        let peer = std::net::SocketAddr::from(session.peer);
        let upgrade = match request.validate_upgrade() {
            Ok(upgrade) => upgrade,
            Err(refusal) => {
                log::debug!("{peer}: not an upgrade: {refusal}");
                let mut response = Vec::new();
                refusal.write_response(&mut response);
                self.shared.counters.reject(Rejection::BadRequest);
                self.refuse(key, response, now);
                return;
            }
        };
        if self.drain_deadline.is_some() {
            log::debug!("{peer}: upgrade refused with 503: shutting down");
            self.reject(key, Rejection::Draining, StatusCode::SERVICE_UNAVAILABLE, "shutting down", now);
            return;
        }
        if !self.config.allowed_origins.allows(request.origin()) {
            log::info!("{peer}: upgrade refused with 403: origin {:?} not allowed", request.origin().unwrap_or(""));
            self.reject(key, Rejection::Origin, StatusCode::FORBIDDEN, "origin not allowed", now);
            return;
        }
        let decision = self.handler.upgrade(&Upgrade { request, upgrade: &upgrade, peer });
        let (protocol, state) = match decision {
            Decision::Accept { protocol, state } => (protocol, state),
            Decision::Reject { status, reason } => {
                log::debug!("{peer}: upgrade rejected with {}: {reason}", status.as_u16());
                self.reject(key, Rejection::Handler, status, &reason, now);
                return;
            }
        };
        // The handler's choice, else the first of the server's subprotocols the client offered.
        let protocol = protocol
            .or_else(|| self.config.subprotocols.iter().find(|p| upgrade.protocols().iter().any(|o| o == *p)).cloned());
        let mut accept = Accept::new();
        if let Some(protocol) = protocol {
            accept = accept.protocol(protocol);
        }
        // RFC 7692 §5: take the first acceptable permessage-deflate offer, if any.
        #[cfg(feature = "deflate")]
        let deflate = crate::proto::deflate::negotiate_server(upgrade.extensions(), &self.config.deflate);
        #[cfg(feature = "deflate")]
        if let Some((_, response)) = &deflate {
            accept = accept.extensions(response.clone());
        }
        let mut response = Vec::new();
        if let Err(e) = upgrade.accept(&accept, &mut response) {
            log::warn!("{peer}: handler's answer to the upgrade is invalid: {e}");
            response.clear();
            write_error_response(StatusCode::INTERNAL_SERVER_ERROR, "server error", &mut response);
            self.refuse(key, response, now);
            return;
        }
        let Some(session) = self.sessions.get_mut(key) else { return };
        session.out.push(response);
        session.state = Some(state);
        let conn = Connection::server(self.protocol.clone(), now);
        #[cfg(feature = "deflate")]
        let conn = match &deflate {
            Some((params, _)) => conn.with_deflate(params, &self.config.deflate),
            None => conn,
        };
        session.phase = Phase::Open(conn);
        session.upgraded = true;
        self.upgraded += 1;
        let id = SessionId { key, generation: session.generation };
        let counters = &self.shared.counters.loops[self.index];
        counters.upgrades.add(1);
        counters.sessions.add(1);
        log::debug!("{peer}: upgraded ({})", request.path());
        self.with_context(now, Some(id), |handler, ctx| handler.on_open(ctx, id));
        // Frames that came right behind the request.
        if !rest.is_empty() {
            let Some(Session { phase: Phase::Open(conn), peer, close_status, .. }) = self.sessions.get_mut(key) else {
                return;
            };
            if let Err(violation) = conn.handle_read(&mut rest, now) {
                log::warn!("{peer}: closing with {}: {violation}", violation.close_code());
                if close_status.is_none() {
                    *close_status = Some(Box::new(super::session::CloseStatus {
                        code: violation.close_code(),
                        reason: violation.to_string(),
                    }));
                }
            }
            self.deliver_events(key, now);
        }
    }

    /// A plain HTTP request: read its body (framed by `Content-Length`, within
    /// `max_http_body`), then hand it to the handler.
    fn http(&mut self, key: usize, request: Request, mut rest: Vec<u8>, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        let deadline = session.deadline().unwrap_or(now);
        // RFC 9112 §6.3: without Transfer-Encoding, Content-Length frames the body.
        let refusal = if request.header("Transfer-Encoding").is_some() {
            Some((StatusCode::LENGTH_REQUIRED, "send the body with a Content-Length"))
        } else {
            None
        };
        let length = match request.headers().get_str("Content-Length").map(str::trim) {
            None => Ok(0),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v.parse::<usize>().map_err(|_| ()),
            Some(_) => Err(()),
        };
        let refusal = refusal.or(match length {
            Err(()) => Some((StatusCode::BAD_REQUEST, "invalid Content-Length")),
            Ok(n) if n > self.config.max_http_body => Some((StatusCode::CONTENT_TOO_LARGE, "request body too large")),
            Ok(_) => None,
        });
        if let Some((status, reason)) = refusal {
            log::debug!("{}: {} {}: {reason}", session.peer, request.method(), request.path());
            self.reject(key, Rejection::BadRequest, status, reason, now);
            return;
        }
        let length = length.unwrap_or(0);
        rest.truncate(length);
        session.phase = Phase::HttpBody { request: Box::new(request), body: rest, length, deadline };
        if let Some(Phase::HttpBody { body, length, .. }) = self.sessions.get(key).map(|s| &s.phase) {
            if body.len() == *length {
                self.answer_http(key, now);
            }
        }
    }

    fn answer_http(&mut self, key: usize, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        let Phase::HttpBody { request, body, .. } =
            std::mem::replace(&mut session.phase, Phase::Refused { deadline: now })
        else {
            return;
        };
        let peer = std::net::SocketAddr::from(session.peer);
        let mut response = None;
        self.with_context(now, None, |h, ctx| {
            response = Some(h.on_http(ctx, &HttpRequest { request: &request, body: &body, peer }));
        });
        log::debug!("{peer}: {} {}", request.method(), request.path());
        self.counters().http_requests.add(1);
        self.refuse(key, response.map(HttpResponse::into_bytes).unwrap_or_default(), now);
    }

    fn refuse(&mut self, key: usize, response: Vec<u8>, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        session.out.push(response);
        session.phase = Phase::Refused { deadline: now + self.config.linger_timeout };
    }

    /// Hands the connection's events to the handler.
    fn deliver_events(&mut self, key: usize, now: Instant) {
        loop {
            let Some(session) = self.sessions.get_mut(key) else { return };
            let id = SessionId { key, generation: session.generation };
            let Phase::Open(conn) = &mut session.phase else { return };
            let Some(event) = conn.poll_event() else { break };
            if matches!(event, Event::Text(_) | Event::Binary(_)) {
                self.shared.counters.loops[self.index].messages_in.add(1);
            }
            match event {
                Event::Text(text) => {
                    self.with_context(now, Some(id), |h, ctx| h.on_message(ctx, id, Message::Text(&text)));
                }
                Event::Binary(data) => {
                    self.with_context(now, Some(id), |h, ctx| h.on_message(ctx, id, Message::Binary(&data)));
                }
                Event::Ping(_) | Event::Pong(_) => {}
                Event::Close(frame) => match frame {
                    Some(frame) => session.set_close_status(frame.code, &frame.reason),
                    None => session.set_close_status(CloseCode::NO_STATUS, ""),
                },
            }
        }
        if let Some(session) = self.sessions.get_mut(key) {
            session.take_output();
        }
    }

    /// Runs a handler callback; `current` is the session whose event it handles.
    fn with_context(
        &mut self,
        now: Instant,
        current: Option<SessionId>,
        f: impl FnOnce(&mut H, &mut Context<'_, H::State>),
    ) {
        let mut ctx = Context {
            sessions: &mut self.sessions,
            touched: &mut self.touched,
            max_out_queue: self.config.max_out_queue,
            current,
            now,
            loop_index: self.index,
            topics: &mut self.topics,
            bus: &self.shared.bus,
            slow_consumer: self.config.slow_consumer,
            shared: &self.shared,
        };
        f(&mut self.handler, &mut ctx);
    }

    /// Marks a session for [`flush_touched`](Self::flush_touched) at the end of the iteration.
    fn touch(&mut self, key: usize) {
        if let Some(session) = self.sessions.get_mut(key) {
            if !session.flush_pending {
                session.flush_pending = true;
                self.touched.push(key);
            }
        }
    }

    /// Writes and settles every session that had I/O, handler output or
    /// publishes during the iteration: one write per session per iteration
    /// (or per [`FLUSH_AFTER`] bytes queued), however many messages it was given.
    fn flush_touched(&mut self, now: Instant) {
        self.queued_since_flush = 0;
        while let Some(key) = self.touched.pop() {
            if let Some(session) = self.sessions.get_mut(key) {
                session.flush_pending = false;
            }
            self.settle(key, now);
        }
    }

    /// Delivers what other loops published to this loop's sessions.
    fn drain_inbox(&mut self, now: Instant) {
        self.shared.bus.clear_woken(self.index);
        while let Ok(delivery) = self.inbox.try_recv() {
            let (targets, frame): (Vec<SessionId>, _) = match delivery {
                Delivery::Topic { topic, frame } => (self.topics.subscribers(&topic).collect(), frame),
                Delivery::All { frame } => (
                    self.sessions
                        .iter()
                        .filter(|(_, s)| s.is_open())
                        .map(|(key, s)| SessionId { key, generation: s.generation })
                        .collect(),
                    frame,
                ),
            };
            let stats = &self.shared.bus.stats;
            let mut delivered = 0;
            for id in targets {
                let Some(session) = self.sessions.get_mut(id.key).filter(|s| s.generation == id.generation) else {
                    continue;
                };
                delivered +=
                    session.deliver_shared(&frame, self.config.max_out_queue, self.config.slow_consumer, now, stats)
                        as u64;
                if !session.flush_pending {
                    session.flush_pending = true;
                    self.touched.push(id.key);
                }
            }
            self.shared.counters.loops[self.index].messages_out.add(delivered);
        }
    }

    fn write(&mut self, key: usize, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        session.take_output();
        if !session.has_unwritten() {
            return;
        }
        match session.stream.write_from(&mut session.out) {
            Ok(n) => self.shared.counters.loops[self.index].bytes_out.add(n as u64),
            Err(e) => {
                log::debug!("{}: write failed: {e}", session.peer);
                self.end_session(key, now);
            }
        }
    }

    /// After any activity: close if finished, otherwise update interest and timers.
    fn settle(&mut self, key: usize, now: Instant) {
        self.write(key, now);
        if self.sessions.get(key).is_some_and(Session::is_finished) {
            self.linger(key, now);
        }
        let Some(session) = self.sessions.get_mut(key) else { return };
        let was_paused = session.read_paused;
        session.read_paused = session.out.len() > self.config.max_out_queue;
        if was_paused && !session.read_paused {
            // Readiness was consumed while paused; look again.
            self.unfinished_reads.push(key);
        }
        let mut interest = None;
        if session.wants_read() {
            interest = Some(Interest::READABLE);
        }
        if session.has_unwritten() {
            interest = Some(interest.map_or(Interest::WRITABLE, |i| i | Interest::WRITABLE));
        }
        let interest = interest.unwrap_or(Interest::READABLE);
        if interest != session.interest {
            let token = session_token(key, session.generation);
            if let Err(e) = self.poll.registry().reregister(&mut session.stream.socket, token, interest) {
                log::debug!("{}: reregister failed: {e}", session.peer);
            }
            session.interest = interest;
        }
        if let Some(deadline) = session.deadline() {
            if session.armed.is_none_or(|armed| deadline < armed) {
                session.armed = Some(deadline);
                self.wheel.insert(session_token(key, session.generation).0, deadline);
            }
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.expire(now, &mut fired);
        for token in fired.drain(..) {
            let (key, generation) = split_token(Token(token));
            let Some(session) = self.sessions.get_mut(key).filter(|s| s.generation == generation) else {
                continue;
            };
            session.armed = None;
            let peer = session.peer;
            if session.deadline().is_some_and(|d| d <= now) {
                match &mut session.phase {
                    Phase::Handshake { .. } | Phase::HttpBody { .. } => {
                        log::debug!("{}: request timed out", session.peer);
                        self.shared.counters.reject(Rejection::Timeout);
                        self.end_session(key, now);
                        continue;
                    }
                    Phase::Refused { .. } | Phase::Lingering { .. } => {
                        self.end_session(key, now);
                        continue;
                    }
                    Phase::Open(conn) => {
                        let was_closed = conn.is_closed();
                        conn.handle_timeout(now);
                        if conn.timed_out() {
                            log::debug!("{}: no answer to keepalive ping", session.peer);
                        }
                        if !was_closed && conn.is_closed() {
                            // Given up by a timer (no Close answer, no Pong): a peer
                            // that still has not taken our output is not reading.
                            self.write(key, now);
                            if self.sessions.get(key).is_some_and(Session::has_unwritten) {
                                log::debug!("{}: peer not reading; dropping the connection", peer);
                                self.end_session(key, now);
                                continue;
                            }
                        }
                    }
                }
            }
            self.settle(key, now);
        }
        self.fired = fired;
    }

    /// The protocol is over and everything is written: shut our side down and
    /// read until the peer's EOF (or the linger deadline).
    ///
    /// After a complete closing handshake the peer sends nothing more, so the
    /// socket is closed at once (RFC 6455 §7.1.1: the server closes the TCP
    /// connection first): no read of its EOF, no linger timer.
    fn linger(&mut self, key: usize, now: Instant) {
        let clean = matches!(self.sessions.get(key).map(|s| &s.phase), Some(Phase::Open(c)) if c.closed_cleanly());
        self.notify_closed(key, now);
        if clean {
            if let Some(session) = self.sessions.get_mut(key) {
                session.stream.finish();
            }
            self.end_session(key, now);
            return;
        }
        let Some(session) = self.sessions.get_mut(key) else { return };
        if session.stream.shutdown_write().is_err() {
            self.end_session(key, now);
            return;
        }
        session.phase = Phase::Lingering { deadline: now + self.config.linger_timeout };
    }

    /// Tells the handler an opened session ended, once; its state goes with it.
    fn notify_closed(&mut self, key: usize, now: Instant) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        if session.state.is_none() {
            return;
        }
        let status = session.close_status.take();
        let (code, reason) = status.map_or((CloseCode::ABNORMAL, String::new()), |s| (s.code, s.reason));
        let id = SessionId { key, generation: session.generation };
        log::debug!("{}: closed ({code})", session.peer);
        let counters = &self.shared.counters.loops[self.index];
        counters.sessions.sub(1);
        counters.count_close(code);
        // Sends to the session now fail, but its state is still reachable from on_close.
        if let Phase::Open(_) = session.phase {
            session.phase = Phase::Lingering { deadline: now };
        }
        self.with_context(now, None, |h, ctx| h.on_close(ctx, id, code, &reason));
        if let Some(session) = self.sessions.get_mut(key) {
            session.state = None;
        }
        // A closing session leaves all its topics.
        for (topic, last) in self.topics.remove_session(id) {
            self.shared.bus.count_subscriber(self.index, &topic, Membership::Left { last });
        }
        self.counters().subscriptions.set(self.topics.counts().1 as u64);
    }

    /// Frees a session at once, telling the handler if it was open.
    fn end_session(&mut self, key: usize, now: Instant) {
        self.notify_closed(key, now);
        if let Some(mut session) = self.sessions.try_remove(key) {
            // Closing the descriptor (dropping the socket) removes it from
            // epoll or kqueue; elsewhere the poll is told explicitly.
            if !cfg!(unix) {
                let _ = self.poll.registry().deregister(&mut session.stream.socket);
            }
            if session.admitted {
                self.release(session.peer.ip());
            } else {
                self.refused_at_limit -= 1;
            }
            if session.upgraded {
                self.upgraded -= 1;
            }
            self.counters().connections.set(self.sessions.len() as u64);
        }
    }

    /// Starts draining: what was published before goes out, then every open
    /// session gets Close 1001; the loop ends once they have closed or at the
    /// drain deadline. Listeners stay open so health checks see 503; new
    /// upgrades are refused.
    fn begin_shutdown(&mut self, now: Instant) {
        log::debug!("loop {}: draining {} sessions", self.index, self.upgraded);
        self.drain_inbox(now);
        self.drain_deadline = Some(now + self.config.drain_timeout);
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(session) = self.sessions.get_mut(key) else { continue };
            if let Phase::Open(conn) = &mut session.phase {
                // Queued after the output already waiting, so that goes first.
                let _ = conn.send_close(CloseCode::GOING_AWAY, "server shutting down", now);
            }
            self.settle(key, now);
        }
    }

    fn finish_shutdown(&mut self, now: Instant) {
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.end_session(key, now);
        }
        log::debug!("loop {}: stopped", self.index);
    }
}
