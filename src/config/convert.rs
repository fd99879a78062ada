//! From settings to the library's own configuration types.

use super::Settings;
use crate::app::pubsub_protocol::ProtocolLimits;
use crate::app::{AppConfig, AuthSettings, NamespaceOptions, Namespaces};
use crate::proto::handshake::HandshakeLimits;
use crate::proto::Keepalive;
use crate::runtime::{ServerConfig, SlowConsumerPolicy};

impl Settings {
    /// The runtime's configuration: limits, timeouts, backpressure, deflate, I/O, origins, subprotocols.
    ///
    /// Zero means "off" where the setting says so: `timeouts.idle` 0 gives no
    /// idle timeout, `timeouts.ping_interval` 0 no keepalive, and
    /// `limits.max_connections_per_ip` 0 no per-address limit.
    #[must_use]
    pub fn server_config(&self) -> ServerConfig {
        let per_ip = self.usize("limits.max_connections_per_ip");
        let idle = self.duration("timeouts.idle");
        let ping = self.duration("timeouts.ping_interval");
        let protocol = crate::proto::Config {
            max_frame_size: self.usize("limits.max_frame_size"),
            max_message_size: self.usize("limits.max_message_size"),
            max_fragments: self.usize("limits.max_fragments"),
            idle_timeout: (!idle.is_zero()).then_some(idle),
            keepalive: (!ping.is_zero())
                .then(|| Keepalive { idle: ping, timeout: self.duration("timeouts.ping_timeout") }),
            close_timeout: Some(self.duration("timeouts.close")),
            ..Default::default()
        };
        let handshake_limits = HandshakeLimits {
            max_head_bytes: self.usize("limits.max_request_head"),
            max_headers: self.usize("limits.max_headers"),
        };
        ServerConfig {
            protocol,
            handshake_limits,
            max_connections: self.usize("limits.max_connections"),
            max_connections_per_ip: (per_ip > 0).then_some(per_ip),
            max_http_body: self.usize("limits.max_http_body"),
            handshake_timeout: self.duration("timeouts.handshake"),
            drain_timeout: self.duration("timeouts.drain"),
            linger_timeout: self.duration("timeouts.linger"),
            max_out_queue: self.usize("backpressure.max_out_queue"),
            slow_consumer: match self.text("backpressure.slow_consumer") {
                "close" => SlowConsumerPolicy::Close,
                _ => SlowConsumerPolicy::Drop,
            },
            bus_capacity: self.usize("backpressure.bus_capacity"),
            // The range (1..=i32::MAX) was checked on entry.
            backlog: u32::try_from(self.usize("io.backlog")).unwrap_or(u32::MAX),
            read_buffer_size: self.usize("io.read_buffer_size"),
            reuse_port: self.bool("io.reuse_port"),
            allowed_origins: self.origins.clone(),
            subprotocols: self.list("subprotocols").to_vec(),
            #[cfg(feature = "deflate")]
            deflate: self.deflate_config(),
            ..Default::default()
        }
    }

    #[cfg(feature = "deflate")]
    fn deflate_config(&self) -> crate::proto::deflate::DeflateConfig {
        // The ranges (0..=9, 9..=15) were checked on entry.
        crate::proto::deflate::DeflateConfig {
            enabled: self.deflate_enabled(),
            level: u32::try_from(self.usize("deflate.level")).unwrap_or(9),
            server_max_window_bits: u8::try_from(self.usize("deflate.server_max_window_bits")).unwrap_or(15),
            client_max_window_bits: u8::try_from(self.usize("deflate.client_max_window_bits")).unwrap_or(15),
            server_no_context_takeover: self.bool("deflate.server_no_context_takeover"),
            client_no_context_takeover: self.bool("deflate.client_no_context_takeover"),
            client_no_context_takeover_fallback: self.bool("deflate.client_no_context_takeover_fallback"),
            min_message_size: self.usize("deflate.min_message_size"),
            ..Default::default()
        }
    }

    /// The application's configuration: routes, the publish API's key, the pub/sub protocol's limits.
    #[must_use]
    pub fn app_config(&self) -> AppConfig {
        let protocol_limits = ProtocolLimits {
            max_topics_per_request: self.usize("limits.max_topics_per_request"),
            max_topic_len: self.usize("limits.max_topic_len"),
            ..Default::default()
        };
        let default = NamespaceOptions {
            anonymous: self.bool("topics.anonymous"),
            client_publish: self.bool("topics.client_publish"),
            max_subscribers: self.usize("topics.max_subscribers"),
            history_size: self.usize("topics.history_size"),
            history_ttl: self.duration("topics.history_ttl"),
            presence: self.bool("topics.presence"),
            join_leave: self.bool("topics.join_leave"),
        };
        // Entries were checked where they entered, duplicates included: parsing them again cannot fail.
        let prefixed = self.list("namespaces").iter().filter_map(|n| n.parse().ok()).collect();
        let namespaces = Namespaces::new(default, prefixed).unwrap_or_default();
        let text = |key: &str| Some(self.text(key).to_owned()).filter(|value| !value.is_empty());
        let auth = AuthSettings {
            hmac_secret: text("auth.hmac_secret"),
            public_key: text("auth.public_key").map(Into::into),
            audience: text("auth.audience"),
            issuer: text("auth.issuer"),
            leeway: self.duration("auth.leeway"),
        };
        AppConfig {
            routes: self.routes.clone(),
            namespaces,
            api_key: text("api_key"),
            protocol_limits,
            auth,
            connect_timeout: self.duration("timeouts.handshake"),
            history_max_bytes: self.usize("history.max_bytes"),
        }
    }
}
