//! A graceful shutdown of one loop: drain, Close 1001 to every session, and
//! stop once they have closed or at the drain deadline.

use std::time::Instant;

use super::event_loop::EventLoop;
use super::handler::Handler;
use crate::proto::CloseCode;

impl<H: Handler> EventLoop<H> {
    /// Starts draining: what was published before goes out, then every open
    /// session gets Close 1001; the loop ends once they have closed or at the
    /// drain deadline. Listeners stay open so health checks see 503; new
    /// upgrades are refused.
    pub(super) fn begin_shutdown(&mut self, now: Instant) {
        log::debug!("loop {}: draining {} sessions", self.index, self.upgraded);
        self.drain_inbox(now);
        self.drain_deadline = Some(now + self.config.drain_timeout);
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(slot) = self.sessions.get_mut(key) else { continue };
            // Queued after the output already waiting, so that goes first.
            let _ = slot.session.close(CloseCode::GOING_AWAY, "server shutting down", now);
            self.sync(key, now);
        }
    }

    pub(super) fn finish_shutdown(&mut self, now: Instant) {
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.end_session(key, now);
        }
        log::debug!("loop {}: stopped", self.index);
    }
}
