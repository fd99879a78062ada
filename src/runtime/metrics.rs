//! The server's counters and gauges, and their Prometheus rendering.
//!
//! Each loop writes its own block of counters (on its own cache lines), with a
//! plain load and store rather than a locked add: one writer per counter, any
//! number of readers. Rare events (refusals) share atomics across loops.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::Shared;
use crate::prometheus::{Kind, TextEncoder};
use crate::proto::CloseCode;

/// A counter or gauge with a single writer (the loop that owns it).
#[derive(Debug, Default)]
pub(crate) struct Cell(AtomicU64);

impl Cell {
    /// Adds `n`. Only the owning loop calls it, so no locked add is needed.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn sub(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).saturating_sub(n), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Picks one cell of a loop's block.
type CellOf = fn(&LoopCounters) -> &Cell;

/// One loop's block.
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct LoopCounters {
    /// TCP connections held (every phase).
    pub(crate) connections: Cell,
    /// Open WebSocket sessions.
    pub(crate) sessions: Cell,
    /// Entries in the loop's timer wheel (live and stale), as of its last turn.
    pub(crate) timers: Cell,
    pub(crate) subscriptions: Cell,
    pub(crate) accepted: Cell,
    /// Failed `accept` calls (out of descriptors or buffers), each pausing accepting.
    pub(crate) accept_errors: Cell,
    pub(crate) upgrades: Cell,
    pub(crate) http_requests: Cell,
    pub(crate) messages_in: Cell,
    pub(crate) messages_out: Cell,
    pub(crate) bytes_in: Cell,
    pub(crate) bytes_out: Cell,
    /// Closes by code; a close happens once per session, far from the message path.
    pub(crate) closes: Mutex<BTreeMap<u16, u64>>,
}

impl LoopCounters {
    pub(crate) fn count_close(&self, code: CloseCode) {
        if let Ok(mut closes) = self.closes.lock() {
            *closes.entry(code.0).or_default() += 1;
        }
    }
}

/// Why an upgrade (or a connection) was refused before a session opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a valid HTTP request or WebSocket upgrade.
    BadRequest,
    /// The `Origin` is not allowed (403).
    Origin,
    /// `max_connections` reached (503).
    MaxConnections,
    /// `max_connections_per_ip` reached (503).
    MaxConnectionsPerIp,
    /// No complete request within the handshake timeout.
    Timeout,
    /// The handler refused the upgrade (no route, say).
    Handler,
    /// The server is draining (503).
    Draining,
    /// The TLS handshake failed (plaintext on a `wss://` port, no shared
    /// protocol version or cipher suite, a bad record).
    Tls,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Self::BadRequest,
        Self::Origin,
        Self::MaxConnections,
        Self::MaxConnectionsPerIp,
        Self::Timeout,
        Self::Handler,
        Self::Draining,
        Self::Tls,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Origin => "origin",
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerIp => "max_connections_per_ip",
            Self::Timeout => "timeout",
            Self::Handler => "handler",
            Self::Draining => "draining",
            Self::Tls => "tls",
        }
    }
}

/// Counters of the whole server.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) loops: Box<[LoopCounters]>,
    refusals: [AtomicU64; Refusal::ALL.len()],
    /// Connections admitted (not refused for a limit) and not yet freed, over all loops.
    pub(crate) admitted: AtomicUsize,
    /// Admitted connections per peer IP, kept only with a per-IP limit.
    pub(crate) per_ip: Mutex<std::collections::HashMap<IpAddr, usize>>,
    pub(crate) draining: AtomicBool,
}

impl Counters {
    pub(crate) fn new(loops: usize) -> Self {
        Self {
            loops: (0..loops).map(|_| LoopCounters::default()).collect(),
            refusals: Default::default(),
            admitted: AtomicUsize::new(0),
            per_ip: Mutex::default(),
            draining: AtomicBool::new(false),
        }
    }

    pub(crate) fn count_refusal(&self, why: Refusal) {
        self.refusals[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A view of a running server's metrics; cheap to clone and `Send`.
///
/// [`render`](Self::render) writes them in the Prometheus text format; the
/// accessors read single values.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("open_connections", &self.open_connections()).finish_non_exhaustive()
    }
}

impl Metrics {
    fn sum(&self, f: impl Fn(&LoopCounters) -> &Cell) -> u64 {
        self.shared.counters.loops.iter().map(|l| f(l).get()).sum()
    }

    /// Open WebSocket sessions, all loops.
    #[must_use]
    pub fn open_connections(&self) -> u64 {
        self.sum(|l| &l.sessions)
    }

    /// Deadlines armed in the loops' timer wheels (about one per session,
    /// plus those of sessions ended since the last sweep).
    #[must_use]
    pub fn armed_timers(&self) -> u64 {
        self.sum(|l| &l.timers)
    }

    /// TCP connections accepted since start.
    #[must_use]
    pub fn accepted(&self) -> u64 {
        self.sum(|l| &l.accepted)
    }

    /// Whole messages received from peers.
    #[must_use]
    pub fn messages_received(&self) -> u64 {
        self.sum(|l| &l.messages_in)
    }

    /// Messages queued to peers (a publish counts once per recipient).
    #[must_use]
    pub fn messages_sent(&self) -> u64 {
        self.sum(|l| &l.messages_out)
    }

    /// Whether a graceful shutdown is under way.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.shared.counters.draining.load(Ordering::Acquire)
    }

    /// Appends every metric, in the Prometheus text format, the uplink's last
    /// ([`Uplink::render_metrics`](super::Uplink::render_metrics)).
    pub fn render(&self, out: &mut String) {
        let counters = &self.shared.counters;
        let mut text = TextEncoder::new(out);
        text.single(
            "ferrows_draining",
            Kind::Gauge,
            "1 while a graceful shutdown drains the sessions, else 0.",
            u64::from(self.draining()),
        );
        text.single("ferrows_open_connections", Kind::Gauge, "Open WebSocket sessions.", self.open_connections());
        let per_loop: [(&str, &str, CellOf); 3] = [
            ("ferrows_loop_open_connections", "Open WebSocket sessions of each loop.", |l| &l.sessions),
            ("ferrows_loop_tcp_connections", "TCP connections held by each loop, in any phase.", |l| &l.connections),
            ("ferrows_loop_timers", "Deadlines armed in each loop's timer wheel, live and stale.", |l| &l.timers),
        ];
        for (name, help, cell) in per_loop {
            text.family(name, Kind::Gauge, help);
            for (i, l) in counters.loops.iter().enumerate() {
                text.sample(name, &[("loop", &i.to_string())], cell(l).get());
            }
        }
        let totals: [(&str, &str, CellOf); 9] = [
            ("ferrows_connections_accepted_total", "TCP connections accepted.", |l| &l.accepted),
            (
                "ferrows_accept_errors_total",
                "Failed accepts (out of descriptors or buffers), each pausing accepting for 100 ms.",
                |l| &l.accept_errors,
            ),
            ("ferrows_upgrades_total", "WebSocket sessions opened.", |l| &l.upgrades),
            ("ferrows_http_requests_total", "Plain HTTP requests answered.", |l| &l.http_requests),
            ("ferrows_messages_received_total", "Whole messages received from peers.", |l| &l.messages_in),
            ("ferrows_messages_sent_total", "Messages queued to peers; a publish counts once per recipient.", |l| {
                &l.messages_out
            }),
            ("ferrows_received_bytes_total", "Bytes read from sockets.", |l| &l.bytes_in),
            ("ferrows_sent_bytes_total", "Bytes written to sockets.", |l| &l.bytes_out),
            ("ferrows_subscriptions", "Topic subscriptions of open sessions.", |l| &l.subscriptions),
        ];
        for (name, help, cell) in totals {
            let kind = if name.ends_with("_total") { Kind::Counter } else { Kind::Gauge };
            text.single(name, kind, help, self.sum(cell));
        }
        text.single(
            "ferrows_topics",
            Kind::Gauge,
            "Topics with at least one subscriber, all loops.",
            self.shared.bus.directory_len() as u64,
        );
        text.family(
            "ferrows_handshake_rejections_total",
            Kind::Counter,
            "Connections refused before a session opened, by reason.",
        );
        for why in Refusal::ALL {
            let n = counters.refusals[why as usize].load(Ordering::Relaxed);
            text.sample("ferrows_handshake_rejections_total", &[("reason", why.label())], n);
        }
        let mut closes = BTreeMap::<u16, u64>::new();
        for l in counters.loops.iter() {
            if let Ok(map) = l.closes.lock() {
                for (code, n) in map.iter() {
                    *closes.entry(*code).or_default() += n;
                }
            }
        }
        text.family(
            "ferrows_closes_total",
            Kind::Counter,
            "Sessions ended, by close code (the peer's, ours on a violation; 1006 without a Close).",
        );
        for (code, n) in closes {
            text.sample("ferrows_closes_total", &[("code", &code.to_string())], n);
        }
        let stats = &self.shared.bus.stats;
        let pubsub: [(&str, &str, &AtomicU64); 3] = [
            (
                "ferrows_messages_dropped_total",
                "Published messages dropped for a subscriber whose output queue was full.",
                &stats.dropped_backpressure,
            ),
            (
                "ferrows_slow_consumers_closed_total",
                "Subscribers closed (1008) for a full output queue.",
                &stats.slow_consumers_closed,
            ),
            (
                "ferrows_bus_dropped_total",
                "Cross-loop deliveries dropped because a loop's channel was full.",
                &stats.dropped_channel_full,
            ),
        ];
        atomic_counters(&mut text, &pubsub);
        if let Some(uplink) = &self.shared.bus.uplink {
            uplink.render_metrics(out);
        }
    }
}

/// Counters kept in atomics, one sample each.
fn atomic_counters(text: &mut TextEncoder<'_>, counters: &[(&str, &str, &AtomicU64)]) {
    for (name, help, value) in counters {
        text.single(name, Kind::Counter, help, value.load(Ordering::Relaxed));
    }
}
