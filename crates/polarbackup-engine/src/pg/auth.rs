//! The startup exchange: trust, cleartext password, md5 and SCRAM-SHA-256.

use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncWrite};

use super::error::PgError;
use super::frame::{server_error, Backend, Framed};

/// Answers authentication requests until AuthenticationOk. `tls` selects the SCRAM channel-binding
/// flag: this client does not implement `tls-server-end-point`, so it says "not supported" ('n')
/// when the server offers -PLUS, and "supported, not offered" ('y') on TLS otherwise.
pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    f: &mut Framed<S>,
    user: &str,
    password: Option<&str>,
    tls: bool,
) -> Result<(), PgError> {
    let need_password = || {
        password.map(str::as_bytes).ok_or_else(|| {
            PgError::Auth("the server asks for a password and none is configured".into())
        })
    };
    let mut scram: Option<ScramSha256> = None;
    loop {
        let m = match f.read().await? {
            Backend::Msg(m) => m,
            Backend::CopyBoth => {
                return Err(PgError::protocol("CopyBothResponse during authentication"))
            }
        };
        match m {
            Message::AuthenticationOk => {
                if scram.is_some() {
                    // Without AuthenticationSASLFinal the server never proved it knows the password.
                    return Err(PgError::Auth(
                        "server skipped the SCRAM final message".into(),
                    ));
                }
                return Ok(());
            }
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(need_password()?, f.wbuf())?;
                f.flush().await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(user.as_bytes(), need_password()?, body.salt());
                frontend::password_message(hash.as_bytes(), f.wbuf())?;
                f.flush().await?;
            }
            Message::AuthenticationSasl(body) => {
                let mut plus = false;
                let mut plain = false;
                let mut mechs = body.mechanisms();
                while let Some(m) = mechs.next()? {
                    plus |= m == SCRAM_SHA_256_PLUS;
                    plain |= m == SCRAM_SHA_256;
                }
                if !plain {
                    return Err(PgError::Auth(
                        "the server offers no SASL mechanism this client supports".into(),
                    ));
                }
                let binding = if tls && !plus {
                    ChannelBinding::unrequested()
                } else {
                    ChannelBinding::unsupported()
                };
                let s = ScramSha256::new(need_password()?, binding);
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), f.wbuf())?;
                f.flush().await?;
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| PgError::protocol("SASL continue without SASL start"))?;
                s.update(body.data())
                    .map_err(|e| PgError::Auth(format!("SCRAM: {e}")))?;
                frontend::sasl_response(s.message(), f.wbuf())?;
                f.flush().await?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let mut s = scram
                    .take()
                    .ok_or_else(|| PgError::protocol("SASL final without SASL start"))?;
                s.finish(body.data())
                    .map_err(|e| PgError::Auth(format!("SCRAM server signature: {e}")))?;
            }
            Message::ErrorResponse(body) => return Err(server_error(body.fields()).error),
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationSspi
            | Message::AuthenticationGssContinue(_) => return Err(PgError::Auth(
                "the server asks for GSSAPI/SSPI/Kerberos authentication, which is not supported"
                    .into(),
            )),
            _ => {
                return Err(PgError::protocol(
                    "unexpected message during authentication",
                ))
            }
        }
    }
}
