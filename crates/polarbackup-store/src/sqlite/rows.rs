//! Mapping between SQLite rows and model records; timestamps are stored as Unix seconds, WAL
//! objects' and gaps' as Unix microseconds (the server's clock has them).

use crate::StoreError;
use jiff::Timestamp;
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    AccessKey, AccessKeyId, Account, AccountId, BackupJob, BackupJobId, BackupLogId, BackupSet,
    Cluster, DbClusterId, Lsn, NewCluster, NewWalObject, RamUserId, WalGap, WalObject,
    WalObjectKind, WalRange,
};
use rusqlite::Row;

pub fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

pub fn ts(s: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_second(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// Sub-microsecond digits are dropped: a stored time is never later than the one given.
pub fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn ts_micros(us: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

pub fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what}: {value:?}").into(),
    )
}

pub fn account_from(row: &Row<'_>) -> rusqlite::Result<Account> {
    let id: String = row.get("id")?;
    Ok(Account {
        id: AccountId::parse(&id).map_err(|_| corrupt("account id", &id))?,
        name: row.get("name")?,
        created_at: ts(row.get("created_at")?)?,
    })
}

pub fn key_from(row: &Row<'_>) -> rusqlite::Result<AccessKey> {
    let id: String = row.get("id")?;
    let account: String = row.get("account_id")?;
    Ok(AccessKey {
        id: AccessKeyId::parse(&id).map_err(|_| corrupt("key id", &id))?,
        account: AccountId::parse(&account).map_err(|_| corrupt("account id", &account))?,
        user: match row.get::<_, Option<String>>("user_id")? {
            Some(u) => Some(RamUserId::parse(&u).map_err(|_| corrupt("user id", &u))?),
            None => None,
        },
        kind: {
            let kind: String = row.get("kind")?;
            kind.parse().map_err(|()| corrupt("key kind", &kind))?
        },
        secret: row.get("secret")?,
        active: row.get("active")?,
        created_at: ts(row.get("created_at")?)?,
    })
}

pub fn cluster_from(row: &Row<'_>) -> rusqlite::Result<Cluster> {
    let id: String = row.get("id")?;
    let account: String = row.get("account_id")?;
    let status: String = row.get("status")?;
    let deleted_at: Option<i64> = row.get("deleted_at")?;
    let retention: Option<String> = row.get("deletion_retention")?;
    let deletion_job: Option<i64> = row.get("deletion_job")?;
    Ok(Cluster {
        id: DbClusterId::parse(&id).map_err(|_| corrupt("cluster id", &id))?,
        spec: NewCluster {
            account: AccountId::parse(&account).map_err(|_| corrupt("account id", &account))?,
            region: row.get("region")?,
            engine: row.get("engine")?,
            host: row.get("host")?,
            port: row.get("port")?,
            user: row.get("user_name")?,
            password: row.get("password")?,
            database: row.get("database")?,
            description: row.get("description")?,
            tls_mode: {
                let mode: String = row.get("tls_mode")?;
                mode.parse().map_err(|()| corrupt("TLS mode", &mode))?
            },
            tls_ca_file: row.get("tls_ca_file")?,
        },
        created_at: ts(row.get("created_at")?)?,
        status: status
            .parse()
            .map_err(|()| corrupt("cluster status", &status))?,
        deleted_at: deleted_at.map(ts).transpose()?,
        deletion_retention: retention
            .map(|r| RetentionOnClusterDeletion::parse(&r).ok_or_else(|| corrupt("retention", &r)))
            .transpose()?,
        deletion_job: deletion_job.map(job_id).transpose()?,
    })
}

fn job_id(id: i64) -> rusqlite::Result<BackupJobId> {
    u64::try_from(id)
        .map(BackupJobId)
        .map_err(|_| corrupt("job id", &id.to_string()))
}

pub fn job_from(row: &Row<'_>) -> rusqlite::Result<BackupJob> {
    let id: i64 = row.get("id")?;
    let cluster: String = row.get("cluster_id")?;
    let mode: String = row.get("mode")?;
    let action: String = row.get("action")?;
    let status: String = row.get("status")?;
    let ended_at: Option<i64> = row.get("ended_at")?;
    Ok(BackupJob {
        id: job_id(id)?,
        cluster_id: DbClusterId::parse(&cluster).map_err(|_| corrupt("cluster id", &cluster))?,
        mode: mode.parse().map_err(|_| corrupt("job mode", &mode))?,
        action: action
            .parse()
            .map_err(|_| corrupt("task action", &action))?,
        status: status.parse().map_err(|_| corrupt("job status", &status))?,
        process: row.get("process")?,
        start_time: ts(row.get("start_time")?)?,
        ended_at: ended_at.map(ts).transpose()?,
        failure_reason: row.get("failure_reason")?,
        comment: row.get("comment")?,
    })
}

pub const JOB_COLUMNS: &str = "id, cluster_id, mode, action, status, process, start_time, \
     ended_at, failure_reason, comment";

pub const SET_COLUMNS: &str = "id, cluster_id, mode, status, start_time, end_time, \
     consistent_time, size, stored_size, comment, wal_timeline, wal_start, wal_end";

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

/// LSNs are u64 and stored as INTEGER: real ones stay below 2^63, so they keep their order;
/// a larger one is refused rather than wrapped into a negative number.
pub fn db_lsn(l: Lsn) -> Result<i64, StoreError> {
    i64::try_from(l.0).map_err(|_| StoreError::Corrupt(format!("LSN {l} beyond range")))
}

pub fn lsn_from(v: i64) -> rusqlite::Result<Lsn> {
    u64::try_from(v)
        .map(Lsn)
        .map_err(|_| corrupt("LSN", &v.to_string()))
}

fn timeline_from(v: i64) -> rusqlite::Result<u32> {
    u32::try_from(v).map_err(|_| corrupt("timeline", &v.to_string()))
}

fn wal_from(row: &Row<'_>) -> rusqlite::Result<Option<WalRange>> {
    let timeline: Option<i64> = row.get("wal_timeline")?;
    let start: Option<i64> = row.get("wal_start")?;
    let end: Option<i64> = row.get("wal_end")?;
    let (Some(timeline), Some(start), Some(end)) = (timeline, start, end) else {
        return Ok(None);
    };
    Ok(Some(WalRange {
        timeline: timeline_from(timeline)?,
        start: lsn_from(start)?,
        end: lsn_from(end)?,
    }))
}

pub fn set_from(row: &Row<'_>) -> rusqlite::Result<BackupSet> {
    let id: i64 = row.get("id")?;
    let cluster: String = row.get("cluster_id")?;
    let mode: String = row.get("mode")?;
    let status: String = row.get("status")?;
    let consistent: Option<i64> = row.get("consistent_time")?;
    let size: i64 = row.get("size")?;
    let stored: i64 = row.get("stored_size")?;
    Ok(BackupSet {
        id: job_id(id)?,
        cluster_id: DbClusterId::parse(&cluster).map_err(|_| corrupt("cluster id", &cluster))?,
        mode: mode.parse().map_err(|_| corrupt("backup mode", &mode))?,
        status: status
            .parse()
            .map_err(|_| corrupt("backup status", &status))?,
        start_time: ts(row.get("start_time")?)?,
        end_time: ts(row.get("end_time")?)?,
        consistent_time: consistent.map(ts).transpose()?,
        size: u64::try_from(size).map_err(|_| corrupt("size", &size.to_string()))?,
        stored_size: u64::try_from(stored).map_err(|_| corrupt("size", &stored.to_string()))?,
        comment: row.get("comment")?,
        wal: wal_from(row)?,
    })
}

pub const WAL_COLUMNS: &str = "id, cluster_id, timeline, kind, name, start_lsn, end_lsn, size, \
     stored_size, key, digest, start_us, end_us";

fn size_from(v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("size", &v.to_string()))
}

fn cluster_id_from(row: &Row<'_>) -> rusqlite::Result<DbClusterId> {
    let cluster: String = row.get("cluster_id")?;
    DbClusterId::parse(&cluster).map_err(|_| corrupt("cluster id", &cluster))
}

pub fn wal_object_from(row: &Row<'_>) -> rusqlite::Result<WalObject> {
    let id: i64 = row.get("id")?;
    let kind: String = row.get("kind")?;
    Ok(WalObject {
        id: u64::try_from(id)
            .map(BackupLogId)
            .map_err(|_| corrupt("WAL object id", &id.to_string()))?,
        object: NewWalObject {
            cluster_id: cluster_id_from(row)?,
            timeline: timeline_from(row.get("timeline")?)?,
            kind: WalObjectKind::parse(&kind).ok_or_else(|| corrupt("WAL object kind", &kind))?,
            name: row.get("name")?,
            start: lsn_from(row.get("start_lsn")?)?,
            end: lsn_from(row.get("end_lsn")?)?,
            size: size_from(row.get("size")?)?,
            stored_size: size_from(row.get("stored_size")?)?,
            key: row.get("key")?,
            digest: row.get("digest")?,
            start_time: ts_micros(row.get("start_us")?)?,
            end_time: ts_micros(row.get("end_us")?)?,
        },
    })
}

pub fn gap_from(row: &Row<'_>) -> rusqlite::Result<WalGap> {
    Ok(WalGap {
        cluster_id: cluster_id_from(row)?,
        timeline: timeline_from(row.get("timeline")?)?,
        from: lsn_from(row.get("from_lsn")?)?,
        to: lsn_from(row.get("to_lsn")?)?,
        detected_at: ts_micros(row.get("detected_us")?)?,
        reason: row.get("reason")?,
    })
}

/// Job ids are u64 in the model and i64 in SQLite; ids beyond i64 cannot exist in the table.
pub fn db_id(id: BackupJobId) -> i64 {
    i64::try_from(id.0).unwrap_or(-1)
}

/// Sizes beyond i64 cannot happen on real disks; saturate rather than wrap.
pub fn db_size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
