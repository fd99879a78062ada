//! Limits and timers of a connection.

use std::time::Duration;

/// Limits and timers of a connection.
///
/// The defaults are sized for a public server that still passes the whole
/// Autobahn testsuite (whose largest message is 16 MiB, sent in as many as
/// 65,536 fragments).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest frame payload accepted (default 16 MiB). Over it: close 1009.
    pub max_frame_size: usize,
    /// The largest message accepted, all fragments together (default 16 MiB). Over it: close 1009.
    pub max_message_size: usize,
    /// The most frames one message may be split into (default 131,072). Over it: close 1009.
    pub max_fragments: usize,
    /// How long to wait for the peer's Close after sending ours (default 5 s).
    /// `None` waits for ever.
    pub close_timeout: Option<Duration>,
    /// Automatic pings on an idle connection (default: ping after 30 s of
    /// silence, give up 30 s later). `None` never pings.
    pub keepalive: Option<Keepalive>,
    /// Close with 1001 when no whole data message arrived for this long
    /// (default `None`: pings and pongs alone keep a connection open).
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_fragments: 1 << 17,
            close_timeout: Some(Duration::from_secs(5)),
            keepalive: Some(Keepalive { idle: Duration::from_secs(30), timeout: Duration::from_secs(30) }),
            idle_timeout: None,
        }
    }
}

/// When to ping a silent peer and when to give up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence (no bytes received) after which a Ping is sent.
    pub idle: Duration,
    /// How long after that Ping the peer has to send anything at all.
    pub timeout: Duration,
}
