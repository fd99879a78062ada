//! The sans-IO client: the opening handshake, then the protocol.

use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "deflate")]
use crate::proto::deflate::{accept_server_response, DeflateConfig};
use crate::proto::handshake::{ClientHandshake, Response, Status, WsUrl};
use crate::proto::{CloseCode, CloseFrame, Config, Connection, ControlPayload, Event};

use super::builder::ClientBuilder;
use super::error::Error;

/// Something that happened on a client connection, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the opening handshake: messages may be sent.
    Open,
    /// A whole text message, checked to be UTF-8.
    Text(String),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A Ping arrived; the Pong is already queued.
    Ping(ControlPayload),
    /// A Pong arrived.
    Pong(ControlPayload),
    /// The server's Close arrived: its code and reason, `None` when it had
    /// no code (1005). If we had not closed first, our echo is queued as
    /// this event is polled.
    Close(Option<CloseFrame>),
}

impl From<Event> for ClientEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::Text(text) => ClientEvent::Text(text),
            Event::Binary(data) => ClientEvent::Binary(data),
            Event::Ping(payload) => ClientEvent::Ping(payload),
            Event::Pong(payload) => ClientEvent::Pong(payload),
            Event::Close(frame) => ClientEvent::Close(frame),
        }
    }
}

type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// Where the connection stands.
enum Phase {
    /// The request is written (or queued); the server's response is awaited.
    Handshaking {
        handshake: ClientHandshake,
        /// When the connect and handshake give up.
        deadline: Option<Instant>,
        /// Kept until the connection opens; the protocol state takes it then.
        masks: MaskSource,
    },
    /// The WebSocket protocol runs.
    Open(Connection),
    /// The handshake failed or timed out; nothing more happens.
    Failed,
}

/// One client connection without its socket: the opening handshake, then
/// the protocol state ([`Connection`]).
///
/// Fed the bytes that arrive ([`handle_read`](Self::handle_read)) and the
/// passing of time ([`handle_timeout`](Self::handle_timeout)), polled for
/// events ([`poll_event`](Self::poll_event)) and for bytes to send
/// ([`poll_transmit`](Self::poll_transmit)); its first output is the
/// opening request. [`Client`](super::Client) and
/// [`ClientConnection`](super::ClientConnection) drive one over a socket;
/// tests drive one with plain byte slices.
///
/// ```
/// use std::time::Instant;
/// use ferrows::client::{ClientBuilder, ClientEvent, Endpoint};
///
/// let now = Instant::now();
/// let builder = ClientBuilder::new().deflate(false);
/// let url = "ws://example.com/chat".parse()?;
/// let mut client = Endpoint::new(&builder, url, b"the sample nonce", || [1, 2, 3, 4], now)?;
///
/// let mut request = Vec::new();
/// client.poll_transmit(&mut request);
/// assert!(request.starts_with(b"GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
///
/// // The server's answer, and a text frame "Hi" right behind it.
/// let mut reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\
///     \x81\x02Hi".to_vec();
/// client.handle_read(&mut reply, now)?;
/// assert_eq!(client.poll_event(), Some(ClientEvent::Open));
/// assert_eq!(client.poll_event(), Some(ClientEvent::Text("Hi".into())));
///
/// client.send_text("Hello")?;
/// let mut frame = Vec::new();
/// client.poll_transmit(&mut frame);
/// // A masked frame (RFC 6455 §5.3) with the key the mask source gave.
/// assert_eq!(frame[..6], [0x81, 0x85, 1, 2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Endpoint {
    phase: Phase,
    config: Arc<Config>,
    #[cfg(feature = "deflate")]
    deflate_config: Option<DeflateConfig>,
    /// The opening request, until it is polled.
    request: Vec<u8>,
    /// The [`ClientEvent::Open`] event is waiting to be polled.
    open_pending: bool,
    protocol: Option<String>,
    deflate: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match &self.phase {
            Phase::Handshaking { deadline, .. } => format!("Handshaking {{ deadline: {deadline:?} }}"),
            Phase::Open(conn) => format!("{conn:?}"),
            Phase::Failed => "Failed".to_owned(),
        };
        f.debug_struct("Endpoint")
            .field("phase", &format_args!("{phase}"))
            .field("protocol", &self.protocol)
            .field("deflate", &self.deflate)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// A connection to `url` whose TCP connect began at `now`, with the
    /// offers, limits and timeouts of `builder`.
    ///
    /// `nonce` is the 16 random bytes behind `Sec-WebSocket-Key` and `masks`
    /// gives the masking key of every frame sent; both must come from a
    /// strong random source (RFC 6455 §4.1, §5.3), as they do through
    /// [`ClientBuilder::endpoint_at`].
    ///
    /// # Errors
    ///
    /// [`Error::Request`] when a subprotocol or an extra header is invalid.
    pub fn new(
        builder: &ClientBuilder,
        url: WsUrl,
        nonce: &[u8; 16],
        masks: impl FnMut() -> [u8; 4] + Send + 'static,
        now: Instant,
    ) -> Result<Endpoint, Error> {
        let mut request = Vec::new();
        let handshake = builder.request(url).encode(nonce, &mut request)?;
        Ok(Endpoint {
            phase: Phase::Handshaking {
                handshake,
                deadline: builder.connect_timeout.map(|t| now + t),
                masks: Box::new(masks),
            },
            config: Arc::clone(&builder.config),
            #[cfg(feature = "deflate")]
            deflate_config: builder.deflate.enabled.then(|| builder.deflate.clone()),
            request,
            open_pending: false,
            protocol: None,
            deflate: false,
        })
    }

    /// Processes bytes received from the server at `now`.
    ///
    /// `data` is unmasked in place once the connection is open. Bytes that
    /// come after the protocol is over are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Handshake`] or [`Error::Deflate`] when the server's response
    /// fails the checks of RFC 6455 §4.1 or RFC 7692 §7: the connection is
    /// over and the socket should be closed. [`Error::Protocol`] when the
    /// server breaks the protocol: the events before the violation can still
    /// be polled, then the Close with the code it earns is queued.
    pub fn handle_read(&mut self, data: &mut [u8], now: Instant) -> Result<(), Error> {
        match &mut self.phase {
            Phase::Open(conn) => conn.handle_read(data, now).map_err(Error::Protocol),
            Phase::Failed => Ok(()),
            Phase::Handshaking { handshake, .. } => match handshake.feed(data) {
                Ok(Status::Partial) => Ok(()),
                Ok(Status::Complete { head, mut rest }) => {
                    self.open(&head, now)?;
                    match &mut self.phase {
                        Phase::Open(conn) if !rest.is_empty() => {
                            conn.handle_read(&mut rest, now).map_err(Error::Protocol)
                        }
                        _ => Ok(()),
                    }
                }
                Err(e) => {
                    self.phase = Phase::Failed;
                    Err(Error::Handshake(e))
                }
            },
        }
    }

    /// The server's 101 passed RFC 6455 §4.1: applies what it agreed to and
    /// starts the protocol.
    fn open(&mut self, response: &Response, now: Instant) -> Result<(), Error> {
        let Phase::Handshaking { masks, .. } = std::mem::replace(&mut self.phase, Phase::Failed) else {
            return Ok(());
        };
        let conn = Connection::client(Arc::clone(&self.config), now, masks);
        #[cfg(feature = "deflate")]
        let conn = match &self.deflate_config {
            Some(config) => match accept_server_response(response.extensions(), config) {
                Ok(Some(params)) => {
                    self.deflate = true;
                    conn.with_deflate(&params, config)
                }
                // RFC 7692 §5: the server declined; both ends go on uncompressed.
                Ok(None) => conn,
                // RFC 7692 §7: "the client MUST _Fail the WebSocket Connection_".
                Err(e) => return Err(Error::Deflate(e)),
            },
            None => conn,
        };
        self.protocol = response.protocol().map(str::to_owned);
        self.open_pending = true;
        self.phase = Phase::Open(conn);
        Ok(())
    }

    /// Returns the next event, oldest first: [`ClientEvent::Open`] once the
    /// handshake completes, then what the server sends.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        if std::mem::take(&mut self.open_pending) {
            return Some(ClientEvent::Open);
        }
        match &mut self.phase {
            Phase::Open(conn) => conn.poll_event().map(ClientEvent::from),
            _ => None,
        }
    }

    /// Moves the bytes waiting to be sent (first the opening request) to
    /// the end of `out`; returns whether there were any.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        if !self.request.is_empty() {
            out.append(&mut self.request);
            self.request = Vec::new();
            any = true;
        }
        if let Phase::Open(conn) = &mut self.phase {
            any |= conn.poll_transmit(out);
        }
        any
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work to do: the handshake deadline, then the protocol's timers
    /// (keepalive, close timeout).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Handshaking { deadline, .. } => *deadline,
            Phase::Open(conn) => conn.poll_timeout(),
            Phase::Failed => None,
        }
    }

    /// Lets time pass: gives up on a slow handshake, sends a keepalive
    /// Ping, gives up on a silent server or on a Close it never answered.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the handshake deadline passed, or the server
    /// stayed silent past the keepalive timeout: the connection is over.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        match &mut self.phase {
            Phase::Handshaking { deadline: Some(deadline), .. } if now >= *deadline => {
                self.phase = Phase::Failed;
                Err(Error::Timeout)
            }
            Phase::Open(conn) => {
                conn.handle_timeout(now);
                if conn.timed_out() {
                    Err(Error::Timeout)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether the handshake completed (the connection may have closed since).
    #[must_use]
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// Whether the connection is over: the handshake failed, the closing
    /// handshake completed or timed out, or the connection failed. Once the
    /// output is written, the socket can be closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        match &self.phase {
            Phase::Handshaking { .. } => false,
            Phase::Open(conn) => conn.is_closed(),
            Phase::Failed => true,
        }
    }

    /// Whether the socket should still be read.
    #[must_use]
    pub fn wants_read(&self) -> bool {
        match &self.phase {
            Phase::Handshaking { .. } => true,
            Phase::Open(conn) => conn.wants_read(),
            Phase::Failed => false,
        }
    }

    /// Whether bytes are waiting for [`poll_transmit`](Self::poll_transmit).
    #[must_use]
    pub fn wants_write(&self) -> bool {
        !self.request.is_empty() || matches!(&self.phase, Phase::Open(conn) if conn.wants_write())
    }

    /// The subprotocol the server chose, one of those offered.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Whether permessage-deflate was agreed.
    #[must_use]
    pub fn uses_deflate(&self) -> bool {
        self.deflate
    }

    /// The protocol state once the connection is open, for what the methods
    /// here do not cover (unsolicited Pongs, buffered bytes, the violation
    /// that failed it).
    #[must_use]
    pub fn connection(&self) -> Option<&Connection> {
        match &self.phase {
            Phase::Open(conn) => Some(conn),
            _ => None,
        }
    }

    /// The protocol state, mutable.
    #[must_use]
    pub fn connection_mut(&mut self) -> Option<&mut Connection> {
        match &mut self.phase {
            Phase::Open(conn) => Some(conn),
            _ => None,
        }
    }

    fn open_connection(&mut self) -> Result<&mut Connection, Error> {
        self.connection_mut().ok_or(Error::NotOpen)
    }

    /// Queues a text message.
    ///
    /// # Errors
    ///
    /// [`Error::NotOpen`] before the handshake completed; [`Error::Usage`]
    /// once a Close was sent or the connection failed.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        Ok(self.open_connection()?.send_text(text)?)
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        Ok(self.open_connection()?.send_binary(data)?)
    }

    /// Queues a Ping.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text), and a payload over 125 bytes.
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        Ok(self.open_connection()?.send_ping(payload)?)
    }

    /// Starts the closing handshake at `now` (RFC 6455 §7.1.2). Messages
    /// still arrive until the server's Close does, or the close timeout
    /// passes.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text), and a code that may not be sent or
    /// a reason over 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), Error> {
        Ok(self.open_connection()?.send_close(code, reason, now)?)
    }
}

#[cfg(test)]
mod tests;
