//! The contract's harness: a [`Backend`] hands out store handles on one database, plus helpers
//! (an account and a cluster, CreateBackup requests, jobs driven to a finished set).
#![allow(dead_code)]

use jiff::Timestamp;
use polarbackup_model::{
    AccountId, BackupJob, BackupJobId, BackupKind, BackupSet, BackupSetStatus, DbClusterId,
    JobMode, JobStatus, Lsn, NewCluster, TaskAction, TlsMode, WalRange,
};
use polarbackup_store::{
    CreateJobOutcome, ManualJobRequest, MasterKey, PgOptions, PgStore, SealReport, SetFilter,
    SqliteStore, Store, StoreError,
};
use polarbackup_testkit::pg::PgCluster;
use std::sync::Arc;

/// One database of one backend. Every `open` is a new handle on it, as another process (or
/// another server sharing the store) would hold; the first one finds it empty.
pub trait Backend: Sync {
    /// A handle sealing secrets with [`test_key`], as the binary always opens one.
    fn open(&self) -> Arc<dyn Store> {
        self.open_with(Some(test_key())).expect("open")
    }
    /// A handle sealing with `key`, or none (an older version's, or a tool's).
    fn open_with(&self, key: Option<Arc<MasterKey>>) -> Result<Arc<dyn Store>, StoreError>;
    /// Every stored access-key secret and database password, as the tables hold them.
    fn raw_secrets(&self) -> Vec<String>;
    /// Re-seals the store from `old` to `new`.
    fn rotate(&self, old: Arc<MasterKey>, new: Arc<MasterKey>) -> Result<SealReport, StoreError>;
}

/// The contract's master key.
pub fn test_key() -> Arc<MasterKey> {
    master_key(7)
}

/// A master key of 32 bytes `b`.
pub fn master_key(b: u8) -> Arc<MasterKey> {
    Arc::new(MasterKey::from_bytes(&[b; 32]).expect("key"))
}

const RAW_SECRETS: &str = "SELECT secret FROM access_keys
     UNION ALL SELECT password FROM clusters WHERE password IS NOT NULL";

/// The embedded SQLite store in a temporary data directory.
pub struct SqliteBackend(tempfile::TempDir);

impl SqliteBackend {
    pub fn new() -> Self {
        Self(tempfile::tempdir().expect("tmp"))
    }
}

impl Backend for SqliteBackend {
    fn open_with(&self, key: Option<Arc<MasterKey>>) -> Result<Arc<dyn Store>, StoreError> {
        let store = SqliteStore::open(self.0.path())?;
        Ok(match key {
            Some(k) => Arc::new(store.with_master_key(k)?),
            None => Arc::new(store),
        })
    }

    fn raw_secrets(&self) -> Vec<String> {
        let c = rusqlite::Connection::open(self.0.path().join("metadata.sqlite")).expect("raw");
        let mut stmt = c.prepare(RAW_SECRETS).expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    fn rotate(&self, old: Arc<MasterKey>, new: Arc<MasterKey>) -> Result<SealReport, StoreError> {
        SqliteStore::open(self.0.path())?
            .with_master_key(old)?
            .rotate_master_key(new)
    }
}

/// One throwaway PostgreSQL server per test binary, shared by every case.
pub fn pg_server() -> &'static PgCluster {
    polarbackup_testkit::pg::shared()
}

/// A fresh database on the shared PostgreSQL server, so cases run apart and in parallel.
pub struct PgBackend(PgOptions);

impl PgBackend {
    pub fn new() -> Self {
        let server = pg_server();
        let db = server.create_database("contract");
        let mut options = PgOptions::new("127.0.0.1", server.port, "postgres", db);
        // Small pools: the race cases open six handles at once.
        options.pool_size = 2;
        Self(options)
    }

    pub fn options(&self) -> &PgOptions {
        &self.0
    }
}

impl Backend for PgBackend {
    fn open_with(&self, key: Option<Arc<MasterKey>>) -> Result<Arc<dyn Store>, StoreError> {
        let store = PgStore::open(&self.0)?;
        Ok(match key {
            Some(k) => Arc::new(store.with_master_key(k)?),
            None => Arc::new(store),
        })
    }

    fn raw_secrets(&self) -> Vec<String> {
        let o = &self.0;
        let mut c = postgres::Config::new()
            .host(&o.host)
            .port(o.port)
            .user(&o.user)
            .dbname(&o.dbname)
            .connect(postgres::NoTls)
            .expect("raw connection");
        let rows = c.query(RAW_SECRETS, &[]).expect("query");
        rows.iter().map(|r| r.get(0)).collect()
    }

    fn rotate(&self, old: Arc<MasterKey>, new: Arc<MasterKey>) -> Result<SealReport, StoreError> {
        PgStore::open(&self.0)?
            .with_master_key(old)?
            .rotate_master_key(new)
    }
}

pub fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("valid time")
}

/// A fresh handle with one account and one cluster.
pub fn setup(b: &dyn Backend) -> (Arc<dyn Store>, AccountId, DbClusterId) {
    let store = b.open();
    let account = store.create_account(None, t(0)).expect("account").id;
    let cluster = new_cluster(&*store, &account);
    (store, account, cluster)
}

pub fn new_cluster(store: &dyn Store, account: &AccountId) -> DbClusterId {
    store
        .create_cluster(
            &NewCluster {
                account: account.clone(),
                region: "cn-hangzhou".into(),
                engine: "postgresql".into(),
                host: "127.0.0.1".into(),
                port: 5432,
                user: "postgres".into(),
                password: None,
                database: None,
                description: None,
                tls_mode: TlsMode::Prefer,
                tls_ca_file: None,
            },
            t(0),
        )
        .expect("cluster")
        .id
}
/// A queued automated backup job of `cluster`, created at `at`.
pub fn automated(store: &dyn Store, cluster: &DbClusterId, at: i64) -> BackupJob {
    store
        .insert_job(
            cluster,
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            t(at),
        )
        .expect("job")
}

pub fn manual(
    account: &AccountId,
    cluster: &DbClusterId,
    token: Option<&str>,
    fp: &str,
) -> ManualJobRequest {
    ManualJobRequest {
        cluster: cluster.clone(),
        account: account.clone(),
        client_token: token.map(str::to_owned),
        fingerprint: fp.into(),
        comment: Some("c".into()),
        kind: BackupKind::Full,
    }
}

pub fn created(o: CreateJobOutcome) -> BackupJob {
    match o {
        CreateJobOutcome::Created(j) => j,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Drives a job no worker holds from wherever it is to Finished and records a successful set.
pub fn finish(store: &dyn Store, job: BackupJob, at: i64) -> BackupSet {
    finish_as(store, job, at, None)
}

/// [`finish`] by the worker `holder` that claimed the job.
pub fn finish_as(
    store: &dyn Store,
    mut job: BackupJob,
    at: i64,
    holder: Option<&str>,
) -> BackupSet {
    for (s, p) in [
        (JobStatus::Preparing, 1),
        (JobStatus::Uploading, 50),
        (JobStatus::Checking, 95),
        (JobStatus::Finished, 100),
    ] {
        if job.status >= s {
            continue;
        }
        job.advance(s, p.max(job.process), t(at)).expect("advance");
    }
    let set = finished_set(&job, at);
    store.end_job(&job, Some(&set), holder).expect("end");
    set
}

/// [`finish`] recording the set as incremental on `parent`.
pub fn finish_on(store: &dyn Store, job: BackupJob, at: i64, parent: BackupJobId) -> BackupSet {
    finish_on_as(store, job, at, parent, None)
}

/// [`finish_on`] by the worker `holder` that claimed the job.
pub fn finish_on_as(
    store: &dyn Store,
    mut job: BackupJob,
    at: i64,
    parent: BackupJobId,
    holder: Option<&str>,
) -> BackupSet {
    for (s, p) in [
        (JobStatus::Preparing, 1),
        (JobStatus::Uploading, 50),
        (JobStatus::Checking, 95),
        (JobStatus::Finished, 100),
    ] {
        job.advance(s, p, t(at)).expect("advance");
    }
    let set = BackupSet {
        parent: Some(parent),
        ..finished_set(&job, at)
    };
    store.end_job(&job, Some(&set), holder).expect("end");
    set
}

pub fn finished_set(job: &BackupJob, at: i64) -> BackupSet {
    BackupSet {
        id: job.id,
        cluster_id: job.cluster_id.clone(),
        mode: job.mode,
        status: BackupSetStatus::Success,
        start_time: job.start_time,
        end_time: t(at),
        consistent_time: Some(t(at)),
        size: 1000,
        stored_size: 100,
        comment: None,
        wal: Some(WalRange {
            timeline: 1,
            start: Lsn(0x0300_0028 + job.id.0 * 0x100),
            end: Lsn(0x0300_0100 + job.id.0 * 0x100),
        }),
        corrupt: None,
        parent: None,
    }
}

pub fn page(start: i64, end: i64, size: u32, number: u32) -> SetFilter {
    SetFilter {
        id: None,
        status: None,
        mode: None,
        start: t(start),
        end: t(end),
        page_size: size,
        page_number: number,
    }
}

/// Ends a job no worker holds Failed, with the failed set a worker records.
pub fn fail(store: &dyn Store, job: BackupJob, at: i64) -> BackupSet {
    fail_as(store, job, at, None)
}

/// [`fail`] by the worker `holder` that claimed the job.
pub fn fail_as(store: &dyn Store, mut job: BackupJob, at: i64, holder: Option<&str>) -> BackupSet {
    job.fail("boom", t(at)).expect("fail");
    let set = BackupSet {
        status: BackupSetStatus::Failed,
        end_time: t(at),
        consistent_time: None,
        size: 0,
        stored_size: 0,
        wal: None,
        corrupt: None,
        ..finished_set(&job, at)
    };
    store.end_job(&job, Some(&set), holder).expect("end");
    set
}
