//! The application's side of the runtime: the [`Handler`] trait and the
//! [`Context`] its callbacks receive.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use super::http::{HttpRequest, HttpResponse};
use super::metrics::{LoopCounters, Metrics};
use super::pubsub::{Bus, Membership, Topic, Topics};
use super::records::{
    Append, Appended, Keep, MemberChange, MembersAnswer, MembersRequest, Read, ReadAnswer, ReadRequest, Record,
};
use super::slot::Slot;
use super::Shared;
use crate::proto::frame::{encode_frame, OpCode};
use crate::proto::handshake::{Request, StatusCode, UpgradeRequest};
use crate::proto::{CloseCode, UsageError};
use crate::session::{Pool, SendRefusal, Session, Settings, SharedFrame};

/// A session of one event loop: its slab key and a generation, so that an id
/// kept after its session ended never reaches a newer session in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    pub(crate) key: usize,
    pub(crate) generation: u16,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key, self.generation)
    }
}

/// A whole message from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// What the handler sees of an upgrade request.
#[derive(Debug)]
pub struct Upgrade<'a> {
    pub(crate) request: &'a Request,
    pub(crate) upgrade: &'a UpgradeRequest,
    pub(crate) peer: SocketAddr,
    pub(crate) bus: &'a Bus,
}

impl<'a> Upgrade<'a> {
    /// The request: path, query, headers, `Origin`.
    pub fn request(&self) -> &'a Request {
        self.request
    }

    /// The request path, without the query.
    pub fn path(&self) -> &'a str {
        self.request.path()
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.request.query()
    }

    /// The `Origin` header, if any.
    pub fn origin(&self) -> Option<&'a str> {
        self.request.origin()
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> &'a [String] {
        self.upgrade.protocols()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The subscribers of `topic` on every loop of this node (see [`Context::subscribers`]).
    pub fn subscribers(&self, topic: &str) -> usize {
        self.bus.subscriber_count(topic)
    }
}

/// The handler's answer to an upgrade request.
#[derive(Debug)]
pub enum Decision<S> {
    /// Upgrade, with an optional subprotocol (one the client offered) and the
    /// session's initial state.
    Accept {
        /// The chosen subprotocol.
        protocol: Option<String>,
        /// The per-connection state.
        state: S,
    },
    /// Refuse with an HTTP status and a short reason.
    Refuse {
        /// The status (4xx or 5xx).
        status: StatusCode,
        /// A short reason, sent as the body.
        reason: String,
        /// Header fields for the answer, such as `WWW-Authenticate` with a 401.
        /// Framing fields (`Content-Length`, `Connection`, ...) are refused:
        /// the answer then goes without the extra fields, and a warning is logged.
        headers: Vec<(String, String)>,
    },
}

impl<S> Decision<S> {
    /// Accepts with `state` and no subprotocol.
    pub fn accept(state: S) -> Self {
        Self::Accept { protocol: None, state }
    }

    /// Refuses with `status` and `reason`.
    pub fn refuse(status: StatusCode, reason: impl Into<String>) -> Self {
        Self::Refuse { status, reason: reason.into(), headers: Vec::new() }
    }

    /// Refuses with `status`, `reason` and extra header fields.
    pub fn refuse_with_headers(status: StatusCode, reason: impl Into<String>, headers: Vec<(String, String)>) -> Self {
        Self::Refuse { status, reason: reason.into(), headers }
    }
}

/// The application: callbacks for one event loop's sessions.
///
/// One handler is made per loop by the server's factory and only ever runs on
/// that loop's thread, so it needs no locks and need not be `Send`.
pub trait Handler: 'static {
    /// Per-connection state, made by [`upgrade`](Self::upgrade).
    type State: 'static;

    /// Decides on an upgrade request.
    fn upgrade(&mut self, request: &Upgrade<'_>) -> Decision<Self::State>;

    /// A session is open: the 101 response is queued.
    fn on_open(&mut self, ctx: &mut Context<'_, Self::State>, session: SessionId) {
        let _ = (ctx, session);
    }

    /// A whole message arrived.
    fn on_message(&mut self, ctx: &mut Context<'_, Self::State>, session: SessionId, message: Message<'_>);

    /// A plain HTTP request (no `Upgrade: websocket`) with its body; the
    /// answer is written and the connection closed.
    ///
    /// The default answers as a WebSocket endpoint does: with the reason the
    /// request is not an upgrade (426 for a plain GET, 405 for another method).
    fn on_http(&mut self, ctx: &mut Context<'_, Self::State>, request: &HttpRequest<'_>) -> HttpResponse {
        let _ = ctx;
        let mut bytes = Vec::new();
        match request.request().validate_upgrade() {
            Err(refusal) => refusal.write_response(&mut bytes),
            Ok(_) => crate::proto::handshake::write_error_response(StatusCode::BAD_REQUEST, "bad request", &mut bytes),
        }
        HttpResponse::from_bytes(bytes)
    }

    /// A session ended: the peer's close code and reason, the code we sent on
    /// a violation, 1005 for a Close without a code, 1006 for a connection
    /// lost without a Close. Called once for every opened session.
    fn on_close(&mut self, ctx: &mut Context<'_, Self::State>, session: SessionId, code: CloseCode, reason: &str) {
        let _ = (ctx, session, code, reason);
    }

    /// A record of a topic this loop has subscribers of came through the
    /// uplink ([`Context::append`]); `exclude` is a session of this loop
    /// the record leaves out. Nothing by default.
    fn on_record(&mut self, ctx: &mut Context<'_, Self::State>, record: &Record, exclude: Option<SessionId>) {
        let _ = (ctx, record, exclude);
    }

    /// The answer to this loop's [`Context::read_kept`]. Nothing by default.
    fn on_read(&mut self, ctx: &mut Context<'_, Self::State>, answer: ReadAnswer) {
        let _ = (ctx, answer);
    }

    /// The answer to this loop's [`Context::read_members`]. Nothing by default.
    fn on_members(&mut self, ctx: &mut Context<'_, Self::State>, answer: MembersAnswer) {
        let _ = (ctx, answer);
    }

    /// The answer to an append of this loop that asked for one
    /// ([`Context::append`] with a ticket). Nothing by default.
    fn on_appended(&mut self, ctx: &mut Context<'_, Self::State>, answer: Appended) {
        let _ = (ctx, answer);
    }
}

/// Why a send or close through the [`Context`] did not happen.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No such session on this loop (it ended, or the id is from another loop).
    UnknownSession,
    /// The session is closing or closed.
    Closed,
    /// The session's output queue is over its limit (the peer is not reading).
    Backpressure,
    /// A misuse of the protocol API (oversized control payload, bad close code).
    Usage(UsageError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSession => f.write_str("no such session"),
            Self::Closed => f.write_str("session closing or closed"),
            Self::Backpressure => f.write_str("session output queue full"),
            Self::Usage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {}

/// What a callback can do: send to or close any session of its loop, and
/// reach per-connection state.
pub struct Context<'a, S> {
    pub(crate) sessions: &'a mut Slab<Slot<S>>,
    /// Sessions given output during the callback, to be written after it.
    pub(crate) to_flush: &'a mut Vec<usize>,
    /// The sessions' settings: the output limit and the slow-consumer policy among them.
    pub(crate) settings: &'a Settings,
    /// The session whose event is being handled: sends to it are never
    /// refused for backpressure, since its reading pauses instead.
    pub(crate) current: Option<SessionId>,
    pub(crate) now: Instant,
    pub(crate) loop_index: usize,
    pub(crate) topics: &'a mut Topics,
    /// Working memory lent to the sessions a callback sends to.
    pub(crate) pool: &'a mut Pool,
    /// The loop's list for a publish's local subscribers, kept between publishes.
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) bus: &'a Bus,
    pub(crate) shared: &'a Arc<Shared>,
}

impl<S> Context<'_, S> {
    /// Sends a text message.
    ///
    /// A send to another session than the one whose event is being handled is
    /// refused with [`SendError::Backpressure`] while that session's output is
    /// over [`ServerConfig::max_out_queue`](super::ServerConfig::max_out_queue).
    ///
    /// # Errors
    ///
    /// See [`SendError`].
    pub fn send_text(&mut self, session: SessionId, text: &str) -> Result<(), SendError> {
        self.send_message(session, true, text.as_bytes())
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// See [`SendError`].
    pub fn send_binary(&mut self, session: SessionId, data: &[u8]) -> Result<(), SendError> {
        self.send_message(session, false, data)
    }

    /// Sends a Ping.
    ///
    /// # Errors
    ///
    /// See [`SendError`].
    pub fn send_ping(&mut self, session: SessionId, payload: &[u8]) -> Result<(), SendError> {
        self.with_open(session, |session, limit| session.send(limit, |conn| conn.send_ping(payload)))
    }

    /// Starts the closing handshake with `code` and `reason`.
    ///
    /// # Errors
    ///
    /// See [`SendError`].
    pub fn close(&mut self, session: SessionId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let now = self.now;
        let max = usize::MAX;
        self.with_open_limit(session, max, |session, limit| {
            session.send(limit, |conn| conn.send_close(code, reason, now))
        })
    }

    /// The subscribers of `topic` on every loop of this node, as the shared
    /// directory counts them: this loop's changes at once, other loops' as
    /// they make them (two loops admitting at once may both see the same count).
    pub fn subscribers(&self, topic: &str) -> usize {
        self.bus.subscriber_count(topic)
    }

    /// Whether a [`publish`](Self::publish) to `topic` would reach anyone:
    /// a subscriber on some loop of this node, or an uplink (which takes
    /// every publish). A caller can then spare encoding what nobody reads.
    pub fn has_readers(&self, topic: &str) -> bool {
        self.bus.uplink.is_some() || self.topics.subscriber_count(topic) > 0 || self.bus.has_subscribers(topic)
    }

    /// Every topic with subscribers on some loop of this node, with their number.
    pub fn node_topics(&self) -> Vec<(Topic, usize)> {
        self.bus.topic_counts()
    }

    /// Whether `session` subscribes to `topic`.
    pub fn is_subscribed(&self, session: SessionId, topic: &str) -> bool {
        self.topics.of_session(session).iter().any(|t| &**t == topic)
    }

    /// Closes `session` with `code` and `reason` once `deadline` comes (the
    /// end of a token's validity, say), unless called again before then: a
    /// later call moves the deadline, `None` clears it.
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownSession`] for a session that ended.
    pub fn close_at(
        &mut self,
        session: SessionId,
        deadline: Option<Instant>,
        code: CloseCode,
        reason: &'static str,
    ) -> Result<(), SendError> {
        let slot = self.session(session).ok_or(SendError::UnknownSession)?;
        slot.session.close_at(deadline, code, reason);
        // The loop arms the session's timer when it syncs it.
        if !slot.flush_pending {
            slot.flush_pending = true;
            self.to_flush.push(session.key);
        }
        Ok(())
    }

    /// Subscribes `session` to `topic` (idempotent). A session leaves all its
    /// topics when it closes.
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownSession`] or [`SendError::Closed`].
    pub fn subscribe(&mut self, session: SessionId, topic: &str) -> Result<(), SendError> {
        let open = self.session(session).ok_or(SendError::UnknownSession)?.session.is_open();
        if !open {
            return Err(SendError::Closed);
        }
        if let Some((key, first)) = self.topics.subscribe(session, topic) {
            self.bus.count_subscriber(self.loop_index, &key, Membership::Joined { first });
        }
        self.counters().subscriptions.set(self.topics.counts().1 as u64);
        Ok(())
    }

    /// Subscribes `session` to `topic`, held back from the publications
    /// numbered up to `mark` ([`publish_numbered`](Self::publish_numbered)):
    /// for a subscriber that got those another way (a recovery from
    /// history), so that one still on its way to this loop is not sent twice.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_after(&mut self, session: SessionId, topic: &str, mark: u64) -> Result<(), SendError> {
        self.subscribe(session, topic)?;
        self.topics.hold_until(session, topic, mark);
        Ok(())
    }

    /// The most output a session may hold before sends to it from other
    /// sessions are refused ([`ServerConfig::max_out_queue`](super::ServerConfig::max_out_queue)).
    pub fn max_out_queue(&self) -> usize {
        self.settings.max_out_queue
    }

    /// Unsubscribes `session` from `topic`; returns whether it was subscribed.
    pub fn unsubscribe(&mut self, session: SessionId, topic: &str) -> bool {
        let left = self.topics.unsubscribe(session, topic);
        if let Some((key, last)) = &left {
            self.bus.count_subscriber(self.loop_index, key, Membership::Left { last: *last });
        }
        self.counters().subscriptions.set(self.topics.counts().1 as u64);
        left.is_some()
    }

    /// This loop's topics with subscribers, and its subscriptions in all.
    pub fn topic_counts(&self) -> (usize, usize) {
        self.topics.counts()
    }

    /// The topics `session` subscribes to.
    pub fn topics(&self, session: SessionId) -> impl Iterator<Item = &str> + '_ {
        self.topics.of_session(session).iter().map(|t| &**t)
    }

    /// Publishes `message` to every subscriber of `topic` on every loop (and,
    /// through an uplink, elsewhere too), leaving out `exclude` (say, the sender). The frame is encoded once and
    /// shared by every subscriber's queue; subscribers on other loops get it
    /// through their loop's channel, in publish order. Returns the number of
    /// this node's subscribers it was sent to, on every loop: those of this
    /// loop whose queue took it, and all of the other loops' (their queues
    /// decide there). Subscribers on other nodes are not counted.
    pub fn publish(&mut self, topic: &str, message: Message<'_>, exclude: Option<SessionId>) -> usize {
        // The topic's shared name, when some loop has subscribers: a topic
        // nobody on this node reads costs no name of its own unless the uplink
        // takes it, and no frame at all without an uplink.
        let key = self.topics.of_topic_key(topic).or_else(|| self.bus.directory_key(topic));
        if key.is_none() && self.bus.uplink.is_none() {
            return 0;
        }
        let frame = self.encode_shared(message);
        let mut local = std::mem::take(&mut self.scratch.targets);
        local.clear();
        local.extend(self.topics.subscribers(topic).filter(|s| Some(*s) != exclude));
        let delivered = self.deliver(&local, &frame);
        self.scratch.targets = local;
        let on_node = key.as_ref().map_or(0, |key| self.bus.send_to_others(self.loop_index, Some(key), &frame));
        if self.bus.uplink.is_some() {
            let key = key.unwrap_or_else(|| Arc::from(topic));
            self.bus.send_to_uplink(Some(&key), &frame);
        }
        // The other loops' subscribers, as the directory counts them: their queues are theirs to judge.
        delivered + on_node.saturating_sub(self.topics.subscriber_count(topic))
    }

    /// Publishes a publication numbered `seq` in its topic (its offset:
    /// numbers rise with each publication of the topic, and the caller sends
    /// them in that order, from whichever loop). Unlike
    /// [`publish`](Self::publish), every loop's subscribers get it through
    /// the loop's channel, this loop's too, so that a topic's numbered
    /// publications reach each subscriber in number order; and subscribers
    /// held back up to a mark at or past `seq` ([`subscribe_after`](Self::subscribe_after))
    /// do not get it. Returns the subscribers of `topic` on this node, as the
    /// directory counts them.
    pub fn publish_numbered(
        &mut self,
        topic: &str,
        message: Message<'_>,
        exclude: Option<SessionId>,
        seq: u64,
    ) -> usize {
        let frame = self.encode_shared(message);
        let key = self.topics.of_topic_key(topic).or_else(|| self.bus.directory_key(topic));
        let exclude = exclude.map(|id| (self.loop_index, id));
        let on_node = key.as_ref().map_or(0, |key| self.bus.send_numbered(key, &frame, seq, exclude));
        if self.bus.uplink.is_some() {
            let key = key.unwrap_or_else(|| Arc::from(topic));
            self.bus.send_to_uplink(Some(&key), &frame);
        }
        on_node.saturating_sub(usize::from(
            exclude.is_some_and(|(_, id)| self.topics.of_session(id).iter().any(|t| &**t == topic)),
        ))
    }

    /// Delivers `message` to this loop's subscribers of `topic` only (not to
    /// other loops, nor through the uplink), leaving out the sessions in
    /// `skip` (a long one, sorted, is searched by bisection); the frame is encoded once. Returns the subscribers whose
    /// queue took it. For a handler that delivers a [`Record`] in
    /// [`Handler::on_record`], which every loop gets.
    pub fn publish_local(&mut self, topic: &str, message: Message<'_>, skip: &[SessionId]) -> usize {
        if self.topics.subscriber_count(topic) == 0 {
            return 0;
        }
        let frame = self.encode_shared(message);
        let mut local = std::mem::take(&mut self.scratch.targets);
        local.clear();
        // Many left out (a crowd recovering at once): found by bisection when sorted.
        if skip.len() > 8 && skip.is_sorted() {
            local.extend(self.topics.subscribers(topic).filter(|s| skip.binary_search(s).is_err()));
        } else {
            local.extend(self.topics.subscribers(topic).filter(|s| !skip.contains(s)));
        }
        let delivered = self.deliver(&local, &frame);
        self.scratch.targets = local;
        delivered
    }

    /// Whether the server's uplink keeps records ([`Uplink::keeps_records`](super::Uplink::keeps_records)).
    pub fn keeps_records(&self) -> bool {
        self.bus.uplink.as_ref().is_some_and(|u| u.keeps_records())
    }

    /// Appends a record to `topic` through the uplink (see [`Record`]):
    /// `keep` says how it is kept (`None`: only ordered among the topic's
    /// records), `exclude` a session of this loop left out. It comes back,
    /// on every loop with subscribers of `topic` (on every node), in
    /// [`Handler::on_record`]. A kept record with a `confirm` ticket is
    /// answered once, in [`Handler::on_appended`], when the uplink's store
    /// has it (or cannot keep it). Returns false when the uplink cannot take
    /// it now (or there is none): deliver it another way; no answer comes.
    pub fn append(
        &mut self,
        topic: &str,
        data: Vec<u8>,
        keep: Option<Keep>,
        exclude: Option<SessionId>,
        confirm: Option<u64>,
    ) -> bool {
        let Some(uplink) = &self.bus.uplink else { return false };
        let topic = self.topics.of_topic_key(topic).unwrap_or_else(|| Topic::from(topic));
        let exclude = exclude.map(|id| (self.loop_index, id));
        let confirm = confirm.filter(|_| keep.is_some()).map(|ticket| (self.loop_index, ticket));
        uplink.append(Append { topic, data, keep, exclude, confirm })
    }

    /// Reads kept records through the uplink; the answer comes to this
    /// loop's [`Handler::on_read`] with `ticket`. Returns false when the
    /// uplink cannot take the request now (or there is none): no answer comes.
    pub fn read_kept(&mut self, ticket: u64, reads: Vec<Read>) -> bool {
        let Some(uplink) = &self.bus.uplink else { return false };
        uplink.read(ReadRequest { loop_index: self.loop_index, ticket, reads })
    }

    /// Answers a plain HTTP request whose handler returned
    /// [`HttpResponse::later`]; `id` is the request's [`id`](HttpRequest::id).
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownSession`] when the connection is gone (its
    /// deadline passed, or the peer left), [`SendError::Closed`] when it
    /// awaits no answer.
    pub fn respond(&mut self, id: SessionId, response: HttpResponse) -> Result<(), SendError> {
        let (settings, now) = (self.settings, self.now);
        let slot = self.sessions.get_mut(id.key).filter(|s| s.generation == id.generation);
        let slot = slot.ok_or(SendError::UnknownSession)?;
        if !slot.session.is_deciding() {
            return Err(SendError::Closed);
        }
        slot.session.answer(response.into_bytes(), settings, now);
        if !slot.flush_pending {
            slot.flush_pending = true;
            self.to_flush.push(id.key);
        }
        Ok(())
    }

    /// Tells the uplink of a change to this node's members of a topic (see
    /// [`MemberChange`]). Returns false when it keeps none, or cannot take it now.
    pub fn members(&mut self, change: MemberChange) -> bool {
        self.bus.uplink.as_ref().is_some_and(|u| u.members(change))
    }

    /// Reads `topic`'s members on every node through the uplink, at most
    /// `limit` of them listed (0: only their number); the answer comes to
    /// this loop's [`Handler::on_members`] with `ticket`. Returns false when
    /// the uplink cannot take the request now: no answer comes.
    pub fn read_members(&mut self, ticket: u64, topic: &str, limit: usize) -> bool {
        let Some(uplink) = &self.bus.uplink else { return false };
        let request = MembersRequest { loop_index: self.loop_index, ticket, topic: Topic::from(topic), limit };
        uplink.read_members(request)
    }

    /// Closes every subscriber of `topic` with `code` and `reason`: on this
    /// loop at once, on the other loops of this node through their channels,
    /// and on other nodes through the uplink (as a Close frame). Returns the
    /// subscribers of `topic` on this node, as [`publish`](Self::publish) counts.
    ///
    /// # Errors
    ///
    /// [`UsageError`] when `code` may not be sent or `reason` is over 123 bytes;
    /// nothing is closed then.
    pub fn close_subscribers(&mut self, topic: &str, code: CloseCode, reason: &str) -> Result<usize, UsageError> {
        let mut payload = [0u8; 125];
        let len = crate::proto::close::write_close_payload(code, reason, &mut payload)?;
        let local: Vec<SessionId> = self.topics.subscribers(topic).collect();
        for &id in &local {
            let _ = self.close(id, code, reason);
        }
        let key = self.topics.of_topic_key(topic).or_else(|| self.bus.directory_key(topic));
        let on_node = key.as_ref().map_or(0, |key| self.bus.close_on_others(self.loop_index, key, code, reason));
        if self.bus.uplink.is_some() {
            let frame = self.pool.frames.frame(|buf| encode_frame(true, 0, OpCode::Close, &payload[..len], None, buf));
            let key = key.unwrap_or_else(|| Arc::from(topic));
            self.bus.send_to_uplink(Some(&key), &frame);
        }
        Ok(local.len() + on_node.saturating_sub(self.topics.subscriber_count(topic)))
    }

    /// Sends `message` to every open session on every loop (and node), leaving out
    /// `exclude`. Returns the number of this node's sessions it was sent to,
    /// counted as [`publish`](Self::publish) counts.
    pub fn broadcast(&mut self, message: Message<'_>, exclude: Option<SessionId>) -> usize {
        let frame = self.encode_shared(message);
        let mut local = std::mem::take(&mut self.scratch.targets);
        local.clear();
        local.extend(self.sessions().filter(|s| Some(*s) != exclude));
        let delivered = self.deliver(&local, &frame);
        self.scratch.targets = local;
        self.bus.send_to_others(self.loop_index, None, &frame);
        self.bus.send_to_uplink(None, &frame);
        let loops = &self.shared.counters.loops;
        let others: u64 =
            loops.iter().enumerate().filter(|(i, _)| *i != self.loop_index).map(|(_, l)| l.sessions.get()).sum();
        delivered + usize::try_from(others).unwrap_or(usize::MAX)
    }

    fn deliver(&mut self, targets: &[SessionId], frame: &SharedFrame) -> usize {
        let mut delivered = 0;
        for &id in targets {
            let Some(slot) = self.sessions.get_mut(id.key).filter(|s| s.generation == id.generation) else {
                continue;
            };
            slot.session.lend(self.pool);
            if slot.deliver(frame, self.settings, self.now, &self.bus.stats) {
                delivered += 1;
            }
            if !slot.flush_pending {
                slot.flush_pending = true;
                self.to_flush.push(id.key);
            }
        }
        self.counters().messages_out.add(delivered as u64);
        delivered
    }

    /// The per-connection state of `session`.
    pub fn state(&mut self, session: SessionId) -> Option<&mut S> {
        self.session(session).and_then(|s| s.session.state_mut())
    }

    /// The peer address of `session`.
    pub fn peer_addr(&self, session: SessionId) -> Option<SocketAddr> {
        self.sessions.get(session.key).filter(|s| s.generation == session.generation).map(|s| s.session.peer().into())
    }

    /// The open sessions of this loop.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions
            .iter()
            .filter(|(_, s)| s.session.is_open())
            .map(|(key, s)| SessionId { key, generation: s.generation })
    }

    /// Which event loop this is (0-based).
    pub fn loop_index(&self) -> usize {
        self.loop_index
    }

    /// The server's metrics (all loops).
    pub fn metrics(&self) -> Metrics {
        Metrics { shared: self.shared.clone() }
    }

    /// Whether the server is draining: a graceful shutdown began, sessions
    /// are being closed and new upgrades are refused.
    pub fn is_draining(&self) -> bool {
        self.shared.counters.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The uplink's line for a health answer ([`Uplink::health`](super::Uplink::health));
    /// `None` without an uplink, or when it has nothing to say.
    pub fn uplink_health(&self) -> Option<String> {
        self.bus.uplink.as_ref().and_then(|uplink| uplink.health())
    }

    fn counters(&self) -> &LoopCounters {
        &self.shared.counters.loops[self.loop_index]
    }

    /// The time the current event was seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    fn session(&mut self, id: SessionId) -> Option<&mut Slot<S>> {
        self.sessions.get_mut(id.key).filter(|s| s.generation == id.generation)
    }

    fn send_message(&mut self, id: SessionId, text: bool, payload: &[u8]) -> Result<(), SendError> {
        self.with_open(id, |session, limit| session.send_message(limit, text, payload))?;
        self.counters().messages_out.add(1);
        Ok(())
    }

    /// Runs `send` on the open session `id` with its output limit: none for
    /// the session whose event is being handled (its reading pauses instead).
    fn with_open(
        &mut self,
        id: SessionId,
        send: impl FnOnce(&mut Session<S>, usize) -> Result<(), SendRefusal>,
    ) -> Result<(), SendError> {
        let max = if self.current == Some(id) { usize::MAX } else { self.settings.max_out_queue };
        self.with_open_limit(id, max, send)
    }

    fn with_open_limit(
        &mut self,
        id: SessionId,
        max_out_queue: usize,
        send: impl FnOnce(&mut Session<S>, usize) -> Result<(), SendRefusal>,
    ) -> Result<(), SendError> {
        let slot = self.sessions.get_mut(id.key).filter(|s| s.generation == id.generation);
        let slot = slot.ok_or(SendError::UnknownSession)?;
        slot.session.lend(self.pool);
        send(&mut slot.session, max_out_queue).map_err(|e| match e {
            SendRefusal::Closed => SendError::Closed,
            SendRefusal::Backpressure => SendError::Backpressure,
            SendRefusal::Usage(e) => SendError::Usage(e),
        })?;
        if !slot.flush_pending {
            slot.flush_pending = true;
            self.to_flush.push(id.key);
        }
        Ok(())
    }
}

/// An event loop's list of a publish's local subscribers, kept between publishes.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) targets: Vec<SessionId>,
}

impl<S> Context<'_, S> {
    /// A server frame (unmasked, uncompressed: legal on any connection) for
    /// `message`, to share, in a buffer from the loop's pool.
    fn encode_shared(&mut self, message: Message<'_>) -> SharedFrame {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
        };
        self.pool.frames.frame(|buf| encode_frame(true, 0, opcode, payload, None, buf))
    }
}
