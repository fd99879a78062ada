//! Admission: accepting connections, the connection limits (over all loops,
//! per IP address) and TLS on `wss://` listeners. A connection over a limit
//! is answered 503 by its session, or, past a burst of those, closed unanswered.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::Interest;

use super::event_loop::{session_token, EventLoop};
use super::handler::Handler;
use super::metrics::Refusal;
use super::slot::Slot;
use super::stream::Stream;
use crate::proto::handshake::StatusCode;
use crate::session::Session;

/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections over a limit that a loop answers (503) at once; past it they
/// are closed without an answer, so a flood costs no memory.
const MAX_REFUSED_AT_ONCE: usize = 1024;
/// The least time between two warnings about refused connections.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl<H: Handler> EventLoop<H> {
    pub(super) fn accept(&mut self, listener: usize, now: Instant) {
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
                    self.counters().accept_errors.add(1);
                    if warning_due(&mut self.last_accept_warning, now) {
                        log::warn!(
                            "accept failed, pausing for {ACCEPT_BACKOFF:?} (each failure counted in \
                             ferrows_accept_errors_total; further ones logged at debug): {e}"
                        );
                    } else {
                        log::debug!("accept failed, pausing for {ACCEPT_BACKOFF:?}: {e}");
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    pub(super) fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            // Edge-triggered: connections that waited in the backlog raise no new event.
            for i in 0..self.listeners.len() {
                self.accept(i, now);
            }
        }
    }

    /// The accepted socket as a session's stream: TLS on a `wss://` listener.
    fn stream_for(&self, listener: usize, socket: mio::net::TcpStream, peer: SocketAddr) -> Option<Stream> {
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

    fn open_session(&mut self, mut stream: Stream, peer: SocketAddr, now: Instant) {
        let admission = self.admit(peer.ip());
        if let Err(why) = admission {
            self.warn_refused(peer, why, now);
            if self.refused_at_limit >= MAX_REFUSED_AT_ONCE {
                // Dropping the socket closes it unanswered.
                self.shared.counters.count_refusal(why);
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
            if admission.is_ok() {
                self.release(peer.ip());
            }
            return;
        }
        let session = match admission {
            Ok(()) => Session::new(peer, &self.settings, now),
            Err(why) => {
                self.shared.counters.count_refusal(why);
                self.refused_at_limit += 1;
                // RFC 9110 §15.6.4: 503, the server cannot take the connection now.
                Session::refused(peer, StatusCode::SERVICE_UNAVAILABLE, "too many connections", &self.settings, now)
            }
        };
        entry.insert(Slot::new(stream, session, generation, admission.is_ok()));
        self.counters().connections.set(self.sessions.len() as u64);
        if admission.is_err() {
            self.sync(key, now);
            return;
        }
        log::debug!("{peer}: connected");
        // Data may have arrived with the connection. epoll reports what is
        // already there when a socket is added; elsewhere, read it now, as
        // edge-triggered readiness might not report it again.
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            self.read(key, now, true);
        }
        self.mark_for_flush(key);
    }

    /// Counts a connection against the limits, or says which one it is over.
    fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        let counters = &self.shared.counters;
        if counters.admitted.fetch_add(1, Ordering::AcqRel) >= self.config.max_connections {
            counters.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MaxConnections);
        }
        if let Some(limit) = self.config.max_connections_per_ip {
            let mut per_ip = counters.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = per_ip.entry(ip).or_default();
            if *count >= limit {
                drop(per_ip);
                counters.admitted.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::MaxConnectionsPerIp);
            }
            *count += 1;
        }
        Ok(())
    }

    /// Undoes [`admit`](Self::admit) for a connection that ended.
    pub(super) fn release(&self, ip: IpAddr) {
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
    fn warn_refused(&mut self, peer: SocketAddr, why: Refusal, now: Instant) {
        let limit = match why {
            Refusal::MaxConnectionsPerIp => {
                format!("max_connections_per_ip ({})", self.config.max_connections_per_ip.unwrap_or_default())
            }
            _ => format!("max_connections ({})", self.config.max_connections),
        };
        if warning_due(&mut self.last_limit_warning, now) {
            log::warn!("{peer}: connection refused with 503: {limit} reached (further refusals logged at debug)");
        } else {
            log::debug!("{peer}: connection refused with 503: {limit} reached");
        }
    }
}

/// Whether a warning kept to one per [`LIMIT_WARNING_INTERVAL`] is due now
/// (then `last` becomes now); the others are logged at debug.
fn warning_due(last: &mut Option<Instant>, now: Instant) -> bool {
    let due = last.is_none_or(|t| now >= t + LIMIT_WARNING_INTERVAL);
    if due {
        *last = Some(now);
    }
    due
}
