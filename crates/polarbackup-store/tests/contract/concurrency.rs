//! The guarantees that only show with concurrent callers: threads, each with its own handle on
//! one database (as separate processes or servers would have), racing the same operation.

use crate::common::{created, fail, manual, setup, t, Backend};
use jiff::SignedDuration;
use polarbackup_model::policy::{PolicyChange, RetentionOnClusterDeletion};
use polarbackup_model::{
    AccessKeyId, BackupJobId, BackupKind, ClusterStatus, JobMode, JobStatus, TaskAction,
};
use polarbackup_store::{CreateJobOutcome, JobFilter, Store, StoreError};
use std::collections::BTreeSet;
use std::sync::Barrier;

pub const THREADS: usize = 6;

/// Runs `f(i, handle)` on `THREADS` threads at once, each with its own handle, released
/// together, and returns their results in thread order.
pub fn race<T: Send>(b: &dyn Backend, f: impl Fn(usize, &dyn Store) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (f, start) = (&f, &start);
                s.spawn(move || {
                    let store = b.open();
                    start.wait();
                    f(i, &*store)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

pub fn job_ids_increase_and_are_never_reused_across_handles(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    let per_thread = race(b, |_, s| {
        (0..20)
            .map(|i| {
                s.insert_job(
                    &cluster,
                    JobMode::Manual,
                    TaskAction::NormalBackupTask,
                    t(i),
                )
                .expect("insert")
                .id
            })
            .collect::<Vec<_>>()
    });
    let mut all = BTreeSet::new();
    for ids in &per_thread {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing: {ids:?}");
        all.extend(ids.iter().copied());
    }
    assert_eq!(all.len(), THREADS * 20, "no id handed out twice");

    // Forgetting the newest set does not free its id.
    let newest = *all.last().expect("ids");
    let mut job = store
        .list_jobs(&cluster, &one(newest))
        .expect("list")
        .remove(0);
    job.fail("boom", t(30)).expect("fail");
    store.end_job(&job, None, None).expect("end");
    let req = manual(&account, &cluster, None, "x");
    let later = created(store.create_manual_job(&req, t(31), 1000).expect("create"));
    assert!(later.id > newest);
    let fresh = b.open();
    let after_reopen = fresh
        .insert_job(
            &cluster,
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            t(32),
        )
        .expect("insert");
    assert!(after_reopen.id > later.id);
}

fn one(id: BackupJobId) -> JobFilter {
    JobFilter {
        job_id: Some(id),
        mode: None,
        ended_since: t(0),
    }
}

pub fn the_manual_limit_holds_under_concurrent_callers(b: &dyn Backend) {
    let (store, account, cluster) = setup(b);
    for round in 0..5 {
        let outcomes = race(b, |i, s| {
            let req = manual(&account, &cluster, None, &format!("{round}-{i}"));
            s.create_manual_job(&req, t(round), 3).expect("create")
        });
        let made: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                CreateJobOutcome::Created(j) => Some(j.clone()),
                CreateJobOutcome::LimitReached => None,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            made.len(),
            3,
            "round {round}: exactly the limit, never more"
        );
        // Failed backups free their slots for the next round.
        for job in made {
            fail(&*store, job, round);
        }
    }
}

pub fn a_client_token_creates_one_job_under_concurrent_callers(b: &dyn Backend) {
    let (_store, account, cluster) = setup(b);
    for round in 0..5 {
        let token = format!("token-{round}");
        // Half the callers reuse the token with other parameters.
        let outcomes = race(b, |i, s| {
            let fp = if i % 2 == 0 { "same" } else { "other" };
            let req = manual(&account, &cluster, Some(&token), fp);
            (
                fp,
                s.create_manual_job(&req, t(round), 1000).expect("create"),
            )
        });
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|(fp, o)| match o {
                CreateJobOutcome::Created(j) => Some((*fp, j.id)),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let (winner_fp, id) = winners[0];
        for (fp, o) in &outcomes {
            match o {
                CreateJobOutcome::Created(_) => {}
                CreateJobOutcome::Existing(j) => {
                    assert_eq!((*fp, j.id), (winner_fp, id));
                }
                CreateJobOutcome::TokenMismatch => assert_ne!(*fp, winner_fp),
                other => panic!("{other:?}"),
            }
        }
    }
}

pub fn two_stores_schedule_each_slot_exactly_once(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    for slot in 1..=30 {
        let queued = race(b, |_, s| {
            s.schedule_automated_job(&cluster, t(slot * 60), BackupKind::Full, t(slot * 60))
                .expect("schedule")
                .map(|j| j.id)
        });
        let ids: Vec<_> = queued.into_iter().flatten().collect();
        assert_eq!(ids.len(), 1, "slot {slot}: {ids:?}");
    }
    let automated = store
        .list_jobs(
            &cluster,
            &JobFilter {
                job_id: None,
                mode: Some(JobMode::Automated),
                ended_since: t(0),
            },
        )
        .expect("list");
    assert_eq!(automated.len(), 30);
}

pub fn a_nonce_is_accepted_once_under_concurrent_callers(b: &dyn Backend) {
    let key = AccessKeyId::parse("LTAIconcurrent").expect("id");
    let expires = t(0) + SignedDuration::from_mins(15);
    for round in 0..10 {
        let nonce = format!("nonce-{round}");
        let fresh = race(b, |_, s| {
            s.use_nonce(&key, &nonce, expires, t(round)).expect("nonce")
        });
        assert_eq!(fresh.iter().filter(|f| **f).count(), 1, "round {round}");
    }
}

/// Threads of one server share its handle (the API's request threads do): each nonce, given
/// by several of them at once, is accepted exactly once, and every accepted one is stored for
/// good (another handle then refuses it).
pub fn a_nonce_is_accepted_once_by_threads_sharing_a_handle(b: &dyn Backend) {
    let key = AccessKeyId::parse("LTAIsharedhandle").expect("id");
    let expires = t(0) + SignedDuration::from_mins(15);
    let shared = b.open();
    let start = Barrier::new(THREADS);
    // Thread i gives nonces 50*i .. 50*i+99: each nonce is given by one or two threads.
    let accepted: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS as u32)
            .map(|i| {
                let (shared, start, key) = (&shared, &start, &key);
                s.spawn(move || {
                    start.wait();
                    (50 * i..50 * i + 100)
                        .filter(|n| {
                            shared
                                .use_nonce(key, &format!("n-{n}"), expires, t(1))
                                .expect("nonce")
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let all: Vec<u32> = accepted.into_iter().flatten().collect();
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    let given = 50 * (THREADS as u32 - 1) + 100;
    assert_eq!(all.len(), distinct.len(), "a nonce was accepted twice");
    assert_eq!(distinct, (0..given).collect::<BTreeSet<u32>>());
    let other = b.open();
    for n in [0, given / 2, given - 1] {
        assert!(
            !other
                .use_nonce(&key, &format!("n-{n}"), expires, t(2))
                .expect("nonce"),
            "n-{n} was not stored"
        );
    }
}

/// A worker advances a job while other handles keep writing the stale snapshot they loaded
/// first: every stale write is refused and the job ends where the worker left it.
pub fn a_stale_writer_never_moves_a_job_backwards(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let job = store
        .insert_job(
            &cluster,
            JobMode::Manual,
            TaskAction::NormalBackupTask,
            t(1),
        )
        .expect("insert");
    let mut advanced = job.clone();
    advanced
        .advance(JobStatus::Preparing, 1, t(2))
        .expect("prep");
    store.update_job(&advanced, None).expect("update");
    let stale = advanced.clone();
    let results = race(b, |i, s| {
        if i == 0 {
            let mut j = stale.clone();
            for p in 6..=89u8 {
                j.advance(JobStatus::Uploading, p, t(3)).expect("upload");
                s.update_job(&j, None).expect("forward");
            }
            j.advance(JobStatus::Checking, 95, t(4)).expect("check");
            s.update_job(&j, None).expect("forward");
            (0, 0)
        } else {
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..40 {
                match s.update_job(&stale, None) {
                    Ok(()) => ok += 1,
                    Err(StoreError::IllegalJobUpdate { .. }) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, refused)
        }
    });
    assert!(results.iter().map(|r| r.0 + r.1).sum::<usize>() > 0);
    let stored = store
        .list_jobs(&cluster, &one(job.id))
        .expect("list")
        .remove(0);
    assert_eq!((stored.status, stored.process), (JobStatus::Checking, 95));
}

/// ModifyBackupPolicy from several callers at once, each changing its own field: every change
/// survives, round after round. A read-modify-write split over two transactions loses some.
pub fn concurrent_policy_changes_lose_no_field(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let change = |field: usize, round: usize| -> PolicyChange {
        let value = match field {
            0 => [
                "Monday,Tuesday",
                "Wednesday,Friday,Sunday",
                "Saturday,Sunday",
            ][round % 3]
                .to_string(),
            1 => format!("{:02}:00Z-{:02}:00Z", round % 23, round % 23 + 1),
            2 => (3 + round % 12).to_string(),
            _ => ["ALL", "LATEST", "NONE"][round % 3].to_string(),
        };
        let name = [
            "PreferredBackupPeriod",
            "PreferredBackupTime",
            "DataLevel1BackupRetentionPeriod",
            "BackupRetentionPolicyOnClusterDeletion",
        ][field];
        PolicyChange::parse(|k| (k == name).then_some(value.as_str())).expect("valid")
    };
    // Each round: the four writers go together, then the checker compares. A mismatch is
    // recorded, not asserted, so no thread is left waiting on a barrier.
    let go = Barrier::new(5);
    let written = Barrier::new(5);
    let rounds = 40;
    let mut lost = Vec::new();
    std::thread::scope(|s| {
        for field in 0..4 {
            let (go, written, cluster, change) = (&go, &written, &cluster, &change);
            s.spawn(move || {
                let store = b.open();
                for round in 0..rounds {
                    go.wait();
                    store
                        .modify_backup_policy(cluster, &change(field, round))
                        .expect("modify")
                        .expect("running");
                    written.wait();
                }
            });
        }
        let mut expected = store.backup_policy(&cluster).expect("policy").0;
        for round in 0..rounds {
            go.wait();
            written.wait();
            for field in 0..4 {
                expected.apply(change(field, round));
            }
            let stored = store.backup_policy(&cluster).expect("policy").0;
            if stored != expected {
                lost.push(round);
                expected = stored;
            }
        }
    });
    assert!(lost.is_empty(), "concurrent changes were lost: {lost:?}");
}

/// A policy change racing the cluster's deletion either lands before it or is refused with the
/// new status; it never changes a cluster that is no longer Running.
pub fn a_policy_change_racing_a_deletion_lands_before_it_or_not_at_all(b: &dyn Backend) {
    for round in 0..5 {
        let (store, _account, cluster) = setup(b);
        let outcomes = race(b, |i, s| {
            if i == 0 {
                s.begin_cluster_deletion(&cluster, Some(RetentionOnClusterDeletion::All), t(9))
                    .expect("delete")
                    .expect("no job");
                None
            } else {
                let change = PolicyChange {
                    retention_days: polarbackup_model::policy::RetentionDays::new(3 + i as u8),
                    ..PolicyChange::default()
                };
                Some(s.modify_backup_policy(&cluster, &change).expect("modify"))
            }
        });
        for o in outcomes.into_iter().flatten() {
            if let Err(status) = o {
                assert_eq!(status, ClusterStatus::Deleted, "round {round}");
            }
        }
        let gone = store.cluster(&cluster).expect("load").expect("tombstone");
        assert_eq!(gone.status, ClusterStatus::Deleted);
    }
}
