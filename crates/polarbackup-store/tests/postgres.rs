//! What only the PostgreSQL backend promises beyond the contract: servers opening one fresh
//! database together migrate it once, a newer schema is refused, the password never shows,
//! TLS with libpq's modes, and an embedded store migrated onto it answers every read the same.

#[path = "contract/common.rs"]
mod common;

use common::{created, fail, finish, finish_on, manual, new_cluster, pg_server, t, PgBackend};
use polarbackup_model::policy::{FullBackupEvery, PolicyChange, RetentionOnClusterDeletion};
use polarbackup_model::{
    AccessKeyId, AccountId, BackupJobId, BackupKind, DbClusterId, JobMode, JobStatus, LogRetention,
    Lsn, NewWalObject, TaskAction, TlsMode, WalGap, WalObjectKind,
};
use polarbackup_store::prelude::*;
use polarbackup_store::{
    migrate_metadata, CreateJobOutcome, JobFilter, PgOptions, PgStore, PolicyKind, SqliteStore,
    StoreError, StoredPolicy, WalFilter,
};
use std::path::{Path, PathBuf};

#[test]
fn servers_opening_a_fresh_database_together_migrate_it_once() {
    let backend = PgBackend::new();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                PgStore::open(backend.options())
                    .expect("open")
                    .ping()
                    .expect("ping")
            });
        }
    });
    let versions = pg_server().psql_db(
        &backend.options().dbname,
        "SELECT count(*) || ':' || max(version) FROM polarbackup_schema",
    );
    // Each of the six migrations applied exactly once.
    assert_eq!(versions, "6:6");
}

#[test]
fn a_newer_schema_is_refused() {
    let backend = PgBackend::new();
    drop(PgStore::open(backend.options()).expect("open"));
    pg_server().psql_db(
        &backend.options().dbname,
        "INSERT INTO polarbackup_schema (version) VALUES (999)",
    );
    assert!(matches!(
        PgStore::open(backend.options()),
        Err(StoreError::TooNew { found: 999, .. })
    ));
}

#[test]
fn the_password_never_shows() {
    let mut options = PgOptions::new("127.0.0.1", 1, "u", "db");
    options.password = Some("hunter2-secret".into());
    options.connect_timeout = std::time::Duration::from_secs(2);
    let debug = format!("{options:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    // Nothing listens on port 1: the error names the failure, not the password.
    let err = PgStore::open(&options).expect_err("no server");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

/// A CA and a certificate for IP 127.0.0.1 only (so `localhost` fails the host check), and
/// the shared server switched to TLS with it (reloaded, so plain connections still work).
fn tls_ca() -> &'static Path {
    static CA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let server = pg_server();
        let dir = server.scratch_dir("tls");
        polarbackup_testkit::certs::make_server_certs(&dir, "IP:127.0.0.1");
        polarbackup_testkit::pg::chown_to_postgres(&dir, true);
        server.psql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{0}/server.crt';
             ALTER SYSTEM SET ssl_key_file = '{0}/server.key';
             ALTER SYSTEM SET ssl = on;
             SELECT pg_reload_conf();",
            dir.display()
        ));
        // The reload is asynchronous: wait until a TLS connection is accepted.
        let probe = {
            let mut o = PgBackend::new().options().clone();
            o.tls_mode = TlsMode::Require;
            o
        };
        for _ in 0..100 {
            if PgStore::open(&probe).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        dir.join("ca.crt")
    })
}

/// Whether the store's connections to `db` are encrypted, as the server sees them.
fn encrypted(db: &str) -> String {
    pg_server().psql(&format!(
        "SELECT string_agg(DISTINCT s.ssl::text, ',') FROM pg_stat_ssl s
         JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'polarbackup' AND a.datname = '{db}'"
    ))
}

#[test]
fn tls_modes_encrypt_and_verify_full_checks_chain_and_host() {
    let ca = tls_ca();
    let with = |mode: TlsMode, host: &str, ca: Option<&Path>| {
        let mut o = PgBackend::new().options().clone();
        o.tls_mode = mode;
        o.host = host.into();
        o.tls_ca_file = ca.map(Path::to_path_buf);
        o
    };
    for (mode, ca) in [
        (TlsMode::Prefer, None),
        (TlsMode::Require, None),
        (TlsMode::VerifyFull, Some(ca)),
    ] {
        let o = with(mode, "127.0.0.1", ca);
        let store = PgStore::open(&o).unwrap_or_else(|e| panic!("{mode}: {e}"));
        store.ping().expect("ping");
        assert_eq!(encrypted(&o.dbname), "true", "{mode}");
    }
    let o = with(TlsMode::Disable, "127.0.0.1", None);
    let store = PgStore::open(&o).expect("disable");
    store.ping().expect("ping");
    assert_eq!(encrypted(&o.dbname), "false");
    // The certificate names 127.0.0.1 only; the system roots do not know the test CA.
    for o in [
        with(TlsMode::VerifyFull, "localhost", Some(ca)),
        with(TlsMode::VerifyFull, "127.0.0.1", None),
    ] {
        let err = PgStore::open(&o).expect_err("verify-full must fail");
        assert!(
            matches!(err, StoreError::Postgres(_) | StoreError::Tls(_)),
            "{err:?}"
        );
    }
    let missing = with(
        TlsMode::VerifyFull,
        "127.0.0.1",
        Some(Path::new("/nonexistent.pem")),
    );
    assert!(matches!(PgStore::open(&missing), Err(StoreError::Tls(_))));
}

/// What the population below created, to read back.
struct World {
    accounts: Vec<AccountId>,
    keys: Vec<AccessKeyId>,
    clusters: Vec<DbClusterId>,
    jobs: Vec<BackupJobId>,
    user: polarbackup_model::RamUser,
    wal: Vec<polarbackup_model::BackupLogId>,
}

fn object(cluster: &DbClusterId, n: u64, kind: WalObjectKind) -> NewWalObject {
    let seg = 0x0100_0000;
    let name = Lsn(n * seg).wal_file_name(1, seg);
    NewWalObject {
        cluster_id: cluster.clone(),
        timeline: 1,
        kind,
        key: format!("wal/{cluster}/{name}.{}", kind.as_str()),
        name,
        start: Lsn(n * seg),
        end: Lsn(n * seg
            + if kind == WalObjectKind::Partial {
                0x100
            } else {
                seg
            }),
        size: seg,
        stored_size: 1000 + n,
        digest: format!("{n:064x}"),
        start_time: t(100 + n as i64) + jiff::SignedDuration::from_micros(123_456),
        end_time: t(101 + n as i64),
    }
}

/// Accounts, keys (HMAC, RSA, a user's, a disabled one), a RAM user with a custom and a system
/// policy, clusters (a changed policy, one deleted with ALL, one Deleting with LATEST), jobs in
/// every state, a client token, sets, WAL objects, a gap and a nonce.
fn populate(s: &dyn Store) -> World {
    let a = s.create_account(Some("acme"), t(0)).expect("account").id;
    let b = s.create_account(None, t(1)).expect("account").id;
    let hmac = s.create_key(&a, t(2)).expect("key");
    let rsa = s
        .create_rsa_key(
            &a,
            None,
            "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
            t(3),
        )
        .expect("rsa");
    let user = s.create_user(&a, "alice", t(4)).expect("user");
    let user_key = s.create_user_key(&user, t(5)).expect("user key");
    let off = s.create_key(&b, t(6)).expect("key");
    s.set_key_active(&off.id, false).expect("disable");
    s.create_policy(&StoredPolicy {
        account: a.clone(),
        name: "ReadOnly".into(),
        document: r#"{"Version":"1","Statement":[]}"#.into(),
        created_at: t(7),
    })
    .expect("policy");
    s.attach_policy(&user, PolicyKind::Custom, "ReadOnly")
        .expect("attach");
    s.attach_policy(&user, PolicyKind::System, "AliyunPolardbFullAccess")
        .expect("attach");

    let (c1, c2, c3) = (new_cluster(s, &a), new_cluster(s, &a), new_cluster(s, &b));
    let change = PolicyChange {
        retention_days: polarbackup_model::policy::RetentionDays::new(14),
        ..PolicyChange::default()
    };
    s.modify_backup_policy(&c1, &change)
        .expect("modify")
        .expect("running");
    s.modify_log_backup_policy(&c1, LogRetention::from_days(30).expect("days"))
        .expect("log policy")
        .expect("running");
    let mut jobs = Vec::new();
    let done = created(
        s.create_manual_job(&manual(&a, &c1, Some("tok"), "fp"), t(10), 3)
            .expect("create"),
    );
    let full = finish(s, done, 20).id;
    jobs.push(full);
    let auto = s
        .schedule_automated_job(&c1, t(30), BackupKind::Full, t(30))
        .expect("schedule")
        .expect("slot");
    jobs.push(fail(s, auto, 40).id);
    let auto = s
        .schedule_automated_job(&c1, t(50), BackupKind::Incremental, t(50))
        .expect("schedule")
        .expect("slot");
    // An incremental set on the manual one: its kind and parent move over too.
    jobs.push(finish_on(s, auto, 55, full).id);
    s.set_full_backup_every(&c1, Some(FullBackupEvery::Always))
        .expect("setting")
        .expect("running");
    let mut running = s
        .insert_job(&c1, JobMode::Manual, TaskAction::NormalBackupTask, t(60))
        .expect("insert");
    let claimed = s
        .claim_job("w1", t(10_000), t(61))
        .expect("claim")
        .expect("queued");
    assert_eq!(claimed.id, running.id);
    for (status, process) in [(JobStatus::Preparing, 1), (JobStatus::Uploading, 40)] {
        running.advance(status, process, t(62)).expect("advance");
    }
    s.update_job(&running, Some("w1")).expect("update");
    jobs.push(running.id);
    s.insert_job(&c2, JobMode::Manual, TaskAction::NormalBackupTask, t(63))
        .expect("insert");
    // c2: a finished set, then deleted keeping ALL (its set detached). c3: LATEST, Deleting.
    let queued = s
        .list_jobs(
            &c2,
            &JobFilter {
                job_id: None,
                mode: None,
                ended_since: t(0),
            },
        )
        .expect("list");
    jobs.push(finish(s, queued[0].clone(), 70).id);
    s.begin_cluster_deletion(&c2, Some(RetentionOnClusterDeletion::All), t(80))
        .expect("delete")
        .expect("started");
    let latest = s
        .begin_cluster_deletion(&c3, Some(RetentionOnClusterDeletion::Latest), t(81))
        .expect("delete")
        .expect("started");
    if let polarbackup_store::ClusterDeletion::Pending { job, .. } = latest {
        jobs.push(job.id);
    }

    assert!(s
        .claim_archiver(&c1, "streamer", t(10_000), t(90))
        .expect("claim"));
    let mut wal = Vec::new();
    for (n, kind) in [
        (1, WalObjectKind::Segment),
        (2, WalObjectKind::Segment),
        (3, WalObjectKind::Partial),
    ] {
        let rec = s
            .record_wal("streamer", &object(&c1, n, kind), t(95))
            .expect("record")
            .expect("lease");
        wal.push(rec.recorded.expect("recorded").id);
    }
    assert!(s
        .record_gap(
            "streamer",
            &WalGap {
                cluster_id: c1.clone(),
                timeline: 1,
                from: Lsn(0x0400_0000),
                to: Lsn(0x0500_0000),
                detected_at: t(96) + jiff::SignedDuration::from_micros(7),
                reason: "the server recycled it".into(),
            },
            t(96),
        )
        .expect("gap"));
    assert!(s
        .use_nonce(&hmac.id, "n-1", t(100_000), t(97))
        .expect("nonce"));
    World {
        accounts: vec![a, b],
        keys: vec![hmac.id, rsa.id, user_key.id, off.id],
        clusters: vec![c1, c2, c3],
        jobs,
        user,
        wal,
    }
}

/// Every read of the store traits over `w`, each labelled, as Debug text.
fn reads(s: &dyn Store, w: &World) -> Vec<String> {
    let mut out = Vec::new();
    let mut put = |label: &str, v: String| out.push(format!("{label}: {v}"));
    for a in &w.accounts {
        put("account", format!("{:?}", s.account(a)));
        put("policies", format!("{:?}", s.list_policies(a)));
    }
    for k in &w.keys {
        put("key", format!("{:?}", s.key(k)));
    }
    put("user", format!("{:?}", s.user(&w.user.id)));
    put("attachments", format!("{:?}", s.attachments(&w.user)));
    put("schedules", format!("{:?}", s.schedules()));
    let all_jobs = JobFilter {
        job_id: None,
        mode: None,
        ended_since: t(0),
    };
    let sets = common::page(0, 1_000_000, 50, 1);
    let logs = WalFilter {
        from: t(0),
        to: t(1_000_000),
        page_size: 2,
        page_number: 1,
    };
    for c in &w.clusters {
        put("cluster", format!("{:?}", s.cluster(c)));
        put("backup policy", format!("{:?}", s.backup_policy(c)));
        put("log policy", format!("{:?}", s.log_backup_policy(c)));
        put("jobs", format!("{:?}", s.list_jobs(c, &all_jobs)));
        put("sets", format!("{:?}", s.list_backup_sets(c, &sets)));
        put("detached", format!("{:?}", s.list_detached_sets(c, &sets)));
        put("detached count", format!("{:?}", s.detached_set_count(c)));
        put("cluster sets", format!("{:?}", s.cluster_sets(c)));
        put("wal", format!("{:?}", s.wal_objects(c)));
        put("wal page", format!("{:?}", s.wal_page(c, &logs)));
        put("gaps", format!("{:?}", s.gaps(c)));
        put("recovery", format!("{:?}", s.recovery_inputs(c)));
    }
    for j in &w.jobs {
        put("set", format!("{:?}", s.backup_set(*j)));
    }
    for id in &w.wal {
        put("wal object", format!("{:?}", s.wal_object(*id)));
    }
    put("pending", format!("{:?}", s.pending_deletions()));
    put("known", format!("{:?}", s.known_backup_ids()));
    put("abandoned", format!("{:?}", s.abandoned_jobs(t(1_000_000))));
    out
}

#[test]
fn a_migrated_store_answers_every_read_as_before_and_a_second_migration_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let sqlite = SqliteStore::open(dir.path()).expect("sqlite");
    let world = populate(&sqlite);
    let backend = PgBackend::new();
    let pg = PgStore::open(backend.options()).expect("pg");

    let report = migrate_metadata(&sqlite, &pg).expect("migrate");
    let count = |table: &str| {
        report
            .tables
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, n)| *n)
    };
    assert_eq!(count("accounts"), Some(2));
    assert_eq!(count("access_keys"), Some(4));
    assert_eq!(count("clusters"), Some(3));
    assert_eq!(count("backup_jobs"), Some(world.jobs.len() as u64));
    assert_eq!(count("wal_objects"), Some(3));

    let (before, after) = (reads(&sqlite, &world), reads(&pg, &world));
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }

    // The token, the nonce and the lease-free archive carry over; new ids follow the old ones.
    let (a, c1) = (&world.accounts[0], &world.clusters[0]);
    assert!(matches!(
        pg.create_manual_job(&manual(a, c1, Some("tok"), "fp"), t(200), 3).expect("create"),
        CreateJobOutcome::Existing(j) if j.id == world.jobs[0]
    ));
    assert!(!pg
        .use_nonce(&world.keys[0], "n-1", t(100_000), t(200))
        .expect("nonce"));
    let next = pg
        .insert_job(c1, JobMode::Manual, TaskAction::NormalBackupTask, t(201))
        .expect("insert");
    assert!(world.jobs.iter().all(|&j| next.id > j), "{next:?}");
    assert!(pg
        .claim_archiver(c1, "new", t(10_000), t(202))
        .expect("claim"));
    let rec = pg
        .record_wal("new", &object(c1, 9, WalObjectKind::Segment), t(203))
        .expect("record")
        .expect("lease");
    let id = rec.recorded.expect("recorded").id;
    assert!(world.wal.iter().all(|&w| id > w), "{id:?}");

    assert!(matches!(
        migrate_metadata(&sqlite, &pg),
        Err(StoreError::NotEmpty { .. })
    ));
}
