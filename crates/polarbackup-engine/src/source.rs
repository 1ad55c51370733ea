//! Where a backup reads from: connection settings for the replication client and for SQL.

use crate::pg::{ConnectConfig, PgHost, TlsMode};
use std::path::PathBuf;

/// A database cluster to back up, as registered by `admin cluster create`.
#[derive(Clone)]
pub struct Source {
    /// A host name or address; a path starting with `/` is a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
    /// TLS to the database, for both the replication and the SQL connections.
    pub tls: TlsMode,
    /// CA certificates (PEM) to verify the server with, for `TlsMode::Require`.
    pub tls_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Source {
    pub fn replication_config(&self) -> ConnectConfig {
        let host = if self.host.starts_with('/') {
            PgHost::Unix(PathBuf::from(&self.host))
        } else {
            PgHost::Tcp(self.host.clone())
        };
        let mut cfg = ConnectConfig::new(host, self.port, self.user.clone());
        cfg.password = self.password.clone();
        // Unix sockets never use TLS (the server refuses it there).
        cfg.tls = if self.host.starts_with('/') {
            TlsMode::Disable
        } else {
            self.tls
        };
        cfg.tls_ca_file = self.tls_ca_file.clone();
        cfg.application_name = "polarbackup".into();
        cfg
    }

    /// For tokio-postgres' `connect_raw` over a transport from `pg::open_transport`, which has
    /// already negotiated TLS by the same rules as the replication connections.
    pub fn sql_config(&self) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.ssl_mode(tokio_postgres::config::SslMode::Disable)
            .user(&self.user)
            .dbname(self.database.as_deref().unwrap_or("postgres"))
            .application_name("polarbackup")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = &self.password {
            cfg.password(p);
        }
        cfg
    }
}
