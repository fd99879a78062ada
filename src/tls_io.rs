//! A rustls connection over a non-blocking socket: the record I/O shared by
//! the server's sessions and the mio client (feature `tls`).

use std::fmt;
use std::io::{self, Read, Write};

use rustls::ConnectionCommon;

/// Reads plaintext into `buf`: what rustls holds, else what the socket brings
/// once decrypted. `Ok(0)` at the peer's end, with or without close_notify
/// (WebSocket's own closing handshake tells a cut connection);
/// `WouldBlock` when the socket has nothing more.
///
/// # Errors
///
/// The socket's; `InvalidData` around a [`TlsFailure`] when the peer broke
/// TLS (after the alert that tells it why, if the socket takes it).
pub(crate) fn read_plaintext<D>(
    tls: &mut ConnectionCommon<D>,
    socket: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut eof = false;
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && eof => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        match tls.read_tls(socket) {
            Ok(n) => eof = n == 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            let _ = tls.write_tls(socket);
            return Err(io::Error::new(io::ErrorKind::InvalidData, TlsFailure(e)));
        }
    }
}

/// Writes TLS records until none are left (`Ok(true)`) or the socket would
/// block (`Ok(false)`).
///
/// # Errors
///
/// The socket's.
pub(crate) fn write_records<D>(tls: &mut ConnectionCommon<D>, socket: &mut impl Write) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A TLS failure (a bad record, a refused handshake), as the read error it ends the connection with.
#[derive(Debug)]
pub(crate) struct TlsFailure(pub(crate) rustls::Error);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}
