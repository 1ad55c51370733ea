//! Checks, over an ordinary SQL connection, that the server can serve a streamed base backup.

use crate::pg::{ConnectConfig, Lsn};
use crate::{sql, EngineError};
use tracing::debug;

/// What the checks learned about the server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub version_num: i32,
    pub version: String,
    /// `summarize_wal` is on (PostgreSQL 17+), so incremental BASE_BACKUP can work.
    pub summarize_wal: bool,
    /// Per timeline, the oldest position the server's WAL summaries cover: a native
    /// incremental backup needs them from its parent's start on.
    pub summaries_from: Vec<(u32, Lsn)>,
}

const MIN_VERSION: i32 = 130_000;

pub async fn check(source: &ConnectConfig) -> Result<ServerFacts, EngineError> {
    let conn = sql::connect(source).await?;
    let result = run_checks(&conn.client).await;
    conn.close().await;
    result
}

async fn run_checks(client: &tokio_postgres::Client) -> Result<ServerFacts, EngineError> {
    let q = |e: tokio_postgres::Error| EngineError::Connect(sql::source_text(&e));
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
    let (summarize_wal, summaries_from) = if version_num >= 170_000 {
        summaries(client).await.map_err(q)?
    } else {
        (false, Vec::new())
    };
    Ok(ServerFacts {
        version_num,
        version,
        summarize_wal,
        summaries_from,
    })
}

/// Whether the server summarizes WAL, and from where its summaries start on each timeline.
async fn summaries(
    client: &tokio_postgres::Client,
) -> Result<(bool, Vec<(u32, Lsn)>), tokio_postgres::Error> {
    let on: bool = client
        .query_one("SELECT current_setting('summarize_wal')::bool", &[])
        .await?
        .get(0);
    if !on {
        return Ok((false, Vec::new()));
    }
    let rows = client
        .query(
            "SELECT tli, min(start_lsn)::text FROM pg_available_wal_summaries() GROUP BY tli",
            &[],
        )
        .await?;
    let from = rows
        .iter()
        .filter_map(|r| {
            let tli: i64 = r.get(0);
            let lsn: String = r.get(1);
            Some((u32::try_from(tli).ok()?, lsn.parse().ok()?))
        })
        .collect();
    Ok((true, from))
}
