//! Room mode: N members of one room, where every text message a member sends
//! goes to all members, the sender included (ferrows' `/rooms/{name}`).
//!
//! The run goes in rounds: every member sends one message, `MEMBER:ROUND:xx..`,
//! and the round ends when every member has received all N of them; only then
//! does the next one begin. The rounds are a barrier over all members and all
//! threads: each thread adds its members to a shared count once they all have
//! the round's N messages, and the thread that completes the count starts the
//! next round and wakes the others. With `--rate`, a thread's members send
//! a round's messages on a tick of the pace, and the round's time counts
//! from that send. So a message of another round, a second
//! message of a member in one round, or a missing one is an error.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use ferrows::client::{ClientConnection, ClientEvent};

use crate::args::Options;
use crate::histogram::Histogram;
use crate::leader::Leader;
use crate::pace::Pace;
use crate::payload::{leading_number, pad};
use crate::report::{conclude, per_sec, print_closes_and_errors, us};
use crate::session::{Handler, Opened};
use crate::shared::{LocalCounts, Phase, Shared};
use crate::worker::{run_threads, Bell, Load, Nudge, Plan, CLOSE_GRACE};

/// Members unless `--members` says otherwise.
pub const DEFAULT_MEMBERS: usize = 100;
/// Message bytes unless `--size` says otherwise.
pub const DEFAULT_SIZE: usize = 32;
/// The least `--size`: room for the tag of member 99,999 in round 99,999,999.
pub const MIN_SIZE: usize = 16;

/// What the threads of a room run share: the round barrier.
#[derive(Debug)]
pub struct Barrier {
    /// Members that received all messages of their round, summed over the
    /// rounds: round `r` (from 1) is complete when this reaches `r × N`.
    completions: AtomicU64,
    /// When the current round began, in ns from the epoch; [`UNSET`] before the first.
    round_began: AtomicU64,
}

/// [`Barrier::round_began`] before the first round.
const UNSET: u64 = u64::MAX;

impl Default for Barrier {
    fn default() -> Self {
        Barrier { completions: AtomicU64::new(0), round_began: AtomicU64::new(UNSET) }
    }
}

/// One member, in its thread's slot.
#[derive(Debug, Default)]
struct Member {
    /// The member's number, 0 to N-1 over all threads.
    id: u64,
    /// Messages of the current round received.
    received: usize,
    /// Which members' messages of the current round arrived, one bit each.
    seen: Vec<u64>,
}

/// One thread's part of a room run.
#[derive(Debug)]
pub struct Room<'a> {
    /// This thread's number.
    index: usize,
    /// How many threads run.
    threads: usize,
    /// Members in the room, all threads together.
    members: usize,
    /// Bytes per message.
    size: usize,
    /// How long a round may go without completing.
    stall: Duration,
    /// Timestamps count nanoseconds from here, the same instant in every thread.
    epoch: Instant,
    /// The run's phase.
    phase: Phase,
    /// The members of this thread, by slot; `None` where no member is.
    slots: Vec<Option<Member>>,
    /// Members that joined on this thread.
    joined: usize,
    /// The round this thread's members are in (0 before the first).
    round: u64,
    /// When this thread entered the round.
    round_entered: Instant,
    /// Members of this thread that have all messages of the round.
    complete: usize,
    /// Whether the members still have to send their message of the round.
    to_send: bool,
    /// With `--rate`: when a round's messages go out.
    pace: Pace,
    /// Whether a stall of this round was reported.
    stall_reported: bool,
    /// The message being built, reused.
    message: String,
    /// Times of the rounds this thread completed while measuring, in ns.
    round_times: Histogram,
    /// Messages received while measuring.
    deliveries: u64,
    /// Counts for the progress line.
    counts: LocalCounts,
    /// The round barrier.
    barrier: &'a Barrier,
    /// Wakes the other threads when a round ends.
    bell: Bell,
    /// Where errors go.
    shared: &'a Shared,
}

impl<'a> Room<'a> {
    /// Thread `index`'s part of a room run per `opts`.
    pub fn new(
        opts: &Options,
        index: usize,
        epoch: Instant,
        barrier: &'a Barrier,
        bell: Bell,
        shared: &'a Shared,
    ) -> Self {
        Room {
            index,
            threads: opts.threads,
            members: opts.connections,
            size: opts.size,
            stall: opts.timeout,
            epoch,
            phase: Phase::Opening,
            slots: Vec::new(),
            joined: 0,
            round: 0,
            round_entered: epoch,
            complete: 0,
            to_send: false,
            pace: Pace::new(opts.rate),
            stall_reported: false,
            message: String::new(),
            round_times: Histogram::default(),
            deliveries: 0,
            counts: LocalCounts::default(),
            barrier,
            bell,
            shared,
        }
    }

    /// Nanoseconds from the epoch to `now`.
    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The round all members are in: one past those completed.
    fn global_round(&self) -> u64 {
        self.barrier.completions.load(Acquire) / self.members as u64 + 1
    }

    /// Moves this thread's members into the round the barrier has reached,
    /// if they are behind it; their messages are then to be sent.
    fn catch_up(&mut self, now: Instant) {
        let round = self.global_round();
        if round <= self.round {
            return;
        }
        self.round = round;
        self.round_entered = now;
        self.complete = 0;
        self.to_send = true;
        self.stall_reported = false;
        for member in self.slots.iter_mut().flatten() {
            member.received = 0;
            member.seen.fill(0);
        }
        if round == 1 {
            // The first thread to start sets the first round's start.
            let _ = self.barrier.round_began.compare_exchange(UNSET, self.stamp(now), Relaxed, Relaxed);
        }
    }

    /// Every member of this thread has all messages of the round: adds them
    /// to the barrier, and if that completes the round, starts the next.
    fn members_complete(&mut self, now: Instant) {
        let goal = self.round * self.members as u64;
        let before = self.barrier.completions.fetch_add(self.joined as u64, AcqRel);
        if before + self.joined as u64 != goal {
            return;
        }
        // This thread completed the round.
        let stamp = self.stamp(now);
        let began = self.barrier.round_began.swap(stamp, Release);
        self.shared.rounds.fetch_add(1, Relaxed);
        if self.phase == Phase::Measuring && began != UNSET {
            self.round_times.record(stamp.saturating_sub(began));
        }
        self.bell.ring_others(self.index);
    }

    /// A message received by the member in `slot`.
    fn on_message(&mut self, slot: usize, text: &str, now: Instant) {
        let Some((sender, round)) = parse_tag(text) else {
            self.shared.error("room", format!("a message without a MEMBER:ROUND: tag ({} bytes)", text.len()));
            return;
        };
        if round == self.round + 1 {
            // The barrier moved on and another thread's members already sent.
            self.catch_up(now);
        }
        if round != self.round {
            self.shared.error("room", format!("a message of round {round} during round {}", self.round));
            return;
        }
        if sender >= self.members as u64 {
            self.shared.error("room", format!("a message from member {sender} of {}", self.members));
            return;
        }
        let members = self.members;
        let Some(Some(member)) = self.slots.get_mut(slot) else {
            return;
        };
        let (word, bit) = ((sender / 64) as usize, 1u64 << (sender % 64));
        if member.seen[word] & bit != 0 {
            self.shared.error("room", format!("two messages from member {sender} in round {round}"));
            return;
        }
        member.seen[word] |= bit;
        member.received += 1;
        let member_complete = member.received == members;
        self.counts.messages += 1;
        self.counts.bytes += text.len() as u64;
        if self.phase == Phase::Measuring {
            self.deliveries += 1;
        }
        if member_complete {
            self.complete += 1;
            if self.complete == self.joined {
                self.members_complete(now);
            }
        }
    }

    /// Reports the messages this thread's members miss in a round that
    /// stopped making progress, and ends the run.
    fn report_stall(&mut self) {
        self.stall_reported = true;
        let members = self.members;
        let missing: usize = self.slots.iter().flatten().map(|m| members - m.received).sum();
        let short = self.slots.iter().flatten().filter(|m| m.received < members).count();
        if missing > 0 {
            self.shared.errors_of(
                missing as u64,
                "room",
                format!(
                    "round {} stalled for {:.1} s: messages missing (counted one error each), {short} member(s) short",
                    self.round,
                    self.stall.as_secs_f64()
                ),
            );
        }
        self.shared.stop.store(true, Relaxed);
    }
}

impl Handler for Room<'_> {
    // A round's end is timed by the read that completes it.
    const STAMP_EACH_READ: bool = true;

    fn on_open(&mut self, _conn: &mut ClientConnection, slot: usize, _started: Instant, _now: Instant) -> Opened {
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        // Numbered like the sources: 0 to N-1 over all threads, each once.
        let id = (self.index + self.threads * self.joined) as u64;
        self.joined += 1;
        self.slots[slot] = Some(Member { id, received: 0, seen: vec![0; self.members.div_ceil(64)] });
        Opened::Ready
    }

    fn on_event(&mut self, _conn: &mut ClientConnection, slot: usize, event: ClientEvent, now: Instant) {
        match &event {
            // Whatever comes while closing is the end of a round cut short.
            _ if self.phase >= Phase::Closing => {}
            ClientEvent::Text(text) => self.on_message(slot, text, now),
            ClientEvent::Binary(data) => self.shared.error("room", format!("a {}-byte binary message", data.len())),
            _ => {}
        }
    }

    fn on_nudge(&mut self, conn: &mut ClientConnection, slot: usize, _now: Instant) {
        use std::fmt::Write;

        let Some(Some(member)) = self.slots.get(slot) else {
            return;
        };
        self.message.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.message, "{}:{}:", member.id, self.round);
        let filler = self.size.saturating_sub(self.message.len());
        pad(&mut self.message, filler);
        // A refusal means the connection is closing: the run is ending.
        let _ = conn.send_text(&self.message);
    }
}

impl Load for Room<'_> {
    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    fn flush(&mut self, shared: &Shared) {
        self.counts.flush(shared);
    }

    fn turn(&mut self, now: Instant) -> Nudge {
        if !matches!(self.phase, Phase::Warmup | Phase::Measuring) {
            return Nudge::Nobody;
        }
        if self.round == 0 && self.shared.failed.load(Relaxed) > 0 {
            // A round needs every member: with one missing it could never end.
            if !self.stall_reported {
                self.stall_reported = true;
                eprintln!("room: not every member could join, so no round can complete");
                self.shared.stop.store(true, Relaxed);
            }
            return Nudge::Nobody;
        }
        self.catch_up(now);
        if self.to_send && self.pace.due(now, 1) > 0 {
            self.to_send = false;
            if self.pace.is_on() && self.round > 1 {
                // The round starts now, not when the one before ended.
                self.round_entered = now;
                self.barrier.round_began.fetch_max(self.stamp(now), Relaxed);
            }
            return Nudge::Every;
        }
        if !self.stall_reported && self.complete < self.joined && now.duration_since(self.round_entered) >= self.stall {
            self.report_stall();
        }
        Nudge::Nobody
    }
}

/// The member and round a message is tagged with: `MEMBER:ROUND:`.
fn parse_tag(text: &str) -> Option<(u64, u64)> {
    let (member, rest) = leading_number(text)?;
    let (round, rest) = leading_number(rest.strip_prefix(':')?)?;
    rest.starts_with(':').then_some((member, round))
}

/// Runs room mode and prints its summary; returns the exit status.
///
/// # Errors
///
/// A thread's event loop could not run.
pub fn run(opts: &Options, target: SocketAddr, shared: &Shared) -> io::Result<i32> {
    let epoch = Instant::now();
    let barrier = Barrier::default();
    let leader = Leader::new(opts, CLOSE_GRACE, shared);
    let plan = |index| Plan::open_share(opts, index, 0);
    let make = |index, bell: &Bell| Room::new(opts, index, epoch, &barrier, bell.clone(), shared);
    let (results, leader) = run_threads(opts, target, shared, leader, plan, make)?;

    let mut round_times = Histogram::default();
    let (mut deliveries, mut clean, mut unclean) = (0, 0, 0);
    for result in &results {
        round_times.merge(&result.load.round_times);
        deliveries += result.load.deliveries;
        clean += result.clean_closes;
        unclean += result.unclean_closes;
    }
    let time = leader.measured_time();
    let rounds = leader.rounds_measured;
    let rounds_per_sec = per_sec(rounds, time);
    let n = opts.connections as f64;
    let deliveries_per_sec = n * n * rounds_per_sec;
    let opened = shared.opened.load(Relaxed);
    let failed = shared.failed.load(Relaxed);
    let errors = shared.errors.load(Relaxed);
    let (p50, p99) = (us(round_times.quantile(0.50)), us(round_times.quantile(0.99)));

    println!();
    println!(
        "room {}: {} members ({opened} opened, {failed} failed), {} thread(s)",
        opts.url, opts.connections, opts.threads
    );
    println!("  messages   {}-byte text, one per member per round", opts.size);
    println!(
        "  measured   {} ({} members open at its start, {} at its end)",
        leader.measured_words(),
        leader.open_measured,
        leader.open_at_end
    );
    println!("  rounds     {rounds} ({rounds_per_sec:.1}/s)");
    println!(
        "  deliveries {deliveries_per_sec:.1}/s (members² × rounds/s; {deliveries} messages received while measuring)"
    );
    if round_times.count() == 0 {
        println!("  round time no samples");
    } else {
        println!(
            "  round time min {}  p50 {p50}  p99 {}  max {}  mean {} (µs, {} rounds)",
            us(round_times.min()),
            us(round_times.quantile(0.99)),
            us(round_times.max()),
            us(round_times.mean()),
            round_times.count()
        );
    }
    leader.print_cpu();
    let cpu = leader.cpu_field();
    print_closes_and_errors(opts, shared, clean, unclean, errors);
    println!(
        "RESULT mode=room members={} size={} rounds={rounds} rounds_per_sec={rounds_per_sec:.1} deliveries_per_sec={deliveries_per_sec:.1} p50_round_us={p50} p99_round_us={p99} {cpu} deflate={} errors={errors}",
        opts.connections,
        opts.size,
        shared.deflated.load(Relaxed)
    );
    Ok(conclude(shared, &opts.url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(parse_tag("42:7:xxxx"), Some((42, 7)));
        assert_eq!(parse_tag("42:7:"), Some((42, 7)));
        assert_eq!(parse_tag("42:7"), None);
        assert_eq!(parse_tag("42-7:"), None);
        assert_eq!(parse_tag("hello"), None);
        // The least size holds a large tag.
        assert!("99999:99999999:".len() <= MIN_SIZE);
    }
}
