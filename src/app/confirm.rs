//! Publish acks that wait for the cluster's store: a publish to topics whose
//! history lives in Redis, acked over `/pubsub` (with an `id`) or answered
//! over HTTP, is acked once Redis has kept every publication of it (or
//! failed to), so that an ack without `"kept":false` means kept, never
//! only sent on its way.

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::kept::owned_id;
use super::pubsub_protocol::{self as protocol, Id};
use super::routes::{App, Member};
use super::topics::Payload;
use crate::proto::handshake::StatusCode;
use crate::runtime::{Appended, Context, SessionId};

/// The publishes of a loop waiting for their appends' answers, by ticket
/// (one ticket per publish, shared by its topics); a clone starts empty.
#[derive(Debug, Default)]
pub(super) struct Confirming(HashMap<u64, Waiting>);

impl Clone for Confirming {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Where a publish's ack goes.
#[derive(Debug)]
pub(super) enum Ack {
    /// A `/pubsub` session, acked with its request's id.
    Session { session: SessionId, id: Option<Box<RawValue>> },
    /// An HTTP API call (its connection), answered `{"recipients":N}`.
    Http { request: SessionId, call: &'static str },
}

/// What a publish did at once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Published {
    /// Its recipients on this node.
    pub(super) recipients: usize,
    /// Whether a topic with history did not keep it.
    pub(super) unkept: bool,
    /// Appends whose answers it waits for, under `ticket`.
    pub(super) appends: usize,
    pub(super) ticket: u64,
}

/// A publish waiting for its ack.
#[derive(Debug)]
struct Waiting {
    to: Ack,
    recipients: usize,
    /// Answers still to come.
    appends: usize,
    /// Whether a publication of it was not kept (or may not have been).
    unkept: bool,
}

/// The HTTP answer of a publish: `{"recipients":N}`, with `"kept":false`
/// when a topic with history did not keep it.
pub(super) fn published_body(recipients: usize, unkept: bool) -> String {
    if unkept {
        format!(r#"{{"recipients":{recipients},"kept":false}}"#)
    } else {
        format!(r#"{{"recipients":{recipients}}}"#)
    }
}

impl App {
    /// Publishes `data` to each of `topics`; with `confirm`, each
    /// publication kept through the uplink asks for an answer, all under
    /// one ticket ([`ack_when_kept`](Self::ack_when_kept) then waits for them).
    pub(super) fn publish_all<'t>(
        &mut self,
        ctx: &mut Context<'_, Member>,
        topics: impl IntoIterator<Item = &'t str>,
        data: &RawValue,
        exclude: Option<SessionId>,
        confirm: bool,
    ) -> Published {
        let ticket = if confirm { self.next_ticket() } else { 0 };
        let mut published = Published { recipients: 0, unkept: false, appends: 0, ticket };
        for topic in topics {
            let one = self.publish(ctx, topic, Payload::Json(data), exclude, confirm.then_some(ticket));
            published.recipients += one.recipients;
            published.unkept |= one.unkept;
            published.appends += usize::from(one.confirming);
        }
        published
    }

    /// Holds the ack of a publish until its appends are answered
    /// ([`on_appended_answer`](Self::on_appended_answer)); nothing when it waits for none.
    pub(super) fn ack_when_kept(&mut self, to: Ack, published: &Published) {
        if published.appends == 0 {
            return;
        }
        let waiting =
            Waiting { to, recipients: published.recipients, appends: published.appends, unkept: published.unkept };
        self.confirming.0.insert(published.ticket, waiting);
    }

    /// The same, for a `/pubsub` session's request `id`.
    pub(super) fn ack_session_when_kept(&mut self, session: SessionId, id: Option<Id<'_>>, published: &Published) {
        self.ack_when_kept(Ack::Session { session, id: owned_id(id) }, published);
    }

    /// An append's answer: the publish it belongs to is acked with its last one.
    pub(super) fn on_appended_answer(&mut self, ctx: &mut Context<'_, Member>, answer: Appended) {
        let Some(waiting) = self.confirming.0.get_mut(&answer.ticket) else { return };
        waiting.unkept |= answer.position.is_none();
        waiting.appends = waiting.appends.saturating_sub(1);
        if waiting.appends > 0 {
            return;
        }
        let Some(waiting) = self.confirming.0.remove(&answer.ticket) else { return };
        // The session or connection may have gone meanwhile: nobody is left to tell.
        match waiting.to {
            Ack::Session { session, id } => {
                let reply = &mut self.reply.0;
                reply.clear();
                let id = id.as_deref().and_then(|raw| Id::from_json(raw.get()));
                if waiting.unkept {
                    protocol::write_ack_publish_unkept(reply, id, waiting.recipients);
                } else {
                    protocol::write_ack_publish(reply, id, waiting.recipients);
                }
                let _ = ctx.send_text(session, reply);
            }
            Ack::Http { request, call } => {
                let body = published_body(waiting.recipients, waiting.unkept);
                self.respond_later(ctx, request, call, StatusCode::OK, &body);
            }
        }
    }
}
