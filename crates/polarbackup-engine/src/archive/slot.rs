//! The cluster's permanent physical slot: its state from `pg_replication_slots` (over SQL, as
//! the replication protocol cannot tell `wal_status`), creating it, dropping it.

use crate::pg::{Lsn, ReplicationConn};
use crate::sql::{self, SqlConn};
use crate::EngineError;
use std::time::Duration;
use tracing::info;

/// What the server says about the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    Missing,
    /// Invalidated (`wal_status` = `lost`, or no `restart_lsn`): the server may have removed
    /// WAL it held.
    Lost,
    /// Holding WAL from `restart` on.
    Valid {
        restart: Lsn,
    },
}

/// A slot and the walsender streaming from it, if one is.
struct Row {
    state: SlotState,
    active_pid: Option<i32>,
}

const SLOT_QUERY: &str = "SELECT slot_type, restart_lsn::text, wal_status, active_pid \
                          FROM pg_replication_slots WHERE slot_name = $1";

async fn read(sql: &SqlConn, name: &str) -> Result<Row, EngineError> {
    let q = |e: tokio_postgres::Error| EngineError::Stream(sql::source_text(&e));
    let version: i32 = sql
        .client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(q)?
        .get(0);
    // wal_status, and with it slot invalidation, came with 13.
    if version < 130_000 {
        return Err(EngineError::Prerequisite(format!(
            "PostgreSQL {version} is not supported; version 13 or later is required"
        )));
    }
    let Some(row) = sql
        .client
        .query_opt(SLOT_QUERY, &[&name])
        .await
        .map_err(q)?
    else {
        return Ok(Row {
            state: SlotState::Missing,
            active_pid: None,
        });
    };
    let slot_type: Option<String> = row.get(0);
    if slot_type.as_deref() != Some("physical") {
        return Err(EngineError::Prerequisite(format!(
            "replication slot {name} exists but is not a physical slot"
        )));
    }
    let restart: Option<String> = row.get(1);
    let wal_status: Option<String> = row.get(2);
    let restart = restart
        .map(|r| {
            r.parse::<Lsn>()
                .map_err(|e| EngineError::Stream(format!("slot {name}: {e}")))
        })
        .transpose()?;
    let state = match restart {
        Some(restart) if wal_status.as_deref() != Some("lost") => SlotState::Valid { restart },
        _ => SlotState::Lost,
    };
    Ok(Row {
        state,
        active_pid: row.get(3),
    })
}

/// The slot's state, after ending any walsender still streaming from it: the caller holds
/// the cluster's archiver lease, so that one is an archiver that lost it (or a dead peer the
/// server has not noticed yet).
pub async fn inspect(sql: &SqlConn, name: &str) -> Result<SlotState, EngineError> {
    let row = read(sql, name).await?;
    if let Some(pid) = row.active_pid {
        info!(
            slot = name,
            pid, "ending the walsender still holding the slot"
        );
        terminate(sql, name, pid).await;
    }
    Ok(row.state)
}

/// Asks walsender `pid` to end and waits (a little) for the slot to become free. Failing
/// is not an error: START_REPLICATION then says the slot is in use, and the caller retries.
async fn terminate(sql: &SqlConn, name: &str, pid: i32) {
    if let Err(e) = sql
        .client
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
    {
        info!(slot = name, pid, error = %sql::source_text(&e), "cannot end the walsender");
        return;
    }
    for _ in 0..50 {
        match read(sql, name).await {
            Ok(Row {
                active_pid: Some(_),
                ..
            }) => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return,
        }
    }
}

/// Creates the slot, reserving WAL from the server's current redo point, and returns its
/// state. A slot created meanwhile by someone else (SQLSTATE 42710) is as good.
pub async fn create(
    conn: &mut ReplicationConn,
    sql: &SqlConn,
    name: &str,
) -> Result<SlotState, EngineError> {
    match conn.create_physical_slot(name, false).await {
        Ok(_) => {}
        Err(e) if e.sqlstate() == Some("42710") => {}
        Err(e) => return Err(EngineError::from_pg(e, false)),
    }
    Ok(read(sql, name).await?.state)
}

/// Drops the slot, ending the walsender streaming from it if need be; `Ok(false)` if there
/// was none.
pub async fn drop(sql: &SqlConn, name: &str) -> Result<bool, EngineError> {
    for _ in 0..20 {
        let row = read(sql, name).await?;
        if row.state == SlotState::Missing {
            return Ok(false);
        }
        if let Some(pid) = row.active_pid {
            terminate(sql, name, pid).await;
        }
        match sql
            .client
            .execute("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
        {
            Ok(_) => return Ok(true),
            // Dropped by someone else meanwhile.
            Err(e) if e.code().map(|c| c.code()) == Some("42704") => return Ok(false),
            // Taken again by a walsender between the two statements.
            Err(e) if e.code().map(|c| c.code()) == Some("55006") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(sql::classify(&e)),
        }
    }
    Err(EngineError::Stream(format!(
        "replication slot {name} stays in use; cannot drop it"
    )))
}
