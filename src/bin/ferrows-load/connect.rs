//! Connect mode: handshakes per second, each connection closed as soon as it opens.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use ferrows::client::{ClientConnection, ClientEvent};

use crate::args::Options;
use crate::histogram::Histogram;
use crate::leader::Leader;
use crate::report::{conclude, latency_fields, latency_line, per_sec, print_closes_and_errors, share};
use crate::session::{Handler, Opened};
use crate::shared::{Phase, Shared};
use crate::worker::{run_threads, Load, Plan, CLOSE_GRACE};

/// One thread's part of a connect run.
#[derive(Debug, Default)]
pub struct Connect {
    /// The run's phase.
    phase: Phase,
    /// Time from the start of the TCP connect to the server's 101, in ns,
    /// for handshakes completed while measuring.
    latency: Histogram,
}

impl Handler for Connect {
    fn on_open(&mut self, _conn: &mut ClientConnection, _slot: usize, started: Instant, now: Instant) -> Opened {
        if self.phase == Phase::Measuring {
            self.latency.record(now.saturating_duration_since(started).as_nanos() as u64);
        }
        // Close at once; the session then waits for the server's Close and its TCP close.
        Opened::Close
    }

    fn on_event(&mut self, _conn: &mut ClientConnection, _slot: usize, _event: ClientEvent, _now: Instant) {}
}

impl Load for Connect {
    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    fn flush(&mut self, _shared: &Shared) {}
}

/// Runs connect mode and prints its summary; returns the exit status.
///
/// # Errors
///
/// A thread's event loop could not run.
pub fn run(opts: &Options, target: SocketAddr, shared: &Shared) -> io::Result<i32> {
    let leader = Leader::new(opts, CLOSE_GRACE, shared);
    let plan = |index| {
        let live = share(opts.concurrency, opts.threads, index);
        Plan {
            total: None,
            live,
            max_pending: live,
            opening_phases: &[Phase::Warmup, Phase::Measuring],
            first_elsewhere: None,
        }
    };
    let (results, leader) = run_threads(opts, target, shared, leader, plan, |_, _| Connect::default())?;

    let mut latency = Histogram::default();
    for result in &results {
        latency.merge(&result.load.latency);
    }
    let clean = results.iter().map(|r| r.clean_closes).sum();
    let unclean = results.iter().map(|r| r.unclean_closes).sum();
    let time = leader.measured_time();
    let handshakes = latency.count();
    let rate = per_sec(handshakes, time);
    let (failed, errors) = (shared.failed.load(Relaxed), shared.errors.load(Relaxed));

    println!();
    println!("connect {}: {} at a time, {} thread(s)", opts.url, opts.concurrency, opts.threads);
    println!("  measured   {}", leader.measured_words());
    println!("  handshakes {handshakes} ({rate:.1}/s), {failed} failed");
    println!("  latency    {} (connect to 101)", latency_line(&latency));
    leader.print_cpu();
    let cpu = leader.cpu_field();
    print_closes_and_errors(opts, shared, clean, unclean, errors);
    println!(
        "RESULT mode=connect concurrency={} handshakes={handshakes} handshakes_per_sec={rate:.1} {} failed={failed} {cpu} deflate={} errors={errors}",
        opts.concurrency,
        latency_fields(&latency),
        shared.deflated.load(Relaxed)
    );
    Ok(conclude(shared, &opts.url))
}
