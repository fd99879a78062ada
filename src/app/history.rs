//! Topic streams: the position and the recent publications of each topic
//! whose namespace keeps history (`history_size` > 0), on this node, shared
//! by every loop.
//!
//! A position is an `offset` (+1 per publication, from 1) and an `epoch`, a
//! short random string drawn when the stream starts: a stream that was lost
//! (its TTL passed, the node cap evicted it, the node restarted) starts again
//! from offset 1 under a new epoch, so an offset of before is never taken
//! for one of after.
//!
//! Memory is bounded three ways: `history_size` publications per topic, a
//! topic's history goes `history_ttl` after its last publication, and the
//! node cap (`history.max_bytes`) evicts the topics published to least
//! recently first, counted in a metric (and trims the oldest publications of
//! the topic just published to, when it alone is over the cap).
//!
//! Reading a topic that has no stream creates none: it answers offset 0
//! under the epoch the next stream will start with, which the node draws
//! again each time it drops a stream. So a position read before a topic's
//! first publication stays good after it, unless a stream was dropped in
//! between (the reader is then told it cannot recover, never given a wrong
//! history); and no amount of reading grows the store.
//!
//! Every publication handed to the loops under the lock also takes a
//! number from one counter of the node ([`Store::number`]): a subscription
//! is held back from the numbers taken before it ([`Store::mark`]), which
//! stays right when a topic's offsets start again under a new epoch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How often, at most, a publish looks for streams whose TTL passed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// What a stream costs beyond its publications' text (map entry, name, queue).
const STREAM_OVERHEAD: usize = 128;
/// What a publication costs beyond its text.
const ENTRY_OVERHEAD: usize = 40;

/// A stream's epoch: eight lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch([u8; 8]);

impl Epoch {
    fn draw() -> Self {
        let mut random = [0u8; 4];
        // Without the OS's randomness an epoch only has to differ from the last
        // one of this topic; the clock's low bits serve.
        if getrandom::fill(&mut random).is_err() {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            random = nanos.to_le_bytes();
        }
        let mut hex = [0u8; 8];
        for (i, byte) in random.iter().enumerate() {
            hex[2 * i] = b"0123456789abcdef"[usize::from(byte >> 4)];
            hex[2 * i + 1] = b"0123456789abcdef"[usize::from(byte & 0xf)];
        }
        Self(hex)
    }

    /// The epoch as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Invariant: eight ASCII hex digits.
        std::str::from_utf8(&self.0).unwrap_or("00000000")
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a topic's stream is: its last publication's offset (0 before the first) and its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The last publication's offset.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: Epoch,
}

impl super::pubsub_protocol::StreamPosition for Position {
    fn offset_epoch(&self) -> (u64, &str) {
        (self.offset, self.epoch.as_str())
    }
}

/// One kept publication: its offset and its `data`'s JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Its offset.
    pub offset: u64,
    /// The published value's JSON text.
    pub data: Arc<str>,
}

#[derive(Debug)]
struct Stream {
    epoch: Epoch,
    last: u64,
    entries: VecDeque<Publication>,
    bytes: usize,
    last_publish: Instant,
    ttl: Duration,
    /// Its place in [`Store::order`].
    touched: u64,
}

impl Stream {
    fn new(epoch: Epoch, now: Instant, ttl: Duration) -> Self {
        Self { epoch, last: 0, entries: VecDeque::new(), bytes: STREAM_OVERHEAD, last_publish: now, ttl, touched: 0 }
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_publish) > self.ttl
    }

    fn position(&self) -> Position {
        Position { offset: self.last, epoch: self.epoch }
    }
}

/// The streams' counters, for the metrics.
#[derive(Debug, Default)]
pub struct HistoryStats {
    /// Publications kept.
    pub appended: AtomicU64,
    /// Streams dropped by the node cap.
    pub evicted: AtomicU64,
    /// Streams dropped because their TTL passed.
    pub expired: AtomicU64,
    /// Publications to topics with history that could not be kept (the
    /// cluster's store unreachable): delivered on this node without a position.
    pub unkept: AtomicU64,
    /// Subscribes with `since` that recovered everything after their position.
    pub recovered: AtomicU64,
    /// Subscribes with `since` that could not (another epoch, or no longer kept).
    pub not_recovered: AtomicU64,
}

/// Every topic's stream on this node.
#[derive(Debug)]
pub struct Streams {
    store: Mutex<Store>,
    max_bytes: usize,
    stats: HistoryStats,
}

/// The streams, locked: what a publish holds while it takes its offset and
/// hands its frames to the loops, so that every loop gets a topic's
/// publications in the order of their offsets.
#[derive(Debug)]
pub struct Store {
    topics: HashMap<Arc<str>, Stream>,
    /// The streams by their last publication, least recent first (the keys
    /// count publications), for the cap's evictions.
    order: BTreeMap<u64, Arc<str>>,
    /// What a publication last took of [`order`](Self::order)'s count.
    touches: u64,
    /// The epoch the next stream starts with, drawn again when one is dropped.
    fresh: Epoch,
    /// The last number handed out ([`Store::number`]).
    numbered: u64,
    bytes: usize,
    next_sweep: Option<Instant>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            topics: HashMap::new(),
            order: BTreeMap::new(),
            touches: 0,
            fresh: Epoch::draw(),
            numbered: 0,
            bytes: 0,
            next_sweep: None,
        }
    }
}

impl Default for Streams {
    /// At most 64 MiB.
    fn default() -> Self {
        Self::new(64 << 20)
    }
}

impl Streams {
    /// Streams for this node, holding at most `max_bytes` in all.
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        Self { store: Mutex::default(), max_bytes, stats: HistoryStats::default() }
    }

    /// Locks the streams.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters.
    pub fn stats(&self) -> &HistoryStats {
        &self.stats
    }

    /// Appends a publication of `topic` (its `data` JSON text), keeping at
    /// most `size` of them, and returns its position and its number in the
    /// node's order ([`Store::number`]). `store` is this node's streams, locked.
    pub fn append(
        &self,
        store: &mut Store,
        topic: &str,
        data: &str,
        size: usize,
        ttl: Duration,
        now: Instant,
    ) -> (Position, u64) {
        store.sweep(now, &self.stats);
        if store.topics.get(topic).is_some_and(|s| s.expired(now)) {
            store.remove(topic);
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
        }
        store.touches += 1;
        let touched = store.touches;
        if let Some(stream) = store.topics.get_mut(topic) {
            if let Some(name) = store.order.remove(&stream.touched) {
                store.order.insert(touched, name);
            }
        } else {
            let name: Arc<str> = Arc::from(topic);
            store.bytes += STREAM_OVERHEAD + topic.len();
            store.order.insert(touched, name.clone());
            store.topics.insert(name, Stream::new(store.fresh, now, ttl));
        }
        let Some(stream) = store.topics.get_mut(topic) else { unreachable!("inserted above") };
        stream.touched = touched;
        stream.last += 1;
        stream.last_publish = now;
        stream.ttl = ttl;
        let cost = ENTRY_OVERHEAD + data.len();
        stream.entries.push_back(Publication { offset: stream.last, data: Arc::from(data) });
        stream.bytes += cost;
        store.bytes += cost;
        store.bytes -= stream.trim(size.max(1), usize::MAX);
        let position = stream.position();
        self.stats.appended.fetch_add(1, Ordering::Relaxed);
        store.evict_over(self.max_bytes, topic, &self.stats);
        (position, store.number())
    }
}

impl Stream {
    /// Drops the oldest publications until at most `keep` are left and the
    /// stream's bytes are within `max_bytes` (the newest stays); returns the
    /// bytes freed.
    fn trim(&mut self, keep: usize, max_bytes: usize) -> usize {
        let mut freed = 0;
        while self.entries.len() > keep || (self.bytes > max_bytes && self.entries.len() > 1) {
            let Some(old) = self.entries.pop_front() else { break };
            freed += ENTRY_OVERHEAD + old.data.len();
            self.bytes -= ENTRY_OVERHEAD + old.data.len();
        }
        freed
    }
}

impl Store {
    /// The position of `topic`'s stream and its last `limit` publications,
    /// oldest first. A topic with no stream (or one past its TTL) reads as
    /// offset 0 under the epoch its next stream will start with; nothing is
    /// created.
    pub fn read(&self, topic: &str, limit: usize, now: Instant) -> (Position, Vec<Publication>) {
        self.recent(topic, limit, now).unwrap_or((Position { offset: 0, epoch: self.fresh }, Vec::new()))
    }

    /// Takes the next number of the node's order: every publication handed
    /// to the loops under the lock takes one, so that a loop's channel
    /// carries them in rising numbers.
    pub fn number(&mut self) -> u64 {
        self.numbered += 1;
        self.numbered
    }

    /// The last number taken: a subscription made now is held back from the
    /// publications numbered up to it (they were handed out before it).
    pub fn mark(&self) -> u64 {
        self.numbered
    }

    /// The last `limit` publications of `topic`, oldest first, with its position.
    pub fn recent(&self, topic: &str, limit: usize, now: Instant) -> Option<(Position, Vec<Publication>)> {
        let stream = self.topics.get(topic).filter(|s| !s.expired(now))?;
        let skip = stream.entries.len().saturating_sub(limit);
        // A read restarts nothing: the TTL counts from the last publication.
        Some((stream.position(), stream.entries.iter().skip(skip).cloned().collect()))
    }

    /// Bytes held, all streams together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Streams held.
    pub fn topics(&self) -> usize {
        self.topics.len()
    }

    fn remove(&mut self, topic: &str) {
        if let Some(stream) = self.topics.remove(topic) {
            self.bytes -= stream.bytes + topic.len();
            self.order.remove(&stream.touched);
            // A stream that comes back starts under another epoch than any reader was told.
            self.fresh = Epoch::draw();
        }
    }

    /// Drops the streams whose TTL passed, at most once per [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant, stats: &HistoryStats) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        let expired: Vec<Arc<str>> =
            self.topics.iter().filter(|(_, s)| s.expired(now)).map(|(t, _)| t.clone()).collect();
        for topic in expired {
            self.remove(&topic);
            stats.expired.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Evicts the streams published to least recently until the store is
    /// within `max_bytes`; `keep` (the one just published to, the most
    /// recent) goes last: it loses its oldest publications instead, down to
    /// the one just published.
    fn evict_over(&mut self, max_bytes: usize, keep: &str, stats: &HistoryStats) {
        while self.bytes > max_bytes {
            let Some((_, oldest)) = self.order.first_key_value() else { break };
            if &**oldest == keep {
                let others = self.bytes - self.topics.get(keep).map_or(0, |s| s.bytes);
                if let Some(stream) = self.topics.get_mut(keep) {
                    self.bytes -= stream.trim(usize::MAX, max_bytes.saturating_sub(others));
                }
                break;
            }
            let oldest = oldest.clone();
            self.remove(&oldest);
            stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a recovered message's frame holds beyond its topic and data, at most.
const RECOVERED_OVERHEAD: usize = 96;

/// Whether a client that has `topic`'s publications up to `since` (offset,
/// epoch) can be sent all the rest, by what is kept: the stream is at `at`
/// under the same epoch, not behind the client; the first kept publication
/// (`first`) is no later than the next one; and the missed publications'
/// `data` texts (their lengths) fit within `max_bytes` once framed.
pub(super) fn can_recover(
    topic: &str,
    since: (u64, &str),
    at: (u64, &str),
    first: Option<u64>,
    missed: impl Iterator<Item = usize>,
    max_bytes: usize,
) -> bool {
    let whole = first.map_or(since.0 == at.0, |first| first <= since.0.saturating_add(1));
    let bytes: usize = missed.map(|len| len + topic.len() + RECOVERED_OVERHEAD).sum();
    since.1 == at.1 && since.0 <= at.0 && whole && bytes <= max_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn offsets_count_up_and_the_window_slides() {
        let streams = Streams::new(1 << 20);
        let now = crate::test_clock();
        let mut store = streams.lock();
        let (first, _) = streams.append(&mut store, "t", "1", 3, TTL, now);
        assert_eq!(first.offset, 1);
        for n in 2..=5 {
            let (at, _) = streams.append(&mut store, "t", &n.to_string(), 3, TTL, now);
            assert_eq!((at.offset, at.epoch), (n, first.epoch));
        }
        let (position, recent) = store.recent("t", 10, now).unwrap();
        assert_eq!(position.offset, 5);
        let kept: Vec<(u64, &str)> = recent.iter().map(|p| (p.offset, &*p.data)).collect();
        assert_eq!(kept, [(3, "3"), (4, "4"), (5, "5")]);
        assert_eq!(store.recent("t", 2, now).unwrap().1.len(), 2);
        assert_eq!(store.recent("other", 1, now), None);
    }

    #[test]
    fn a_lost_stream_starts_again_under_a_new_epoch() {
        let streams = Streams::new(1 << 20);
        let now = crate::test_clock();
        let mut store = streams.lock();
        let (before, _) = streams.append(&mut store, "t", "1", 10, TTL, now);
        let later = now + TTL + Duration::from_secs(1);
        assert_eq!(store.recent("t", 1, later), None, "past its TTL");
        let (after, _) = streams.append(&mut store, "t", "2", 10, TTL, later);
        assert_eq!(after.offset, 1);
        assert_ne!(after.epoch, before.epoch);
        assert_eq!(streams.stats().expired.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_node_cap_evicts_the_least_recently_published_topics() {
        let streams = Streams::new(2_000);
        let now = crate::test_clock();
        let mut store = streams.lock();
        for (i, topic) in ["a", "b", "c", "d"].iter().enumerate() {
            let at = now + Duration::from_millis(i as u64);
            streams.append(&mut store, topic, &"x".repeat(300), 100, TTL, at);
            streams.append(&mut store, topic, &"x".repeat(300), 100, TTL, at);
        }
        assert!(store.bytes() <= 2_000, "{}", store.bytes());
        let later = now + Duration::from_millis(10);
        assert_eq!(store.recent("a", 1, later), None, "the oldest went first");
        assert!(store.recent("d", 1, later).is_some());
        assert!(streams.stats().evicted.load(Ordering::Relaxed) >= 1);
        // Bytes are accounted back to zero once every stream is gone.
        let gone = now + TTL * 2;
        streams.append(&mut store, "e", "1", 1, TTL, gone);
        assert_eq!(store.topics(), 1);
        assert_eq!(store.bytes(), STREAM_OVERHEAD + 1 + ENTRY_OVERHEAD + 1);
    }

    #[test]
    fn reading_creates_nothing_and_a_position_read_first_stays_good() {
        let streams = Streams::new(1 << 20);
        let now = crate::test_clock();
        let mut store = streams.lock();
        let (read, kept) = store.read("new", 10, now);
        assert_eq!((read.offset, kept.len()), (0, 0));
        assert_eq!((store.topics(), store.bytes()), (0, 0), "a read keeps nothing");
        let (first, _) = streams.append(&mut store, "new", "1", 10, TTL, now);
        assert_eq!((first.offset, first.epoch), (1, read.epoch), "the read's epoch is the stream's");
        // Once a stream was dropped, a position read before cannot match the next one.
        let (unread, _) = store.read("other", 10, now);
        let later = now + TTL + Duration::from_secs(2);
        streams.append(&mut store, "third", "x", 10, TTL, later);
        assert_eq!(store.topics(), 1, "the swept stream went");
        let (next, _) = streams.append(&mut store, "other", "1", 10, TTL, later);
        assert_ne!(next.epoch, unread.epoch);
    }

    #[test]
    fn numbers_rise_across_topics_and_epochs() {
        let streams = Streams::new(1 << 20);
        let now = crate::test_clock();
        let mut store = streams.lock();
        let (_, a) = streams.append(&mut store, "a", "1", 10, TTL, now);
        let mark = store.mark();
        assert_eq!(mark, a);
        let between = store.number();
        let later = now + TTL * 2;
        let (restarted, b) = streams.append(&mut store, "a", "2", 10, TTL, later);
        assert_eq!(restarted.offset, 1, "a new life of the topic");
        assert!(a < between && between < b && mark < b);
    }

    #[test]
    fn one_topic_alone_over_the_cap_loses_its_oldest_publications() {
        let streams = Streams::new(1_000);
        let now = crate::test_clock();
        let mut store = streams.lock();
        for n in 0..10 {
            streams.append(&mut store, "big", &format!("{n:0>200}"), 100, TTL, now);
        }
        assert!(store.bytes() <= 1_000, "{}", store.bytes());
        let (position, kept) = store.recent("big", 100, now).unwrap();
        assert_eq!(position.offset, 10);
        assert!(!kept.is_empty() && kept.len() < 10, "{}", kept.len());
        assert_eq!(kept.last().unwrap().offset, 10, "the newest stays");
        assert_eq!(streams.stats().evicted.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn epochs_are_short_hex_and_differ() {
        let (a, b) = (Epoch::draw(), Epoch::draw());
        assert_eq!(a.as_str().len(), 8);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
