//! The bridge as the runtime's [`Uplink`]: what the loops hand it, how its
//! thread starts and stops, and its metrics and health line.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use super::bridge::{Bridge, Outgoing, Signals, BRIDGE_WAKER};
use super::{ClusterConfig, ClusterError, ClusterStats};
use crate::prometheus::{Kind, TextEncoder};
use crate::runtime::{Append, Inlet, MemberChange, MembersRequest, ReadRequest, Topic, Uplink};
use crate::session::SharedFrame;

/// A node's place in a cluster: the Redis bridge, ready to plug into
/// [`ServerBuilder::uplink`](crate::runtime::ServerBuilder::uplink). Its
/// thread starts with the server and stops after the server's loops.
///
/// ```no_run
/// use std::sync::Arc;
/// use ferrows::cluster::{Cluster, ClusterConfig};
/// use ferrows::runtime::Server;
/// # use ferrows::runtime::{Context, Decision, Handler, Message, SessionId, Upgrade};
/// # struct App;
/// # impl Handler for App {
/// #     type State = ();
/// #     fn upgrade(&mut self, _: &Upgrade<'_>) -> Decision<()> { Decision::accept(()) }
/// #     fn on_message(&mut self, _: &mut Context<'_, ()>, _: SessionId, _: Message<'_>) {}
/// # }
///
/// let cluster = Arc::new(Cluster::new(ClusterConfig::new("redis://127.0.0.1:6379"))?);
/// let server = Server::builder()
///     .listen("127.0.0.1:9001".parse()?)
///     .uplink(cluster.clone())
///     .start(|_loop_index| App)?;
/// println!("cluster up: {}", cluster.stats().is_up());
/// server.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cluster {
    stats: Arc<ClusterStats>,
    signals: Arc<Signals>,
    outgoing: SyncSender<Outgoing>,
    /// What the bridge's thread takes when the server starts.
    waiting: Mutex<Option<Waiting>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The bridge's parts before its thread runs.
struct Waiting {
    poll: Poll,
    config: ClusterConfig,
    outgoing: Receiver<Outgoing>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Cluster {
    /// A bridge for `config`, not yet connected: it connects when the server starts.
    ///
    /// # Errors
    ///
    /// A setting [`ClusterConfig::check`] refuses, or a poll that cannot be created.
    pub fn new(config: ClusterConfig) -> Result<Self, ClusterError> {
        config.check()?;
        let poll_error = |e: io::Error| ClusterError(format!("cannot create the bridge's poll: {e}"));
        let poll = Poll::new().map_err(poll_error)?;
        let waker = Waker::new(poll.registry(), BRIDGE_WAKER).map_err(poll_error)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.queue.max(1));
        Ok(Self {
            stats: Arc::new(ClusterStats::default()),
            signals: Arc::new(Signals::new(waker)),
            outgoing: sender,
            waiting: Mutex::new(Some(Waiting { poll, config, outgoing: receiver })),
            thread: Mutex::new(None),
        })
    }

    /// The bridge's state and counters.
    #[must_use]
    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }
}

impl Uplink for Cluster {
    fn attach(&self, inlet: Inlet) -> io::Result<()> {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(Waiting { poll, config, outgoing }) = waiting else {
            return Err(io::Error::other("the cluster bridge already serves a server"));
        };
        let bridge = Bridge::new(poll, config, inlet, self.stats.clone(), outgoing, self.signals.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let thread = std::thread::Builder::new().name("ferrows-cluster".into()).spawn(move || bridge.run())?;
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
        Ok(())
    }

    /// Queued for the bridge; a full queue loses it, counted.
    fn publish(&self, topic: Option<&Topic>, frame: &SharedFrame) {
        let outgoing = Outgoing::Publish { topic: topic.cloned(), frame: frame.clone() };
        if !self.queue(outgoing) {
            ClusterStats::add(&self.stats.lost, 1);
        }
    }

    /// Records are kept in Redis (see the module's "Kept records").
    fn keeps_records(&self) -> bool {
        true
    }

    /// Queued for the bridge while both its connections are up; a full
    /// queue refuses it, counted as lost.
    fn append(&self, append: Append) -> bool {
        // Both links: the record comes back to this node's subscribers through the subscribed one.
        if !self.stats.is_up() {
            return false;
        }
        let queued = self.queue(Outgoing::Append(append));
        if !queued {
            ClusterStats::add(&self.stats.lost, 1);
        }
        queued
    }

    /// Queued for the bridge while both its connections are up; once
    /// taken, it is always answered (with `None` results where Redis could
    /// not be read).
    fn read(&self, request: ReadRequest) -> bool {
        self.stats.is_up() && self.queue(Outgoing::Read(request))
    }

    /// Handed over whatever the links' state, never dropped: the bridge
    /// keeps this node's members, and writes them when Redis is there.
    fn members(&self, change: MemberChange) -> bool {
        self.signals.members.lock().unwrap_or_else(PoisonError::into_inner).push(change);
        self.signals.wake();
        true
    }

    /// Queued while both connections are up; once taken, always answered.
    fn read_members(&self, request: MembersRequest) -> bool {
        self.stats.is_up() && self.queue(Outgoing::ReadMembers(request))
    }

    fn interest(&self, topic: &Topic, subscribed: bool) {
        self.signals.changes.lock().unwrap_or_else(PoisonError::into_inner).push((topic.clone(), subscribed));
        self.signals.wake();
    }

    /// The bridge sends what the loops published last, if Redis takes it now, and stops.
    fn detach(&self) {
        self.signals.stop.store(true, Ordering::Release);
        if let Err(e) = self.signals.waker.wake() {
            log::warn!("cannot wake the cluster bridge to stop it: {e}");
        }
        if let Some(thread) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = thread.join();
        }
    }

    fn render_metrics(&self, out: &mut String) {
        self.stats.render(out);
    }

    /// `cluster: up` or `cluster: down`.
    fn health(&self) -> Option<String> {
        Some(format!("cluster: {}", if self.stats.is_up() { "up" } else { "down" }))
    }
}

impl Cluster {
    /// Hands `outgoing` to the bridge and wakes it; false when its queue is full.
    fn queue(&self, outgoing: Outgoing) -> bool {
        let queued = self.outgoing.try_send(outgoing).is_ok();
        if queued {
            self.signals.wake();
        }
        queued
    }
}

impl ClusterStats {
    /// Appends the bridge's state and counters in the Prometheus text format
    /// (`ferrows_cluster_*`).
    pub fn render(&self, out: &mut String) {
        let mut text = TextEncoder::new(out);
        text.single(
            "ferrows_cluster_up",
            Kind::Gauge,
            "1 while both connections of the cluster bridge to Redis are up, else 0.",
            u64::from(self.is_up()),
        );
        let counters: [(&str, &str, &AtomicU64); 9] = [
            ("ferrows_cluster_reconnects_total", "Connections to Redis made again after a loss.", &self.reconnects),
            ("ferrows_cluster_published_total", "Local publishes and broadcasts sent to Redis.", &self.published),
            ("ferrows_cluster_received_total", "Messages from other nodes delivered here.", &self.received),
            (
                "ferrows_cluster_lost_total",
                "Local publishes not sent to Redis: it was unreachable or the bridge's queue was full.",
                &self.lost,
            ),
            (
                "ferrows_cluster_gaps_total",
                "Messages from other nodes known missing (gaps in their sequence numbers or, for topics with history, offsets).",
                &self.gaps,
            ),
            ("ferrows_cluster_duplicates_total", "Messages from other nodes seen twice, dropped.", &self.duplicates),
            (
                "ferrows_cluster_invalid_total",
                "Messages on the cluster's channels that were not ours, dropped.",
                &self.invalid,
            ),
            (
                "ferrows_cluster_records_appended_total",
                "Records kept in Redis: APPEND script calls answered with a position.",
                &self.records_appended,
            ),
            (
                "ferrows_cluster_record_errors_total",
                "Script calls (history and presence) Redis answered with an error.",
                &self.record_errors,
            ),
        ];
        for (name, help, value) in counters {
            text.single(name, Kind::Counter, help, value.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_their_names() {
        let cluster = Cluster::new(ClusterConfig::new("redis://127.0.0.1:1")).unwrap();
        ClusterStats::add(&cluster.stats().gaps, 3);
        let mut out = String::new();
        cluster.render_metrics(&mut out);
        assert!(out.starts_with("# HELP ferrows_cluster_up "), "{out}");
        assert!(out.contains("\nferrows_cluster_up 0\n"), "{out}");
        assert!(out.contains("\nferrows_cluster_gaps_total 3\n"), "{out}");
        assert_eq!(out.matches("# TYPE ferrows_cluster_").count(), 10, "{out}");
        assert_eq!(cluster.health().as_deref(), Some("cluster: down"));
    }

    #[test]
    fn a_publish_the_queue_cannot_take_is_lost() {
        let mut config = ClusterConfig::new("redis://127.0.0.1:1");
        config.queue = 1;
        let cluster = Cluster::new(config).unwrap();
        let frame = SharedFrame::from(&[0x81, 0x01, b'x'][..]);
        cluster.publish(None, &frame);
        cluster.publish(Some(&Topic::from("news")), &frame);
        assert_eq!(cluster.stats().lost.load(Ordering::Relaxed), 1);
    }
}
