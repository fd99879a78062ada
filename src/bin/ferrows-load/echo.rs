//! Echo mode: every connection keeps K messages in flight. On the fast path
//! (see [`crate::replies`]) frames are encoded once and echoes counted from
//! their headers, round trips sampled; with `--every-message`, and on
//! connections with permessage-deflate or TLS, the library's client builds
//! and checks every message, which carries its send time. With `--rate`,
//! each connection sends a message per tick of the pace (K in flight at
//! most) instead of one per echo, on the checking path.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use ferrows::client::{ClientConnection, ClientEvent};

use crate::args::Options;
use crate::histogram::Histogram;
use crate::leader::Leader;
use crate::pace::Pace;
use crate::replies::{Prepared, Replies, Taken};
use crate::report::{conclude, latency_fields, latency_line, per_sec, print_closes_and_errors};
use crate::session::{Handler, Opened};
use crate::shared::{LocalCounts, Phase, Shared};
use crate::worker::{run_threads, Load, Nudge, Plan, CLOSE_GRACE};

/// Decimal digits of a text message's timestamp: 10^16 ns is 115 days.
const TEXT_DIGITS: usize = 16;
/// Bytes of a binary message's timestamp.
const BINARY_STAMP: usize = 8;

/// One thread's part of an echo run.
#[derive(Debug)]
pub struct Echo<'a> {
    /// Timestamps count nanoseconds from here, the same instant in every thread.
    epoch: Instant,
    /// Payload bytes.
    size: usize,
    /// Text rather than binary.
    text: bool,
    /// Messages in flight per connection.
    in_flight: usize,
    /// The binary payload: 8 bytes overwritten with the time, then the filler.
    binary: Vec<u8>,
    /// The text payload: 16 digits overwritten with the time, then the filler.
    text_payload: String,
    /// The message as a frame, for the fast path; `None` with `--every-message`.
    prepared: Option<Prepared>,
    /// Per slot: the fast path's count, `None` for a connection that does
    /// not take it (or no longer: its remaining echoes carry no send time).
    replies: Vec<Option<Replies>>,
    /// With `--rate`: when each connection sends.
    pace: Pace,
    /// With `--rate`: messages each slot's connection has in flight.
    waiting: Vec<usize>,
    /// With `--rate`: messages each connection may send at the next nudge.
    due: usize,
    /// The run's phase.
    phase: Phase,
    /// Round trips of the messages received while measuring, in ns.
    latency: Histogram,
    /// Messages received while measuring.
    messages: u64,
    /// Counts for the progress line.
    counts: LocalCounts,
    /// Where errors go.
    shared: &'a Shared,
}

impl<'a> Echo<'a> {
    /// A thread's part of an echo run per `opts`.
    pub fn new(opts: &Options, epoch: Instant, shared: &'a Shared) -> Self {
        let binary = if opts.text {
            Vec::new()
        } else {
            let mut binary = vec![0; BINARY_STAMP];
            binary.extend(opts.payload.binary(opts.size - BINARY_STAMP));
            binary
        };
        let text_payload = if opts.text {
            "0".repeat(TEXT_DIGITS) + &opts.payload.text(opts.size - TEXT_DIGITS)
        } else {
            String::new()
        };
        let payload = if opts.text { text_payload.as_bytes() } else { &binary };
        // Any key will do (see `replies`); this one differs from run to run.
        let key = std::collections::hash_map::RandomState::new().build_hasher().finish() as u32;
        // A paced connection sends on the pace's ticks, not on replies: the checking path.
        let prepared =
            (!opts.every_message && opts.rate.is_none()).then(|| Prepared::new(opts.text, payload, key.to_ne_bytes()));
        Echo {
            epoch,
            size: opts.size,
            text: opts.text,
            in_flight: opts.in_flight,
            binary,
            text_payload,
            prepared,
            replies: Vec::new(),
            pace: Pace::new(opts.rate),
            waiting: Vec::new(),
            due: 0,
            phase: Phase::Opening,
            latency: Histogram::default(),
            messages: 0,
            counts: LocalCounts::default(),
            shared,
        }
    }

    /// Nanoseconds from the epoch to `now`.
    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Sends one message stamped with `now`.
    fn send(&mut self, conn: &mut ClientConnection, now: Instant) {
        let stamp = self.stamp(now);
        // A refusal means the connection is closing: the message is not needed.
        let _ = if self.text {
            let mut digits = [b'0'; TEXT_DIGITS];
            let mut rest = stamp;
            for digit in digits.iter_mut().rev() {
                *digit = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            // ASCII digits are always UTF-8.
            let digits = std::str::from_utf8(&digits).unwrap_or("0000000000000000");
            self.text_payload.replace_range(..TEXT_DIGITS, digits);
            conn.send_text(&self.text_payload)
        } else {
            self.binary[..BINARY_STAMP].copy_from_slice(&stamp.to_le_bytes());
            conn.send_binary(&self.binary)
        };
    }

    /// The send time carried by an echoed message, or why it is not an echo of ours.
    fn sent_at(&self, event: &ClientEvent) -> Result<u64, String> {
        let (payload, text) = match event {
            ClientEvent::Binary(data) => (data.as_slice(), false),
            ClientEvent::Text(text) => (text.as_bytes(), true),
            _ => return Err(String::new()),
        };
        let kind = |text: bool| if text { "text" } else { "binary" };
        if text != self.text || payload.len() != self.size {
            return Err(format!(
                "expected a {}-byte {} echo, got a {}-byte {} message",
                self.size,
                kind(self.text),
                payload.len(),
                kind(text)
            ));
        }
        if text {
            payload[..TEXT_DIGITS]
                .iter()
                .try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
                .ok_or_else(|| "echoed text does not start with our timestamp".to_owned())
        } else {
            let mut stamp = [0; BINARY_STAMP];
            stamp.copy_from_slice(&payload[..BINARY_STAMP]);
            Ok(u64::from_le_bytes(stamp))
        }
    }
}

impl Handler for Echo<'_> {
    fn on_open(&mut self, conn: &mut ClientConnection, slot: usize, _started: Instant, now: Instant) -> Opened {
        if self.replies.len() <= slot {
            self.replies.resize_with(slot + 1, || None);
            self.waiting.resize(slot + 1, 0);
        }
        let fast = self.prepared.is_some() && !conn.endpoint().uses_deflate() && !conn.is_tls();
        self.replies[slot] = fast.then(Replies::default);
        if fast {
            return Opened::Raw;
        }
        self.waiting[slot] = 0;
        if self.pace.is_on() {
            return Opened::Ready;
        }
        for _ in 0..self.in_flight {
            self.send(conn, now);
        }
        Opened::Ready
    }

    fn on_event(&mut self, conn: &mut ClientConnection, slot: usize, event: ClientEvent, now: Instant) {
        if !matches!(event, ClientEvent::Binary(_) | ClientEvent::Text(_)) {
            return;
        }
        let received = self.stamp(now);
        self.waiting[slot] = self.waiting[slot].saturating_sub(1);
        // Echoes of the fast path's frames that its count did not take.
        let unstamped = self.replies[slot].is_some();
        match self.sent_at(&event) {
            Ok(_) if unstamped => {
                self.counts.messages += 1;
                self.counts.bytes += self.size as u64;
                if self.phase == Phase::Measuring {
                    self.messages += 1;
                }
            }
            Ok(sent) if sent <= received => {
                self.counts.messages += 1;
                self.counts.bytes += self.size as u64;
                if self.phase == Phase::Measuring {
                    self.latency.record(received - sent);
                    self.messages += 1;
                }
            }
            Ok(_) => self.shared.error("echo mismatch", "timestamp from the future"),
            Err(why) => self.shared.error("echo mismatch", why),
        }
        if self.phase < Phase::Closing && !self.pace.is_on() {
            self.send(conn, now);
        }
    }

    fn on_nudge(&mut self, conn: &mut ClientConnection, slot: usize, now: Instant) {
        let Some(waiting) = self.waiting.get(slot).copied() else {
            return;
        };
        let sends = self.due.min(self.in_flight.saturating_sub(waiting));
        self.waiting[slot] = waiting + sends;
        for _ in 0..sends {
            self.send(conn, now);
        }
    }

    fn on_raw(&mut self, slot: usize, input: &[u8], out: &mut Vec<u8>, now: Instant) -> Taken {
        let (Some(prepared), Some(Some(replies))) = (&self.prepared, self.replies.get_mut(slot)) else {
            return Taken::Until { at: 0 };
        };
        let measuring = self.phase == Phase::Measuring;
        let latency = &mut self.latency;
        let before = replies.received;
        let taken = replies.scan(input, prepared, now, |rtt| {
            if measuring {
                latency.record(rtt);
            }
        });
        let got = replies.received - before;
        self.counts.messages += got;
        self.counts.bytes += got * self.size as u64;
        if measuring {
            self.messages += got;
        }
        if self.phase < Phase::Closing && matches!(taken, Taken::All { .. }) {
            replies.top_up(prepared, self.in_flight, now, out);
        }
        taken
    }
}

impl Load for Echo<'_> {
    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    fn flush(&mut self, shared: &Shared) {
        self.counts.flush(shared);
    }

    fn turn(&mut self, now: Instant) -> Nudge {
        if !self.pace.is_on() || !matches!(self.phase, Phase::Warmup | Phase::Measuring) {
            return Nudge::Nobody;
        }
        self.due = self.pace.due(now, self.in_flight);
        if self.due == 0 {
            Nudge::Nobody
        } else {
            Nudge::Every
        }
    }
}

/// Runs echo mode and prints its summary; returns the exit status.
///
/// # Errors
///
/// A thread's event loop could not run.
pub fn run(opts: &Options, target: SocketAddr, shared: &Shared) -> io::Result<i32> {
    let epoch = Instant::now();
    let leader = Leader::new(opts, CLOSE_GRACE, shared);
    let plan = |index| Plan::open_share(opts, index, 0);
    let (results, leader) = run_threads(opts, target, shared, leader, plan, |_, _| Echo::new(opts, epoch, shared))?;

    let mut latency = Histogram::default();
    let (mut messages, mut clean, mut unclean) = (0, 0, 0);
    for result in &results {
        latency.merge(&result.load.latency);
        messages += result.load.messages;
        clean += result.clean_closes;
        unclean += result.unclean_closes;
    }
    let time = leader.measured_time();
    let bytes = messages * opts.size as u64;
    let (msgs_per_sec, bytes_per_sec) = (per_sec(messages, time), per_sec(bytes, time));
    let opened = shared.opened.load(Relaxed);
    let failed = shared.failed.load(Relaxed);
    let errors = shared.errors.load(Relaxed);
    let kind = if opts.text { "text" } else { "binary" };
    let payload = opts.payload.name();

    println!();
    println!(
        "echo {}: {} connections ({opened} opened, {failed} failed), {} thread(s)",
        opts.url, opts.connections, opts.threads
    );
    println!("  messages   {}-byte {kind} ({payload}), {} in flight per connection", opts.size, opts.in_flight);
    println!(
        "  measured   {} ({} connections open at its start, {} at its end)",
        leader.measured_words(),
        leader.open_measured,
        leader.open_at_end
    );
    println!("  echoes     {messages} ({msgs_per_sec:.1} msgs/s)");
    println!("  payload    {bytes} bytes echoed ({:.3} MB/s each way)", bytes_per_sec / 1e6);
    println!("  latency    {}", latency_line(&latency));
    leader.print_cpu();
    let cpu = leader.cpu_field();
    print_closes_and_errors(opts, shared, clean, unclean, errors);
    println!(
        "RESULT mode=echo connections={} size={} payload={payload} in_flight={} msgs_per_sec={msgs_per_sec:.1} bytes_per_sec={bytes_per_sec:.0} {} {cpu} deflate={} errors={errors}",
        opts.connections,
        opts.size,
        opts.in_flight,
        latency_fields(&latency),
        shared.deflated.load(Relaxed)
    );
    Ok(conclude(shared, &opts.url))
}
