//! Helpers shared by the jobs crate's tests.

use jiff::Timestamp;
use polarbackup_model::{AccountId, DbClusterId};
use polarbackup_model::{NewCluster, TlsMode};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;

/// Registers a cluster nothing connects to (the tests' executors are scripted).
pub fn add_cluster(store: &SqliteStore, account: &AccountId, now: Timestamp) -> DbClusterId {
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
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
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
    }
}
