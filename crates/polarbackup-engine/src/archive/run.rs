//! One call of `archive`: connect, make sure of the slot, plan the start, record a gap if
//! the WAL after the archive's end is gone, stream; and again from the slot if the server
//! turns out to have removed WAL the archive needs.

use super::history::History;
use super::segment::Assembler;
use super::session::{Ended, Session};
use super::slot::{self, SlotState};
use super::start::{self, Start};
use super::store::{Outcome, Target};
use super::{ArchiveEnd, ArchiveRequest, WalSink};
use crate::pg::{Lsn, ReplicationConn};
use crate::stall::Deadline;
use crate::xlog::segment_geometry;
use crate::{sql, EngineError};
use polarbackup_model::log_backup::{slot_name, NewWalObject, WalGap, WalObjectKind};
use polarbackup_repo::RepoError;
use std::future::Future;
use std::time::Duration;
use tracing::{info, warn};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts after lost WAL within one call; one should do, as the slot keeps what follows.
const MAX_STARTS: usize = 3;
/// What stalls, in the reason of `EngineError::Stalled`.
const STALLED: &str = "WAL stream";

pub async fn archive(
    req: &ArchiveRequest<'_>,
    sink: &dyn WalSink,
) -> Result<ArchiveEnd, EngineError> {
    let slot = slot_name(req.cluster);
    let mut archived = req.resume.map(|o| (o.timeline, o.end));
    // Set once the server said it removed WAL after `archived`.
    let mut lost: Option<String> = None;
    for _ in 0..MAX_STARTS {
        // Connecting has its own limit; the deadline also bounds the commands after it.
        let opening = Deadline::new(req.stall.max(CONNECT_TIMEOUT), STALLED);
        let opened = opening.wait(open(req, &slot, archived, lost.take()));
        let Some(opened) = cancellable(req, opened).await else {
            return Ok(ArchiveEnd::Cancelled);
        };
        let Opened {
            mut conn,
            seg_size,
            start,
            note,
        } = opened?;
        if let Some(gap) = &start.gap {
            warn!(
                cluster = req.cluster.as_str(),
                timeline = gap.timeline,
                from = %gap.from,
                to = %gap.to,
                reason = gap.reason,
                "WAL lost: a gap in the archive"
            );
            sink.gap(WalGap {
                cluster_id: req.cluster.clone(),
                timeline: gap.timeline,
                from: gap.from,
                to: gap.to,
                detected_at: req.clock.now(),
                reason: gap.reason.clone(),
            })
            .await
            .map_err(EngineError::Sink)?;
        }
        let target = Target {
            cluster: req.cluster,
            repo: req.repo,
            sink,
            clock: &*req.clock,
            seg_size,
        };
        let asm = Assembler::new(start.timeline, seg_size, start.from, start.stored);
        let mut session = Session::new(
            &target,
            &slot,
            req.clock.clone(),
            req.partial_interval,
            Deadline::new(req.stall, STALLED),
            asm,
            archived,
        );
        session.position = req.position;
        if start.history {
            let stored = session
                .store_history(&mut conn, start.timeline, None)
                .await?;
            if stored == Outcome::LeaseLost {
                return Ok(ArchiveEnd::LeaseLost);
            }
        }
        info!(
            cluster = req.cluster.as_str(),
            timeline = start.timeline,
            from = %start.from,
            "archiving WAL"
        );
        let Some(stream) = cancellable(req, session.start(conn, start.from)).await else {
            return Ok(ArchiveEnd::Cancelled);
        };
        let ended = session.run(stream?, req.cancel).await;
        archived = session.archived;
        match ended? {
            Ended::Cancelled => return Ok(ArchiveEnd::Cancelled),
            Ended::LeaseLost => return Ok(ArchiveEnd::LeaseLost),
            // What was done to the slot explains why the WAL is gone.
            Ended::Removed(why) => {
                lost = Some(match note {
                    Some(n) => format!("{why}; {n}"),
                    None => why,
                })
            }
        }
    }
    Err(EngineError::Stream(format!(
        "the server keeps removing the WAL the slot should keep: {}",
        lost.unwrap_or_default()
    )))
}

/// A connection ready to stream, and the plan.
struct Opened {
    conn: ReplicationConn,
    seg_size: u64,
    start: Start,
    /// What had to be done to the slot, if anything.
    note: Option<String>,
}

/// Connects, makes sure the slot exists and holds WAL, reads the server's timeline history and
/// plans the start. `lost`: the server removed WAL after `archived`, the start is a gap.
async fn open(
    req: &ArchiveRequest<'_>,
    slot: &str,
    archived: Option<(u32, Lsn)>,
    lost: Option<String>,
) -> Result<Opened, EngineError> {
    let connect_err = |e| EngineError::from_pg(e, true);
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, ReplicationConn::connect(req.source))
        .await
        .map_err(|_| {
            EngineError::Connect(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
        })?
        .map_err(connect_err)?;
    let system = conn.identify_system().await.map_err(connect_err)?;
    if let Some(newest) = req.resume {
        same_system(req, newest, &system.system_id).await?;
    }
    let seg_size = conn.wal_segment_size().await.map_err(connect_err)?;
    if !seg_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&seg_size) {
        return Err(EngineError::Stream(format!(
            "the server's WAL segment size {seg_size} is not one PostgreSQL allows"
        )));
    }
    let sql = sql::connect(req.source).await?;
    let restart = ensure_slot(&mut conn, &sql, slot, archived, lost.is_some(), seg_size).await;
    sql.close().await;
    let (restart, note) = restart?;
    let history = if system.timeline > 1 {
        let (_, content) = conn
            .timeline_history(system.timeline)
            .await
            .map_err(|e| EngineError::from_pg(e, false))?;
        History::parse(system.timeline, &content)
            .map_err(|e| EngineError::Stream(format!("timeline {}: {e}", system.timeline)))?
    } else {
        History::first()
    };
    let start = match lost {
        Some(why) => {
            let reason = match &note {
                Some(n) => format!("{why}; {n}"),
                None => why,
            };
            start::after_loss(archived, restart, &history, seg_size, reason)
        }
        None => start::plan(archived, restart, &history, seg_size),
    };
    if let (Some(n), None) = (&note, &start.gap) {
        info!(
            cluster = req.cluster.as_str(),
            slot, "{n}; made anew, trying the WAL from where the archive ends"
        );
    }
    Ok(Opened {
        conn,
        seg_size,
        start,
        note,
    })
}

/// Refuses a server that is not the database system whose WAL the archive holds, before
/// anything (a slot, an object) is made for it. An object that is gone or damaged cannot tell
/// (the check is skipped, with a warning); a repository that cannot be read fails the run.
async fn same_system(
    req: &ArchiveRequest<'_>,
    newest: &NewWalObject,
    server: &str,
) -> Result<(), EngineError> {
    if newest.kind == WalObjectKind::History {
        return Ok(());
    }
    let raw = match req
        .repo
        .read_wal(&newest.key, newest.size, &newest.digest)
        .await
    {
        Ok(raw) => raw,
        Err(e @ (RepoError::NotFound(_) | RepoError::Corrupt { .. })) => {
            warn!(
                cluster = req.cluster.as_str(),
                error = %e,
                "the archive's newest WAL object cannot be read; the database system is not checked"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let archived = segment_geometry(newest.start, &raw)
        .map_err(|e| EngineError::Wal(format!("archived WAL object {}: {e}", newest.key)))?
        .system_id;
    if server.parse::<u64>().ok() == Some(archived) {
        return Ok(());
    }
    Err(EngineError::Prerequisite(format!(
        "the database is PostgreSQL system {server}, but this cluster's WAL archive holds \
         system {archived}: it was made anew (initdb) or another server answers at the \
         cluster's address. Archiving stays stopped so that the two cannot mix; to back the \
         new database up, register it as a new cluster"
    )))
}

/// The slot's restart point, after creating a missing slot or replacing an invalidated one
/// (and the one whose WAL the server removed, `lost`, unless it already holds WAL from after
/// the archive's end). The note says what was done.
async fn ensure_slot(
    conn: &mut ReplicationConn,
    sql: &sql::SqlConn,
    slot: &str,
    archived: Option<(u32, Lsn)>,
    lost: bool,
    seg_size: u64,
) -> Result<(Lsn, Option<String>), EngineError> {
    let (state, note) = match slot::inspect(sql, slot).await? {
        SlotState::Missing => (
            slot::create(conn, sql, slot).await?,
            Some("the replication slot was missing".to_string()),
        ),
        SlotState::Lost => {
            slot::drop(sql, slot).await?;
            (
                slot::create(conn, sql, slot).await?,
                Some("the replication slot was invalidated (wal_status lost)".to_string()),
            )
        }
        SlotState::Valid { restart }
            if lost
                && archived.is_some_and(|(_, end)| {
                    restart.segment_number(seg_size) <= end.segment_number(seg_size)
                }) =>
        {
            // It claims WAL the server says is gone.
            slot::drop(sql, slot).await?;
            (
                slot::create(conn, sql, slot).await?,
                Some("the replication slot no longer held its WAL".to_string()),
            )
        }
        valid => (valid, None),
    };
    match state {
        SlotState::Valid { restart } => Ok((restart, note)),
        _ => Err(EngineError::Stream(format!(
            "replication slot {slot} holds no WAL right after its creation"
        ))),
    }
}

/// `None` when cancelled first.
async fn cancellable<T>(req: &ArchiveRequest<'_>, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        () = req.cancel.cancelled() => None,
        r = fut => Some(r),
    }
}
