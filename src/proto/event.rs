//! What a connection reports: messages, control frames and the peer's Close.

use std::fmt;
use std::ops::Deref;

use super::close::CloseFrame;
use super::frame::MAX_CONTROL_PAYLOAD;

/// The payload of a Ping or Pong: at most 125 bytes, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ControlPayload {
    len: u8,
    bytes: [u8; MAX_CONTROL_PAYLOAD],
}

impl ControlPayload {
    /// An empty payload.
    pub const EMPTY: Self = Self { len: 0, bytes: [0; MAX_CONTROL_PAYLOAD] };

    /// A payload holding `data`, or `None` if it is over 125 bytes.
    #[must_use]
    pub fn new(data: &[u8]) -> Option<Self> {
        let mut payload = Self::EMPTY;
        payload.extend(data).then_some(payload)
    }

    /// Appends `data`; returns false (and appends nothing) if it would pass 125 bytes.
    pub(crate) fn extend(&mut self, data: &[u8]) -> bool {
        let len = usize::from(self.len);
        let Some(dest) = self.bytes.get_mut(len..len + data.len()) else {
            return false;
        };
        dest.copy_from_slice(data);
        // len + data.len() <= 125, checked by the `get_mut` above.
        self.len = (len + data.len()) as u8;
        true
    }
}

impl Deref for ControlPayload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ControlPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ControlPayload").field(&&**self).finish()
    }
}

/// Something that happened on the connection, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole text message, already checked to be UTF-8.
    Text(String),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A Ping arrived. The Pong is sent automatically (to the latest Ping only).
    Ping(ControlPayload),
    /// A Pong arrived.
    Pong(ControlPayload),
    /// The peer's Close arrived: its code and reason, or `None` if it had no
    /// code (reported to applications as 1005). If we had not closed first,
    /// the echo is queued as this event is polled, after any replies to the
    /// messages that came before it.
    Close(Option<CloseFrame>),
}

/// An event from [`Connection::poll_event_in`](super::Connection::poll_event_in):
/// a message lent from the read buffer, or any other event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<'a> {
    /// A whole text message (valid UTF-8), lent from the bytes read.
    Text(&'a str),
    /// A whole binary message, lent from the bytes read.
    Binary(&'a [u8]),
    /// Any other event, a message among them when it was reassembled from
    /// fragments or reads, or inflated: boxed as the connection queued it,
    /// so that a lent message moves a few words, not the size of an event.
    Event(Box<Event>),
}

impl Received<'_> {
    /// The event, with a lent message copied out.
    #[must_use]
    pub fn into_event(self) -> Event {
        match self {
            Self::Text(text) => Event::Text(text.to_owned()),
            Self::Binary(data) => Event::Binary(data.to_vec()),
            Self::Event(event) => *event,
        }
    }
}
