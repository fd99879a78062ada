//! The `/pubsub` handler: requests of the JSON protocol acted on, with the
//! namespaces' and the tokens' say, and answered from a kept buffer.

use super::access::TOPIC_FULL;
use std::fmt::Write as _;

use super::history::{can_recover, Position, Publication};
use super::identity::{Outcome, User};
use super::presence::write_clients;
use super::pubsub_protocol::{self as protocol, ErrorCode, Id, Request, RequestError, TopicPosition};
use super::routes::{App, Member};
use super::topics;
use crate::proto::CloseCode;
use crate::runtime::{Context, SessionId};

/// The close code of a session whose token expired, or that never showed one
/// where one was needed (private use, RFC 6455 §7.4.2).
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);
const CLIENTS_MAY_NOT_PUBLISH: &str = "clients may not publish to this topic";
pub(super) const NO_HISTORY: &str = "the topic's namespace keeps no history";
const TOO_MANY_READS: &str = "too many subscribes and history requests waiting for the cluster's answer";

impl App {
    /// Acts on one request of a `/pubsub` session and answers it.
    pub(super) fn pubsub_request(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, text: &str) {
        let Some(Member::PubSub { user, greeted }) = ctx.state(session) else { return };
        let (user, first) = (user.clone(), !*greeted);
        if first {
            if let Some(Member::PubSub { greeted, .. }) = ctx.state(session) {
                *greeted = true;
            }
            // The first message came: no more waiting for a connect.
            let _ = ctx.close_at(session, None, TOKEN_EXPIRED, "");
        }
        let mut reply = std::mem::take(&mut self.reply.0);
        reply.clear();
        let answer = match protocol::parse_request(text, &self.config.protocol_limits) {
            Err(error) => Err(error),
            Ok(request) => self.act(ctx, session, user.as_ref(), first, request, &mut reply),
        };
        if let Err(error) = answer {
            protocol::write_error(&mut reply, &error);
        }
        // A request answered later (a read through the cluster) leaves the reply empty.
        if !reply.is_empty() {
            let _ = ctx.send_text(session, &reply);
        }
        self.reply.0 = reply;
    }

    fn act<'r>(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        user: Option<&User>,
        first: bool,
        request: Request<'r>,
        reply: &mut String,
    ) -> Result<(), RequestError<'r>> {
        let forbidden = |id, message: &'static str| Err(RequestError::new(ErrorCode::Forbidden, message).with_id(id));
        let mut key = String::new();
        match request {
            Request::Subscribe { id, topics, since } => {
                if !topics.iter().all(|topic| self.may_read(user, topic)) {
                    self.identity.count(Outcome::Forbidden);
                    return forbidden(id, "the session may not subscribe to a topic of these");
                }
                if self.any_full(ctx, session, topics.iter()) {
                    return Err(RequestError::new(ErrorCode::TopicFull, TOPIC_FULL).with_id(id));
                }
                let mut positions = Vec::new();
                let through_uplink = ctx.keeps_records();
                if through_uplink && !self.may_read_more(session) {
                    return Err(RequestError::new(ErrorCode::TooManyReads, TOO_MANY_READS).with_id(id));
                }
                let ticket = self.next_ticket();
                let mut kept = Vec::new();
                for topic in topics.iter() {
                    topics::subscriber_key(&mut key, topic);
                    if through_uplink && self.config.namespaces.of(topic).history_size > 0 {
                        self.subscribe_kept(ctx, session, topic, &key, since.get(topic).is_some(), ticket);
                        kept.push((topic.to_owned(), since.get(topic).map(|(o, e)| (o, e.to_owned()))));
                        if ctx.is_subscribed(session, &key) {
                            self.joined(ctx, session, topic, user);
                        }
                        continue;
                    }
                    match self.subscribe_in_order(ctx, session, topic, &key, since.get(topic)) {
                        Some((position, recovered)) => positions.push((topic, Some(position), recovered)),
                        // Nothing kept, nothing to recover.
                        None if since.get(topic).is_some() => positions.push((topic, None, Some(false))),
                        None => {}
                    }
                    // Only a subscription that took (not one of a session already closing).
                    if ctx.is_subscribed(session, &key) {
                        self.joined(ctx, session, topic, user);
                    }
                }
                if !kept.is_empty() {
                    // The ack comes with the read's answer.
                    let names = topics.iter().map(str::to_owned).collect();
                    self.read_for_subscribe(ctx, session, id, names, kept, ticket);
                    return Ok(());
                }
                let positions = TopicPosition::list(&positions);
                protocol::write_ack_subscribe(reply, id, &topics, &positions);
            }
            Request::Unsubscribe { id, topics } => {
                for topic in topics.iter() {
                    topics::subscriber_key(&mut key, topic);
                    if ctx.unsubscribe(session, &key) {
                        self.left(ctx, session, topic);
                    }
                    self.unsubscribe_kept(ctx, session, topic);
                }
                protocol::write_ack_topics(reply, "unsubscribe", id, &topics);
            }
            Request::Publish { id, topics, data, exclude_self } => {
                if !topics.iter().all(|topic| self.may_publish(user, topic)) {
                    if self.identity.required() {
                        self.identity.count(Outcome::Forbidden);
                    }
                    return forbidden(id, CLIENTS_MAY_NOT_PUBLISH);
                }
                let exclude = exclude_self.then_some(session);
                // An ack to give waits for the cluster's store to keep what it keeps.
                let published = self.publish_all(ctx, topics.iter(), data, exclude, id.is_some());
                if published.appends > 0 {
                    self.ack_session_when_kept(session, id, &published);
                } else if published.unkept {
                    protocol::write_ack_publish_unkept(reply, id, published.recipients);
                } else {
                    protocol::write_ack_publish(reply, id, published.recipients);
                }
            }
            Request::Ping { id } => protocol::write_ack_ping(reply, id),
            Request::Connect { id, token } => {
                if !first {
                    return forbidden(id, "connect must be the first message");
                }
                let Some(token) = token else {
                    protocol::write_ack_connect(reply, id, None);
                    return Ok(());
                };
                let user = self.check_token(&token, None, id)?;
                protocol::write_ack_connect(reply, id, Some(user.id()));
                self.sign_in(ctx, session, user);
            }
            Request::History { id, topic, limit } => {
                if !self.may_read(user, &topic) {
                    return forbidden(id, "the session may not read this topic");
                }
                if self.kept_through_uplink(ctx, &topic).is_some() {
                    if !self.may_read_more(session) {
                        return Err(RequestError::new(ErrorCode::TooManyReads, TOO_MANY_READS).with_id(id));
                    }
                    // Answered when the read comes back.
                    self.read_for_history(ctx, session, id, &topic, limit);
                    return Ok(());
                }
                let Some((position, publications)) = self.history_of(&topic, limit, ctx.now()) else {
                    return Err(RequestError::new(ErrorCode::NoHistory, NO_HISTORY).with_id(id));
                };
                let kept = publications.iter().map(|p| (p.offset, &*p.data));
                protocol::write_history(reply, Some(id), &topic, (position.offset, position.epoch.as_str()), kept);
            }
            Request::Presence { id, topic } if ctx.keeps_records() => {
                self.check_presence(user, &topic, id)?;
                self.read_presence(ctx, session, id, &topic, false);
            }
            Request::PresenceCount { id, topic } if ctx.keeps_records() => {
                self.check_presence(user, &topic, id)?;
                self.read_presence(ctx, session, id, &topic, true);
            }
            Request::Presence { id, topic } => {
                self.check_presence(user, &topic, id)?;
                protocol::write_answer_head(reply, "presence", id, &topic);
                reply.push(',');
                write_clients(reply, &self.presence.clients(&topic));
                reply.push('}');
            }
            Request::PresenceCount { id, topic } => {
                self.check_presence(user, &topic, id)?;
                protocol::write_answer_head(reply, "presence_count", id, &topic);
                let _ = write!(reply, r#","count":{}}}"#, self.presence.count(&topic));
            }
            Request::Refresh { id, token } => {
                let Some(current) = user else {
                    return forbidden(id, "only a session with a token can refresh it");
                };
                let user = self.check_token(&token, Some(current.id()), id)?;
                // Topics the new token no longer grants are left.
                let lost: Vec<String> = ctx
                    .topics(session)
                    .filter_map(|key| key.strip_prefix("topic/"))
                    .filter(|topic| !self.may_read(Some(&user), topic))
                    .map(str::to_owned)
                    .collect();
                for topic in &lost {
                    topics::subscriber_key(&mut key, topic);
                    if ctx.unsubscribe(session, &key) {
                        self.left(ctx, session, topic);
                    }
                    self.unsubscribe_kept(ctx, session, topic);
                }
                protocol::write_ack_refresh(reply, id, &lost);
                self.sign_in(ctx, session, user);
            }
        }
        Ok(())
    }

    /// Verifies a token of `connect` or `refresh` (for `refresh`, it must name `same_user`).
    fn check_token<'r>(
        &self,
        token: &str,
        same_user: Option<&str>,
        id: Option<Id<'r>>,
    ) -> Result<User, RequestError<'r>> {
        let unauthorized = |message: &'static str| RequestError::new(ErrorCode::Unauthorized, message).with_id(id);
        if !self.identity.required() {
            return Err(unauthorized("this server checks no tokens"));
        }
        let user = self.identity.authenticate(token).map_err(|_| unauthorized("invalid or expired token"))?;
        if same_user.is_some_and(|same| same != user.id()) {
            self.identity.count(Outcome::Forbidden);
            return Err(RequestError::new(ErrorCode::Forbidden, "a refresh must keep the same user").with_id(id));
        }
        self.identity.count(Outcome::Ok);
        Ok(user)
    }

    /// Makes `user` the session's: its grants, its expiry, its user topic.
    pub(super) fn sign_in(&self, ctx: &mut Context<'_, Member>, session: SessionId, user: User) {
        let expires = user.expires(ctx.now());
        let _ = ctx.close_at(session, expires, TOKEN_EXPIRED, "token expired");
        let _ = ctx.subscribe(session, &topics::user_key(user.id()));
        if let Some(Member::PubSub { user: slot, .. } | Member::Room { user: slot, .. }) = ctx.state(session) {
            *slot = Some(user);
        }
    }

    /// Subscribes `session` to `topic` (its engine topic `key`); where the
    /// topic keeps history, returns its position and, with `since` (where
    /// the client left it), whether every publication after that was sent
    /// again first (`None`: the namespace keeps no history).
    ///
    /// The streams stay locked from reading the position to subscribing, so
    /// no publication falls between; a new subscription (or one whose
    /// missed publications were just sent again) is held back from the
    /// publications up to the position still on their way to this loop, so
    /// none comes twice. A subscription the session already had goes on
    /// untouched.
    ///
    /// A recovery whose messages would take more than the server's
    /// `max_out_queue` answers `false`: the client reads the history in
    /// pages instead.
    fn subscribe_in_order(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        topic: &str,
        key: &str,
        since: Option<(u64, &str)>,
    ) -> Option<(Position, Option<bool>)> {
        let options = self.config.namespaces.of(topic);
        if options.history_size == 0 {
            let _ = ctx.subscribe(session, key);
            return None;
        }
        let already = ctx.is_subscribed(session, key);
        let streams = self.streams.clone();
        let store = streams.lock();
        let (position, kept) = store.read(topic, options.history_size, ctx.now());
        let recovered = since.map(|(offset, epoch)| {
            let missed = kept.iter().filter(|p| p.offset > offset).map(|p| p.data.len());
            let at = (position.offset, position.epoch.as_str());
            let first = kept.first().map(|p| p.offset);
            let recoverable = can_recover(topic, (offset, epoch), at, first, missed, ctx.max_out_queue());
            if recoverable {
                let mut text = std::mem::take(&mut self.reply.0);
                for publication in kept.iter().filter(|p| p.offset > offset) {
                    text.clear();
                    protocol::write_recovered(
                        &mut text,
                        topic,
                        &publication.data,
                        publication.offset,
                        position.epoch.as_str(),
                    );
                    let _ = ctx.send_text(session, &text);
                }
                self.reply.0 = text;
            }
            let counter = if recoverable { &streams.stats().recovered } else { &streams.stats().not_recovered };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            recoverable
        });
        if !already || recovered == Some(true) {
            let _ = ctx.subscribe_after(session, key, store.mark());
        }
        drop(store);
        Some((position, recovered))
    }

    /// Whether a presence request for `topic` may be answered.
    fn check_presence<'r>(&self, user: Option<&User>, topic: &str, id: Option<Id<'r>>) -> Result<(), RequestError<'r>> {
        if !self.may_read(user, topic) {
            self.identity.count(Outcome::Forbidden);
            return Err(RequestError::new(ErrorCode::Forbidden, "the session may not read this topic").with_id(id));
        }
        if !self.config.namespaces.of(topic).presence {
            return Err(RequestError::new(ErrorCode::NoPresence, "the topic's namespace keeps no presence").with_id(id));
        }
        Ok(())
    }

    /// `topic`'s position and its last `limit` publications (all kept without
    /// a limit); `None` when its namespace keeps no history.
    pub(super) fn history_of(
        &self,
        topic: &str,
        limit: Option<usize>,
        now: std::time::Instant,
    ) -> Option<(Position, Vec<Publication>)> {
        let options = self.config.namespaces.of(topic);
        if options.history_size == 0 {
            return None;
        }
        let limit = limit.unwrap_or(options.history_size);
        Some(self.streams.lock().read(topic, limit, now))
    }

    /// Whether one of `topics` has as many subscribers on this node as its
    /// namespace allows (a topic `session` already subscribes to is not refused).
    fn any_full<'t>(
        &self,
        ctx: &Context<'_, Member>,
        session: SessionId,
        topics: impl Iterator<Item = &'t str>,
    ) -> bool {
        let mut key = String::new();
        topics.into_iter().any(|topic| {
            topics::subscriber_key(&mut key, topic);
            let max = self.config.namespaces.of(topic).max_subscribers;
            max > 0 && !ctx.is_subscribed(session, &key) && topics::subscribers(topic, |k| ctx.subscribers(k)) >= max
        })
    }
}
