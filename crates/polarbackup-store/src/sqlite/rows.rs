//! SQLite rows as [`Fields`]: the decoders are shared ([`crate::rows`]); these wrappers fit
//! them to rusqlite's row callbacks.

use crate::rows;
pub use crate::rows::{
    db_id, db_log_id, db_lsn, db_size, micros, secs, wal_columns, Fields, Leased, GAP_COLUMNS,
    JOB_COLUMNS, LEASED_COLUMNS, SET_COLUMNS, WAL_COLUMNS,
};
use polarbackup_model::{
    AccessKey, Account, BackupJob, BackupSet, Cluster, RamUser, WalGap, WalObject,
};
use rusqlite::Row;

impl Fields for Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, col: &str) -> rusqlite::Result<String> {
        self.get(col)
    }
    fn opt_text(&self, col: &str) -> rusqlite::Result<Option<String>> {
        self.get(col)
    }
    fn int(&self, col: &str) -> rusqlite::Result<i64> {
        self.get(col)
    }
    fn opt_int(&self, col: &str) -> rusqlite::Result<Option<i64>> {
        self.get(col)
    }
    fn corrupt(what: &str, value: &str) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad {what}: {value:?}").into(),
        )
    }
}

/// `name(row)` for each shared decoder, with the signature rusqlite's callbacks take.
macro_rules! decoders {
    ($($name:ident -> $ty:ty),* $(,)?) => {$(
        pub fn $name(row: &Row<'_>) -> rusqlite::Result<$ty> {
            rows::$name(row)
        }
    )*};
}

decoders!(
    account_from -> Account,
    key_from -> AccessKey,
    user_from -> RamUser,
    policy_from -> crate::StoredPolicy,
    cluster_from -> Cluster,
    job_from -> BackupJob,
    leased_from -> Leased,
    set_from -> BackupSet,
    wal_object_from -> WalObject,
    gap_from -> WalGap,
);
