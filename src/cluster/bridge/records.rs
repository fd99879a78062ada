//! The bridge's side of kept records: appends and reads go out as script
//! calls on the publishing connection, their answers come back in the order
//! the calls went, and records come in on the subscribed connection.
//!
//! A read of a topic this node follows waits until Redis has confirmed the
//! SUBSCRIBE of its channel: every record appended after the read then comes
//! through the subscription, and every one before is in what the read
//! returns, so the two leave no gap.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{random_run, Bridge, Link, MAX_UNWRITTEN, PUBLISHER, SUBSCRIBER};
use crate::cluster::record;
use crate::cluster::resp::{encode_command_parts, Value};
use crate::cluster::scripts::{self, Script, ScriptCall};
use crate::cluster::ClusterStats;
use crate::runtime::{Append, Appended, Kept, Position, ReadAnswer, ReadRequest, Record, Topic};

/// Bytes of script calls (their data included) that may wait for Redis's
/// answers; past it, appends are lost and reads answered with nothing.
const MAX_HELD: usize = 32 << 20;
/// The shortest time between two warnings about failing scripts.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the next reply on the publishing connection answers: one entry per
/// command written on it, in order.
#[derive(Debug)]
pub(super) enum Expected {
    /// AUTH: a refusal ends the link.
    Auth,
    /// PING or PUBLISH: an error ends the link, as it always has.
    Plain,
    /// SCRIPT LOAD: an error is logged (the calls then go by EVAL).
    ScriptLoad,
    /// A write whose refusal is logged and counted, not fatal (a presence removal).
    Tolerated,
    /// An APPEND call, with its arguments for a retry by EVAL, and the loop
    /// and ticket its answer goes to, if it asked for one.
    Append { call: ScriptCall, confirm: Option<(usize, u64)> },
    /// A READ call for slot `slot` of the reads in flight under `id`.
    Read { call: ScriptCall, id: u64, slot: usize },
    /// A JOIN call (members added or refreshed).
    Join(ScriptCall),
    /// A MEMBERS call, answered to a loop.
    Members { call: ScriptCall, loop_index: usize, ticket: u64 },
}

impl Expected {
    /// The script call it waits for, if it is one.
    fn call(&mut self) -> Option<&mut ScriptCall> {
        match self {
            Expected::Append { call, .. }
            | Expected::Read { call, .. }
            | Expected::Join(call)
            | Expected::Members { call, .. } => Some(call),
            Expected::Auth | Expected::Plain | Expected::ScriptLoad | Expected::Tolerated => None,
        }
    }
}

/// A loop's request, sent, waiting for its calls' answers.
#[derive(Debug)]
struct InFlight {
    loop_index: usize,
    ticket: u64,
    results: Vec<Option<Kept>>,
    /// Calls not answered yet.
    left: usize,
}

/// A loop's request not sent yet: it reads a topic whose SUBSCRIBE Redis has not confirmed.
#[derive(Debug)]
struct Waiting {
    request: ReadRequest,
    /// Answered with nothing past this.
    deadline: Instant,
}

/// Whether a waiting request can go.
enum Readiness {
    Ready,
    Wait,
    /// A link is down: it cannot be read without a gap.
    Refused,
}

/// The record side's state.
#[derive(Debug)]
pub(super) struct Keeping {
    /// This bridge's run in record headers. Unlike the frames' run it is
    /// never drawn again, so the node always knows its own records.
    run: u64,
    /// Followed topics whose SUBSCRIBE Redis confirmed.
    confirmed: HashSet<Topic>,
    /// SUBSCRIBE and UNSUBSCRIBE commands per topic not confirmed yet:
    /// `confirmed` stands only for a topic with none.
    unconfirmed: HashMap<Topic, u32>,
    waiting: VecDeque<Waiting>,
    in_flight: HashMap<u64, InFlight>,
    next_id: u64,
    /// The state of the generator of epoch candidates.
    draws: u64,
    /// When a failing script was last logged as a warning.
    warned_at: Option<Instant>,
    /// The last kept record's epoch and offset per followed topic, to count what is missed.
    pub(super) last: HashMap<Topic, (String, u64)>,
}

impl Keeping {
    pub(super) fn new() -> Self {
        Self {
            run: random_run(),
            confirmed: HashSet::new(),
            unconfirmed: HashMap::new(),
            waiting: VecDeque::new(),
            in_flight: HashMap::new(),
            next_id: 0,
            draws: random_run(),
            warned_at: None,
            last: HashMap::new(),
        }
    }

    /// A SUBSCRIBE (`subscribe`) or UNSUBSCRIBE of `topic`'s channel was written.
    pub(super) fn sent(&mut self, topic: &Topic, subscribe: bool) {
        *self.unconfirmed.entry(topic.clone()).or_insert(0) += 1;
        if !subscribe {
            self.confirmed.remove(topic);
        }
    }

    /// Redis confirmed a SUBSCRIBE (`subscribed`) or UNSUBSCRIBE of `topic`'s channel.
    fn confirmation(&mut self, topic: &Topic, subscribed: bool) {
        if let Some(count) = self.unconfirmed.get_mut(topic) {
            *count -= 1;
            if *count == 0 {
                self.unconfirmed.remove(topic);
            }
        }
        if subscribed {
            self.confirmed.insert(topic.clone());
        } else {
            self.confirmed.remove(topic);
        }
    }

    /// Whether `topic`'s channel is subscribed, confirmed, with nothing on the way.
    fn is_confirmed(&self, topic: &str) -> bool {
        self.confirmed.contains(topic) && !self.unconfirmed.contains_key(topic)
    }

    /// The subscribed connection is gone, and its subscriptions with it.
    pub(super) fn subscriber_lost(&mut self) {
        self.confirmed.clear();
        self.unconfirmed.clear();
        self.last.clear();
    }

    /// The earliest deadline of a waiting request.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|w| w.deadline).min()
    }

    /// 8 lowercase hex digits for a topic that has no epoch yet.
    fn epoch_candidate(&mut self) -> String {
        // splitmix64: the seed is random, the candidates need only differ.
        self.draws = self.draws.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.draws;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        format!("{:08x}", (z ^ (z >> 31)) as u32)
    }
}

impl Bridge {
    /// An append from a loop: a kept record goes as an APPEND call, one not
    /// kept as a plain PUBLISH on the same connection (so that it keeps its
    /// place among the topic's records). What cannot go now is lost, counted.
    pub(super) fn forward_append(&mut self, append: Append) {
        let Append { topic, data, keep, exclude, confirm } = append;
        if !self.publisher_has_room() {
            self.confirm(confirm, None);
            return ClusterStats::add(&self.stats.lost, 1);
        }
        let header = record::header(self.keeping.run, exclude);
        let channel = self.channel(Some(&topic));
        if let Some(keep) = keep {
            let epoch = self.keeping.epoch_candidate();
            let call = ScriptCall::append(&self.config.prefix, &topic, channel, data, keep, &epoch, &header);
            return self.write_call(Expected::Append { call, confirm });
        }
        let Link::Up(conn) = &mut self.links[PUBLISHER].link else { return };
        encode_command_parts(&[&[b"PUBLISH"], &[&channel], &[&header, b"0  ", &data]], &mut conn.out);
        conn.expected.push_back(Expected::Plain);
        ClusterStats::add(&self.stats.published, 1);
    }

    /// Whether the publishing connection is up and can take more.
    pub(super) fn publisher_has_room(&self) -> bool {
        match &self.links[PUBLISHER].link {
            Link::Up(conn) => conn.answered && conn.out.len() < MAX_UNWRITTEN && conn.held < MAX_HELD,
            _ => false,
        }
    }

    /// Writes a script call on the publishing connection, and what its reply answers.
    pub(super) fn write_call(&mut self, mut expected: Expected) {
        let Link::Up(conn) = &mut self.links[PUBLISHER].link else { return };
        if let Some(call) = expected.call() {
            call.encode(&mut conn.out);
            conn.held += call.held();
        }
        conn.expected.push_back(expected);
    }

    /// A read request from a loop: sent when its topics allow (see
    /// [`release_reads`](Self::release_reads)), answered in every case.
    pub(super) fn queue_read(&mut self, request: ReadRequest, now: Instant) {
        // Subscriptions the loop made before asking are seen first, so that
        // a read of a topic just followed waits for its confirmation.
        self.follow_subscriptions();
        let deadline = now + self.config.connect_timeout * 2;
        self.keeping.waiting.push_back(Waiting { request, deadline });
    }

    /// Sends the waiting requests that may go; answers with nothing those
    /// that waited too long or cannot be read without a gap.
    pub(super) fn release_reads(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.keeping.waiting.len() {
            let waiting = &self.keeping.waiting[index];
            match self.readiness(&waiting.request) {
                Readiness::Wait if now < waiting.deadline => index += 1,
                readiness => {
                    let Some(Waiting { request, .. }) = self.keeping.waiting.remove(index) else { break };
                    if matches!(readiness, Readiness::Ready) {
                        self.send_reads(request);
                    } else {
                        let results = vec![None; request.reads.len()];
                        self.answer(request.loop_index, request.ticket, results);
                    }
                }
            }
        }
    }

    fn readiness(&self, request: &ReadRequest) -> Readiness {
        if !matches!(self.links[PUBLISHER].link, Link::Up(_)) {
            return Readiness::Refused;
        }
        let unconfirmed =
            request.reads.iter().any(|r| self.wanted.contains(&r.topic) && !self.keeping.is_confirmed(&r.topic));
        match (unconfirmed, &self.links[SUBSCRIBER].link) {
            (false, _) => Readiness::Ready,
            (true, Link::Up(_)) => Readiness::Wait,
            (true, _) => Readiness::Refused,
        }
    }

    /// Writes one READ call per topic of `request`.
    fn send_reads(&mut self, request: ReadRequest) {
        let ReadRequest { loop_index, ticket, reads } = request;
        if reads.is_empty() || !self.publisher_has_room() {
            return self.answer(loop_index, ticket, vec![None; reads.len()]);
        }
        let id = self.keeping.next_id;
        self.keeping.next_id += 1;
        let left = reads.len();
        self.keeping.in_flight.insert(id, InFlight { loop_index, ticket, results: vec![None; left], left });
        for (slot, read) in reads.iter().enumerate() {
            let epoch = self.keeping.epoch_candidate();
            let call = ScriptCall::read(&self.config.prefix, read, &epoch);
            self.write_call(Expected::Read { call, id, slot });
        }
    }

    fn answer(&self, loop_index: usize, ticket: u64, results: Vec<Option<Kept>>) {
        if !self.inlet.answer(loop_index, ReadAnswer { ticket, results }) {
            log::debug!("cluster: loop {loop_index} could not take the answer to its read {ticket}");
        }
    }

    /// One read's result; the request is answered once all are in.
    fn fill(&mut self, id: u64, slot: usize, result: Option<Kept>) {
        let Some(request) = self.keeping.in_flight.get_mut(&id) else { return };
        if let Some(place) = request.results.get_mut(slot) {
            *place = result;
        }
        request.left = request.left.saturating_sub(1);
        if request.left == 0 {
            if let Some(done) = self.keeping.in_flight.remove(&id) {
                self.answer(done.loop_index, done.ticket, done.results);
            }
        }
    }

    /// A reply on the publishing connection, matched with the command it answers.
    pub(super) fn on_reply(&mut self, value: Value) -> Result<(), String> {
        let Link::Up(conn) = &mut self.links[PUBLISHER].link else { return Ok(()) };
        let Some(mut expected) = conn.expected.pop_front() else {
            return Err("Redis answered a command never sent".to_owned());
        };
        if let Some(call) = expected.call() {
            conn.held = conn.held.saturating_sub(call.held());
        }
        if let Value::Error(message) = &value {
            if let Some(call) = expected.call().filter(|call| call.by_sha && scripts::is_noscript(message)) {
                call.by_sha = false;
                self.retry(expected);
                return Ok(());
            }
        }
        match (expected, value) {
            (Expected::Auth | Expected::Plain, Value::Error(message)) => {
                Err(format!("Redis answered {}", String::from_utf8_lossy(&message)))
            }
            (Expected::Auth | Expected::Plain, _) => Ok(()),
            (Expected::ScriptLoad, Value::Error(message)) => {
                self.script_failed("SCRIPT LOAD", &message);
                Ok(())
            }
            (Expected::ScriptLoad, _) => Ok(()),
            (Expected::Tolerated, Value::Error(message)) => {
                ClusterStats::add(&self.stats.record_errors, 1);
                self.script_failed("a presence removal", &message);
                Ok(())
            }
            (Expected::Tolerated, _) => Ok(()),
            (Expected::Append { confirm, .. }, Value::Error(message)) => {
                ClusterStats::add(&self.stats.record_errors, 1);
                self.script_failed("an append", &message);
                self.confirm(confirm, None);
                Ok(())
            }
            (Expected::Read { id, slot, .. }, Value::Error(message)) => {
                ClusterStats::add(&self.stats.record_errors, 1);
                self.script_failed("a read", &message);
                self.fill(id, slot, None);
                Ok(())
            }
            (Expected::Append { confirm, .. }, value) => {
                let position = scripts::appended(&value);
                match position {
                    Some(_) => ClusterStats::add(&self.stats.records_appended, 1),
                    None => ClusterStats::add(&self.stats.invalid, 1),
                }
                self.confirm(confirm, position);
                Ok(())
            }
            (Expected::Read { id, slot, .. }, value) => {
                let mut invalid = 0;
                let kept = scripts::kept(&value, &mut invalid);
                ClusterStats::add(&self.stats.invalid, invalid + u64::from(kept.is_none()));
                self.fill(id, slot, kept);
                Ok(())
            }
            (Expected::Join(_), Value::Error(message)) => {
                ClusterStats::add(&self.stats.record_errors, 1);
                self.script_failed("a presence update", &message);
                Ok(())
            }
            (Expected::Join(_), _) => Ok(()),
            (Expected::Members { loop_index, ticket, .. }, value) => {
                if let Value::Error(message) = &value {
                    ClusterStats::add(&self.stats.record_errors, 1);
                    self.script_failed("a presence read", message);
                }
                let members = scripts::members(&value);
                self.answer_members(loop_index, ticket, members);
                Ok(())
            }
        }
    }

    /// Sends a call Redis did not find by SHA again, with its source.
    fn retry(&mut self, mut expected: Expected) {
        if let Some(call) = expected.call() {
            log::debug!("cluster: Redis has no {:?} script; the call goes again with it", call.script);
        }
        self.write_call(expected);
    }

    /// Tells the loop that asked what became of its append.
    fn confirm(&self, confirm: Option<(usize, u64)>, position: Option<Position>) {
        let Some((loop_index, ticket)) = confirm else { return };
        if !self.inlet.appended(loop_index, Appended { ticket, position }) {
            log::debug!("cluster: loop {loop_index} could not take the answer to its append {ticket}");
        }
    }

    /// Logs a script's error reply: a warning now and then, else at debug level.
    pub(super) fn script_failed(&mut self, what: &str, message: &[u8]) {
        let now = Instant::now();
        let message = String::from_utf8_lossy(message);
        if self.keeping.warned_at.is_none_or(|at| now >= at + WARN_EVERY) {
            self.keeping.warned_at = Some(now);
            log::warn!("cluster: Redis refused {what} of kept records: {message} (further ones logged at debug level)");
        } else {
            log::debug!("cluster: Redis refused {what} of kept records: {message}");
        }
    }

    /// The publishing connection is gone with the replies it owed: its
    /// appends are lost, its reads answered with nothing.
    pub(super) fn publisher_lost(&mut self, expected: VecDeque<Expected>) {
        for entry in expected {
            match entry {
                Expected::Append { confirm, .. } => {
                    ClusterStats::add(&self.stats.lost, 1);
                    self.confirm(confirm, None);
                }
                Expected::Read { id, slot, .. } => self.fill(id, slot, None),
                Expected::Members { loop_index, ticket, .. } => self.answer_members(loop_index, ticket, None),
                Expected::Auth | Expected::Plain | Expected::ScriptLoad | Expected::Tolerated | Expected::Join(_) => {}
            }
        }
        // Each call had its entry; none is left, unless the table is wrong.
        for (_, request) in std::mem::take(&mut self.keeping.in_flight) {
            self.answer(request.loop_index, request.ticket, request.results);
        }
    }

    /// Writes what a new publishing connection sends after AUTH: every script, loaded.
    pub(super) fn load_scripts(out: &mut Vec<u8>, expected: &mut VecDeque<Expected>) {
        for script in Script::ALL {
            script.encode_load(out);
            expected.push_back(Expected::ScriptLoad);
        }
    }

    /// A `subscribe` or `unsubscribe` confirmation on the subscribed connection.
    pub(super) fn on_confirmation(&mut self, subscribed: bool, channel: &[u8]) {
        let Some(Some(name)) = self.topic_of(channel) else { return };
        let topic = self.wanted.get(name).cloned().unwrap_or_else(|| Topic::from(name));
        self.keeping.confirmation(&topic, subscribed && self.wanted.contains(name));
    }

    /// The subscribed connection is gone: what it would have brought is
    /// missed, so reads on their way cannot promise to be followed without
    /// a gap; they are answered with nothing.
    pub(super) fn reads_lost_their_subscription(&mut self) {
        for (_, request) in std::mem::take(&mut self.keeping.in_flight) {
            self.answer(request.loop_index, request.ticket, vec![None; request.results.len()]);
        }
    }

    /// A record on `topic`'s channel. The node's own come back this way too:
    /// its loops get them from here, in the topic's order.
    pub(super) fn receive_record(&mut self, name: &str, payload: &[u8]) {
        let Some(message) = record::decode(payload) else {
            ClusterStats::add(&self.stats.invalid, 1);
            log::debug!("cluster: dropped a malformed record on topic {name}");
            return;
        };
        // Unsubscribed while the record was on its way.
        let Some(topic) = self.wanted.get(name).cloned() else { return };
        // Kept records of a topic come in offset order: a jump is what this node missed.
        if let Some(position) = message.position() {
            let last = self.keeping.last.insert(topic.clone(), (position.epoch.clone(), position.offset));
            if let Some((epoch, offset)) = last.filter(|(epoch, _)| *epoch == position.epoch) {
                let missing = position.offset.saturating_sub(offset + 1);
                if missing > 0 {
                    ClusterStats::add(&self.stats.gaps, missing);
                    log::debug!("cluster: {missing} record(s) of {name} missed under epoch {epoch}");
                }
            }
        }
        // A session is left out only on the node it belongs to.
        let exclude = message.exclude.filter(|_| message.run == self.keeping.run);
        let data = Arc::from(message.data);
        self.inlet.record(Record { topic, position: message.position(), data, exclude });
        ClusterStats::add(&self.stats.received, 1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::tests::{bridge, delivered};
    use super::*;
    use crate::cluster::record::RecordMessage;
    use crate::runtime::pubsub::Publication;
    use crate::runtime::{Position, Read, SessionId};

    fn records(inbox: &std::sync::mpsc::Receiver<Publication>) -> Vec<Record> {
        inbox
            .try_iter()
            .filter_map(|p| match p {
                Publication::Record(record) => Some((*record).clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn records_from_redis_reach_the_loops_own_ones_too() {
        let (mut bridge, inbox) = bridge();
        let session = SessionId { key: 4, generation: 2 };
        let own = record::encode(&RecordMessage {
            run: bridge.keeping.run,
            exclude: Some((0, session)),
            offset: 1,
            epoch: "e1",
            data: b"mine",
        });
        let other = record::encode(&RecordMessage {
            run: bridge.keeping.run.wrapping_add(1),
            exclude: Some((0, session)),
            offset: 0,
            epoch: "",
            data: b"theirs",
        });
        bridge.receive(b"ferrows:t:news", &own);
        bridge.receive(b"ferrows:t:news", &other);
        bridge.receive(b"ferrows:t:news", b"FRR1 but cut");
        bridge.receive(b"ferrows:all", &own);
        bridge.receive(b"ferrows:t:elsewhere", &own);
        let got = records(&inbox);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].position, Some(Position { offset: 1, epoch: "e1".into() }));
        assert_eq!((&*got[0].topic, &got[0].data[..], got[0].exclude), ("news", &b"mine"[..], Some((0, session))));
        assert_eq!((got[1].position.as_ref(), &got[1].data[..], got[1].exclude), (None, &b"theirs"[..], None));
        assert_eq!(bridge.stats.received.load(Ordering::Relaxed), 2);
        assert_eq!(bridge.stats.invalid.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_read_of_a_followed_topic_waits_for_its_subscription() {
        let (mut bridge, _inbox) = bridge();
        let now = Instant::now();
        let read = |topic: &str| ReadRequest {
            loop_index: 0,
            ticket: 1,
            reads: vec![Read::last(Topic::from(topic), 3, Duration::from_secs(1))],
        };
        // Both links up on sockets nobody reads.
        bridge.links[PUBLISHER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        bridge.links[SUBSCRIBER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        let news = Topic::from("news");
        bridge.keeping.sent(&news, true);
        assert!(matches!(bridge.readiness(&read("news")), Readiness::Wait));
        assert!(matches!(bridge.readiness(&read("unfollowed")), Readiness::Ready));
        bridge.on_confirmation(true, b"ferrows:t:news");
        assert!(matches!(bridge.readiness(&read("news")), Readiness::Ready));
        // Unsubscribed and subscribed again: it waits for the second confirmation.
        bridge.keeping.sent(&news, false);
        bridge.keeping.sent(&news, true);
        bridge.on_confirmation(false, b"ferrows:t:news");
        assert!(matches!(bridge.readiness(&read("news")), Readiness::Wait));
        bridge.on_confirmation(true, b"ferrows:t:news");
        assert!(matches!(bridge.readiness(&read("news")), Readiness::Ready));
        bridge.keeping.subscriber_lost();
        assert!(matches!(bridge.readiness(&read("news")), Readiness::Wait));
        bridge.links[SUBSCRIBER].link = Link::Down { retry_at: now };
        assert!(matches!(bridge.readiness(&read("news")), Readiness::Refused));
    }

    #[test]
    fn a_read_that_waits_too_long_is_answered_with_nothing() {
        let (mut bridge, inbox) = bridge();
        let now = Instant::now();
        bridge.links[PUBLISHER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        bridge.links[SUBSCRIBER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        bridge.keeping.sent(&Topic::from("news"), true);
        let read = Read::last(Topic::from("news"), 3, Duration::from_secs(1));
        bridge.queue_read(ReadRequest { loop_index: 0, ticket: 5, reads: vec![read] }, now);
        bridge.release_reads(now);
        assert_eq!(bridge.keeping.deadline(), Some(now + bridge.config.connect_timeout * 2));
        assert_eq!(inbox.try_iter().count(), 0, "it waits for the SUBSCRIBE");
        bridge.release_reads(now + bridge.config.connect_timeout * 2);
        let answers: Vec<Publication> = inbox.try_iter().collect();
        assert!(
            matches!(answers.as_slice(), [Publication::Answer(ReadAnswer { ticket: 5, results })] if results == &[None]),
            "{answers:?}"
        );
        assert_eq!(bridge.keeping.deadline(), None);
        let Link::Up(conn) = &bridge.links[PUBLISHER].link else { unreachable!() };
        assert!(conn.out.is_empty() && conn.expected.is_empty(), "nothing was sent");
    }

    /// A kept record of `news`, answered to loop 0 with the ticket of `confirm`.
    fn kept_append(data: &[u8], confirm: Option<(usize, u64)>) -> Append {
        let keep = Some(crate::runtime::Keep { size: 3, ttl: Duration::from_secs(5) });
        Append { topic: Topic::from("news"), data: data.to_vec(), keep, exclude: None, confirm }
    }

    #[test]
    fn a_script_lost_by_redis_is_sent_again_with_its_source() {
        let (mut bridge, inbox) = bridge();
        let now = Instant::now();
        bridge.links[PUBLISHER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        let append = kept_append(b"hello", Some((0, 7)));
        bridge.forward_append(append);
        let noscript = Value::Error(b"NOSCRIPT No matching script".to_vec());
        bridge.on_reply(noscript.clone()).unwrap();
        let Link::Up(conn) = &bridge.links[PUBLISHER].link else { unreachable!() };
        let out = String::from_utf8_lossy(&conn.out).into_owned();
        assert!(out.contains("EVALSHA") && out.contains("\r\nEVAL\r\n"), "{out}");
        assert!(matches!(conn.expected.front(), Some(Expected::Append { call, .. }) if !call.by_sha));
        // By source, a second NOSCRIPT is an error, counted.
        bridge.on_reply(noscript).unwrap();
        assert_eq!(bridge.stats.record_errors.load(Ordering::Relaxed), 1);
        bridge.forward_append(kept_append(b"x", Some((0, 8))));
        bridge.on_reply(Value::Array(Some(vec![Value::Integer(1), Value::Bulk(Some(b"ep".to_vec()))]))).unwrap();
        assert_eq!(bridge.stats.records_appended.load(Ordering::Relaxed), 1);
        // Each append that asked is answered: the refused one with nothing, the kept one with its offset.
        assert_eq!(delivered(&inbox), [b"appended 7 None".to_vec(), b"appended 8 Some(1)".to_vec()]);
        assert!(bridge.on_reply(Value::Simple(b"OK".to_vec())).is_err(), "a reply to nothing ends the link");
    }

    #[test]
    fn appends_in_flight_are_answered_with_nothing_when_the_link_goes() {
        let (mut bridge, inbox) = bridge();
        let now = Instant::now();
        bridge.links[PUBLISHER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        for (ticket, confirm) in [(1, true), (2, false), (3, true)] {
            bridge.forward_append(kept_append(b"x", confirm.then_some((0, ticket))));
        }
        bridge.fail(PUBLISHER, now, "test");
        // Perhaps kept, perhaps not: the loop is told it is not known to be.
        assert_eq!(delivered(&inbox), [b"appended 1 None".to_vec(), b"appended 3 None".to_vec()]);
        assert_eq!(bridge.stats.lost.load(Ordering::Relaxed), 3);
        // With the link down, an append is answered at once.
        bridge.forward_append(kept_append(b"y", Some((0, 4))));
        assert_eq!(delivered(&inbox), [b"appended 4 None".to_vec()]);
    }

    #[test]
    fn reads_in_flight_are_answered_with_nothing_when_the_link_goes() {
        let (mut bridge, inbox) = bridge();
        let now = Instant::now();
        bridge.links[PUBLISHER].link = Link::Up(Box::new(super::super::tests::idle_conn(now)));
        let reads = ["a", "b"].map(|t| Read::last(Topic::from(t), 2, Duration::from_secs(1)));
        bridge.queue_read(ReadRequest { loop_index: 0, ticket: 9, reads: reads.to_vec() }, now);
        bridge.release_reads(now);
        let kept = Value::Array(Some(vec![
            Value::Bulk(Some(b"ep".to_vec())),
            Value::Bulk(Some(b"2".to_vec())),
            Value::Array(Some(vec![Value::Bulk(Some(b"2 two".to_vec()))])),
        ]));
        bridge.on_reply(kept).unwrap();
        bridge.fail(PUBLISHER, now, "test");
        let answers: Vec<ReadAnswer> = inbox
            .try_iter()
            .filter_map(|p| match p {
                Publication::Answer(answer) => Some(answer),
                _ => None,
            })
            .collect();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].ticket, 9);
        let first = answers[0].results[0].as_ref().unwrap();
        assert_eq!((first.position.offset, first.records[0].0, &first.records[0].1[..]), (2, 2, &b"two"[..]));
        assert_eq!(answers[0].results[1], None);
    }
}
