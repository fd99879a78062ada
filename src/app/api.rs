//! The backend's HTTP API: publish, broadcast, disconnect a user, list topics.
//!
//! | Call | Body | Answer |
//! |---|---|---|
//! | `POST /publish/{topic}` | a JSON value, or UTF-8 text (published as a JSON string) | `{"recipients":N}` |
//! | `POST /api/broadcast` | `{"topics":["a","b"],"data":<any JSON>}` | `{"recipients":N}` |
//! | `POST /api/disconnect` | `{"user":"<sub>"}` | `{"sessions":N}`: that user's sessions on every node are closed with 4003 |
//! | `GET /api/topics` | | `{"topics":[{"topic":"a","subscribers":N},...]}`: topics with subscribers on this node |
//! | `GET /api/presence/{topic}` | | `{"topic":"a","clients":[{"client":"...","user":"...","since":N}]}` (404 `no_presence` where the namespace keeps none) |
//! | `GET /api/history/{topic}?limit=N` | | `{"topic":"a","offset":41,"epoch":"k3f9","publications":[{"offset":41,"data":...}]}` (404 `no_history` where the namespace keeps none) |
//!
//! Every call wants the API key (`Authorization: Bearer KEY`) when one is
//! configured, and is answered only on loopback (and not through a proxy)
//! when none is. Errors are JSON too: `{"type":"error","code":"...","message":"..."}`,
//! with the codes `unauthorized` (401), `forbidden` (403), `bad_request`
//! (400), `method_not_allowed` (405) and `not_found` (404). Counts
//! (`recipients`, `sessions`, `subscribers`) are this node's; in a cluster
//! the other nodes act on the call too but are not counted.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::confirm::{published_body, Ack, Published};
use super::presence::write_clients;
use super::pubsub::NO_HISTORY;
use super::pubsub_protocol::{write_history, write_json_string, ProtocolLimits};
use super::routes::{App, Member};
use super::topics;
use crate::proto::handshake::{write_response, StatusCode};
use crate::proto::CloseCode;
use crate::runtime::{Context, HttpRequest, HttpResponse, SessionId};

/// The close code of a session ended by `POST /api/disconnect` (private use, RFC 6455 §7.4.2).
pub const DISCONNECTED: CloseCode = CloseCode(4003);

/// A call of the backend's API, named by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Call<'a> {
    /// `POST /publish/{topic}`.
    Publish(&'a str),
    /// `/api/{name}`.
    Api(&'a str),
    /// `GET /api/history/{topic}`.
    History(&'a str),
    /// `GET /api/presence/{topic}`.
    Presence(&'a str),
}

impl Call<'_> {
    fn name(&self) -> &str {
        match self {
            Self::Publish(_) => "publish",
            Self::History(_) => "history",
            Self::Presence(_) => "presence",
            Self::Api(name @ ("broadcast" | "disconnect" | "topics")) => name,
            Self::Api(_) => "other",
        }
    }
}

/// An answer of the API: its status and JSON body, or `later` (it comes
/// through [`respond_later`](App::respond_later)).
struct Answer {
    status: StatusCode,
    body: String,
    later: bool,
}

impl Answer {
    fn new(status: StatusCode, body: String) -> Self {
        Self { status, body, later: false }
    }

    fn ok(body: String) -> Self {
        Self::new(StatusCode::OK, body)
    }

    /// The answer of a publish: its recipients on this node, and `"kept":false`
    /// where a topic with history did not keep it.
    fn published(published: &Published) -> Self {
        if published.appends > 0 {
            return Self { status: StatusCode::OK, body: String::new(), later: true };
        }
        Self::ok(published_body(published.recipients, published.unkept))
    }

    fn error(status: StatusCode, code: &str, message: &str) -> Self {
        let mut body = String::from(r#"{"type":"error","code":""#);
        body.push_str(code);
        body.push_str(r#"","message":"#);
        write_json_string(&mut body, message);
        body.push('}');
        Self::new(status, body)
    }

    fn bad_request(message: &str) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

#[derive(Deserialize)]
struct Broadcast<'a> {
    #[serde(borrow)]
    topics: Vec<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct Disconnect<'a> {
    #[serde(borrow)]
    user: std::borrow::Cow<'a, str>,
}

impl App {
    /// Answers a call of the backend's API, counting it by call and status.
    pub(super) fn backend_api(
        &mut self,
        ctx: &mut Context<'_, Member>,
        request: &HttpRequest<'_>,
        call: &Call<'_>,
    ) -> HttpResponse {
        if let Some(later) = self.answer_later(ctx, request, call) {
            return later;
        }
        let answer = self.answer(ctx, request, call);
        if answer.later {
            return HttpResponse::later();
        }
        let Answer { status, body, .. } = answer;
        self.count_call(call.name(), status);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            let allow = if matches!(call, Call::Api("topics") | Call::History(_) | Call::Presence(_)) {
                "GET, HEAD"
            } else {
                "POST"
            };
            let mut bytes = Vec::new();
            // The Allow value is one of two constants: a valid field.
            let _ = write_response(status, "application/json", &[("Allow", allow)], body.as_bytes(), &mut bytes);
            return HttpResponse::from_bytes(bytes);
        }
        HttpResponse::new(status, "application/json", body.as_bytes())
    }

    fn count_call(&self, call: &str, status: StatusCode) {
        if let Ok(mut calls) = self.api_calls.lock() {
            *calls.entry((call.to_owned(), status.as_u16())).or_default() += 1;
        }
    }

    /// Starts the calls a clustered node answers once Redis did (history
    /// and presence kept there); `None` for every other call.
    fn answer_later(
        &mut self,
        ctx: &mut Context<'_, Member>,
        request: &HttpRequest<'_>,
        call: &Call<'_>,
    ) -> Option<HttpResponse> {
        let get = request.method() == "GET" || request.method() == "HEAD";
        if !get || !ctx.keeps_records() || self.authorize(request).is_err() {
            return None;
        }
        match call {
            Call::History(topic) if self.kept_through_uplink(ctx, topic).is_some() => {
                self.read_for_http(ctx, request.id(), topic, Later::History(query_limit(request)));
            }
            Call::Presence(topic) if self.config.namespaces.of(topic).presence => {
                self.read_for_http(ctx, request.id(), topic, Later::Presence);
            }
            _ => return None,
        }
        Some(HttpResponse::later())
    }

    /// Sends the answer of a call started by [`answer_later`](Self::answer_later), counting it.
    pub(super) fn respond_later(
        &self,
        ctx: &mut Context<'_, Member>,
        id: SessionId,
        call: &str,
        status: StatusCode,
        body: &str,
    ) {
        self.count_call(call, status);
        let _ = ctx.respond(id, HttpResponse::new(status, "application/json", body.as_bytes()));
    }

    fn answer(&mut self, ctx: &mut Context<'_, Member>, request: &HttpRequest<'_>, call: &Call<'_>) -> Answer {
        if let Err(refused) = self.authorize(request) {
            return refused;
        }
        let post = request.method() == "POST";
        let get = request.method() == "GET" || request.method() == "HEAD";
        let limits = &self.config.protocol_limits;
        match call {
            Call::Publish(_) | Call::Api("broadcast" | "disconnect") if !post => {
                Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this call takes POST")
            }
            Call::Api("topics") | Call::History(_) | Call::Presence(_) if !get => {
                Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this call takes GET")
            }
            Call::Publish(topic) => {
                // A JSON body is published as is; other UTF-8 text as a JSON string.
                let body = request.body();
                let data = match serde_json::from_slice::<Box<RawValue>>(body) {
                    Ok(raw) => raw,
                    Err(_) => {
                        match std::str::from_utf8(body).ok().and_then(|t| serde_json::value::to_raw_value(t).ok()) {
                            Some(raw) => raw,
                            None => return Answer::bad_request("the body must be JSON or UTF-8 text"),
                        }
                    }
                };
                let published = self.publish_all(ctx, [*topic], &data, None, true);
                self.ack_when_kept(Ack::Http { request: request.id(), call: "publish" }, &published);
                Answer::published(&published)
            }
            Call::Api("broadcast") => {
                let Ok(broadcast) = serde_json::from_slice::<Broadcast<'_>>(request.body()) else {
                    return Answer::bad_request(r#"the body must be {"topics":["..."],"data":<JSON>}"#);
                };
                if let Err(answer) = check_topics(&broadcast.topics, limits) {
                    return answer;
                }
                let topics = broadcast.topics.iter().enumerate();
                let once = topics.filter(|(i, topic)| !broadcast.topics[..*i].contains(topic)).map(|(_, t)| &**t);
                let published = self.publish_all(ctx, once, broadcast.data, None, true);
                self.ack_when_kept(Ack::Http { request: request.id(), call: "broadcast" }, &published);
                Answer::published(&published)
            }
            Call::Api("disconnect") => {
                let Ok(disconnect) = serde_json::from_slice::<Disconnect<'_>>(request.body()) else {
                    return Answer::bad_request(r#"the body must be {"user":"..."}"#);
                };
                if disconnect.user.is_empty() || disconnect.user.len() > 1024 {
                    return Answer::bad_request("a user id is 1 to 1024 bytes");
                }
                let key = topics::user_key(&disconnect.user);
                let sessions = ctx.close_subscribers(&key, DISCONNECTED, "disconnected").unwrap_or(0);
                Answer::ok(format!(r#"{{"sessions":{sessions}}}"#))
            }
            Call::Api("topics") => Answer::ok(topic_list(ctx)),
            Call::History(topic) => {
                let limit = query_limit(request);
                match self.history_of(topic, limit, ctx.now()) {
                    None => Answer::error(StatusCode::NOT_FOUND, "no_history", NO_HISTORY),
                    Some((position, publications)) => {
                        let mut body = String::new();
                        let kept = publications.iter().map(|p| (p.offset, &*p.data));
                        write_history(&mut body, None, topic, (position.offset, position.epoch.as_str()), kept);
                        Answer::ok(body)
                    }
                }
            }
            Call::Presence(topic) => {
                if !self.config.namespaces.of(topic).presence {
                    return Answer::error(
                        StatusCode::NOT_FOUND,
                        "no_presence",
                        "the topic's namespace keeps no presence",
                    );
                }
                let mut body = String::from(r#"{"topic":"#);
                write_json_string(&mut body, topic);
                body.push(',');
                write_clients(&mut body, &self.presence.clients(topic));
                body.push('}');
                Answer::ok(body)
            }
            Call::Api(_) => Answer::error(StatusCode::NOT_FOUND, "not_found", "no such call"),
        }
    }

    /// The API key when one is set; otherwise loopback only, and nothing a proxy forwards.
    fn authorize(&self, request: &HttpRequest<'_>) -> Result<(), Answer> {
        match &self.config.api_key {
            Some(key) => {
                let given = request.request().headers().get("Authorization").unwrap_or_default();
                let expected = format!("Bearer {key}");
                if !constant_time_eq(given, expected.as_bytes()) {
                    return Err(Answer::error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong API key"));
                }
            }
            // A proxy on this host makes every client look local; what it
            // forwards is not treated as local.
            None if !request.peer_addr().ip().is_loopback() || is_forwarded(request) => {
                let reason = "the API needs an API key off loopback";
                return Err(Answer::error(StatusCode::FORBIDDEN, "forbidden", reason));
            }
            None => {}
        }
        Ok(())
    }
}

fn check_topics(topics: &[std::borrow::Cow<'_, str>], limits: &ProtocolLimits) -> Result<(), Answer> {
    if topics.is_empty() || topics.len() > limits.max_topics_per_request {
        let max = limits.max_topics_per_request;
        return Err(Answer::bad_request(&format!("a broadcast names 1 to {max} topics")));
    }
    for topic in topics {
        limits.check_topic(topic).map_err(|e| Answer::bad_request(&e.message))?;
    }
    Ok(())
}

/// `{"topics":[{"topic":"a","subscribers":N},...]}`, by name, for the topics
/// with room members or `/pubsub` subscribers on this node.
fn topic_list(ctx: &Context<'_, Member>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (key, subscribers) in ctx.node_topics() {
        if let Some(name) = topics::name_of_key(&key) {
            *counts.entry(name.to_owned()).or_default() += subscribers;
        }
    }
    let mut body = String::from(r#"{"topics":["#);
    for (i, (name, subscribers)) in counts.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"topic":"#);
        write_json_string(&mut body, name);
        body.push_str(&format!(r#","subscribers":{subscribers}}}"#));
    }
    body.push_str("]}");
    body
}

/// Whether a proxy forwarded the request (RFC 7239 `Forwarded`, or the common `X-Forwarded-For`).
fn is_forwarded(request: &HttpRequest<'_>) -> bool {
    let headers = request.request().headers();
    headers.get("Forwarded").is_some() || headers.get("X-Forwarded-For").is_some()
}

/// Compares without stopping at the first difference, so the time taken does
/// not tell an attacker how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq(b"Bearer k", b"Bearer k"));
        assert!(!constant_time_eq(b"Bearer k", b"Bearer x"));
        assert!(!constant_time_eq(b"Bearer", b"Bearer k"));
        assert!(!constant_time_eq(b"", b"k"));
    }

    #[test]
    fn errors_are_json_with_a_code() {
        let Answer { status, body, .. } = Answer::error(StatusCode::BAD_REQUEST, "bad_request", "a \"quoted\" reason");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["code"], "bad_request");
        assert_eq!(value["message"], "a \"quoted\" reason");
    }
}

/// The `limit` of a history call's query, if it has a valid one.
fn query_limit(request: &HttpRequest<'_>) -> Option<usize> {
    request
        .request()
        .query()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("limit=")).and_then(|n| n.parse().ok()))
}

/// What a call answered later reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Later {
    /// The topic's history, its last `limit` publications at most.
    History(Option<usize>),
    /// The topic's clients.
    Presence,
}

/// The JSON body of an API error.
pub(super) fn error_body(code: &str, message: &str) -> String {
    Answer::error(StatusCode::OK, code, message).body
}
