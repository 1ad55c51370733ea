//! Helpers shared by the jobs crate's tests: the store backends (several handles on one
//! database, as several servers hold), clusters, polling.

use jiff::Timestamp;
use polarbackup_model::{AccountId, DbClusterId};
use polarbackup_model::{NewCluster, TlsMode};
use polarbackup_store::prelude::*;
use polarbackup_store::{PgOptions, PgStore, SqliteStore};
use std::sync::Arc;

/// One metadata database; every `open` is a new handle on it, as another server would hold.
#[allow(dead_code)] // not every test binary runs on both backends
pub enum Backend {
    /// SQLite in a temporary data directory (handles as processes on one machine).
    Sqlite(tempfile::TempDir),
    /// A fresh database on the test binary's throwaway PostgreSQL server.
    Postgres(PgOptions),
}

#[allow(dead_code)]
impl Backend {
    pub fn sqlite() -> Self {
        Backend::Sqlite(tempfile::tempdir().expect("tmp"))
    }

    pub fn postgres() -> Self {
        let server = polarbackup_testkit::pg::shared();
        let db = server.create_database("jobs");
        let mut options = PgOptions::new("127.0.0.1", server.port, "postgres", db);
        options.pool_size = 4;
        Backend::Postgres(options)
    }

    pub fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).expect("open")),
            Backend::Postgres(o) => Arc::new(PgStore::open(o).expect("open")),
        }
    }
}

/// `on_both_backends!(case, ...)`: for each `async fn case(Backend)`, a module of that name with
/// a `sqlite` and a `postgres` test.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case($crate::common::Backend::sqlite()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case($crate::common::Backend::postgres()).await
            }
        }
    )*};
}

/// Registers a cluster nothing connects to (the tests' executors are scripted).
pub fn add_cluster(store: &dyn ClusterStore, account: &AccountId, now: Timestamp) -> DbClusterId {
    store
        .create_cluster(
            &NewCluster {
                account: account.clone(),
                region: "cn-hangzhou".into(),
                engine: "postgresql".into(),
                host: "127.0.0.1".into(),
                port: 1,
                user: "u".into(),
                password: None,
                database: None,
                description: None,
                tls_mode: TlsMode::Disable,
                tls_ca_file: None,
            },
            now,
        )
        .expect("cluster")
        .id
}

/// Polls `f` every 25 ms for up to 10 s.
#[allow(dead_code)] // the scheduler tests poll nothing
pub async fn wait_for(what: &str, f: impl FnMut() -> bool) {
    wait_long(what, std::time::Duration::from_secs(10), f).await
}

/// Polls `f` every 25 ms for up to `limit`.
#[allow(dead_code)]
pub async fn wait_long(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    for _ in 0..(limit.as_millis() / 25).max(1) {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What the scripted executors report for a backup that succeeded at `at`.
#[allow(dead_code)] // the scheduler tests run no executor
pub fn completed(at: Timestamp) -> polarbackup_jobs::Completed {
    polarbackup_jobs::Completed {
        size: 42,
        stored_size: 7,
        consistent_time: Some(at),
        wal: polarbackup_model::WalRange {
            timeline: 1,
            start: polarbackup_model::Lsn(0x0100_0028),
            end: polarbackup_model::Lsn(0x0100_0100),
        },
        parent: None,
    }
}
