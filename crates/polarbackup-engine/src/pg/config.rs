//! `ConnectConfig`: where the server is, who logs in, and whether to use TLS.

use std::fmt;
use std::path::PathBuf;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgHost {
    /// A host name or IP address.
    Tcp(String),
    /// A directory holding the socket `.s.PGSQL.<port>`.
    Unix(PathBuf),
}

impl PgHost {
    /// libpq's rule: a host starting with `/` is a Unix socket directory.
    pub fn parse(host: &str) -> PgHost {
        if host.starts_with('/') {
            PgHost::Unix(PathBuf::from(host))
        } else {
            PgHost::Tcp(host.to_owned())
        }
    }
}

/// Whether to encrypt. Unlike libpq's `prefer`/`require`, both TLS modes verify the certificate
/// chain and host name; only `RequireNoVerify` skips that, and it has to be chosen explicitly.
/// TLS does not apply to Unix sockets (the server refuses it there), as in libpq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS when the server offers it, plaintext when it says it has none.
    Prefer,
    /// libpq's `sslmode=prefer`: like `Prefer`, but any certificate is accepted. Encrypts
    /// against passive eavesdropping only; what a server with a self-signed certificate needs.
    PreferNoVerify,
    Require,
    /// Encrypt, but accept any certificate: open to an active man in the middle.
    RequireNoVerify,
}

/// How to reach and log in to the server.
#[derive(Clone)]
pub struct ConnectConfig {
    pub host: PgHost,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
    pub tls: TlsMode,
    /// PEM file of CAs to verify the server with; the system store when `None`.
    pub tls_ca_file: Option<PathBuf>,
    pub application_name: String,
}

impl ConnectConfig {
    /// A config with no password or database, `TlsMode::Prefer` and application name "polarbackup".
    pub fn new(host: PgHost, port: u16, user: impl Into<String>) -> ConnectConfig {
        ConnectConfig {
            host,
            port,
            user: user.into(),
            password: None,
            database: None,
            tls: TlsMode::Prefer,
            tls_ca_file: None,
            application_name: "polarbackup".into(),
        }
    }
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("application_name", &self.application_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let mut c = ConnectConfig::new(PgHost::Tcp("db".into()), 5432, "u");
        c.password = Some("hunter2".into());
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("<redacted>"));
    }
}
