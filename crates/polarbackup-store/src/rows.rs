//! Mapping between stored rows and model records, for every backend: a row is read through
//! [`Fields`], so SQLite and PostgreSQL decode the same columns with the same code. Times are
//! stored as Unix seconds, WAL objects' and gaps' as Unix microseconds (the server's clock has
//! them); flags as 0/1; LSNs, sizes and ids as signed 64-bit integers.

use crate::StoreError;
use jiff::Timestamp;
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    AccessKey, AccessKeyId, Account, AccountId, BackupJob, BackupJobId, BackupLogId, BackupSet,
    Cluster, DbClusterId, JobStatus, Lsn, NewCluster, NewWalObject, RamUser, RamUserId, WalGap,
    WalObject, WalObjectKind, WalRange,
};

/// A result row of either backend, read by column name.
pub trait Fields {
    type Error;
    fn text(&self, col: &str) -> Result<String, Self::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, Self::Error>;
    fn int(&self, col: &str) -> Result<i64, Self::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, Self::Error>;
    /// A value that does not decode into its model type.
    fn corrupt(what: &str, value: &str) -> Self::Error;
}

/// Decodes a value of a model type, naming it in the error.
fn parse<R: Fields, T>(
    what: &str,
    value: &str,
    f: impl FnOnce(&str) -> Option<T>,
) -> Result<T, R::Error> {
    f(value).ok_or_else(|| R::corrupt(what, value))
}

fn number<R: Fields, T: TryFrom<i64>>(what: &str, v: i64) -> Result<T, R::Error> {
    T::try_from(v).map_err(|_| R::corrupt(what, &v.to_string()))
}

pub fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

fn ts<R: Fields>(s: i64) -> Result<Timestamp, R::Error> {
    Timestamp::from_second(s).map_err(|_| R::corrupt("time", &s.to_string()))
}

pub fn opt_ts<R: Fields>(row: &R, col: &str) -> Result<Option<Timestamp>, R::Error> {
    row.opt_int(col)?.map(ts::<R>).transpose()
}

fn time<R: Fields>(row: &R, col: &str) -> Result<Timestamp, R::Error> {
    ts::<R>(row.int(col)?)
}

/// Sub-microsecond digits are dropped: a stored time is never later than the one given.
pub fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn time_micros<R: Fields>(row: &R, col: &str) -> Result<Timestamp, R::Error> {
    let us = row.int(col)?;
    Timestamp::from_microsecond(us).map_err(|_| R::corrupt("time", &us.to_string()))
}

fn account_id<R: Fields>(row: &R, col: &str) -> Result<AccountId, R::Error> {
    let v = row.text(col)?;
    parse::<R, _>("account id", &v, |s| AccountId::parse(s).ok())
}

fn cluster_id<R: Fields>(row: &R, col: &str) -> Result<DbClusterId, R::Error> {
    let v = row.text(col)?;
    parse::<R, _>("cluster id", &v, |s| DbClusterId::parse(s).ok())
}

fn user_id<R: Fields>(v: &str) -> Result<RamUserId, R::Error> {
    parse::<R, _>("user id", v, |s| RamUserId::parse(s).ok())
}

/// Parses a text column with the model type's `FromStr`.
fn parsed<R: Fields, T: std::str::FromStr>(row: &R, col: &str, what: &str) -> Result<T, R::Error> {
    let v = row.text(col)?;
    parse::<R, _>(what, &v, |s| s.parse().ok())
}

/// A [`crate::JobStore::job_counts`] row: `cluster_id, status, n`.
pub fn job_count_from<R: Fields>(row: &R) -> Result<(DbClusterId, JobStatus, u64), R::Error> {
    Ok((
        cluster_id(row, "cluster_id")?,
        parsed(row, "status", "job status")?,
        number::<R, _>("job count", row.int("n")?)?,
    ))
}

pub fn account_from<R: Fields>(row: &R) -> Result<Account, R::Error> {
    Ok(Account {
        id: account_id(row, "id")?,
        name: row.opt_text("name")?,
        created_at: time(row, "created_at")?,
    })
}

pub fn key_from<R: Fields>(row: &R) -> Result<AccessKey, R::Error> {
    let id = row.text("id")?;
    Ok(AccessKey {
        id: parse::<R, _>("key id", &id, |s| AccessKeyId::parse(s).ok())?,
        account: account_id(row, "account_id")?,
        user: row
            .opt_text("user_id")?
            .map(|u| user_id::<R>(&u))
            .transpose()?,
        kind: parsed(row, "kind", "key kind")?,
        secret: row.text("secret")?,
        active: row.int("active")? != 0,
        created_at: time(row, "created_at")?,
    })
}

pub fn user_from<R: Fields>(row: &R) -> Result<RamUser, R::Error> {
    Ok(RamUser {
        id: user_id::<R>(&row.text("id")?)?,
        account: account_id(row, "account_id")?,
        name: row.text("name")?,
        created_at: time(row, "created_at")?,
    })
}

pub fn policy_from<R: Fields>(row: &R) -> Result<crate::StoredPolicy, R::Error> {
    Ok(crate::StoredPolicy {
        account: account_id(row, "account_id")?,
        name: row.text("name")?,
        document: row.text("document")?,
        created_at: time(row, "created_at")?,
    })
}

pub fn cluster_from<R: Fields>(row: &R) -> Result<Cluster, R::Error> {
    Ok(Cluster {
        id: cluster_id(row, "id")?,
        spec: NewCluster {
            account: account_id(row, "account_id")?,
            region: row.text("region")?,
            engine: row.text("engine")?,
            host: row.text("host")?,
            port: number::<R, _>("port", row.int("port")?)?,
            user: row.text("user_name")?,
            password: row.opt_text("password")?,
            database: row.opt_text("database")?,
            description: row.opt_text("description")?,
            tls_mode: parsed(row, "tls_mode", "TLS mode")?,
            tls_ca_file: row.opt_text("tls_ca_file")?,
        },
        created_at: time(row, "created_at")?,
        status: parsed(row, "status", "cluster status")?,
        deleted_at: opt_ts(row, "deleted_at")?,
        deletion_retention: row
            .opt_text("deletion_retention")?
            .map(|r| parse::<R, _>("retention", &r, RetentionOnClusterDeletion::parse))
            .transpose()?,
        deletion_job: row.opt_int("deletion_job")?.map(job_id::<R>).transpose()?,
        full_backup_every: row
            .opt_text("full_backup_every")?
            .map(|e| parse::<R, _>("full backup setting", &e, |s| s.parse().ok()))
            .transpose()?,
    })
}

pub fn job_id<R: Fields>(id: i64) -> Result<BackupJobId, R::Error> {
    number::<R, u64>("job id", id).map(BackupJobId)
}

pub fn job_from<R: Fields>(row: &R) -> Result<BackupJob, R::Error> {
    Ok(BackupJob {
        id: job_id::<R>(row.int("id")?)?,
        cluster_id: cluster_id(row, "cluster_id")?,
        mode: parsed(row, "mode", "job mode")?,
        action: parsed(row, "action", "task action")?,
        kind: parsed(row, "kind", "backup kind")?,
        status: parsed(row, "status", "job status")?,
        process: number::<R, _>("process", row.int("process")?)?,
        start_time: time(row, "start_time")?,
        ended_at: opt_ts(row, "ended_at")?,
        failure_reason: row.opt_text("failure_reason")?,
        comment: row.opt_text("comment")?,
    })
}

pub const JOB_COLUMNS: &str = "id, cluster_id, mode, action, kind, status, process, \
     start_time, ended_at, failure_reason, comment";

/// A job with its lease, as the writes that a lease fences read it.
#[derive(Debug, Clone)]
pub struct Leased {
    pub job: BackupJob,
    pub owner: Option<String>,
    /// Seconds, as stored.
    pub expires: Option<i64>,
}

pub fn leased_from<R: Fields>(row: &R) -> Result<Leased, R::Error> {
    Ok(Leased {
        job: job_from(row)?,
        owner: row.opt_text("lease_owner")?,
        expires: row.opt_int("lease_expires")?,
    })
}

pub const LEASED_COLUMNS: &str = "id, cluster_id, mode, action, kind, status, process, \
     start_time, ended_at, failure_reason, comment, lease_owner, lease_expires";

pub const SET_COLUMNS: &str = "id, cluster_id, mode, status, start_time, end_time, \
     consistent_time, size, stored_size, comment, wal_timeline, wal_start, wal_end, corrupt_reason, \
     parent_id";

pub const WAL_COLUMNS: &str = "id, cluster_id, timeline, kind, name, start_lsn, end_lsn, size, \
     stored_size, key, digest, start_us, end_us";

pub const GAP_COLUMNS: &str = "cluster_id, timeline, from_lsn, to_lsn, detected_us, reason";

/// A set's WAL range as its three columns (all `NULL` for none).
pub fn wal_columns(wal: Option<&WalRange>) -> Result<[Option<i64>; 3], StoreError> {
    let Some(w) = wal else {
        return Ok([None; 3]);
    };
    Ok([
        Some(i64::from(w.timeline)),
        Some(db_lsn(w.start)?),
        Some(db_lsn(w.end)?),
    ])
}

/// LSNs are u64 and stored as 64-bit signed integers: real ones stay below 2^63, so they keep
/// their order; a larger one is refused rather than wrapped into a negative number.
pub fn db_lsn(l: Lsn) -> Result<i64, StoreError> {
    i64::try_from(l.0).map_err(|_| StoreError::Corrupt(format!("LSN {l} beyond range")))
}

fn lsn<R: Fields>(row: &R, col: &str) -> Result<Lsn, R::Error> {
    number::<R, u64>("LSN", row.int(col)?).map(Lsn)
}

fn timeline<R: Fields>(v: i64) -> Result<u32, R::Error> {
    number::<R, u32>("timeline", v)
}

fn size<R: Fields>(row: &R, col: &str) -> Result<u64, R::Error> {
    number::<R, u64>("size", row.int(col)?)
}

fn wal_from<R: Fields>(row: &R) -> Result<Option<WalRange>, R::Error> {
    let (Some(tl), Some(_), Some(_)) = (
        row.opt_int("wal_timeline")?,
        row.opt_int("wal_start")?,
        row.opt_int("wal_end")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(WalRange {
        timeline: timeline::<R>(tl)?,
        start: lsn(row, "wal_start")?,
        end: lsn(row, "wal_end")?,
    }))
}

/// A row of [`crate::rules::overview::CLUSTERS`]: id, creation time, stored log retention.
pub fn overview_cluster_from<R: Fields>(
    row: &R,
) -> Result<(DbClusterId, Timestamp, Option<i64>), R::Error> {
    Ok((
        cluster_id(row, "id")?,
        time(row, "created_at")?,
        row.opt_int("retention_days")?,
    ))
}

pub fn set_from<R: Fields>(row: &R) -> Result<BackupSet, R::Error> {
    Ok(BackupSet {
        id: job_id::<R>(row.int("id")?)?,
        cluster_id: cluster_id(row, "cluster_id")?,
        mode: parsed(row, "mode", "backup mode")?,
        status: parsed(row, "status", "backup status")?,
        start_time: time(row, "start_time")?,
        end_time: time(row, "end_time")?,
        consistent_time: opt_ts(row, "consistent_time")?,
        size: size(row, "size")?,
        stored_size: size(row, "stored_size")?,
        comment: row.opt_text("comment")?,
        wal: wal_from(row)?,
        corrupt: row.opt_text("corrupt_reason")?,
        parent: row.opt_int("parent_id")?.map(job_id::<R>).transpose()?,
    })
}

pub fn wal_object_from<R: Fields>(row: &R) -> Result<WalObject, R::Error> {
    Ok(WalObject {
        id: number::<R, u64>("WAL object id", row.int("id")?).map(BackupLogId)?,
        object: NewWalObject {
            cluster_id: cluster_id(row, "cluster_id")?,
            timeline: timeline::<R>(row.int("timeline")?)?,
            kind: {
                let kind = row.text("kind")?;
                parse::<R, _>("WAL object kind", &kind, WalObjectKind::parse)?
            },
            name: row.text("name")?,
            start: lsn(row, "start_lsn")?,
            end: lsn(row, "end_lsn")?,
            size: size(row, "size")?,
            stored_size: size(row, "stored_size")?,
            key: row.text("key")?,
            digest: row.text("digest")?,
            start_time: time_micros(row, "start_us")?,
            end_time: time_micros(row, "end_us")?,
        },
    })
}

pub fn gap_from<R: Fields>(row: &R) -> Result<WalGap, R::Error> {
    Ok(WalGap {
        cluster_id: cluster_id(row, "cluster_id")?,
        timeline: timeline::<R>(row.int("timeline")?)?,
        from: lsn(row, "from_lsn")?,
        to: lsn(row, "to_lsn")?,
        detected_at: time_micros(row, "detected_us")?,
        reason: row.text("reason")?,
    })
}

/// Job ids are u64 in the model and i64 in the tables; ids beyond i64 cannot exist there.
pub fn db_id(id: BackupJobId) -> i64 {
    i64::try_from(id.0).unwrap_or(-1)
}

/// Log ids likewise.
pub fn db_log_id(id: BackupLogId) -> i64 {
    i64::try_from(id.0).unwrap_or(-1)
}

/// Sizes beyond i64 cannot happen on real disks; saturate rather than wrap.
pub fn db_size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
