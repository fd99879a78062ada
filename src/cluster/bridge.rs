//! The bridge thread: two RESP connections to Redis on a mio poll of its own.

mod link;
mod members;
mod records;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use mio::{Events, Poll, Token, Waker};

use super::resp::{encode_command, encode_command_parts, Value};
use super::{envelope, record, ClusterConfig, ClusterStats, RedisUrl};
use crate::runtime::{Append, Inlet, MemberChange, MembersRequest, ReadRequest, Topic};
use crate::session::SharedFrame;
use link::{Link, Peer};
use members::Membership;
use records::{Expected, Keeping};

/// The links, by index (and poll token): the subscribed connection and the publishing one.
const SUBSCRIBER: usize = 0;
const PUBLISHER: usize = 1;
pub(crate) const BRIDGE_WAKER: Token = Token(2);

/// Output the publishing connection may hold unwritten; past it, publishes
/// are dropped (counted as lost) rather than buffered without bound.
const MAX_UNWRITTEN: usize = 8 << 20;
/// Channels named in one SUBSCRIBE.
const SUBSCRIBE_BATCH: usize = 512;
/// Entries kept in the sequence tables before they are reset.
const MAX_SEQUENCES: usize = 1 << 16;

/// What the loops hand the bridge, in the order they do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A local publish or broadcast on its way to Redis (`topic: None`: a broadcast).
    Publish { topic: Option<Topic>, frame: SharedFrame },
    /// A record to append to its topic.
    Append(Append),
    /// Kept records to read.
    Read(ReadRequest),
    /// A topic's members to read.
    ReadMembers(MembersRequest),
}

/// What the loops' threads (through the uplink) and the bridge's thread share.
#[derive(Debug)]
pub(crate) struct Signals {
    pub(crate) waker: Waker,
    /// Set while a wake is pending, so that a burst of publishes wakes the bridge once.
    pub(crate) woken: AtomicBool,
    /// Topics that gained their first (`true`) or lost their last local
    /// subscriber since the bridge last looked, in the order of the changes.
    pub(crate) changes: Mutex<Vec<(Topic, bool)>>,
    /// Set once the loops have finished: the bridge sends what is queued and stops.
    pub(crate) stop: AtomicBool,
    /// Changes to this node's members, in order: never dropped (a lost
    /// removal would leave a member that the node refreshes for ever).
    pub(crate) members: Mutex<Vec<MemberChange>>,
}

impl Signals {
    pub(crate) fn new(waker: Waker) -> Self {
        Self {
            waker,
            woken: AtomicBool::new(false),
            changes: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            members: Mutex::new(Vec::new()),
        }
    }

    /// Wakes the bridge, unless a wake is already pending.
    pub(crate) fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::warn!("cannot wake the cluster bridge: {e}");
            }
        }
    }
}

/// The bridge: runs on its own thread until told to stop.
pub(crate) struct Bridge {
    poll: Poll,
    config: ClusterConfig,
    url: RedisUrl,
    inlet: Inlet,
    stats: Arc<ClusterStats>,
    outgoing: Receiver<Outgoing>,
    signals: Arc<Signals>,
    /// [`SUBSCRIBER`] and [`PUBLISHER`].
    links: [Peer; 2],
    /// Topics with subscribers on this node: the channels subscribed to.
    wanted: HashSet<Topic>,
    /// This life's id, in every message published.
    run: u64,
    /// The last sequence number published per channel (`None`: broadcasts).
    published: HashMap<Option<Topic>, u64>,
    /// The last sequence number received per publishing run and channel.
    seen: HashMap<(u64, Option<Topic>), u64>,
    /// Kept records: reads waiting or in flight, confirmed subscriptions.
    keeping: Keeping,
    membership: Membership,
    scratch: Vec<u8>,
}

impl Bridge {
    pub(crate) fn new(
        poll: Poll,
        config: ClusterConfig,
        inlet: Inlet,
        stats: Arc<ClusterStats>,
        outgoing: Receiver<Outgoing>,
        signals: Arc<Signals>,
    ) -> Result<Self, super::ClusterError> {
        let url = RedisUrl::parse(&config.url)?;
        let now = Instant::now();
        Ok(Self {
            poll,
            config,
            url,
            inlet,
            stats,
            outgoing,
            signals,
            links: [(); 2].map(|()| Peer::new(now)),
            wanted: HashSet::new(),
            run: random_run(),
            published: HashMap::new(),
            seen: HashMap::new(),
            keeping: Keeping::new(),
            membership: Membership::default(),
            scratch: vec![0; 64 << 10],
        })
    }

    /// Runs until the stop flag is set (and the waker rung).
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        log::info!("cluster: node {} joining through redis://{}:{}", self.config.node_id, self.url.host, self.url.port);
        let mut last_turn = Instant::now();
        while !self.signals.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            // A turn waits at most a ping interval while a link is up.
            if now.saturating_duration_since(last_turn) > self.config.ping_interval * 2 {
                self.away(now);
            }
            last_turn = now;
            self.expire(now);
            let timeout = self.next_deadline().map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("cluster: poll failed, the bridge stops: {e}");
                    return;
                }
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    // Later changes and publishes wake the bridge again.
                    BRIDGE_WAKER => self.signals.woken.store(false, Ordering::Release),
                    Token(index) if index < self.links.len() => self.on_event(index, now),
                    _ => {}
                }
            }
            self.follow_subscriptions();
            self.forward_outgoing(now);
            self.release_reads(now);
            for index in [SUBSCRIBER, PUBLISHER] {
                self.flush(index, now);
            }
            let up = self.links.iter().all(|peer| matches!(&peer.link, Link::Up(conn) if conn.answered));
            self.stats.set_up(up);
        }
        // What the loops published before they stopped: out if the socket takes it now.
        self.forward_outgoing(Instant::now());
        self.flush(PUBLISHER, Instant::now());
        self.stats.set_up(false);
    }

    /// The Redis channel of a topic (`None`: the broadcast channel).
    fn channel(&self, topic: Option<&Topic>) -> Vec<u8> {
        channel_name(&self.config.prefix, topic)
    }

    /// The topic a channel stands for: `Some(None)` for broadcasts, `None` for no channel of ours.
    fn topic_of<'c>(&self, channel: &'c [u8]) -> Option<Option<&'c str>> {
        let rest = channel.strip_prefix(self.config.prefix.as_bytes())?;
        if rest == b"all" {
            return Some(None);
        }
        std::str::from_utf8(rest.strip_prefix(b"t:")?).ok().map(Some)
    }

    /// One value from Redis. On the publishing connection it answers the
    /// oldest command not answered yet; on the subscribed one, an error
    /// reply ends the link (AUTH refused, say).
    fn handle(&mut self, index: usize, value: Value) -> Result<(), String> {
        if index == PUBLISHER {
            return self.on_reply(value);
        }
        match value {
            Value::Error(message) => Err(format!("Redis answered {}", String::from_utf8_lossy(&message))),
            Value::Array(Some(items)) => {
                if let [kind, channel, third] = items.as_slice() {
                    match (kind.bytes(), channel.bytes(), third.bytes()) {
                        (Some(b"message"), Some(channel), Some(payload)) => self.receive(channel, payload),
                        (Some(b"subscribe"), Some(channel), _) => self.on_confirmation(true, channel),
                        (Some(b"unsubscribe"), Some(channel), _) => self.on_confirmation(false, channel),
                        _ => {}
                    }
                }
                // PONGs need nothing.
                Ok(())
            }
            // +OK for AUTH.
            _ => Ok(()),
        }
    }

    /// A message on one of the cluster's channels: a record, or a frame in its envelope.
    fn receive(&mut self, channel: &[u8], payload: &[u8]) {
        if record::is_record(payload) {
            match self.topic_of(channel) {
                Some(Some(name)) => self.receive_record(name, payload),
                _ => {
                    ClusterStats::add(&self.stats.invalid, 1);
                    log::debug!("cluster: dropped a record on {}", String::from_utf8_lossy(channel));
                }
            }
            return;
        }
        let (Some(topic), Some(message)) = (self.topic_of(channel), envelope::decode(payload)) else {
            ClusterStats::add(&self.stats.invalid, 1);
            log::debug!("cluster: dropped a message on {} that is not ours", String::from_utf8_lossy(channel));
            return;
        };
        if message.run == self.run {
            // Our own publish, already delivered here.
            return;
        }
        // The topic's shared name, as the loops know it; none: unsubscribed
        // while the message was on its way.
        let topic = match topic {
            Some(name) => match self.wanted.get(name) {
                Some(topic) => Some(topic.clone()),
                None => return,
            },
            None => None,
        };
        if self.seen.len() >= MAX_SEQUENCES {
            self.seen.clear();
        }
        let last = self.seen.entry((message.run, topic.clone())).or_insert(0);
        if *last != 0 && message.seq <= *last {
            ClusterStats::add(&self.stats.duplicates, 1);
            return;
        }
        if *last != 0 && message.seq > *last + 1 {
            let missing = message.seq - *last - 1;
            ClusterStats::add(&self.stats.gaps, missing);
            log::debug!(
                "cluster: {missing} message(s) from {} missing on {}",
                message.node,
                String::from_utf8_lossy(channel)
            );
        }
        *last = message.seq;
        let frame = SharedFrame::from(message.frame);
        // The envelope's check is the inlet's: a refusal here is one more invalid message.
        match self.inlet.deliver(topic.as_ref(), &frame) {
            Ok(_) => ClusterStats::add(&self.stats.received, 1),
            Err(_) => ClusterStats::add(&self.stats.invalid, 1),
        }
    }

    /// Topics that gained their first or lost their last local subscriber:
    /// subscribe or unsubscribe their channels.
    fn follow_subscriptions(&mut self) {
        let changes = std::mem::take(&mut *self.signals.changes.lock().unwrap_or_else(PoisonError::into_inner));
        // The last change of each topic is where it stands now.
        let latest: HashMap<Topic, bool> = changes.into_iter().collect();
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        let up = matches!(self.links[SUBSCRIBER].link, Link::Up(_));
        for (topic, has) in latest {
            if has && self.wanted.insert(topic.clone()) {
                subscribe.push(self.channel(Some(&topic)));
            } else if !has && self.wanted.remove(&topic) {
                unsubscribe.push(self.channel(Some(&topic)));
                self.seen.retain(|(_, t), _| t.as_ref() != Some(&topic));
                self.keeping.last.remove(&topic);
            } else {
                continue;
            }
            if up {
                self.keeping.sent(&topic, has);
            }
        }
        // While the link is down, `wanted` is all a reconnect needs.
        let Link::Up(conn) = &mut self.links[SUBSCRIBER].link else { return };
        for (command, channels) in [(&b"SUBSCRIBE"[..], subscribe), (&b"UNSUBSCRIBE"[..], unsubscribe)] {
            for batch in channels.chunks(SUBSCRIBE_BATCH) {
                let mut args: Vec<&[u8]> = vec![command];
                args.extend(batch.iter().map(Vec::as_slice));
                encode_command(&args, &mut conn.out);
            }
        }
    }

    /// Takes what the loops queued, in order: publishes, appends and reads.
    fn forward_outgoing(&mut self, now: Instant) {
        let members = std::mem::take(&mut *self.signals.members.lock().unwrap_or_else(PoisonError::into_inner));
        for change in members {
            self.forward_members(change);
        }
        while let Ok(outgoing) = self.outgoing.try_recv() {
            match outgoing {
                Outgoing::Publish { topic, frame } => self.forward_publish(topic, &frame),
                Outgoing::Append(append) => self.forward_append(append),
                Outgoing::Read(request) => self.queue_read(request, now),
                Outgoing::ReadMembers(request) => self.read_members(request),
            }
        }
    }

    /// Publishes a frame; what cannot go now is counted as lost. A lost
    /// publish still takes its sequence number, so that receivers see the
    /// gap once traffic resumes.
    fn forward_publish(&mut self, topic: Option<Topic>, frame: &SharedFrame) {
        if self.published.len() >= MAX_SEQUENCES && !self.published.contains_key(&topic) {
            // A new life: receivers start counting this run's sequences afresh.
            self.published.clear();
            self.run = random_run();
        }
        let seq = self.published.entry(topic.clone()).or_insert(0);
        *seq += 1;
        let seq = *seq;
        let Link::Up(conn) = &mut self.links[PUBLISHER].link else {
            return ClusterStats::add(&self.stats.lost, 1);
        };
        // Not answered yet: perhaps a Redis that hangs, so not up (nor counted as published).
        if !conn.answered || conn.out.len() >= MAX_UNWRITTEN {
            return ClusterStats::add(&self.stats.lost, 1);
        }
        // Written straight into the output: no envelope or channel name built apart.
        let mut header = [0; envelope::MAX_HEADER];
        let header = envelope::header(self.run, seq, &self.config.node_id, &mut header);
        let prefix = self.config.prefix.as_bytes();
        let channel: &[&[u8]] = match &topic {
            Some(topic) => &[prefix, b"t:", topic.as_bytes()],
            None => &[prefix, b"all"],
        };
        encode_command_parts(&[&[b"PUBLISH"], channel, &[header, frame]], &mut conn.out);
        conn.expected.push_back(Expected::Plain);
        ClusterStats::add(&self.stats.published, 1);
    }
}

/// `{prefix}t:{topic}`, or `{prefix}all` for broadcasts (what SUBSCRIBE names).
fn channel_name(prefix: &str, topic: Option<&Topic>) -> Vec<u8> {
    match topic {
        Some(topic) => format!("{prefix}t:{topic}").into_bytes(),
        None => format!("{prefix}all").into_bytes(),
    }
}

fn random_run() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // The clock's nanoseconds: distinct enough between two nodes' starts.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        return nanos as u64;
    }
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode_frame;
    use crate::proto::OpCode;
    use crate::runtime::pubsub::{Bus, Membership, Publication};

    // The other modules' tests build their links with it, beside `bridge` and `delivered`.
    pub(super) use super::link::idle_conn;

    fn frame(text: &str) -> Vec<u8> {
        let mut frame = Vec::new();
        encode_frame(true, 0, OpCode::Text, text.as_bytes(), None, &mut frame);
        frame
    }

    /// A bridge on a one-loop bus, not connected; returns the loop's inbox.
    pub(super) fn bridge() -> (Bridge, std::sync::mpsc::Receiver<Publication>) {
        let loop_poll = Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(loop_poll.registry(), Token(9)).unwrap());
        let (bus, mut inboxes) = Bus::new(&[waker], 64, None);
        let (_sender, outgoing) = std::sync::mpsc::sync_channel(4);
        let config = ClusterConfig::new("redis://127.0.0.1:1");
        let stats = Arc::new(ClusterStats::default());
        let poll = Poll::new().unwrap();
        let signals = Arc::new(Signals::new(Waker::new(poll.registry(), BRIDGE_WAKER).unwrap()));
        // Loop 0 has a subscriber of "news", and the bridge follows it.
        bus.count_subscriber(0, &Topic::from("news"), Membership::Joined { first: true });
        let mut bridge = Bridge::new(poll, config, Inlet::new(bus), stats, outgoing, signals).unwrap();
        bridge.wanted.insert(Topic::from("news"));
        (bridge, inboxes.remove(0))
    }

    pub(super) fn delivered(inbox: &std::sync::mpsc::Receiver<Publication>) -> Vec<Vec<u8>> {
        inbox
            .try_iter()
            .map(|d| match d {
                Publication::Topic { frame, .. } | Publication::All { frame } => frame.to_vec(),
                Publication::Close { code, reason, .. } => format!("close {} {reason}", code.0).into_bytes(),
                Publication::Record(record) => record.data.to_vec(),
                Publication::Answer(answer) => format!("answer {}", answer.ticket).into_bytes(),
                Publication::Members(answer) => format!("members {}", answer.ticket).into_bytes(),
                Publication::Appended(answer) => {
                    let offset = answer.position.map(|p| p.offset);
                    format!("appended {} {offset:?}", answer.ticket).into_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn a_close_from_redis_closes_the_topics_subscribers() {
        let (mut bridge, inbox) = bridge();
        let mut close = Vec::new();
        encode_frame(true, 0, OpCode::Close, b"\x0f\xa3disconnected", None, &mut close);
        let other_run = bridge.run.wrapping_add(1);
        bridge.receive(b"ferrows:t:news", &envelope::encode(other_run, 1, "b", &close));
        assert_eq!(delivered(&inbox), [b"close 4003 disconnected".to_vec()]);
    }

    #[test]
    fn messages_from_redis_are_delivered_once_in_sequence_and_gaps_counted() {
        let (mut bridge, inbox) = bridge();
        let channel = b"ferrows:t:news";
        let other_run = bridge.run.wrapping_add(1);
        let send = |bridge: &mut Bridge, run: u64, seq: u64, text: &str| {
            bridge.receive(channel, &envelope::encode(run, seq, "b", &frame(text)));
        };
        send(&mut bridge, other_run, 1, "one");
        send(&mut bridge, other_run, 2, "two");
        send(&mut bridge, other_run, 2, "two again");
        send(&mut bridge, other_run, 5, "five");
        let own_run = bridge.run;
        send(&mut bridge, own_run, 1, "our own");
        bridge.receive(b"ferrows:t:news", b"not an envelope");
        bridge.receive(b"someone-else:t:news", &envelope::encode(other_run, 6, "b", &frame("x")));
        bridge.receive(b"ferrows:t:elsewhere", &envelope::encode(other_run, 1, "b", &frame("unwanted")));
        assert_eq!(delivered(&inbox), vec![frame("one"), frame("two"), frame("five")]);
        let stats = &bridge.stats;
        assert_eq!(stats.received.load(Ordering::Relaxed), 3);
        assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 2);
        assert_eq!(stats.invalid.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_last_change_of_a_topic_is_followed() {
        let (mut bridge, _inbox) = bridge();
        let changes = [("news", false), ("news", true), ("sport", true), ("sport", false), ("tech", true)];
        bridge.signals.changes.lock().unwrap().extend(changes.map(|(t, on)| (Topic::from(t), on)));
        bridge.follow_subscriptions();
        let mut wanted: Vec<&str> = bridge.wanted.iter().map(|t| &**t).collect();
        wanted.sort_unstable();
        assert_eq!(wanted, ["news", "tech"]);
        assert!(bridge.signals.changes.lock().unwrap().is_empty());
    }

    #[test]
    fn a_connection_redis_has_not_answered_yet_takes_no_publish() {
        let (mut bridge, _inbox) = bridge();
        let mut conn = idle_conn(Instant::now());
        conn.answered = false;
        bridge.links[PUBLISHER].link = Link::Up(Box::new(conn));
        bridge.forward_publish(Some(Topic::from("news")), &SharedFrame::from(frame("x")));
        assert_eq!(bridge.stats.lost.load(Ordering::Relaxed), 1);
        assert_eq!(bridge.stats.published.load(Ordering::Relaxed), 0);
        let Link::Up(conn) = &bridge.links[PUBLISHER].link else { unreachable!() };
        assert!(conn.out.is_empty());
    }

    #[test]
    fn broadcasts_use_their_own_channel() {
        let (mut bridge, inbox) = bridge();
        assert_eq!(bridge.channel(None), b"ferrows:all");
        assert_eq!(bridge.topic_of(b"ferrows:all"), Some(None));
        assert_eq!(bridge.topic_of(b"ferrows:t:a:b"), Some(Some("a:b")));
        let run = bridge.run.wrapping_add(1);
        bridge.receive(b"ferrows:all", &envelope::encode(run, 1, "b", &frame("to all")));
        assert_eq!(delivered(&inbox), vec![frame("to all")]);
    }
}
