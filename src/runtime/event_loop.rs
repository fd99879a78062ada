//! One event loop: a thread with its own poll, listeners, sessions and timers.
//!
//! The loop is the mio driver of the session machines: it polls, accepts
//! ([`admission`](super::admission)), reads into its one buffer, feeds the
//! session, hands what the session asks of the application to the handler
//! ([`dispatch`](super::dispatch)), writes what the session holds, and arms
//! the deadline it names. What a session does with bytes and time is
//! [`crate::session`]'s.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::handler::Handler;
use super::handler::Scratch;
use super::listener::Listener;
use super::metrics::{LoopCounters, Refusal};
use super::pubsub::{Publication, Topics};
use super::slot::Slot;
use super::timer::TimerWheel;
use super::{ServerConfig, Shared};
use crate::session::{Expiry, Pool, Settings};

/// Bits of a token that hold the session's generation.
const GENERATION_BITS: u32 = 16;
/// The waker's token; listeners count down from just below it.
pub(crate) const WAKER: Token = Token(usize::MAX);
pub(super) const FIRST_LISTENER: usize = usize::MAX - 1;
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

pub(super) fn session_token(key: usize, generation: u16) -> Token {
    Token((key << GENERATION_BITS) | usize::from(generation))
}

fn split_token(token: Token) -> (usize, u16) {
    (token.0 >> GENERATION_BITS, (token.0 & ((1 << GENERATION_BITS) - 1)) as u16)
}

/// An event loop, built on the caller's thread and run on its own.
pub(crate) struct EventLoop<H: Handler> {
    pub(super) index: usize,
    pub(super) poll: Poll,
    pub(super) listeners: Vec<Listener>,
    pub(super) sessions: Slab<Slot<H::State>>,
    pub(super) next_generation: u16,
    pub(super) handler: H,
    wheel: TimerWheel,
    /// The one read buffer: messages that come whole in a read are handed to the handler from here.
    read_buf: Vec<u8>,
    /// Working memory the sessions lend each other.
    pub(super) pool: Pool,
    /// Buffers for publishes, kept between them.
    pub(super) scratch: Scratch,
    pub(super) config: Arc<ServerConfig>,
    /// What the session machines share: limits, deadlines, offers.
    pub(super) settings: Settings,
    pub(super) shared: Arc<Shared>,
    /// Publishes from other loops.
    pub(super) inbox: std::sync::mpsc::Receiver<Publication>,
    pub(super) topics: Topics,
    /// Sessions given output from outside their own I/O (handler callbacks,
    /// publishes), written once at the end of the loop iteration.
    pub(super) to_flush: Vec<usize>,
    /// Sessions that stopped reading before `WouldBlock` and must be read again.
    unfinished_reads: Vec<usize>,
    fired: Vec<usize>,
    /// Bytes the read turns queued since the last flush.
    queued_since_flush: usize,
    pub(super) accept_paused_until: Option<Instant>,
    /// Set when shutdown began: the instant after which remaining sessions are dropped.
    pub(super) drain_deadline: Option<Instant>,
    /// Sessions that upgraded and are not yet freed: what a shutdown waits for.
    pub(super) upgraded: usize,
    /// Sessions refused for a connection limit, still being answered.
    pub(super) refused_at_limit: usize,
    pub(super) last_limit_warning: Option<Instant>,
    /// When a failed accept was last logged as a warning.
    pub(super) last_accept_warning: Option<Instant>,
}

impl<H: Handler> EventLoop<H> {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        listeners: Vec<Listener>,
        inbox: std::sync::mpsc::Receiver<Publication>,
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
            read_buf: vec![0; config.read_buffer_size.max(4096)],
            pool: Pool::default(),
            scratch: Scratch::default(),
            settings: config.session_settings(),
            config,
            shared,
            inbox,
            topics: Topics::default(),
            to_flush: Vec::new(),
            unfinished_reads: Vec::new(),
            fired: Vec::new(),
            queued_since_flush: 0,
            accept_paused_until: None,
            drain_deadline: None,
            upgraded: 0,
            refused_at_limit: 0,
            last_limit_warning: None,
            last_accept_warning: None,
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
                        let queued_before = self.sessions.get(key).map_or(0, |s| s.session.queued());
                        // Writable needs no action of its own: the flush writes.
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key, now, event.is_read_closed() || event.is_error());
                        }
                        self.mark_for_flush(key);
                        let queued = self.sessions.get(key).map_or(0, |s| s.session.queued());
                        self.queued_since_flush += queued.saturating_sub(queued_before);
                        if self.queued_since_flush >= FLUSH_AFTER {
                            self.flush_marked(now);
                        }
                    }
                }
            }
            self.retry_reads(now);
            self.expire_timers(now);
            self.flush_marked(now);
            self.resume_accepting(now);
            self.counters().timers.set(self.wheel.len() as u64);
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

    pub(super) fn counters(&self) -> &LoopCounters {
        &self.shared.counters.loops[self.index]
    }

    /// Reads until the socket would block, the output backs up, or this session had its turn.
    ///
    /// `until_blocked: false` lets a short read end it (Linux): edge-triggered
    /// epoll reports bytes that arrive after this wakeup with a new event, so
    /// a read that did not fill the buffer took all there was, and the read
    /// that would only say `WouldBlock` is saved. A peer's FIN that came with
    /// the data is reported in this event (read-closed), and the caller then
    /// asks to read until blocked, so the EOF is seen.
    pub(super) fn read(&mut self, key: usize, now: Instant, until_blocked: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(slot) = self.sessions.get_mut(key) else { return };
            if !slot.session.wants_read() {
                return;
            }
            let short_read_drains = SHORT_READ_DRAINS && slot.stream.short_read_drains();
            // Taken out while the handler runs, which the messages it lends outlive.
            let mut buf = std::mem::take(&mut self.read_buf);
            let read = slot.stream.read(&mut buf);
            if let Ok(n @ 1..) = read {
                self.counters().bytes_in.add(n as u64);
                if let Some(slot) = self.sessions.get_mut(key) {
                    slot.session.lend(&mut self.pool);
                    let input = slot.session.handle_read(&mut buf[..n], &self.settings, now);
                    self.dispatch(key, input, &buf[..n], now);
                }
            }
            let full = matches!(read, Ok(n) if n == buf.len());
            self.read_buf = buf;
            match read {
                Ok(0) => {
                    let Some(slot) = self.sessions.get(key) else { return };
                    if !slot.session.is_lingering() {
                        log::debug!("{}: connection closed by peer", slot.session.peer());
                    }
                    self.end_session(key, now);
                    return;
                }
                Ok(_) => {
                    // Stop as soon as the output backs up, not at the end of the turn.
                    if let Some(slot) = self.sessions.get_mut(key) {
                        slot.session.check_backpressure(&self.settings);
                    }
                    if short_read_drains && !until_blocked && !full {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let Some(slot) = self.sessions.get(key) else { return };
                    // A TLS failure (scanners, plaintext clients on a wss:// port)
                    // is logged as such, at debug: not worth a warning each.
                    #[cfg(feature = "tls")]
                    let tls = e.get_ref().is_some_and(|inner| inner.is::<crate::tls_io::TlsFailure>());
                    #[cfg(not(feature = "tls"))]
                    let tls = false;
                    if tls && slot.session.is_reading_request() {
                        self.shared.counters.count_refusal(Refusal::Tls);
                    }
                    let what = if tls { "closing" } else { "read failed" };
                    log::debug!("{}: {what}: {e}", slot.session.peer());
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
            self.mark_for_flush(key);
        }
    }

    /// Marks a session for [`flush_marked`](Self::flush_marked) at the end of the iteration.
    pub(super) fn mark_for_flush(&mut self, key: usize) {
        if let Some(slot) = self.sessions.get_mut(key) {
            if !slot.flush_pending {
                slot.flush_pending = true;
                self.to_flush.push(key);
            }
        }
    }

    /// Syncs every session that had I/O, handler output or
    /// publishes during the iteration: one write per session per iteration
    /// (or per [`FLUSH_AFTER`] bytes queued), however many messages it was given.
    fn flush_marked(&mut self, now: Instant) {
        self.queued_since_flush = 0;
        while let Some(key) = self.to_flush.pop() {
            if let Some(slot) = self.sessions.get_mut(key) {
                slot.flush_pending = false;
            }
            self.sync(key, now);
        }
        // Shared frames every queue has written go back to the pool.
        self.pool.frames.reclaim();
    }

    pub(super) fn write(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.sessions.get_mut(key) else { return };
        let out = slot.session.output();
        if out.is_empty() && !slot.stream.wants_write() {
            return;
        }
        match slot.stream.write_from(out) {
            Ok(n) => self.shared.counters.loops[self.index].bytes_out.add(n as u64),
            Err(e) => {
                log::debug!("{}: write failed: {e}", slot.session.peer());
                self.end_session(key, now);
            }
        }
    }

    /// After any activity: end if finished, otherwise update interest and timers.
    pub(super) fn sync(&mut self, key: usize, now: Instant) {
        self.write(key, now);
        if self.sessions.get(key).is_some_and(Slot::is_finished) {
            self.finish(key, now);
        }
        let Some(slot) = self.sessions.get_mut(key) else { return };
        slot.session.give_back(&mut self.pool);
        if slot.session.check_backpressure(&self.settings).1 {
            // Readiness was consumed while paused; look again.
            self.unfinished_reads.push(key);
        }
        let mut interest = None;
        if slot.session.wants_read() {
            interest = Some(Interest::READABLE);
        }
        if slot.has_unwritten() {
            interest = Some(interest.map_or(Interest::WRITABLE, |i| i | Interest::WRITABLE));
        }
        let interest = interest.unwrap_or(Interest::READABLE);
        if interest != slot.interest {
            let token = session_token(key, slot.generation);
            if let Err(e) = self.poll.registry().reregister(&mut slot.stream.socket, token, interest) {
                log::debug!("{}: reregister failed: {e}", slot.session.peer());
            }
            slot.interest = interest;
        }
        if let Some(deadline) = slot.session.poll_timeout() {
            if slot.armed.is_none_or(|armed| self.wheel.tick_of(deadline) < armed) {
                slot.armed = Some(self.wheel.insert(session_token(key, slot.generation).0, deadline));
            }
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.expire(now, &mut fired);
        for token in fired.drain(..) {
            let (key, generation) = split_token(Token(token));
            let Some(slot) = self.sessions.get_mut(key).filter(|s| s.generation == generation) else {
                continue;
            };
            // An entry left behind when the deadline moved earlier: the
            // session's armed one is still to come, and stays its only one.
            if slot.armed.is_some_and(|armed| self.wheel.is_pending(armed)) {
                continue;
            }
            slot.armed = None;
            match slot.session.handle_timeout(now) {
                Expiry::Pending | Expiry::Ran => {}
                Expiry::RequestTimedOut => {
                    log::debug!("{}: request timed out", slot.session.peer());
                    self.shared.counters.count_refusal(Refusal::Timeout);
                    self.end_session(key, now);
                    continue;
                }
                Expiry::Over => {
                    self.end_session(key, now);
                    continue;
                }
                Expiry::GaveUp => {
                    // Given up by a timer (no Close answer, no Pong): a peer
                    // that still has not taken our output is not reading.
                    self.write(key, now);
                    if let Some(slot) = self.sessions.get(key).filter(|s| s.has_unwritten()) {
                        log::debug!("{}: peer not reading; dropping the connection", slot.session.peer());
                        self.end_session(key, now);
                        continue;
                    }
                }
            }
            self.sync(key, now);
        }
        self.fired = fired;
        if self.wheel.wants_sweep(self.sessions.len()) {
            let sessions = &self.sessions;
            self.wheel.sweep(|token| {
                let (key, generation) = split_token(Token(token));
                sessions.get(key).is_some_and(|slot| slot.generation == generation)
            });
        }
    }

    /// Everything is said and written: tell the application, then shut our
    /// side down and read until the peer's EOF (or the linger deadline).
    ///
    /// After a complete closing handshake the peer sends nothing more, so the
    /// socket is closed at once (RFC 6455 §7.1.1: the server closes the TCP
    /// connection first): no read of its EOF, no linger timer.
    fn finish(&mut self, key: usize, now: Instant) {
        let clean = self.sessions.get(key).is_some_and(|s| s.session.closed_cleanly());
        self.notify_closed(key, now);
        let Some(slot) = self.sessions.get_mut(key) else { return };
        if clean {
            slot.stream.finish();
            self.end_session(key, now);
            return;
        }
        if slot.stream.shutdown_write().is_err() {
            self.end_session(key, now);
            return;
        }
        slot.session.linger(&self.settings, now);
    }

    /// Frees a session at once, telling the handler if it was open.
    pub(super) fn end_session(&mut self, key: usize, now: Instant) {
        self.notify_closed(key, now);
        if let Some(mut slot) = self.sessions.try_remove(key) {
            // Closing the descriptor (dropping the socket) removes it from
            // epoll or kqueue; elsewhere the poll is told explicitly.
            if !cfg!(unix) {
                let _ = self.poll.registry().deregister(&mut slot.stream.socket);
            }
            if slot.armed.is_some() {
                self.wheel.orphan();
            }
            if slot.admitted {
                self.release(slot.session.peer().ip());
            } else {
                self.refused_at_limit -= 1;
            }
            if slot.session.is_upgraded() {
                self.upgraded -= 1;
            }
            self.counters().connections.set(self.sessions.len() as u64);
        }
    }
}
