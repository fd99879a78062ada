//! The server binary's application: URL paths mapped to built-in handlers
//! by a [routing table](RouteSpec). The default table:
//!
//! | Path | What |
//! |---|---|
//! | `GET /` | the demo chat page |
//! | `/echo` (WebSocket) | echo |
//! | `/rooms/{name}` (WebSocket) | a room: each message goes to every member |
//! | `/pubsub` (WebSocket) | the JSON pub/sub protocol |
//! | `POST /publish/{topic}` | publish the body to a topic |
//! | `GET /metrics` | metrics in the Prometheus text format |
//! | `GET /healthz` | 200 while accepting (with the cluster's state when in one), 503 while draining |
//!
//! A room `NAME`, the `/pubsub` topic `NAME` and `POST /publish/NAME` are one
//! topic: see [`topics`](super::topics).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::api::Call;
use super::history::Streams;
use super::identity::{AuthSettings, Identity, IdentityError, User};
use super::namespaces::Namespaces;
use super::presence::Presence;
use super::pubsub::TOKEN_EXPIRED;
use super::pubsub_protocol::{self as protocol, ProtocolLimits};
use super::route_table::{RouteHandler, RouteSpec};
use super::topics::{self, topic_from_segment, History, Payload, Publisher};
use crate::prometheus::{self, Kind, TextEncoder};
use crate::proto::handshake::StatusCode;
use crate::proto::CloseCode;
use crate::runtime::{
    Appended, Context, Decision, Handler, HttpRequest, HttpResponse, MembersAnswer, Message, ReadAnswer, Record,
    SessionId, Upgrade,
};

/// The demo page, embedded in the binary.
const DEMO_PAGE: &str = include_str!("demo.html");

/// Settings of the built-in handlers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// The routing table (default: [`RouteSpec::defaults`]); the first match wins.
    pub routes: Vec<RouteSpec>,
    /// The key `POST /publish/{topic}` requires as `Authorization: Bearer KEY`.
    /// Without one, the publish API answers only clients on loopback.
    pub api_key: Option<String>,
    /// Limits of the JSON pub/sub protocol.
    pub protocol_limits: ProtocolLimits,
    /// The default namespace's options and the configured namespaces.
    pub namespaces: Namespaces,
    /// The token settings; with a key, sessions need tokens where namespaces are not anonymous.
    pub auth: AuthSettings,
    /// Most bytes of history on this node, all topics together; past it the
    /// topics published to least recently lose theirs (default 64 MiB).
    pub history_max_bytes: usize,
    /// How long a `/pubsub` session opened without a token has to send its
    /// first message, when a key is configured (the handshake timeout).
    pub connect_timeout: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            routes: RouteSpec::defaults(),
            api_key: None,
            protocol_limits: ProtocolLimits::default(),
            namespaces: Namespaces::default(),
            auth: AuthSettings::default(),
            connect_timeout: Duration::from_secs(10),
            history_max_bytes: 64 << 20,
        }
    }
}

/// What a path leads to; topic names are percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route<'a> {
    Demo,
    Echo,
    Room { name: Cow<'a, str>, echo_to_sender: bool },
    PubSub,
    Publish(Cow<'a, str>),
    Api(&'a str),
    History(Cow<'a, str>),
    Presence(Cow<'a, str>),
    Metrics,
    Health,
    NotFound,
}

/// The first route of `table` that fits `path` (with a valid parameter: a
/// topic name by the pub/sub protocol's rule under `limits`).
fn route<'p>(table: &[RouteSpec], path: &'p str, limits: &ProtocolLimits) -> Route<'p> {
    for spec in table {
        let Some(param) = spec.matches(path) else { continue };
        let found = match spec.handler() {
            RouteHandler::Demo => Route::Demo,
            RouteHandler::Echo => Route::Echo,
            RouteHandler::Room { echo_to_sender } => match topic_from_segment(param, limits) {
                Some(name) => Route::Room { name, echo_to_sender },
                None => continue,
            },
            RouteHandler::PubSub => Route::PubSub,
            RouteHandler::Publish => match topic_from_segment(param, limits) {
                Some(name) => Route::Publish(name),
                None => continue,
            },
            RouteHandler::Api => Route::Api(param),
            RouteHandler::History => match topic_from_segment(param, limits) {
                Some(name) => Route::History(name),
                None => continue,
            },
            RouteHandler::Presence => match topic_from_segment(param, limits) {
                Some(name) => Route::Presence(name),
                None => continue,
            },
            RouteHandler::Metrics => Route::Metrics,
            RouteHandler::Health => Route::Health,
        };
        return found;
    }
    Route::NotFound
}

/// What a connection is, by the path it upgraded on.
#[derive(Debug)]
pub enum Member {
    /// `/echo`.
    Echo,
    /// `/rooms/{name}`: the room's topic, and whether its messages come back to their sender.
    Room {
        /// The room's topic name (behind a thin pointer: every member's state stays small).
        name: Arc<String>,
        /// Whether a member's message comes back to that member too.
        echo_to_sender: bool,
        /// Who the member is, when it showed a token.
        user: Option<User>,
    },
    /// `/pubsub`.
    PubSub {
        /// Who the session is, once it showed a token.
        user: Option<User>,
        /// Whether its first message came (a `connect` may only be the first).
        greeted: bool,
    },
}

/// The built-in handlers behind one routing table.
///
/// Clones share the configuration and the application's counters, so one
/// `App` cloned into every loop counts for the whole server.
#[derive(Debug, Clone, Default)]
pub struct App {
    pub(super) config: Arc<AppConfig>,
    /// Backend API calls by call and response status.
    pub(super) api_calls: Arc<Mutex<BTreeMap<(String, u16), u64>>>,
    /// The keys in use and the authentication counts, shared by every loop.
    pub(super) identity: Arc<Identity>,
    /// The topics' streams (positions and history), shared by every loop.
    pub(super) streams: Arc<Streams>,
    /// Who is in each topic that keeps presence, shared by every loop.
    pub(super) presence: Arc<Presence>,
    /// This node's prefix of client ids, drawn at start.
    pub(super) node: Arc<str>,
    /// The loop's own buffers (a clone starts empty).
    pub(super) publisher: Publisher,
    pub(super) reply: Reply,
    /// The loop's reads and cursors of history kept through the uplink.
    pub(super) kept: super::kept::KeptState,
    /// Publish acks waiting for the cluster's store.
    pub(super) confirming: super::confirm::Confirming,
}

/// What a publish to one topic did.
#[derive(Debug, Clone, Copy)]
pub(super) struct TopicPublished {
    /// Its recipients on this node.
    pub(super) recipients: usize,
    /// Whether the topic has history and could not keep it.
    pub(super) unkept: bool,
    /// Whether the cluster's store will answer whether it kept it
    /// (under the publish's ticket).
    pub(super) confirming: bool,
}

/// The buffer a pub/sub reply is written into, kept between replies; a clone starts empty.
#[derive(Debug, Default)]
pub(super) struct Reply(pub(super) String);

impl Clone for Reply {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl App {
    /// The application with `config`. Keys that cannot be loaded are logged,
    /// and then every token is refused (the door stays shut rather than open);
    /// [`try_new`](Self::try_new) reports them instead.
    #[must_use]
    pub fn new(config: AppConfig) -> Self {
        let identity = Identity::load(&config.auth).unwrap_or_else(|e| {
            log::error!("{e}: every session token will be refused");
            Identity::unloaded(&config.auth)
        });
        Self::with_identity(config, identity)
    }

    /// The application with `config`, its keys loaded.
    ///
    /// # Errors
    ///
    /// A key that cannot be read or is refused, or a key in a build without the `jwt` feature.
    pub fn try_new(config: AppConfig) -> Result<Self, IdentityError> {
        let identity = Identity::load(&config.auth)?;
        Ok(Self::with_identity(config, identity))
    }

    fn with_identity(config: AppConfig, identity: Identity) -> Self {
        let streams = Arc::new(Streams::new(config.history_max_bytes));
        let mut random = [0u8; 4];
        // Without the OS's randomness the node's prefix only has to differ between nodes that log together.
        if getrandom::fill(&mut random).is_err() {
            random = std::process::id().to_le_bytes();
        }
        let node = random.iter().map(|b| format!("{b:02x}")).collect::<String>().into();
        Self { config: Arc::new(config), identity: Arc::new(identity), streams, node, ..Self::default() }
    }

    /// Publishes `payload` to `topic` in both forms, keeping it in the
    /// topic's stream when its namespace has history; returns the recipients
    /// on this node and whether it was kept. With a `confirm` ticket, a
    /// publication kept through the uplink is answered in
    /// [`on_appended_answer`](Self::on_appended_answer).
    pub(super) fn publish(
        &mut self,
        ctx: &mut Context<'_, Member>,
        topic: &str,
        payload: Payload<'_>,
        exclude: Option<SessionId>,
        confirm: Option<u64>,
    ) -> TopicPublished {
        if let Some(keep) = self.kept_through_uplink(ctx, topic) {
            if let Some(recipients) = self.append_publication(ctx, topic, payload, exclude, keep, confirm) {
                return TopicPublished { recipients, unkept: false, confirming: confirm.is_some() };
            }
            // The cluster's store is unreachable: this node's subscribers still get it.
            let recipients = self.publisher.publish(ctx, topic, payload, exclude, None);
            return TopicPublished { recipients, unkept: true, confirming: false };
        }
        let options = self.config.namespaces.of(topic);
        let history = (options.history_size > 0).then_some(History {
            streams: &self.streams,
            size: options.history_size,
            ttl: options.history_ttl,
        });
        let recipients = self.publisher.publish(ctx, topic, payload, exclude, history);
        TopicPublished { recipients, unkept: false, confirming: false }
    }

    /// The keys in use, shared by every clone: [`Identity::reload`] reads them again (SIGHUP).
    #[must_use]
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// The server's metrics and the application's own, in the Prometheus text format.
    fn metrics(&self, ctx: &Context<'_, Member>) -> HttpResponse {
        let mut out = String::with_capacity(8192);
        ctx.metrics().render(&mut out);
        let mut text = TextEncoder::new(&mut out);
        let name = "ferrows_api_requests_total";
        text.family(name, Kind::Counter, "Calls of the backend's HTTP API, by call and response status.");
        if let Ok(calls) = self.api_calls.lock() {
            for ((call, status), n) in calls.iter() {
                text.sample(name, &[("call", call), ("status", &status.to_string())], *n);
            }
        }
        let history = self.streams.stats();
        let (bytes, topics) = {
            let store = self.streams.lock();
            (store.bytes(), store.topics())
        };
        let name = "ferrows_history_publications_total";
        text.family(name, Kind::Counter, "Publications kept in topic history.");
        text.sample(name, &[], history.appended.load(Ordering::Relaxed));
        let name = "ferrows_history_dropped_total";
        text.family(name, Kind::Counter, "Topic histories dropped: by the node cap (evicted) or their TTL (expired).");
        text.sample(name, &[("reason", "evicted")], history.evicted.load(Ordering::Relaxed));
        text.sample(name, &[("reason", "expired")], history.expired.load(Ordering::Relaxed));
        let name = "ferrows_history_unkept_total";
        text.family(
            name,
            Kind::Counter,
            "Publications to topics with history that the cluster's store could not keep (delivered on this node only).",
        );
        text.sample(name, &[], history.unkept.load(Ordering::Relaxed));
        let name = "ferrows_recoveries_total";
        text.family(name, Kind::Counter, "Subscribes with a position to recover from, by outcome.");
        text.sample(name, &[("result", "recovered")], history.recovered.load(Ordering::Relaxed));
        text.sample(name, &[("result", "not_recovered")], history.not_recovered.load(Ordering::Relaxed));
        text.family("ferrows_history_bytes", Kind::Gauge, "Bytes of topic history held on this node.");
        text.sample("ferrows_history_bytes", &[], bytes as u64);
        text.family("ferrows_history_topics", Kind::Gauge, "Topics with a history stream on this node.");
        text.sample("ferrows_history_topics", &[], topics as u64);
        text.family(
            "ferrows_presence_entries",
            Kind::Gauge,
            "Clients recorded in topics that keep presence, on this node.",
        );
        text.sample("ferrows_presence_entries", &[], self.presence.entries() as u64);
        let name = "ferrows_auth_total";
        text.family(name, Kind::Counter, "Session authentication outcomes (token checks and grant checks), by result.");
        for (result, n) in self.identity.outcomes() {
            text.sample(name, &[("result", result)], n);
        }
        HttpResponse::new(StatusCode::OK, prometheus::CONTENT_TYPE, out.as_bytes())
    }
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut bytes = Vec::new();
    let _ = crate::proto::handshake::write_error_response_with_headers(
        StatusCode::METHOD_NOT_ALLOWED,
        &[("Allow", allow)],
        "method not allowed",
        &mut bytes,
    );
    HttpResponse::from_bytes(bytes)
}

impl Handler for App {
    type State = Member;

    fn upgrade(&mut self, request: &Upgrade<'_>) -> Decision<Member> {
        match route(&self.config.routes, request.path(), &self.config.protocol_limits) {
            Route::Echo => Decision::accept(Member::Echo),
            Route::Room { name, echo_to_sender } => self.admit_to_room(request, &name, echo_to_sender),
            Route::PubSub => self.admit_to_pubsub(request),
            Route::Demo
            | Route::Publish(_)
            | Route::Api(_)
            | Route::History(_)
            | Route::Presence(_)
            | Route::Metrics
            | Route::Health
            | Route::NotFound => Decision::refuse(StatusCode::NOT_FOUND, "no WebSocket service at this path"),
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_, Member>, session: SessionId) {
        let (room, user, greeted) = match ctx.state(session) {
            Some(Member::Room { name, user, .. }) => (Some(name.clone()), user.clone(), true),
            Some(Member::PubSub { user, greeted }) => (None, user.clone(), *greeted),
            _ => return,
        };
        if let Some(name) = &room {
            let mut key = String::new();
            topics::room_key(&mut key, name);
            let _ = ctx.subscribe(session, &key);
            if self.kept_through_uplink(ctx, name).is_some() {
                super::kept::stream_key(&mut key, name);
                let _ = ctx.subscribe(session, &key);
            }
        }
        if let Some(name) = &room {
            self.joined(ctx, session, name, user.as_ref());
        }
        if let Some(user) = user {
            self.sign_in(ctx, session, user);
        } else if !greeted {
            // A key is configured and no token came: the first message must come in time.
            let deadline = ctx.now() + self.config.connect_timeout;
            let _ = ctx.close_at(session, Some(deadline), TOKEN_EXPIRED, "no token");
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, message: Message<'_>) {
        let (room, echo_to_sender) = match ctx.state(session) {
            Some(Member::Echo) => {
                let _ = match message {
                    Message::Text(text) => ctx.send_text(session, text),
                    Message::Binary(data) => ctx.send_binary(session, data),
                };
                return;
            }
            Some(Member::Room { name, echo_to_sender, user }) => {
                if !self.may_publish(user.as_ref(), name) {
                    // RFC 6455 §7.4.1: 1008, a message against the endpoint's policy.
                    let _ = ctx.close(session, CloseCode::POLICY_VIOLATION, "this member may not publish here");
                    return;
                }
                (name.clone(), *echo_to_sender)
            }
            Some(Member::PubSub { .. }) => {
                match message {
                    Message::Text(text) => self.pubsub_request(ctx, session, text),
                    Message::Binary(_) => {
                        let mut reply = std::mem::take(&mut self.reply.0);
                        reply.clear();
                        protocol::write_error(&mut reply, &protocol::not_text_error());
                        let _ = ctx.send_text(session, &reply);
                        self.reply.0 = reply;
                    }
                }
                return;
            }
            None => return,
        };
        let exclude = (!echo_to_sender).then_some(session);
        let payload = match message {
            Message::Text(text) => Payload::Text(text),
            Message::Binary(data) => Payload::Binary(data),
        };
        self.publish(ctx, &room, payload, exclude, None);
    }

    fn on_close(&mut self, ctx: &mut Context<'_, Member>, session: SessionId, _code: CloseCode, _reason: &str) {
        self.leave_all(ctx, session);
        self.forget_kept(session);
    }

    fn on_record(&mut self, ctx: &mut Context<'_, Member>, record: &Record, exclude: Option<SessionId>) {
        self.on_kept_record(ctx, record, exclude);
    }

    fn on_read(&mut self, ctx: &mut Context<'_, Member>, answer: ReadAnswer) {
        self.on_read_answer(ctx, answer);
    }

    fn on_members(&mut self, ctx: &mut Context<'_, Member>, answer: MembersAnswer) {
        self.on_members_answer(ctx, answer);
    }

    fn on_appended(&mut self, ctx: &mut Context<'_, Member>, answer: Appended) {
        self.on_appended_answer(ctx, answer);
    }

    fn on_http(&mut self, ctx: &mut Context<'_, Member>, request: &HttpRequest<'_>) -> HttpResponse {
        let get = request.method() == "GET" || request.method() == "HEAD";
        match route(&self.config.routes, request.path(), &self.config.protocol_limits) {
            Route::Demo if get => HttpResponse::new(StatusCode::OK, "text/html; charset=utf-8", DEMO_PAGE.as_bytes()),
            Route::Metrics if get => self.metrics(ctx),
            Route::Health if get && ctx.is_draining() => {
                HttpResponse::text(StatusCode::SERVICE_UNAVAILABLE, "draining")
            }
            // Redis down does not stop this node serving its own clients: still 200.
            // The uplink's line (the cluster's: `cluster: up` or `down`) below the verdict.
            Route::Health if get => match ctx.uplink_health() {
                None => HttpResponse::text(StatusCode::OK, "ok"),
                Some(line) => {
                    let body = format!("ok\n{line}\n");
                    HttpResponse::new(StatusCode::OK, "text/plain; charset=utf-8", body.as_bytes())
                }
            },
            Route::Demo | Route::Metrics | Route::Health => method_not_allowed("GET, HEAD"),
            Route::Publish(topic) => self.backend_api(ctx, request, &Call::Publish(&topic)),
            Route::Api(call) => self.backend_api(ctx, request, &Call::Api(call)),
            Route::History(topic) => self.backend_api(ctx, request, &Call::History(&topic)),
            Route::Presence(topic) => self.backend_api(ctx, request, &Call::Presence(&topic)),
            Route::Echo | Route::Room { .. } | Route::PubSub => {
                HttpResponse::text(StatusCode::UPGRADE_REQUIRED, "this path speaks WebSocket")
            }
            Route::NotFound => HttpResponse::text(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, echo_to_sender: bool) -> Route<'_> {
        Route::Room { name: Cow::Borrowed(name), echo_to_sender }
    }

    #[test]
    fn routes() {
        let table = RouteSpec::defaults();
        let limits = ProtocolLimits::default();
        let route = |path| route(&table, path, &limits);
        assert_eq!(route("/"), Route::Demo);
        assert_eq!(route("/echo"), Route::Echo);
        assert_eq!(route("/rooms/lobby-1_a"), room("lobby-1_a", true));
        // A room is named as a topic is: any name the pub/sub protocol takes, percent-decoded.
        assert_eq!(route("/rooms/chat:lobby"), room("chat:lobby", true));
        assert_eq!(route("/rooms/a%20b%2Fc"), room("a b/c", true));
        assert_eq!(route("/rooms/"), Route::NotFound);
        assert_eq!(route("/rooms/a/b"), Route::NotFound);
        assert_eq!(route("/rooms/a%0Ab"), Route::NotFound);
        assert_eq!(route("/rooms/%zz"), Route::NotFound);
        let long = format!("/rooms/{}", "x".repeat(257));
        assert_eq!(route(&long), Route::NotFound);
        assert_eq!(route("/pubsub"), Route::PubSub);
        assert_eq!(route("/publish/news"), Route::Publish("news".into()));
        assert_eq!(route("/publish/caf%C3%A9"), Route::Publish("café".into()));
        assert_eq!(route("/publish/"), Route::NotFound);
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/elsewhere"), Route::NotFound);
    }

    #[test]
    fn the_first_matching_route_wins() {
        let table: Vec<RouteSpec> = ["/chat/{name} = room echo_to_sender=false", "/chat/{x} = room"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let limits = ProtocolLimits::default();
        assert_eq!(route(&table, "/chat/a", &limits), room("a", false));
        assert_eq!(route(&table, "/echo", &limits), Route::NotFound);
    }
}
