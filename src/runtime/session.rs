//! One client connection on an event loop.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::Interest;

use super::out_queue::OutQueue;
use super::pubsub::PubSubStats;
use super::stream::Stream;
use super::SlowConsumerPolicy;
use crate::proto::handshake::{Request, ServerHandshake};
use crate::proto::{CloseCode, Connection};

/// Where a session is in its life.
// Open is the phase sessions spend their life in; boxing it instead would
// cost every session an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Phase {
    /// Reading the upgrade request, until the deadline.
    Handshake { handshake: Box<ServerHandshake>, deadline: Instant },
    /// A plain HTTP request whose body is still arriving, until the deadline.
    HttpBody { request: Box<Request>, body: Vec<u8>, length: usize, deadline: Instant },
    /// Upgraded: frames flow.
    Open(Connection),
    /// An HTTP answer (an error) is being written; then the socket is closed.
    Refused { deadline: Instant },
    /// Everything is said: our side is shut down and what the peer still
    /// sends is read and dropped until its EOF or the deadline, so that
    /// closing never resets the connection under our last bytes.
    Lingering { deadline: Instant },
}

/// A peer's address in 24 bytes, where a `SocketAddr` takes 32: the IPv6
/// flow information is left out (Linux reports none for an accepted socket
/// unless `IPV6_FLOWINFO_SEND` is set, which the runtime does not do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerAddr {
    V4(SocketAddrV4),
    V6 { ip: Ipv6Addr, port: u16, scope_id: u32 },
}

impl PeerAddr {
    pub(crate) fn ip(&self) -> IpAddr {
        match self {
            Self::V4(addr) => IpAddr::V4(*addr.ip()),
            Self::V6 { ip, .. } => IpAddr::V6(*ip),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(addr) => Self::V4(addr),
            SocketAddr::V6(addr) => Self::V6 { ip: *addr.ip(), port: addr.port(), scope_id: addr.scope_id() },
        }
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(addr: PeerAddr) -> Self {
        match addr {
            PeerAddr::V4(addr) => Self::V4(addr),
            PeerAddr::V6 { ip, port, scope_id } => Self::V6(SocketAddrV6::new(ip, port, 0, scope_id)),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&SocketAddr::from(*self), f)
    }
}

/// How a session ended, as told to the handler's `on_close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseStatus {
    pub(crate) code: CloseCode,
    pub(crate) reason: String,
}

/// A session: the stream, the protocol state, the output queue and the
/// application's per-connection state.
#[derive(Debug)]
pub(crate) struct Session<S> {
    pub(crate) stream: Stream,
    pub(crate) peer: PeerAddr,
    pub(crate) generation: u16,
    pub(crate) phase: Phase,
    pub(crate) out: OutQueue,
    /// The application's state; `Some` once the handler accepted the upgrade.
    pub(crate) state: Option<S>,
    /// How the session ended, once known (first cause wins).
    pub(crate) close_status: Option<Box<CloseStatus>>,
    /// The interest registered with the poll.
    pub(crate) interest: Interest,
    /// The earliest deadline armed in the timer wheel.
    pub(crate) armed: Option<Instant>,
    /// Reading stopped because the output queue is over its limit.
    pub(crate) read_paused: bool,
    /// Output was queued for this session outside its own I/O: write it at
    /// the end of the loop iteration (once, however many messages came).
    pub(crate) flush_pending: bool,
    /// Counted against the connection limits (not refused for one).
    pub(crate) admitted: bool,
    /// Upgraded to WebSocket: a graceful shutdown waits for it.
    pub(crate) upgraded: bool,
}

impl<S> Session<S> {
    pub(crate) fn new(stream: Stream, peer: SocketAddr, generation: u16, phase: Phase) -> Self {
        Self {
            stream,
            peer: peer.into(),
            generation,
            phase,
            out: OutQueue::default(),
            state: None,
            close_status: None,
            interest: Interest::READABLE,
            armed: None,
            read_paused: false,
            flush_pending: false,
            admitted: false,
            upgraded: false,
        }
    }

    /// Whether the session is upgraded and can still send.
    pub(crate) fn is_open(&self) -> bool {
        matches!(&self.phase, Phase::Open(conn) if conn.can_send())
    }

    pub(crate) fn connection_mut(&mut self) -> Option<&mut Connection> {
        match &mut self.phase {
            Phase::Open(conn) => Some(conn),
            _ => None,
        }
    }

    /// Moves the protocol's pending output (replies, queued messages) to the output queue.
    pub(crate) fn take_output(&mut self) {
        if let Phase::Open(conn) = &mut self.phase {
            let mut bytes = Vec::new();
            if conn.poll_transmit(&mut bytes) {
                self.out.push(bytes);
            }
        }
    }

    /// Queues a frame shared with other sessions (a publish), unless the
    /// session cannot take it: closing, or its output over `max_out_queue`,
    /// where `policy` applies. Returns whether the frame was queued.
    pub(crate) fn deliver_shared(
        &mut self,
        frame: &Arc<[u8]>,
        max_out_queue: usize,
        policy: SlowConsumerPolicy,
        now: Instant,
        stats: &PubSubStats,
    ) -> bool {
        if !self.is_open() {
            return false;
        }
        // What the connection queued (Pongs, replies) goes first.
        self.take_output();
        if self.out.len() + frame.len() > max_out_queue {
            match policy {
                SlowConsumerPolicy::Drop => {
                    stats.dropped_backpressure.fetch_add(1, Ordering::Relaxed);
                }
                SlowConsumerPolicy::Close => {
                    stats.slow_consumers_closed.fetch_add(1, Ordering::Relaxed);
                    log::info!("{}: closing a slow consumer (output queue full)", self.peer);
                    if let Some(conn) = self.connection_mut() {
                        // The Close itself is queued whatever the limit.
                        let _ = conn.send_close(CloseCode::POLICY_VIOLATION, "slow consumer: output queue full", now);
                    }
                    self.take_output();
                    self.set_close_status(CloseCode::POLICY_VIOLATION, "slow consumer");
                }
            }
            return false;
        }
        self.out.push_shared(frame.clone());
        true
    }

    /// The next instant the session needs the clock.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake { deadline, .. }
            | Phase::HttpBody { deadline, .. }
            | Phase::Refused { deadline }
            | Phase::Lingering { deadline } => Some(*deadline),
            Phase::Open(conn) => conn.poll_timeout(),
        }
    }

    /// Whether everything is said and written: time to shut our side down.
    pub(crate) fn is_finished(&self) -> bool {
        !self.has_unwritten()
            && match &self.phase {
                Phase::Handshake { .. } | Phase::HttpBody { .. } | Phase::Lingering { .. } => false,
                Phase::Open(conn) => conn.is_closed() && !conn.wants_write(),
                Phase::Refused { .. } => true,
            }
    }

    /// Output not yet on the socket: queued, or held in TLS records.
    pub(crate) fn has_unwritten(&self) -> bool {
        !self.out.is_empty() || self.stream.wants_write()
    }

    /// Whether the session wants to read.
    pub(crate) fn wants_read(&self) -> bool {
        !self.read_paused
            && match &self.phase {
                Phase::Handshake { .. } | Phase::HttpBody { .. } | Phase::Lingering { .. } => true,
                Phase::Open(conn) => conn.wants_read(),
                Phase::Refused { .. } => false,
            }
    }

    /// Records how the session ended, unless a cause is already known.
    pub(crate) fn set_close_status(&mut self, code: CloseCode, reason: &str) {
        if self.close_status.is_none() {
            self.close_status = Some(Box::new(CloseStatus { code, reason: reason.to_owned() }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_session_is_small() {
        // One per open connection: this is most of what an idle connection
        // costs. mio's TcpStream carries a selector id in a debug build; the
        // `tls` feature adds the pointer to a session's TLS state.
        let max = if cfg!(debug_assertions) { 184 } else { 176 } + if cfg!(feature = "tls") { 8 } else { 0 };
        let size = std::mem::size_of::<Session<crate::app::Member>>();
        assert!(size <= max, "{size}");
    }

    #[test]
    fn a_peer_address_reads_back_as_it_came() {
        for addr in ["192.0.2.1:443", "[2001:db8::1]:8080", "[fe80::1%3]:80", "[::ffff:192.0.2.1]:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let peer = PeerAddr::from(addr);
            assert_eq!(SocketAddr::from(peer), addr);
            assert_eq!(peer.to_string(), addr.to_string());
            assert_eq!(peer.ip(), addr.ip());
        }
        assert_eq!(std::mem::size_of::<PeerAddr>(), 24);
    }
}
