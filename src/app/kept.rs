//! History across nodes: where the server's uplink keeps records (the
//! cluster's Redis, see `ferrows::cluster`), a topic whose namespace keeps
//! history keeps it there instead of in this node's streams, so that a
//! client recovers on whichever node it reaches.
//!
//! Each publication of such a topic `NAME` is one record of the engine topic
//! `stream/NAME`, appended through the uplink, which gives it its offset and
//! epoch and sends it to every node with subscribers, this one included, in
//! offset order. Room members and `/pubsub` subscribers of the topic also
//! subscribe to `stream/NAME`, so their node follows the records; each loop
//! makes both forms of a record (a room's bare text, the `/pubsub` message
//! with its position) and delivers them to its own subscribers. A room
//! member's binary messages and join and leave events are records too, not
//! kept, so that they keep their place among the kept ones.
//!
//! A subscribe reads the topic's position and, with `since`, what was kept
//! after it, through the uplink; the records that arrive for the session
//! while the read is on its way wait in a cursor, and are sent after the
//! recovered ones and the ack, those the read already gave left out. When
//! the uplink cannot keep a record (Redis unreachable), the publication
//! reaches this node's subscribers as a topic without history would, with no
//! position, and the publish is acked with `"kept":false`.

mod presence;
mod recovery;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::value::RawValue;

use super::api::{error_body, Later};
use super::pubsub_protocol::{self as protocol, write_delivery, write_json_string, Id};
use super::routes::{App, Member};
use super::topics::{self, json_as_text, Payload};
use crate::proto::handshake::StatusCode;
use crate::runtime::{self, Context, Keep, Message, Read, ReadAnswer, Record, SessionId};

/// The kinds of record bytes: the first byte, then the body.
const TEXT: u8 = b'T';
const JSON: u8 = b'J';
const BINARY: u8 = b'B';
const EVENT: u8 = b'E';

/// Records that arrive for a session while its subscribe's read is on its
/// way, at most; past it the session is closed with 1013, and recovers on
/// its next connection.
const MAX_WAITING: usize = 4096;

/// Reads a session may have on their way at once.
const MAX_READS_PER_SESSION: usize = 8;

/// The engine topic of a topic's records.
pub(super) fn stream_key(out: &mut String, name: &str) {
    out.clear();
    out.push_str("stream/");
    out.push_str(name);
}

/// A record's bytes: its kind, then its body.
fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + body.len());
    data.push(kind);
    data.extend_from_slice(body);
    data
}

/// One loop's records in progress: reads on their way, and where each
/// session that subscribed with a read stands. A clone starts empty.
#[derive(Debug, Default)]
pub(super) struct KeptState {
    next_ticket: u64,
    pending: HashMap<u64, Pending>,
    /// How many of `pending` each session has.
    per_session: HashMap<SessionId, usize>,
    /// By topic, then session: a record looks at its topic's only.
    cursors: HashMap<String, HashMap<SessionId, Cursor>>,
    skip: Vec<SessionId>,
    text: String,
    /// A record's `/pubsub` form, and its `data` JSON, kept between records.
    form: String,
    data: String,
}

impl KeptState {
    /// Keeps what a read on its way is for.
    fn hold(&mut self, ticket: u64, pending: Pending) {
        *self.per_session.entry(pending.session()).or_default() += 1;
        self.pending.insert(ticket, pending);
    }

    /// What the read `ticket` was for, now answered.
    fn release(&mut self, ticket: u64) -> Option<Pending> {
        let pending = self.pending.remove(&ticket)?;
        let session = pending.session();
        if let Some(count) = self.per_session.get_mut(&session) {
            *count -= 1;
            if *count == 0 {
                self.per_session.remove(&session);
            }
        }
        Some(pending)
    }

    fn take_cursor(&mut self, session: SessionId, topic: &str) -> Option<Cursor> {
        let sessions = self.cursors.get_mut(topic)?;
        let cursor = sessions.remove(&session);
        if sessions.is_empty() {
            self.cursors.remove(topic);
        }
        cursor
    }
}

impl Clone for KeptState {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// What a read was for.
#[derive(Debug)]
enum Pending {
    /// A subscribe: its id and topics, and for each topic with history its `since`.
    Subscribe { session: SessionId, id: Option<Box<RawValue>>, topics: Vec<String>, kept: Vec<KeptTopic> },
    /// A `history` request.
    History { session: SessionId, id: Option<Box<RawValue>>, topic: String },
    /// A `presence` (or, with `count`, `presence_count`) request.
    Presence { session: SessionId, id: Option<Box<RawValue>>, topic: String, count: bool },
    /// A call of the backend's HTTP API (the request's connection).
    Http { request: SessionId, topic: String, later: Later },
}

impl Pending {
    /// The session it answers (an HTTP request's connection, for the API).
    fn session(&self) -> SessionId {
        match self {
            Pending::Subscribe { session, .. }
            | Pending::History { session, .. }
            | Pending::Presence { session, .. } => *session,
            Pending::Http { request, .. } => *request,
        }
    }
}

/// A topic of a subscribe that keeps history.
#[derive(Debug)]
struct KeptTopic {
    topic: String,
    since: Option<(u64, String)>,
}

/// Where a session that subscribed with a read stands in a topic.
#[derive(Debug)]
enum Cursor {
    /// The read `ticket` is on its way: records wait (`overflow`: some were dropped).
    Reading { ticket: u64, waiting: Vec<Record>, overflow: bool },
    /// The read answered up to this position: records up to it came with
    /// the read; the cursor goes at the first record after it.
    After(runtime::Position),
}

impl App {
    /// How `topic`'s publications are kept through the uplink, if they are:
    /// its namespace keeps history and the uplink keeps records.
    pub(super) fn kept_through_uplink(&self, ctx: &Context<'_, Member>, topic: &str) -> Option<Keep> {
        let options = self.config.namespaces.of(topic);
        (options.history_size > 0 && ctx.keeps_records())
            .then_some(Keep { size: options.history_size, ttl: options.history_ttl })
    }

    /// Appends a publication of `name` as a record (see the module's doc);
    /// returns its recipients on this node, or `None` when the uplink could
    /// not take it.
    pub(super) fn append_publication(
        &mut self,
        ctx: &mut Context<'_, Member>,
        name: &str,
        payload: Payload<'_>,
        exclude: Option<SessionId>,
        keep: Keep,
        confirm: Option<u64>,
    ) -> Option<usize> {
        let (data, keep) = match payload {
            Payload::Text(text) => (record(TEXT, text.as_bytes()), Some(keep)),
            Payload::Json(value) => (record(JSON, value.get().as_bytes()), Some(keep)),
            Payload::Binary(bytes) => (record(BINARY, bytes), None),
        };
        let mut key = std::mem::take(&mut self.kept.text);
        stream_key(&mut key, name);
        let appended = ctx.append(&key, data, keep, exclude, confirm);
        self.kept.text = key;
        if !appended {
            self.streams.stats().unkept.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(topics::subscribers(name, |k| ctx.subscribers(k)).saturating_sub(usize::from(exclude.is_some())))
    }

    /// Sends a join or leave `event` (its JSON) to `name`'s `/pubsub`
    /// subscribers as a record in the topic's order; false when the uplink
    /// could not take it.
    pub(super) fn append_event(
        &mut self,
        ctx: &mut Context<'_, Member>,
        name: &str,
        event: &str,
        session: SessionId,
    ) -> bool {
        let mut key = String::new();
        stream_key(&mut key, name);
        ctx.append(&key, record(EVENT, event.as_bytes()), None, Some(session), None)
    }

    /// Subscribes `session` to `topic` (its `/pubsub` engine topic `key`)
    /// and to its records, records arriving meanwhile waiting for the read.
    ///
    /// A subscription the session already has goes on untouched, unless
    /// `recovering` (a `since`): then the read `ticket` will send again what
    /// follows the client's offset, and records wait for it.
    pub(super) fn subscribe_kept(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        topic: &str,
        key: &str,
        recovering: bool,
        ticket: u64,
    ) {
        if ctx.is_subscribed(session, key) && !recovering {
            return;
        }
        let _ = ctx.subscribe(session, key);
        let mut stream = String::new();
        stream_key(&mut stream, topic);
        let _ = ctx.subscribe(session, &stream);
        let reading = Cursor::Reading { ticket, waiting: Vec::new(), overflow: false };
        self.kept.cursors.entry(topic.to_owned()).or_default().insert(session, reading);
    }

    /// A number for the next read of this loop.
    pub(super) fn next_ticket(&mut self) -> u64 {
        self.kept.next_ticket += 1;
        self.kept.next_ticket
    }

    /// Whether `session` may start another read: a few at a time, each
    /// bringing up to `max_out_queue` bytes.
    pub(super) fn may_read_more(&self, session: SessionId) -> bool {
        self.kept.per_session.get(&session).copied().unwrap_or(0) < MAX_READS_PER_SESSION
    }

    /// Leaves `topic`'s records (an unsubscribe).
    pub(super) fn unsubscribe_kept(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, topic: &str) {
        let mut stream = String::new();
        stream_key(&mut stream, topic);
        ctx.unsubscribe(session, &stream);
        self.kept.take_cursor(session, topic);
    }

    /// A session ended: its cursors go.
    pub(super) fn forget_kept(&mut self, session: SessionId) {
        if !self.kept.cursors.is_empty() {
            self.kept.cursors.retain(|_, sessions| {
                sessions.remove(&session);
                !sessions.is_empty()
            });
        }
    }

    /// Asks the uplink for the positions (and, with `since`, the kept
    /// publications) of a subscribe's topics with history; the ack is sent
    /// when the answer comes ([`on_read`](Self::on_read_answer)), at once if
    /// the uplink cannot take the request.
    pub(super) fn read_for_subscribe(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        id: Option<Id<'_>>,
        topics: Vec<String>,
        kept: Vec<(String, Option<(u64, String)>)>,
        ticket: u64,
    ) {
        let max = ctx.max_out_queue();
        let reads =
            kept.iter().map(|(topic, since)| self.read_of(topic, Some(since.as_ref().map(|(o, _)| *o)), max)).collect();
        let kept = kept.into_iter().map(|(topic, since)| KeptTopic { topic, since }).collect();
        let pending = Pending::Subscribe { session, id: owned_id(id), topics, kept };
        self.send_read(ctx, ticket, pending, reads);
    }

    /// Asks the uplink for `topic`'s last `limit` kept publications (a `history` request).
    pub(super) fn read_for_history(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        id: Option<Id<'_>>,
        topic: &str,
        limit: Option<usize>,
    ) {
        let mut read = self.read_of(topic, None, ctx.max_out_queue());
        if let Some(limit) = limit {
            read.limit = read.limit.min(limit);
        }
        let pending = Pending::History { session, id: owned_id(id), topic: topic.to_owned() };
        let ticket = self.next_ticket();
        self.send_read(ctx, ticket, pending, vec![read]);
    }

    /// Starts an HTTP API call answered when the uplink's answer comes
    /// (at once, when it cannot be asked).
    pub(super) fn read_for_http(
        &mut self,
        ctx: &mut Context<'_, Member>,
        request: SessionId,
        topic: &str,
        later: Later,
    ) {
        let pending = Pending::Http { request, topic: topic.to_owned(), later };
        match later {
            Later::History(limit) => {
                let mut read = self.read_of(topic, None, ctx.max_out_queue());
                read.limit = read.limit.min(limit.unwrap_or(usize::MAX));
                let ticket = self.next_ticket();
                self.send_read(ctx, ticket, pending, vec![read]);
            }
            Later::Presence => self.send_presence_read(ctx, pending, topic),
        }
    }

    /// A read of `topic`'s kept publications: after `since` (a recovery),
    /// none for a subscribe without it; the last ones for a history request
    /// (`since`: `None`, and `max_bytes` not 0). At most `max_bytes` of them.
    fn read_of(&self, topic: &str, since: Option<Option<u64>>, max_bytes: usize) -> Read {
        let options = self.config.namespaces.of(topic);
        let mut stream = String::new();
        stream_key(&mut stream, topic);
        let mut read = Read::last(stream.into(), options.history_size, options.history_ttl);
        read.max_bytes = max_bytes;
        match since {
            Some(Some(after)) => read.after = Some(after),
            // A subscribe without `since` wants the position only.
            Some(None) => read.limit = 0,
            None => {}
        }
        read
    }

    fn send_read(&mut self, ctx: &mut Context<'_, Member>, ticket: u64, pending: Pending, reads: Vec<Read>) {
        let count = reads.len();
        if ctx.read_kept(ticket, reads) {
            self.kept.hold(ticket, pending);
        } else {
            self.answer_read(ctx, ticket, pending, vec![None; count]);
        }
    }

    /// The uplink answered a read of this loop.
    pub(super) fn on_read_answer(&mut self, ctx: &mut Context<'_, Member>, answer: ReadAnswer) {
        if let Some(pending) = self.kept.release(answer.ticket) {
            self.answer_read(ctx, answer.ticket, pending, answer.results);
        }
    }

    fn answer_read(
        &mut self,
        ctx: &mut Context<'_, Member>,
        ticket: u64,
        pending: Pending,
        results: Vec<Option<runtime::Kept>>,
    ) {
        match pending {
            Pending::Presence { .. } | Pending::Http { later: Later::Presence, .. } => {
                self.answer_presence(ctx, pending, None);
            }
            Pending::Http { request, topic, .. } => match results.into_iter().next().flatten() {
                Some(kept) => {
                    let mut body = String::new();
                    write_kept_history(&mut body, None, &topic, &kept);
                    self.respond_later(ctx, request, "history", StatusCode::OK, &body);
                }
                None => {
                    let body = error_body("no_history", HISTORY_UNREACHABLE);
                    self.respond_later(ctx, request, "history", StatusCode::SERVICE_UNAVAILABLE, &body);
                }
            },
            Pending::Subscribe { .. } => self.finish_subscribe(ctx, ticket, pending, results),
            Pending::History { session, id, topic } => {
                let id = id.as_deref().and_then(|raw| Id::from_json(raw.get()));
                let mut reply = String::new();
                match results.into_iter().next().flatten() {
                    Some(kept) => write_kept_history(&mut reply, Some(id), &topic, &kept),
                    None => protocol::write_error(
                        &mut reply,
                        &protocol::RequestError::new(protocol::ErrorCode::NoHistory, HISTORY_UNREACHABLE).with_id(id),
                    ),
                }
                let _ = ctx.send_text(session, &reply);
            }
        }
    }

    /// A record came through the uplink: both forms to this loop's
    /// subscribers, sessions whose read is on its way left waiting.
    pub(super) fn on_kept_record(
        &mut self,
        ctx: &mut Context<'_, Member>,
        record: &Record,
        exclude: Option<SessionId>,
    ) {
        let Some(name) = record.topic.strip_prefix("stream/") else { return };
        let Some((&kind, body)) = record.data.split_first() else { return };
        let mut key = String::new();
        let skip: &[SessionId] = exclude.as_slice();
        // The room's form.
        topics::room_key(&mut key, name);
        match kind {
            TEXT => {
                let Ok(text) = std::str::from_utf8(body) else { return };
                ctx.publish_local(&key, Message::Text(text), skip);
            }
            JSON => {
                let Some(value) =
                    std::str::from_utf8(body).ok().and_then(|t| serde_json::from_str::<&RawValue>(t).ok())
                else {
                    return;
                };
                ctx.publish_local(&key, Message::Text(&json_as_text(value)), skip);
            }
            BINARY => {
                ctx.publish_local(&key, Message::Binary(body), skip);
                return;
            }
            EVENT => {}
            _ => return,
        }
        // The `/pubsub` form.
        let (mut form, mut data) = (std::mem::take(&mut self.kept.form), std::mem::take(&mut self.kept.data));
        let written = write_pubsub_form(&mut form, &mut data, name, record);
        self.kept.data = data;
        if !written {
            self.kept.form = form;
            return;
        }
        let mut skip = std::mem::take(&mut self.kept.skip);
        skip.clear();
        skip.extend(exclude);
        if let Some(sessions) = self.kept.cursors.get_mut(name) {
            sessions.retain(|session, cursor| {
                if exclude == Some(*session) {
                    return true;
                }
                match cursor {
                    Cursor::Reading { waiting, overflow, .. } => {
                        if waiting.len() < MAX_WAITING {
                            waiting.push(record.clone());
                        } else {
                            *overflow = true;
                        }
                        skip.push(*session);
                        true
                    }
                    Cursor::After(at) if covered(record, at) => {
                        skip.push(*session);
                        true
                    }
                    // Past the read: the cursor is done; unkept records leave it in place.
                    Cursor::After(_) => record.position.is_none(),
                }
            });
            if sessions.is_empty() {
                self.kept.cursors.remove(name);
            }
            // Sorted, so that the delivery finds them by bisection.
            skip.sort_unstable();
        }
        topics::subscriber_key(&mut key, name);
        ctx.publish_local(&key, Message::Text(&form), &skip);
        self.kept.skip = skip;
        self.kept.form = form;
    }
}

/// Writes what a `/pubsub` subscriber receives of a record into `out` (the
/// message with its position, or the event), with `data` as scratch; false
/// for a record of no such form.
fn write_pubsub_form(out: &mut String, data: &mut String, name: &str, record: &Record) -> bool {
    out.clear();
    let Some((&kind, body)) = record.data.split_first() else { return false };
    let Ok(text) = std::str::from_utf8(body) else { return false };
    let json = match kind {
        EVENT => {
            out.push_str(text);
            return true;
        }
        TEXT => {
            data.clear();
            write_json_string(data, text);
            data.as_str()
        }
        JSON if serde_json::from_str::<&RawValue>(text).is_ok() => text,
        _ => return false,
    };
    write_delivery(out, name, json, record.position.as_ref().map(|p| (p.offset, p.epoch.as_str())));
    true
}

/// Appends a history answer from what the uplink read (`answer`: as
/// [`protocol::write_history`] takes it).
fn write_kept_history(out: &mut String, answer: Option<Option<Id<'_>>>, topic: &str, kept: &runtime::Kept) {
    let position = (kept.position.offset, kept.position.epoch.as_str());
    let datas: Vec<(u64, Cow<'_, str>)> =
        kept.records.iter().filter_map(|(offset, data)| Some((*offset, data_json(data)?))).collect();
    let publications = datas.iter().map(|(offset, data)| (*offset, data.as_ref()));
    protocol::write_history(out, answer, topic, position, publications);
}

/// Whether `record` is at or before `at` (same epoch, offset not past it):
/// a read that answered `at` gave it already.
impl protocol::StreamPosition for runtime::Position {
    fn offset_epoch(&self) -> (u64, &str) {
        (self.offset, &self.epoch)
    }
}

fn covered(record: &Record, at: &runtime::Position) -> bool {
    record.position.as_ref().is_some_and(|p| p.epoch == at.epoch && p.offset <= at.offset)
}

/// The `data` JSON of a kept record's bytes (a text as a JSON string);
/// `None` for bytes that are not a kept publication.
fn data_json(data: &[u8]) -> Option<Cow<'_, str>> {
    let (&kind, body) = data.split_first()?;
    let text = std::str::from_utf8(body).ok()?;
    match kind {
        TEXT => {
            let mut json = String::with_capacity(text.len() + 2);
            write_json_string(&mut json, text);
            Some(Cow::Owned(json))
        }
        // A JSON record is sent as it was kept: borrowed, not copied.
        JSON => serde_json::from_str::<&RawValue>(text).is_ok().then_some(Cow::Borrowed(text)),
        _ => None,
    }
}

pub(super) fn owned_id(id: Option<Id<'_>>) -> Option<Box<RawValue>> {
    id.and_then(|id| RawValue::from_string(id.as_json().to_owned()).ok())
}

/// The error of a `history` request when the uplink's store cannot be read.
pub(super) const HISTORY_UNREACHABLE: &str =
    "the topic's history cannot be read now (the cluster's store is unreachable)";
