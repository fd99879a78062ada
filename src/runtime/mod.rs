//! The I/O runtime: event loops on mio that drive the protocol core.
//!
//! A [`Server`] runs one event loop per thread (by default one per core). Each
//! loop has its own `mio::Poll`, a slab of sessions, a timer wheel and one
//! scratch read buffer; the loops of a process share its listening sockets
//! (see [How the runtime behaves](#how-the-runtime-behaves)). Nothing is shared
//! between loops on the per-message path.
//!
//! ```no_run
//! use ferrows::runtime::{Context, Decision, Handler, Message, Server, SessionId, Upgrade};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
//!         Decision::accept(())
//!     }
//!     fn on_message(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
//!         let _ = match message {
//!             Message::Text(text) => ctx.send_text(session, text),
//!             Message::Binary(data) => ctx.send_binary(session, data),
//!         };
//!     }
//! }
//!
//! let server = Server::builder().listen("127.0.0.1:9001".parse()?).start(|_loop_index| Echo)?;
//! println!("listening on {:?}", server.local_addrs());
//! server.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Glossary
//!
//! One verb per operation, in the code and in these docs:
//!
//! | Word | Meaning |
//! |---|---|
//! | loop | one thread with its own `mio::Poll`, sessions, timer wheel, pool and read buffer; a message that came whole in a read is handed to the handler from that buffer |
//! | session | one accepted connection from its first byte to its end: a [`crate::session::Session`] (the sans-IO machine) and its socket |
//! | accept, admit | take a connection from the listener; count it against the connection limits (or not: it is refused) |
//! | refuse | answer a request with an HTTP error status and end the connection: the server does (limits, `Origin`, draining, a bad request) or the handler does ([`Decision::refuse`]) |
//! | answer | the response to a plain HTTP request ([`Handler::on_http`]) |
//! | dispatch | hand what a session brought (an upgrade, a request, a message, its end) to the handler |
//! | send | the application writes a message to one session ([`Context::send_text`]) |
//! | publish, broadcast | the application sends to a topic's subscribers, or to every session, on every loop; the frame is encoded once (a publication) |
//! | deliver | put a publication into one subscriber's output queue, where backpressure applies: queued, dropped, or the slow consumer closed |
//! | flush | write a session's queued output to its socket; a session marked for flush is written once per loop iteration |
//! | lend, give back | working memory (the frame being read, the output queue, a published frame's buffer) comes from the loop's [`Pool`](crate::session::Pool) while a session has traffic and goes back to it when the session is idle |
//! | sync | after a session's I/O: flush it, give back what it no longer needs, finish it if all is said, set its poll interest, arm its next deadline |
//! | finish, linger, end | all is said and written: tell the handler; shut our side down and read until the peer's EOF (the linger) unless the closing handshake completed; end: free the session and its socket |
//! | drain | the graceful shutdown: Close 1001 to every session, then stop |
//! | uplink | a bridge to other nodes ([`Uplink`]): publications out, interest out, deliveries in |
//!
//! # Writing a handler
//!
//! A [`Handler`] decides on each upgrade (path, query, headers, `Origin`,
//! offered subprotocols → accept with a subprotocol and the initial state, or
//! refuse with a status), then gets [`on_open`](Handler::on_open),
//! [`on_message`](Handler::on_message) (text as `&str`, binary as `&[u8]`) and
//! [`on_close`](Handler::on_close) (code and reason: the peer's, the one we sent
//! on a violation, 1005 for a Close without a code, 1006 for a connection lost
//! without one). The [`Context`] sends to or closes any session of its loop and
//! reaches per-connection state. [`ServerBuilder::start`] takes a factory that
//! makes one handler per event loop, so a handler needs no locks.
//!
//! Runnable examples: `cargo run --example echo` (an echo server on
//! `ws://127.0.0.1:9002/`) and `cargo run --example chat` (a chat where each
//! connection has a name, on `ws://127.0.0.1:9003/?name=alice`).
//!
//! # Topics and broadcasting
//!
//! ```no_run
//! use ferrows::runtime::{Context, Message, SessionId};
//!
//! fn on_message(ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
//!     if let Message::Text(text) = message {
//!         if let Some(topic) = text.strip_prefix("join ") {
//!             let _ = ctx.subscribe(session, topic);
//!         } else {
//!             // Every subscriber of "lobby" on every loop, except the sender.
//!             let local_recipients = ctx.publish("lobby", Message::Text(text), Some(session));
//!             let _ = local_recipients;
//!         }
//!     }
//! }
//! ```
//!
//! `subscribe`, `unsubscribe`, `publish` (optionally leaving out the sender)
//! and `broadcast` (every connection of the server) work across all loops. A
//! publish encodes its frame once and every subscriber's output queue holds
//! the same `Arc`'d bytes; other loops get it through a bounded channel per
//! loop and that loop's waker (wakes coalesced), and only loops with
//! subscribers of the topic are woken. Per subscriber, messages from one
//! publisher arrive in publish order. A closing session leaves all its
//! topics; a topic without subscribers leaves no trace. Output queued by
//! publishes is written once per session per loop iteration.
//!
//! A publish that would take a subscriber's output past `max_out_queue`
//! (1 MiB) follows `slow_consumer`: `Drop` (default; that message is skipped
//! for that subscriber) or `Close` (the subscriber is closed with 1008). Both
//! are counted ([`ServerHandle::pubsub_stats`]), as are publishes a loop missed
//! because its channel (`bus_capacity`, 65,536) was full. Pong and Close are
//! never held back by the limit. Published frames are sent uncompressed, which
//! RFC 7692 allows on deflate connections, so one encoding serves everyone.
//!
//! # How the runtime behaves
//!
//! | Setting ([`ServerConfig`]) | Default | |
//! |---|---|---|
//! | `handshake_timeout` | 10 s | from accept to a complete upgrade request; then the socket is dropped |
//! | `protocol.keepalive` | ping after 30 s idle, drop 30 s later | any byte from the peer counts as alive |
//! | `protocol.close_timeout` | 5 s | after our Close, wait this long for the peer's |
//! | `linger_timeout` | 2 s | after the last byte, read and discard until the peer's EOF |
//! | `max_out_queue` | 1 MiB | above it the session stops reading (TCP backpressure to its peer); sends to it from other sessions are refused |
//! | `read_buffer_size` | 64 KiB | one per loop; sessions own no read buffer |
//! | `handshake_limits` | 8 KiB, 64 headers | 431 over either |
//! | `backlog` | 1024 | |
//! | `reuse_port` | `false` | share the addresses with other processes (`SO_REUSEPORT`), see below |
//! | `slow_consumer` | [`SlowConsumerPolicy::Drop`] | what a publish does to a subscriber over `max_out_queue` |
//! | `bus_capacity` | 65,536 | publishes that may wait in each loop's inbound channel |
//! | `max_http_body` | 1 MiB | largest body of a plain HTTP request; 413 over it |
//! | `max_connections` | 20,000 | over all loops; a connection over it is answered 503; lowered at start to fit the descriptor limit (Linux) |
//! | `max_connections_per_ip` | `None` | per peer IP; 503 over it |
//! | `allowed_origins` | any | `OriginPolicy`: 403 for an `Origin` outside it |
//! | `subprotocols` | none | chosen from when the handler names none |
//! | `drain_timeout` | 10 s | how long `shutdown()` waits for closing handshakes |
//! | `protocol.idle_timeout` | `None` | close 1001 after this long without a data message |
//!
//! - One thread per loop, each with its own `mio::Poll`, a slab of sessions
//!   (token = slot + generation, so events for a closed session are ignored),
//!   a hashed timer wheel (50 ms ticks; a tick costs what falls in its slot, not
//!   what is open), and one scratch read buffer.
//! - Listening is exclusive by default: an address in use by another process
//!   is refused at start, and the loops of one process share one listening
//!   socket per address and spread the accepts among themselves. With
//!   [`ServerConfig::reuse_port`] each loop binds its own `SO_REUSEPORT` socket,
//!   the kernel balances new connections among them, and other processes (same
//!   user, also with `reuse_port`) may share the port: several nodes on one
//!   host, or a zero-downtime restart. Where the platform has no
//!   `SO_REUSEPORT` (Windows), `reuse_port` is refused at start.
//! - Reads go until `WouldBlock`, 16 reads per session per wakeup so that one
//!   busy peer cannot starve the others. Writes are vectored from a queue that
//!   packs small frames together; write interest is held only while output is
//!   pending.
//! - An idle open connection costs its session (184 bytes, of which the
//!   protocol state is 80; its measured RSS is in `benches/README.md`) and
//!   nothing else: no buffers are kept between messages. The
//!   frame being read, the message being reassembled and the output live in a
//!   box allocated when bytes arrive and freed once everything is polled.
//! - A peer that breaks the protocol gets its Close code (after the answers to
//!   the messages it sent before), then the server shuts its side down and
//!   reads until EOF before closing, so the Close is never lost to a reset. EOF,
//!   a reset or a write error frees the session at once.
//! - Out of file descriptors (`EMFILE`, `ENFILE`), accepting pauses for 100 ms
//!   rather than spinning on the listener.
//!
//! # permessage-deflate
//!
//! With the `deflate` feature, `ServerConfig::deflate` says whether and how to
//! negotiate it; its default is `DeflateConfig::server()`:
//!
//! | Setting (`ServerConfig::deflate`) | Default | |
//! |---|---|---|
//! | `enabled` | on | |
//! | `level` | 6 | zlib level, 0–9 |
//! | `server_max_window_bits` | 15 | our compressor's window (announced to the client when lower) |
//! | `client_max_window_bits` | 13 | asked of the client when it allows it; what we keep of its stream (2^bits bytes) |
//! | `server_no_context_takeover` | on | reset our compressor after every message |
//! | `client_no_context_takeover` | off | ask the client to reset its compressor after every message |
//! | `client_no_context_takeover_fallback` | on | ask it anyway of a client whose window we cannot lower |
//! | `min_message_size` | 64 bytes | smaller messages are sent uncompressed |
//!
//! No connection keeps zlib state between messages except a compressor with
//! context takeover: a message borrows it from a small per-loop cache and
//! gives it back. With the client's context takeover a connection keeps the
//! client's last 2^bits bytes (8 KiB by default); a compressor with context
//! takeover (`server_no_context_takeover` off) stays with the connection,
//! about 370 KiB with a 15-bit window (`docs/deflate.md`).
//!
//! # TLS
//!
//! With the `tls` feature, build a `TlsAcceptor` (from PEM files, or from your
//! own `rustls::ServerConfig` for client certificates or another provider) and
//! call `ServerBuilder::tls(acceptor).listen_tls(addr)`; `TlsAcceptor::reload`
//! swaps the certificate for new handshakes (the binary calls it on SIGHUP).
//!
//! # Metrics
//!
//! [`ServerHandle::metrics`] and [`Context::metrics`] return the server's
//! [`Metrics`]; [`Metrics::render`] writes them in the Prometheus text format,
//! as the binary's `GET /metrics` does. [`ServerHandle::pubsub_stats`] counts
//! what publishes dropped. The metrics and their meaning are listed in
//! `docs/metrics.md`.

mod admission;
mod descriptors;
mod dispatch;
mod event_loop;
mod handler;
mod http;
mod inbox;
mod listener;
mod metrics;
mod origin;
pub(crate) mod pubsub;
mod records;
mod server;
mod shutdown;
mod slot;
mod stream;
mod timer;
#[cfg(feature = "tls")]
mod tls;
mod uplink;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use crate::session::{SharedFrame, SlowConsumerPolicy};
pub use handler::{Context, Decision, Handler, Message, SendError, SessionId, Upgrade};
pub use http::{HttpRequest, HttpResponse};
pub use metrics::Metrics;
pub use origin::{OriginPatternError, OriginPolicy};
pub use pubsub::{PubSubStats, Topic, Topics};
pub use records::{
    Append, Appended, Keep, Kept, MemberChange, MembersAnswer, MembersRequest, Position, Read, ReadAnswer, ReadRequest,
    Record,
};
pub use server::{Server, ServerBuilder, ServerHandle, ShutdownHandle};
#[cfg(feature = "tls")]
pub use tls::{TlsAcceptor, TlsError};
#[cfg(feature = "redis")]
pub(crate) use uplink::read_carried;
pub use uplink::{DeliverError, Inlet, Uplink};

use crate::proto::handshake::HandshakeLimits;

/// Settings of the runtime.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Protocol limits and timers: frame and message sizes, close timeout, keepalive.
    pub protocol: crate::proto::Config,
    /// Limits on the upgrade request head (default 8 KiB, 64 headers).
    pub handshake_limits: HandshakeLimits,
    /// Time allowed from accept to a complete upgrade request (default 10 s).
    pub handshake_timeout: Duration,
    /// Output a session may have waiting (default 1 MiB). Above it the session
    /// stops reading (its peer gets TCP backpressure) and sends to it are refused.
    pub max_out_queue: usize,
    /// After the last byte is written, how long to read and drop what the peer
    /// still sends before closing the socket (default 2 s).
    pub linger_timeout: Duration,
    /// The per-loop read buffer (default 64 KiB). Sessions own no read buffer.
    pub read_buffer_size: usize,
    /// The most connections open at once, over all loops (default 20,000).
    /// A connection over it is answered 503 and closed. On Linux, lowered at
    /// start to fit the process's descriptor limit (`ulimit -n`), less a
    /// reserve of 128 plus 16 per loop.
    pub max_connections: usize,
    /// The most connections open at once from one IP address (default `None`:
    /// no limit). A connection over it is answered 503 and closed.
    pub max_connections_per_ip: Option<usize>,
    /// Which `Origin`s may upgrade (default: all). Others are answered 403.
    pub allowed_origins: OriginPolicy,
    /// Subprotocols the server speaks, in its order of preference (default
    /// none). When the handler's decision names none, the first of these the
    /// client offered is chosen.
    pub subprotocols: Vec<String>,
    /// How long a graceful shutdown waits for closing handshakes (default 10 s).
    pub drain_timeout: Duration,
    /// The largest body of a plain HTTP request (default 1 MiB); over it: 413.
    pub max_http_body: usize,
    /// The listen backlog (default 1024).
    pub backlog: u32,
    /// Whether other processes may listen on the same addresses (default
    /// `false`). Off, an address is this process's alone: binding one that is
    /// in use fails, and the loops share one listening socket. On, every loop
    /// binds its own socket with `SO_REUSEPORT` and the kernel balances new
    /// connections among them and among other processes that set it too
    /// (same user). Refused at start where the platform has no `SO_REUSEPORT`.
    pub reuse_port: bool,
    /// What a publish does to a subscriber whose output is over `max_out_queue`
    /// (default: drop the message for that subscriber).
    pub slow_consumer: SlowConsumerPolicy,
    /// Publishes that may wait in each loop's inbound channel (default 65,536);
    /// past it a loop misses them, counted in [`PubSubStats`].
    pub bus_capacity: usize,
    /// permessage-deflate: whether to negotiate it and how (default:
    /// [`DeflateConfig::server`](crate::proto::deflate::DeflateConfig::server):
    /// on, level 6, no context takeover for the server's compressor, a 13-bit
    /// window asked of the client's, messages from 64 bytes).
    #[cfg(feature = "deflate")]
    pub deflate: crate::proto::deflate::DeflateConfig,
}

impl ServerConfig {
    /// What the session machines of a loop share.
    pub(crate) fn session_settings(&self) -> crate::session::Settings {
        crate::session::Settings {
            protocol: Arc::new(self.protocol.clone()),
            handshake_limits: self.handshake_limits,
            handshake_timeout: self.handshake_timeout,
            max_out_queue: self.max_out_queue,
            linger_timeout: self.linger_timeout,
            max_http_body: self.max_http_body,
            slow_consumer: self.slow_consumer,
            subprotocols: self.subprotocols.clone(),
            #[cfg(feature = "deflate")]
            deflate: self.deflate.clone(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            protocol: crate::proto::Config::default(),
            handshake_limits: HandshakeLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            max_out_queue: 1 << 20,
            linger_timeout: Duration::from_secs(2),
            read_buffer_size: 64 << 10,
            backlog: 1024,
            reuse_port: false,
            max_http_body: 1 << 20,
            max_connections: 20_000,
            max_connections_per_ip: None,
            allowed_origins: OriginPolicy::any(),
            subprotocols: Vec::new(),
            drain_timeout: Duration::from_secs(10),
            slow_consumer: SlowConsumerPolicy::Drop,
            bus_capacity: 1 << 16,
            #[cfg(feature = "deflate")]
            deflate: crate::proto::deflate::DeflateConfig::server(),
        }
    }
}

/// State shared by a server's loops: the shutdown flag and the pub/sub bus.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) shutdown: AtomicBool,
    pub(crate) bus: Arc<pubsub::Bus>,
    pub(crate) counters: metrics::Counters,
}
