//! Plain HTTP requests on the WebSocket port: health checks, metrics, a
//! publish API, a page. Every answer closes the connection (no keep-alive),
//! so these requests never share a connection with WebSocket traffic.

use std::net::SocketAddr;

use super::handler::SessionId;
use crate::proto::handshake::{write_error_response, write_response, Request, StatusCode};

/// A plain HTTP request (not a WebSocket upgrade) with its whole body.
#[derive(Debug)]
pub struct HttpRequest<'a> {
    pub(crate) request: &'a Request,
    pub(crate) body: &'a [u8],
    pub(crate) peer: SocketAddr,
    pub(crate) id: SessionId,
}

impl<'a> HttpRequest<'a> {
    /// The connection's id, for an answer given later
    /// ([`HttpResponse::later`], [`Context::respond`](super::Context::respond)).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The request head: method, path, query, headers.
    pub fn request(&self) -> &'a Request {
        self.request
    }

    /// The method.
    pub fn method(&self) -> &'a str {
        self.request.method()
    }

    /// The path, without the query.
    pub fn path(&self) -> &'a str {
        self.request.path()
    }

    /// The body (`Content-Length` bytes; empty without one).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

/// A complete answer, written as is and followed by closing the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    bytes: Vec<u8>,
    later: bool,
}

impl HttpResponse {
    /// `status` with `body` of `content_type`.
    ///
    /// A content type that is not a valid header value becomes
    /// `application/octet-stream`.
    pub fn new(status: StatusCode, content_type: &str, body: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(body.len() + 128);
        if write_response(status, content_type, &[], body, &mut bytes).is_err() {
            bytes.clear();
            let _ = write_response(status, "application/octet-stream", &[], body, &mut bytes);
        }
        Self { bytes, later: false }
    }

    /// `status` with a short plain-text reason.
    pub fn text(status: StatusCode, reason: &str) -> Self {
        let mut bytes = Vec::with_capacity(reason.len() + 128);
        write_error_response(status, reason, &mut bytes);
        Self { bytes, later: false }
    }

    /// Already complete response bytes (they must close the connection).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes, later: false }
    }

    /// No answer yet: the handler gives it later with
    /// [`Context::respond`](super::Context::respond) and the request's
    /// [`id`](HttpRequest::id) (say, once an uplink answered a read). A
    /// request not answered within the handshake timeout is closed unanswered.
    pub fn later() -> Self {
        Self { bytes: Vec::new(), later: true }
    }

    /// Whether this is [`later`](Self::later).
    pub(crate) fn is_later(&self) -> bool {
        self.later
    }

    /// The bytes to send.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
