//! A hashed timing wheel for session deadlines.
//!
//! Each tick looks at one slot, so the cost of a tick depends on how many
//! deadlines fall in that slot, not on how many sessions are open. Entries are
//! never removed when a deadline moves: the owner keeps its true deadline and
//! checks it when an entry fires, re-arming if the deadline went later. A
//! session thus has one live entry most of the time, however often its
//! deadline is pushed back (every message pushes the keepalive back).

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(50);
/// Slots in the wheel: 2,048 × 50 ms ≈ 102 s in one turn, more than any default deadline.
const SLOTS: usize = 2048;

/// A deadline a turn or more ahead, keyed by the owner's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    token: usize,
    at_tick: u64,
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    /// The next tick to process: every tick before it has been processed.
    next_tick: u64,
    /// The tokens due in the coming turn (`next_tick` and the `SLOTS - 1`
    /// ticks after it), by tick modulo `SLOTS`. The slot says the tick, so
    /// an entry here is just the token: 8 bytes per armed session.
    slots: Vec<Vec<usize>>,
    /// Entries due later, moved into the slots when their turn begins.
    later: Vec<Entry>,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 starts at `start`.
    pub fn new(start: Instant) -> Self {
        Self { start, next_tick: 0, slots: (0..SLOTS).map(|_| Vec::new()).collect(), later: Vec::new(), len: 0 }
    }

    /// Arms a timer for `token` at `deadline` (rounded up to the next tick);
    /// returns the tick it fires at, in 32 bits (50 ms ticks: six years),
    /// which is what an owner keeps to compare a later deadline with.
    pub fn insert(&mut self, token: usize, deadline: Instant) -> u32 {
        let tick = self.tick_at(deadline).max(self.next_tick);
        if tick < self.next_tick + SLOTS as u64 {
            self.slots[slot_of(tick)].push(token);
        } else {
            self.later.push(Entry { token, at_tick: tick });
        }
        self.len += 1;
        u32::try_from(tick).unwrap_or(u32::MAX)
    }

    /// The tick `deadline` would be armed at: see [`insert`](Self::insert).
    pub fn tick_of(&self, deadline: Instant) -> u32 {
        u32::try_from(self.tick_at(deadline).max(self.next_tick)).unwrap_or(u32::MAX)
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
            for slot in &mut self.slots {
                self.len -= slot.len();
                fired.append(slot);
            }
            // Go on from the start of the current turn, where what is due
            // of the later entries fires or moves into the slots.
            self.next_tick = now_tick - now_tick % SLOTS as u64;
        }
        while self.next_tick <= now_tick && self.len > 0 {
            if self.next_tick % SLOTS as u64 == 0 {
                self.begin_turn(fired);
            }
            let slot = &mut self.slots[slot_of(self.next_tick)];
            self.len -= slot.len();
            fired.append(slot);
            self.next_tick += 1;
        }
        if self.next_tick <= now_tick {
            // Nothing is armed.
            self.next_tick = now_tick + 1;
        }
    }

    /// At the start of a turn: the later entries due in it move into the
    /// slots, and any already due (after a pause) fire.
    fn begin_turn(&mut self, fired: &mut Vec<usize>) {
        let (next_tick, slots) = (self.next_tick, &mut self.slots);
        let fired_before = fired.len();
        self.later.retain(|entry| {
            if entry.at_tick < next_tick {
                fired.push(entry.token);
                return false;
            }
            if entry.at_tick < next_tick + SLOTS as u64 {
                slots[slot_of(entry.at_tick)].push(entry.token);
                return false;
            }
            true
        });
        self.len -= fired.len() - fired_before;
    }

    /// How many entries are armed (live and stale).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    fn tick_floor(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_millis() / TICK.as_millis()) as u64
    }

    fn tick_at(&self, deadline: Instant) -> u64 {
        let ms = deadline.saturating_duration_since(self.start).as_millis();
        ms.div_ceil(TICK.as_millis()) as u64
    }
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
