//! Server messages of the pub/sub protocol, written into a caller's buffer.
//!
//! Each `write_*` appends one JSON object to a `String` that the caller keeps
//! and clears, so that steady traffic encodes its acks and deliveries without
//! allocating; each `encode_*` returns a fresh `String` of the same text.

use std::fmt::Write as _;

use super::{Id, RequestError, Topics};

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control
/// characters escaped (RFC 8259 §7); everything else is copied as is.
pub fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain..at]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        plain = at + 1;
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

fn write_ack_head(out: &mut String, op: &str, id: Option<Id<'_>>) {
    out.push_str(r#"{"type":"ack","op":""#);
    out.push_str(op);
    out.push('"');
    if let Some(id) = id {
        out.push_str(r#","id":"#);
        out.push_str(id.as_json());
    }
}

fn write_topics(out: &mut String, topics: &Topics<'_>) {
    write_names(out, "topics", topics.iter());
}

/// Appends `,"key":["a","b"]`.
fn write_names<'n>(out: &mut String, key: &str, names: impl Iterator<Item = &'n str>) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":[");
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, name);
    }
    out.push(']');
}

/// Appends the ack of a subscribe or an unsubscribe (`op`):
/// `{"type":"ack","op":"subscribe","id":7,"topics":["a","b"]}`, `id` left out when the request had none.
pub fn write_ack_topics(out: &mut String, op: &str, id: Option<Id<'_>>, topics: &Topics<'_>) {
    write_ack_head(out, op, id);
    write_topics(out, topics);
    out.push('}');
}

/// Appends the ack of a publish: `{"type":"ack","op":"publish","id":9,"recipients":2}`.
pub fn write_ack_publish(out: &mut String, id: Option<Id<'_>>, recipients: usize) {
    write_ack_head(out, "publish", id);
    let _ = write!(out, r#","recipients":{recipients}}}"#);
}

/// Appends the ack of a publish to a topic with history that could not be
/// kept: `{"type":"ack","op":"publish","id":9,"recipients":2,"kept":false}`.
pub fn write_ack_publish_unkept(out: &mut String, id: Option<Id<'_>>, recipients: usize) {
    write_ack_publish(out, id, recipients);
    out.pop();
    out.push_str(r#","kept":false}"#);
}

/// Appends the answer to a ping: `{"type":"ack","op":"ping","id":10}`.
pub fn write_ack_ping(out: &mut String, id: Option<Id<'_>>) {
    write_ack(out, "ping", id);
}

/// Appends an ack that reports nothing but its op and id: `{"type":"ack","op":"refresh","id":3}`.
pub fn write_ack(out: &mut String, op: &str, id: Option<Id<'_>>) {
    write_ack_head(out, op, id);
    out.push('}');
}

/// Appends the ack of a refresh: `{"type":"ack","op":"refresh","id":3}`, with
/// `"unsubscribed":["a"]` when the new token no longer grants topics the session had.
pub fn write_ack_refresh(out: &mut String, id: Option<Id<'_>>, unsubscribed: &[String]) {
    write_ack_head(out, "refresh", id);
    if !unsubscribed.is_empty() {
        write_names(out, "unsubscribed", unsubscribed.iter().map(String::as_str));
    }
    out.push('}');
}

/// Appends the ack of a connect: `{"type":"ack","op":"connect","id":1,"user":"alice"}`
/// (`user` left out for an anonymous session).
pub fn write_ack_connect(out: &mut String, id: Option<Id<'_>>, user: Option<&str>) {
    write_ack_head(out, "connect", id);
    if let Some(user) = user {
        out.push_str(r#","user":"#);
        write_json_string(out, user);
    }
    out.push('}');
}

/// Appends a message for a topic's subscribers: `{"type":"message","topic":"a","data":<data_json>}`,
/// `data_json` pasted in as is (the text of one JSON value).
///
/// With a `position` (`(offset, epoch)`, for a topic that keeps history),
/// `,"offset":42,"epoch":"k3f9"` follows `data`.
pub fn write_delivery(out: &mut String, topic: &str, data_json: &str, position: Option<(u64, &str)>) {
    write_message(out, topic, data_json, position, false);
}

/// Appends a publication sent again from history to a subscriber that
/// recovers: as [`write_delivery`], with `"recovered":true` at the end.
pub fn write_recovered(out: &mut String, topic: &str, data_json: &str, offset: u64, epoch: &str) {
    write_message(out, topic, data_json, Some((offset, epoch)), true);
}

fn write_message(out: &mut String, topic: &str, data_json: &str, position: Option<(u64, &str)>, recovered: bool) {
    out.push_str(r#"{"type":"message","topic":"#);
    write_json_string(out, topic);
    out.push_str(r#","data":"#);
    out.push_str(data_json);
    if let Some((offset, epoch)) = position {
        let _ = write!(out, r#","offset":{offset},"epoch":"#);
        write_json_string(out, epoch);
    }
    if recovered {
        out.push_str(r#","recovered":true"#);
    }
    out.push('}');
}

/// A topic's position in a subscribe's ack, and for a topic the client
/// named in `since`, whether what it missed was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicPosition<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Its last publication's offset and its epoch; `None` for a topic that keeps no history.
    pub position: Option<(u64, &'a str)>,
    /// `Some(true)`: every publication after the client's position was sent;
    /// `Some(false)`: not (the epoch changed, or they are no longer kept).
    pub recovered: Option<bool>,
}

/// A place in a topic's stream, as an ack writes it: the last publication's offset and the epoch.
pub trait StreamPosition {
    /// The offset and the epoch.
    fn offset_epoch(&self) -> (u64, &str);
}

impl<'a> TopicPosition<'a> {
    /// The positions of a subscribe's ack from `(topic, position, recovered)`
    /// answers, a position `None` for a topic that keeps no history.
    pub fn list<T: AsRef<str>, P: StreamPosition>(answers: &'a [(T, Option<P>, Option<bool>)]) -> Vec<Self> {
        answers
            .iter()
            .map(|(topic, position, recovered)| TopicPosition {
                topic: topic.as_ref(),
                position: position.as_ref().map(StreamPosition::offset_epoch),
                recovered: *recovered,
            })
            .collect()
    }
}

/// Appends the ack of a subscribe: `{"type":"ack","op":"subscribe","id":1,"topics":["a"],
/// "positions":{"a":{"offset":41,"epoch":"k3f9"}},"recovered":{"a":true}}`, `positions` for
/// the topics that keep history and `recovered` for those named in `since` (each left out when empty).
pub fn write_ack_subscribe(out: &mut String, id: Option<Id<'_>>, topics: &Topics<'_>, positions: &[TopicPosition<'_>]) {
    write_ack_head(out, "subscribe", id);
    write_topics(out, topics);
    let mut kept = positions.iter().filter_map(|p| p.position.map(|at| (p.topic, at))).peekable();
    if kept.peek().is_some() {
        out.push_str(r#","positions":{"#);
        for (i, (topic, (offset, epoch))) in kept.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(out, topic);
            let _ = write!(out, r#":{{"offset":{offset},"epoch":"#);
            write_json_string(out, epoch);
            out.push('}');
        }
        out.push('}');
    }
    let mut recovered = positions.iter().filter_map(|p| p.recovered.map(|r| (p.topic, r))).peekable();
    if recovered.peek().is_some() {
        out.push_str(r#","recovered":{"#);
        for (i, (topic, done)) in recovered.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(out, topic);
            let _ = write!(out, ":{done}");
        }
        out.push('}');
    }
    out.push('}');
}

/// Appends the start of an answer about a topic, without its closing brace:
/// `{"type":"presence","id":3,"topic":"a"`.
pub fn write_answer_head(out: &mut String, kind: &str, id: Option<Id<'_>>, topic: &str) {
    out.push_str(r#"{"type":""#);
    out.push_str(kind);
    out.push('"');
    if let Some(id) = id {
        out.push_str(r#","id":"#);
        out.push_str(id.as_json());
    }
    out.push_str(r#","topic":"#);
    write_json_string(out, topic);
}

/// Appends a topic's history: `{"type":"history","id":7,"topic":"a","offset":41,"epoch":"k3f9",
/// "publications":[{"offset":40,"data":...},{"offset":41,"data":...}]}`, oldest first
/// (`type` and `id` left out with `answer: false`, for the HTTP API).
pub fn write_history<'d>(
    out: &mut String,
    answer: Option<Option<Id<'_>>>,
    topic: &str,
    position: (u64, &str),
    publications: impl Iterator<Item = (u64, &'d str)>,
) {
    out.push('{');
    if let Some(id) = answer {
        out.push_str(r#""type":"history","#);
        if let Some(id) = id {
            out.push_str(r#""id":"#);
            out.push_str(id.as_json());
            out.push(',');
        }
    }
    out.push_str(r#""topic":"#);
    write_json_string(out, topic);
    let _ = write!(out, r#","offset":{},"epoch":"#, position.0);
    write_json_string(out, position.1);
    out.push_str(r#","publications":["#);
    for (i, (offset, data)) in publications.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"offset":{offset},"data":{data}}}"#);
    }
    out.push_str("]}");
}

/// Appends an error message: `{"type":"error","id":9,"code":"bad_topic","message":"..."}`.
pub fn write_error(out: &mut String, error: &RequestError<'_>) {
    out.push_str(r#"{"type":"error""#);
    if let Some(id) = error.id {
        out.push_str(r#","id":"#);
        out.push_str(id.as_json());
    }
    out.push_str(r#","code":""#);
    out.push_str(error.code.as_str());
    out.push_str(r#"","message":"#);
    write_json_string(out, &error.message);
    out.push('}');
}

fn encoded(write: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    write(&mut out);
    out
}

/// The ack of a subscribe: `{"type":"ack","op":"subscribe","id":7,"topics":["a","b"]}`
/// (`id` left out when the request had none).
#[must_use]
pub fn encode_ack_subscribe(id: Option<Id<'_>>, topics: &Topics<'_>) -> String {
    encoded(|out| write_ack_subscribe(out, id, topics, &[]))
}

/// The ack of an unsubscribe: `{"type":"ack","op":"unsubscribe","id":8,"topics":["a"]}`.
#[must_use]
pub fn encode_ack_unsubscribe(id: Option<Id<'_>>, topics: &Topics<'_>) -> String {
    encoded(|out| write_ack_topics(out, "unsubscribe", id, topics))
}

/// The ack of a publish: `{"type":"ack","op":"publish","id":9,"recipients":2}`, where
/// `recipients` counts the subscribers of this node, on all its loops, the
/// message was sent to (see [`Context::publish`](crate::runtime::Context::publish)).
#[must_use]
pub fn encode_ack_publish(id: Option<Id<'_>>, recipients: usize) -> String {
    encoded(|out| write_ack_publish(out, id, recipients))
}

/// The answer to a ping: `{"type":"ack","op":"ping","id":10}`.
#[must_use]
pub fn encode_ack_ping(id: Option<Id<'_>>) -> String {
    encoded(|out| write_ack_ping(out, id))
}

/// A message for a topic's subscribers: `{"type":"message","topic":"a","data":<data_json>}`.
///
/// `data_json` is pasted in as is, not parsed or re-serialised: pass the text of one JSON
/// value, such as `data.get()` from [`Request::Publish`](super::Request::Publish). Encode once
/// per topic and share the result among the subscribers.
#[must_use]
pub fn encode_delivery(topic: &str, data_json: &str) -> String {
    encoded(|out| write_delivery(out, topic, data_json, None))
}

/// An error message: `{"type":"error","id":9,"code":"bad_topic","message":"..."}`
/// (`id` left out when it could not be read).
#[must_use]
pub fn encode_error(error: &RequestError<'_>) -> String {
    encoded(|out| write_error(out, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_read_back_as_the_text() {
        for text in ["", "plain", "quote \" backslash \\ slash /", "\n\r\t\u{0}\u{1f}\u{7f}", "café 😀", "\u{2028}"]
        {
            let mut out = String::new();
            write_json_string(&mut out, text);
            let back: String = serde_json::from_str(&out).expect("valid JSON");
            assert_eq!(back, text, "{out}");
            assert!(!out[1..out.len() - 1].bytes().any(|b| b < 0x20), "{out}");
        }
    }

    #[test]
    fn writers_append_to_what_is_there() {
        let mut out = String::from("x");
        write_ack_ping(&mut out, None);
        write_delivery(&mut out, "t\"", "1", None);
        assert_eq!(out, r#"x{"type":"ack","op":"ping"}{"type":"message","topic":"t\"","data":1}"#);
        out.clear();
        write_delivery(&mut out, "t", "[2]", Some((42, "k3f9")));
        assert_eq!(out, r#"{"type":"message","topic":"t","data":[2],"offset":42,"epoch":"k3f9"}"#);
    }
}
