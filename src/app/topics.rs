//! One topic space: a room `/rooms/NAME`, the `/pubsub` topic `NAME` and
//! `POST /publish/NAME` all reach the topic `NAME`.
//!
//! Its subscribers want it in two forms, so each topic is two topics of the
//! engine, and a publish goes to both, each frame encoded once:
//!
//! - `room/NAME`, the room's members: the bare text (a room member's message
//!   as sent; published JSON data as its text, a JSON string unquoted);
//! - `topic/NAME`, the `/pubsub` subscribers: `{"type":"message","topic":"NAME","data":...}`
//!   (a room member's text as a JSON string).
//!
//! Binary messages of a room member go to the room's members only: JSON has
//! no form for bytes. Across loops and nodes each form travels as it does for
//! any publish (so a cluster's Redis carries both channels, `room/NAME` and
//! `topic/NAME`, of a topic that is published to).

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::history::{Store, Streams};
use super::pubsub_protocol::{write_delivery, write_json_string, ProtocolLimits};
use crate::runtime::{Context, Message, SessionId};

/// The engine topic of a room's members.
pub(super) fn room_key(out: &mut String, name: &str) {
    out.clear();
    out.push_str("room/");
    out.push_str(name);
}

/// The engine topic of a topic's `/pubsub` subscribers.
pub(super) fn subscriber_key(out: &mut String, name: &str) {
    out.clear();
    out.push_str("topic/");
    out.push_str(name);
}

/// The engine topic of a user's sessions (the `sub` of their token), which
/// `POST /api/disconnect` closes.
pub(super) fn user_key(user: &str) -> String {
    format!("user/{user}")
}

/// The topic name of an engine topic of the topic space (`room/NAME`,
/// `topic/NAME`); `None` for the others (a user's sessions).
pub(super) fn name_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("room/").or_else(|| key.strip_prefix("topic/"))
}

/// The subscribers of the topic `name` on this node, both forms together,
/// from a count of the engine's topics (`Context::subscribers`, `Upgrade::subscribers`).
pub(super) fn subscribers(name: &str, count: impl Fn(&str) -> usize) -> usize {
    let mut key = String::new();
    room_key(&mut key, name);
    let members = count(&key);
    subscriber_key(&mut key, name);
    members + count(&key)
}

/// What is published to a topic.
#[derive(Debug, Clone, Copy)]
pub(super) enum Payload<'a> {
    /// A room member's text message.
    Text(&'a str),
    /// A room member's binary message: for the room's members only.
    Binary(&'a [u8]),
    /// A JSON value (a `/pubsub` or HTTP publish).
    Json(&'a RawValue),
}

/// Publishes to topics in both forms, with buffers kept between publishes so
/// that steady traffic allocates nothing. One per loop (the application's
/// handler is cloned into each).
#[derive(Debug, Default)]
pub(super) struct Publisher {
    key: String,
    /// The published value's JSON text.
    data: String,
    /// The message for `/pubsub` subscribers.
    text: String,
}

impl Clone for Publisher {
    /// A fresh publisher: buffers are per loop, never shared.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Publisher {
    /// Publishes `payload` to the topic `name` on every loop and node,
    /// leaving out `exclude`; returns the recipients on this node.
    ///
    /// With `history`, the publication is kept in the topic's stream and its
    /// JSON form carries its position; the streams stay locked until both
    /// forms are handed to the loops, so that every loop gets the topic's
    /// publications in the order of their offsets.
    pub(super) fn publish<S>(
        &mut self,
        ctx: &mut Context<'_, S>,
        name: &str,
        payload: Payload<'_>,
        exclude: Option<SessionId>,
        history: Option<History<'_>>,
    ) -> usize {
        let Self { key, data, text } = self;
        data.clear();
        if let Payload::Binary(bytes) = payload {
            room_key(key, name);
            return publish_in_order(ctx, key, Message::Binary(bytes), exclude, history.map(|h| h.streams));
        }
        // The lock, when the topic keeps history: held to the end.
        let mut store = history.as_ref().map(|h| h.streams.lock());
        let numbered = match (&history, store.as_deref_mut()) {
            (Some(h), Some(store)) => {
                write_data(data, payload);
                Some(h.streams.append(store, name, data, h.size, h.ttl, ctx.now()))
            }
            _ => None,
        };
        let (position, seq) = (numbered.map(|(p, _)| p), numbered.map(|(_, seq)| seq));
        room_key(key, name);
        let mut recipients = match payload {
            Payload::Json(value) => send(ctx, key, Message::Text(&json_as_text(value)), exclude, seq),
            Payload::Text(message) => send(ctx, key, Message::Text(message), exclude, seq),
            Payload::Binary(_) => 0,
        };
        subscriber_key(key, name);
        // The `/pubsub` form only where someone reads it (a room's traffic, mostly).
        if seq.is_none() && !ctx.has_readers(key) {
            return recipients;
        }
        if data.is_empty() {
            write_data(data, payload);
        }
        text.clear();
        write_delivery(text, name, data, position.as_ref().map(|p| (p.offset, p.epoch.as_str())));
        recipients += send(ctx, key, Message::Text(text), exclude, seq);
        drop(store);
        recipients
    }
}

/// Writes the `data` JSON of a publication: a room member's text as a JSON string.
fn write_data(data: &mut String, payload: Payload<'_>) {
    match payload {
        Payload::Text(message) => write_json_string(data, message),
        Payload::Json(value) => data.push_str(value.get()),
        Payload::Binary(_) => {}
    }
}

/// Publishes to the engine topic `key`; with `streams` (the topic keeps
/// history), numbered in the node's order like its kept publications, so
/// that a subscriber gets everything of the topic in the order it was
/// published (a room member's binary messages, join and leave events).
pub(super) fn publish_in_order<S>(
    ctx: &mut Context<'_, S>,
    key: &str,
    message: Message<'_>,
    exclude: Option<SessionId>,
    streams: Option<&Streams>,
) -> usize {
    let mut store = streams.map(Streams::lock);
    let seq = store.as_deref_mut().map(Store::number);
    send(ctx, key, message, exclude, seq)
}

/// A numbered publication (`seq`: its number in the node's order, [`Store::number`])
/// goes to every loop through its channel, so that each takes them in that order.
fn send<S>(
    ctx: &mut Context<'_, S>,
    key: &str,
    message: Message<'_>,
    exclude: Option<SessionId>,
    seq: Option<u64>,
) -> usize {
    match seq {
        Some(seq) => ctx.publish_numbered(key, message, exclude, seq),
        None => ctx.publish(key, message, exclude),
    }
}

/// A topic's history settings and this node's streams, for a publish that keeps it.
#[derive(Debug, Clone, Copy)]
pub(super) struct History<'a> {
    pub(super) streams: &'a Streams,
    pub(super) size: usize,
    pub(super) ttl: std::time::Duration,
}

/// What a room member receives of published JSON: a string's text, any other value's JSON text.
pub(super) fn json_as_text(data: &RawValue) -> Cow<'_, str> {
    let json = data.get();
    if json.starts_with('"') {
        // Borrowed when the string has no escapes to undo.
        if let Ok(text) = serde_json::from_str::<&str>(json) {
            return Cow::Borrowed(text);
        }
        if let Ok(text) = serde_json::from_str::<String>(json) {
            return Cow::Owned(text);
        }
    }
    Cow::Borrowed(json)
}

/// The topic a path segment names (`/rooms/{name}`, `/publish/{topic}`):
/// percent-decoded (RFC 3986 §2.1), UTF-8, and a valid topic name by the
/// pub/sub protocol's rule. `None` otherwise.
pub(super) fn topic_from_segment<'p>(segment: &'p str, limits: &ProtocolLimits) -> Option<Cow<'p, str>> {
    let name = if segment.contains('%') {
        // A name that decodes longer than the limit fails the check below; bound the work first.
        if segment.len() > limits.max_topic_len.saturating_mul(3) {
            return None;
        }
        let bytes = segment.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
        Cow::Owned(String::from_utf8(decoded).ok()?)
    } else {
        Cow::Borrowed(segment)
    };
    limits.check_topic(&name).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_to_topic_names() {
        fn name(segment: &str) -> Option<String> {
            topic_from_segment(segment, &ProtocolLimits::default()).map(Cow::into_owned)
        }
        assert_eq!(name("lobby").as_deref(), Some("lobby"));
        assert_eq!(name("chat:lobby").as_deref(), Some("chat:lobby"));
        assert_eq!(name("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(name("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(name("%20x%20").as_deref(), Some(" x "));
        for bad in ["", "%", "%2", "%zz", "%C3", "a%0Ab", "%7F", "%FF"] {
            assert_eq!(name(bad), None, "{bad}");
        }
        assert!(name(&"x".repeat(256)).is_some());
        assert_eq!(name(&"x".repeat(257)), None);
        assert_eq!(name(&"%41".repeat(257)), None);
    }

    #[test]
    fn published_json_reaches_room_members_as_text() {
        let text = |json: &str| json_as_text(serde_json::from_str::<&RawValue>(json).unwrap()).into_owned();
        assert_eq!(text(r#""hello""#), "hello");
        assert_eq!(text(r#""say \"hi\"\n""#), "say \"hi\"\n");
        assert_eq!(text(r#"{"a": 1}"#), r#"{"a": 1}"#);
        assert_eq!(text("42"), "42");
        assert_eq!(text("null"), "null");
        // A lone surrogate has no text form: passed on as its JSON.
        assert_eq!(text(r#""\ud800""#), r#""\ud800""#);
    }
}
