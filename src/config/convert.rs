//! From settings to the library's own configuration types.

use super::Settings;
use crate::app::AppConfig;
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
        let mut config = ServerConfig::default();
        config.max_connections = self.usize("limits.max_connections");
        let per_ip = self.usize("limits.max_connections_per_ip");
        config.max_connections_per_ip = (per_ip > 0).then_some(per_ip);
        config.max_http_body = self.usize("limits.max_http_body");
        config.handshake_limits.max_head_bytes = self.usize("limits.max_request_head");
        config.handshake_limits.max_headers = self.usize("limits.max_headers");

        let protocol = &mut config.protocol;
        protocol.max_frame_size = self.usize("limits.max_frame_size");
        protocol.max_message_size = self.usize("limits.max_message_size");
        protocol.max_fragments = self.usize("limits.max_fragments");
        let idle = self.duration("timeouts.idle");
        protocol.idle_timeout = (!idle.is_zero()).then_some(idle);
        let ping = self.duration("timeouts.ping_interval");
        protocol.keepalive =
            (!ping.is_zero()).then(|| Keepalive { idle: ping, timeout: self.duration("timeouts.ping_timeout") });
        protocol.close_timeout = Some(self.duration("timeouts.close"));

        config.handshake_timeout = self.duration("timeouts.handshake");
        config.drain_timeout = self.duration("timeouts.drain");
        config.linger_timeout = self.duration("timeouts.linger");
        config.max_out_queue = self.usize("backpressure.max_out_queue");
        config.slow_consumer = match self.text("backpressure.slow_consumer") {
            "close" => SlowConsumerPolicy::Close,
            _ => SlowConsumerPolicy::Drop,
        };
        config.bus_capacity = self.usize("backpressure.bus_capacity");
        // The range (1..=i32::MAX) was checked on entry.
        config.backlog = u32::try_from(self.usize("io.backlog")).unwrap_or(u32::MAX);
        config.read_buffer_size = self.usize("io.read_buffer_size");
        config.allowed_origins = self.origins.clone();
        config.subprotocols = self.list("subprotocols").to_vec();
        #[cfg(feature = "deflate")]
        {
            let deflate = &mut config.deflate;
            deflate.enabled = self.deflate_enabled();
            // The ranges (0..=9, 9..=15) were checked on entry.
            deflate.level = u32::try_from(self.usize("deflate.level")).unwrap_or(9);
            deflate.server_max_window_bits = u8::try_from(self.usize("deflate.server_max_window_bits")).unwrap_or(15);
            deflate.client_max_window_bits = u8::try_from(self.usize("deflate.client_max_window_bits")).unwrap_or(15);
            deflate.server_no_context_takeover = self.bool("deflate.server_no_context_takeover");
            deflate.client_no_context_takeover = self.bool("deflate.client_no_context_takeover");
            deflate.min_message_size = self.usize("deflate.min_message_size");
        }
        config
    }

    /// The application's configuration: routes, the publish API's key, the pub/sub protocol's limits.
    #[must_use]
    pub fn app_config(&self) -> AppConfig {
        let mut config = AppConfig::default();
        config.routes = self.routes.clone();
        config.api_key = Some(self.text("api_key").to_owned()).filter(|key| !key.is_empty());
        config.protocol_limits.max_topics_per_request = self.usize("limits.max_topics_per_request");
        config.protocol_limits.max_topic_len = self.usize("limits.max_topic_len");
        config
    }
}
