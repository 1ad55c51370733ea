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

/// A row with its statement's column names read once. rusqlite finds a column by name by asking
/// SQLite for each column's name in turn, per field: a job row decodes ten fields, and those
/// searches were about a twentieth of the API's CPU.
pub struct Named<'r, 's> {
    row: &'r Row<'s>,
    names: Vec<&'r str>,
}

impl<'r, 's> Named<'r, 's> {
    pub fn new(row: &'r Row<'s>) -> Self {
        Self {
            row,
            names: row.as_ref().column_names(),
        }
    }

    /// The column `col`, matched as rusqlite matches names (ASCII case ignored, first wins).
    fn index(&self, col: &str) -> rusqlite::Result<usize> {
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(col))
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(col.to_owned()))
    }
}

impl Fields for Named<'_, '_> {
    type Error = rusqlite::Error;
    fn text(&self, col: &str) -> rusqlite::Result<String> {
        self.row.get(self.index(col)?)
    }
    fn opt_text(&self, col: &str) -> rusqlite::Result<Option<String>> {
        self.row.get(self.index(col)?)
    }
    fn int(&self, col: &str) -> rusqlite::Result<i64> {
        self.row.get(self.index(col)?)
    }
    fn opt_int(&self, col: &str) -> rusqlite::Result<Option<i64>> {
        self.row.get(self.index(col)?)
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
            rows::$name(&Named::new(row))
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
    job_count_from -> (polarbackup_model::DbClusterId, polarbackup_model::JobStatus, u64),
    leased_from -> Leased,
    set_from -> BackupSet,
    wal_object_from -> WalObject,
    gap_from -> WalGap,
    overview_cluster_from -> (polarbackup_model::DbClusterId, jiff::Timestamp, Option<i64>),
);
