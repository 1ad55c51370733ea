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
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
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
        // The SQL side (tokio-postgres) connects without TLS, so the replication side does
        // too; per-cluster TLS settings are future work (the replication client supports it).
        cfg.tls = TlsMode::Disable;
        cfg.application_name = "polarbackup".into();
        cfg
    }

    pub fn sql_config(&self) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
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
