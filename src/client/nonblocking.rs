//! A client connection for a mio event loop: many of them on one thread.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Interest;

use crate::proto::handshake::WsUrl;
use crate::proto::CloseCode;

use super::builder::ClientBuilder;
use super::endpoint::{ClientEvent, Endpoint};
use super::error::Error;

/// Output capacity kept once everything is written; more is given back, so
/// that an idle connection holds no large buffer.
const KEEP_OUT_CAPACITY: usize = 4096;

/// How long to wait for the server to end the TCP connection after the
/// closing handshake when the configuration has no close timeout.
const DEFAULT_LINGER: Duration = Duration::from_secs(5);

/// One client connection on a non-blocking [`mio::net::TcpStream`]: the
/// socket, the [`Endpoint`] and the output not yet written.
///
/// The driving loop registers [`stream_mut`](Self::stream_mut) with its
/// poll under [`interest`](Self::interest), and on each readiness event
/// calls [`on_readable`](Self::on_readable) or
/// [`on_writable`](Self::on_writable), polls the events, queues replies with
/// the `send_*` methods and [`flush`](Self::flush)es. Timers go through
/// [`poll_timeout`](Self::poll_timeout) and
/// [`handle_timeout`](Self::handle_timeout). Once
/// [`is_finished`](Self::is_finished), or on any error, the connection is
/// dropped.
///
/// ```no_run
/// use std::time::Instant;
/// use ferrows::client::{ClientBuilder, ClientConnection, ClientEvent};
/// use mio::{Events, Poll, Token};
///
/// let builder = ClientBuilder::new();
/// let mut poll = Poll::new()?;
/// let mut events = Events::with_capacity(1024);
/// let mut scratch = vec![0; 64 << 10]; // one read buffer for every connection
/// let addr = "127.0.0.1:9001".parse()?;
/// let mut conn = ClientConnection::connect(&builder, addr, "ws://127.0.0.1:9001/echo", Instant::now())?;
/// let interest = conn.interest();
/// poll.registry().register(conn.stream_mut(), Token(0), interest)?;
///
/// while !conn.is_finished() {
///     let timeout = conn.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
///     poll.poll(&mut events, timeout)?;
///     let now = Instant::now();
///     for event in events.iter() {
///         if event.is_writable() {
///             conn.on_writable(now)?;
///         }
///         if event.is_readable() {
///             conn.on_readable(&mut scratch, now)?;
///         }
///     }
///     conn.handle_timeout(now)?;
///     while let Some(event) = conn.poll_event() {
///         match event {
///             ClientEvent::Open => conn.send_text("hello")?,
///             ClientEvent::Text(text) => {
///                 println!("{text}");
///                 conn.close(ferrows::proto::CloseCode::NORMAL, "", now)?;
///             }
///             _ => {}
///         }
///     }
///     conn.flush(now)?;
///     let interest = conn.interest();
///     poll.registry().reregister(conn.stream_mut(), Token(0), interest)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ClientConnection {
    stream: TcpStream,
    endpoint: Endpoint,
    /// Bytes to send; `out[..written]` are sent.
    out: Vec<u8>,
    written: usize,
    /// Whether the TCP connect completed.
    connected: bool,
    /// Whether the server ended the TCP connection.
    eof: bool,
    /// Once the protocol is over and its output written: when to stop
    /// waiting for the server to end the TCP connection.
    linger: Option<Instant>,
    /// That time came.
    lingered: bool,
    /// For `wss://`: rustls between the socket and the endpoint.
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
}

impl ClientConnection {
    /// Starts a non-blocking TCP connect to `addr` for `url` (its host and
    /// path go in the request), with `builder`'s settings; `now` starts the
    /// connect timeout.
    ///
    /// Name resolution is the caller's (it blocks): `addr` is where to connect.
    ///
    /// # Errors
    ///
    /// [`Error::Url`], [`Error::TlsUnavailable`] (`wss://` without the
    /// builder's [`tls_roots`](ClientBuilder::tls_roots) or the `tls`
    /// feature), [`Error::Request`], [`Error::Random`], or [`Error::Io`]
    /// when the socket cannot be created.
    pub fn connect(builder: &ClientBuilder, addr: SocketAddr, url: &str, now: Instant) -> Result<Self, Error> {
        let url = WsUrl::parse(url)?;
        #[cfg(feature = "tls")]
        let tls = match (url.is_secure(), builder.tls_client_config()) {
            (false, _) => None,
            (true, Some(config)) => Some((config.clone(), url.host().to_owned())),
            (true, None) => return Err(Error::TlsUnavailable),
        };
        #[cfg(not(feature = "tls"))]
        if url.is_secure() {
            return Err(Error::TlsUnavailable);
        }
        let endpoint = builder.endpoint_at(url, now)?;
        let stream = TcpStream::connect(addr).map_err(Error::Io)?;
        // Frames are written whole; waiting to coalesce them only adds delay.
        let _ = stream.set_nodelay(true);
        let conn = Self::from_parts(stream, endpoint);
        #[cfg(feature = "tls")]
        if let Some((config, host)) = tls {
            return conn.with_tls(&config, &host);
        }
        Ok(conn)
    }

    /// A connection over a socket the caller created (bound to a source
    /// address, with buffer sizes of its own), whose connect may still be
    /// in progress.
    #[must_use]
    pub fn from_parts(stream: TcpStream, endpoint: Endpoint) -> Self {
        ClientConnection {
            stream,
            endpoint,
            out: Vec::new(),
            written: 0,
            connected: false,
            eof: false,
            linger: None,
            lingered: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Speaks TLS to `host` (the name the certificate must carry) over the
    /// socket, for a `wss://` connection made with
    /// [`from_parts`](Self::from_parts). The TLS handshake runs before the
    /// opening handshake, as the socket allows.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (`InvalidInput`) for a host that is no DNS name or IP address.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: &std::sync::Arc<rustls::ClientConfig>, host: &str) -> Result<Self, Error> {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}"))))?;
        let mut tls = rustls::ClientConnection::new(config.clone(), name)
            .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // What the endpoint queues is bounded by the caller's sends; `flush`
        // hands all of it to rustls.
        tls.set_buffer_limit(None);
        self.tls = Some(Box::new(tls));
        Ok(self)
    }

    /// Whether the connection speaks TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The socket, to register with a poll.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The sans-IO state: subprotocol, deflate, the protocol state.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The sans-IO state, mutable.
    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// What to register for: reads always, writes only while the connect
    /// is in progress or output is waiting.
    #[must_use]
    pub fn interest(&self) -> Interest {
        if self.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// Whether the socket should be watched for writability.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        !self.connected || self.written < self.out.len() || self.endpoint.wants_write() || self.tls_wants_write()
    }

    /// TLS records (handshake messages, encrypted output) not yet on the socket.
    fn tls_wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.as_ref().is_some_and(|tls| tls.wants_write());
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Reads what the server sent into `buf`: from the socket, decrypted for
    /// `wss://`. `Ok(0)` once the server ended the connection; `WouldBlock`
    /// when nothing is there. For drivers with a read loop of their own
    /// (feed the bytes to [`endpoint_mut`](Self::endpoint_mut), then
    /// [`flush`](Self::flush): TLS may have something to answer);
    /// [`on_readable`](Self::on_readable) does all of it.
    ///
    /// # Errors
    ///
    /// What the socket reports; `InvalidData` for a TLS failure (after the
    /// alert that tells the server, if the socket takes it).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return crate::tls_io::read_plaintext(tls, &mut self.stream, buf);
        }
        self.stream.read(buf)
    }

    /// The socket is readable: reads until it would block, feeding the
    /// endpoint. `scratch` is a read buffer the loop shares among its
    /// connections. Then poll the events.
    ///
    /// # Errors
    ///
    /// [`Error::Handshake`] or [`Error::Deflate`] for a refused handshake,
    /// [`Error::Protocol`] for a violation by the server (its earlier events
    /// can still be polled, and [`flush`](Self::flush) sends the Close it
    /// earns), [`Error::Io`] for a lost connection (`UnexpectedEof` when the
    /// server ended it before the closing handshake did).
    pub fn on_readable(&mut self, scratch: &mut [u8], now: Instant) -> Result<(), Error> {
        if !self.connected && !self.check_connected()? {
            return Ok(());
        }
        loop {
            match self.read(scratch) {
                Ok(0) => {
                    self.eof = true;
                    // Expected once the server's Close came (or the
                    // connection failed); before that it is a lost connection.
                    if !self.endpoint.wants_read() {
                        return Ok(());
                    }
                    return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(n) => self.endpoint.handle_read(&mut scratch[..n], now)?,
                // mio: drain until WouldBlock, or no new event comes.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// The socket is writable: completes the connect, then writes what is
    /// waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the connect or a write failed.
    pub fn on_writable(&mut self, now: Instant) -> Result<(), Error> {
        if !self.connected && !self.check_connected()? {
            return Ok(());
        }
        self.flush(now)
    }

    /// Whether the non-blocking connect completed (`Ok(false)`: not yet).
    fn check_connected(&mut self) -> Result<bool, Error> {
        // mio: on a readiness event, `take_error` then `peer_addr` tell a
        // completed connect from a failed one and from a spurious wake-up.
        if let Some(e) = self.stream.take_error().map_err(Error::Io)? {
            return Err(Error::Io(e));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Writes what the endpoint queued until the socket would block.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a write failed.
    pub fn flush(&mut self, now: Instant) -> Result<(), Error> {
        if !self.connected {
            return Ok(());
        }
        self.endpoint.poll_transmit(&mut self.out);
        if !self.write_out().map_err(Error::Io)? {
            return Ok(());
        }
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > KEEP_OUT_CAPACITY {
            self.out = Vec::new();
        }
        if self.endpoint.is_closed() && self.linger.is_none() {
            // RFC 6455 §7.1.1: the server ends the TCP connection first, so
            // that TIME_WAIT stays on its side; give it a while.
            let linger = self.endpoint.connection().and_then(|c| c.config().close_timeout).unwrap_or(DEFAULT_LINGER);
            self.linger = Some(now + linger);
        }
        Ok(())
    }

    /// Writes the output until the socket would block; `Ok(true)` once all is written.
    fn write_out(&mut self) -> io::Result<bool> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            // With no buffer limit, rustls takes all of it.
            tls.writer().write_all(&self.out[self.written..])?;
            self.written = self.out.len();
            return crate::tls_io::write_records(tls, &mut self.stream);
        }
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Returns the next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.endpoint.poll_event()
    }

    /// Queues a text message; [`flush`](Self::flush) writes it.
    ///
    /// # Errors
    ///
    /// As [`Endpoint::send_text`].
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.endpoint.send_text(text)
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// As [`Endpoint::send_binary`].
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.endpoint.send_binary(data)
    }

    /// Queues a Ping.
    ///
    /// # Errors
    ///
    /// As [`Endpoint::send_ping`].
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.endpoint.send_ping(payload)
    }

    /// Starts the closing handshake.
    ///
    /// # Errors
    ///
    /// As [`Endpoint::close`].
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), Error> {
        self.endpoint.close(code, reason, now)
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.endpoint.poll_timeout(), self.linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lets time pass (see [`Endpoint::handle_timeout`]); writes nothing,
    /// so [`flush`](Self::flush) after it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the connect and handshake took too long, or
    /// the server stayed silent past the keepalive timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.linger.is_some_and(|deadline| now >= deadline) {
            self.lingered = true;
        }
        self.endpoint.handle_timeout(now)
    }

    /// Whether the connection can be dropped: the protocol is over, its
    /// output is written, and the server ended the TCP connection or was
    /// given long enough to.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.endpoint.is_closed()
            && self.written == self.out.len()
            && !self.endpoint.wants_write()
            && !self.tls_wants_write()
            && (self.eof || self.lingered)
    }
}
