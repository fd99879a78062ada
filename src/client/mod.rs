//! The client side: connect to a WebSocket server, blocking or on a mio loop.
//!
//! Three layers, each usable alone:
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
//! `wss://` (feature `tls`) needs the trust for the server's certificate:
//! [`ClientBuilder::tls_roots`] or [`ClientBuilder::tls_config`]. Other TLS
//! stacks, proxies and tunnels fit through [`ClientBuilder::connect_stream`].

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
