//! Incremental backups' bookkeeping: a job's kind and a set's parent round-trip, a cluster's
//! schedule of full backups, DeleteBackup refusing a set that others are built on, and retention
//! keeping a kept set's chain (only while that chain can be restored).

use crate::common::{created, finish, finish_on, finish_on_as, manual, setup, t, Backend};
use polarbackup_model::policy::{FullBackupEvery, RetentionOnClusterDeletion};
use polarbackup_model::{
    BackupJob, BackupJobId, BackupKind, BackupSet, ClusterStatus, DbClusterId, JobMode, TaskAction,
};
use polarbackup_store::{
    ClusterDeletion, CreateJobOutcome, DeleteRefusal, JobFilter, ManualJobRequest, Store,
};

fn listed(store: &dyn Store, cluster: &DbClusterId) -> Vec<BackupJobId> {
    store
        .cluster_sets(cluster)
        .expect("sets")
        .iter()
        .map(|s| s.id)
        .collect()
}

fn pending(store: &dyn Store) -> Vec<BackupJobId> {
    store
        .pending_deletions()
        .expect("pending")
        .iter()
        .map(|s| s.id)
        .collect()
}

fn automated(store: &dyn Store, cluster: &DbClusterId, slot: i64, kind: BackupKind) -> BackupJob {
    store
        .schedule_automated_job(cluster, t(slot), kind, t(slot))
        .expect("schedule")
        .expect("slot")
}

/// full (automated) ← i1 ← i2, all successful.
fn chain(store: &dyn Store, cluster: &DbClusterId) -> [BackupSet; 3] {
    let full = finish(store, automated(store, cluster, 100, BackupKind::Full), 110);
    let i1 = finish_on(
        store,
        automated(store, cluster, 200, BackupKind::Incremental),
        210,
        full.id,
    );
    let i2 = finish_on(
        store,
        automated(store, cluster, 300, BackupKind::Incremental),
        310,
        i1.id,
    );
    [full, i1, i2]
}

pub fn kind_and_parent_round_trip(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let job = automated(&*store, &cluster, 100, BackupKind::Incremental);
    assert_eq!(job.kind, BackupKind::Incremental);
    let claimed = store
        .claim_job("w1", t(10_000), t(101))
        .expect("claim")
        .expect("queued");
    assert_eq!(
        (claimed.id, claimed.kind),
        (job.id, BackupKind::Incremental)
    );
    let listed_jobs = store
        .list_jobs(
            &cluster,
            &JobFilter {
                job_id: None,
                mode: None,
                ended_since: t(0),
            },
        )
        .expect("list");
    assert_eq!(listed_jobs[0].kind, BackupKind::Incremental);
    // CreateBackup and the other inserts take full backups.
    let manual_job = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "fp"), t(102), 3)
            .expect("create"),
    );
    assert_eq!(manual_job.kind, BackupKind::Full);
    let inserted = store
        .insert_job(
            &cluster,
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            t(103),
        )
        .expect("insert");
    assert_eq!(inserted.kind, BackupKind::Full);

    let base = finish(&*store, manual_job, 120);
    assert_eq!(base.parent, None);
    let child = finish_on_as(&*store, claimed, 130, base.id, Some("w1"));
    let read = store.backup_set(child.id).expect("read").expect("listed");
    assert_eq!(read, child);
    assert_eq!(read.parent, Some(base.id));
    assert_eq!(
        store
            .backup_set(base.id)
            .expect("read")
            .expect("listed")
            .parent,
        None
    );

    // The cluster's schedule of full backups: the server's default until set.
    let read_setting = |s: &dyn Store| {
        s.cluster(&cluster)
            .expect("read")
            .expect("cluster")
            .full_backup_every
    };
    assert_eq!(read_setting(&*store), None);
    for every in [
        Some(FullBackupEvery::Always),
        Some(FullBackupEvery::Week),
        None,
    ] {
        assert_eq!(
            store.set_full_backup_every(&cluster, every).expect("set"),
            Ok(())
        );
        assert_eq!(read_setting(&*b.open()), every, "seen by another handle");
    }
}

/// `admin backup --type incremental`: a manual job keeps the kind it was asked for through the
/// claim and the listing, counts against the manual limit like a full one, and its set records
/// its parent; CreateBackup's requests stay full.
pub fn a_manual_job_takes_the_kind_asked_for(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let full = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "fp"), t(100), 2)
            .expect("create full"),
    );
    assert_eq!(full.kind, BackupKind::Full);
    let base = finish(&*store, full, 110);
    let request = ManualJobRequest {
        kind: BackupKind::Incremental,
        ..manual(&account, &cluster, None, "fp")
    };
    let job = created(
        store
            .create_manual_job(&request, t(200), 2)
            .expect("create incremental"),
    );
    assert_eq!(
        (job.kind, job.mode),
        (BackupKind::Incremental, JobMode::Manual)
    );
    let listed_jobs = store
        .list_jobs(
            &cluster,
            &JobFilter {
                job_id: Some(job.id),
                mode: None,
                ended_since: t(0),
            },
        )
        .expect("list");
    assert_eq!(listed_jobs.len(), 1);
    assert_eq!(listed_jobs[0].kind, BackupKind::Incremental);
    // The limit counts the finished full set and the queued incremental job alike.
    assert_eq!(
        store.create_manual_job(&request, t(201), 2).expect("third"),
        CreateJobOutcome::LimitReached
    );
    let claimed = store
        .claim_job("w1", t(10_000), t(202))
        .expect("claim")
        .expect("queued");
    assert_eq!(
        (claimed.id, claimed.kind),
        (job.id, BackupKind::Incremental)
    );
    let child = finish_on_as(&*store, claimed, 210, base.id, Some("w1"));
    let read = store.backup_set(child.id).expect("read").expect("listed");
    assert_eq!((read.parent, read.mode), (Some(base.id), JobMode::Manual));
}

pub fn the_full_backup_setting_needs_a_running_cluster(b: &dyn Backend) {
    let (store, _, cluster) = setup(b);
    store
        .begin_cluster_deletion(&cluster, Some(RetentionOnClusterDeletion::None), t(10))
        .expect("delete")
        .expect("started");
    assert_eq!(
        store
            .set_full_backup_every(&cluster, Some(FullBackupEvery::Always))
            .expect("set"),
        Err(ClusterStatus::Deleted)
    );
    assert_eq!(
        store
            .cluster(&cluster)
            .expect("read")
            .expect("tombstone")
            .full_backup_every,
        None
    );
}

pub fn a_parent_is_not_deleted_while_a_child_remains(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let base = finish(
        &*store,
        created(
            store
                .create_manual_job(&manual(&account, &cluster, None, "fp"), t(10), 3)
                .expect("create"),
        ),
        20,
    );
    let c1 = finish_on(
        &*store,
        automated(&*store, &cluster, 100, BackupKind::Incremental),
        110,
        base.id,
    );
    let c2 = finish_on(
        &*store,
        automated(&*store, &cluster, 200, BackupKind::Incremental),
        210,
        base.id,
    );
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[base.id])
            .expect("delete"),
        Err(DeleteRefusal::Dependency {
            id: base.id,
            children: vec![c1.id, c2.id],
        })
    );
    assert_eq!(
        listed(&*store, &cluster),
        vec![base.id, c1.id, c2.id],
        "nothing hidden"
    );
    assert!(pending(&*store).is_empty());
    // One child gone (retention): still refused, naming the other.
    store.expire_sets(&[c1.id]).expect("expire");
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[base.id])
            .expect("delete"),
        Err(DeleteRefusal::Dependency {
            id: base.id,
            children: vec![c2.id],
        })
    );
    // Both gone: the base goes.
    store.expire_sets(&[c2.id]).expect("expire");
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[base.id])
            .expect("delete")
            .map(|s| s.iter().map(|s| s.id).collect::<Vec<_>>()),
        Ok(vec![base.id])
    );
    assert_eq!(pending(&*store), vec![base.id, c1.id, c2.id]);
}

pub fn a_released_chain_is_deleted_together_or_tip_first(b: &dyn Backend) {
    let (store, _, cluster) = setup(b);
    let [full, i1, i2] = chain(&*store, &cluster);
    store
        .begin_cluster_deletion(&cluster, Some(RetentionOnClusterDeletion::All), t(400))
        .expect("delete")
        .expect("started");
    // Detached sets are deletable whatever their mode, but not from under a child.
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[full.id, i1.id])
            .expect("delete"),
        Err(DeleteRefusal::Dependency {
            id: i1.id,
            children: vec![i2.id],
        })
    );
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 3);
    let taken = store
        .begin_delete_sets(&cluster, &[full.id, i2.id, i1.id])
        .expect("delete")
        .expect("whole chain");
    assert_eq!(taken.len(), 3);
    assert_eq!(store.detached_set_count(&cluster).expect("count"), 0);
}

pub fn cluster_deletion_still_removes_every_set(b: &dyn Backend) {
    let (store, _, cluster) = setup(b);
    let sets = chain(&*store, &cluster);
    let outcome = store
        .begin_cluster_deletion(&cluster, Some(RetentionOnClusterDeletion::None), t(400))
        .expect("delete")
        .expect("started");
    assert!(matches!(outcome, ClusterDeletion::Deleted { .. }));
    assert_eq!(
        pending(&*store),
        sets.iter().map(|s| s.id).collect::<Vec<_>>()
    );
}

pub fn retention_keeps_the_parents_of_a_kept_set(b: &dyn Backend) {
    let (store, _, cluster) = setup(b);
    let [full, i1, i2] = chain(&*store, &cluster);
    // The tip stays: its chain stays with it.
    store.expire_sets(&[full.id, i1.id]).expect("expire");
    assert_eq!(listed(&*store, &cluster), vec![full.id, i1.id, i2.id]);
    store.expire_sets(&[full.id]).expect("expire");
    assert_eq!(listed(&*store, &cluster), vec![full.id, i1.id, i2.id]);
    // Only the tip: it goes alone.
    store.expire_sets(&[i2.id]).expect("expire");
    assert_eq!(listed(&*store, &cluster), vec![full.id, i1.id]);
    // The rest of the chain together, in a later pass.
    store.expire_sets(&[full.id, i1.id]).expect("expire");
    assert!(listed(&*store, &cluster).is_empty());
    assert_eq!(pending(&*store), vec![full.id, i1.id, i2.id]);
}

pub fn a_broken_chain_keeps_nothing_alive(b: &dyn Backend) {
    let (store, _, cluster) = setup(b);
    let [full, i1, i2] = chain(&*store, &cluster);
    assert!(store
        .mark_set_corrupt(full.id, "chunk 3: digest mismatch", t(320))
        .expect("mark"));
    // i2 cannot be restored any more: it does not keep i1 or the corrupt full set.
    store.expire_sets(&[full.id, i1.id]).expect("expire");
    assert_eq!(listed(&*store, &cluster), vec![i2.id]);
}
