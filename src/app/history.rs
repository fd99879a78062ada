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
//! recently first, counted in a metric.

use std::collections::{HashMap, VecDeque};
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
}

impl Stream {
    fn new(now: Instant, ttl: Duration) -> Self {
        Self { epoch: Epoch::draw(), last: 0, entries: VecDeque::new(), bytes: STREAM_OVERHEAD, last_publish: now, ttl }
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
#[derive(Debug, Default)]
pub struct Store {
    topics: HashMap<String, Stream>,
    bytes: usize,
    next_sweep: Option<Instant>,
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
    /// most `size` of them, and returns its position. `store` is this
    /// node's streams, locked.
    pub fn append(
        &self,
        store: &mut Store,
        topic: &str,
        data: &str,
        size: usize,
        ttl: Duration,
        now: Instant,
    ) -> Position {
        store.sweep(now, &self.stats);
        if store.topics.get(topic).is_some_and(|s| s.expired(now)) {
            store.remove(topic);
            self.stats.expired.fetch_add(1, Ordering::Relaxed);
        }
        if !store.topics.contains_key(topic) {
            store.bytes += STREAM_OVERHEAD + topic.len();
            store.topics.insert(topic.to_owned(), Stream::new(now, ttl));
        }
        let Some(stream) = store.topics.get_mut(topic) else { unreachable!("inserted above") };
        stream.last += 1;
        stream.last_publish = now;
        stream.ttl = ttl;
        let cost = ENTRY_OVERHEAD + data.len();
        stream.entries.push_back(Publication { offset: stream.last, data: Arc::from(data) });
        stream.bytes += cost;
        store.bytes += cost;
        while stream.entries.len() > size.max(1) {
            if let Some(old) = stream.entries.pop_front() {
                stream.bytes -= ENTRY_OVERHEAD + old.data.len();
                store.bytes -= ENTRY_OVERHEAD + old.data.len();
            }
        }
        let position = stream.position();
        self.stats.appended.fetch_add(1, Ordering::Relaxed);
        store.evict_over(self.max_bytes, topic, &self.stats);
        position
    }
}

impl Store {
    /// The position of `topic`'s stream and its last `limit` publications,
    /// oldest first; a topic with no stream yet gets one (offset 0, a new
    /// epoch), so that a position read before the first publication stays
    /// good after it.
    pub fn read(&mut self, topic: &str, limit: usize, ttl: Duration, now: Instant) -> (Position, Vec<Publication>) {
        if self.topics.get(topic).is_some_and(|s| s.expired(now)) {
            self.remove(topic);
        }
        if !self.topics.contains_key(topic) {
            self.bytes += STREAM_OVERHEAD + topic.len();
            self.topics.insert(topic.to_owned(), Stream::new(now, ttl));
        }
        self.recent(topic, limit, now).unwrap_or((Position { offset: 0, epoch: Epoch::draw() }, Vec::new()))
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
        }
    }

    /// Drops the streams whose TTL passed, at most once per [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant, stats: &HistoryStats) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        let expired: Vec<String> = self.topics.iter().filter(|(_, s)| s.expired(now)).map(|(t, _)| t.clone()).collect();
        for topic in expired {
            self.remove(&topic);
            stats.expired.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Evicts the streams published to least recently until the store is
    /// within `max_bytes`, sparing `keep` (the one just published to).
    fn evict_over(&mut self, max_bytes: usize, keep: &str, stats: &HistoryStats) {
        while self.bytes > max_bytes {
            let oldest = self
                .topics
                .iter()
                .filter(|(t, _)| t.as_str() != keep)
                .min_by_key(|(_, s)| s.last_publish)
                .map(|(t, _)| t.clone());
            let Some(topic) = oldest else { break };
            self.remove(&topic);
            stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
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
        let first = streams.append(&mut store, "t", "1", 3, TTL, now);
        assert_eq!(first.offset, 1);
        for n in 2..=5 {
            let at = streams.append(&mut store, "t", &n.to_string(), 3, TTL, now);
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
        let before = streams.append(&mut store, "t", "1", 10, TTL, now);
        let later = now + TTL + Duration::from_secs(1);
        assert_eq!(store.recent("t", 1, later), None, "past its TTL");
        let after = streams.append(&mut store, "t", "2", 10, TTL, later);
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
    fn epochs_are_short_hex_and_differ() {
        let (a, b) = (Epoch::draw(), Epoch::draw());
        assert_eq!(a.as_str().len(), 8);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
