//! Topics: per-loop subscription tables, and the bus that carries a publish
//! to the other loops.
//!
//! Each loop keeps its own table of which of its sessions subscribe to which
//! topics; only the loop's thread touches it. A shared directory records,
//! per topic, which loops have subscribers, so a publish wakes only those
//! loops. It changes only when a loop gains its first or loses its last
//! subscriber of a topic, and is read briefly on publish, never while writing
//! to a socket. Cross-loop deliveries travel through a bounded channel per
//! loop, with that loop's `mio::Waker`; a flag coalesces the wakes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};

use mio::Waker;

use super::handler::SessionId;
use super::records::{Appended, MembersAnswer, ReadAnswer, Record};
use super::uplink::Uplink;
use crate::proto::CloseCode;
use crate::session::SharedFrame;

/// A topic name, shared between the tables that mention it.
pub type Topic = Arc<str>;

/// One loop's subscriptions: which sessions (`K`, a [`SessionId`] in the
/// runtime) subscribe to which topics, both ways round, so that a publish
/// finds its subscribers and a closing session leaves all its topics.
///
/// ```
/// use ferrows::runtime::Topics;
///
/// let mut topics: Topics<u32> = Topics::default();
/// assert_eq!(topics.subscribe(1, "news"), Some(("news".into(), true))); // the first subscriber
/// assert_eq!(topics.subscribe(2, "news"), Some(("news".into(), false)));
/// assert_eq!(topics.subscribe(2, "news"), None); // already
/// assert_eq!(topics.subscriber_count("news"), 2);
/// assert_eq!(topics.remove_session(1), [("news".into(), false)]);
/// assert_eq!(topics.remove_session(2), [("news".into(), true)]); // the last one: "news" is gone
/// assert_eq!(topics.counts(), (0, 0));
/// ```
#[derive(Debug)]
pub struct Topics<K = SessionId> {
    by_topic: HashMap<Topic, HashSet<K>>,
    by_session: HashMap<K, Vec<Topic>>,
    subscriptions: usize,
    /// Subscriptions held back until publications numbered past a mark
    /// (after a subscriber caught up by other means): few, and short-lived.
    /// By session, so that a publication checks each subscriber in constant time.
    held: HashMap<K, Vec<(Topic, u64)>>,
}

impl<K> Default for Topics<K> {
    fn default() -> Self {
        Self { by_topic: HashMap::new(), by_session: HashMap::new(), subscriptions: 0, held: HashMap::new() }
    }
}

impl<K: Copy + Eq + std::hash::Hash> Topics<K> {
    /// Subscribes `session` to `topic`. Returns `None` if it already was, else
    /// the topic's shared name and whether `session` is the loop's first subscriber.
    pub fn subscribe(&mut self, session: K, topic: &str) -> Option<(Topic, bool)> {
        let key: Topic = self.by_topic.get_key_value(topic).map_or_else(|| Arc::from(topic), |(k, _)| k.clone());
        let set = self.by_topic.entry(key.clone()).or_default();
        let first = set.is_empty();
        if !set.insert(session) {
            return None;
        }
        self.subscriptions += 1;
        self.by_session.entry(session).or_default().push(key.clone());
        Some((key, first))
    }

    /// Unsubscribes `session` from `topic`. Returns `None` if it was not
    /// subscribed, else the topic and whether the loop has no subscriber of it left.
    pub fn unsubscribe(&mut self, session: K, topic: &str) -> Option<(Topic, bool)> {
        let sessions = self.by_topic.get_mut(topic)?;
        if !sessions.remove(&session) {
            return None;
        }
        let last = sessions.is_empty();
        self.unhold(session, topic);
        // A topic with no subscribers leaves no trace.
        let key =
            if last { self.by_topic.remove_entry(topic)?.0 } else { self.by_topic.get_key_value(topic)?.0.clone() };
        self.subscriptions -= 1;
        if let Some(list) = self.by_session.get_mut(&session) {
            if let Some(at) = list.iter().position(|t| &**t == topic) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                self.by_session.remove(&session);
            }
        }
        Some((key, last))
    }

    /// Removes every subscription of `session`; returns each topic it left,
    /// with `true` where the loop has no subscriber of it left.
    pub fn remove_session(&mut self, session: K) -> Vec<(Topic, bool)> {
        let Some(list) = self.by_session.remove(&session) else {
            return Vec::new();
        };
        self.held.remove(&session);
        self.subscriptions -= list.len();
        let mut left = Vec::with_capacity(list.len());
        for topic in list {
            let mut last = false;
            if let Some(set) = self.by_topic.get_mut(&topic) {
                set.remove(&session);
                last = set.is_empty();
                if last {
                    self.by_topic.remove(&topic);
                }
            }
            left.push((topic, last));
        }
        left
    }

    /// How many of the loop's sessions subscribe to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.by_topic.get(topic).map_or(0, HashSet::len)
    }

    /// The loop's subscribers of `topic`.
    pub fn subscribers(&self, topic: &str) -> impl Iterator<Item = K> + '_ {
        self.by_topic.get(topic).into_iter().flatten().copied()
    }

    /// The loop's subscribers of `topic` that take a publication numbered
    /// `seq` (0: not numbered, taken by all): those held back up to a mark
    /// at or past `seq` are left out.
    pub fn subscribers_at<'a>(&'a self, topic: &'a str, seq: u64) -> impl Iterator<Item = K> + 'a {
        let held = seq != 0 && !self.held.is_empty();
        self.subscribers(topic).filter(move |s| {
            !held || !self.held.get(s).is_some_and(|marks| marks.iter().any(|(t, mark)| &**t == topic && *mark >= seq))
        })
    }

    /// Holds `session`'s subscription of `topic` back from publications
    /// numbered up to `mark` (it has them already, or knows it missed them),
    /// until [`end_holds`](Self::end_holds).
    pub fn hold_until(&mut self, session: K, topic: &str, mark: u64) {
        let Some(key) = self.of_topic_key(topic) else { return };
        let marks = self.held.entry(session).or_default();
        marks.retain(|(t, _)| *t != key);
        marks.push((key, mark));
    }

    /// Ends every hold: called once the loop's channel was drained after
    /// the holds were made, when every numbered publication up to a mark
    /// (sent before the mark was taken) has come through and been held back.
    pub fn end_holds(&mut self) {
        if !self.held.is_empty() {
            self.held.clear();
        }
    }

    fn unhold(&mut self, session: K, topic: &str) {
        if let Some(marks) = self.held.get_mut(&session) {
            marks.retain(|(t, _)| &**t != topic);
            if marks.is_empty() {
                self.held.remove(&session);
            }
        }
    }

    /// The shared name of `topic`, if the loop has subscribers of it.
    pub fn of_topic_key(&self, topic: &str) -> Option<Topic> {
        self.by_topic.get_key_value(topic).map(|(k, _)| k.clone())
    }

    /// The topics `session` subscribes to.
    pub fn of_session(&self, session: K) -> &[Topic] {
        self.by_session.get(&session).map_or(&[], Vec::as_slice)
    }

    /// How many topics have subscribers, and how many subscriptions there are.
    pub fn counts(&self) -> (usize, usize) {
        (self.by_topic.len(), self.subscriptions)
    }
}

/// A publish on its way to another loop.
#[derive(Debug)]
pub(crate) enum Publication {
    /// To the loop's subscribers of a topic; `seq` numbers it (0: not
    /// numbered); `exclude` is a session left out, with its loop.
    Topic { topic: Topic, frame: SharedFrame, seq: u64, exclude: Option<(usize, SessionId)> },
    /// To every session of the loop.
    All { frame: SharedFrame },
    /// Close the loop's subscribers of a topic with this code and reason.
    Close { topic: Topic, code: CloseCode, reason: Arc<str> },
    /// A record of a topic the loop has subscribers of, for its handler.
    Record(Arc<Record>),
    /// The answer to the loop's reads of kept records, for its handler.
    Answer(ReadAnswer),
    /// The answer to the loop's read of a topic's members, for its handler.
    Members(MembersAnswer),
    /// The answer to an append of the loop, for its handler.
    Appended(Appended),
}

/// Counters of what the bus and the subscribers' queues could not take.
#[derive(Debug, Default)]
pub struct PubSubStats {
    /// Deliveries dropped because a loop's inbound channel was full.
    pub dropped_channel_full: AtomicU64,
    /// Messages dropped for a subscriber whose output queue was over its limit.
    pub dropped_backpressure: AtomicU64,
    /// Subscribers closed (1008) for being too slow.
    pub slow_consumers_closed: AtomicU64,
}

struct Inbox {
    sender: SyncSender<Publication>,
    waker: Arc<Waker>,
    /// Set when a wake is pending, so that a burst of publishes wakes the loop once.
    woken: AtomicBool,
}

/// A topic's entry in the directory.
#[derive(Debug, Default)]
struct Subscribed {
    /// A bit per loop (of the first 64) with subscribers.
    loops: u64,
    /// Subscribers on all loops. A loop that already has subscribers of the
    /// topic counts its others under the read lock.
    count: AtomicUsize,
}

/// A session starting or ending its subscription of a topic, as its loop's table saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Subscribed; `first`: the loop had no subscriber of the topic before.
    Joined { first: bool },
    /// Unsubscribed or closed; `last`: the loop has no subscriber of the topic left.
    Left { last: bool },
}

/// The shared part: every loop's inbox and the topic directory.
pub(crate) struct Bus {
    inboxes: Vec<Inbox>,
    /// Per topic with subscribers on some loop: which loops, and how many subscribers.
    directory: RwLock<HashMap<Topic, Subscribed>>,
    pub(crate) stats: PubSubStats,
    /// The bridge to elsewhere, if the server has one.
    pub(crate) uplink: Option<Arc<dyn Uplink>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("loops", &self.inboxes.len()).finish_non_exhaustive()
    }
}

impl Bus {
    /// A bus for loops with these wakers, and the uplink if there is one;
    /// returns it and each loop's receiver.
    pub(crate) fn new(
        wakers: &[Arc<Waker>],
        capacity: usize,
        uplink: Option<Arc<dyn Uplink>>,
    ) -> (Arc<Self>, Vec<Receiver<Publication>>) {
        let mut inboxes = Vec::with_capacity(wakers.len());
        let mut receivers = Vec::with_capacity(wakers.len());
        for waker in wakers {
            let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
            inboxes.push(Inbox { sender, waker: waker.clone(), woken: AtomicBool::new(false) });
            receivers.push(receiver);
        }
        let bus = Self { inboxes, directory: RwLock::new(HashMap::new()), stats: PubSubStats::default(), uplink };
        (Arc::new(bus), receivers)
    }

    fn bit(loop_index: usize) -> u64 {
        if loop_index < 64 {
            1 << loop_index
        } else {
            0
        }
    }

    /// Records a subscriber of `topic` joining or leaving on `loop_index`. The
    /// directory is written only when a loop gains its first or loses its last
    /// subscriber of a topic; other changes count under the read lock.
    pub(crate) fn count_subscriber(&self, loop_index: usize, topic: &Topic, change: Membership) {
        if matches!(change, Membership::Joined { first: false } | Membership::Left { last: false }) {
            if let Some(entry) = self.directory.read().ok().as_ref().and_then(|d| d.get(topic)) {
                match change {
                    Membership::Joined { .. } => entry.count.fetch_add(1, Ordering::Relaxed),
                    Membership::Left { .. } => entry.count.fetch_sub(1, Ordering::Relaxed),
                };
            }
            return;
        }
        let Ok(mut directory) = self.directory.write() else { return };
        let known = directory.contains_key(topic);
        let entry = directory.entry(topic.clone()).or_default();
        if let Membership::Joined { .. } = change {
            entry.loops |= Self::bit(loop_index);
            entry.count.fetch_add(1, Ordering::Relaxed);
        } else {
            entry.loops &= !Self::bit(loop_index);
            entry.count.fetch_sub(1, Ordering::Relaxed);
        }
        // Loops past the 64th have no bit: the count keeps their topics listed.
        let now_subscribed = entry.count.load(Ordering::Relaxed) > 0;
        if !now_subscribed {
            directory.remove(topic);
        }
        // Under the write lock, so that the uplink hears two loops' changes in their order.
        if known != now_subscribed {
            if let Some(uplink) = &self.uplink {
                uplink.interest(topic, now_subscribed);
            }
        }
    }

    /// Whether any loop of this node has subscribers of `topic`.
    pub(crate) fn has_subscribers(&self, topic: &str) -> bool {
        self.directory.read().is_ok_and(|d| d.contains_key(topic))
    }

    /// The subscribers of `topic` on all loops, as the directory counts them.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.loops_of(topic).1
    }

    /// Every topic with subscribers on some loop, with their number.
    pub(crate) fn topic_counts(&self) -> Vec<(Topic, usize)> {
        let Ok(directory) = self.directory.read() else { return Vec::new() };
        directory.iter().map(|(topic, entry)| (topic.clone(), entry.count.load(Ordering::Relaxed))).collect()
    }

    /// The directory's shared name of `topic`, if some loop has subscribers of it.
    pub(crate) fn directory_key(&self, topic: &str) -> Option<Topic> {
        self.directory.read().ok()?.get_key_value(topic).map(|(key, _)| key.clone())
    }

    /// Hands a local publish (`topic`) or broadcast (`None`) to the uplink, if there is one.
    pub(crate) fn send_to_uplink(&self, topic: Option<&Topic>, frame: &SharedFrame) {
        if let Some(uplink) = &self.uplink {
            uplink.publish(topic, frame);
        }
    }

    /// Sends `delivery` to every other loop that may have receivers for it
    /// (`from_loop` past the last loop: to every loop, as the uplink's deliveries go).
    /// Returns the subscribers of `topic` on all loops, as the directory counts them.
    pub(crate) fn send_to_others(&self, from_loop: usize, topic: Option<&Topic>, frame: &SharedFrame) -> usize {
        let (mask, subscribers) = match topic {
            Some(topic) => self.loops_of(topic),
            None => (u64::MAX, 0),
        };
        self.send_to_loops(from_loop, mask, || match topic {
            Some(topic) => Publication::Topic { topic: topic.clone(), frame: frame.clone(), seq: 0, exclude: None },
            None => Publication::All { frame: frame.clone() },
        });
        subscribers
    }

    /// Sends a publication numbered `seq` to every loop with subscribers of
    /// `topic`, the publishing loop included: through the channels only, so
    /// that each loop takes a topic's numbered publications in the order
    /// they were sent, whichever loop sent them. Returns the subscribers of
    /// `topic` on all loops, as the directory counts them.
    pub(crate) fn send_numbered(
        &self,
        topic: &Topic,
        frame: &SharedFrame,
        seq: u64,
        exclude: Option<(usize, SessionId)>,
    ) -> usize {
        let (mask, subscribers) = self.loops_of(topic);
        self.send_to_loops(usize::MAX, mask, || Publication::Topic {
            topic: topic.clone(),
            frame: frame.clone(),
            seq,
            exclude,
        });
        subscribers
    }

    /// Asks every other loop with subscribers of `topic` (`from_loop` past the
    /// last loop: every such loop) to close them with `code` and `reason`.
    /// Returns the subscribers of `topic` on all loops, as the directory counts them.
    pub(crate) fn close_on_others(&self, from_loop: usize, topic: &Topic, code: CloseCode, reason: &str) -> usize {
        let (mask, subscribers) = self.loops_of(topic);
        let reason: Arc<str> = Arc::from(reason);
        self.send_to_loops(from_loop, mask, || Publication::Close {
            topic: topic.clone(),
            code,
            reason: reason.clone(),
        });
        subscribers
    }

    /// Hands `record` to every loop with subscribers of its topic; returns those subscribers.
    pub(crate) fn send_record(&self, record: Record) -> usize {
        let (mask, subscribers) = self.loops_of(&record.topic);
        let record = Arc::new(record);
        self.send_to_loops(usize::MAX, mask, || Publication::Record(record.clone()));
        subscribers
    }

    /// Hands `answer` to loop `loop_index`; false if there is no such loop or its channel is full.
    ///
    /// Unlike a publish, an answer is never dropped for a full inbox (a
    /// session waits for it): the caller (the uplink's thread) waits until
    /// the loop makes room, which it does at its next iteration.
    pub(crate) fn send_answer(&self, loop_index: usize, answer: ReadAnswer) -> bool {
        self.send_waiting(loop_index, Publication::Answer(answer))
    }

    /// Hands `answer` to loop `loop_index`; as [`send_answer`](Self::send_answer).
    pub(crate) fn send_members(&self, loop_index: usize, answer: MembersAnswer) -> bool {
        self.send_waiting(loop_index, Publication::Members(answer))
    }

    /// Hands `answer` to loop `loop_index`; as [`send_answer`](Self::send_answer).
    pub(crate) fn send_appended(&self, loop_index: usize, answer: Appended) -> bool {
        self.send_waiting(loop_index, Publication::Appended(answer))
    }

    /// Puts `delivery` in loop `index`'s inbox, waiting for room, and wakes
    /// the loop; false when there is no such loop or it has stopped.
    fn send_waiting(&self, index: usize, delivery: Publication) -> bool {
        let Some(inbox) = self.inboxes.get(index) else { return false };
        if inbox.sender.send(delivery).is_err() {
            return false;
        }
        if !inbox.woken.swap(true, Ordering::AcqRel) {
            if let Err(e) = inbox.waker.wake() {
                log::warn!("cannot wake loop {index}: {e}");
            }
        }
        true
    }

    /// Which loops have subscribers of `topic` (a bit each), and how many subscribers in all.
    fn loops_of(&self, topic: &str) -> (u64, usize) {
        self.directory
            .read()
            .ok()
            .and_then(|d| d.get(topic).map(|e| (e.loops, e.count.load(Ordering::Relaxed))))
            .unwrap_or((0, 0))
    }

    /// Puts what `delivery` makes in the inbox of every loop in `mask` but `from_loop`.
    fn send_to_loops(&self, from_loop: usize, mask: u64, delivery: impl Fn() -> Publication) {
        for index in 0..self.inboxes.len() {
            // Loops past the 64th are not in the directory: they always get a copy.
            if index == from_loop || (index < 64 && mask & Self::bit(index) == 0) {
                continue;
            }
            self.send_to(index, delivery());
        }
    }

    /// Puts `delivery` in loop `index`'s inbox and wakes it; false when it
    /// could not (no such loop, or its inbox is full: counted).
    fn send_to(&self, index: usize, delivery: Publication) -> bool {
        let Some(inbox) = self.inboxes.get(index) else { return false };
        match inbox.sender.try_send(delivery) {
            Ok(()) => {
                if !inbox.woken.swap(true, Ordering::AcqRel) {
                    if let Err(e) = inbox.waker.wake() {
                        log::warn!("cannot wake loop {index}: {e}");
                    }
                }
                true
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped_channel_full.fetch_add(1, Ordering::Relaxed);
                log::debug!("loop {index} inbox full: a publish is dropped there");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Called by a loop before it drains its inbox: later sends wake it again.
    pub(crate) fn clear_woken(&self, loop_index: usize) {
        if let Some(inbox) = self.inboxes.get(loop_index) {
            inbox.woken.store(false, Ordering::Release);
        }
    }

    /// Wakes every loop (for shutdown).
    pub(crate) fn wake_all(&self) {
        for inbox in &self.inboxes {
            if let Err(e) = inbox.waker.wake() {
                log::warn!("cannot wake an event loop: {e}");
            }
        }
    }

    /// How many topics have subscribers on some loop.
    pub(crate) fn directory_len(&self) -> usize {
        self.directory.read().map_or(0, |d| d.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: usize) -> SessionId {
        SessionId { key, generation: 0 }
    }

    #[test]
    fn first_and_last_subscribers_are_reported() {
        let mut t = Topics::default();
        let a = |first| Some((Topic::from("a"), first));
        assert_eq!(t.subscribe(id(1), "a"), a(true));
        assert_eq!(t.subscribe(id(2), "a"), a(false));
        assert_eq!(t.subscribe(id(2), "a"), None, "subscribing twice changes nothing");
        assert_eq!(t.subscriber_count("a"), 2);
        assert_eq!(t.unsubscribe(id(3), "a"), None, "not a subscriber");
        assert_eq!(t.unsubscribe(id(1), "a"), a(false));
        assert_eq!(t.unsubscribe(id(1), "a"), None, "unsubscribing twice changes nothing");
        assert_eq!(t.unsubscribe(id(2), "a"), a(true));
        assert_eq!(t.counts(), (0, 0), "a topic with no subscribers leaves no trace");
    }

    #[test]
    fn removing_a_session_leaves_all_its_topics() {
        let mut t = Topics::default();
        t.subscribe(id(1), "a");
        t.subscribe(id(1), "b");
        t.subscribe(id(2), "b");
        let mut left: Vec<(String, bool)> = t.remove_session(id(1)).iter().map(|(s, l)| (s.to_string(), *l)).collect();
        left.sort();
        assert_eq!(left, [("a".to_owned(), true), ("b".to_owned(), false)]);
        assert_eq!(t.subscribers("b").collect::<Vec<_>>(), [id(2)]);
        assert_eq!(t.of_session(id(1)), &[] as &[Topic]);
        assert_eq!(t.counts(), (1, 1));
    }

    #[test]
    fn a_held_subscription_skips_numbered_publications_up_to_its_mark() {
        let mut t = Topics::default();
        t.subscribe(id(1), "a");
        t.subscribe(id(2), "a");
        t.hold_until(id(2), "a", 5);
        let at = |t: &Topics, seq| t.subscribers_at("a", seq).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(at(&t, 5), [id(1)].into(), "5 is held back from 2");
        assert_eq!(at(&t, 0), [id(1), id(2)].into(), "unnumbered: everyone");
        assert_eq!(at(&t, 6), [id(1), id(2)].into(), "past its mark");
        t.end_holds();
        assert_eq!(at(&t, 3), [id(1), id(2)].into(), "no hold left");
        // A session that leaves takes its hold along.
        t.hold_until(id(2), "a", 9);
        t.remove_session(id(2));
        t.subscribe(id(2), "a");
        assert_eq!(at(&t, 7), [id(1), id(2)].into());
    }
}
