//! SSLRequest negotiation and the rustls client configuration for `TlsMode`.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::TlsMode;
use super::error::PgError;
use super::stream::PgStream;

/// Asks the server for TLS on a fresh TCP connection and, when it agrees, performs the handshake.
/// `Prefer` falls back to plaintext only when the server says it has no TLS; a failed
/// certificate check is an error in every mode that verifies.
pub(crate) async fn negotiate(
    mut tcp: TcpStream,
    host: &str,
    mode: TlsMode,
    ca_file: Option<&Path>,
) -> Result<PgStream, PgError> {
    if mode == TlsMode::Disable {
        return Ok(PgStream::Tcp(tcp));
    }
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    tcp.write_all(&buf).await?;
    // Exactly one byte: anything the server sent after 'S' and before the handshake would be
    // unauthenticated plaintext (CVE-2021-23222), and rustls rejects it as a bad handshake.
    match tcp.read_u8().await? {
        b'S' => {}
        b'N' if matches!(mode, TlsMode::Prefer | TlsMode::PreferNoVerify) => {
            return Ok(PgStream::Tcp(tcp))
        }
        b'N' => {
            return Err(PgError::Tls(
                "the server does not accept TLS connections".into(),
            ))
        }
        other => {
            return Err(PgError::protocol(format!(
                "unexpected answer {:?} to SSLRequest",
                other.escape_ascii().to_string()
            )))
        }
    }
    let config = client_config(mode, ca_file)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| PgError::Tls(format!("invalid server name {host:?}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| PgError::Tls(format!("handshake with {host}: {e}")))?;
    Ok(PgStream::Tls(Box::new(tls)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration: roots from `ca_file` (PEM) or the system store, or no
/// verification at all for `RequireNoVerify`.
pub(crate) fn client_config(
    mode: TlsMode,
    ca_file: Option<&Path>,
) -> Result<ClientConfig, PgError> {
    let tls_err = |e: rustls::Error| PgError::Tls(e.to_string());
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    if matches!(mode, TlsMode::RequireNoVerify | TlsMode::PreferNoVerify) {
        let verifier = Arc::new(NoVerify(provider()));
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgError::Tls(format!("reading CA file {}: {e}", path.display())))?;
            for cert in certs {
                roots.add(cert).map_err(tls_err)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "skipping unreadable system CA certificates");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(PgError::Tls(
            "no CA certificates to verify the server with".into(),
        ));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts any certificate (the caller chose `RequireNoVerify`), but still checks that the server
/// owns the key it presents, so the session is at least encrypted to whoever answered.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ca_file_is_a_tls_error() {
        let e =
            client_config(TlsMode::Require, Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(matches!(e, PgError::Tls(_)), "{e}");
    }

    #[test]
    fn no_verify_builds_without_roots() {
        client_config(TlsMode::RequireNoVerify, None).unwrap();
    }

    async fn answer_ssl_request(answer: u8, mode: TlsMode) -> Result<PgStream, PgError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 8];
            s.read_exact(&mut req).await.unwrap();
            assert_eq!(req, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
            s.write_all(&[answer]).await.unwrap();
            s
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let r = negotiate(tcp, "127.0.0.1", mode, None).await;
        drop(server.await.unwrap());
        r
    }

    #[tokio::test]
    async fn prefer_falls_back_when_server_has_no_tls() {
        let s = answer_ssl_request(b'N', TlsMode::Prefer).await.unwrap();
        assert!(!s.is_tls());
        let s = answer_ssl_request(b'N', TlsMode::PreferNoVerify)
            .await
            .unwrap();
        assert!(!s.is_tls());
    }

    #[tokio::test]
    async fn garbage_answer_is_a_protocol_error() {
        assert!(matches!(
            answer_ssl_request(b'E', TlsMode::Require).await,
            Err(PgError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn require_fails_when_server_has_no_tls() {
        for mode in [TlsMode::Require, TlsMode::RequireNoVerify] {
            let r = answer_ssl_request(b'N', mode).await;
            assert!(matches!(r, Err(PgError::Tls(_))), "{mode:?}");
        }
    }
}
