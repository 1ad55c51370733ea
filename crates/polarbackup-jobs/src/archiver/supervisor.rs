//! Runs one archiver per Running cluster that this server holds the archiver lease of: claims
//! free clusters, renews the leases, restarts failed archivers with backoff, applies WAL
//! retention, releases deleted clusters' WAL and slots, and stops them all on shutdown.

use super::release::release_deleted_clusters;
use super::retention::remove_expired_wal;
use super::seam::{ArchiveContext, ArchiveEnd, WalArchiver};
use super::sink::ArchiveSink;
use crate::lease::Lease;
use crate::store_call::blocking;
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::{Clock, ClusterStatus, DbClusterId, WalObjectKind};
use polarbackup_store::Store;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// How long a cluster's archiver lease lasts without renewal; another server takes the
    /// cluster over once it lapsed.
    pub lease: SignedDuration,
    /// How often to look for clusters without an archiver.
    pub poll: Duration,
    /// The first wait after a failed archiver; doubled per failure up to `retry_cap`.
    pub retry_first: Duration,
    pub retry_cap: Duration,
    /// How often each held cluster's WAL retention runs.
    pub retention_every: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            lease: SignedDuration::from_secs(30),
            poll: Duration::from_secs(2),
            retry_first: Duration::from_secs(1),
            retry_cap: Duration::from_secs(30),
            retention_every: Duration::from_secs(60),
        }
    }
}

struct Supervisor {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    archiver: Arc<dyn WalArchiver>,
    config: ArchiveConfig,
    wake: Arc<Notify>,
    /// Unique per process start, so a restarted server never mistakes old leases for its own.
    id: String,
}

/// Starts the archivers. `wake` is the workers' (a gap queues a full backup). Returns when
/// every archiver stopped after `shutdown`.
pub fn start_archivers(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    archiver: Arc<dyn WalArchiver>,
    config: ArchiveConfig,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let sup = Arc::new(Supervisor {
        store,
        clock,
        archiver,
        config,
        wake,
        id: format!("archiver-{}", uuid::Uuid::new_v4()),
    });
    tokio::spawn(async move { sup.run(shutdown).await })
}

impl Supervisor {
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        info!(worker = %self.id, "WAL archivers started");
        let mut running: JoinSet<DbClusterId> = JoinSet::new();
        let mut held: HashSet<DbClusterId> = HashSet::new();
        loop {
            match self.claim_free(&held).await {
                Ok(claimed) => {
                    for cluster in claimed {
                        held.insert(cluster.clone());
                        let sup = self.clone();
                        let lease = Lease::new(shutdown.child_token());
                        running.spawn(async move {
                            sup.hold(cluster.clone(), lease).await;
                            cluster
                        });
                    }
                }
                Err(e) => warn!(error = %e, "could not look for clusters to archive"),
            }
            if let Err(e) =
                release_deleted_clusters(self.store.clone(), self.archiver.as_ref()).await
            {
                warn!(error = %e, "could not look for deleted clusters to release");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.config.poll) => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok(cluster) = done {
                        held.remove(&cluster);
                    }
                }
            }
        }
        info!(running = running.len(), "WAL archivers stopping");
        while running.join_next().await.is_some() {}
    }

    fn lease_until(&self) -> Timestamp {
        let now = self.clock.now();
        now.checked_add(self.config.lease).unwrap_or(now)
    }

    /// Takes the lease of every Running cluster that nobody archives.
    async fn claim_free(
        &self,
        held: &HashSet<DbClusterId>,
    ) -> Result<Vec<DbClusterId>, crate::JobError> {
        let store = self.store.clone();
        let held = held.clone();
        let worker = self.id.clone();
        let until = self.lease_until();
        let now = self.clock.now();
        blocking(move || {
            let mut claimed = Vec::new();
            for (cluster, _, _) in store.schedules()? {
                if !held.contains(&cluster)
                    && store.claim_archiver(&cluster, &worker, until, now)?
                {
                    claimed.push(cluster);
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// Runs a cluster's archiver for as long as this server holds its lease.
    async fn hold(self: Arc<Self>, cluster: DbClusterId, lease: Lease) {
        info!(%cluster, "archiving the cluster's WAL");
        let heartbeat = tokio::spawn(self.clone().heartbeat(cluster.clone(), lease.clone()));
        let retention = tokio::spawn(self.clone().retention(cluster.clone(), lease.clone()));
        if let Err(e) = self.sweep_orphans(&cluster).await {
            warn!(%cluster, error = %e, "could not look for unrecorded WAL objects; next time");
        }
        let mut failures = 0u32;
        while !lease.cancel().is_cancelled() {
            let started = tokio::time::Instant::now();
            match self.archive_once(&cluster, &lease).await {
                Ok(Some(ArchiveEnd::Cancelled)) | Ok(None) => break,
                Ok(Some(ArchiveEnd::LeaseLost)) => {
                    lease.lose();
                    break;
                }
                Err(e) => {
                    // A long healthy run before the failure starts the backoff afresh.
                    if started.elapsed() > self.config.retry_cap * 2 {
                        failures = 0;
                    }
                    failures += 1;
                    let wait = self
                        .config
                        .retry_first
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(self.config.retry_cap);
                    warn!(%cluster, error = %e, failures, retry_in = ?wait, "WAL archiver failed; retrying");
                    tokio::select! {
                        () = lease.cancel().cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        heartbeat.abort();
        retention.abort();
        if !lease.is_lost() {
            let store = self.store.clone();
            let worker = self.id.clone();
            let id = cluster.clone();
            if let Err(e) = blocking(move || store.release_archiver(&id, &worker)).await {
                warn!(%cluster, error = %e, "could not release the archiver lease; it lapses");
            }
        }
        self.drop_slot_if_deleted(&cluster).await;
        info!(%cluster, lost = lease.is_lost(), "archiver stopped");
    }

    /// Removes WAL objects stored but never recorded (an upload cut off by a crash, a
    /// shutdown's time limit or a lost lease). Safe once this server holds the lease: no other
    /// worker can record for the cluster any more, and this one has not started. The listing
    /// comes first, so an object recorded before the lease changed hands is in the records.
    async fn sweep_orphans(&self, cluster: &DbClusterId) -> Result<usize, crate::JobError> {
        let stored = self.archiver.stored_wal(cluster).await?;
        let store = self.store.clone();
        let id = cluster.clone();
        let recorded: HashSet<String> = blocking(move || store.wal_objects(&id))
            .await?
            .into_iter()
            .map(|w| w.object.key)
            .collect();
        let orphans: Vec<String> = stored
            .into_iter()
            .filter(|k| !recorded.contains(k))
            .collect();
        if !orphans.is_empty() {
            warn!(%cluster, count = orphans.len(), "removing WAL objects that were stored but never recorded");
            self.archiver.delete_wal(&orphans).await?;
        }
        Ok(orphans.len())
    }

    /// `admin cluster delete` drops the slot, but an archiver reconnecting at that moment may
    /// have made it again; dropping it once more after the archiver stopped settles it.
    async fn drop_slot_if_deleted(&self, cluster: &DbClusterId) {
        let store = self.store.clone();
        let id = cluster.clone();
        let Ok(Some(c)) = blocking(move || store.cluster(&id)).await else {
            return;
        };
        if c.status != ClusterStatus::Deleted {
            return;
        }
        match self.archiver.drop_slot(&c).await {
            Ok(true) => info!(%cluster, "dropped the deleted cluster's replication slot"),
            Ok(false) => {}
            Err(e) => {
                warn!(%cluster, error = %e, "could not drop the deleted cluster's replication slot")
            }
        }
    }

    /// One run of the archiver; `Ok(None)` when the cluster no longer runs.
    async fn archive_once(
        &self,
        cluster_id: &DbClusterId,
        lease: &Lease,
    ) -> Result<Option<ArchiveEnd>, crate::JobError> {
        let store = self.store.clone();
        let id = cluster_id.clone();
        let (cluster, wal) =
            blocking(move || Ok((store.cluster(&id)?, store.wal_objects(&id)?))).await?;
        let Some(cluster) = cluster.filter(|c| c.status == ClusterStatus::Running) else {
            return Ok(None);
        };
        // The newest WAL on the newest timeline: where streaming resumes.
        let newest = wal
            .into_iter()
            .filter(|w| w.object.kind != WalObjectKind::History)
            .max_by_key(|w| (w.object.timeline, w.object.end))
            .map(|w| w.object);
        let ctx = ArchiveContext {
            cluster,
            newest,
            sink: ArchiveSink {
                store: self.store.clone(),
                clock: self.clock.clone(),
                cluster: cluster_id.clone(),
                worker: self.id.clone(),
                wake: self.wake.clone(),
                archiver: self.archiver.clone(),
            },
            cancel: lease.cancel().clone(),
        };
        self.archiver.archive(&ctx).await.map(Some)
    }

    /// Renews the lease every third of its length; a refusal (another server took it, or the
    /// cluster stopped running) stops the archiver.
    async fn heartbeat(self: Arc<Self>, cluster: DbClusterId, lease: Lease) {
        let every = Duration::from_millis((self.config.lease.as_millis() / 3).max(100) as u64);
        loop {
            tokio::time::sleep(every).await;
            let store = self.store.clone();
            let worker = self.id.clone();
            let id = cluster.clone();
            let until = self.lease_until();
            let now = self.clock.now();
            match blocking(move || store.claim_archiver(&id, &worker, until, now)).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(%cluster, "archiver lease lost (taken over, or the cluster stopped running)");
                    lease.lose();
                    return;
                }
                Err(e) => warn!(%cluster, error = %e, "archiver heartbeat failed; will retry"),
            }
        }
    }

    async fn retention(self: Arc<Self>, cluster: DbClusterId, lease: Lease) {
        loop {
            tokio::select! {
                () = lease.cancel().cancelled() => return,
                () = tokio::time::sleep(self.config.retention_every) => {}
            }
            if let Err(e) = remove_expired_wal(
                self.store.clone(),
                self.clock.as_ref(),
                self.archiver.as_ref(),
                &cluster,
            )
            .await
            {
                warn!(%cluster, error = %e, "WAL retention failed; will retry");
            }
        }
    }
}
