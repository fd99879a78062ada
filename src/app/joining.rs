//! What joining and leaving a topic does beyond the subscription: the
//! presence entry, and the join and leave events, where the topic's
//! namespace asks for them.

use super::identity::User;
use super::presence::{client_json, write_event};
use super::routes::{App, Member};
use super::topics;
use crate::runtime::{Context, MemberChange, SessionId, Topic};

impl App {
    /// The client id of `session`: the node's prefix, the loop, the session's slot.
    pub(super) fn client_id(&self, ctx: &Context<'_, Member>, session: SessionId) -> String {
        format!("{}-{}-{session}", self.node, ctx.loop_index())
    }

    /// `session` (of `user`) subscribed to `topic` or joined it as a room.
    pub(super) fn joined(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        topic: &str,
        user: Option<&User>,
    ) {
        let options = self.config.namespaces.of(topic);
        if !options.presence {
            return;
        }
        let client = self.client_id(ctx, session);
        let user = user.map(User::id);
        let Some(member) = self.presence.join(topic, &client, user) else { return };
        // With a cluster, every node's clients are read from Redis.
        let value = client_json(&client, &member);
        ctx.members(MemberChange::Add { topic: Topic::from(topic), member: client.clone(), value });
        if options.join_leave {
            self.announce(ctx, session, "join", topic, &client, user);
        }
    }

    /// `session` left `topic` (unsubscribed, or ended).
    pub(super) fn left(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, topic: &str) {
        let options = self.config.namespaces.of(topic);
        if !options.presence {
            return;
        }
        let client = self.client_id(ctx, session);
        if let Some(member) = self.presence.leave(topic, &client) {
            ctx.members(MemberChange::Remove { topic: Topic::from(topic), member: client.clone() });
            if options.join_leave {
                self.announce(ctx, session, "leave", topic, &client, member.user.as_deref());
            }
        }
    }

    /// A session ends: it leaves every topic it was in.
    pub(super) fn leave_all(&mut self, ctx: &mut Context<'_, Member>, session: SessionId) {
        let names: Vec<String> = ctx.topics(session).filter_map(topics::name_of_key).map(str::to_owned).collect();
        for name in names {
            self.left(ctx, session, &name);
        }
    }

    /// Sends a join or leave event to the topic's `/pubsub` subscribers, `session` left out.
    fn announce(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        kind: &str,
        topic: &str,
        client: &str,
        user: Option<&str>,
    ) {
        let mut event = std::mem::take(&mut self.reply.0);
        event.clear();
        write_event(&mut event, kind, topic, client, user);
        if self.kept_through_uplink(ctx, topic).is_some() && self.append_event(ctx, topic, &event, session) {
            self.reply.0 = event;
            return;
        }
        let mut key = String::new();
        topics::subscriber_key(&mut key, topic);
        let streams = (self.config.namespaces.of(topic).history_size > 0).then_some(&*self.streams);
        topics::publish_in_order(ctx, &key, crate::runtime::Message::Text(&event), Some(session), streams);
        self.reply.0 = event;
    }
}
