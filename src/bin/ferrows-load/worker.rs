//! One event loop: a mio poll, a slab of sessions, and the opening and
//! closing of connections as the run's phase says.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrows::proto::handshake::WsUrl;
use mio::{Events, Poll, Token, Waker};
use slab::Slab;

use crate::args::Options;
use crate::leader::Leader;
use crate::session::{End, Handler, Session};
use crate::shared::{Phase, Shared};

/// The read buffer of a thread, shared by all its sessions.
const SCRATCH_BYTES: usize = 64 * 1024;
/// The longest a loop sleeps, so that it sees phase changes and deadlines.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How long to wait for the server's Close reply and then its TCP close.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Token bits that hold the slab key; the rest hold the slot's generation.
const KEY_BITS: u32 = usize::BITS / 2;
/// The highest slab key a session may have: the key with all bits set is
/// left out, so that no session's token is [`WAKE`].
const MAX_KEY: usize = (1 << KEY_BITS) - 2;
/// The token of a loop's [`Waker`].
const WAKE: Token = Token(usize::MAX);

/// A mode's per-thread part: a [`Handler`] that also follows the phase.
pub trait Load: Handler {
    /// The run moved to `phase`.
    fn set_phase(&mut self, phase: Phase);

    /// Adds locally batched counts to the shared ones.
    fn flush(&mut self, shared: &Shared);

    /// Called once per turn of the loop, after the events: which open
    /// sessions to hand to [`Handler::on_nudge`] now.
    fn turn(&mut self, _now: Instant) -> Nudge {
        Nudge::Nobody
    }
}

/// Which open sessions a mode wants to act on outside their events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nudge {
    /// None of them.
    Nobody,
    /// Every open session of the thread.
    Every,
    /// The session in this slot.
    One(usize),
}

/// Wakes the loops of the other threads, for a mode whose threads wait on
/// each other (a barrier): a loop otherwise sleeps until its next event or
/// its poll timeout.
#[derive(Debug, Clone)]
pub struct Bell(Arc<[Waker]>);

impl Bell {
    /// Wakes every loop but thread `index`'s.
    pub fn ring_others(&self, index: usize) {
        for (i, waker) in self.0.iter().enumerate() {
            if i != index {
                // A failed wake leaves that loop to its poll timeout: slower, not wrong.
                let _ = waker.wake();
            }
        }
    }
}

/// How many connections a thread opens, and when.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Connections to open in all (`None`: replace each one that ends).
    pub total: Option<usize>,
    /// Most sessions at once.
    pub live: usize,
    /// Most sessions in connect or handshake at once.
    pub max_pending: usize,
    /// Open only while the run is in one of these phases.
    pub opening_phases: &'static [Phase],
    /// Where the thread's first connection goes instead of the run's target.
    pub first_elsewhere: Option<(SocketAddr, WsUrl)>,
}

impl Plan {
    /// Open thread `index`'s share of `opts.connections` (plus `extra`) while
    /// the run is opening, and keep them all.
    pub fn open_share(opts: &Options, index: usize, extra: usize) -> Self {
        Plan {
            total: Some(crate::report::share(opts.connections, opts.threads, index) + extra),
            live: usize::MAX,
            max_pending: opts.max_pending.div_ceil(opts.threads),
            opening_phases: &[Phase::Opening],
            first_elsewhere: None,
        }
    }
}

/// What a thread hands back.
#[derive(Debug)]
pub struct ThreadResult<H> {
    /// The mode's per-thread part, with what it measured.
    pub load: H,
    /// Sessions that ended with the server answering our Close.
    pub clean_closes: u64,
    /// Sessions that ended after our Close without the server's.
    pub unclean_closes: u64,
}

/// A session and the generation of its slab slot.
struct Slot {
    /// The session.
    session: Session,
    /// Tells this session's events from those of an earlier one in the same slot.
    generation: usize,
}

/// Everything of a thread's loop but the event list.
struct Core<'a, H> {
    /// This thread's number, 0 for the first.
    index: usize,
    /// How many threads run.
    threads: usize,
    /// The run's settings.
    opts: &'a Options,
    /// The server's address.
    target: SocketAddr,
    /// How this thread opens connections.
    plan: Plan,
    /// The poll.
    poll: Poll,
    /// The sessions, keyed by token.
    sessions: Slab<Slot>,
    /// The next slot generation.
    generation: usize,
    /// Sessions in connect or handshake.
    pending: usize,
    /// Sessions started so far.
    started: usize,
    /// The read buffer.
    scratch: Vec<u8>,
    /// The mode's part.
    load: H,
    /// The counters shared by all threads.
    shared: &'a Shared,
    /// Sessions whose close the server answered.
    clean_closes: u64,
    /// Sessions whose close the server did not answer.
    unclean_closes: u64,
    /// Keys of sessions to visit (expired, nudged), reused.
    keys: Vec<usize>,
}

/// Runs `opts.threads` loops (the first on this thread, leading the run) and
/// returns their results and the leader. `make` builds thread `index`'s part
/// of the mode and may keep the [`Bell`] that wakes the other loops.
///
/// # Errors
///
/// A loop could not start (no poll) or a thread panicked.
pub fn run_threads<H: Load + Send>(
    opts: &Options,
    target: SocketAddr,
    shared: &Shared,
    mut leader: Leader,
    plan: impl Fn(usize) -> Plan + Sync,
    make: impl Fn(usize, &Bell) -> H + Sync,
) -> io::Result<(Vec<ThreadResult<H>>, Leader)> {
    // Every poll and its waker exist before any loop runs, so that each loop can wake the others.
    let mut polls = (0..opts.threads).map(|_| Poll::new()).collect::<io::Result<Vec<_>>>()?;
    let wakers = polls.iter().map(|poll| Waker::new(poll.registry(), WAKE)).collect::<io::Result<Vec<_>>>()?;
    let bell = Bell(wakers.into());
    let first_poll = polls.remove(0);
    std::thread::scope(|scope| {
        let followers: Vec<_> = polls
            .into_iter()
            .enumerate()
            .map(|(i, poll)| {
                let index = i + 1;
                let (plan, make, bell) = (&plan, &make, &bell);
                std::thread::Builder::new().name(format!("load-{index}")).spawn_scoped(scope, move || {
                    run_one(index, opts, target, shared, poll, plan(index), make(index, bell), None)
                })
            })
            .collect::<io::Result<_>>()?;
        let first = run_one(0, opts, target, shared, first_poll, plan(0), make(0, &bell), Some(&mut leader));
        let mut results = vec![first?];
        for follower in followers {
            let result = follower.join().map_err(|_| io::Error::other("a load thread panicked"))?;
            results.push(result?);
        }
        Ok((results, leader))
    })
}

/// Runs one loop to the end of the run.
#[allow(clippy::too_many_arguments)] // a thread's whole setup, passed once
fn run_one<H: Load>(
    index: usize,
    opts: &Options,
    target: SocketAddr,
    shared: &Shared,
    poll: Poll,
    plan: Plan,
    load: H,
    leader: Option<&mut Leader>,
) -> io::Result<ThreadResult<H>> {
    let leads = leader.is_some();
    let result = Core::new(index, opts, target, shared, poll, plan, load).run(leader);
    if let Err(e) = &result {
        shared.error("load thread", e);
        // Without this loop the others would wait for it for ever: end the run.
        if leads {
            shared.set_phase(Phase::Done);
        } else {
            shared.interrupted.store(true, Relaxed);
        }
    }
    result
}

impl<'a, H: Load> Core<'a, H> {
    /// A loop for thread `index`, on `poll`.
    fn new(
        index: usize,
        opts: &'a Options,
        target: SocketAddr,
        shared: &'a Shared,
        poll: Poll,
        plan: Plan,
        load: H,
    ) -> Self {
        Core {
            index,
            threads: opts.threads,
            opts,
            target,
            plan,
            poll,
            sessions: Slab::new(),
            generation: 0,
            pending: 0,
            started: 0,
            scratch: vec![0; SCRATCH_BYTES],
            load,
            shared,
            clean_closes: 0,
            unclean_closes: 0,
            keys: Vec::new(),
        }
    }

    /// The loop: open, poll, dispatch, sweep, until the run is done.
    fn run(mut self, mut leader: Option<&mut Leader>) -> io::Result<ThreadResult<H>> {
        let mut events = Events::with_capacity(1024);
        let mut phase = self.shared.phase();
        self.load.set_phase(phase);
        let mut closed_all = false;
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let now = Instant::now();
            if let Some(leader) = leader.as_deref_mut() {
                leader.tick(now, self.shared);
            }
            let current = self.shared.phase();
            if current != phase {
                phase = current;
                self.load.set_phase(phase);
            }
            match phase {
                Phase::Done => break,
                Phase::Closing => {
                    if !closed_all {
                        self.close_all(now);
                        closed_all = true;
                    }
                    if self.sessions.is_empty() && leader.is_none() {
                        break;
                    }
                }
                _ => self.open_more(phase, now),
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP_EVERY;
            }
            match self.poll.poll(&mut events, Some(POLL_TIMEOUT)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                self.dispatch(event, now);
            }
            self.nudge(now);
            self.load.flush(self.shared);
        }
        // Whatever is left did not finish closing within the grace time, or
        // never got to close because the run ended abruptly.
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            let session = &mut self.sessions[key].session;
            let end = if session.is_ready() { session.expire() } else { End::Cancelled };
            self.finish(key, end);
        }
        self.load.flush(self.shared);
        Ok(ThreadResult { load: self.load, clean_closes: self.clean_closes, unclean_closes: self.unclean_closes })
    }

    /// Starts connections while the plan allows.
    fn open_more(&mut self, phase: Phase, now: Instant) {
        if !self.plan.opening_phases.contains(&phase) {
            return;
        }
        while self.pending < self.plan.max_pending
            && self.sessions.len() < self.plan.live
            && self.plan.total.is_none_or(|total| self.started < total)
        {
            // Round-robin over the sources by the connection's number across all threads.
            let number = self.index + self.threads * self.started;
            self.started += 1;
            let source = (!self.opts.sources.is_empty()).then(|| self.opts.sources[number % self.opts.sources.len()]);
            match self.start_session(source, now) {
                Ok(()) => {}
                Err(e) => {
                    self.shared.failed.fetch_add(1, Relaxed);
                    self.shared.error("connect failed", explain(&e));
                    if self.plan.total.is_none() {
                        // Replacing sessions: try again on the next turn rather than spin.
                        break;
                    }
                }
            }
        }
    }

    /// Starts one connection and registers it.
    fn start_session(&mut self, source: Option<std::net::IpAddr>, now: Instant) -> io::Result<()> {
        let opts = self.opts;
        // `started` already counts this one.
        let (target, url) = match &self.plan.first_elsewhere {
            Some((target, url)) if self.started == 1 => (*target, url),
            _ => (self.target, &opts.ws_url),
        };
        let mut session = Session::connect(target, source, &opts.client, url, now, opts.timeout)?;
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        if key > MAX_KEY {
            return Err(io::Error::other("too many connections for one thread"));
        }
        self.generation = self.generation.wrapping_add(1) & (usize::MAX >> KEY_BITS);
        session.register(self.poll.registry(), Token(self.generation << KEY_BITS | key), key)?;
        entry.insert(Slot { session, generation: self.generation });
        self.pending += 1;
        self.shared.pending.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Hands an event to its session; events of ended sessions are dropped.
    fn dispatch(&mut self, event: &mio::event::Event, now: Instant) {
        if event.token() == WAKE {
            // It only had to end the poll's wait.
            return;
        }
        let Token(token) = event.token();
        let key = token & ((1 << KEY_BITS) - 1);
        let Some(slot) = self.sessions.get_mut(key) else {
            return;
        };
        if slot.generation != token >> KEY_BITS {
            return;
        }
        let was_ready = slot.session.is_ready();
        let mut end = slot.session.ready(event, &mut self.scratch, &mut self.load, now, CLOSE_GRACE);
        if !was_ready && slot.session.is_ready() {
            self.pending -= 1;
            self.shared.pending.fetch_sub(1, Relaxed);
            self.shared.open.fetch_add(1, Relaxed);
            self.shared.opened.fetch_add(1, Relaxed);
            if slot.session.uses_deflate() {
                self.shared.deflated.fetch_add(1, Relaxed);
            }
        }
        if end.is_none() {
            if let Err(e) = slot.session.update_interest(self.poll.registry()) {
                end = Some(End::Dropped("poll", e.to_string()));
            }
        }
        if let Some(end) = end {
            self.finish(key, end);
        }
    }

    /// Sends a Close on every open session; drops those still opening.
    fn close_all(&mut self, now: Instant) {
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            let end = self.sessions[key].session.close(now, CLOSE_GRACE);
            self.settle(key, end);
        }
    }

    /// Lets the mode act on the sessions it asks for.
    fn nudge(&mut self, now: Instant) {
        match self.load.turn(now) {
            Nudge::Nobody => {}
            Nudge::One(key) => self.nudge_one(key, now),
            Nudge::Every => {
                let mut keys = std::mem::take(&mut self.keys);
                keys.clear();
                keys.extend(self.sessions.iter().map(|(key, _)| key));
                for &key in &keys {
                    self.nudge_one(key, now);
                }
                self.keys = keys;
            }
        }
    }

    /// Lets the mode act on the session in slot `key`, if there is one.
    fn nudge_one(&mut self, key: usize, now: Instant) {
        if let Some(slot) = self.sessions.get_mut(key) {
            let end = slot.session.nudge(&mut self.load, now, CLOSE_GRACE);
            self.settle(key, end);
        }
    }

    /// After I/O outside an event: updates the session's interest, or ends it.
    fn settle(&mut self, key: usize, mut end: Option<End>) {
        if end.is_none() {
            if let Err(e) = self.sessions[key].session.update_interest(self.poll.registry()) {
                end = Some(End::Dropped("poll", e.to_string()));
            }
        }
        if let Some(end) = end {
            self.finish(key, end);
        }
    }

    /// Ends the sessions whose deadline passed.
    fn sweep(&mut self, now: Instant) {
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(
            self.sessions.iter().filter(|(_, slot)| slot.session.deadline().is_some_and(|d| d <= now)).map(|(k, _)| k),
        );
        for &key in &keys {
            let end = self.sessions[key].session.expire();
            self.finish(key, end);
        }
        self.keys = keys;
    }

    /// Removes a session and counts how it ended.
    fn finish(&mut self, key: usize, end: End) {
        let mut slot = self.sessions.remove(key);
        slot.session.deregister(self.poll.registry());
        let end = if slot.session.is_ready() {
            self.shared.open.fetch_sub(1, Relaxed);
            end
        } else {
            self.pending -= 1;
            self.shared.pending.fetch_sub(1, Relaxed);
            match end {
                // Open, but still waiting for its first reply: it never counted
                // as open, so it counts as failed, or the opening would wait for it.
                End::Dropped(what, why) => End::Failed("first reply", format!("{what}: {why}")),
                end => end,
            }
        };
        match end {
            End::Failed(what, why) => {
                self.shared.failed.fetch_add(1, Relaxed);
                self.shared.error(&format!("{what} failed"), why);
            }
            End::Dropped(what, why) => self.shared.error(what, why),
            End::Closed { clean: true } => self.clean_closes += 1,
            End::Closed { clean: false } => self.unclean_closes += 1,
            End::Cancelled => {}
        }
    }
}

/// An error of starting a connection, with a hint where one helps.
fn explain(e: &io::Error) -> String {
    // EMFILE is 24 on Linux, macOS and the BSDs.
    if cfg!(unix) && e.raw_os_error() == Some(24) {
        format!("{e} (raise the open file limit, e.g. ulimit -n 100000)")
    } else if e.kind() == io::ErrorKind::AddrInUse || e.kind() == io::ErrorKind::AddrNotAvailable {
        format!("{e} (a source address that is not local, or out of ephemeral ports: see --source-range)")
    } else {
        e.to_string()
    }
}
