//! A subscribe's read answered: what the client missed sent again (marked
//! recovered) where it can be, the ack with each topic's position, then the
//! records that waited in the session's cursors, each cursor left after the
//! position read.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use super::{covered, data_json, write_pubsub_form, Cursor, KeptState, Pending};
use crate::app::history::can_recover;
use crate::app::pubsub_protocol::{self as protocol, Id, TopicPosition};
use crate::app::routes::{App, Member};
use crate::app::topics;
use crate::proto::CloseCode;
use crate::runtime::{self, Context, SessionId};

impl App {
    /// Sends what a subscribe recovered, its ack, then the records that
    /// waited, and leaves each cursor after the position read.
    pub(super) fn finish_subscribe(
        &mut self,
        ctx: &mut Context<'_, Member>,
        ticket: u64,
        pending: Pending,
        results: Vec<Option<runtime::Kept>>,
    ) {
        let Pending::Subscribe { session, id, topics, kept } = pending else { return };
        let id = id.as_deref();
        if ctx.state(session).is_none() {
            self.forget_kept(session);
            return;
        }
        let stats = self.streams.clone();
        let stats = stats.stats();
        let mut answers = Vec::with_capacity(kept.len());
        let mut key = String::new();
        let mut overflowed = false;
        for (item, result) in kept.into_iter().zip(results.into_iter().chain(std::iter::repeat(None))) {
            // Left meanwhile (an unsubscribe, a refresh that took the grant): nothing more of it.
            topics::subscriber_key(&mut key, &item.topic);
            let subscribed = ctx.is_subscribed(session, &key);
            let overflow = matches!(
                self.kept.cursors.get(&item.topic).and_then(|sessions| sessions.get(&session)),
                Some(Cursor::Reading { overflow: true, .. })
            );
            overflowed |= overflow;
            let recovered = item.since.as_ref().map(|(offset, epoch)| {
                let done = result.as_ref().is_some_and(|kept| {
                    subscribed && !overflow && self.recover(ctx, session, &item.topic, kept, *offset, epoch)
                });
                let counter = if done { &stats.recovered } else { &stats.not_recovered };
                counter.fetch_add(1, Ordering::Relaxed);
                done
            });
            answers.push((item.topic, result.map(|k| k.position), recovered));
        }
        let positions = TopicPosition::list(&answers);
        let names = protocol::Topics::from_names(&topics);
        let mut reply = std::mem::take(&mut self.reply.0);
        reply.clear();
        protocol::write_ack_subscribe(&mut reply, id.and_then(|raw| Id::from_json(raw.get())), &names, &positions);
        let _ = ctx.send_text(session, &reply);
        self.reply.0 = reply;
        if overflowed {
            // Too far behind to be sent what waited: a new connection recovers it.
            let _ = ctx.close(session, CloseCode::TRY_AGAIN_LATER, "too far behind");
            return;
        }
        for (topic, position, _) in answers {
            // Only this read's cursor: a later subscribe of the topic made its own.
            let mine = self.kept.cursors.get(&topic).and_then(|sessions| sessions.get(&session));
            if !matches!(mine, Some(Cursor::Reading { ticket: t, .. }) if *t == ticket) {
                continue;
            }
            let Some(Cursor::Reading { waiting, .. }) = self.kept.take_cursor(session, &topic) else { continue };
            let mut after = position;
            for record in &waiting {
                if after.as_ref().is_some_and(|at| covered(record, at)) {
                    continue;
                }
                // A kept record past the read: the cursor is done (unkept ones leave it).
                if record.position.is_some() {
                    after = None;
                }
                let KeptState { form, data, .. } = &mut self.kept;
                if write_pubsub_form(form, data, &topic, record) {
                    let _ = ctx.send_text(session, form);
                }
            }
            if let Some(at) = after {
                self.kept.cursors.entry(topic).or_default().insert(session, Cursor::After(at));
            }
        }
    }

    /// Sends the kept publications after `offset` to `session`, marked
    /// recovered, when they are all there under `epoch` and fit the session's
    /// output queue; returns whether it did.
    fn recover(
        &mut self,
        ctx: &mut Context<'_, Member>,
        session: SessionId,
        topic: &str,
        kept: &runtime::Kept,
        offset: u64,
        epoch: &str,
    ) -> bool {
        let at = &kept.position;
        let missed: Vec<(u64, Cow<'_, str>)> = kept
            .records
            .iter()
            .filter(|(o, _)| *o > offset)
            .filter_map(|(o, data)| Some((*o, data_json(data)?)))
            .collect();
        let first = kept.records.first().map(|(first, _)| *first);
        let lengths = missed.iter().map(|(_, data)| data.len());
        // The read stops at its byte budget: it must have reached the position.
        let complete = missed.last().is_none_or(|(last, _)| *last == at.offset);
        if !complete
            || !can_recover(topic, (offset, epoch), (at.offset, &at.epoch), first, lengths, ctx.max_out_queue())
        {
            return false;
        }
        let mut text = String::new();
        for (o, data) in &missed {
            text.clear();
            protocol::write_recovered(&mut text, topic, data, *o, &at.epoch);
            let _ = ctx.send_text(session, &text);
        }
        true
    }
}
