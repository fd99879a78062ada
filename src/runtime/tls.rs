//! `wss://`: rustls between the socket and the protocol core (feature `tls`).
//!
//! rustls is sans-IO like the core: the session's [`TlsStream`] feeds it
//! what the socket gives (`read_tls`, `process_new_packets`), takes the
//! plaintext from its reader into the loop's scratch buffer, and moves the
//! session's output through its writer and out with `write_tls`. Nothing
//! here blocks or spins: every socket call stops at `WouldBlock`, and the
//! loop's interest covers what rustls still has to write.

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConnection;

use crate::session::OutQueue;

/// What a server needs to accept `wss://`: the certificate chain and key,
/// shared by every loop and replaceable while the server runs.
///
/// ```no_run
/// use ferrows::runtime::{Server, TlsAcceptor};
/// # use ferrows::runtime::{Context, Decision, Handler, Message, SessionId, Upgrade};
/// # struct Echo;
/// # impl Handler for Echo {
/// #     type State = ();
/// #     fn upgrade(&mut self, _: &Upgrade<'_>) -> Decision<()> { Decision::accept(()) }
/// #     fn on_message(&mut self, _: &mut Context<'_, ()>, _: SessionId, _: Message<'_>) {}
/// # }
///
/// let tls = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
/// let server = Server::builder().tls(tls.clone()).listen_tls("0.0.0.0:443".parse()?).start(|_| Echo)?;
/// // Later, when the files were renewed (on SIGHUP, say): new handshakes get the new certificate.
/// tls.reload()?;
/// # server.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
    /// The certificate in use and where it came from; `None` for a
    /// caller-built rustls configuration, which cannot be reloaded.
    files: Option<Arc<CertificateFiles>>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").field("files", &self.files).finish_non_exhaustive()
    }
}

/// Why a certificate or key could not be used.
#[non_exhaustive]
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// A file holds no usable PEM item of the kind expected.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate or key, or they do not belong together.
    Rejected(rustls::Error),
    /// [`TlsAcceptor::reload`] on an acceptor made from a caller's rustls configuration.
    NotReloadable,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            Self::Pem { path, message } => write!(f, "{}: {message}", path.display()),
            Self::Rejected(rustls::Error::InconsistentKeys(_)) => {
                f.write_str("the private key does not belong to the certificate")
            }
            Self::Rejected(e) => write!(f, "certificate or key refused: {e}"),
            Self::NotReloadable => f.write_str("this acceptor was made from a rustls configuration, not from files"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } => Some(error),
            Self::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

impl TlsAcceptor {
    /// Loads a PEM certificate chain (the server's certificate first) and its
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), offering TLS 1.2 and 1.3
    /// with rustls's safe defaults and ALPN `http/1.1`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no certificate or key, a key rustls
    /// cannot use, or a key that does not match the certificate.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let files = Arc::new(CertificateFiles {
            cert: cert.as_ref().to_owned(),
            key: key.as_ref().to_owned(),
            current: RwLock::new(Arc::new(load_certified_key(cert.as_ref(), key.as_ref())?)),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rejected)?
            .with_no_client_auth()
            .with_cert_resolver(files.clone());
        // RFC 7301: the upgrade is an HTTP/1.1 request.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config), files: Some(files) })
    }

    /// An acceptor with the caller's own rustls configuration (client
    /// certificates, other providers). It cannot be [reloaded](Self::reload).
    #[must_use]
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> Self {
        Self { config, files: None }
    }

    /// Reads the certificate and key files again. Handshakes from now on use
    /// the new pair; sessions already open keep theirs. On an error the
    /// pair in use stays.
    ///
    /// # Errors
    ///
    /// As [`from_pem_files`](Self::from_pem_files), or [`TlsError::NotReloadable`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = self.files.as_ref().ok_or(TlsError::NotReloadable)?;
        let fresh = Arc::new(load_certified_key(&files.cert, &files.key)?);
        *files.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    pub(crate) fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(self.config.clone())
    }
}

/// The certificate files and the pair loaded from them.
struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertificateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateFiles").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), error });
    let pem_error = |path: &Path, message: String| TlsError::Pem { path: path.to_owned(), message };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem_error(cert, "holds no CERTIFICATE".into()));
    }
    let key_pem = read(key)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(key, format!("holds no usable PEM private key: {e}")))?;
    let certified = CertifiedKey::from_der(chain, private_key, &rustls::crypto::ring::default_provider())
        .map_err(TlsError::Rejected)?;
    // `from_der` lets a pair whose match cannot be told pass; the ring
    // provider can always tell, so anything but a match is refused.
    certified.keys_match().map_err(TlsError::Rejected)?;
    Ok(certified)
}

/// The TLS state of a session over an accepted socket.
pub(crate) struct TlsStream {
    tls: ServerConnection,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream").field("handshaking", &self.tls.is_handshaking()).finish_non_exhaustive()
    }
}

impl TlsStream {
    pub(crate) fn new(tls: ServerConnection) -> Self {
        Self { tls }
    }

    /// Reads plaintext (see [`read_plaintext`](crate::tls_io::read_plaintext)).
    pub(crate) fn read(&mut self, socket: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        crate::tls_io::read_plaintext(&mut self.tls, socket, buf)
    }

    /// Moves the session's output through rustls to the socket, until the
    /// queue is empty or the socket would block. Returns the plaintext bytes
    /// taken from the queue.
    pub(crate) fn write_from(&mut self, socket: &mut TcpStream, out: &mut OutQueue) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            if !out.is_empty() {
                taken += out.write_to(&mut Plaintext(&mut self.tls))?;
            }
            // Once rustls's buffer is empty, a queue left over gets room.
            if !crate::tls_io::write_records(&mut self.tls, socket)? || out.is_empty() {
                return Ok(taken);
            }
        }
    }

    /// Encrypted bytes (handshake messages, records, alerts) not yet on the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends close_notify (if the socket takes it now), then shuts the socket's writing side.
    pub(crate) fn shutdown_write(&mut self, socket: &mut TcpStream) -> io::Result<()> {
        self.tls.send_close_notify();
        let _ = crate::tls_io::write_records(&mut self.tls, socket);
        socket.shutdown(std::net::Shutdown::Write)
    }
}

/// rustls's plaintext writer, saying `WouldBlock` when its buffer is full
/// (it accepts nothing more until `write_tls` takes some out).
struct Plaintext<'a>(&'a mut ServerConnection);

impl Write for Plaintext<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.0.writer().write_vectored(bufs)? {
            0 if bufs.iter().any(|b| !b.is_empty()) => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
