//! The store's job lifecycle contract: CreateBackup bookkeeping, leases, backup sets, deletion.

use crate::common::{created, finish, manual, new_cluster, page, setup, t, Backend};
use polarbackup_model::{BackupJobId, BackupSetStatus, JobMode, JobStatus};
use polarbackup_store::{CreateJobOutcome, DeleteRefusal};

pub fn client_tokens_are_idempotent_and_bound_to_their_parameters(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let job = created(
        store
            .create_manual_job(&manual(&account, &cluster, Some("tok"), "a"), t(1), 3)
            .expect("create"),
    );
    assert_eq!(
        store
            .create_manual_job(&manual(&account, &cluster, Some("tok"), "a"), t(2), 3)
            .expect("again"),
        CreateJobOutcome::Existing(job.clone())
    );
    assert_eq!(
        store
            .create_manual_job(&manual(&account, &cluster, Some("tok"), "b"), t(3), 3)
            .expect("mismatch"),
        CreateJobOutcome::TokenMismatch
    );
    let other_account = store.create_account(None, t(0)).expect("account").id;
    let other_cluster = new_cluster(&*store, &other_account);
    let other = created(
        store
            .create_manual_job(
                &manual(&other_account, &other_cluster, Some("tok"), "a"),
                t(4),
                3,
            )
            .expect("tokens are per account"),
    );
    assert_ne!(other.id, job.id);
}

pub fn at_most_three_manual_backups_exist_at_once(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let req = manual(&account, &cluster, None, "a");
    let jobs: Vec<_> = (0..3)
        .map(|i| created(store.create_manual_job(&req, t(i), 3).expect("create")))
        .collect();
    assert_eq!(
        store.create_manual_job(&req, t(5), 3).expect("fourth"),
        CreateJobOutcome::LimitReached
    );
    // A failed job frees its slot; a finished one keeps it until deleted.
    let mut failed = jobs[0].clone();
    failed.fail("boom", t(6)).expect("fail");
    store.end_job(&failed, None, None).expect("end");
    let fourth = created(store.create_manual_job(&req, t(7), 3).expect("slot freed"));
    let set = finish(&*store, jobs[1].clone(), 8);
    assert_eq!(
        store.create_manual_job(&req, t(9), 3).expect("still full"),
        CreateJobOutcome::LimitReached
    );
    let hidden = store
        .begin_delete_sets(&cluster, &[set.id])
        .expect("delete")
        .expect("allowed");
    assert_eq!(hidden, vec![set]);
    created(
        store
            .create_manual_job(&req, t(10), 3)
            .expect("slot freed by delete"),
    );
    assert!(fourth.id > jobs[2].id);
}

pub fn one_lease_per_cluster_and_abandoned_jobs_are_found(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let other = new_cluster(&*store, &account);
    let req = manual(&account, &cluster, None, "a");
    let a = created(store.create_manual_job(&req, t(1), 3).expect("a"));
    let b = created(store.create_manual_job(&req, t(2), 3).expect("b"));
    let c = created(
        store
            .create_manual_job(&manual(&account, &other, None, "a"), t(3), 3)
            .expect("c"),
    );

    let lease = t(130);
    let first = store
        .claim_job("w1", lease, t(100))
        .expect("claim")
        .expect("a job");
    assert_eq!(first.id, a.id);
    assert_eq!(first.comment.as_deref(), Some("c"));
    let second = store
        .claim_job("w2", lease, t(100))
        .expect("claim")
        .expect("a job");
    assert_eq!(second.id, c.id, "b waits: its cluster is busy");
    assert!(store
        .claim_job("w3", lease, t(100))
        .expect("claim")
        .is_none());

    let mut running = first.clone();
    running
        .advance(JobStatus::Preparing, 2, t(101))
        .expect("prep");
    store.update_job(&running, Some("w1")).expect("update");
    assert!(store.renew_lease(a.id, "w1", t(160)).expect("renew"));
    assert!(!store.renew_lease(a.id, "w2", t(160)).expect("not w2's"));
    assert!(store.abandoned_jobs(t(150)).expect("abandoned").is_empty());
    assert_eq!(
        store
            .fail_abandoned_job(a.id, "interrupted", t(150))
            .expect("recover"),
        None,
        "a live lease is not taken over"
    );
    // w1 dies: its lease runs out.
    let lost = store.abandoned_jobs(t(161)).expect("abandoned");
    assert_eq!(lost.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a.id]);
    assert_eq!(
        store
            .fail_abandoned_job(c.id, "interrupted", t(161))
            .expect("recover"),
        None,
        "a claimed job that never started is claimed again, not recovered"
    );
    let failed = store
        .fail_abandoned_job(a.id, "interrupted", t(162))
        .expect("recover")
        .expect("taken over");
    assert_eq!(
        (
            failed.status,
            failed.process,
            failed.failure_reason.as_deref()
        ),
        (JobStatus::Failed, 2, Some("interrupted"))
    );
    assert!(store.abandoned_jobs(t(162)).expect("abandoned").is_empty());
    assert!(!store
        .renew_lease(a.id, "w1", t(200))
        .expect("ended jobs have no lease"));
    let third = store
        .claim_job("w3", t(300), t(170))
        .expect("claim")
        .expect("b now");
    assert_eq!(third.id, b.id);
}

pub fn sets_are_listed_filtered_and_paged_newest_first(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let req = manual(&account, &cluster, None, "a");
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = created(
            store
                .create_manual_job(&req, t(i * 100), 3)
                .expect("create"),
        );
        ids.push(finish(&*store, job, i * 100 + 50).id);
    }
    let auto = store
        .insert_job(
            &cluster,
            JobMode::Automated,
            polarbackup_model::TaskAction::NormalBackupTask,
            t(400),
        )
        .expect("auto");
    let auto_set = finish(&*store, auto, 450);

    let all = store
        .list_backup_sets(&cluster, &page(0, 1000, 30, 1))
        .expect("list");
    assert_eq!(all.total, 4);
    assert_eq!(
        all.sets.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![auto_set.id, ids[2], ids[1], ids[0]]
    );
    let p2 = store
        .list_backup_sets(&cluster, &page(0, 1000, 3, 2))
        .expect("page 2");
    assert_eq!((p2.total, p2.sets.len()), (4, 1));
    let past = store
        .list_backup_sets(&cluster, &page(0, 1000, 3, 9))
        .expect("past the end");
    assert_eq!((past.total, past.sets.len()), (4, 0));
    let window = store
        .list_backup_sets(&cluster, &page(100, 200, 30, 1))
        .expect("window");
    assert_eq!(
        window.sets.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let mut f = page(0, 1000, 30, 1);
    f.mode = Some(JobMode::Automated);
    assert_eq!(store.list_backup_sets(&cluster, &f).expect("mode").total, 1);
    f.mode = None;
    f.status = Some(BackupSetStatus::Failed);
    assert_eq!(
        store.list_backup_sets(&cluster, &f).expect("status").total,
        0
    );
    f.status = None;
    f.id = Some(ids[1]);
    assert_eq!(
        store.list_backup_sets(&cluster, &f).expect("id").sets[0].id,
        ids[1]
    );

    // Deletion: all ids are checked before any is hidden.
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[ids[0], auto_set.id])
            .expect("delete"),
        Err(DeleteRefusal::Automated(auto_set.id))
    );
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[ids[0], BackupJobId(1)])
            .expect("delete"),
        Err(DeleteRefusal::NotFound(BackupJobId(1)))
    );
    let other = new_cluster(&*store, &account);
    assert_eq!(
        store.begin_delete_sets(&other, &[ids[0]]).expect("delete"),
        Err(DeleteRefusal::NotFound(ids[0]))
    );
    assert_eq!(
        store
            .list_backup_sets(&cluster, &page(0, 1000, 30, 1))
            .expect("list")
            .total,
        4
    );
    let hidden = store
        .begin_delete_sets(&cluster, &[ids[0], ids[1]])
        .expect("delete")
        .expect("ok");
    assert_eq!(hidden.len(), 2);
    assert_eq!(
        store
            .list_backup_sets(&cluster, &page(0, 1000, 30, 1))
            .expect("list")
            .total,
        2
    );
    assert_eq!(store.pending_deletions().expect("pending").len(), 2);
    assert!(
        store.known_backup_ids().expect("known").contains(&ids[0]),
        "kept until forgotten"
    );
    store.forget_set(ids[0]).expect("forget");
    assert_eq!(store.pending_deletions().expect("pending").len(), 1);
    assert!(!store.known_backup_ids().expect("known").contains(&ids[0]));
    assert_eq!(
        store
            .begin_delete_sets(&cluster, &[ids[1]])
            .expect("delete"),
        Err(DeleteRefusal::NotFound(ids[1])),
        "already being deleted"
    );
}

pub fn ending_needs_a_terminal_job_and_never_moves_back(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let job = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "a"), t(1), 3)
            .expect("create"),
    );
    assert!(
        store.end_job(&job, None, None).is_err(),
        "NoStart is not an end"
    );
    let set = finish(&*store, job.clone(), 10);
    let mut late = job;
    late.fail("late", t(20)).expect("in memory");
    assert!(
        store.end_job(&late, None, None).is_err(),
        "a finished job stays finished"
    );
    assert_eq!(
        store
            .list_backup_sets(&set.cluster_id, &page(0, 100, 30, 1))
            .expect("list")
            .sets,
        vec![set]
    );
}

pub fn a_set_keeps_its_place_in_the_wal(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let ok = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "a"), t(1), 3)
            .expect("create"),
    );
    let finished = finish(&*store, ok, 10);
    let wal = finished.wal.expect("a finished set has its WAL range");
    assert!(wal.start < wal.end);
    let loaded = store
        .backup_set(finished.id)
        .expect("load")
        .expect("listed");
    assert_eq!(loaded.wal, Some(wal));
    assert_eq!(loaded, finished);

    let bad = created(
        store
            .create_manual_job(&manual(&account, &cluster, None, "b"), t(2), 3)
            .expect("create"),
    );
    let failed = crate::common::fail(&*store, bad, 11);
    let loaded = store.backup_set(failed.id).expect("load").expect("listed");
    assert_eq!(loaded.wal, None, "a failed set has no WAL range");
}
