//! What the server binary runs on top of the engine.
//!
//! [`App`] is one [`Handler`](crate::runtime::Handler) that serves the routing
//! table of [`AppConfig`]: each entry ([`RouteSpec`]) maps a path to a built-in
//! [`RouteHandler`]. The binary's default table:
//!
//! | Route | What |
//! |---|---|
//! | `/ = demo` | `GET`: a small chat page (embedded in the binary) that joins a room and shows its messages live |
//! | `/echo = echo` | WebSocket: every message comes back ([`Echo`]) |
//! | `/rooms/{name} = room` | WebSocket (a topic name, percent-decoded): every message a member sends goes to all members and to the topic's `/pubsub` subscribers; `echo_to_sender=false` leaves the sender out |
//! | `/pubsub = pubsub` | WebSocket: the JSON pub/sub protocol below |
//! | `/publish/{topic} = publish` | `POST`: publishes the body to the topic (its `/pubsub` subscribers and its room's members), a JSON body as is, other UTF-8 text as a JSON string; answers `{"recipients":N}` |
//! | `/api/{call} = api` | the backend's HTTP API: `POST /api/broadcast`, `POST /api/disconnect`, `GET /api/topics` |
//! | `/metrics = metrics` | `GET`: the metrics in the Prometheus text format |
//! | `/healthz = health` | `GET`: 200 `ok` while the server accepts sessions, 503 `draining` during a graceful shutdown |
//!
//! Rooms, `/pubsub` subscriptions and the publish API are three ways into one
//! topic space: the room `/rooms/NAME`, the `/pubsub` topic `NAME` and
//! `POST /publish/NAME` are the same topic `NAME`. A room member's text reaches
//! the topic's subscribers as `{"type":"message","topic":"NAME","data":"<the text>"}`;
//! a published value reaches the room's members as a text frame (a JSON string
//! unquoted, other JSON as its text). Binary messages of a room member stay in
//! the room. How each topic maps onto the runtime's topics is described in
//! `src/app/topics.rs`. The plain HTTP answers, the publish API's
//! authorisation and the configuration keys are described in `docs/http.md`.
//!
//! # The pub/sub protocol
//!
//! On `/pubsub`, clients speak a small JSON protocol: one JSON object per text
//! message. Parsing and encoding live in [`pubsub_protocol`].
//!
//! | Request | Meaning |
//! |---|---|
//! | `{"op":"subscribe","topics":["a","b"],"id":1}` | receive messages published to these topics |
//! | `{"op":"unsubscribe","topics":["a"],"id":2}` | stop receiving them |
//! | `{"op":"publish","topic":"a","data":<any JSON>,"id":3}` | send `data` to the topic's subscribers |
//! | `{"op":"ping","id":4}` | application-level liveness check |
//! | `{"op":"connect","token":"<JWT>","id":5}` | who the client is, as its first message (see `docs/auth.md`) |
//! | `{"op":"refresh","token":"<JWT>","id":6}` | a new token for the same user, before the old one expires |
//! | `{"op":"history","topic":"a","limit":20,"id":7}` | the topic's position and last publications, where its namespace keeps history |
//! | `{"op":"presence","topic":"a","id":9}`, `{"op":"presence_count",...}` | who subscribes to the topic, or how many, where its namespace keeps presence |
//! | `{"op":"subscribe","topic":"a","since":{"a":{"offset":41,"epoch":"..."}},"id":8}` | subscribe, first sending again what was published after that position (see `docs/history.md`) |
//!
//! - `id` is optional: any JSON number or string, echoed back verbatim in the reply.
//! - `topics` (a list) or `topic` (one name) is accepted by subscribe, unsubscribe and publish.
//!   A topic name is a non-empty string of at most 256 bytes without control characters. A
//!   request names at most 64 topics. Duplicates are collapsed. (Both limits are settings:
//!   `limits.max_topic_len`, `limits.max_topics_per_request`.)
//! - `publish` takes `"exclude_self": true` so the publisher doesn't receive its own message.
//! - Subscribers receive `{"type":"message","topic":"a","data":...}`, with
//!   `"offset":N,"epoch":"..."` after `data` where the topic's namespace keeps history.
//! - `data` is delivered byte for byte as sent: key order, whitespace and big numbers are kept.
//! - Unknown fields are ignored, and a field set to `null` counts as absent (except `data`).
//! - Errors don't close the connection. Codes: `bad_json`, `unknown_op`, `missing_topic`,
//!   `bad_topic`, `too_many_topics`, `missing_data`, `forbidden`, `topic_full`,
//!   `unauthorized`, `no_history`, and `not_text` for binary messages.
//!
//! # What `recipients` counts
//!
//! The `recipients` of a publish acknowledgement, like the `{"recipients":N}`
//! of `POST /publish/{topic}`, counts the subscribers on every event loop of
//! this node that the message was sent to; a subscriber on the publishing loop
//! whose output queue was full is not counted. It is node-local: in a cluster,
//! subscribers on other nodes get the message but are not counted.
//!
//! A complete session is in the README; an example:
//!
//! ```text
//! > {"op":"subscribe","topics":["news","alerts","news"],"id":1}
//! < {"type":"ack","op":"subscribe","id":1,"topics":["news","alerts"]}
//! > {"op":"publish","topic":"news","data":{"title": "hello"},"id":"p-1"}
//! < {"type":"message","topic":"news","data":{"title": "hello"}}
//! < {"type":"ack","op":"publish","id":"p-1","recipients":1}
//! ```

mod access;
mod api;
/// Who a connection is: the JWT verifier of the identity layer (pure: keys in, claims out).
#[cfg(feature = "jwt")]
pub mod auth;
mod confirm;
mod echo;
mod history;
mod identity;
mod joining;
mod kept;
mod namespaces;
mod presence;
mod pubsub;
pub mod pubsub_protocol;
mod route_table;
mod routes;
mod topics;

pub use echo::Echo;
pub use identity::{AuthSettings, Identity, IdentityError};
pub use namespaces::{Namespace, NamespaceError, NamespaceOptions, Namespaces};
pub use route_table::{RouteError, RouteHandler, RouteSpec};
pub use routes::{App, AppConfig, Member};
