//! Ordinary SQL connections to the source over `pg::open_transport` (same TLS rules as the
//! replication connections), for what the replication protocol cannot ask.

use crate::pg::ConnectConfig;
use crate::EngineError;
use std::time::Duration;
use tokio::task::JoinHandle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected client; its connection task ends when the client is dropped.
pub struct SqlConn {
    pub client: tokio_postgres::Client,
    driver: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl SqlConn {
    /// Drops the client and waits for its connection task to end.
    pub async fn close(self) {
        drop(self.client);
        let _ = self.driver.await;
    }
}

pub async fn connect(source: &ConnectConfig) -> Result<SqlConn, EngineError> {
    let transport = tokio::time::timeout(CONNECT_TIMEOUT, crate::pg::open_transport(source))
        .await
        .map_err(|_| {
            EngineError::Connect(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
        })?
        .map_err(|e| EngineError::from_pg(e, true))?;
    let (client, connection) = sql_config(source)
        .connect_raw(transport, tokio_postgres::NoTls)
        .await
        .map_err(|e| classify(&e))?;
    let driver = tokio::spawn(connection);
    Ok(SqlConn { client, driver })
}

/// For `connect_raw` over a transport from `pg::open_transport`, which has already negotiated
/// TLS by the same rules as the replication connections.
fn sql_config(cfg: &ConnectConfig) -> tokio_postgres::Config {
    let mut sql = tokio_postgres::Config::new();
    sql.ssl_mode(tokio_postgres::config::SslMode::Disable)
        .user(&cfg.user)
        .dbname(cfg.database.as_deref().unwrap_or("postgres"))
        .application_name(&cfg.application_name);
    if let Some(p) = &cfg.password {
        sql.password(p);
    }
    sql
}

pub fn classify(e: &tokio_postgres::Error) -> EngineError {
    match e.code().map(|c| c.code()) {
        Some("28000" | "42501") => EngineError::Permission(e.to_string()),
        Some("53300") => EngineError::Prerequisite(format!("too many connections: {e}")),
        _ => EngineError::Connect(source_text(e)),
    }
}

/// tokio-postgres hides the interesting part (connection refused, bad password) in the source.
pub fn source_text(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}
