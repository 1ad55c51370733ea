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
    /// The WAL summaries the server has (`pg_available_wal_summaries()`): a native incremental
    /// backup needs them without a hole from its parent's start on.
    pub summaries: Vec<WalSummary>,
}

/// One WAL summary file: the blocks changed by the WAL of `[start, end)` on timeline `tli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalSummary {
    pub tli: u32,
    pub start: Lsn,
    pub end: Lsn,
}

impl ServerFacts {
    /// Whether the summaries on timeline `tli` start at or before `from` and have no hole after
    /// it, and every later timeline they list has no hole either. PostgreSQL refuses an
    /// incremental BASE_BACKUP whose range has a hole (say `summarize_wal` was off for a while),
    /// which would fail the job; checked here, the backup takes the LSN diff or a full backup
    /// instead. Summaries that end before `from` are fine: the server waits for its summarizer
    /// to reach the backup's start.
    pub fn summaries_cover(&self, tli: u32, from: Lsn) -> bool {
        let mut timelines: Vec<u32> = self.summaries.iter().map(|s| s.tli).collect();
        timelines.sort_unstable();
        timelines.dedup();
        let starts_in_time = self
            .summaries
            .iter()
            .any(|s| s.tli == tli && s.start <= from);
        starts_in_time
            && timelines
                .into_iter()
                .filter(|t| *t >= tli)
                .all(|t| self.no_hole_after(t, if t == tli { from } else { Lsn(0) }))
    }

    /// Whether timeline `tli`'s summaries, in order, leave no gap that starts after `from`.
    fn no_hole_after(&self, tli: u32, from: Lsn) -> bool {
        let mut ranges: Vec<(Lsn, Lsn)> = self
            .summaries
            .iter()
            .filter(|s| s.tli == tli)
            .map(|s| (s.start, s.end))
            .collect();
        ranges.sort_unstable();
        let mut reach: Option<Lsn> = None;
        for (start, end) in ranges {
            if let Some(r) = reach {
                // A gap wholly before `from` is WAL the backup does not need.
                if start > r && start > from {
                    return false;
                }
            }
            reach = Some(reach.map_or(end, |r| r.max(end)));
        }
        true
    }
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
    let (summarize_wal, summaries) = if version_num >= 170_000 {
        summaries(client).await.map_err(q)?
    } else {
        (false, Vec::new())
    };
    Ok(ServerFacts {
        version_num,
        version,
        summarize_wal,
        summaries,
    })
}

/// Whether the server summarizes WAL, and the summaries it has.
async fn summaries(
    client: &tokio_postgres::Client,
) -> Result<(bool, Vec<WalSummary>), tokio_postgres::Error> {
    let on: bool = client
        .query_one("SELECT current_setting('summarize_wal')::bool", &[])
        .await?
        .get(0);
    if !on {
        return Ok((false, Vec::new()));
    }
    let rows = client
        .query(
            "SELECT tli, start_lsn::text, end_lsn::text FROM pg_available_wal_summaries()",
            &[],
        )
        .await?;
    let summaries = rows
        .iter()
        .filter_map(|r| {
            let tli: i64 = r.get(0);
            let start: String = r.get(1);
            let end: String = r.get(2);
            Some(WalSummary {
                tli: u32::try_from(tli).ok()?,
                start: start.parse().ok()?,
                end: end.parse().ok()?,
            })
        })
        .collect();
    Ok((true, summaries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(summaries: &[(u32, u64, u64)]) -> ServerFacts {
        ServerFacts {
            version_num: 180_000,
            version: "18".into(),
            summarize_wal: true,
            summaries: summaries
                .iter()
                .map(|&(tli, start, end)| WalSummary {
                    tli,
                    start: Lsn(start),
                    end: Lsn(end),
                })
                .collect(),
        }
    }

    #[test]
    fn contiguous_summaries_from_before_the_parent_cover_it() {
        let f = facts(&[(1, 0x100, 0x200), (1, 0x200, 0x300), (1, 0x300, 0x380)]);
        assert!(f.summaries_cover(1, Lsn(0x100)));
        assert!(f.summaries_cover(1, Lsn(0x250)));
        assert!(
            !f.summaries_cover(1, Lsn(0x80)),
            "they start after the parent"
        );
        assert!(!f.summaries_cover(2, Lsn(0x250)), "none on that timeline");
    }

    #[test]
    fn a_hole_after_the_parent_is_not_covered_but_one_before_it_does_not_matter() {
        // summarize_wal was off between 0x200 and 0x280.
        let f = facts(&[(1, 0x100, 0x200), (1, 0x280, 0x300), (1, 0x300, 0x400)]);
        assert!(!f.summaries_cover(1, Lsn(0x150)));
        assert!(f.summaries_cover(1, Lsn(0x280)));
        assert!(f.summaries_cover(1, Lsn(0x350)));
    }

    #[test]
    fn summaries_not_yet_past_the_parent_cover_it() {
        // The summarizer lags behind; the server waits for it.
        let f = facts(&[(1, 0x100, 0x200)]);
        assert!(f.summaries_cover(1, Lsn(0x300)));
    }

    #[test]
    fn overlapping_summaries_are_contiguous() {
        let f = facts(&[(1, 0x100, 0x300), (1, 0x200, 0x280), (1, 0x300, 0x400)]);
        assert!(f.summaries_cover(1, Lsn(0x100)));
    }

    #[test]
    fn a_hole_on_a_later_timeline_is_not_covered() {
        let f = facts(&[(1, 0x100, 0x200), (2, 0x200, 0x300), (2, 0x380, 0x400)]);
        assert!(!f.summaries_cover(1, Lsn(0x100)));
        let f = facts(&[(1, 0x100, 0x200), (2, 0x200, 0x300), (2, 0x300, 0x400)]);
        assert!(f.summaries_cover(1, Lsn(0x100)));
    }
}
