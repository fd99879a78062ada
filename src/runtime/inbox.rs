//! Publishes from other loops (and from a bridge to other nodes), delivered
//! to this loop's subscribers, or to all its sessions for a broadcast; and
//! requests to close a topic's subscribers.

use std::time::Instant;

use super::event_loop::EventLoop;
use super::handler::{Handler, SessionId};
use super::pubsub::Publication;

impl<H: Handler> EventLoop<H> {
    /// Delivers what other loops published to this loop's sessions.
    pub(super) fn drain_inbox(&mut self, now: Instant) {
        self.shared.bus.clear_woken(self.index);
        let mut targets = std::mem::take(&mut self.scratch.targets);
        while let Ok(delivery) = self.inbox.try_recv() {
            targets.clear();
            let frame = match delivery {
                Publication::Close { topic, code, reason } => {
                    targets.extend(self.topics.subscribers(&topic));
                    self.with_context(now, None, |_, ctx| {
                        for &id in &targets {
                            let _ = ctx.close(id, code, &reason);
                        }
                    });
                    continue;
                }
                Publication::Record(record) => {
                    let exclude = record.exclude.filter(|(at, _)| *at == self.index).map(|(_, id)| id);
                    self.with_context(now, None, |handler, ctx| handler.on_record(ctx, &record, exclude));
                    continue;
                }
                Publication::Answer(answer) => {
                    self.with_context(now, None, |handler, ctx| handler.on_read(ctx, answer));
                    continue;
                }
                Publication::Members(answer) => {
                    self.with_context(now, None, |handler, ctx| handler.on_members(ctx, answer));
                    continue;
                }
                Publication::Appended(answer) => {
                    self.with_context(now, None, |handler, ctx| handler.on_appended(ctx, answer));
                    continue;
                }
                Publication::Topic { topic, frame, seq, exclude } => {
                    let exclude = exclude.filter(|(at, _)| *at == self.index).map(|(_, id)| id);
                    targets.extend(self.topics.subscribers_at(&topic, seq).filter(|s| Some(*s) != exclude));
                    frame
                }
                Publication::All { frame } => {
                    let open = self.sessions.iter().filter(|(_, s)| s.session.is_open());
                    targets.extend(open.map(|(key, s)| SessionId { key, generation: s.generation }));
                    frame
                }
            };
            let stats = &self.shared.bus.stats;
            let mut delivered = 0;
            for &id in &targets {
                let Some(slot) = self.sessions.get_mut(id.key).filter(|s| s.generation == id.generation) else {
                    continue;
                };
                slot.session.lend(&mut self.pool);
                delivered += u64::from(slot.deliver(&frame, &self.settings, now, stats));
                if !slot.flush_pending {
                    slot.flush_pending = true;
                    self.to_flush.push(id.key);
                }
            }
            self.shared.counters.loops[self.index].messages_out.add(delivered);
        }
        self.scratch.targets = targets;
        // Whatever a hold was for came through the channel before it: drained now.
        self.topics.end_holds();
    }
}
