//! Backup policies and scheduling: the default, partial changes, slots taken once, and a
//! cluster that exists whole or not at all.

use crate::common::{new_cluster, setup, t, Backend};
use polarbackup_model::policy::{
    BackupPolicy, BackupWindow, PolicyChange, RetentionDays, RetentionOnClusterDeletion,
};
use polarbackup_model::{
    AccountId, BackupKind, JobMode, JobStatus, NewCluster, TaskAction, TlsMode,
};
use polarbackup_store::StoreError;

pub fn a_new_cluster_has_the_default_policy_and_a_schedule_from_now(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    assert_eq!(
        store.backup_policy(&cluster).expect("policy"),
        (BackupPolicy::default(), Some(t(0)))
    );
    assert_eq!(
        store.schedules().expect("schedules"),
        vec![(cluster, BackupPolicy::default(), Some(t(0)))]
    );
}

pub fn a_change_applies_only_the_fields_it_carries(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let retention = PolicyChange {
        retention_days: RetentionDays::new(5),
        ..PolicyChange::default()
    };
    let after = store
        .modify_backup_policy(&cluster, &retention)
        .expect("modify")
        .expect("running");
    let mut expected = BackupPolicy::default();
    expected.apply(retention);
    assert_eq!(after, expected);
    let window = PolicyChange {
        window: BackupWindow::starting_at(13),
        on_cluster_deletion: Some(RetentionOnClusterDeletion::Latest),
        ..PolicyChange::default()
    };
    let after = store
        .modify_backup_policy(&cluster, &window)
        .expect("modify")
        .expect("running");
    expected.apply(window);
    assert_eq!(after, expected);
    assert_eq!(after.retention_days, RetentionDays::new(5).expect("days"));
    let (stored, last_slot) = store.backup_policy(&cluster).expect("policy");
    assert_eq!(
        (stored, last_slot),
        (expected, Some(t(0))),
        "a change keeps the schedule"
    );
    let other = crate::common::setup(b).2;
    assert_eq!(
        store.backup_policy(&other).expect("policy").0,
        BackupPolicy::default(),
        "another cluster's policy is untouched"
    );
    let unknown = polarbackup_model::DbClusterId::parse("pc-unknown00000000").expect("id");
    assert!(matches!(
        store.modify_backup_policy(&unknown, &window),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn a_slot_is_scheduled_once_and_never_an_earlier_one(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let job = store
        .schedule_automated_job(&cluster, t(100), BackupKind::Full, t(101))
        .expect("schedule")
        .expect("a new slot");
    assert_eq!(
        (job.mode, job.action, job.status, job.start_time),
        (
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            JobStatus::NoStart,
            t(101)
        )
    );
    for (slot, what) in [(100, "the same slot"), (50, "an earlier slot")] {
        assert_eq!(
            store
                .schedule_automated_job(&cluster, t(slot), BackupKind::Full, t(102))
                .expect("schedule"),
            None,
            "{what}"
        );
    }
    assert_eq!(
        store.backup_policy(&cluster).expect("policy").1,
        Some(t(100))
    );
    let later = store
        .schedule_automated_job(&cluster, t(200), BackupKind::Full, t(201))
        .expect("schedule")
        .expect("a later slot");
    assert!(later.id > job.id);
}

pub fn cluster_creation_is_all_or_nothing(b: &dyn Backend) {
    let store = b.open();
    let nobody = AccountId::parse("1999999999999999").expect("id");
    let spec = NewCluster {
        account: nobody,
        region: "cn-hangzhou".into(),
        engine: "postgresql".into(),
        host: "127.0.0.1".into(),
        port: 5432,
        user: "postgres".into(),
        password: Some("pw".into()),
        database: None,
        description: None,
        tls_mode: TlsMode::VerifyFull,
        tls_ca_file: Some("/ca.pem".into()),
    };
    assert!(matches!(
        store.create_cluster(&spec, t(0)),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.schedules().expect("schedules").is_empty());

    let account = store.create_account(None, t(0)).expect("account").id;
    let spec = NewCluster { account, ..spec };
    let made = store.create_cluster(&spec, t(5)).expect("cluster");
    assert_eq!(
        made.spec, spec,
        "every field, the TLS mode included, round-trips"
    );
    assert_eq!(store.cluster(&made.id).expect("load"), Some(made.clone()));
    let again = new_cluster(&*store, &spec.account);
    assert_ne!(again, made.id);
}
