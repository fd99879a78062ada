//! The JSON pub/sub protocol spoken by the `pubsub` handler: parsing of client
//! requests and encoding of server messages.
//!
//! This module is pure: text in, typed values out, and typed values in, JSON
//! text out. It never touches a socket or the topic tables, so the handler only
//! acts on a [`Request`] and sends the strings built here.
//!
//! Every client request is one JSON object in one text message:
//!
//! | request | reply |
//! |---|---|
//! | `{"op":"subscribe","topics":["a","b"],"id":7}` | `{"type":"ack","op":"subscribe","id":7,"topics":["a","b"]}` |
//! | `{"op":"unsubscribe","topics":["a"],"id":8}` | `{"type":"ack","op":"unsubscribe","id":8,"topics":["a"]}` |
//! | `{"op":"publish","topic":"a","data":{"x":1},"id":9}` | `{"type":"ack","op":"publish","id":9,"recipients":2}` |
//! | `{"op":"ping","id":10}` | `{"type":"ack","op":"ping","id":10}` |
//!
//! Subscribers of a topic receive `{"type":"message","topic":"a","data":{"x":1}}`, where
//! `data` is the published value's text, byte for byte. A request that cannot be served is
//! answered with `{"type":"error","id":9,"code":"missing_topic","message":"..."}`.
//!
//! Rules:
//!
//! - `id` is optional, a JSON number or string, and echoed verbatim (`1.0e3` stays `1.0e3`).
//! - `subscribe`, `unsubscribe` and `publish` name their topics with `"topics": [..]` or a
//!   single `"topic": ".."`. A topic name is a non-empty string of at most
//!   [`ProtocolLimits::max_topic_len`] bytes without control characters; a request names at
//!   most [`ProtocolLimits::max_topics_per_request`] of them (counted as sent). Duplicates
//!   are collapsed, keeping the order of first occurrence.
//! - `publish` requires `data` (any JSON value, `null` included) and accepts
//!   `"exclude_self": true` to skip the publisher's own subscription.
//! - Unknown fields are ignored, so newer clients keep working; an unknown `op` is an error.
//!   A field set to `null` counts as absent, except `data`.
//!
//! ```
//! use ferrows::app::pubsub_protocol::{encode_ack_publish, encode_delivery, parse_request, ProtocolLimits, Request};
//!
//! let text = r#"{"op":"publish","topic":"news","data":{"b": 2, "a": 1},"id":"p-1"}"#;
//! let Ok(Request::Publish { id, topics, data, exclude_self }) = parse_request(text, &ProtocolLimits::default()) else {
//!     panic!("a valid publish");
//! };
//! assert_eq!(topics.iter().collect::<Vec<_>>(), ["news"]);
//! assert!(!exclude_self);
//! // The payload is encoded once and sent to every subscriber as is.
//! assert_eq!(encode_delivery("news", data.get()), r#"{"type":"message","topic":"news","data":{"b": 2, "a": 1}}"#);
//! assert_eq!(encode_ack_publish(id, 3), r#"{"type":"ack","op":"publish","id":"p-1","recipients":3}"#);
//! ```
//!
//! The server writes its messages with the `write_*` functions into buffers
//! it keeps, and parses without copying: a publish of one topic whose strings
//! have no escapes allocates nothing.

mod encode;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use encode::{
    encode_ack_ping, encode_ack_publish, encode_ack_subscribe, encode_ack_unsubscribe, encode_delivery, encode_error,
    write_ack, write_ack_connect, write_ack_ping, write_ack_publish, write_ack_publish_unkept, write_ack_refresh,
    write_ack_subscribe, write_ack_topics, write_answer_head, write_delivery, write_error, write_history,
    write_json_string, write_recovered, StreamPosition, TopicPosition,
};

/// Limits on what one request may ask for. The caller sets them; the parser checks them
/// before it copies a topic name.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolLimits {
    /// The most topics one request may name, duplicates included (default 64).
    /// Over it: [`ErrorCode::TooManyTopics`].
    pub max_topics_per_request: usize,
    /// The longest topic name accepted, in bytes of UTF-8 (default 256).
    /// Over it: [`ErrorCode::BadTopic`].
    pub max_topic_len: usize,
}

impl Default for ProtocolLimits {
    fn default() -> Self {
        Self { max_topics_per_request: 64, max_topic_len: 256 }
    }
}

impl ProtocolLimits {
    /// Checks a topic name, wherever it comes from (a request, a room's path,
    /// the publish API's path): non-empty, at most
    /// [`max_topic_len`](Self::max_topic_len) bytes, no control characters.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::BadTopic`], with what is wrong (never the name itself).
    pub fn check_topic(&self, name: &str) -> Result<(), RequestError<'static>> {
        let max = self.max_topic_len;
        if name.is_empty() {
            Err(RequestError::new(ErrorCode::BadTopic, "a topic name must not be empty"))
        } else if name.len() > max {
            Err(RequestError::new(ErrorCode::BadTopic, format!("a topic name may be at most {max} bytes long")))
        } else if name.chars().any(char::is_control) {
            Err(RequestError::new(ErrorCode::BadTopic, "a topic name must not contain control characters"))
        } else {
            Ok(())
        }
    }
}

/// A request's `id`: a JSON number or string chosen by the client, kept as its original
/// JSON text (borrowed from the request) and echoed back verbatim in the reply.
#[derive(Debug, Clone, Copy)]
pub struct Id<'a>(&'a RawValue);

impl<'a> Id<'a> {
    /// Reads an id from its JSON text: `Some` for a number or a string, `None` otherwise.
    ///
    /// ```
    /// use ferrows::app::pubsub_protocol::Id;
    ///
    /// assert_eq!(Id::from_json("12345678901234567890").unwrap().as_json(), "12345678901234567890");
    /// assert_eq!(Id::from_json(r#""a\u0041""#).unwrap().as_json(), r#""a\u0041""#);
    /// assert!(Id::from_json("null").is_none());
    /// ```
    #[must_use]
    pub fn from_json(text: &'a str) -> Option<Self> {
        let raw: &RawValue = serde_json::from_str(text).ok()?;
        Self::from_raw(raw).ok().flatten()
    }

    /// `Ok(None)` for `null`, an error for anything but a number or a string.
    fn from_raw(raw: &'a RawValue) -> Result<Option<Self>, RequestError<'a>> {
        match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Ok(Some(Self(raw))),
            _ if raw.get() == "null" => Ok(None),
            _ => Err(RequestError::new(ErrorCode::BadJson, "`id` must be a number or a string")),
        }
    }

    /// The id's JSON text, exactly as the client wrote it (a string id keeps its quotes and escapes).
    #[must_use]
    pub fn as_json(&self) -> &'a str {
        self.0.get()
    }
}

impl PartialEq for Id<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for Id<'_> {}

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

/// The topics a request names: non-empty, checked, without duplicates, in
/// the order first named. A name without escapes is borrowed from the
/// request's text, and the first is held inline: a request that names one
/// topic (most publishes) allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics<'a> {
    first: Option<Cow<'a, str>>,
    rest: Vec<Cow<'a, str>>,
}

impl<'a> Topics<'a> {
    /// The names, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.first.iter().chain(&self.rest).map(|name| &**name)
    }

    /// Names already checked (a request's, kept while its answer waits).
    #[must_use]
    pub fn from_names(names: &'a [String]) -> Self {
        let mut topics = Self::default();
        for name in names {
            topics.push(Cow::Borrowed(name));
        }
        topics
    }

    /// How many names.
    #[must_use]
    pub fn len(&self) -> usize {
        self.first.as_ref().map_or(0, |_| 1 + self.rest.len())
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push(&mut self, name: Cow<'a, str>) {
        if self.first.is_none() {
            self.first = Some(name);
        } else {
            self.rest.push(name);
        }
    }

    /// Drops repeated names, keeping the first occurrence of each.
    fn dedup(&mut self) {
        let Some(first) = &self.first else { return };
        if self.rest.len() < 16 {
            // Few names: compared pairwise, with no set to allocate.
            let mut kept: Vec<Cow<'a, str>> = Vec::new();
            for name in std::mem::take(&mut self.rest) {
                if name != *first && !kept.contains(&name) {
                    kept.push(name);
                }
            }
            self.rest = kept;
        } else {
            let mut seen = HashSet::with_capacity(self.rest.len() + 1);
            seen.insert(first.to_string());
            self.rest.retain(|name| seen.insert(name.to_string()));
        }
    }
}

impl FromIterator<String> for Topics<'_> {
    fn from_iter<I: IntoIterator<Item = String>>(names: I) -> Self {
        let mut topics = Self::default();
        for name in names {
            topics.push(Cow::Owned(name));
        }
        topics
    }
}

impl From<Vec<String>> for Topics<'_> {
    fn from(names: Vec<String>) -> Self {
        names.into_iter().collect()
    }
}

impl<'a> FromIterator<&'a str> for Topics<'a> {
    fn from_iter<I: IntoIterator<Item = &'a str>>(names: I) -> Self {
        let mut topics = Self::default();
        for name in names {
            topics.push(Cow::Borrowed(name));
        }
        topics
    }
}

/// A client's request, parsed and checked against the [`ProtocolLimits`], borrowing from the
/// request's text.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// `{"op":"subscribe","topics":[..]}`: add the sender to these topics.
    Subscribe {
        /// Echoed in the ack.
        id: Option<Id<'a>>,
        /// The topics.
        topics: Topics<'a>,
        /// `"since":{"a":{"offset":41,"epoch":"k3f9"}}`: where the client
        /// left topics it subscribed to before, to recover what it missed.
        since: Since<'a>,
    },
    /// `{"op":"unsubscribe","topics":[..]}`: remove the sender from these topics.
    Unsubscribe {
        /// Echoed in the ack.
        id: Option<Id<'a>>,
        /// The topics.
        topics: Topics<'a>,
    },
    /// `{"op":"publish","topics":[..],"data":..}`: deliver `data` to these topics' subscribers.
    Publish {
        /// Echoed in the ack.
        id: Option<Id<'a>>,
        /// The topics.
        topics: Topics<'a>,
        /// The published value's JSON text, byte for byte as the client sent it; pass
        /// `data.get()` to [`encode_delivery`].
        data: &'a RawValue,
        /// Whether the publisher itself is skipped when it subscribes to a topic (default false).
        exclude_self: bool,
    },
    /// `{"op":"ping"}`: an application-level liveness check, answered by [`encode_ack_ping`].
    Ping {
        /// Echoed in the ack.
        id: Option<Id<'a>>,
    },
    /// `{"op":"connect","token":"<JWT>"}`: who the client is, as its first
    /// message (`token` left out: anonymous).
    Connect {
        /// Echoed in the ack.
        id: Option<Id<'a>>,
        /// The token, if any.
        token: Option<Token<'a>>,
    },
    /// `{"op":"refresh","token":"<JWT>"}`: a new token for the same user, before the old one expires.
    Refresh {
        /// Echoed in the ack.
        id: Option<Id<'a>>,
        /// The new token.
        token: Token<'a>,
    },
    /// `{"op":"history","topic":"chat:x","limit":20}`: a topic's position and
    /// its last `limit` kept publications (all kept, without `limit`).
    History {
        /// Echoed in the answer.
        id: Option<Id<'a>>,
        /// The topic.
        topic: Cow<'a, str>,
        /// The most publications wanted.
        limit: Option<usize>,
    },
    /// `{"op":"presence","topic":"chat:x"}`: who subscribes to a topic that keeps presence.
    Presence {
        /// Echoed in the answer.
        id: Option<Id<'a>>,
        /// The topic.
        topic: Cow<'a, str>,
    },
    /// `{"op":"presence_count","topic":"chat:x"}`: how many subscribe to it.
    PresenceCount {
        /// Echoed in the answer.
        id: Option<Id<'a>>,
        /// The topic.
        topic: Cow<'a, str>,
    },
}

impl<'a> Request<'a> {
    /// The request's id, if it carried one.
    #[must_use]
    pub fn id(&self) -> Option<Id<'a>> {
        match self {
            Self::Subscribe { id, .. }
            | Self::Unsubscribe { id, .. }
            | Self::Publish { id, .. }
            | Self::Ping { id }
            | Self::Connect { id, .. }
            | Self::Refresh { id, .. }
            | Self::History { id, .. }
            | Self::Presence { id, .. }
            | Self::PresenceCount { id, .. } => *id,
        }
    }
}

impl PartialEq for Request<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Subscribe { id, topics, since }, Self::Subscribe { id: id2, topics: topics2, since: since2 }) => {
                id == id2 && topics == topics2 && since == since2
            }
            (Self::Unsubscribe { id, topics }, Self::Unsubscribe { id: id2, topics: topics2 }) => {
                id == id2 && topics == topics2
            }
            (
                Self::Publish { id, topics, data, exclude_self },
                Self::Publish { id: id2, topics: topics2, data: data2, exclude_self: exclude_self2 },
            ) => id == id2 && topics == topics2 && data.get() == data2.get() && exclude_self == exclude_self2,
            (Self::Ping { id }, Self::Ping { id: id2 }) => id == id2,
            (Self::Connect { id, token }, Self::Connect { id: id2, token: token2 }) => id == id2 && token == token2,
            (Self::Refresh { id, token }, Self::Refresh { id: id2, token: token2 }) => id == id2 && token == token2,
            (Self::History { id, topic, limit }, Self::History { id: id2, topic: topic2, limit: limit2 }) => {
                id == id2 && topic == topic2 && limit == limit2
            }
            (Self::Presence { id, topic }, Self::Presence { id: id2, topic: topic2 })
            | (Self::PresenceCount { id, topic }, Self::PresenceCount { id: id2, topic: topic2 }) => {
                id == id2 && topic == topic2
            }
            _ => false,
        }
    }
}

impl Eq for Request<'_> {}

/// Why a request was refused: the `code` field of an error message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `bad_json`: not JSON, not a JSON object, or a field of the wrong type.
    BadJson,
    /// `unknown_op`: `op` missing, not a string, or not one of the known operations.
    UnknownOp,
    /// `missing_topic`: no `topics` or `topic`, or an empty `topics` list.
    MissingTopic,
    /// `bad_topic`: a topic that is not a string, is empty, too long, or holds a control character;
    /// or both `topic` and `topics` given.
    BadTopic,
    /// `too_many_topics`: more topics than [`ProtocolLimits::max_topics_per_request`].
    TooManyTopics,
    /// `not_text`: a binary message; requests are JSON text.
    NotText,
    /// `missing_data`: a publish without `data`.
    MissingData,
    /// `forbidden`: the client may not do this to this topic (its namespace
    /// takes no publishes from clients, or its token grants no such right).
    Forbidden,
    /// `topic_full`: the topic has as many subscribers on this node as its namespace allows.
    TopicFull,
    /// `unauthorized`: a token that is missing, invalid or expired (`connect`, `refresh`).
    Unauthorized,
    /// `no_history`: a history request for a topic whose namespace keeps none.
    NoHistory,
    /// `no_presence`: a presence request for a topic whose namespace keeps none.
    NoPresence,
    /// `too_many_reads`: the session has as many subscribes and history
    /// requests waiting for the cluster's store as it may.
    TooManyReads,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::UnknownOp => "unknown_op",
            Self::MissingTopic => "missing_topic",
            Self::BadTopic => "bad_topic",
            Self::TooManyTopics => "too_many_topics",
            Self::NotText => "not_text",
            Self::MissingData => "missing_data",
            Self::Forbidden => "forbidden",
            Self::TopicFull => "topic_full",
            Self::Unauthorized => "unauthorized",
            Self::NoHistory => "no_history",
            Self::NoPresence => "no_presence",
            Self::TooManyReads => "too_many_reads",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the pub/sub protocol refuses (not an RFC 6455 violation: the connection stays
/// open). Sent back to the client with [`encode_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError<'a> {
    /// The request's id, when it could be read.
    pub id: Option<Id<'a>>,
    /// What was wrong, for programs.
    pub code: ErrorCode,
    /// What was wrong, for people. It never quotes the client's input.
    pub message: Cow<'static, str>,
}

impl<'a> RequestError<'a> {
    /// An error without an id.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { id: None, code, message: message.into() }
    }

    /// The same error, answering the request with this id.
    #[must_use]
    pub fn with_id<'b>(self, id: Option<Id<'b>>) -> RequestError<'b> {
        RequestError { id, code: self.code, message: self.message }
    }
}

impl fmt::Display for RequestError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RequestError<'_> {}

/// The error that answers a binary message.
#[must_use]
pub fn not_text_error() -> RequestError<'static> {
    RequestError::new(ErrorCode::NotText, "requests are JSON objects sent as text messages")
}

/// The fields this protocol reads, each kept as raw JSON so that a field of the wrong type is
/// reported with the right code (and the id still echoed) instead of failing the whole parse.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    op: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    topics: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    exclude_self: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    token: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    limit: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
}

/// The positions a client left its topics at: `{"a":{"offset":41,"epoch":"k3f9"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Since<'a>(Vec<(Cow<'a, str>, u64, Cow<'a, str>)>);

impl Since<'_> {
    /// Where the client left `topic`: its last offset and the epoch.
    #[must_use]
    pub fn get(&self, topic: &str) -> Option<(u64, &str)> {
        self.0.iter().find(|(t, _, _)| t == topic).map(|(_, offset, epoch)| (*offset, &**epoch))
    }

    /// Whether no position was given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, u64, &'a str)> for Since<'a> {
    fn from_iter<I: IntoIterator<Item = (&'a str, u64, &'a str)>>(positions: I) -> Self {
        Self(positions.into_iter().map(|(t, o, e)| (Cow::Borrowed(t), o, Cow::Borrowed(e))).collect())
    }
}

#[derive(Deserialize)]
struct SincePosition<'a> {
    offset: u64,
    #[serde(borrow)]
    epoch: Cow<'a, str>,
}

/// A subscribe's `since` (absent or `null`: none).
fn parse_since(raw: Option<&RawValue>) -> Result<Since<'_>, RequestError<'static>> {
    let Some(raw) = given(raw) else { return Ok(Since::default()) };
    let positions: std::collections::BTreeMap<Cow<'_, str>, SincePosition<'_>> = serde_json::from_str(raw.get())
        .map_err(|_| {
            RequestError::new(ErrorCode::BadJson, "`since` must map topics to {\"offset\":N,\"epoch\":\"...\"}")
        })?;
    Ok(Since(positions.into_iter().map(|(topic, p)| (topic, p.offset, p.epoch)).collect()))
}

/// `Some` for every field present, `null` included (a plain `Option` would read `null` as
/// absent, and `"data": null` is a value to publish).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// A field that is absent or `null`.
fn given(field: Option<&RawValue>) -> Option<&RawValue> {
    field.filter(|raw| raw.get() != "null")
}

/// Parses one client request, borrowing from `text`.
///
/// Never panics, and runs in time linear in `text`: nesting in `data` or in ignored fields is
/// skipped without recursion. The error carries the request's id when the id could be read.
/// A request whose strings have no escapes is parsed without allocating.
pub fn parse_request<'a>(text: &'a str, limits: &ProtocolLimits) -> Result<Request<'a>, RequestError<'a>> {
    // A struct would also deserialize from a JSON array, positionally; only an object is a request.
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(RequestError::new(ErrorCode::BadJson, "a request must be a JSON object"));
    }
    // serde_json's message gives a line and column, never the input itself.
    let envelope: Envelope<'a> =
        serde_json::from_str(text).map_err(|e| RequestError::new(ErrorCode::BadJson, format!("invalid JSON: {e}")))?;
    let id = match envelope.id {
        Some(raw) => Id::from_raw(raw)?,
        None => None,
    };
    let request = match parse_op(envelope.op) {
        Ok(Op::Ping) => Ok(Request::Ping { id }),
        Ok(Op::Connect) => parse_token(envelope.token).map(|token| Request::Connect { id, token }),
        Ok(Op::History) => parse_history(&envelope, limits).map(|(topic, limit)| Request::History { id, topic, limit }),
        Ok(Op::Presence) => parse_one_topic(&envelope, limits).map(|topic| Request::Presence { id, topic }),
        Ok(Op::PresenceCount) => parse_one_topic(&envelope, limits).map(|topic| Request::PresenceCount { id, topic }),
        Ok(Op::Refresh) => match parse_token(envelope.token) {
            Ok(Some(token)) => Ok(Request::Refresh { id, token }),
            Ok(None) => Err(RequestError::new(ErrorCode::Unauthorized, "a refresh needs `token`")),
            Err(e) => Err(e),
        },
        Ok(Op::Subscribe) => parse_topics(&envelope, limits).and_then(|topics| {
            let since = parse_since(envelope.since)?;
            // A position per topic of the request, at most.
            if since.0.len() > limits.max_topics_per_request {
                return Err(too_many_topics(limits));
            }
            Ok(Request::Subscribe { id, topics, since })
        }),
        Ok(Op::Unsubscribe) => parse_topics(&envelope, limits).map(|topics| Request::Unsubscribe { id, topics }),
        Ok(Op::Publish) => parse_publish(&envelope, limits).map(|(topics, data, exclude_self)| Request::Publish {
            id,
            topics,
            data,
            exclude_self,
        }),
        Err(e) => Err(e),
    };
    request.map_err(|e| e.with_id(id))
}

enum Op {
    Subscribe,
    Unsubscribe,
    Publish,
    Ping,
    Connect,
    Refresh,
    History,
    Presence,
    PresenceCount,
}

/// A request's one topic (`topic`).
fn parse_one_topic<'a>(envelope: &Envelope<'a>, limits: &ProtocolLimits) -> Result<Cow<'a, str>, RequestError<'a>> {
    let Some(one) = given(envelope.topic) else {
        return Err(RequestError::new(ErrorCode::MissingTopic, "this request needs `topic`"));
    };
    read_raw(one, TopicName(limits))
        .unwrap_or_else(|| Err(RequestError::new(ErrorCode::BadTopic, "`topic` must be a Unicode string")))
}

/// A history request's one topic (`topic`) and its `limit`.
fn parse_history<'a>(
    envelope: &Envelope<'a>,
    limits: &ProtocolLimits,
) -> Result<(Cow<'a, str>, Option<usize>), RequestError<'a>> {
    let topic = parse_one_topic(envelope, limits)?;
    let limit = match given(envelope.limit) {
        None => None,
        Some(raw) => Some(
            raw.get()
                .parse::<usize>()
                .map_err(|_| RequestError::new(ErrorCode::BadJson, "`limit` must be a whole number"))?,
        ),
    };
    Ok((topic, limit))
}

/// A token a request carries. `Debug` never shows it: tokens stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Token<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A `token` field: absent or a string (never quoted in an error).
fn parse_token(raw: Option<&RawValue>) -> Result<Option<Token<'_>>, RequestError<'static>> {
    let Some(raw) = given(raw) else { return Ok(None) };
    let token = match serde_json::from_str::<&str>(raw.get()) {
        Ok(token) => Cow::Borrowed(token),
        Err(_) => Cow::Owned(
            serde_json::from_str::<String>(raw.get())
                .map_err(|_| RequestError::new(ErrorCode::BadJson, "`token` must be a string"))?,
        ),
    };
    Ok(Some(Token(token)))
}

fn parse_op(raw: Option<&RawValue>) -> Result<Op, RequestError<'static>> {
    let Some(raw) = given(raw) else {
        return Err(RequestError::new(ErrorCode::UnknownOp, "missing `op`"));
    };
    let op: Cow<'_, str> = match serde_json::from_str::<&str>(raw.get()) {
        Ok(op) => Cow::Borrowed(op),
        // An op spelt with escapes (`"p\u0069ng"`) is still that op.
        Err(_) => Cow::Owned(
            serde_json::from_str::<String>(raw.get())
                .map_err(|_| RequestError::new(ErrorCode::UnknownOp, "`op` must be a string"))?,
        ),
    };
    match &*op {
        "subscribe" => Ok(Op::Subscribe),
        "unsubscribe" => Ok(Op::Unsubscribe),
        "publish" => Ok(Op::Publish),
        "ping" => Ok(Op::Ping),
        "connect" => Ok(Op::Connect),
        "refresh" => Ok(Op::Refresh),
        "history" => Ok(Op::History),
        "presence" => Ok(Op::Presence),
        "presence_count" => Ok(Op::PresenceCount),
        _ => Err(RequestError::new(
            ErrorCode::UnknownOp,
            "unknown `op`: expected subscribe, unsubscribe, publish, ping, connect, refresh, history, presence \
             or presence_count",
        )),
    }
}

type Publish<'a> = (Topics<'a>, &'a RawValue, bool);

fn parse_publish<'a>(envelope: &Envelope<'a>, limits: &ProtocolLimits) -> Result<Publish<'a>, RequestError<'a>> {
    let topics = parse_topics(envelope, limits)?;
    let Some(data) = envelope.data else {
        return Err(RequestError::new(ErrorCode::MissingData, "a publish needs `data`"));
    };
    let exclude_self = match given(envelope.exclude_self).map(RawValue::get) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(RequestError::new(ErrorCode::BadJson, "`exclude_self` must be true or false")),
    };
    Ok((topics, data, exclude_self))
}

/// The topics of a request, from `topics` or `topic`, checked and without duplicates.
fn parse_topics<'a>(envelope: &Envelope<'a>, limits: &ProtocolLimits) -> Result<Topics<'a>, RequestError<'a>> {
    let mut topics = match (given(envelope.topics), given(envelope.topic)) {
        (Some(_), Some(_)) => {
            return Err(RequestError::new(ErrorCode::BadTopic, "give either `topics` or `topic`, not both"));
        }
        (None, None) => return Err(RequestError::new(ErrorCode::MissingTopic, "missing `topics`")),
        (Some(list), None) => read_raw(list, TopicList(limits)).unwrap_or_else(|| {
            Err(RequestError::new(ErrorCode::BadTopic, "`topics` must be an array of Unicode strings"))
        })?,
        (None, Some(one)) => {
            if limits.max_topics_per_request == 0 {
                return Err(too_many_topics(limits));
            }
            let name = read_raw(one, TopicName(limits))
                .unwrap_or_else(|| Err(RequestError::new(ErrorCode::BadTopic, "`topic` must be a Unicode string")))?;
            let mut topics = Topics::default();
            topics.push(name);
            topics
        }
    };
    if topics.is_empty() {
        return Err(RequestError::new(ErrorCode::MissingTopic, "`topics` is empty"));
    }
    topics.dedup();
    Ok(topics)
}

/// Runs `seed` over a raw value's text. `None` when the value is of a type the seed refuses or
/// a string escapes a lone surrogate (`"\ud800"`, which JSON's grammar allows and a Rust
/// string cannot hold); the text is already known to be valid JSON, so nothing else fails.
fn read_raw<'de, S: DeserializeSeed<'de>>(raw: &'de RawValue, seed: S) -> Option<S::Value> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let value = seed.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(value)
}

fn too_many_topics(limits: &ProtocolLimits) -> RequestError<'static> {
    let max = limits.max_topics_per_request;
    RequestError::new(ErrorCode::TooManyTopics, format!("a request may name at most {max} topics"))
}

/// Reads an array of topic names, counting entries before copying them.
struct TopicList<'l>(&'l ProtocolLimits);

impl<'de> DeserializeSeed<'de> for TopicList<'_> {
    type Value = Result<Topics<'de>, RequestError<'static>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TopicList<'_> {
    type Value = Result<Topics<'de>, RequestError<'static>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of topic names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut topics = Topics::default();
        let outcome = loop {
            if topics.len() == self.0.max_topics_per_request {
                match seq.next_element::<IgnoredAny>()? {
                    Some(_) => break Err(too_many_topics(self.0)),
                    None => break Ok(()),
                }
            }
            match seq.next_element_seed(TopicName(self.0))? {
                Some(Ok(topic)) => topics.push(topic),
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        // serde_json refuses an array left unfinished, so skip the rest after a refusal.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(outcome.map(|()| topics))
    }
}

/// Reads one topic name, checking it before copying it (a name with escapes is copied;
/// one without is borrowed).
struct TopicName<'l>(&'l ProtocolLimits);

impl<'de> DeserializeSeed<'de> for TopicName<'_> {
    type Value = Result<Cow<'de, str>, RequestError<'static>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TopicName<'_> {
    type Value = Result<Cow<'de, str>, RequestError<'static>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a topic name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.check_topic(name).map(|()| Cow::Borrowed(name)))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.check_topic(name).map(|()| Cow::Owned(name.to_owned())))
    }
}
