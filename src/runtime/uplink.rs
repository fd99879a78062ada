//! The uplink: how a bridge to other nodes attaches to the bus from above.
//!
//! The runtime knows topics only as names on this node. A bridge that shares
//! them with other processes implements [`Uplink`] and is handed to
//! [`ServerBuilder::uplink`](super::ServerBuilder::uplink); the runtime then
//!
//! - gives it an [`Inlet`] once, at start: the way in, which delivers a frame
//!   to this node's subscribers of a topic (or to every session) on every
//!   loop, as a publish from another loop would be;
//! - hands it every local publish and broadcast, with the frame already
//!   encoded (the same `Arc` bytes every local subscriber got);
//! - tells it when a topic gains its first or loses its last subscriber on
//!   this node, so that it follows only the topics someone here reads;
//! - lets it add its metrics to [`Metrics::render`](super::Metrics::render)
//!   and a line to the application's health answer, and stops it after the
//!   loops have finished.
//!
//! What comes in through the inlet never goes back out to the uplink.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::pubsub::{Bus, Topic};
use super::records::{Append, Appended, MemberChange, MembersAnswer, MembersRequest, ReadAnswer, ReadRequest, Record};
use crate::proto::close::parse_close_payload;
use crate::proto::frame::{decode_header, Decoded, HeaderRules};
use crate::proto::{CloseCode, OpCode, Role};
use crate::session::SharedFrame;

/// A bridge from this node's topics to elsewhere (other nodes, a broker).
///
/// Every method but [`attach`](Self::attach) and [`detach`](Self::detach) is
/// called on an event loop's thread, on the path of a publish or a
/// subscription: queue the work and return, never block.
pub trait Uplink: fmt::Debug + Send + Sync + 'static {
    /// Called once as the server starts, before any loop runs, with the way
    /// in. A bridge starts its own thread here, if it has one.
    ///
    /// # Errors
    ///
    /// Whatever keeps the bridge from starting; the server does not start.
    fn attach(&self, inlet: Inlet) -> io::Result<()>;

    /// A publish to `topic` (`None`: a broadcast to every session) made on
    /// this node, after its local delivery. `frame` is the encoded
    /// server-to-client frame: one whole, final, unmasked text or binary
    /// frame; or a Close frame, asking that the topic's subscribers be closed
    /// with its code and reason ([`Context::close_subscribers`](super::Context::close_subscribers)).
    fn publish(&self, topic: Option<&Topic>, frame: &SharedFrame);

    /// `topic` gained its first subscriber on this node (`subscribed`), or
    /// lost its last one. Calls come in the order of the changes, with the
    /// topic directory locked so that two loops' changes cannot cross: note
    /// the change and return, without calling back into the server (an
    /// [`Inlet`] call from here would wait on the lock this call holds).
    fn interest(&self, topic: &Topic, subscribed: bool);

    /// Called once the loops have finished ([`ServerHandle::join`](super::ServerHandle::join)):
    /// send what the loops queued last, and stop. Nothing by default.
    fn detach(&self) {}

    /// Appends the uplink's own metrics, in the Prometheus text format, to
    /// what [`Metrics::render`](super::Metrics::render) writes. None by default.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }

    /// Whether this uplink keeps records ([`Context::append`](super::Context::append),
    /// [`Context::read_kept`](super::Context::read_kept)). No by default.
    fn keeps_records(&self) -> bool {
        false
    }

    /// A record to keep (or only to order) and to send to every node with
    /// subscribers of its topic, this one included, which get it back
    /// through [`Inlet::record`]. Returns false when it cannot be taken now
    /// (the store is unreachable): the caller delivers it some other way.
    fn append(&self, append: Append) -> bool {
        let _ = append;
        false
    }

    /// Reads kept records, answered through [`Inlet::answer`]. Returns false
    /// when the request cannot be taken now (then no answer comes).
    ///
    /// A read must see every record published before the node follows the
    /// topics read (those of subscribers of this node), so that what the
    /// read returns and what comes after through [`Inlet::record`] leave no gap.
    fn read(&self, request: ReadRequest) -> bool {
        let _ = request;
        false
    }

    /// A change to this node's members of a topic ([`Context::members`](super::Context::members)).
    /// Returns false when the uplink keeps no members, or cannot take it now.
    fn members(&self, change: MemberChange) -> bool {
        let _ = change;
        false
    }

    /// Reads a topic's members on every node, answered through
    /// [`Inlet::answer_members`]. Returns false when the request cannot be
    /// taken now (then no answer comes).
    fn read_members(&self, request: MembersRequest) -> bool {
        let _ = request;
        false
    }

    /// A line for the application's health answer, such as `peers: up`
    /// (see [`Context::uplink_health`](super::Context::uplink_health)). None by default.
    fn health(&self) -> Option<String> {
        None
    }
}

/// The uplink's way in: delivers frames from elsewhere to this node's
/// sessions. Cheap to clone and `Send`.
#[derive(Clone)]
pub struct Inlet {
    bus: Arc<Bus>,
}

impl fmt::Debug for Inlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inlet").finish_non_exhaustive()
    }
}

impl Inlet {
    pub(crate) fn new(bus: Arc<Bus>) -> Self {
        Self { bus }
    }

    /// Delivers `frame` to this node's subscribers of `topic` on every loop
    /// (`None`: to every open session), through each loop's channel, as a
    /// publish from another loop is; each subscriber's output queue and the
    /// slow-consumer policy decide there. A Close frame closes the topic's
    /// subscribers with its code and reason instead. Returns the subscribers
    /// of `topic` on this node (0 for a broadcast).
    ///
    /// # Errors
    ///
    /// `frame` is not one whole, final, unmasked text or binary frame, nor a
    /// valid Close frame for a topic: it would corrupt every stream it was
    /// written to, so it goes nowhere.
    pub fn deliver(&self, topic: Option<&Topic>, frame: &SharedFrame) -> Result<usize, DeliverError> {
        // No loop publishes from here: every loop gets a copy.
        match (read_carried(frame), topic) {
            (Some(Carried::Data), _) => Ok(self.bus.send_to_others(usize::MAX, topic, frame)),
            (Some(Carried::Close { code, reason }), Some(topic)) => {
                Ok(self.bus.close_on_others(usize::MAX, topic, code, reason))
            }
            _ => Err(DeliverError::NotADataFrame),
        }
    }

    /// Hands a record to every loop with subscribers of its topic, for the
    /// handler's [`on_record`](super::Handler::on_record). Returns those subscribers.
    pub fn record(&self, record: Record) -> usize {
        self.bus.send_record(record)
    }

    /// Hands the answer to a [`ReadRequest`] to the loop that asked, for its
    /// handler's [`on_read`](super::Handler::on_read); false if that loop's
    /// channel could not take it.
    pub fn answer(&self, loop_index: usize, answer: ReadAnswer) -> bool {
        self.bus.send_answer(loop_index, answer)
    }

    /// Hands the answer to a [`MembersRequest`] to the loop that asked, for
    /// its handler's [`on_members`](super::Handler::on_members); false if
    /// that loop's channel could not take it.
    pub fn answer_members(&self, loop_index: usize, answer: MembersAnswer) -> bool {
        self.bus.send_members(loop_index, answer)
    }

    /// Hands the answer to a confirmed [`Append`] to the loop that made it,
    /// for its handler's [`on_appended`](super::Handler::on_appended); false
    /// if that loop's channel could not take it.
    pub fn appended(&self, loop_index: usize, answer: Appended) -> bool {
        self.bus.send_appended(loop_index, answer)
    }

    /// Whether any loop of this node has subscribers of `topic`.
    #[must_use]
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.bus.has_subscribers(topic)
    }
}

/// Why [`Inlet::deliver`] refused a frame.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverError {
    /// Not one whole, final, unmasked text or binary frame.
    NotADataFrame,
}

impl fmt::Display for DeliverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADataFrame => f.write_str("not one whole, final, unmasked text or binary frame"),
        }
    }
}

impl std::error::Error for DeliverError {}

/// What a frame handed over the bus asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carried<'a> {
    /// A message for the subscribers.
    Data,
    /// Close the subscribers with this code and reason.
    Close { code: CloseCode, reason: &'a str },
}

/// Reads what a publish writes: one whole frame, final, unmasked, without
/// RSV bits (published frames are never compressed), either text or binary
/// or a Close with a code an endpoint may send. Anything else is `None`.
pub(crate) fn read_carried(frame: &[u8]) -> Option<Carried<'_>> {
    // Read as a client reads the server's frames.
    let rules = HeaderRules { role: Role::Client, allowed_rsv: 0 };
    let Ok(Decoded::Complete(header, header_len)) = decode_header(frame, &rules) else { return None };
    let payload = &frame[header_len..];
    if !header.fin || u64::try_from(payload.len()).ok() != Some(header.payload_len) {
        return None;
    }
    match header.opcode {
        OpCode::Text | OpCode::Binary => Some(Carried::Data),
        OpCode::Close => match parse_close_payload(payload) {
            Ok(Some(close)) if close.code.is_sendable() => {
                // The payload was checked as UTF-8 after the code.
                let reason = std::str::from_utf8(&payload[2..]).ok()?;
                Some(Carried::Close { code: close.code, reason })
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode_frame;

    fn frame(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(fin, 0, opcode, payload, mask, &mut out);
        out
    }

    #[test]
    fn only_whole_data_frames_and_closes_are_carried() {
        let text = frame(true, OpCode::Text, b"hello", None);
        assert_eq!(read_carried(&text), Some(Carried::Data));
        assert_eq!(read_carried(&frame(true, OpCode::Binary, b"", None)), Some(Carried::Data));
        assert_eq!(read_carried(&text[..text.len() - 1]), None, "cut short");
        let mut two = text.clone();
        two.extend_from_slice(&text);
        assert_eq!(read_carried(&two), None, "two frames");
        assert_eq!(read_carried(&frame(true, OpCode::Binary, b"x", Some([1, 2, 3, 4]))), None, "masked");
        assert_eq!(read_carried(&frame(true, OpCode::Ping, b"x", None)), None, "a ping");
        assert_eq!(read_carried(&frame(false, OpCode::Text, b"x", None)), None, "a fragment");
        assert_eq!(read_carried(&[]), None);

        let close = frame(true, OpCode::Close, b"\x0f\xa3bye", None);
        assert_eq!(read_carried(&close), Some(Carried::Close { code: CloseCode(4003), reason: "bye" }));
        assert_eq!(read_carried(&frame(true, OpCode::Close, b"", None)), None, "a Close needs a code");
        assert_eq!(read_carried(&frame(true, OpCode::Close, b"\x03\xed", None)), None, "1005 is never sent");
        assert_eq!(read_carried(&frame(true, OpCode::Close, b"\x0f\xa3\xff", None)), None, "a reason not UTF-8");
    }
}
