//! `PgError`: what can go wrong talking to a walsender, shaped so callers can tell causes apart.

/// An error from the replication client.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The socket failed: connection refused, reset, or closed mid-message (`UnexpectedEof`).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent an ErrorResponse. `code` is the SQLSTATE.
    #[error("server error {code}: {message}")]
    Server { code: String, message: String },
    /// TLS negotiation or certificate verification failed, or the server refused TLS when required.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The client could not authenticate: unsupported method, no password configured, bad SCRAM proof.
    #[error("authentication error: {0}")]
    Auth(String),
    /// The server sent something this client does not expect at this point.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A caller-supplied argument cannot be sent (for example an invalid slot name).
    #[error("invalid argument: {0}")]
    InvalidInput(String),
}

impl PgError {
    /// The SQLSTATE of a server error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            PgError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The role lacks REPLICATION or pg_hba.conf rejects it (28000 invalid authorization, 42501 privilege).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.sqlstate(), Some("28000" | "42501"))
    }

    /// Wrong password (28P01).
    pub fn is_auth_failed(&self) -> bool {
        self.sqlstate() == Some("28P01")
    }

    /// All walsender or connection slots are taken (53300), worth retrying later.
    pub fn is_too_many_connections(&self) -> bool {
        self.sqlstate() == Some("53300")
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> PgError {
        PgError::Protocol(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sqlstates() {
        let e = |c: &str| PgError::Server {
            code: c.into(),
            message: "m".into(),
        };
        assert!(e("42501").is_permission_denied());
        assert!(e("28000").is_permission_denied());
        assert!(e("28P01").is_auth_failed());
        assert!(e("53300").is_too_many_connections());
        assert!(!PgError::Protocol("x".into()).is_permission_denied());
        assert_eq!(e("XX000").to_string(), "server error XX000: m");
    }
}
