//! The settings table: every setting's key, kind, default and meaning.
//!
//! Parsing of all three layers, `--help`, the environment and flag names and
//! `--print-config` are all driven by [`SETTINGS`], so adding a setting is one
//! entry here (plus the line that hands its value to the code that uses it).

/// What a setting's values look like and which of them are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number within `min..=max`.
    Count { min: u64, max: u64 },
    /// A byte size (`16MiB`, or a whole number of bytes), at least `min`.
    Size { min: u64 },
    /// A duration (`10s`, or a whole number of seconds). `0s` is refused when
    /// `nonzero`; otherwise the setting's help says what zero means.
    Duration { nonzero: bool },
    /// Free text: file paths, URLs.
    Text,
    /// A secret (a key): `--print-config` leaves it out, and the mask `***` is refused as its value.
    Secret,
    /// A URL whose password (`scheme://user:PASSWORD@host`) is a secret, as with [`Kind::Secret`].
    SecretUrl,
    /// An env_logger filter (`info`, `warn,ferrows=debug`).
    LogFilter,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A list of items (a TOML array; comma-separated in flags and the environment).
    List { item: Item, non_empty: bool },
}

/// What one entry of a list setting is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// A socket address, `127.0.0.1:9001` or `[::1]:9001`.
    Addr,
    /// An origin or origin pattern, as [`OriginPolicy::list`](crate::runtime::OriginPolicy::list) takes.
    Origin,
    /// A subprotocol name (an HTTP token).
    Token,
    /// A route, as [`RouteSpec`](crate::app::RouteSpec) parses it.
    Route,
    /// A namespace, as [`Namespace`](crate::app::Namespace) parses it (in the
    /// file, also a table: `[[namespaces]]` with `prefix` and the options).
    Namespace,
}

/// One setting of the server binary: its key in the TOML file, from which its
/// environment variable and flag are derived, its default and its meaning.
///
/// The whole table is [`settings()`](super::settings).
#[derive(Debug)]
pub struct Setting {
    key: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
}

impl Setting {
    /// The key path in the TOML file: `listen`, `limits.max_connections`.
    #[must_use]
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The environment variable: `FERROWS_` and the key, upper-cased, `.` as `_`.
    #[must_use]
    pub fn env_name(&self) -> String {
        format!("FERROWS_{}", self.key.to_ascii_uppercase().replace('.', "_"))
    }

    /// The flag: `--` and the key with `.` and `_` as `-`.
    #[must_use]
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace(['.', '_'], "-"))
    }

    /// The default in the form flags and the environment take (lists comma-separated).
    #[must_use]
    pub fn default_text(&self) -> &'static str {
        self.default
    }

    /// One line on what the setting does.
    #[must_use]
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// The section of the TOML file the key lives in (`limits`), or `None` at the top level.
    #[must_use]
    pub fn section(&self) -> Option<&'static str> {
        self.key.split_once('.').map(|(section, _)| section)
    }

    /// The key within its section (`max_connections`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.key.split_once('.').map_or(self.key, |(_, name)| name)
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
}

const fn setting(key: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Setting {
    Setting { key, kind, default, help }
}

/// Counts and sizes go into `usize` fields (`backlog` into an `i32` at the socket call);
/// sizes beyond `usize` saturate.
const ANY_COUNT: u64 = usize::MAX as u64;

const fn count(min: u64) -> Kind {
    Kind::Count { min, max: ANY_COUNT }
}

const fn size(min: u64) -> Kind {
    Kind::Size { min }
}

const DURATION: Kind = Kind::Duration { nonzero: false };
const NONZERO_DURATION: Kind = Kind::Duration { nonzero: true };

/// Every setting, top-level keys first, then section by section (the order of `--help` and `--print-config`).
pub(crate) static SETTINGS: &[Setting] = &[
    setting(
        "listen",
        Kind::List { item: Item::Addr, non_empty: true },
        "127.0.0.1:9001",
        "addresses to listen on (IPv6 as [::1]:9001)",
    ),
    setting(
        "loops",
        Kind::Count { min: 0, max: 4096 },
        "0",
        "event loops, one thread each; 0 = one per available core",
    ),
    setting("log_level", Kind::LogFilter, "info", "log filter in env_logger syntax; when unset, RUST_LOG applies"),
    setting(
        "api_key",
        Kind::Secret,
        "",
        "key POST /publish/{topic} requires as `Authorization: Bearer KEY`; empty: loopback clients only",
    ),
    setting(
        "allowed_origins",
        Kind::List { item: Item::Origin, non_empty: false },
        "",
        "origins that may open WebSocket sessions (https://host[:port], host[:port], *.host); empty: all",
    ),
    setting(
        "subprotocols",
        Kind::List { item: Item::Token, non_empty: false },
        "",
        "WebSocket subprotocols spoken, in order of preference",
    ),
    setting(
        "routes",
        Kind::List { item: Item::Route, non_empty: true },
        "/ = demo,/echo = echo,/rooms/{name} = room,/pubsub = pubsub,/publish/{topic} = publish,\
         /api/history/{topic} = history,/api/presence/{topic} = presence,/api/{call} = api,/metrics = metrics,/healthz = health",
        "routing table, entries `PATH = HANDLER [OPTION=VALUE ...]`; the first match wins",
    ),
    setting(
        "namespaces",
        Kind::List { item: Item::Namespace, non_empty: false },
        "",
        "topic namespaces, entries `PREFIX [OPTION=VALUE ...]` with the options of [topics] \
         ([[namespaces]] tables in the file); a topic takes the longest prefix it starts with",
    ),
    setting("limits.max_connections", count(1), "20000", "connections open at once over all loops; over it: 503"),
    setting("limits.max_connections_per_ip", count(0), "0", "connections open at once from one IP; 0 = no limit"),
    setting("limits.max_frame_size", size(1), "16MiB", "largest frame payload accepted; over it: close 1009"),
    setting(
        "limits.max_message_size",
        size(1),
        "16MiB",
        "largest message, all fragments together; over it: close 1009",
    ),
    setting("limits.max_fragments", count(1), "131072", "most frames one message may be split into"),
    setting("limits.max_request_head", size(1), "8KiB", "largest HTTP request head; over it: 431"),
    setting("limits.max_headers", count(1), "64", "most header fields in a request head; over it: 431"),
    setting("limits.max_http_body", size(0), "1MiB", "largest body of a plain HTTP request; over it: 413"),
    setting("limits.max_topics_per_request", count(1), "64", "most topics one pub/sub request may name"),
    setting("limits.max_topic_len", count(1), "256", "longest pub/sub topic name, in bytes"),
    setting(
        "topics.anonymous",
        Kind::Bool,
        "false",
        "default namespace: clients without a token may subscribe and join (with an auth key set)",
    ),
    setting("topics.client_publish", Kind::Bool, "true", "default namespace: clients may publish (else only the API)"),
    setting(
        "topics.max_subscribers",
        count(0),
        "0",
        "default namespace: most subscribers of one topic on this node; 0 = no limit",
    ),
    setting(
        "topics.history_size",
        count(0),
        "0",
        "default namespace: publications kept per topic for history requests; 0 = no history",
    ),
    setting(
        "topics.history_ttl",
        NONZERO_DURATION,
        "5m",
        "default namespace: how long a topic's history outlives its last publication",
    ),
    setting("topics.presence", Kind::Bool, "false", "default namespace: keep who subscribes to each topic"),
    setting(
        "topics.join_leave",
        Kind::Bool,
        "false",
        "default namespace: send join and leave events to subscribers (needs presence)",
    ),
    setting("timeouts.handshake", NONZERO_DURATION, "10s", "time from accept to a complete upgrade request"),
    setting("timeouts.idle", DURATION, "0s", "close with 1001 after this long without a data message; 0 = off"),
    setting("timeouts.ping_interval", DURATION, "30s", "ping a peer silent for this long; 0 = no keepalive pings"),
    setting("timeouts.ping_timeout", NONZERO_DURATION, "30s", "how long a pinged peer has to send anything"),
    setting("timeouts.close", NONZERO_DURATION, "5s", "how long to wait for the peer's Close after ours"),
    setting("timeouts.drain", DURATION, "10s", "how long a graceful shutdown waits for closing handshakes"),
    setting("timeouts.linger", DURATION, "2s", "how long to read and drop after the last byte before closing"),
    setting(
        "backpressure.max_out_queue",
        size(1),
        "1MiB",
        "output a session may have waiting; over it, reads stop and sends are refused",
    ),
    setting(
        "backpressure.slow_consumer",
        Kind::Choice(&["drop", "close"]),
        "drop",
        "what a publish does to a subscriber over max_out_queue: drop the message, or close it (1008)",
    ),
    setting("backpressure.bus_capacity", count(1), "65536", "publishes that may wait in each loop's inbound channel"),
    setting("deflate.enabled", Kind::Bool, "true", "negotiate permessage-deflate (needs the `deflate` cargo feature)"),
    setting("deflate.level", Kind::Count { min: 0, max: 9 }, "6", "compression level, 0 to 9"),
    setting(
        "deflate.server_max_window_bits",
        Kind::Count { min: 9, max: 15 },
        "15",
        "largest window the server compresses with, 9 to 15",
    ),
    setting(
        "deflate.client_max_window_bits",
        Kind::Count { min: 9, max: 15 },
        "13",
        "largest window asked of the client's compressor, 9 to 15; what a connection keeps of its stream (2^N bytes)",
    ),
    setting(
        "deflate.server_no_context_takeover",
        Kind::Bool,
        "true",
        "reset the server's compressor after every message (one compressor per loop serves every connection)",
    ),
    setting(
        "deflate.client_no_context_takeover",
        Kind::Bool,
        "false",
        "ask the client to reset its compressor after every message",
    ),
    setting(
        "deflate.client_no_context_takeover_fallback",
        Kind::Bool,
        "true",
        "ask client_no_context_takeover of a client whose offer leaves its window at 15 bits while client_max_window_bits is lower",
    ),
    setting("deflate.min_message_size", size(0), "64", "messages shorter than this are sent uncompressed"),
    setting(
        "history.max_bytes",
        size(0),
        "64MiB",
        "most bytes of topic history on this node; past it the topics published to least recently lose theirs",
    ),
    setting(
        "auth.hmac_secret",
        Kind::Secret,
        "",
        "HMAC secret of HS256/HS384/HS512 session tokens, at least 32 bytes; with a key set, sessions need tokens",
    ),
    setting(
        "auth.public_key",
        Kind::Text,
        "",
        "PEM public key file of RS*, PS*, ES256, ES384 or EdDSA session tokens (reloaded on SIGHUP)",
    ),
    setting("auth.audience", Kind::Text, "", "the `aud` session tokens must name; empty: tokens with an aud are refused"),
    setting("auth.issuer", Kind::Text, "", "the `iss` session tokens must have; empty: any"),
    setting("auth.leeway", DURATION, "5s", "how far token times (exp, nbf) may be off this server's clock"),
    setting(
        "tls.cert",
        Kind::Text,
        "",
        "PEM certificate chain, the server's certificate first; with tls.key, serves wss:// (reloaded on SIGHUP)",
    ),
    setting("tls.key", Kind::Text, "", "PEM private key (PKCS#8, PKCS#1 or SEC1) of tls.cert"),
    setting(
        "tls.listen",
        Kind::List { item: Item::Addr, non_empty: false },
        "",
        "addresses serving wss://, beside `listen` serving ws://; empty: every `listen` address serves wss://",
    ),
    setting(
        "redis.url",
        Kind::SecretUrl,
        "",
        "redis://[[USER]:PASSWORD@]HOST[:PORT] of the Redis whose pub/sub joins the nodes; empty: no cluster",
    ),
    setting("redis.prefix", Kind::Text, "ferrows:", "prepended to every Redis channel the cluster uses"),
    setting("redis.node_id", Kind::Text, "", "this node's name in cluster messages and logs; empty: random"),
    setting("redis.connect_timeout", NONZERO_DURATION, "2s", "how long a connect to Redis may take"),
    setting(
        "redis.max_backoff",
        NONZERO_DURATION,
        "1s",
        "longest wait between reconnects to Redis (from 100ms, doubling)",
    ),
    setting(
        "redis.ping_interval",
        NONZERO_DURATION,
        "1s",
        "how often the Redis connections are pinged; silent for three: lost",
    ),
    setting(
        "redis.presence_ttl",
        NONZERO_DURATION,
        "15s",
        "how long a node's presence entries last in Redis unless it refreshes them (every third of it)",
    ),
    setting(
        "redis.queue",
        count(1),
        "65536",
        "publishes that may wait to go to Redis; past it they are lost (counted)",
    ),
    setting(
        "io.reuse_port",
        Kind::Bool,
        "false",
        "let other processes listen on the same addresses (SO_REUSEPORT; not on Windows); false: a port in use is refused",
    ),
    setting("io.backlog", Kind::Count { min: 1, max: i32::MAX as u64 }, "1024", "the listen backlog"),
    setting("io.read_buffer_size", size(4096), "64KiB", "each loop's read buffer (sessions own none)"),
];

/// The position of `key` in [`SETTINGS`].
pub(crate) fn index_of(key: &str) -> Option<usize> {
    SETTINGS.iter().position(|s| s.key == key)
}

/// The sections of the file, in table order.
pub(crate) fn sections() -> Vec<&'static str> {
    let mut sections: Vec<&'static str> = Vec::new();
    for section in SETTINGS.iter().filter_map(Setting::section) {
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_grouped_by_section() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert_eq!(index_of(s.key), Some(i), "{} appears twice", s.key);
        }
        // Top-level keys first, each section in one run: the TOML printer depends on it.
        let order: Vec<Option<&str>> = SETTINGS.iter().map(Setting::section).collect();
        let mut seen: Vec<Option<&str>> = Vec::new();
        for section in order {
            if seen.last() != Some(&section) {
                assert!(!seen.contains(&section), "section {section:?} is split");
                seen.push(section);
            }
        }
        assert_eq!(seen.first(), Some(&None));
    }

    #[test]
    fn every_default_parses() {
        for s in SETTINGS {
            let value = super::super::value::parse_text(s.kind, s.default);
            assert!(value.is_ok(), "{}: {value:?}", s.key);
        }
    }

    #[test]
    fn names_follow_the_key() {
        let s = &SETTINGS[index_of("limits.max_connections").unwrap()];
        assert_eq!(s.env_name(), "FERROWS_LIMITS_MAX_CONNECTIONS");
        assert_eq!(s.flag(), "--limits-max-connections");
        assert_eq!((s.section(), s.name()), (Some("limits"), "max_connections"));
    }
}
