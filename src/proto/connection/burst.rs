//! What a connection holds only while traffic is in progress.

use std::collections::VecDeque;

use super::reader::{Item, Reader};
use crate::proto::error::ProtocolError;
use crate::proto::event::ControlPayload;
use crate::proto::spares::{Spare, Spares};

/// The state of the traffic in progress: a frame or message being read,
/// events and output not yet polled, a Pong owed, a violation waiting for
/// the events before it.
///
/// The [`Connection`](super::Connection) allocates it when bytes arrive or
/// output is queued, and frees it once the polls have taken everything, so
/// that an idle connection is a few words.
#[derive(Debug, Default)]
pub struct Burst {
    pub(super) reader: Reader,
    pub(super) events: EventQueue,
    pub(super) out: Vec<u8>,
    /// The latest unanswered Ping (RFC 6455 §5.5.3: only the most recent needs a Pong).
    pub(super) pending_pong: Option<ControlPayload>,
    /// Pongs queued since the output was last taken.
    pub(super) pongs_queued: u8,
    /// A violation found by the reader, acted on once the events decoded
    /// before it have been polled (so that replies to them go out first).
    pub(super) failure_pending: Option<ProtocolError>,
    /// Lent from a [`BurstPool`]: kept while idle, until given back.
    pub(super) pooled: bool,
}

impl Burst {
    pub(super) fn is_idle(&self) -> bool {
        self.reader.is_idle()
            && self.events.is_empty()
            && self.out.is_empty()
            && self.pending_pong.is_none()
            && self.failure_pending.is_none()
    }
}

/// Burst states that idle connections gave back, lent to the next
/// connection with traffic: with one pool per event loop, steady traffic
/// allocates no working memory.
pub type BurstPool = Spares<Burst>;

/// The largest output buffer a spare keeps; a larger one is freed.
const KEPT_OUTPUT: usize = 64 << 10;

impl Spare for Burst {
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.out.capacity() + self.events.rest.capacity() * std::mem::size_of::<Item>()
    }

    fn recycle(&mut self) {
        if self.out.capacity() > KEPT_OUTPUT {
            self.out = Vec::new();
        }
    }

    fn mark_lent(&mut self) {
        self.pooled = true;
    }
}

/// Events not yet polled, oldest first. The oldest is kept apart from the
/// rest, so that a burst of one event (most reads) needs no allocation of
/// its own.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    /// When `None`, `rest` is empty too.
    first: Option<Item>,
    rest: VecDeque<Item>,
}

impl EventQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(super) fn push_back(&mut self, event: Item) {
        if self.first.is_none() {
            self.first = Some(event);
        } else {
            self.rest.push_back(event);
        }
    }

    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<Item> {
        match self.rest.pop_front() {
            Some(next) => self.first.replace(next),
            None => self.first.take(),
        }
    }
}
