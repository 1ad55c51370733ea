//! Storing one piece of WAL: into the repository, then recorded through the sink, then the
//! objects it made obsolete deleted.

use super::history;
use super::segment::Piece;
use super::{Recorded, WalSink};
use crate::EngineError;
use polarbackup_model::log_backup::{NewWalObject, WalObjectKind};
use polarbackup_model::{Clock, DbClusterId};
use polarbackup_repo::Repo;
use tracing::warn;

/// Where pieces go.
pub struct Target<'a> {
    pub cluster: &'a DbClusterId,
    pub repo: &'a Repo,
    pub sink: &'a dyn WalSink,
    pub clock: &'a dyn Clock,
    pub seg_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and recorded: the WAL before the piece's end may be released.
    Kept,
    LeaseLost,
}

impl Target<'_> {
    /// PostgreSQL's name of the file a piece is (a partial's too), and the name of its
    /// repository object, unique per upload: a partial's carries its end.
    fn names(&self, p: &Piece) -> (String, String) {
        match p.kind {
            WalObjectKind::Segment => {
                let n = p.start.wal_file_name(p.timeline, self.seg_size);
                (n.clone(), n)
            }
            WalObjectKind::Partial => {
                let n = p.start.wal_file_name(p.timeline, self.seg_size);
                let object = format!("{n}.{:016X}.partial", p.end.0);
                (n, object)
            }
            WalObjectKind::History => {
                let n = history::file_name(p.timeline);
                (n.clone(), n)
            }
        }
    }

    pub async fn store(&self, piece: Piece) -> Result<Outcome, EngineError> {
        let (name, object_name) = self.names(&piece);
        let (start_time, end_time) = match (piece.first_time, piece.last_time) {
            (Some(a), Some(b)) => (a, b.max(a)),
            (Some(t), None) | (None, Some(t)) => (t, t),
            (None, None) => {
                if piece.kind != WalObjectKind::History {
                    warn!(
                        cluster = self.cluster.as_str(),
                        object = object_name,
                        "the server sent no usable clock with this WAL; its times are the service's"
                    );
                }
                let now = self.clock.now();
                (now, now)
            }
        };
        let stored = self
            .repo
            .put_wal(self.cluster.as_str(), &object_name, piece.bytes)
            .await?;
        let object = NewWalObject {
            cluster_id: self.cluster.clone(),
            timeline: piece.timeline,
            kind: piece.kind,
            name,
            start: piece.start,
            end: piece.end,
            size: stored.raw_size,
            stored_size: stored.stored_size,
            key: stored.key.clone(),
            digest: stored.digest,
            start_time,
            end_time,
        };
        let obsolete = match self.sink.record(object).await.map_err(EngineError::Sink)? {
            Recorded::LeaseLost => return Ok(Outcome::LeaseLost),
            Recorded::Kept { obsolete_keys } => obsolete_keys,
        };
        // The key just written holds what is recorded under it now, even when a record it
        // replaced had the same key (a segment or history file stored again).
        for key in obsolete.iter().filter(|k| **k != stored.key) {
            if let Err(e) = self.repo.delete_wal(key).await {
                warn!(cluster = self.cluster.as_str(), key, error = %e, "cannot delete an obsolete WAL object; the orphan sweep will");
            }
        }
        Ok(Outcome::Kept)
    }
}
