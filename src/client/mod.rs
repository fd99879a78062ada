//! The client side: connect to a WebSocket server, blocking or on a mio loop.
//!
//! It speaks to any WebSocket server over the same sans-IO core the server runs
//! on. Three layers, each usable alone:
//!
//! - [`Endpoint`] is the sans-IO client: the opening handshake
//!   ([`ClientRequest`](crate::proto::handshake::ClientRequest) and
//!   [`ClientHandshake`](crate::proto::handshake::ClientHandshake)),
//!   permessage-deflate negotiation, then the
//!   [`Connection`](crate::proto::Connection). Bytes in, events and bytes out,
//!   time passed in; tests drive it without a socket.
//! - [`Client`] is a blocking client over any [`Transport`] (a
//!   [`TcpStream`](std::net::TcpStream), or a TLS stream brought by the
//!   caller): `send_*` write at once, [`Client::recv`] returns the next
//!   message, [`Client::close`] completes the closing handshake.
//! - [`ClientConnection`] holds a non-blocking [`mio::net::TcpStream`] and an
//!   [`Endpoint`], for a loop that drives thousands of connections on one
//!   thread.
//!
//! [`ClientBuilder`] holds the settings of all three: subprotocols to offer,
//! extra request headers, the permessage-deflate offer (on by default with
//! the `deflate` feature), timeouts and the protocol [`Config`](crate::proto::Config).
//!
//! Masking keys and handshake nonces come from the operating system's random
//! source (RFC 6455 §5.3, §4.1), drawn a kilobyte at a time per thread.
//!
//! ```no_run
//! use ferrows::client::{Client, Message};
//! use ferrows::proto::CloseCode;
//!
//! let mut client = Client::connect("ws://127.0.0.1:9001/echo")?;
//! client.send_text("hello")?;
//! if let Message::Text(echo) = client.recv()? {
//!     println!("{echo}");
//! }
//! client.close(CloseCode::NORMAL, "")?;
//! # Ok::<(), ferrows::client::Error>(())
//! ```
//!
//! # Settings, messages and errors
//!
//! ```no_run
//! use std::time::Duration;
//! use ferrows::client::{ClientBuilder, Message};
//! use ferrows::proto::CloseCode;
//!
//! let mut client = ClientBuilder::new()
//!     .protocol("chat")                          // subprotocols to offer, most preferred first
//!     .header("Origin", "http://localhost")
//!     .read_timeout(Some(Duration::from_secs(30)))
//!     .connect("ws://127.0.0.1:9001/echo")?;     // permessage-deflate is offered by default
//! println!("subprotocol {:?}, deflate {}", client.protocol(), client.uses_deflate());
//!
//! client.send_text("hello")?;
//! match client.recv()? {
//!     Message::Text(text) => println!("{text}"),
//!     Message::Binary(data) => println!("{} bytes", data.len()),
//!     Message::Pong(_) => {}                     // Pings are answered for you
//!     Message::Close(frame) => println!("server closed: {frame:?}"),
//! }
//! let answer = client.close(CloseCode::NORMAL, "done")?; // waits for the server's Close
//! # let _ = answer;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Errors are typed ([`Error`]). A refused handshake carries its
//! HTTP status (`err.status() == Some(404)`). A server that breaks the protocol
//! gets a Close with the code it earned (`Error::Protocol`), after the messages
//! that came before the violation. A normal close is not an error: the server's
//! Close comes back as `Message::Close`, and calls after it return
//! `Error::Closed`. Masking keys and handshake nonces come from the operating
//! system's random source, through a 1 KiB pool per thread (no lock, no system
//! call per frame).
//!
//! # `wss://`
//!
//! `wss://` (feature `tls`) needs to know whom to trust; the caller brings the
//! roots, with [`ClientBuilder::tls_roots`]:
//!
//! ```no_run
//! use ferrows::client::ClientBuilder;
//! use rustls::pki_types::{pem::PemObject, CertificateDer};
//!
//! let mut roots = rustls::RootCertStore::empty();
//! for cert in CertificateDer::pem_file_iter("ca.pem")? {
//!     roots.add(cert?)?;
//! }
//! let mut client = ClientBuilder::new().tls_roots(roots).connect("wss://chat.example.com/echo")?;
//! client.send_text("hello over TLS")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`ClientBuilder::tls_config`] takes a whole `rustls::ClientConfig` (the `webpki-roots` or
//! `rustls-native-certs` crates give the usual public roots; client
//! certificates). `danger_accept_any_certificate` turns authentication off, for
//! tests against a throwaway certificate only. Other TLS stacks, proxies and
//! tunnels go through [`ClientBuilder::connect_stream`]: any stream implementing
//! [`Transport`] (`Read + Write` and a read timeout). `ClientConnection` (below)
//! speaks `wss://` with the same builder.
//!
//! # Many connections on one thread
//!
//! For many connections on one thread, [`ClientConnection`] holds a non-blocking
//! `mio::net::TcpStream`:
//!
//! ```no_run
//! use std::time::Instant;
//! use ferrows::client::{ClientBuilder, ClientConnection, ClientEvent};
//! use mio::{Events, Poll, Token};
//!
//! let builder = ClientBuilder::new();
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(1024);
//! let mut scratch = vec![0; 64 << 10]; // one read buffer for every connection
//! let mut conn = ClientConnection::connect(&builder, "127.0.0.1:9001".parse()?, "ws://127.0.0.1:9001/echo", Instant::now())?;
//! let interest = conn.interest();
//! poll.registry().register(conn.stream_mut(), Token(0), interest)?;
//! while !conn.is_finished() {
//!     poll.poll(&mut events, conn.poll_timeout().map(|t| t.saturating_duration_since(Instant::now())))?;
//!     let now = Instant::now();
//!     for event in events.iter() {
//!         if event.is_writable() {
//!             conn.on_writable(now)?;
//!         }
//!         if event.is_readable() {
//!             conn.on_readable(&mut scratch, now)?;
//!         }
//!     }
//!     conn.handle_timeout(now)?;
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             ClientEvent::Open => conn.send_text("hello")?,
//!             ClientEvent::Text(_) => conn.close(ferrows::proto::CloseCode::NORMAL, "", now)?,
//!             _ => {}
//!         }
//!     }
//!     conn.flush(now)?;
//!     let interest = conn.interest();
//!     poll.registry().reregister(conn.stream_mut(), Token(0), interest)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Under both lies [`Endpoint`], the sans-IO client (bytes in, events
//! and bytes out, time passed in), for tests or other event loops.
//!
//! # Conformance
//!
//! The client passes the Autobahn testsuite too: `autobahn/run client` runs
//! `wstest -m fuzzingserver` against `examples/autobahn_client.rs`, which
//! echoes every case with permessage-deflate offered. Of 517 cases, 514 are OK
//! and 3 INFORMATIONAL (7.1.6, 7.13.1, 7.13.2), the same three as on the server
//! side. `autobahn/run` with no argument runs both directions, and
//! the server over `wss://`, and fails if any differs from its expectation
//! (`autobahn/expected.json`, `autobahn/expected_client.json`,
//! `autobahn/expected_tls.json`).
//! The runs and their requirements are described in `docs/autobahn.md`.

mod blocking;
mod builder;
mod endpoint;
mod error;
mod nonblocking;
mod random;
mod stream;
#[cfg(feature = "tls")]
mod tls;

pub use blocking::{Client, Message, Transport};
pub use builder::ClientBuilder;
pub use endpoint::{ClientEvent, Endpoint};
pub use error::Error;
pub use nonblocking::ClientConnection;
pub use stream::ClientStream;
#[cfg(feature = "tls")]
pub use tls::TlsStream;
