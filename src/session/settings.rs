//! What the sessions of a server share.

use std::sync::Arc;
use std::time::Duration;

use crate::proto::handshake::HandshakeLimits;

/// What happens to a subscriber too slow for what is published to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Drop the message for that subscriber (counted).
    #[default]
    Drop,
    /// Close the subscriber with 1008 and a reason (counted).
    Close,
}

/// What every session of a server shares: limits, deadlines and the offers it makes.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Settings {
    /// Protocol limits and timers of the WebSocket connection.
    pub protocol: Arc<crate::proto::Config>,
    /// Limits on the request head (default 8 KiB, 64 headers).
    pub handshake_limits: HandshakeLimits,
    /// Time from the first byte to a complete request (default 10 s).
    pub handshake_timeout: Duration,
    /// Output a session may have waiting (default 1 MiB): over it reading
    /// pauses, sends are refused and publishes meet the slow-consumer policy.
    pub max_out_queue: usize,
    /// How long to read and drop after the last byte before closing (default 2 s).
    pub linger_timeout: Duration,
    /// The largest body of a plain HTTP request (default 1 MiB); over it: 413.
    pub max_http_body: usize,
    /// What a publish does to a subscriber over `max_out_queue`.
    pub slow_consumer: SlowConsumerPolicy,
    /// Subprotocols spoken, in order of preference: the first one the client
    /// offered is chosen when the application names none.
    pub subprotocols: Vec<String>,
    /// permessage-deflate: whether to negotiate it and how.
    #[cfg(feature = "deflate")]
    pub deflate: crate::proto::deflate::DeflateConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            protocol: Arc::new(crate::proto::Config::default()),
            handshake_limits: HandshakeLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            max_out_queue: 1 << 20,
            linger_timeout: Duration::from_secs(2),
            max_http_body: 1 << 20,
            slow_consumer: SlowConsumerPolicy::Drop,
            subprotocols: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate: crate::proto::deflate::DeflateConfig::server(),
        }
    }
}
