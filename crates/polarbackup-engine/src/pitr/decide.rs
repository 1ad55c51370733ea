//! Whether a time target can be configured: PostgreSQL (13 and later) stops before the first
//! commit or abort whose time is after the target, and if the WAL it replays holds none, it
//! ends with FATAL "recovery ended before configured recovery target was reached". The state
//! at the target is then the state at the end of that WAL, so replaying it all is the same
//! restore. This reads the WAL recovery will read, from the base's end on.

use super::wal_files::{PgWalReady, RestoredWal};
use crate::xlog::{pg_timestamp, Step, WalEnd, WalReader};
use crate::EngineError;
use jiff::Timestamp;
use polarbackup_model::Lsn;
use std::path::Path;
use tracing::info;

/// The first commit or abort after `target` that replay from `from` meets: its position and
/// time. `None` when replay ends before one. `archive` must be complete; `pg_wal_ready` returns
/// once the data directory's `pg_wal/` is.
pub(super) fn first_end_after(
    data_dir: &Path,
    archive: &Path,
    pg_wal_ready: PgWalReady,
    timeline: u32,
    seg_size: u64,
    from: Lsn,
    target: Timestamp,
) -> Result<Option<(Lsn, Timestamp)>, EngineError> {
    let limit = pg_timestamp(target)
        .ok_or_else(|| EngineError::Restore(format!("{target} is out of PostgreSQL's range")))?;
    let pg_wal = data_dir.join("pg_wal");
    let mut wal = RestoredWal::scan(archive, &pg_wal, timeline, seg_size, pg_wal_ready)?;
    if !wal.has_segment(from.segment_number(seg_size))? {
        // Nothing was archived beyond a backup that ended on a segment boundary.
        return Ok(None);
    }
    let mut reader = WalReader::open(wal, from.segment_start(seg_size))?;
    loop {
        match reader.next_record()? {
            Step::Record(r) if r.lsn >= from => {
                if let Some(end) = r.xact_end().filter(|e| e.pg_time > limit) {
                    let time = end.time().unwrap_or(target);
                    return Ok(Some((r.lsn, time)));
                }
            }
            Step::Record(_) => {}
            Step::End(end) => {
                let (at, why) = match &end {
                    WalEnd::Missing { at } => (*at, "no more WAL".to_owned()),
                    WalEnd::Invalid { at, reason } => (*at, reason.clone()),
                };
                info!(%at, why, "replay ends before any commit after {target}");
                return Ok(None);
            }
        }
    }
}
