//! A hashed timing wheel for session deadlines.
//!
//! Each tick looks at one slot, so the cost of a tick depends on how many
//! deadlines fall in that slot, not on how many sessions are open. Entries are
//! never removed when a deadline moves: the owner keeps its true deadline and
//! checks it when an entry fires, re-arming if the deadline went later. A
//! session thus has one live entry most of the time, however often its
//! deadline is pushed back (every message pushes the keepalive back).
//!
//! Memory. A session that ends leaves its entry behind, and short
//! connections would fill the wheel with such orphans for a whole deadline
//! (30 s of keepalive: a million entries at 30,000 connections a second).
//! So the owner says when an armed session ends
//! ([`orphan`](TimerWheel::orphan)), and once orphans may outnumber the open
//! sessions the wheel is swept of them ([`sweep`](TimerWheel::sweep)): a
//! cost per ended session that does not grow with the rate. And entries live
//! in one array of nodes, each slot a linked list through it, rather than in
//! a buffer per slot: 2,048 buffers growing and shrinking as deadlines come
//! and go, each living for a whole deadline among the short-lived
//! allocations of handshakes, fragment the heap until the allocator holds
//! many times what is in use (measured: RSS rising by 1 MB every 10 s under
//! 25,000 handshakes a second, and kept after the load). The node array is
//! one allocation, reused through a free list, and rebuilt smaller by a
//! sweep once it is mostly free.

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(50);
/// Slots in the wheel: 2,048 × 50 ms ≈ 102 s in one turn, more than any default deadline.
const SLOTS: usize = 2048;
/// Orphans always tolerated before a sweep, so that few sessions do not
/// mean a sweep per ended session.
const SWEEP_AFTER: usize = 4096;
/// Nodes the array keeps room for however few are in use.
const NODES_KEEP: usize = 1024;
/// The end of a list.
const NIL: u32 = u32::MAX;

/// One entry: the owner's token, the tick it is due at, and the next node
/// of its list.
#[derive(Debug, Clone, Copy)]
struct Node {
    token: usize,
    /// Read only for entries a turn or more ahead (the `later` list).
    at_tick: u64,
    next: u32,
}

/// A list of nodes: its first and last.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List { head: NIL, tail: NIL };
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    /// The next tick to process: every tick before it has been processed.
    next_tick: u64,
    /// The entries due in the coming turn (`next_tick` and the `SLOTS - 1`
    /// ticks after it), by tick modulo `SLOTS`.
    slots: Box<[List]>,
    /// Entries due later, moved into the slots when their turn begins.
    later: List,
    /// Every entry's node; unused ones are chained from `free`.
    nodes: Vec<Node>,
    free: u32,
    len: usize,
    /// Entries left by ended sessions since the last sweep (at most: some
    /// may have fired since).
    orphans: usize,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 starts at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            next_tick: 0,
            slots: vec![List::EMPTY; SLOTS].into_boxed_slice(),
            later: List::EMPTY,
            nodes: Vec::new(),
            free: NIL,
            len: 0,
            orphans: 0,
        }
    }

    /// Arms a timer for `token` at `deadline` (rounded up to the next tick);
    /// returns the tick it fires at, in 32 bits (50 ms ticks: six years),
    /// which is what an owner keeps to compare a later deadline with.
    pub fn insert(&mut self, token: usize, deadline: Instant) -> u32 {
        let tick = self.tick_at(deadline).max(self.next_tick);
        let node = self.node(token, tick);
        if tick < self.next_tick + SLOTS as u64 {
            self.append(ListId::Slot(slot_of(tick)), node);
        } else {
            self.append(ListId::Later, node);
        }
        self.len += 1;
        u32::try_from(tick).unwrap_or(u32::MAX)
    }

    /// The tick `deadline` would be armed at: see [`insert`](Self::insert).
    pub fn tick_of(&self, deadline: Instant) -> u32 {
        u32::try_from(self.tick_at(deadline).max(self.next_tick)).unwrap_or(u32::MAX)
    }

    /// Whether an entry armed at `tick` (as [`insert`](Self::insert)
    /// returned it) has yet to fire.
    pub fn is_pending(&self, tick: u32) -> bool {
        u64::from(tick) >= self.next_tick
    }

    /// How long until the next tick that may fire something, if anything is armed.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let next = self.start + TICK * u32::try_from(self.next_tick).unwrap_or(u32::MAX);
        Some(next.saturating_duration_since(now))
    }

    /// Collects into `fired` the tokens of every entry due at `now`.
    pub fn expire(&mut self, now: Instant, fired: &mut Vec<usize>) {
        let now_tick = self.tick_floor(now);
        if self.len > 0 && now_tick >= self.next_tick + SLOTS as u64 {
            // A pause of a turn or more: everything in the slots is due.
            for slot in 0..SLOTS {
                self.fire(slot, fired);
            }
            // Go on from the start of the current turn, where what is due
            // of the later entries fires or moves into the slots.
            self.next_tick = now_tick - now_tick % SLOTS as u64;
        }
        while self.next_tick <= now_tick && self.len > 0 {
            if self.next_tick % SLOTS as u64 == 0 {
                self.begin_turn(fired);
            }
            self.fire(slot_of(self.next_tick), fired);
            self.next_tick += 1;
        }
        if self.next_tick <= now_tick {
            // Nothing is armed.
            self.next_tick = now_tick + 1;
        }
    }

    /// Moves the tokens of slot `slot` to `fired`, and its nodes to the free list.
    fn fire(&mut self, slot: usize, fired: &mut Vec<usize>) {
        let list = std::mem::replace(&mut self.slots[slot], List::EMPTY);
        let mut at = list.head;
        while at != NIL {
            let node = self.nodes[at as usize];
            fired.push(node.token);
            self.len -= 1;
            if node.next == NIL {
                // The whole list joins the free list at once.
                self.nodes[at as usize].next = self.free;
                self.free = list.head;
            }
            at = node.next;
        }
    }

    /// At the start of a turn: the later entries due in it move into the
    /// slots, and any already due (after a pause) fire.
    fn begin_turn(&mut self, fired: &mut Vec<usize>) {
        let mut at = std::mem::replace(&mut self.later, List::EMPTY).head;
        while at != NIL {
            let node = self.nodes[at as usize];
            self.nodes[at as usize].next = NIL;
            if node.at_tick < self.next_tick {
                fired.push(node.token);
                self.len -= 1;
                self.release(at);
            } else if node.at_tick < self.next_tick + SLOTS as u64 {
                self.append(ListId::Slot(slot_of(node.at_tick)), at);
            } else {
                self.append(ListId::Later, at);
            }
            at = node.next;
        }
    }

    /// A session with an entry in the wheel ended: its entry is an orphan now.
    pub fn orphan(&mut self) {
        self.orphans += 1;
    }

    /// Whether orphans may outnumber the `open` sessions (and a floor):
    /// time to [`sweep`](Self::sweep).
    pub fn wants_sweep(&self, open: usize) -> bool {
        self.orphans > open.max(SWEEP_AFTER)
    }

    /// Drops the entries whose token `live` says belongs to no session, and
    /// rebuilds the node array smaller when most of it is unused.
    pub fn sweep(&mut self, mut live: impl FnMut(usize) -> bool) {
        for id in (0..SLOTS).map(ListId::Slot).chain([ListId::Later]) {
            let mut at = std::mem::replace(self.list_mut(id), List::EMPTY).head;
            while at != NIL {
                let node = self.nodes[at as usize];
                if live(node.token) {
                    self.nodes[at as usize].next = NIL;
                    self.append(id, at);
                } else {
                    self.len -= 1;
                    self.release(at);
                }
                at = node.next;
            }
        }
        self.orphans = 0;
        if self.nodes.capacity() > NODES_KEEP && self.nodes.capacity() > 4 * self.len {
            self.compact();
        }
    }

    /// Copies the entries into a new node array sized for them.
    fn compact(&mut self) {
        let mut kept = Vec::with_capacity((2 * self.len).max(NODES_KEEP));
        for id in (0..SLOTS).map(ListId::Slot).chain([ListId::Later]) {
            let mut at = std::mem::replace(self.list_mut(id), List::EMPTY).head;
            while at != NIL {
                let node = self.nodes[at as usize];
                kept.push(Node { next: NIL, ..node });
                let index = u32::try_from(kept.len() - 1).unwrap_or(NIL);
                link(&mut kept, list_of(&mut self.slots, &mut self.later, id), index);
                at = node.next;
            }
        }
        self.nodes = kept;
        self.free = NIL;
    }

    /// How many entries are armed (live and stale).
    pub fn len(&self) -> usize {
        self.len
    }

    /// A node for `token` due at `tick`: a free one, or a new one.
    fn node(&mut self, token: usize, tick: u64) -> u32 {
        let node = Node { token, at_tick: tick, next: NIL };
        if self.free != NIL {
            let at = self.free;
            self.free = self.nodes[at as usize].next;
            self.nodes[at as usize] = node;
            return at;
        }
        self.nodes.push(node);
        // Four billion entries would need 96 GiB of nodes first.
        u32::try_from(self.nodes.len() - 1).unwrap_or(NIL)
    }

    /// Puts node `at` on the free list.
    fn release(&mut self, at: u32) {
        self.nodes[at as usize].next = self.free;
        self.free = at;
    }

    /// Appends node `at` (whose `next` is `NIL`) to list `id`.
    fn append(&mut self, id: ListId, at: u32) {
        link(&mut self.nodes, list_of(&mut self.slots, &mut self.later, id), at);
    }

    fn list_mut(&mut self, id: ListId) -> &mut List {
        list_of(&mut self.slots, &mut self.later, id)
    }

    fn tick_floor(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_millis() / TICK.as_millis()) as u64
    }

    fn tick_at(&self, deadline: Instant) -> u64 {
        let ms = deadline.saturating_duration_since(self.start).as_millis();
        ms.div_ceil(TICK.as_millis()) as u64
    }
}

/// Which list: a slot's, or the later entries'.
#[derive(Debug, Clone, Copy)]
enum ListId {
    Slot(usize),
    Later,
}

fn list_of<'a>(slots: &'a mut [List], later: &'a mut List, id: ListId) -> &'a mut List {
    match id {
        ListId::Slot(slot) => &mut slots[slot],
        ListId::Later => later,
    }
}

/// Appends node `at` of `nodes` to `list`.
fn link(nodes: &mut [Node], list: &mut List, at: u32) {
    if list.tail == NIL {
        list.head = at;
    } else {
        nodes[list.tail as usize].next = at;
    }
    list.tail = at;
}

fn slot_of(tick: u64) -> usize {
    (tick % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_the_deadline_not_before() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        wheel.insert(7, start + Duration::from_millis(120));
        let mut fired = Vec::new();
        wheel.expire(start + Duration::from_millis(100), &mut fired);
        assert!(fired.is_empty());
        wheel.expire(start + Duration::from_millis(150), &mut fired);
        assert_eq!(fired, [7]);
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.poll_timeout(start), None);
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_round() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let far = start + TICK * (SLOTS as u32 + 3);
        wheel.insert(1, far);
        wheel.insert(2, start + TICK * 3);
        let mut fired = Vec::new();
        wheel.expire(start + TICK * 10, &mut fired);
        assert_eq!(fired, [2]);
        wheel.expire(far - TICK, &mut fired);
        assert_eq!(fired, [2]);
        wheel.expire(far, &mut fired);
        assert_eq!(fired, [2, 1]);
    }

    #[test]
    fn a_long_pause_fires_everything_due() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        for i in 0..100 {
            wheel.insert(i, start + Duration::from_millis(i as u64 * 37));
        }
        let mut fired = Vec::new();
        wheel.expire(start + Duration::from_secs(3600), &mut fired);
        fired.sort_unstable();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn deadlines_turns_ahead_fire_on_time_tick_by_tick() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let far = TICK * (SLOTS as u32 * 3 + SLOTS as u32 / 2);
        wheel.insert(1, start + far);
        let mut fired = Vec::new();
        let mut at = start;
        while at + TICK < start + far {
            at += TICK;
            wheel.expire(at, &mut fired);
        }
        assert!(fired.is_empty());
        wheel.expire(start + far, &mut fired);
        assert_eq!(fired, [1]);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn a_pause_into_a_later_turn_fires_what_is_due_and_keeps_the_rest() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let turn = TICK * SLOTS as u32;
        wheel.insert(1, start + TICK * 5);
        wheel.insert(2, start + turn * 2 + TICK * 10);
        wheel.insert(3, start + turn * 2 + TICK * 30);
        wheel.insert(4, start + turn * 5);
        let mut fired = Vec::new();
        wheel.expire(start + turn * 2 + TICK * 20, &mut fired);
        assert_eq!(fired, [1, 2]);
        wheel.expire(start + turn * 2 + TICK * 29, &mut fired);
        assert_eq!(fired, [1, 2]);
        wheel.expire(start + turn * 2 + TICK * 30, &mut fired);
        assert_eq!(fired, [1, 2, 3]);
        wheel.expire(start + turn * 5 - TICK, &mut fired);
        assert_eq!(fired, [1, 2, 3]);
        wheel.expire(start + turn * 5, &mut fired);
        assert_eq!(fired, [1, 2, 3, 4]);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn fired_nodes_are_reused_and_a_sweep_gives_back_a_mostly_free_array() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        for token in 0..5000 {
            wheel.insert(token, start + TICK * (token % 300) as u32);
        }
        let mut fired = Vec::new();
        wheel.expire(start + TICK * 300, &mut fired);
        assert_eq!(fired.len(), 5000);
        for token in 0..5000 {
            wheel.insert(token, start + TICK * (400 + token % 300) as u32);
        }
        assert_eq!(wheel.nodes.len(), 5000, "fired nodes are used again");
        // A burst of short sessions: all but ten ended with their entry armed.
        for token in 5000..100_000 {
            wheel.insert(token, start + Duration::from_secs(30));
        }
        for _ in 10..100_000 {
            wheel.orphan();
        }
        assert!(wheel.wants_sweep(10));
        wheel.sweep(|token| token < 10);
        assert_eq!(wheel.len(), 10);
        assert!(wheel.nodes.capacity() <= NODES_KEEP, "{} nodes kept", wheel.nodes.capacity());
        fired.clear();
        wheel.expire(start + TICK * 1000, &mut fired);
        fired.sort_unstable();
        assert_eq!(fired, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_sweep_drops_the_orphans_and_keeps_every_live_deadline() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let turn = TICK * SLOTS as u32;
        // Even tokens belong to sessions that ended.
        for token in 0..3 * SWEEP_AFTER {
            wheel.insert(token, start + Duration::from_secs(30) + TICK * (token % 7) as u32);
            if token % 2 == 0 {
                wheel.orphan();
            }
        }
        wheel.insert(1_000_001, start + turn * 3);
        wheel.insert(1_000_000, start + turn * 3);
        wheel.orphan();
        assert!(!wheel.wants_sweep(2 * SWEEP_AFTER), "orphans do not outnumber the open sessions");
        assert!(wheel.wants_sweep(10));
        wheel.sweep(|token| token % 2 == 1);
        assert_eq!(wheel.len(), 3 * SWEEP_AFTER / 2 + 1);
        assert!(!wheel.wants_sweep(0));
        let mut fired = Vec::new();
        wheel.expire(start + turn * 4, &mut fired);
        fired.sort_unstable();
        let mut live: Vec<usize> = (0..3 * SWEEP_AFTER).filter(|t| t % 2 == 1).collect();
        live.push(1_000_001);
        assert_eq!(fired, live);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_expire() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let mut fired = Vec::new();
        wheel.expire(start + Duration::from_secs(5), &mut fired);
        wheel.insert(3, start + Duration::from_secs(1));
        // Rounded up to the first tick not yet processed.
        assert_eq!(wheel.poll_timeout(start + Duration::from_secs(5)), Some(TICK));
        wheel.expire(start + Duration::from_secs(5) + TICK, &mut fired);
        assert_eq!(fired, [3]);
    }
}
