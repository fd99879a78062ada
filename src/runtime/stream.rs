//! A session's byte stream: the socket, with TLS over it on a `wss://` listener.

use std::io::{self, Read};

use mio::net::TcpStream;

use crate::session::OutQueue;

/// What a session reads its plaintext from and writes it to.
///
/// The TLS state is boxed beside the socket rather than an enum around it:
/// a plain session pays one pointer for it, not a second socket-sized slot.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) socket: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<super::tls::TlsStream>>,
}

impl Stream {
    pub(crate) fn plain(socket: TcpStream) -> Self {
        Self {
            socket,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls(socket: TcpStream, tls: rustls::ServerConnection) -> Self {
        Self { socket, tls: Some(Box::new(super::tls::TlsStream::new(tls))) }
    }

    /// Reads plaintext; `Ok(0)` at the peer's end.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls.read(&mut self.socket, buf);
        }
        self.socket.read(buf)
    }

    /// Writes from the queue until it is empty or the socket would block;
    /// returns the bytes taken from the queue.
    pub(crate) fn write_from(&mut self, out: &mut OutQueue) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls.write_from(&mut self.socket, out);
        }
        out.write_to(&mut self.socket)
    }

    /// Bytes below the queue (TLS records) still to be written.
    pub(crate) fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.wants_write();
        }
        false
    }

    /// Whether a read that did not fill the buffer took all the socket had
    /// (see the event loop's short reads). A TLS read returns the plaintext
    /// of one record, which says nothing of what the socket still holds.
    pub(crate) fn short_read_drains(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return false;
        }
        true
    }

    /// Before the socket is closed outright: a TLS session's close_notify
    /// (and FIN); nothing for plain TCP, whose close sends the FIN.
    pub(crate) fn finish(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            let _ = tls.shutdown_write(&mut self.socket);
        }
    }

    /// Ends our side: TLS close_notify, then the socket's writing half.
    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls.shutdown_write(&mut self.socket);
        }
        self.socket.shutdown(std::net::Shutdown::Write)
    }
}
