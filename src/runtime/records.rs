//! Records: what an uplink that keeps history carries for a topic, handed
//! to the application rather than written to sockets.
//!
//! A topic's history across nodes has to live where every node reaches it,
//! so an uplink may offer to keep one ([`Uplink::keeps_records`]): the
//! application appends a record to a topic ([`Context::append`]), the
//! uplink gives it its place in the topic (an offset and an epoch, see
//! [`Kept`]) and sends it to every node with subscribers of that topic,
//! its own included, in that order; each loop with subscribers of the topic
//! gets it in [`Handler::on_record`](super::Handler::on_record), and makes
//! of it what its sessions receive. A loop reads what is kept with
//! [`Context::read_kept`], answered later in
//! [`Handler::on_read`](super::Handler::on_read).
//!
//! The bytes of a record are the application's: the runtime and the uplink
//! only carry them.
//!
//! [`Uplink::keeps_records`]: super::Uplink::keeps_records
//! [`Context::append`]: super::Context::append
//! [`Context::read_kept`]: super::Context::read_kept

use std::sync::Arc;
use std::time::Duration;

use super::handler::SessionId;
use super::pubsub::Topic;

/// How a record is kept: the topic's most recent `size` records, for `ttl`
/// after its last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Most records kept for the topic (at least 1).
    pub size: usize,
    /// How long the topic's records outlive its last one.
    pub ttl: Duration,
}

/// A record on its way to the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// The topic it is for (its subscribers' loops get it).
    pub topic: Topic,
    /// The application's bytes.
    pub data: Vec<u8>,
    /// Kept, with a position; `None`: sent in the topic's order, not kept.
    pub keep: Option<Keep>,
    /// A session left out (its loop, and itself), as in [`Context::publish`](super::Context::publish).
    pub exclude: Option<(usize, SessionId)>,
    /// For a kept record: the loop to tell, and its ticket, once the
    /// uplink's store has it or cannot keep it ([`Appended`]).
    pub confirm: Option<(usize, u64)>,
}

/// The answer to a kept [`Append`] that asked for one: its position once
/// the uplink's store has it; `None` when it was not kept, or when the
/// uplink cannot tell whether it was (the store's connection was lost
/// before its answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The append's ticket.
    pub ticket: u64,
    /// The record's place in its topic.
    pub position: Option<Position>,
}

/// A record's place in its topic: its `offset` (+1 per kept record, from 1)
/// and the topic's `epoch`, which changes when the kept records were lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The offset.
    pub offset: u64,
    /// The epoch, a short ASCII string.
    pub epoch: String,
}

/// A record as it comes back from the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its topic.
    pub topic: Topic,
    /// Its place, when it is kept.
    pub position: Option<Position>,
    /// The application's bytes.
    pub data: Arc<[u8]>,
    /// A session of this node left out (its loop, and itself).
    pub exclude: Option<(usize, SessionId)>,
}

/// One topic to read: its kept records after `after` (its last `limit`
/// without it), at most `limit` of them and, past the first, `max_bytes`
/// of their bytes (the oldest after `after` go first; without it, the newest).
/// A topic with nothing kept read by a subscriber (with `after`, or `limit`
/// 0) gets a position (offset 0) that its first record will follow, kept
/// for `ttl`; a read of its last records keeps none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The topic.
    pub topic: Topic,
    /// Most records returned.
    pub limit: usize,
    /// How long a position made for a topic with nothing kept lasts.
    pub ttl: Duration,
    /// The offset after which records are wanted (a recovery); `None`: the last ones.
    pub after: Option<u64>,
    /// Most bytes of records returned, past the first.
    pub max_bytes: usize,
}

impl Read {
    /// The last `limit` records of `topic`, however many bytes.
    #[must_use]
    pub fn last(topic: Topic, limit: usize, ttl: Duration) -> Self {
        Self { topic, limit, ttl, after: None, max_bytes: usize::MAX }
    }
}

/// What is kept of one topic: its position and its last records, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The last kept record's position (offset 0 before the first).
    pub position: Position,
    /// `(offset, bytes)` of the records, oldest first.
    pub records: Vec<(u64, Arc<[u8]>)>,
}

/// A loop's reads, on their way to the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// The asking loop, which gets the answer.
    pub loop_index: usize,
    /// The loop's number for this request, given back in the answer.
    pub ticket: u64,
    /// The topics to read.
    pub reads: Vec<Read>,
}

/// The answer to a [`ReadRequest`]: one result per read, in order; `None`
/// where it could not be read (the uplink's store is unreachable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAnswer {
    /// The request's ticket.
    pub ticket: u64,
    /// What each read found.
    pub results: Vec<Option<Kept>>,
}

/// A change to the members of a topic that an uplink keeps for this node
/// (the application's presence): every node's members of a topic can be
/// read on any node, and a node's members vanish within the uplink's bound
/// once that node stops refreshing them (it died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// `member` is in `topic`, described by `value` (the application's text).
    Add {
        /// The topic.
        topic: Topic,
        /// The member's id, unique in the cluster.
        member: String,
        /// What is said of it.
        value: String,
    },
    /// `member` left `topic`.
    Remove {
        /// The topic.
        topic: Topic,
        /// The member's id.
        member: String,
    },
}

/// A loop's read of a topic's members on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersRequest {
    /// The asking loop, which gets the answer.
    pub loop_index: usize,
    /// The loop's number for this request, given back in the answer.
    pub ticket: u64,
    /// The topic.
    pub topic: Topic,
    /// Most members listed (0: only their number).
    pub limit: usize,
}

/// The answer to a [`MembersRequest`]: `(member, value)` of the members
/// listed, by member id, and how many there are in all; `None` when they
/// could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersAnswer {
    /// The request's ticket.
    pub ticket: u64,
    /// The members listed, and the number of members.
    pub members: Option<(Vec<(String, String)>, usize)>,
}
