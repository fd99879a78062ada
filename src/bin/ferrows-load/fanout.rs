//! Fanout mode: N subscribers of one topic and one publisher, speaking the
//! JSON pub/sub protocol of ferrows' `/pubsub`.
//!
//! Every subscriber subscribes and counts open once its ack is back; then the
//! publisher (the first connection to open on the first thread) publishes,
//! keeping K publishes unacknowledged. Each `data` is
//! `{"t":SEND_NS,"s":SEQUENCE,"p":"xx.."}`, exactly `--size` bytes: the send
//! time first, so that a subscriber reads it (and the sequence number) from
//! the front of the delivery without parsing the JSON.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use ferrows::client::{ClientConnection, ClientEvent};

use crate::args::Options;
use crate::histogram::Histogram;
use crate::leader::Leader;
use crate::pace::Pace;
use crate::payload::{leading_number, pad};
use crate::report::{conclude, latency_fields, latency_line, per_sec, print_closes_and_errors};
use crate::session::{Handler, Opened};
use crate::shared::{LocalCounts, Phase, Shared};
use crate::worker::{run_threads, Load, Nudge, Plan, CLOSE_GRACE};

/// Subscribers unless `--subscribers` says otherwise.
pub const DEFAULT_SUBSCRIBERS: usize = 1000;
/// Bytes of `data` unless `--size` says otherwise.
pub const DEFAULT_SIZE: usize = 64;
/// The least `--size`: room for a send time of a day in nanoseconds (14
/// digits) and a sequence number of 16 digits.
pub const MIN_SIZE: usize = 48;

/// The topic every subscriber subscribes to.
const TOPIC: &str = "ferrows-load";
/// A subscriber's request.
const SUBSCRIBE: &str = r#"{"op":"subscribe","topics":["ferrows-load"],"id":0}"#;
/// How the server's answer to it begins.
const SUBSCRIBE_ACK: &str = r#"{"type":"ack","op":"subscribe""#;
/// How a publish's ack begins, up to its id (our sequence number).
const PUBLISH_ACK: &str = r#"{"type":"ack","op":"publish","id":"#;
/// What follows the id in a publish's ack.
const RECIPIENTS: &str = r#","recipients":"#;
/// How a delivery of our topic begins, up to its `data`.
const DELIVERY: &str = r#"{"type":"message","topic":"ferrows-load","data":"#;
/// The field name a delivery's `data` is looked for by if it does not begin as expected.
const DATA_FIELD: &str = r#""data":"#;
/// What `data` begins with, up to the send time.
const DATA_STAMP: &str = r#"{"t":"#;
/// What follows the send time, up to the sequence number.
const DATA_SEQUENCE: &str = r#","s":"#;
/// What follows the sequence number, up to the filler.
const DATA_FILLER: &str = r#","p":""#;
/// What ends `data`.
const DATA_END: &str = r#""}"#;
/// Most characters of an unexpected message quoted in an error.
const QUOTE_CHARS: usize = 120;

/// What a connection of a thread is to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No connection opened in this slot yet.
    Vacant,
    /// The publisher.
    Publisher,
    /// A subscriber waiting for its subscribe ack.
    Subscribing,
    /// A subscriber; the last sequence number it received (0: none yet).
    Subscriber(u64),
}

/// One thread's part of a fanout run.
#[derive(Debug)]
pub struct Fanout<'a> {
    /// Timestamps count nanoseconds from here, the same instant in every thread.
    epoch: Instant,
    /// Bytes of each publish's `data`.
    size: usize,
    /// Publishes unacknowledged at once.
    in_flight: usize,
    /// The run's phase.
    phase: Phase,
    /// Whether this thread opens the publisher (the first thread does).
    hosts_publisher: bool,
    /// The publisher connects to `--publisher-url`, not to `--url`.
    separate_publisher: bool,
    /// The publisher's slot, once it is open.
    publisher: Option<usize>,
    /// Whether the publisher began publishing.
    publishing: bool,
    /// The sequence number of the last publish sent (the first is 1).
    sent: u64,
    /// The sequence number of the last publish acknowledged.
    acked: u64,
    /// Publishes the publisher may send: `in_flight` less those unacknowledged.
    credits: usize,
    /// With `--rate`: when the publisher sends.
    pace: Pace,
    /// Publishes to send at the publisher's next nudge.
    due: usize,
    /// With a separate publisher: the publishes not yet received by every
    /// subscriber, oldest first, with how many received each. The next
    /// publish waits for the oldest to be received everywhere, since the
    /// publisher's node acknowledges before the other node delivers.
    outstanding: std::collections::VecDeque<(u64, usize)>,
    /// Subscribers once publishing began.
    subscribers: usize,
    /// What each slot's connection is.
    roles: Vec<Role>,
    /// The publish being built, reused.
    request: String,
    /// Publish-to-receipt delays of the deliveries received while measuring, in ns.
    latency: Histogram,
    /// Deliveries received while measuring.
    deliveries: u64,
    /// Publishes acknowledged while measuring.
    publishes: u64,
    /// Recipients the server counted in those acks.
    recipients: u64,
    /// Messages missing from a subscriber's sequence, whole run.
    dropped: u64,
    /// Counts for the progress line.
    counts: LocalCounts,
    /// Where errors go.
    shared: &'a Shared,
}

impl<'a> Fanout<'a> {
    /// Thread `index`'s part of a fanout run per `opts`.
    pub fn new(opts: &Options, index: usize, epoch: Instant, shared: &'a Shared) -> Self {
        Fanout {
            epoch,
            size: opts.size,
            in_flight: opts.in_flight,
            phase: Phase::Opening,
            hosts_publisher: index == 0,
            separate_publisher: opts.publisher_url.is_some(),
            publisher: None,
            publishing: false,
            sent: 0,
            acked: 0,
            credits: 0,
            pace: Pace::new(opts.rate),
            due: 0,
            outstanding: std::collections::VecDeque::new(),
            subscribers: 0,
            roles: Vec::new(),
            request: String::new(),
            latency: Histogram::default(),
            deliveries: 0,
            publishes: 0,
            recipients: 0,
            dropped: 0,
            counts: LocalCounts::default(),
            shared,
        }
    }

    /// Nanoseconds from the epoch to `now`.
    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Sends the next publish, stamped with `now`.
    fn publish(&mut self, conn: &mut ClientConnection) {
        self.sent += 1;
        // The clock now, not the batch's, which may be long past.
        let (stamp, sequence) = (self.stamp(Instant::now()), self.sent);
        build_publish(&mut self.request, stamp, sequence, self.size);
        // A refusal means the connection is closing: the publish is not needed.
        let _ = conn.send_text(&self.request);
        if self.separate_publisher {
            self.outstanding.push_back((sequence, 0));
        }
    }

    /// A subscriber received `sequence` (separate publisher): once the oldest
    /// outstanding publish is everywhere, the publisher may send the next.
    fn received(&mut self, sequence: u64) {
        let Some(&(front, _)) = self.outstanding.front() else { return };
        let Some(entry) = sequence.checked_sub(front).and_then(|at| self.outstanding.get_mut(at as usize)) else {
            return;
        };
        entry.1 += 1;
        if entry.1 >= self.subscribers {
            // Everything up to it is done, even publishes a subscriber missed.
            while let Some((done, _)) = self.outstanding.pop_front() {
                self.credits += 1;
                if done == sequence {
                    break;
                }
            }
        }
    }

    /// A message to the publisher: the ack of its oldest publish, then the next one.
    fn on_ack(&mut self, conn: &mut ClientConnection, text: &str) {
        let Some((id, recipients)) = parse_publish_ack(text) else {
            self.shared.error("fanout publisher", format!("expected a publish ack, got {}", quote(text)));
            return;
        };
        if id != self.acked + 1 {
            self.shared.error("fanout publisher", format!("ack of publish {id} after that of {}", self.acked));
        }
        self.acked = id;
        self.counts.publishes += 1;
        if self.phase == Phase::Measuring {
            self.publishes += 1;
            self.recipients += recipients;
        }
        if self.publishing && self.phase < Phase::Closing && !self.separate_publisher {
            if self.pace.is_on() {
                // Sent on a tick of the pace.
                self.credits += 1;
            } else {
                self.publish(conn);
            }
        }
    }

    /// A delivery to a subscriber whose last sequence number was `last`;
    /// returns the new last one.
    fn on_delivery(&mut self, text: &str, last: u64, now: Instant) -> u64 {
        let Some((sent, sequence)) = parse_delivery(text) else {
            self.shared.error("fanout subscriber", format!("not a delivery of ours: {}", quote(text)));
            return last;
        };
        let received = self.stamp(now);
        if sent > received {
            self.shared.error("fanout subscriber", "send time from the future");
        }
        self.counts.messages += 1;
        self.counts.bytes += self.size as u64;
        if self.phase == Phase::Measuring {
            self.latency.record(received.saturating_sub(sent));
            self.deliveries += 1;
        }
        if sequence <= last {
            self.shared.error("fanout order", format!("a subscriber got publish {sequence} after {last}"));
            return last;
        }
        if self.separate_publisher {
            self.received(sequence);
        }
        // A gap: the server skipped messages for this subscriber (a slow
        // consumer policy), which is a drop, not a protocol error.
        let missing = sequence - last - 1;
        self.dropped += missing;
        self.counts.dropped += missing;
        sequence
    }
}

impl Handler for Fanout<'_> {
    // A batch of events from thousands of subscribers takes long to handle.
    const STAMP_EACH_READ: bool = true;

    fn on_open(&mut self, conn: &mut ClientConnection, slot: usize, _started: Instant, _now: Instant) -> Opened {
        if slot >= self.roles.len() {
            self.roles.resize(slot + 1, Role::Vacant);
        }
        // With --publisher-url, the publisher is the thread's first connection (slot 0).
        if self.hosts_publisher && self.publisher.is_none() && (!self.separate_publisher || slot == 0) {
            self.publisher = Some(slot);
            self.roles[slot] = Role::Publisher;
            return Opened::Ready;
        }
        self.roles[slot] = Role::Subscribing;
        // A refusal means the connection is closing; waiting for the ack then
        // ends in a failure that says so.
        let _ = conn.send_text(SUBSCRIBE);
        Opened::AwaitReply
    }

    fn on_event(&mut self, conn: &mut ClientConnection, slot: usize, event: ClientEvent, now: Instant) {
        let text = match &event {
            ClientEvent::Text(text) => text.as_str(),
            ClientEvent::Binary(data) => {
                self.shared.error("fanout", format!("a {}-byte binary message", data.len()));
                return;
            }
            _ => return,
        };
        match self.roles.get(slot).copied().unwrap_or(Role::Vacant) {
            Role::Publisher => self.on_ack(conn, text),
            Role::Subscriber(last) => self.roles[slot] = Role::Subscriber(self.on_delivery(text, last, now)),
            Role::Subscribing if text.starts_with(SUBSCRIBE_ACK) => self.roles[slot] = Role::Subscriber(0),
            Role::Subscribing => {
                self.shared.error("fanout subscriber", format!("expected the subscribe ack, got {}", quote(text)));
            }
            Role::Vacant => {}
        }
    }

    fn on_nudge(&mut self, conn: &mut ClientConnection, slot: usize, _now: Instant) {
        if Some(slot) == self.publisher && self.phase < Phase::Closing {
            let sends = std::mem::take(&mut self.due).min(self.credits);
            self.credits -= sends;
            for _ in 0..sends {
                self.publish(conn);
            }
        }
    }
}

impl Load for Fanout<'_> {
    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    fn flush(&mut self, shared: &Shared) {
        self.counts.flush(shared);
    }

    fn turn(&mut self, now: Instant) -> Nudge {
        // Publishing starts once every subscriber is subscribed (the opening is over).
        let Some(slot) = self.publisher else {
            return Nudge::Nobody;
        };
        if !self.publishing && matches!(self.phase, Phase::Warmup | Phase::Measuring) {
            self.publishing = true;
            self.credits = self.in_flight;
            self.subscribers = self.roles.iter().filter(|r| matches!(r, Role::Subscriber(_))).count();
        }
        if !self.publishing || self.credits == 0 {
            return Nudge::Nobody;
        }
        self.due = self.pace.due(now, self.credits);
        if self.due == 0 {
            Nudge::Nobody
        } else {
            Nudge::One(slot)
        }
    }
}

/// Builds a publish of sequence number `sequence`, sent at `stamp`, whose
/// `data` is `size` bytes (more only if the numbers outgrow it).
fn build_publish(out: &mut String, stamp: u64, sequence: u64, size: usize) {
    use std::fmt::Write;

    out.clear();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"{{"op":"publish","topic":"{TOPIC}","id":{sequence},"data":{DATA_STAMP}{stamp}{DATA_SEQUENCE}{sequence}{DATA_FILLER}"#
    );
    let data_start = out.find(DATA_STAMP).unwrap_or(0);
    let data_len = out.len() - data_start + DATA_END.len();
    pad(out, size.saturating_sub(data_len));
    out.push_str(DATA_END);
    out.push('}');
}

/// The id and recipients of a publish ack.
fn parse_publish_ack(text: &str) -> Option<(u64, u64)> {
    let (id, rest) = leading_number(text.strip_prefix(PUBLISH_ACK)?)?;
    let (recipients, _) = leading_number(rest.strip_prefix(RECIPIENTS)?)?;
    Some((id, recipients))
}

/// The send time and sequence number of a delivery, read from the front of
/// its `data`: no JSON parse.
fn parse_delivery(text: &str) -> Option<(u64, u64)> {
    let data = match text.strip_prefix(DELIVERY) {
        Some(data) => data,
        // Another server may order the fields otherwise.
        None => text[text.find(DATA_FIELD)? + DATA_FIELD.len()..].trim_start(),
    };
    let (stamp, rest) = leading_number(data.strip_prefix(DATA_STAMP)?)?;
    let (sequence, _) = leading_number(rest.strip_prefix(DATA_SEQUENCE)?)?;
    Some((stamp, sequence))
}

/// The start of an unexpected message, for an error.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((at, _)) => format!("{:?}...", &text[..at]),
        None => format!("{text:?}"),
    }
}

/// Runs fanout mode and prints its summary; returns the exit status.
///
/// # Errors
///
/// A thread's event loop could not run.
pub fn run(opts: &Options, target: SocketAddr, shared: &Shared) -> io::Result<i32> {
    let epoch = Instant::now();
    let leader = Leader::new(opts, CLOSE_GRACE, shared);
    // The first thread opens the publisher too.
    let publisher = match &opts.publisher_url {
        Some(url) => Some((crate::resolve_url(url, &opts.sources).map_err(io::Error::other)?, url.clone())),
        None => None,
    };
    let plan = |index| Plan {
        first_elsewhere: publisher.clone().filter(|_| index == 0),
        ..Plan::open_share(opts, index, usize::from(index == 0))
    };
    let (results, leader) =
        run_threads(opts, target, shared, leader, plan, |index, _| Fanout::new(opts, index, epoch, shared))?;

    let mut latency = Histogram::default();
    let (mut deliveries, mut publishes, mut recipients, mut dropped, mut clean, mut unclean) = (0, 0, 0, 0, 0, 0);
    for result in &results {
        let load = &result.load;
        latency.merge(&load.latency);
        deliveries += load.deliveries;
        publishes += load.publishes;
        recipients += load.recipients;
        dropped += load.dropped;
        clean += result.clean_closes;
        unclean += result.unclean_closes;
    }
    let time = leader.measured_time();
    let (deliveries_per_sec, publishes_per_sec) = (per_sec(deliveries, time), per_sec(publishes, time));
    let opened = shared.opened.load(Relaxed);
    let failed = shared.failed.load(Relaxed);
    let errors = shared.errors.load(Relaxed);
    let mean_recipients = if publishes > 0 { recipients as f64 / publishes as f64 } else { 0.0 };

    println!();
    println!(
        "fanout {}: {} subscribers and 1 publisher ({opened} opened, {failed} failed), {} thread(s)",
        opts.url, opts.connections, opts.threads
    );
    println!("  publishes  {}-byte data, {} in flight, topic {TOPIC:?}", opts.size, opts.in_flight);
    println!(
        "  measured   {} ({} connections open at its start, {} at its end)",
        leader.measured_words(),
        leader.open_measured,
        leader.open_at_end
    );
    println!(
        "  published  {publishes} acknowledged ({publishes_per_sec:.1}/s), {mean_recipients:.1} recipients each on the publisher's server loop"
    );
    println!("  deliveries {deliveries} ({deliveries_per_sec:.1}/s over all subscribers)");
    println!("  delay      {} (publish to receipt)", latency_line(&latency));
    println!("  dropped    {dropped} (gaps in a subscriber's sequence, whole run)");
    leader.print_cpu();
    let cpu = leader.cpu_field();
    print_closes_and_errors(opts, shared, clean, unclean, errors);
    println!(
        "RESULT mode=fanout subscribers={} size={} in_flight={} publishes_per_sec={publishes_per_sec:.1} deliveries_per_sec={deliveries_per_sec:.1} {} dropped={dropped} {cpu} deflate={} errors={errors}",
        opts.connections,
        opts.size,
        opts.in_flight,
        latency_fields(&latency),
        shared.deflated.load(Relaxed)
    );
    Ok(conclude(shared, &opts.url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_have_the_exact_data_size_and_parse_back() {
        let mut out = String::new();
        for size in [MIN_SIZE, DEFAULT_SIZE, 1000] {
            build_publish(&mut out, 86_399_999_999_999, 9_999_999_999_999_999, size);
            let value: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(value["op"], "publish");
            assert_eq!(value["topic"], TOPIC);
            assert_eq!(value["data"]["p"].as_str().unwrap().len(), size - MIN_SIZE, "{out}");
            // The data as sent, which a server passes on verbatim.
            let data = &out[out.find(DATA_FIELD).unwrap() + DATA_FIELD.len()..out.len() - 1];
            assert_eq!(data.len(), size, "{data}");
            let delivery = format!(r#"{{"type":"message","topic":"{TOPIC}","data":{data}}}"#);
            assert_eq!(parse_delivery(&delivery), Some((86_399_999_999_999, 9_999_999_999_999_999)));
        }
        build_publish(&mut out, 5, 7, DEFAULT_SIZE);
        assert!(out.starts_with(r#"{"op":"publish","topic":"ferrows-load","id":7,"data":{"t":5,"s":7,"p":"xx"#));
    }

    #[test]
    fn deliveries_in_another_field_order() {
        let text = r#"{"topic":"ferrows-load","data": {"t":12,"s":3,"p":""},"type":"message"}"#;
        assert_eq!(parse_delivery(text), Some((12, 3)));
        assert_eq!(parse_delivery(r#"{"type":"message","data":{"s":3,"t":12}}"#), None);
        assert_eq!(parse_delivery(r#"{"type":"ack"}"#), None);
    }

    #[test]
    fn acks() {
        assert_eq!(parse_publish_ack(r#"{"type":"ack","op":"publish","id":42,"recipients":1000}"#), Some((42, 1000)));
        assert_eq!(parse_publish_ack(r#"{"type":"error","id":42,"code":"bad_json"}"#), None);
        assert!(SUBSCRIBE_ACK.len() < SUBSCRIBE.len());
        assert!(quote(&"é".repeat(500)).ends_with("..."));
    }
}
