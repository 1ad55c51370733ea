//! Checks, over an ordinary SQL connection, that the server can serve a streamed base backup.

use crate::pg::ConnectConfig;
use crate::EngineError;
use tracing::debug;

/// What the checks learned about the server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub version_num: i32,
    pub version: String,
}

const MIN_VERSION: i32 = 130_000;
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn check(source: &ConnectConfig) -> Result<ServerFacts, EngineError> {
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
    let result = run_checks(&client).await;
    drop(client);
    let _ = driver.await;
    result
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

fn classify(e: &tokio_postgres::Error) -> EngineError {
    match e.code().map(|c| c.code()) {
        Some("28000" | "42501") => EngineError::Permission(e.to_string()),
        Some("53300") => EngineError::Prerequisite(format!("too many connections: {e}")),
        _ => EngineError::Connect(source_text(e)),
    }
}

/// tokio-postgres hides the interesting part (connection refused, bad password) in the source.
fn source_text(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}

async fn run_checks(client: &tokio_postgres::Client) -> Result<ServerFacts, EngineError> {
    let q = |e: tokio_postgres::Error| EngineError::Connect(source_text(&e));
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int,
                    current_setting('server_version'),
                    current_setting('wal_level'),
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*)::int FROM pg_stat_replication),
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
                    current_user::text",
            &[],
        )
        .await
        .map_err(q)?;
    let version_num: i32 = row.get(0);
    let version: String = row.get(1);
    let wal_level: String = row.get(2);
    let max_senders: i32 = row.get(3);
    let used_senders: i32 = row.get(4);
    let may_replicate: Option<bool> = row.get(5);
    let user: String = row.get(6);
    debug!(version_num, %wal_level, max_senders, used_senders, "server facts");
    if version_num < MIN_VERSION {
        return Err(EngineError::Prerequisite(format!(
            "PostgreSQL {version} is not supported; version 13 or later is required"
        )));
    }
    if may_replicate != Some(true) {
        return Err(EngineError::Permission(format!(
            "role \"{user}\" has neither the REPLICATION attribute nor superuser"
        )));
    }
    if wal_level == "minimal" {
        return Err(EngineError::Prerequisite(
            "wal_level is minimal; set it to replica or logical".into(),
        ));
    }
    // One walsender streams the data files, a second one the WAL.
    if max_senders - used_senders < 2 {
        return Err(EngineError::Prerequisite(format!(
            "max_wal_senders is {max_senders} with {used_senders} in use; a backup needs 2 free"
        )));
    }
    Ok(ServerFacts {
        version_num,
        version,
    })
}
