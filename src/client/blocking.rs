//! The blocking client: one connection over a stream, a call per message.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::proto::{CloseCode, CloseFrame, ControlPayload, UsageError};

use super::builder::ClientBuilder;
use super::endpoint::{ClientEvent, Endpoint};
use super::error::Error;
use super::stream::ClientStream;

/// The read buffer of a blocking client.
const READ_BUFFER: usize = 64 << 10;

/// How far a stream's read timeout may run past the wanted wake-up before it
/// is set again: setting it costs a system call, so it is left alone while
/// close enough.
const TIMEOUT_SLACK: Duration = Duration::from_millis(10);

/// A byte stream a [`Client`] runs over: TCP, or TLS over TCP.
///
/// The client needs to bound how long a read blocks, for its read timeout,
/// its keepalive and the wait for the server's Close.
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use ferrows::client::Transport;
///
/// /// A TLS stream in the shape of `rustls::StreamOwned`.
/// struct Tls<C> {
///     conn: C,
///     sock: std::net::TcpStream,
/// }
/// # impl<C> io::Read for Tls<C> { fn read(&mut self, _: &mut [u8]) -> io::Result<usize> { Ok(0) } }
/// # impl<C> io::Write for Tls<C> {
/// #     fn write(&mut self, b: &[u8]) -> io::Result<usize> { Ok(b.len()) }
/// #     fn flush(&mut self) -> io::Result<()> { Ok(()) }
/// # }
///
/// impl<C> Transport for Tls<C> {
///     fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
///         self.sock.set_read_timeout(timeout)
///     }
/// }
/// ```
pub trait Transport: Read + Write {
    /// Bounds how long a read may block (`None`: for ever). A read that
    /// times out fails with `WouldBlock` or `TimedOut`.
    ///
    /// # Errors
    ///
    /// The stream refused the setting.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

/// What [`Client::recv`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, checked to be UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A Pong: the answer to a [`Client::send_ping`], or an unsolicited
    /// heartbeat. (Pings are answered by the client and not returned.)
    Pong(ControlPayload),
    /// The server closed the connection: its code and reason, `None` when
    /// it sent no code (1005). Our echo is already sent; the connection is
    /// over and later calls return [`Error::Closed`].
    Close(Option<CloseFrame>),
}

/// A blocking WebSocket client over a stream `S` (a [`TcpStream`] unless
/// given another through [`ClientBuilder::connect_stream`]).
///
/// Every call runs on the caller's thread: sends write at once, and
/// [`recv`](Self::recv) reads until a whole message is in, answering Pings
/// and sending keepalive Pings ([`Config::keepalive`](crate::proto::Config))
/// on the way.
///
/// ```no_run
/// use ferrows::client::{Client, Message};
/// use ferrows::proto::CloseCode;
///
/// let mut client = Client::connect("ws://127.0.0.1:9001/echo")?;
/// client.send_text("hello")?;
/// match client.recv()? {
///     Message::Text(text) => assert_eq!(text, "hello"),
///     other => println!("something else: {other:?}"),
/// }
/// let answer = client.close(CloseCode::NORMAL, "done")?;
/// println!("the server answered {answer:?}");
/// # Ok::<(), ferrows::client::Error>(())
/// ```
pub struct Client<S = ClientStream> {
    stream: S,
    endpoint: Endpoint,
    read_buf: Box<[u8]>,
    /// Output being written.
    out: Vec<u8>,
    read_timeout: Option<Duration>,
    /// The read timeout the stream has now, once this client set one.
    stream_timeout: Option<Option<Duration>>,
    /// How the connection ended, once it did.
    end: Option<(CloseCode, String)>,
}

impl<S> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoint", &self.endpoint).field("end", &self.end).finish_non_exhaustive()
    }
}

impl Client<ClientStream> {
    /// Connects to a `ws://` URL with the default settings
    /// ([`ClientBuilder::new`]); `wss://` needs a builder with
    /// [`tls_roots`](ClientBuilder::tls_roots).
    ///
    /// # Errors
    ///
    /// See [`ClientBuilder::connect`].
    pub fn connect(url: &str) -> Result<Self, Error> {
        ClientBuilder::new().connect(url)
    }
}

impl<S: Transport> Client<S> {
    /// Completes the opening handshake for `url` over a connected stream,
    /// with the default settings ([`ClientBuilder::connect_stream`]).
    ///
    /// # Errors
    ///
    /// See [`ClientBuilder::connect_stream`].
    pub fn from_stream(stream: S, url: &str) -> Result<Self, Error> {
        ClientBuilder::new().connect_stream(stream, url)
    }

    /// Writes the request and reads until the server's response is in.
    pub(crate) fn handshake(
        stream: S,
        endpoint: Endpoint,
        read_timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<Self, Error> {
        let mut client = Client {
            stream,
            endpoint,
            read_buf: vec![0; READ_BUFFER].into_boxed_slice(),
            out: Vec::new(),
            read_timeout,
            stream_timeout: None,
            end: None,
        };
        client.flush()?;
        while !client.endpoint.is_open() {
            // A failed handshake reports why as it fails; this only guards the loop.
            if client.endpoint.is_closed() {
                return Err(Error::Timeout);
            }
            client.read(deadline)?;
        }
        // Frames that came behind the 101 stay queued for `recv`.
        let _open = client.endpoint.poll_event();
        Ok(client)
    }

    /// The subprotocol the server chose, one of those offered.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.endpoint.protocol()
    }

    /// Whether permessage-deflate was agreed.
    #[must_use]
    pub fn uses_deflate(&self) -> bool {
        self.endpoint.uses_deflate()
    }

    /// The stream.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The sans-IO state of the connection.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the connection is over; [`Error::Io`] or
    /// [`Error::Timeout`] if the write fails, after which it is over.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.check_open()?;
        let queued = self.endpoint.send_text(text);
        self.sent(queued)
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        let queued = self.endpoint.send_binary(data);
        self.sent(queued)
    }

    /// Sends a Ping; its Pong comes back through [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text), and [`Error::Usage`] for a payload
    /// over 125 bytes.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        let queued = self.endpoint.send_ping(payload);
        self.sent(queued)
    }

    /// Writes what a send queued, or reports why nothing was queued.
    fn sent(&mut self, queued: Result<(), Error>) -> Result<(), Error> {
        match queued {
            Ok(()) => self.flush(),
            // The protocol state refuses sends once it closed or failed.
            Err(Error::Usage(UsageError::Closed)) => Err(self.closed_error()),
            Err(e) => Err(e),
        }
    }

    /// Returns the next message from the server.
    ///
    /// Pings are answered on the way and not returned; Pongs are. The
    /// server's Close is returned as [`Message::Close`] once our echo is
    /// sent (RFC 6455 §5.5.1): a close is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no message came within the read timeout (the
    /// client stays usable), or the server stayed silent past the keepalive
    /// timeout (it does not). [`Error::Protocol`] when the server broke the
    /// protocol: messages that came before the violation are returned
    /// first, and the Close with the code it earns is sent.
    /// [`Error::Io`] when the connection was lost, [`Error::Closed`] once it
    /// is over.
    pub fn recv(&mut self) -> Result<Message, Error> {
        self.recv_within(self.read_timeout)
    }

    /// As [`recv`](Self::recv), with `timeout` instead of the read timeout
    /// for this call (`None`: wait for ever).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_within(&mut self, timeout: Option<Duration>) -> Result<Message, Error> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            while let Some(event) = self.endpoint.poll_event() {
                match event {
                    ClientEvent::Text(text) => return Ok(Message::Text(text)),
                    ClientEvent::Binary(data) => return Ok(Message::Binary(data)),
                    ClientEvent::Pong(payload) => return Ok(Message::Pong(payload)),
                    ClientEvent::Close(frame) => {
                        self.closed_by(frame.as_ref());
                        return Ok(Message::Close(frame));
                    }
                    ClientEvent::Ping(_) | ClientEvent::Open => {}
                }
            }
            // Pongs, and the Close a violation earns once its earlier events are out.
            self.flush()?;
            self.check_violation()?;
            if self.endpoint.is_closed() {
                return Err(self.closed_error());
            }
            self.read(deadline)?;
        }
    }

    /// Starts the closing handshake and waits for the server's Close, within
    /// the close timeout ([`Config::close_timeout`](crate::proto::Config)),
    /// then for the server to end the TCP connection (RFC 6455 §7.1.1: the
    /// server closes it first). Messages that arrive meanwhile are dropped.
    ///
    /// Returns the server's Close: its code and reason, `None` when it had
    /// no code.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a code that may not be sent (1005, 1006, 1015)
    /// or a reason over 123 bytes; [`Error::Timeout`] when the server's
    /// Close did not come in time; [`Error::Closed`] if the connection was
    /// already over.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<Option<CloseFrame>, Error> {
        self.check_open()?;
        let now = Instant::now();
        match self.endpoint.close(code, reason, now) {
            Ok(()) => {}
            // The server's Close came in behind a message `recv` returned:
            // the closing handshake is the server's, and our echo answers it.
            Err(Error::Usage(UsageError::Closed)) => return self.answer_close(),
            Err(e) => return Err(e),
        }
        self.flush()?;
        let deadline = self.endpoint.connection().and_then(|c| c.config().close_timeout).map(|t| now + t);
        loop {
            while let Some(event) = self.endpoint.poll_event() {
                if let ClientEvent::Close(frame) = event {
                    self.closed_by(frame.as_ref());
                    self.await_eof(deadline);
                    return Ok(frame);
                }
            }
            self.flush()?;
            self.check_violation()?;
            if self.endpoint.is_closed() {
                // Past the close timeout without an answer.
                self.end.get_or_insert((CloseCode::ABNORMAL, String::new()));
                return Err(Error::Timeout);
            }
            self.read(deadline)?;
        }
    }

    /// The server's Close was polled: sends the echo that polling it queued
    /// (if we had not closed first) and ends the connection with its code.
    fn closed_by(&mut self, frame: Option<&CloseFrame>) {
        // Should the server be gone already, the close still happened.
        let _ = self.flush();
        self.end = Some(match frame {
            Some(frame) => (frame.code, frame.reason.clone()),
            None => (CloseCode::NO_STATUS, String::new()),
        });
    }

    /// Finds the server's Close among the events not yet polled and sends
    /// its echo.
    fn answer_close(&mut self) -> Result<Option<CloseFrame>, Error> {
        while let Some(event) = self.endpoint.poll_event() {
            if let ClientEvent::Close(frame) = event {
                self.closed_by(frame.as_ref());
                return Ok(frame);
            }
        }
        Err(self.closed_error())
    }

    /// Reads and drops what the server still sends until it ends the TCP
    /// connection, or the deadline passes.
    fn await_eof(&mut self, deadline: Option<Instant>) {
        loop {
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if wait.is_some_and(|w| w.is_zero()) || self.apply_stream_timeout(wait).is_err() {
                return;
            }
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reports the server's protocol violation, once one failed the connection.
    fn check_violation(&mut self) -> Result<(), Error> {
        match self.endpoint.connection().and_then(|c| c.protocol_error()).cloned() {
            Some(violation) => {
                self.end = Some((violation.close_code(), violation.to_string()));
                Err(Error::Protocol(violation))
            }
            None => Ok(()),
        }
    }

    /// Fails unless the connection can still be used.
    fn check_open(&self) -> Result<(), Error> {
        match &self.end {
            None => Ok(()),
            Some(_) => Err(self.closed_error()),
        }
    }

    /// [`Error::Closed`] with how the connection ended.
    fn closed_error(&self) -> Error {
        let (code, reason) = self.end.clone().unwrap_or((CloseCode::ABNORMAL, String::new()));
        Error::Closed { code, reason }
    }

    /// Writes everything queued; the connection is over if that fails.
    fn flush(&mut self) -> Result<(), Error> {
        if !self.endpoint.poll_transmit(&mut self.out) {
            return Ok(());
        }
        let written = self.stream.write_all(&self.out).and_then(|()| self.stream.flush());
        self.out.clear();
        written.map_err(|e| self.lost(e))
    }

    /// One read from the stream, fed to the endpoint; keeps the protocol's
    /// timers on the way. Returns once bytes came in, or fails when
    /// `deadline` passes first.
    fn read(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        loop {
            let now = Instant::now();
            if let Err(e) = self.endpoint.handle_timeout(now) {
                self.end = Some((CloseCode::ABNORMAL, String::new()));
                return Err(e);
            }
            // A keepalive Ping, or our Close given up on.
            self.flush()?;
            if self.endpoint.is_closed() {
                // Nothing more will be read; the caller says why.
                return Ok(());
            }
            let wake = match (deadline, self.endpoint.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wait = wake.map(|w| w.saturating_duration_since(now));
            if wait.is_some_and(|w| w.is_zero()) {
                if deadline.is_some_and(|d| now >= d) {
                    return Err(Error::Timeout);
                }
                // A protocol timer is due: handled at the top.
                continue;
            }
            self.apply_stream_timeout(wait).map_err(|e| self.lost(e))?;
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => return Err(self.lost(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    let fed = self.endpoint.handle_read(&mut self.read_buf[..n], Instant::now());
                    return match fed {
                        // A violation is reported once the events before it are out.
                        Ok(()) | Err(Error::Protocol(_)) => Ok(()),
                        Err(e) => {
                            self.end = Some((CloseCode::ABNORMAL, String::new()));
                            Err(e)
                        }
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The stream's timeout: the loop sees whose deadline it was.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(self.lost(e)),
            }
        }
    }

    /// Sets the stream's read timeout to `wait`, unless the one it has is
    /// close enough: at most [`TIMEOUT_SLACK`] late and not under half.
    fn apply_stream_timeout(&mut self, wait: Option<Duration>) -> io::Result<()> {
        // Zero means "no timeout" to some platforms; the least wait is 1 ms.
        let wait = wait.map(|w| w.max(Duration::from_millis(1)));
        let close_enough = match (self.stream_timeout, wait) {
            (Some(None), None) => true,
            (Some(Some(set)), Some(wanted)) => set <= wanted + TIMEOUT_SLACK && set * 2 >= wanted,
            _ => false,
        };
        if !close_enough {
            self.stream.set_read_timeout(wait)?;
            self.stream_timeout = Some(wait);
        }
        Ok(())
    }

    /// The connection is lost: it ends with 1006.
    fn lost(&mut self, e: io::Error) -> Error {
        self.end = Some((CloseCode::ABNORMAL, String::new()));
        Error::from_io(e)
    }
}
