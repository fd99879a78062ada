//! The schedule of a run and its progress line, kept by the first thread.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::args::{Mode, Options};
use crate::rss::{cpu_time, vm_rss_kib};
use crate::shared::{Phase, Shared};

/// How long after all connections are open the server's memory is read.
pub const RSS_SETTLE: Duration = Duration::from_secs(2);
/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long closing may take past the close grace before the rest is dropped.
const CLOSE_SLACK: Duration = Duration::from_millis(500);
/// The share of its threads' time above which the load generator is taken
/// to be what limits a measurement.
pub const LOAD_BOUND: f64 = 0.9;

/// Moves the run through its phases and prints progress; what it saw is read
/// by the summary.
#[derive(Debug)]
pub struct Leader {
    /// What is being measured.
    mode: Mode,
    /// Connections to open before moving on (echo, idle, fanout, room).
    connections: u64,
    /// Connections in progress at once (connect).
    concurrency: u64,
    /// The load's threads.
    threads: usize,
    /// Our CPU time when measuring began.
    cpu_at_start: Option<Duration>,
    /// The share of our threads' time spent on CPU while measuring.
    pub load_cpu: Option<f64>,
    /// Unmeasured time (echo, connect).
    warmup: Duration,
    /// Measured time (echo, connect, fanout, room) or hold time (idle).
    duration: Duration,
    /// Rounds to measure instead of a duration (room).
    rounds_goal: Option<u64>,
    /// The server whose memory is read (idle).
    server_pid: Option<u32>,
    /// How long closing may take.
    close_grace: Duration,
    /// When the run began.
    start: Instant,
    /// When the current phase began.
    phase_since: Instant,
    /// When the next progress line is due.
    next_progress: Instant,
    /// The counters at the previous progress line.
    last: Snapshot,
    /// When measuring began and ended.
    pub measured: Option<(Instant, Option<Instant>)>,
    /// Connections open when measuring began (idle: when memory was read).
    pub open_measured: u64,
    /// Connections open when measuring ended.
    pub open_at_end: u64,
    /// Rounds completed when measuring began (room).
    rounds_at_start: u64,
    /// Rounds completed while measuring (room).
    pub rounds_measured: u64,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// Whether the mode stopped the run early (it has counted the error).
    pub stopped: bool,
    /// The server's memory once all connections were open, in KiB.
    pub rss_after: Option<Result<u64, String>>,
}

impl Leader {
    /// The schedule for `opts`, starting now; sets the first phase.
    pub fn new(opts: &Options, close_grace: Duration, shared: &Shared) -> Leader {
        let now = Instant::now();
        let (connections, duration) = match opts.mode {
            Mode::Echo | Mode::Fanout => (opts.sockets() as u64, opts.duration),
            // A round count replaces the duration.
            Mode::Room => (opts.sockets() as u64, if opts.rounds.is_some() { Duration::MAX } else { opts.duration }),
            Mode::Idle => (
                opts.connections as u64,
                opts.hold.max(if opts.server_pid.is_some() { RSS_SETTLE } else { Duration::ZERO }),
            ),
            Mode::Connect => (0, opts.duration),
        };
        let mut leader = Leader {
            mode: opts.mode,
            connections,
            concurrency: opts.concurrency as u64,
            threads: opts.threads,
            cpu_at_start: None,
            load_cpu: None,
            warmup: opts.warmup,
            duration,
            rounds_goal: opts.rounds,
            server_pid: opts.server_pid,
            close_grace,
            start: now,
            phase_since: now,
            next_progress: now + PROGRESS_EVERY,
            last: Snapshot::take(now, shared),
            measured: None,
            open_measured: 0,
            open_at_end: 0,
            rounds_at_start: 0,
            rounds_measured: 0,
            interrupted: false,
            stopped: false,
            rss_after: None,
        };
        let first = if opts.mode == Mode::Connect { leader.after_opening() } else { Phase::Opening };
        leader.enter(first, now, shared);
        leader
    }

    /// The phase that follows the opening of connections.
    fn after_opening(&self) -> Phase {
        if self.mode != Mode::Idle && !self.warmup.is_zero() {
            Phase::Warmup
        } else {
            Phase::Measuring
        }
    }

    /// Moves to `phase` at `now`.
    fn enter(&mut self, phase: Phase, now: Instant, shared: &Shared) {
        match phase {
            Phase::Measuring => {
                self.measured = Some((now, None));
                self.cpu_at_start = cpu_time();
                self.open_measured = shared.open.load(Relaxed);
                self.rounds_at_start = shared.rounds.load(Relaxed);
            }
            Phase::Closing => {
                if let Some((_, end @ None)) = &mut self.measured {
                    *end = Some(now);
                    let wall = self.measured_time().as_secs_f64() * self.threads as f64;
                    self.load_cpu = match (self.cpu_at_start, cpu_time()) {
                        (Some(start), Some(end)) if wall > 0.0 => Some((end - start).as_secs_f64() / wall),
                        _ => None,
                    };
                    self.open_at_end = shared.open.load(Relaxed);
                    self.rounds_measured = shared.rounds.load(Relaxed) - self.rounds_at_start;
                }
            }
            _ => {}
        }
        self.phase_since = now;
        shared.set_phase(phase);
    }

    /// Called on every turn of the first thread's loop.
    pub fn tick(&mut self, now: Instant, shared: &Shared) {
        let phase = shared.phase();
        let in_phase = now.saturating_duration_since(self.phase_since);
        let next = match phase {
            _ if phase < Phase::Closing && shared.interrupted.load(Relaxed) => {
                eprintln!("interrupted: closing the connections");
                self.interrupted = true;
                Some(Phase::Closing)
            }
            _ if phase < Phase::Closing && shared.stop.load(Relaxed) => {
                eprintln!("stopping early: closing the connections");
                self.stopped = true;
                Some(Phase::Closing)
            }
            Phase::Opening => {
                let settled = shared.opened.load(Relaxed) + shared.failed.load(Relaxed) >= self.connections;
                if !settled {
                    None
                } else if shared.open.load(Relaxed) == 0 {
                    Some(Phase::Closing)
                } else {
                    Some(self.after_opening())
                }
            }
            // Connect mode: once every slot has failed and none succeeded, the server is out of reach.
            _ if phase < Phase::Closing
                && self.mode == Mode::Connect
                && shared.opened.load(Relaxed) == 0
                && shared.failed.load(Relaxed) >= self.concurrency =>
            {
                Some(Phase::Closing)
            }
            Phase::Warmup => (in_phase >= self.warmup).then_some(Phase::Measuring),
            Phase::Measuring => {
                if self.mode == Mode::Idle && self.rss_after.is_none() && in_phase >= RSS_SETTLE {
                    if let Some(pid) = self.server_pid {
                        self.rss_after = Some(vm_rss_kib(pid));
                        self.open_measured = shared.open.load(Relaxed);
                    }
                }
                let rounds_done = self
                    .rounds_goal
                    .is_some_and(|goal| shared.rounds.load(Relaxed).saturating_sub(self.rounds_at_start) >= goal);
                (in_phase >= self.duration || rounds_done).then_some(Phase::Closing)
            }
            Phase::Closing => {
                let idle = shared.open.load(Relaxed) + shared.pending.load(Relaxed) == 0;
                (idle || in_phase >= self.close_grace + CLOSE_SLACK).then_some(Phase::Done)
            }
            Phase::Done => None,
        };
        if let Some(next) = next {
            self.enter(next, now, shared);
        }
        if now >= self.next_progress {
            self.progress(now, shared);
            self.next_progress += PROGRESS_EVERY;
            if self.next_progress < now {
                self.next_progress = now + PROGRESS_EVERY;
            }
        }
    }

    /// Prints one progress line to stderr.
    fn progress(&mut self, now: Instant, shared: &Shared) {
        let snapshot = Snapshot::take(now, shared);
        let last = std::mem::replace(&mut self.last, snapshot);
        let secs = now.duration_since(last.at).as_secs_f64().max(1e-9);
        let rate = |count: u64, before: u64| count.saturating_sub(before) as f64 / secs;
        let phase = match shared.phase() {
            Phase::Opening => "opening",
            Phase::Warmup => "warmup",
            Phase::Measuring if self.mode == Mode::Idle => "holding",
            Phase::Measuring => "measuring",
            Phase::Closing => "closing",
            Phase::Done => "done",
        };
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let (open, pending) = (shared.open.load(Relaxed), shared.pending.load(Relaxed));
        let (failed, errors) = (shared.failed.load(Relaxed), shared.errors.load(Relaxed));
        let body = match self.mode {
            Mode::Echo => format!(
                "{:>10.0} msgs/s {:>9.2} MB/s  open {open}  handshaking {pending}  errors {errors}",
                rate(snapshot.messages, last.messages),
                rate(snapshot.bytes, last.bytes) / 1e6,
            ),
            Mode::Idle => format!("open {open}  handshaking {pending}  failed {failed}  errors {errors}"),
            Mode::Connect => format!(
                "{:>8.0} handshakes/s  open {open}  handshaking {pending}  errors {errors}",
                rate(snapshot.opened, last.opened)
            ),
            Mode::Fanout => format!(
                "{:>10.0} deliveries/s {:>8.0} publishes/s  open {open}  handshaking {pending}  dropped {}  errors {errors}",
                rate(snapshot.messages, last.messages),
                rate(snapshot.publishes, last.publishes),
                shared.dropped.load(Relaxed)
            ),
            Mode::Room => format!(
                "{:>7.0} rounds/s {:>10.0} deliveries/s  open {open}  handshaking {pending}  errors {errors}",
                rate(snapshot.rounds, last.rounds),
                rate(snapshot.messages, last.messages),
            ),
        };
        eprintln!("[{elapsed:>6.1}s] {phase:<9} {body}");
    }

    /// The measured time in words, noting an interruption.
    pub fn measured_words(&self) -> String {
        let note = if self.interrupted {
            " (interrupted)"
        } else if self.stopped {
            " (stopped early)"
        } else {
            ""
        };
        format!("{:.2} s{note}", self.measured_time().as_secs_f64())
    }

    /// The `load_cpu=` field of a RESULT line: our threads' share of CPU
    /// time while measuring (`-` where unknown).
    pub fn cpu_field(&self) -> String {
        self.load_cpu.map_or_else(|| "load_cpu=-".to_owned(), |share| format!("load_cpu={share:.2}"))
    }

    /// Prints the line that says how busy the load generator was, and
    /// whether it was what limited the figure.
    pub fn print_cpu(&self) {
        if let Some(share) = self.load_cpu {
            let bound = if share >= LOAD_BOUND { ": the load generator may be what limits this figure" } else { "" };
            println!("  load cpu   {:.0} % of {} thread(s) while measuring{bound}", share * 100.0, self.threads);
        }
    }

    /// How long was measured (zero if measuring never began).
    pub fn measured_time(&self) -> Duration {
        match self.measured {
            Some((start, Some(end))) => end.duration_since(start),
            Some((start, None)) => start.elapsed(),
            None => Duration::ZERO,
        }
    }
}

/// The shared counters at one instant, for the rates of a progress line.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    /// When they were read.
    at: Instant,
    /// [`Shared::messages`].
    messages: u64,
    /// [`Shared::bytes`].
    bytes: u64,
    /// [`Shared::opened`].
    opened: u64,
    /// [`Shared::publishes`].
    publishes: u64,
    /// [`Shared::rounds`].
    rounds: u64,
}

impl Snapshot {
    /// The counters now.
    fn take(at: Instant, shared: &Shared) -> Snapshot {
        Snapshot {
            at,
            messages: shared.messages.load(Relaxed),
            bytes: shared.bytes.load(Relaxed),
            opened: shared.opened.load(Relaxed),
            publishes: shared.publishes.load(Relaxed),
            rounds: shared.rounds.load(Relaxed),
        }
    }
}
