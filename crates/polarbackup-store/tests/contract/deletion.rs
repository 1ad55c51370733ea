//! Cluster deletion in the store: refused while a job is queued or running, atomic against
//! CreateBackup and the scheduler, and what NONE, ALL and LATEST (finished or failed) leave.

use crate::common::{
    automated, created, fail, fail_as, finish, finish_as, manual, page, setup, t, Backend,
};
use polarbackup_model::policy::{PolicyChange, RetentionOnClusterDeletion as Retention};
use polarbackup_model::{
    AccountId, BackupJob, BackupJobId, BackupKind, BackupSet, Cluster, ClusterStatus, DbClusterId,
    JobMode, JobStatus, TaskAction,
};
use polarbackup_store::{
    ClusterDeletion, CreateJobOutcome, DeleteRefusal, DeletionRefusal, SetFilter, Store,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn row(store: &dyn Store, cluster: &DbClusterId) -> Cluster {
    store
        .cluster(cluster)
        .expect("load")
        .expect("kept, as a tombstone once deleted")
}

fn status(store: &dyn Store, cluster: &DbClusterId) -> ClusterStatus {
    row(store, cluster).status
}

/// A worker takes the final backup of a LATEST deletion.
fn claim_final_backup(store: &dyn Store) -> BackupJob {
    store
        .claim_job("w", t(200), t(61))
        .expect("claim")
        .expect("the final backup")
}

fn all_time() -> SetFilter {
    page(-1_000_000, 1_000_000, 100, 1)
}

fn ids(sets: &[BackupSet]) -> Vec<BackupJobId> {
    sets.iter().map(|s| s.id).collect()
}

fn listed(store: &dyn Store, cluster: &DbClusterId) -> Vec<BackupJobId> {
    ids(&store
        .list_backup_sets(cluster, &all_time())
        .expect("list")
        .sets)
}

fn detached(store: &dyn Store, cluster: &DbClusterId) -> Vec<BackupJobId> {
    ids(&store
        .list_detached_sets(cluster, &all_time())
        .expect("list")
        .sets)
}

fn pending(store: &dyn Store) -> Vec<BackupJobId> {
    ids(&store.pending_deletions().expect("pending"))
}

fn scheduled(store: &dyn Store, cluster: &DbClusterId) -> bool {
    let all = store.schedules().expect("schedules");
    all.iter().any(|(id, _, _)| id == cluster)
}

/// A CreateBackup job, queued.
fn queue_manual(
    store: &dyn Store,
    account: &AccountId,
    cluster: &DbClusterId,
    at: i64,
) -> BackupJob {
    created(
        store
            .create_manual_job(&manual(account, cluster, None, "a"), t(at), 3)
            .expect("create"),
    )
}

/// A finished manual set, a finished automated set and a failed automated one, in that order.
fn three_sets(store: &dyn Store, account: &AccountId, cluster: &DbClusterId) -> [BackupSet; 3] {
    let m = queue_manual(store, account, cluster, 1);
    let manual_set = finish(store, m, 10);
    let auto_set = finish(store, automated(store, cluster, 20), 30);
    let failed_set = fail(store, automated(store, cluster, 40), 50);
    [manual_set, auto_set, failed_set]
}

fn pending_deletion(
    store: &dyn Store,
    cluster: &DbClusterId,
    at: i64,
) -> (BackupJob, Vec<BackupSet>) {
    match store
        .begin_cluster_deletion(cluster, Some(Retention::Latest), t(at))
        .expect("begin")
    {
        Ok(ClusterDeletion::Pending { job, doomed }) => (job, doomed),
        other => panic!("expected a pending LATEST deletion, got {other:?}"),
    }
}

pub fn a_queued_or_running_job_refuses_the_deletion_and_nothing_changes(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let queued = queue_manual(&*store, &account, &cluster, 1);
    assert_eq!(
        store
            .begin_cluster_deletion(&cluster, Some(Retention::None), t(2))
            .expect("begin"),
        Err(DeletionRefusal::ActiveJob(queued.clone()))
    );
    let mut running = store
        .claim_job("w", t(100), t(3))
        .expect("claim")
        .expect("the job");
    running
        .advance(JobStatus::Preparing, 2, t(4))
        .expect("prepare");
    running
        .advance(JobStatus::Uploading, 40, t(5))
        .expect("upload");
    store.update_job(&running, Some("w")).expect("update");
    for retention in [Retention::All, Retention::Latest, Retention::None] {
        assert_eq!(
            store
                .begin_cluster_deletion(&cluster, Some(retention), t(6))
                .expect("begin"),
            Err(DeletionRefusal::ActiveJob(running.clone())),
            "{retention:?}"
        );
    }
    let all_jobs = polarbackup_store::JobFilter {
        job_id: None,
        mode: None,
        ended_since: jiff::Timestamp::MIN,
    };
    assert_eq!(store.list_jobs(&cluster, &all_jobs).expect("jobs").len(), 1);
    assert_eq!(status(&*store, &cluster), ClusterStatus::Running);
    let set = finish_as(&*store, running, 10, Some("w"));
    let done = store
        .begin_cluster_deletion(&cluster, Some(Retention::None), t(11))
        .expect("begin");
    assert_eq!(
        done,
        Ok(ClusterDeletion::Deleted {
            retention: Retention::None,
            kept: vec![],
            deleted: vec![set],
        })
    );
    assert_eq!(
        store
            .begin_cluster_deletion(&cluster, None, t(12))
            .expect("begin"),
        Err(DeletionRefusal::NotRunning(ClusterStatus::Deleted))
    );
}

pub fn once_deleting_no_backup_policy_or_deletion_can_start(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let m = queue_manual(&*store, &account, &cluster, 1);
    let set = finish(&*store, m, 10);
    let (job, doomed) = pending_deletion(&*store, &cluster, 20);
    assert_eq!(
        (job.action, job.mode, job.status),
        (
            TaskAction::TempBackupTask,
            JobMode::Automated,
            JobStatus::NoStart
        )
    );
    assert_eq!(doomed, vec![set.clone()]);
    let c = row(&*store, &cluster);
    assert_eq!(
        (c.status, c.deletion_retention, c.deletion_job, c.deleted_at),
        (
            ClusterStatus::Deleting,
            Some(Retention::Latest),
            Some(job.id),
            None
        )
    );

    let deleting = ClusterStatus::Deleting;
    assert_eq!(
        store
            .create_manual_job(&manual(&account, &cluster, None, "b"), t(21), 3)
            .expect("create"),
        CreateJobOutcome::ClusterNotRunning(deleting)
    );
    assert_eq!(
        store
            .schedule_automated_job(&cluster, t(500), BackupKind::Full, t(500))
            .expect("schedule"),
        None
    );
    assert!(!scheduled(&*store, &cluster), "the scheduler skips it");
    assert_eq!(
        store
            .modify_backup_policy(&cluster, &PolicyChange::default())
            .expect("policy"),
        Err(deleting)
    );
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[set.id])
            .expect("delete"),
        Err(DeleteRefusal::ClusterNotRunning(deleting))
    );
    assert_eq!(
        store
            .begin_cluster_deletion(&cluster, Some(Retention::None), t(22))
            .expect("begin"),
        Err(DeletionRefusal::NotRunning(deleting))
    );
    // Reads still work, and the final backup is claimed like any job.
    assert_eq!(listed(&*store, &cluster), vec![set.id]);
    assert_eq!(claim_final_backup(&*store).id, job.id);
}

pub fn none_hides_every_set_for_deletion_and_releases_the_cluster(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let sets = three_sets(&*store, &account, &cluster);
    // No override: the policy's retention, NONE by default.
    let outcome = store
        .begin_cluster_deletion(&cluster, None, t(60))
        .expect("begin");
    assert_eq!(
        outcome,
        Ok(ClusterDeletion::Deleted {
            retention: Retention::None,
            kept: vec![],
            deleted: sets.to_vec(),
        })
    );
    let c = row(&*store, &cluster);
    assert_eq!(
        (c.status, c.deleted_at, c.deletion_retention),
        (ClusterStatus::Deleted, Some(t(60)), Some(Retention::None))
    );
    assert!(listed(&*store, &cluster).is_empty());
    assert!(detached(&*store, &cluster).is_empty());
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 0);
    assert_eq!(pending(&*store), ids(&sets), "data first, then rows");
    assert_eq!(
        store
            .create_manual_job(&manual(&account, &cluster, None, "b"), t(61), 3)
            .expect("create"),
        CreateJobOutcome::ClusterNotRunning(ClusterStatus::Deleted)
    );
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[sets[0].id])
            .expect("delete"),
        Err(DeleteRefusal::NotFound(sets[0].id))
    );
    for s in &sets {
        store.forget_set(s.id).expect("forget");
    }
    assert!(store.known_backup_ids().expect("known").is_empty());
}

pub fn all_detaches_every_finished_set_and_detached_sets_never_expire(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let [manual_set, auto_set, failed_set] = three_sets(&*store, &account, &cluster);
    let change = PolicyChange {
        on_cluster_deletion: Some(Retention::All),
        ..PolicyChange::default()
    };
    store
        .modify_backup_policy(&cluster, &change)
        .expect("policy")
        .expect("running");
    let outcome = store
        .begin_cluster_deletion(&cluster, None, t(60))
        .expect("begin");
    assert_eq!(
        outcome,
        Ok(ClusterDeletion::Deleted {
            retention: Retention::All,
            kept: vec![manual_set.clone(), auto_set.clone()],
            deleted: vec![failed_set.clone()],
        })
    );
    assert_eq!(status(&*store, &cluster), ClusterStatus::Deleted);
    assert!(
        listed(&*store, &cluster).is_empty(),
        "not a live set any more"
    );
    assert_eq!(
        detached(&*store, &cluster),
        vec![auto_set.id, manual_set.id]
    );
    assert_eq!(pending(&*store), vec![failed_set.id]);
    assert!(!scheduled(&*store, &cluster));
    store.expire_sets(&[auto_set.id]).expect("expire");
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 2);
    assert_eq!(pending(&*store), vec![failed_set.id]);
    // DeleteBackup takes detached sets, automated ones too; the last one ends the cluster's
    // visibility.
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[auto_set.id])
            .expect("delete")
            .map(|s| ids(&s)),
        Ok(vec![auto_set.id])
    );
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 1);
    store
        .begin_delete_sets(&cluster, &[manual_set.id])
        .expect("delete")
        .expect("allowed");
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 0);
    assert_eq!(
        pending(&*store),
        vec![manual_set.id, auto_set.id, failed_set.id]
    );
}

pub fn latest_keeps_only_the_final_backup_once_it_finishes(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let sets = three_sets(&*store, &account, &cluster);
    let (job, doomed) = pending_deletion(&*store, &cluster, 60);
    assert_eq!(doomed, sets.to_vec());
    let temp = finish_as(&*store, claim_final_backup(&*store), 100, Some("w"));
    assert_eq!(temp.id, job.id);
    let c = row(&*store, &cluster);
    assert_eq!(
        (c.status, c.deleted_at, c.deletion_job),
        (ClusterStatus::Deleted, Some(t(100)), Some(job.id))
    );
    assert_eq!(detached(&*store, &cluster), vec![temp.id]);
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 1);
    assert_eq!(pending(&*store), ids(&sets));
    assert_eq!(
        store.backup_set(temp.id).expect("set"),
        Some(temp),
        "restorable"
    );
}

pub fn latest_is_aborted_by_a_failed_final_backup_and_deletes_nothing(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let sets = three_sets(&*store, &account, &cluster);
    let (job, _) = pending_deletion(&*store, &cluster, 60);
    let failed_temp = fail_as(&*store, claim_final_backup(&*store), 100, Some("w"));
    assert_eq!(failed_temp.id, job.id);
    let c = row(&*store, &cluster);
    assert_eq!(
        (c.status, c.deletion_retention, c.deletion_job),
        (ClusterStatus::Running, None, None)
    );
    assert!(pending(&*store).is_empty());
    let mut want: Vec<_> = ids(&sets);
    want.push(job.id);
    want.reverse();
    assert_eq!(listed(&*store, &cluster), want);
    assert!(scheduled(&*store, &cluster));
    assert!(store
        .schedule_automated_job(&cluster, t(300), BackupKind::Full, t(300))
        .expect("schedule")
        .is_some());
}

/// CreateBackup and the scheduler race a deletion from other connections (as other
/// processes would): every job they get is ended soon after, so the deletion can go through
/// eventually. A job created after the deletion would leave a listed set behind.
pub fn jobs_racing_a_deletion_never_land_after_it(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let creator = b.open();
    let scheduler = b.open();
    let req = manual(&account, &cluster, None, "a");
    let stop = AtomicBool::new(false);
    let made = AtomicUsize::new(0);
    let pause = || std::thread::sleep(Duration::from_micros(500));
    let deleted = std::thread::scope(|s| {
        let creating = s.spawn(|| {
            for i in 0.. {
                match creator
                    .create_manual_job(&req, t(i), 1_000_000)
                    .expect("create")
                {
                    CreateJobOutcome::Created(job) => {
                        fail(&*creator, job, i);
                        made.fetch_add(1, Ordering::SeqCst);
                    }
                    CreateJobOutcome::ClusterNotRunning(s) => {
                        assert_eq!(s, ClusterStatus::Deleted);
                        return;
                    }
                    other => panic!("{other:?}"),
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                pause();
            }
        });
        let scheduling = s.spawn(|| {
            for i in 1.. {
                if let Some(job) = scheduler
                    .schedule_automated_job(&cluster, t(i), BackupKind::Full, t(i))
                    .expect("schedule")
                {
                    fail(&*scheduler, job, i);
                    made.fetch_add(1, Ordering::SeqCst);
                } else if status(&*scheduler, &cluster) == ClusterStatus::Deleted {
                    return;
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                pause();
            }
        });
        // A writer ends on its own only once the cluster is deleted: one that ended before
        // (it panicked, maybe leaving a job that blocks the deletion for good) ends the race at
        // once, and the scope's end reports its panic.
        let writer_gone = || creating.is_finished() || scheduling.is_finished();
        // Let both get going before racing them.
        while made.load(Ordering::SeqCst) < 20 && !writer_gone() {
            pause();
        }
        // Race for a while; then let the writers wind down, so a store whose transactions take
        // longer than the writers' pauses (a server round trip) still reaches a free moment.
        let racing = std::time::Instant::now();
        let mut deleted = false;
        while racing.elapsed() < Duration::from_secs(120) {
            if racing.elapsed() > Duration::from_secs(3) {
                stop.store(true, Ordering::SeqCst);
            }
            if writer_gone() && !stop.load(Ordering::SeqCst) {
                break;
            }
            match store
                .begin_cluster_deletion(&cluster, Some(Retention::None), t(0))
                .expect("begin")
            {
                Ok(_) => {
                    deleted = true;
                    break;
                }
                // Paced like the writers: a deletion retried without a pause can starve them
                // of serializable commits on a loaded machine.
                Err(DeletionRefusal::ActiveJob(_)) => pause(),
                Err(other) => panic!("{other:?}"),
            }
        }
        stop.store(true, Ordering::SeqCst);
        deleted
    });
    assert!(deleted, "the deletion never found a moment without a job");
    assert!(
        made.load(Ordering::SeqCst) >= 20,
        "the writers raced the deletion"
    );
    assert_eq!(status(&*store, &cluster), ClusterStatus::Deleted);
    assert!(
        listed(&*store, &cluster).is_empty(),
        "a job slipped in after the deletion"
    );
    assert_eq!(pending(&*store).len(), made.load(Ordering::SeqCst));
}
