//! SSLRequest negotiation and the rustls client configuration for `TlsMode`.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use polarbackup_tls::Verify;
use postgres_protocol::message::frontend;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
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

/// The rustls configuration of a mode; the `*NoVerify` modes accept any certificate.
pub(crate) fn client_config(
    mode: TlsMode,
    ca_file: Option<&Path>,
) -> Result<ClientConfig, PgError> {
    let verify = if matches!(mode, TlsMode::RequireNoVerify | TlsMode::PreferNoVerify) {
        Verify::Nothing
    } else {
        Verify::Full
    };
    polarbackup_tls::client_config(verify, ca_file).map_err(PgError::Tls)
}
