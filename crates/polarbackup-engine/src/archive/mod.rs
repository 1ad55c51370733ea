//! Continuous WAL archiving: one cluster's WAL streamed through its permanent physical slot
//! into the repository, segment by segment, with the segment in progress stored as a partial
//! every few seconds. The slot only moves past WAL that is stored and recorded.
//!
//! `run` drives a call of [`archive`]: connect, check the slot, plan where to start (`start`),
//! record any gap, then stream (`session`), assembling segments (`segment`) and storing them
//! (`store`); `history` reads timeline history files, `slot` handles the slot over SQL.

pub(crate) mod history;
mod run;
mod segment;
mod session;
mod slot;
mod start;
mod store;

use crate::pg::{ConnectConfig, Lsn};
use crate::{sql, EngineError};
use polarbackup_model::log_backup::{slot_name, NewWalObject, WalGap};
use polarbackup_model::{Clock, DbClusterId};
use polarbackup_repo::Repo;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one run of the archiver needs.
pub struct ArchiveRequest<'a> {
    pub cluster: &'a DbClusterId,
    pub source: &'a ConnectConfig,
    pub repo: &'a Repo,
    /// Stamps status updates and gaps; the times of WAL objects only when the server sent none.
    pub clock: Arc<dyn Clock>,
    /// Store the segment in progress at least this often while WAL arrives (default 10 s).
    pub partial_interval: Duration,
    /// The progress deadline: a server silent this long although asked to answer is
    /// stalled; the run ends with `EngineError::Stalled` and the caller reconnects.
    pub stall: Duration,
    /// The newest durable segment or partial the store holds for this cluster (`None`: nothing
    /// archived yet). Streaming resumes at its end, and its long page header names the
    /// database system the archive belongs to: a server that is another system (the database
    /// was made anew behind the cluster) is refused, as its WAL would mix with the archive's
    /// and replace objects of the same name.
    pub resume: Option<&'a NewWalObject>,
    pub cancel: &'a CancellationToken,
    /// Kept up to date while the stream runs, for metrics (`None`: not watched).
    pub position: Option<&'a ArchivePosition>,
}

/// Where one cluster's archiver stands: the server's WAL end as it last reported it, and the
/// end of the WAL stored and recorded. Written by the running archive, read by anyone.
#[derive(Debug, Default)]
pub struct ArchivePosition {
    server_end: AtomicU64,
    archived_end: AtomicU64,
}

impl ArchivePosition {
    pub(crate) fn set(&self, server_end: Lsn, archived_end: Option<Lsn>) {
        self.server_end.store(server_end.0, Ordering::Relaxed);
        self.archived_end
            .store(archived_end.map_or(0, |l| l.0), Ordering::Relaxed);
    }

    /// WAL the server has written that is not archived yet, in bytes; `None` until the server
    /// reported its end and something is archived.
    pub fn lag_bytes(&self) -> Option<u64> {
        let server = self.server_end.load(Ordering::Relaxed);
        let archived = self.archived_end.load(Ordering::Relaxed);
        (server != 0 && archived != 0).then(|| server.saturating_sub(archived))
    }
}

/// The default of [`ArchiveRequest::partial_interval`].
pub const DEFAULT_PARTIAL_INTERVAL: Duration = Duration::from_secs(10);

/// What the caller's sink did with a recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded (or already there); these repository keys are obsolete (replaced partials, or
    /// the object just stored when a longer one was already recorded): the archiver deletes
    /// them (best effort).
    Kept { obsolete_keys: Vec<String> },
    /// This archiver lost its lease: stop at once, write nothing more.
    LeaseLost,
}

/// Where the archiver records what it stored and the gaps it found (the metadata store,
/// under the cluster's archiver lease).
pub trait WalSink: Send + Sync {
    fn record(
        &self,
        object: NewWalObject,
    ) -> Pin<Box<dyn Future<Output = Result<Recorded, String>> + Send + '_>>;
    fn gap(&self, gap: WalGap) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// Why [`archive`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveEnd {
    Cancelled,
    LeaseLost,
}

/// Streams the cluster's WAL into the repository until cancelled, the lease is lost, or an
/// error (source down, store failure: the caller retries with backoff and calls again).
pub async fn archive(
    req: ArchiveRequest<'_>,
    sink: &dyn WalSink,
) -> Result<ArchiveEnd, EngineError> {
    run::archive(&req, sink).await
}

/// Drops the cluster's slot (admin cluster delete), ending a walsender still streaming from
/// it; Ok(false) if there was none.
pub async fn drop_archive_slot(
    source: &ConnectConfig,
    cluster: &DbClusterId,
) -> Result<bool, EngineError> {
    let conn = sql::connect(source).await?;
    let dropped = slot::drop(&conn, &slot_name(cluster)).await;
    conn.close().await;
    dropped
}

#[cfg(test)]
mod position_tests {
    use super::*;

    #[test]
    fn the_lag_is_known_once_the_server_reported_and_something_is_archived() {
        let p = ArchivePosition::default();
        assert_eq!(p.lag_bytes(), None);
        p.set(Lsn(0x3000_0000), None);
        assert_eq!(p.lag_bytes(), None, "nothing archived yet");
        p.set(Lsn::INVALID, Some(Lsn(0x2000_0000)));
        assert_eq!(p.lag_bytes(), None, "the server has not said where it is");
        p.set(Lsn(0x3000_0000), Some(Lsn(0x2000_0000)));
        assert_eq!(p.lag_bytes(), Some(0x1000_0000));
        // A keepalive older than the archive (reported before the last store) is no lag.
        p.set(Lsn(0x1000_0000), Some(Lsn(0x2000_0000)));
        assert_eq!(p.lag_bytes(), Some(0));
    }
}
