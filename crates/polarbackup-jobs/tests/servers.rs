//! Three servers' worker pools on one store (three handles, as three processes hold), on SQLite
//! and on PostgreSQL: every job ends exactly once and never two at once on one cluster, and a
//! server that dies mid-backup has its job failed by another, whose next backup succeeds.

mod common;

use common::Backend;
use jiff::SignedDuration;
use polarbackup_jobs::{
    start, BoxFuture, CancellationToken, Completed, Executor, JobContext, JobError, WorkerConfig,
};
use polarbackup_model::{
    AccountId, BackupJobId, BackupSetStatus, Clock, DbClusterId, JobStatus, SystemClock,
};
use polarbackup_store::{CreateJobOutcome, JobFilter, ManualJobRequest, Store};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The repository and the engine every server shares: what is stored, which cluster is being
/// backed up right now, how often each job ran, and any overlap seen on a cluster.
#[derive(Default)]
struct Shared {
    stored: Mutex<BTreeSet<BackupJobId>>,
    busy: Mutex<HashSet<DbClusterId>>,
    runs: Mutex<BTreeMap<BackupJobId, u32>>,
    overlaps: Mutex<Vec<DbClusterId>>,
}

/// One server's engine over the shared state. A job commented "hang" runs until cancelled.
struct Scripted(Arc<Shared>);

impl Executor for Scripted {
    fn backup<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Completed, JobError>> {
        Box::pin(async move {
            let shared = &self.0;
            let cluster = ctx.cluster.id.clone();
            if !shared.busy.lock().unwrap().insert(cluster.clone()) {
                shared.overlaps.lock().unwrap().push(cluster.clone());
            }
            *shared.runs.lock().unwrap().entry(ctx.job_id).or_default() += 1;
            shared.stored.lock().unwrap().insert(ctx.job_id);
            let result = async {
                ctx.progress.phase(JobStatus::Preparing, 1).await?;
                ctx.progress.phase(JobStatus::Uploading, 5).await?;
                if ctx.progress.job().comment.as_deref() == Some("hang") {
                    ctx.cancel.cancelled().await;
                    return Err(JobError::Cancelled);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                ctx.progress.phase(JobStatus::Checking, 90).await?;
                Ok(common::completed(ctx.progress.now()))
            }
            .await;
            shared.busy.lock().unwrap().remove(&cluster);
            result
        })
    }

    fn discard(&self, id: BackupJobId) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(async move {
            self.0.stored.lock().unwrap().remove(&id);
            Ok(())
        })
    }

    fn stored_ids(&self) -> BoxFuture<'_, Result<Vec<BackupJobId>, JobError>> {
        Box::pin(async move { Ok(self.0.stored.lock().unwrap().iter().copied().collect()) })
    }
}

/// A server's pool on its own store handle.
struct Server {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    wake: Arc<Notify>,
}

impl Server {
    fn start(store: Arc<dyn Store>, shared: &Arc<Shared>, lease_secs: i64) -> Server {
        let (shutdown, wake) = (CancellationToken::new(), Arc::new(Notify::new()));
        let handle = start(
            store,
            Arc::new(SystemClock),
            Arc::new(Scripted(shared.clone())),
            WorkerConfig {
                concurrency: 3,
                lease: SignedDuration::from_secs(lease_secs),
                poll: Duration::from_millis(50),
                scheduler: false,
                orphan_sweep: Duration::from_millis(200),
                full_backup_every: polarbackup_model::policy::FullBackupEvery::Week,
            },
            wake.clone(),
            shutdown.clone(),
        );
        Server {
            shutdown,
            handle,
            wake,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("pool");
    }
}

fn queue(
    store: &dyn Store,
    account: &AccountId,
    cluster: &DbClusterId,
    comment: &str,
) -> BackupJobId {
    let req = ManualJobRequest {
        cluster: cluster.clone(),
        account: account.clone(),
        client_token: None,
        fingerprint: String::new(),
        comment: Some(comment.into()),
        kind: polarbackup_model::BackupKind::Full,
    };
    match store
        .create_manual_job(&req, SystemClock.now(), 10)
        .expect("create")
    {
        CreateJobOutcome::Created(j) => j.id,
        other => panic!("{other:?}"),
    }
}

fn job(store: &dyn Store, cluster: &DbClusterId, id: BackupJobId) -> polarbackup_model::BackupJob {
    let f = JobFilter {
        job_id: Some(id),
        mode: None,
        ended_since: jiff::Timestamp::MIN,
    };
    store.list_jobs(cluster, &f).expect("list").remove(0)
}

async fn three_pools_end_every_job_once_and_one_at_a_time_per_cluster(backend: Backend) {
    let stores: Vec<Arc<dyn Store>> = (0..3).map(|_| backend.open()).collect();
    let account = stores[0]
        .create_account(None, SystemClock.now())
        .expect("account")
        .id;
    let clusters: Vec<_> = (0..20)
        .map(|_| common::add_cluster(&*stores[0], &account, SystemClock.now()))
        .collect();
    let shared = Arc::new(Shared::default());
    let servers: Vec<_> = stores
        .iter()
        .map(|s| Server::start(s.clone(), &shared, 30))
        .collect();
    // Requests arrive on every server, three per cluster.
    let mut jobs = Vec::new();
    for round in 0..3 {
        for (i, cluster) in clusters.iter().enumerate() {
            let at = &stores[(i + round) % 3];
            jobs.push((cluster.clone(), queue(&**at, &account, cluster, "ok")));
            servers[(i + round) % 3].wake.notify_one();
        }
    }
    common::wait_long("every job ended", Duration::from_secs(120), || {
        jobs.iter()
            .all(|(c, id)| job(&*stores[1], c, *id).status.is_terminal())
    })
    .await;
    for s in servers {
        s.stop().await;
    }
    for (cluster, id) in &jobs {
        assert_eq!(
            job(&*stores[2], cluster, *id).status,
            JobStatus::Finished,
            "{id}"
        );
        let set = stores[2].backup_set(*id).expect("set").expect("listed");
        assert_eq!(set.status, BackupSetStatus::Success);
    }
    let runs = shared.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), jobs.len());
    assert!(runs.values().all(|n| *n == 1), "a job ran twice: {runs:?}");
    assert_eq!(
        *shared.overlaps.lock().unwrap(),
        [],
        "two backups at once on a cluster"
    );
}

/// A server dies (its runtime gone: no heartbeat, no clean-up) in the middle of a backup; once
/// its lease lapses, another server fails the job as interrupted and removes its data, and the
/// cluster's next backup runs on a surviving server.
async fn a_server_dying_mid_backup_is_recovered_by_another(backend: Backend) {
    let stores: Vec<Arc<dyn Store>> = (0..3).map(|_| backend.open()).collect();
    let account = stores[0]
        .create_account(None, SystemClock.now())
        .expect("account")
        .id;
    let cluster = common::add_cluster(&*stores[0], &account, SystemClock.now());
    let shared = Arc::new(Shared::default());
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dying = {
        let _inside = doomed.enter();
        Server::start(stores[0].clone(), &shared, 2)
    };
    let hung = queue(&*stores[0], &account, &cluster, "hang");
    dying.wake.notify_one();
    common::wait_for("uploading", || {
        job(&*stores[1], &cluster, hung).status == JobStatus::Uploading
    })
    .await;
    doomed.shutdown_background();
    drop(dying);

    let survivors: Vec<_> = stores[1..]
        .iter()
        .map(|s| Server::start(s.clone(), &shared, 2))
        .collect();
    common::wait_long("recovered", Duration::from_secs(30), || {
        job(&*stores[2], &cluster, hung).status == JobStatus::Failed
    })
    .await;
    let failed = job(&*stores[2], &cluster, hung);
    let reason = failed.failure_reason.expect("a reason");
    assert!(reason.starts_with("interrupted"), "{reason}");
    common::wait_for("its data removed", || {
        !shared.stored.lock().unwrap().contains(&hung)
    })
    .await;
    let set = stores[2].backup_set(hung).expect("set").expect("listed");
    assert_eq!(set.status, BackupSetStatus::Failed);

    let next = queue(&*stores[1], &account, &cluster, "ok");
    survivors[0].wake.notify_one();
    common::wait_for("the next backup finished", || {
        job(&*stores[2], &cluster, next).status == JobStatus::Finished
    })
    .await;
    for s in survivors {
        s.stop().await;
    }
    assert!(shared.stored.lock().unwrap().contains(&next));
    assert_eq!(
        shared.runs.lock().unwrap().get(&hung),
        Some(&1),
        "never run again"
    );
}

on_both_backends!(
    three_pools_end_every_job_once_and_one_at_a_time_per_cluster,
    a_server_dying_mid_backup_is_recovered_by_another,
);
