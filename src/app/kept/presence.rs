//! Presence across nodes: a topic's clients on every node, read through
//! the uplink for a `presence` or `presence_count` request or the HTTP API,
//! and the answers (this node's own clients when the read cannot be made).

use std::fmt::Write as _;

use super::{owned_id, Pending};
use crate::app::presence;
use crate::app::pubsub_protocol::{self as protocol, write_json_string, Id};
use crate::app::routes::{App, Member};
use crate::proto::handshake::StatusCode;
use crate::runtime::{Context, MembersAnswer, SessionId};

/// Clients a presence answer lists at most (`presence_count` counts them all).
const MAX_LISTED: usize = 10_000;

impl App {
    /// Asks the uplink for `topic`'s clients on every node; answered when
    /// the answer comes, at once from this node's own when it cannot be asked.
    pub(in crate::app) fn read_presence(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        id: Option<Id<'_>>,
        topic: &str,
        count: bool,
    ) {
        let pending = Pending::Presence { session, id: owned_id(id), topic: topic.to_owned(), count };
        self.send_presence_read(ctx, pending, topic);
    }

    pub(super) fn send_presence_read(&mut self, ctx: &mut Context<'_, Member>, pending: Pending, topic: &str) {
        let ticket = self.next_ticket();
        let limit = if matches!(pending, Pending::Presence { count: true, .. }) { 0 } else { MAX_LISTED };
        if ctx.read_members(ticket, topic, limit) {
            self.kept.hold(ticket, pending);
        } else {
            self.answer_presence(ctx, pending, None);
        }
    }

    /// The uplink answered a read of a topic's clients.
    pub(in crate::app) fn on_members_answer(&mut self, ctx: &mut Context<'_, Member>, answer: MembersAnswer) {
        if let Some(pending) = self.kept.release(answer.ticket) {
            self.answer_presence(ctx, pending, answer.members);
        }
    }

    /// Answers a presence request with every node's clients (`members`), or
    /// this node's own where they could not be read.
    pub(super) fn answer_presence(
        &mut self,
        ctx: &mut Context<'_, Member>,
        pending: Pending,
        members: Option<(Vec<(String, String)>, usize)>,
    ) {
        let (members, total) = members.unwrap_or_else(|| {
            let topic = match &pending {
                Pending::Presence { topic, .. } | Pending::Http { topic, .. } | Pending::History { topic, .. } => topic,
                Pending::Subscribe { .. } => return (Vec::new(), 0),
            };
            let own = self.presence.clients(topic);
            let total = own.len();
            let listed =
                own.iter().take(MAX_LISTED).map(|(client, m)| (client.clone(), presence::client_json(client, m)));
            (listed.collect(), total)
        });
        if let Pending::Http { request, topic, .. } = &pending {
            let mut body = String::from(r#"{"topic":"#);
            write_json_string(&mut body, topic);
            write_values(&mut body, &members);
            body.push('}');
            return self.respond_later(ctx, *request, "presence", StatusCode::OK, &body);
        }
        let Pending::Presence { session, id, topic, count } = pending else { return };
        let id = id.as_deref().and_then(|raw| Id::from_json(raw.get()));
        let mut reply = String::new();
        protocol::write_answer_head(&mut reply, if count { "presence_count" } else { "presence" }, id, &topic);
        if count {
            let _ = write!(reply, r#","count":{total}}}"#);
        } else {
            write_values(&mut reply, &members);
            reply.push('}');
        }
        let _ = ctx.send_text(session, &reply);
    }
}

/// Appends `,"clients":[...]` of members whose values are their JSON.
fn write_values(out: &mut String, members: &[(String, String)]) {
    out.push_str(r#","clients":["#);
    for (i, (_, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(value);
    }
    out.push(']');
}
