//! `wss://` for the blocking client: rustls over the TCP connection (feature `tls`).
//!
//! The caller brings the trust: root certificates ([`ClientBuilder::tls_roots`]),
//! a whole rustls configuration ([`ClientBuilder::tls_config`]), or, for
//! tests against a throwaway certificate only,
//! [`ClientBuilder::danger_accept_any_certificate`].
//!
//! [`ClientBuilder::tls_roots`]: super::ClientBuilder::tls_roots
//! [`ClientBuilder::tls_config`]: super::ClientBuilder::tls_config
//! [`ClientBuilder::danger_accept_any_certificate`]: super::ClientBuilder::danger_accept_any_certificate

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::Error;

/// A TLS connection as the blocking client holds it.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.2 and 1.3 with rustls's safe defaults, ALPN `http/1.1`.
fn finish(config: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>) -> Arc<ClientConfig> {
    let mut config = config.with_no_client_auth();
    // RFC 7301: the upgrade is an HTTP/1.1 request.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub(crate) fn with_roots(roots: RootCertStore) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // Invariant: the ring provider supports the default protocol versions.
        .expect("ring supports TLS 1.2 and 1.3");
    finish(builder.with_root_certificates(roots))
}

pub(crate) fn accepting_any_certificate() -> Arc<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        // Invariant: as in `with_roots`.
        .expect("ring supports TLS 1.2 and 1.3");
    finish(builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))))
}

/// Starts TLS to `host` over a connected socket; the handshake runs with the
/// first read or write.
pub(crate) fn wrap(config: &Arc<ClientConfig>, host: &str, socket: TcpStream) -> Result<TlsStream, Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}"))))?;
    let conn = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    Ok(rustls::StreamOwned::new(conn, socket))
}

/// Takes any certificate, still checking that the handshake is signed by
/// the key of the certificate presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
