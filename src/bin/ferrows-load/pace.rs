//! `--rate`: sends spaced in time rather than as fast as replies come, for a
//! steady load that leaves the machine room (a soak run) instead of a peak.

use std::time::{Duration, Instant};

/// The longest lag made up for at once: after a stall (a busy machine, a
/// slow round) the pace starts again from now rather than in a burst.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// Ticks at a fixed rate; each tick allows one send (one message per
/// connection in echo, one publish in fanout, one round in room).
#[derive(Debug, Clone)]
pub struct Pace {
    /// Time between ticks; `None`: unpaced, every send is allowed at once.
    interval: Option<Duration>,
    /// When the next tick is due; `None` before the first.
    next: Option<Instant>,
}

impl Pace {
    /// A pace of `rate` ticks per second, or none.
    pub fn new(rate: Option<f64>) -> Self {
        Pace { interval: rate.map(|rate| Duration::from_secs_f64(1.0 / rate)), next: None }
    }

    /// Whether sends wait for ticks.
    pub fn is_on(&self) -> bool {
        self.interval.is_some()
    }

    /// How many ticks fell due up to `now` since the last call, at most
    /// `most` (the rest are skipped); unpaced, `most`. The first call has
    /// one due.
    pub fn due(&mut self, now: Instant, most: usize) -> usize {
        let Some(interval) = self.interval else {
            return most;
        };
        let next = *self.next.get_or_insert(now);
        if now < next {
            return 0;
        }
        let behind = now - next;
        if behind > MAX_CATCH_UP {
            self.next = Some(now + interval);
            return most.min(1);
        }
        let ticks = (behind.as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
        self.next = Some(next + interval * ticks);
        most.min(ticks as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_at_the_rate() {
        let start = Instant::now();
        let mut pace = Pace::new(Some(10.0));
        assert!(pace.is_on());
        assert_eq!(pace.due(start, 5), 1);
        assert_eq!(pace.due(start + Duration::from_millis(50), 5), 0);
        assert_eq!(pace.due(start + Duration::from_millis(100), 5), 1);
        // At 250 ms only the tick of 200 ms is due.
        assert_eq!(pace.due(start + Duration::from_millis(250), 5), 1);
        assert_eq!(pace.due(start + Duration::from_millis(510), 5), 3);
        assert_eq!(pace.due(start + Duration::from_millis(900), 2), 2, "capped");
        // A long stall is not made up for.
        assert_eq!(pace.due(start + Duration::from_secs(5), 100), 1);
        assert_eq!(pace.due(start + Duration::from_millis(5050), 100), 0);
    }

    #[test]
    fn unpaced_allows_everything() {
        let mut pace = Pace::new(None);
        assert!(!pace.is_on());
        assert_eq!(pace.due(Instant::now(), 7), 7);
    }
}
