//! Publish acks that wait for the cluster's store: a `/pubsub` publish with
//! an `id` to topics whose history lives in Redis is acked once Redis has
//! kept every publication of it (or failed to), so that `"kept"` left out
//! of an ack means kept, never only sent on its way.

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::kept::owned_id;
use super::pubsub_protocol::{self as protocol, Id};
use super::routes::{App, Member};
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

/// A publish waiting for its ack.
#[derive(Debug)]
struct Waiting {
    session: SessionId,
    id: Option<Box<RawValue>>,
    /// Its recipients on this node.
    recipients: usize,
    /// Answers still to come.
    appends: usize,
    /// Whether a publication of it was not kept (or may not have been).
    unkept: bool,
}

impl App {
    /// Holds the ack of a publish until its `appends` are answered
    /// ([`on_appended_answer`](Self::on_appended_answer)).
    pub(super) fn ack_when_kept(
        &mut self,
        session: SessionId,
        id: Option<Id<'_>>,
        ticket: u64,
        recipients: usize,
        appends: usize,
        unkept: bool,
    ) {
        let id = owned_id(id);
        self.confirming.0.insert(ticket, Waiting { session, id, recipients, appends, unkept });
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
        let reply = &mut self.reply.0;
        reply.clear();
        let id = waiting.id.as_deref().and_then(|raw| Id::from_json(raw.get()));
        if waiting.unkept {
            protocol::write_ack_publish_unkept(reply, id, waiting.recipients);
        } else {
            protocol::write_ack_publish(reply, id, waiting.recipients);
        }
        // The session may have gone meanwhile: nobody is left to tell.
        let _ = ctx.send_text(waiting.session, reply);
    }
}
