//! The client's settings, and the calls that open connections with them.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "deflate")]
use crate::proto::deflate::DeflateConfig;
use crate::proto::handshake::{ClientRequest, HandshakeLimits, WsUrl};
use crate::proto::Config;

use super::blocking::{Client, Transport};
use super::endpoint::Endpoint;
use super::error::Error;
use super::random;
use super::stream::ClientStream;

/// Settings for client connections: what the opening request offers, the
/// timeouts and the protocol limits.
///
/// One builder can open any number of connections; a mio driver keeps one
/// and hands it to [`ClientConnection::connect`](super::ClientConnection::connect)
/// for each.
///
/// ```no_run
/// use std::time::Duration;
/// use ferrows::client::ClientBuilder;
///
/// let mut client = ClientBuilder::new()
///     .protocol("chat.v2")
///     .protocol("chat.v1")
///     .header("Origin", "http://localhost")
///     .read_timeout(Some(Duration::from_secs(30)))
///     .connect("ws://127.0.0.1:9001/echo")?;
/// println!("subprotocol: {:?}, deflate: {}", client.protocol(), client.uses_deflate());
/// client.send_text("hello")?;
/// # Ok::<(), ferrows::client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) protocols: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
    /// `enabled: false` offers nothing.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: DeflateConfig,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    /// Shared by every connection the builder opens.
    pub(crate) config: Arc<Config>,
    pub(crate) limits: HandshakeLimits,
    /// What `wss://` connections trust.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            protocols: Vec::new(),
            headers: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate: DeflateConfig::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: None,
            write_timeout: None,
            config: Arc::new(Config::default()),
            limits: HandshakeLimits::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ClientBuilder {
    /// The defaults: no subprotocol, permessage-deflate offered (with the
    /// `deflate` feature), 10 s to connect and complete the handshake, reads
    /// and writes without a timeout, [`Config::default`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers a subprotocol; offers go out in the order given, most
    /// preferred first (RFC 6455 §4.1: tokens, each offered once).
    #[must_use]
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds a field to the opening request (`Origin`, `Authorization`,
    /// `Cookie`, ...). The fields the handshake writes itself (`Host`,
    /// `Upgrade`, `Sec-WebSocket-*`, ...) are refused when connecting.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether to offer permessage-deflate (RFC 7692). On by default when
    /// the crate is built with its `deflate` feature; without it nothing is
    /// offered whatever this says.
    #[must_use]
    #[cfg_attr(not(feature = "deflate"), allow(unused_mut, unused_variables))]
    pub fn deflate(mut self, offer: bool) -> Self {
        #[cfg(feature = "deflate")]
        {
            self.deflate.enabled = offer;
        }
        self
    }

    /// The permessage-deflate offer and codec settings: window sizes,
    /// context takeover, compression level, the smallest message compressed.
    /// Its `enabled` field says whether anything is offered.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn deflate_config(mut self, config: DeflateConfig) -> Self {
        self.deflate = config;
        self
    }

    /// How long the TCP connect and the opening handshake may take together
    /// (default 10 s; `None`: no limit).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`Client::recv`] waits for a message before it fails with
    /// [`Error::Timeout`] (default `None`: for ever). The client stays usable
    /// after such a timeout.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long one write to the socket may block (default `None`). A write
    /// that times out may have sent part of a frame, so the connection is
    /// over after it. Applied to the TCP streams [`connect`](Self::connect)
    /// opens; a stream given to [`connect_stream`](Self::connect_stream)
    /// keeps its own.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The protocol limits and timers (message sizes, close timeout,
    /// keepalive). An `Arc<Config>` may be shared with other builders.
    #[must_use]
    pub fn config(mut self, config: impl Into<Arc<Config>>) -> Self {
        self.config = config.into();
        self
    }

    /// Limits on the server's response head (default 8 KiB, 64 fields).
    #[must_use]
    pub fn handshake_limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Trusts these root certificates for `wss://` (TLS 1.2 and 1.3 with
    /// rustls's safe defaults, ALPN `http/1.1`).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.tls = Some(super::tls::with_roots(roots));
        self
    }

    /// Uses the caller's rustls configuration for `wss://` (client
    /// certificates, pinned keys, other providers).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Accepts any server certificate for `wss://`: encryption without
    /// authentication, for tests against a throwaway certificate. Anyone
    /// between the client and the server can read and change the traffic.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn danger_accept_any_certificate(mut self) -> Self {
        self.tls = Some(super::tls::accepting_any_certificate());
        self
    }

    /// The rustls configuration `wss://` connections use, if one was given.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_client_config(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Opens a TCP connection to a `ws://` URL, or TLS over it for `wss://`,
    /// and completes the opening handshake.
    ///
    /// Each address the host resolves to is tried in turn until one
    /// accepts, all within the connect timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Url`] or [`Error::TlsUnavailable`] for the URL, [`Error::Io`]
    /// or [`Error::Timeout`] for the connection, [`Error::Handshake`] when the
    /// server refuses (its status in [`Error::status`]).
    pub fn connect(&self, url: &str) -> Result<Client<ClientStream>, Error> {
        let url = WsUrl::parse(url)?;
        #[cfg(feature = "tls")]
        let tls = match (url.is_secure(), &self.tls) {
            (false, _) => None,
            (true, Some(config)) => Some(config),
            (true, None) => return Err(Error::TlsUnavailable),
        };
        #[cfg(not(feature = "tls"))]
        if url.is_secure() {
            return Err(Error::TlsUnavailable);
        }
        let started = Instant::now();
        let deadline = self.connect_timeout.map(|t| started + t);
        let socket = connect_tcp(&url, deadline)?;
        socket.set_nodelay(true)?;
        socket.set_write_timeout(self.write_timeout)?;
        #[cfg(feature = "tls")]
        let stream = match tls {
            Some(config) => ClientStream::Tls(Box::new(super::tls::wrap(config, url.host(), socket)?)),
            None => ClientStream::Plain(socket),
        };
        #[cfg(not(feature = "tls"))]
        let stream = ClientStream::Plain(socket);
        Client::handshake(stream, self.endpoint_at(url, started)?, self.read_timeout, deadline)
    }

    /// Completes the opening handshake over a stream the caller connected:
    /// a TLS stream for `wss://`, a proxy tunnel, a socket with options of
    /// its own.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), less the TCP connect.
    pub fn connect_stream<S: Transport>(&self, stream: S, url: &str) -> Result<Client<S>, Error> {
        let started = Instant::now();
        let deadline = self.connect_timeout.map(|t| started + t);
        Client::handshake(stream, self.endpoint_at(WsUrl::parse(url)?, started)?, self.read_timeout, deadline)
    }

    /// The sans-IO state of a new connection to `url`, whose TCP connect
    /// began at `now`: the opening request is ready to be polled, and the
    /// nonce and masking keys come from the OS random source.
    ///
    /// # Errors
    ///
    /// [`Error::Request`] for an invalid subprotocol or header,
    /// [`Error::Random`] if the OS random source fails.
    pub fn endpoint_at(&self, url: WsUrl, now: Instant) -> Result<Endpoint, Error> {
        let nonce = random::nonce().map_err(Error::Random)?;
        Endpoint::new(self, url, &nonce, random::masks(), now)
    }

    /// The opening request for `url` with this builder's offers.
    pub(crate) fn request(&self, url: WsUrl) -> ClientRequest {
        let mut request = ClientRequest::from_url(url).limits(self.limits);
        for protocol in &self.protocols {
            request = request.protocol(protocol.clone());
        }
        #[cfg(feature = "deflate")]
        if self.deflate.enabled {
            request = request.extensions(crate::proto::deflate::client_offer(&self.deflate));
        }
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        request
    }
}

/// Connects to the first address of `url`'s host that answers before the deadline.
fn connect_tcp(url: &WsUrl, deadline: Option<Instant>) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in (url.host(), url.port()).to_socket_addrs()? {
        let attempt = match deadline {
            None => TcpStream::connect(addr),
            Some(deadline) => match deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                Some(left) => TcpStream::connect_timeout(&addr, left),
                None => return Err(Error::Timeout),
            },
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => Error::from_io(e),
        None => Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "the host resolved to no address")),
    })
}
