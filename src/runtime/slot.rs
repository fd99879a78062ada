//! One connection on an event loop: its stream and its session machine, with
//! what the driver keeps for it (poll interest, the armed timer).

use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::Interest;

use super::pubsub::PubSubStats;
use super::stream::Stream;
use crate::session::SharedFrame;
use crate::session::{Delivered, Session, Settings};

/// A slab entry of the event loop.
#[derive(Debug)]
pub(crate) struct Slot<S> {
    pub(crate) stream: Stream,
    pub(crate) session: Session<S>,
    pub(crate) generation: u16,
    /// The interest registered with the poll.
    pub(crate) interest: Interest,
    /// The tick of the earliest deadline armed in the timer wheel (a tick
    /// in 4 bytes rather than an `Instant` in 16: one per connection).
    pub(crate) armed: Option<u32>,
    /// Output was queued for this session outside its own I/O: write it at
    /// the end of the loop iteration (once, however many messages came).
    pub(crate) flush_pending: bool,
    /// Counted against the connection limits (not refused for one).
    pub(crate) admitted: bool,
}

impl<S> Slot<S> {
    pub(crate) fn new(stream: Stream, session: Session<S>, generation: u16, admitted: bool) -> Self {
        Self { stream, session, generation, interest: Interest::READABLE, armed: None, flush_pending: false, admitted }
    }

    /// Output not yet on the socket: queued, or held in TLS records.
    pub(crate) fn has_unwritten(&self) -> bool {
        self.session.queued() > 0 || self.stream.wants_write()
    }

    /// Everything is said and written, TLS records included.
    pub(crate) fn is_finished(&self) -> bool {
        self.session.is_finished() && !self.stream.wants_write()
    }

    /// Offers a publish to the session, counting what its policy did; returns whether it was queued.
    pub(crate) fn deliver(
        &mut self,
        frame: &SharedFrame,
        settings: &Settings,
        now: Instant,
        stats: &PubSubStats,
    ) -> bool {
        match self.session.deliver(frame, settings, now) {
            Delivered::Queued => return true,
            Delivered::NotOpen => {}
            Delivered::Dropped => {
                stats.dropped_backpressure.fetch_add(1, Ordering::Relaxed);
            }
            Delivered::ClosedSlowConsumer => {
                stats.slow_consumers_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
        false
    }
}

// The size is measured with the state the binary's application keeps.
#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    #[test]
    fn an_idle_slot_is_small() {
        // One per open connection: this is most of what an idle connection
        // costs. mio's TcpStream carries a selector id in a debug build; the
        // `tls` feature adds the pointer to a session's TLS state.
        let max = if cfg!(debug_assertions) { 184 } else { 176 } + if cfg!(feature = "tls") { 8 } else { 0 };
        let size = std::mem::size_of::<Slot<crate::app::Member>>();
        assert!(size <= max, "{size}");
    }
}
