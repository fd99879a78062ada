//! Many nodes as one server: topics shared through Redis pub/sub (feature `redis`).
//!
//! The **cluster bridge** is one more participant on the engine's pub/sub
//! bus, on a thread of its own with its own `mio::Poll`, holding two
//! connections to Redis (one subscribed, one publishing). The runtime offers
//! the bus; the bridge plugs into it from above (see
//! [`Cluster`], an [`Uplink`](crate::runtime::Uplink) for
//! [`ServerBuilder::uplink`](crate::runtime::ServerBuilder::uplink), and
//! [`ClusterConfig`]), so the runtime never names the cluster.
//!
//! - When the node gains its first subscriber of a topic (on any loop), the
//!   bridge subscribes to that topic's Redis channel, `{prefix}t:{topic}`
//!   (`prefix` defaults to `ferrows:`; the binary's pub/sub topics are
//!   `topic/NAME` there and its rooms `room/NAME`), and unsubscribes when the
//!   last one leaves; it always listens on `{prefix}all` for broadcasts.
//! - A publish or broadcast made on this node (over `/pubsub`, a room,
//!   `POST /publish/{topic}` or [`Context::publish`](crate::runtime::Context::publish))
//!   is delivered to the node's own subscribers at once and also published to
//!   Redis.
//! - A message from Redis goes to this node's subscribers through the same
//!   channels and wakers as a publish from another loop, and never back to
//!   Redis. A node's own messages, which Redis sends back to it, are
//!   recognised by the random run id they carry and dropped.
//!
//! Every message carries the publishing node's id, its run id (drawn at start)
//! and a sequence number per channel (the envelope, `src/cluster/envelope.rs`);
//! a publish that cannot go to Redis still takes its number. So a receiving
//! node counts the messages it missed (a gap in a sequence), drops a message it
//! has seen before, and never delivers one twice. A message on the cluster's
//! channels that is not a well-formed envelope around one whole, final,
//! unmasked text or binary frame never reaches a socket (it is counted as
//! invalid).
//!
//! It speaks RESP2 itself over two non-blocking connections rather than
//! through the `redis` crate: the crate's connections block, and a blocking
//! read cannot be woken when a loop gains a topic or has something to publish;
//! with mio, one waker serves both, and a reconnect never stalls a read. The
//! part of RESP needed (commands, replies, push messages) is small and lives
//! in `src/cluster/resp.rs`.
//!
//! # Delivery promise
//!
//! **At most once across nodes**, in order per publishing node and channel.
//!
//! - While Redis is unreachable, local delivery goes on, and what is published
//!   meanwhile does not cross nodes: counted as lost by the publisher, and as
//!   gaps by the receivers once traffic resumes. Nothing is replayed.
//! - The bridge reconnects with exponential backoff from 100 ms, capped at
//!   [`ClusterConfig::max_backoff`], and subscribes again to every topic that
//!   still has local subscribers.
//! - A connection silent for three [`ClusterConfig::ping_interval`]s is taken
//!   as lost, so a Redis that vanished without a reset is noticed. A
//!   connection counts as up once Redis has answered on it, not when the
//!   TCP connect completes: a Redis that hangs still completes connects.
//! - A node that starts while Redis is down starts anyway, logs a warning, and
//!   joins when Redis comes.
//! - Within one node, order is kept per publisher.
//!
//! # Kept records
//!
//! The bridge keeps records ([`Uplink::keeps_records`](crate::runtime::Uplink::keeps_records)):
//! a topic's history lives in Redis, where every node reaches it. For a
//! topic T, `{prefix}h:{T}` is a hash with the topic's `epoch` and last
//! `offset`, and `{prefix}h:{T}:l` a list of its last records, each
//! `<offset> <data>`, oldest first. Two Lua scripts
//! (`src/cluster/scripts.rs`) do the work, each whole and alone in Redis:
//!
//! - **APPEND** gives the record the next offset, pushes it on the list,
//!   trims the list to the size kept, sets both keys to expire after the
//!   TTL, and publishes the record on the topic's channel, `{prefix}t:{T}`.
//!   A topic without an epoch (never written, expired, flushed) first gets
//!   the bridge's new random one, its offset starts again at 1, and a list
//!   left without its hash is dropped. Every node, this one included, gets
//!   a topic's records from Redis, in offset order.
//! - **READ** returns the epoch, the last offset and the last entries of
//!   the list. A topic without an epoch gets one (offset 0, for the TTL of
//!   the read), which its first record then keeps.
//!
//! A record not kept is a plain PUBLISH on the same connection, so that it
//! keeps its place among the topic's records. Scripts are loaded (`SCRIPT
//! LOAD`) when the publishing connection comes up and called by SHA
//! (EVALSHA); one Redis has lost (`NOSCRIPT`) is called again with its
//! source (EVAL). Replies on that connection are matched with the commands
//! in the order they went: a script's error is counted and logged, a read
//! that fails or is cut off by a lost connection gets `None`, and an
//! append cut off so is counted as lost.
//!
//! On the channel, a record is not a frame's envelope but:
//!
//! ```text
//! "FRR1" | run: u64 | exclude: u8 | loop: u32 | session key: u32 | generation: u16
//!        | offset | ' ' | epoch | ' ' | data
//! ```
//!
//! (offset 0 and an empty epoch for a record not kept; the session left out
//! counts only on the node whose run it is).
//!
//! **No gap between a read and what follows.** A read of a topic this node
//! follows is sent only once Redis has confirmed the SUBSCRIBE of its
//! channel: a record appended after the read then comes through the
//! subscription, and one appended before is in the read (it may come both
//! ways; its offset tells). A read that waits longer than twice
//! [`ClusterConfig::connect_timeout`], or while a connection is down, is
//! answered with `None`.
//!
//! Running a cluster of the binary (settings, health, metrics, a proxy in
//! front, what one Redis can carry) is described in `docs/cluster.md`.

mod bridge;
mod envelope;
mod record;
mod resp;
mod scripts;
mod uplink;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use uplink::Cluster;

/// Where the cluster's Redis is and how the bridge behaves.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (port 6379 by default;
    /// the database number is accepted and unused: pub/sub channels are global).
    pub url: String,
    /// Prepended to every channel name (default `ferrows:`), so that several
    /// clusters can share one Redis.
    pub prefix: String,
    /// This node's name in messages and logs (default: random).
    pub node_id: String,
    /// How long a connect to Redis may take (default 2 s).
    pub connect_timeout: Duration,
    /// The longest wait between reconnect attempts (default 1 s); the first
    /// is 100 ms, and each failure doubles it up to this.
    pub max_backoff: Duration,
    /// How often each connection is pinged (default 1 s); one silent for
    /// three intervals is taken as lost.
    pub ping_interval: Duration,
    /// Publishes that may wait for the bridge (default 65,536); past it they
    /// are not sent to Redis (counted as lost).
    pub queue: usize,
    /// The largest message taken from Redis (default 16 MiB + 64 KiB).
    pub max_message: usize,
    /// How long this node's members of a topic (the application's
    /// presence) last in Redis unless refreshed (default 15 s); the node
    /// refreshes them every third of it, so a node that stops leaves none
    /// behind for longer.
    pub presence_ttl: Duration,
}

impl ClusterConfig {
    /// The defaults, with Redis at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "ferrows:".to_owned(),
            node_id: random_node_id(),
            connect_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(1),
            ping_interval: Duration::from_secs(1),
            queue: 1 << 16,
            max_message: (16 << 20) + (64 << 10),
            presence_ttl: Duration::from_secs(15),
        }
    }

    /// Checks the URL and the node id.
    ///
    /// # Errors
    ///
    /// A URL that is not `redis://...` with a host, a bad port, or a node id
    /// longer than 255 bytes.
    pub fn check(&self) -> Result<(), ClusterError> {
        RedisUrl::parse(&self.url)?;
        if self.node_id.len() > 255 {
            return Err(ClusterError("node_id: at most 255 bytes".into()));
        }
        Ok(())
    }
}

/// A node id no other node is likely to have: `node-` and 8 random hex digits.
fn random_node_id() -> String {
    let mut bytes = [0u8; 4];
    // A fixed id if the OS random source fails; the run id still tells nodes apart.
    let _ = getrandom::fill(&mut bytes);
    format!("node-{:08x}", u32::from_be_bytes(bytes))
}

/// A cluster setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterError(String);

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

/// `redis://` parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
}

impl RedisUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, ClusterError> {
        let bad = |why: &str| ClusterError(format!("redis url {url:?}: {why}"));
        let rest = url.strip_prefix("redis://").ok_or_else(|| {
            bad(if url.starts_with("rediss://") {
                "TLS to Redis (rediss://) is not supported"
            } else {
                "expected redis://HOST[:PORT]"
            })
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((user, password)) => ((!user.is_empty()).then(|| user.to_owned()), Some(password.to_owned())),
                None => (None, Some(c.to_owned())),
            },
        };
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed [IPv6 address"))?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 6379,
            Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or_else(|| bad("a bad port"))?,
        };
        Ok(Self { host: host.to_owned(), port, user, password })
    }
}

/// What the bridge did: its state and counters, read by `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    up: AtomicBool,
    /// Connections to Redis re-established after a loss.
    pub reconnects: AtomicU64,
    /// Messages published to Redis.
    pub published: AtomicU64,
    /// Messages from other nodes delivered here.
    pub received: AtomicU64,
    /// Local publishes not sent to Redis: it was unreachable, or the
    /// bridge's queue was full.
    pub lost: AtomicU64,
    /// Messages from other nodes known to be missing: gaps in their sequences.
    pub gaps: AtomicU64,
    /// Messages from other nodes seen twice, dropped.
    pub duplicates: AtomicU64,
    /// Messages on the cluster's channels that were not a valid envelope
    /// or record, dropped; and script answers (or read entries) that could
    /// not be read.
    pub invalid: AtomicU64,
    /// Records kept by Redis: APPEND calls answered with a position.
    pub records_appended: AtomicU64,
    /// Script calls (history and presence) Redis answered with an error.
    pub record_errors: AtomicU64,
}

impl ClusterStats {
    /// Whether both connections to Redis are up.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_parse() {
        let url = RedisUrl::parse("redis://127.0.0.1:6380/0").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.user, url.password), ("127.0.0.1", 6380, None, None));
        let url = RedisUrl::parse("redis://:secret@localhost").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.password.as_deref()), ("localhost", 6379, Some("secret")));
        let url = RedisUrl::parse("redis://me:pw@[::1]:7000").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.user.as_deref()), ("::1", 7000, Some("me")));
        for bad in ["http://x", "rediss://x", "redis://", "redis://h:0", "redis://h:x", "redis://[::1"] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Entry points for the fuzz targets: what the bridge does with bytes from
/// Redis, without a socket. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{envelope, record, resp};

    /// Reads `data` as RESP replies, fed whole and then cut at `split`;
    /// both must read the same values, or fail alike. Returns how many
    /// values were read.
    ///
    /// # Panics
    ///
    /// When the two readings differ.
    #[must_use]
    pub fn resp_values(data: &[u8], split: usize) -> usize {
        let read = |pieces: &[&[u8]]| {
            let mut reader = resp::Reader::new(1 << 16);
            let mut values = Vec::new();
            for piece in pieces {
                reader.feed(piece);
                loop {
                    match reader.next_value() {
                        Ok(Some(value)) => values.push(value),
                        Ok(None) => break,
                        Err(e) => return (values, Some(e)),
                    }
                }
            }
            (values, None)
        };
        let split = split.min(data.len());
        let (values, error) = read(&[data]);
        let (cut_values, cut_error) = read(&[&data[..split], &data[split..]]);
        // The same values, and a failure either way (which check fails first may differ).
        assert_eq!(values, cut_values, "reading depends on where the bytes were cut");
        assert_eq!(error.is_some(), cut_error.is_some(), "{error:?} / {cut_error:?}");
        values.len()
    }

    /// Reads `data` as a message from another node; what passes is one
    /// whole, unmasked text or binary frame, or a Close (closing a topic's
    /// subscribers).
    ///
    /// # Panics
    ///
    /// When an envelope that passed does not hold such a frame.
    #[must_use]
    pub fn envelope_frame(data: &[u8]) -> Option<usize> {
        let message = envelope::decode(data)?;
        let frame = message.frame;
        assert!(frame.len() >= 2 && frame[0] & 0x80 != 0 && frame[1] & 0x80 == 0, "not a final unmasked frame");
        assert!(matches!(frame[0] & 0x0f, 1 | 2 | 8), "not a data frame nor a Close");
        // Wrapping again gives the same bytes.
        assert_eq!(envelope::encode(message.run, message.seq, message.node, frame), data);
        Some(frame.len())
    }

    /// Reads `data` as a record message on a topic's channel; returns the
    /// length of the record's data when it passes.
    ///
    /// # Panics
    ///
    /// When a message that passed does not encode back to the same bytes,
    /// or its position breaks the layout's rules.
    #[must_use]
    pub fn record_message(data: &[u8]) -> Option<usize> {
        let message = record::decode(data)?;
        assert!(record::is_record(data));
        assert!(message.epoch.len() <= record::MAX_EPOCH && message.epoch.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(message.position().is_none(), message.epoch.is_empty(), "kept without an epoch");
        assert_eq!(record::encode(&message), data, "decoding and encoding differ");
        Some(message.data.len())
    }
}
