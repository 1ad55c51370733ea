//! What every signed call reads (its key, user, policies, the named cluster, and for
//! DescribeBackupTasks the cluster's recent jobs), kept in memory while nothing was written to
//! the metadata file.
//!
//! `PRAGMA data_version` on a connection of the cache's own moves whenever any other
//! connection, in this process or another (an `admin` command, a second server), commits to
//! the file; the cache is emptied when it has moved. A lookup reads the version before it
//! reads the store, and keeps what it read only if the cache still holds that version, so an
//! entry never outlives the next check after a commit: a call sees every change committed
//! before it began, as a read of its own would. The version is read again only when the
//! wal-index header has changed since it was last read ([`super::wal_index`]).

use super::rows::secs;
use super::wal_index::{Header, WalIndex};
use crate::records::{CallerRecords, JobFilter, ReadMark};
use crate::Result;
use jiff::Timestamp;
use polarbackup_model::{AccessKeyId, BackupJob, BackupJobId, DbClusterId, JobMode};
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Entries kept at most per kind; past it the kind is emptied (every entry is cheap to read
/// again, and a flood of distinct calls must not grow the server).
const MAX_ENTRIES: usize = 4096;

type CallerKey = (AccessKeyId, Option<DbClusterId>);
type JobsKey = (DbClusterId, Option<BackupJobId>, Option<&'static str>);

#[derive(Default)]
struct Entries {
    version: Option<i64>,
    callers: HashMap<CallerKey, CallerRecords>,
    /// A listing read with `ended_since` = the timestamp kept: it answers any later one
    /// (fewer ended jobs pass) by filtering.
    jobs: HashMap<JobsKey, (Timestamp, Vec<BackupJob>)>,
}

/// The connection the version is read on, and the file's wal-index.
struct Watch {
    conn: Connection,
    index: Option<WalIndex>,
    /// The wal-index header read just before the version was last read, and that version.
    seen: Option<(Header, i64)>,
}

impl Watch {
    fn open(path: &Path) -> Result<Self> {
        let conn = super::open_connection(path)?;
        conn.pragma_update(None, "query_only", "ON")?;
        // The first read builds the wal-index if no connection has yet.
        read_version(&conn)?;
        let index = WalIndex::open(path, &conn);
        Ok(Self {
            conn,
            index,
            seen: None,
        })
    }

    fn version(&mut self) -> Result<i64> {
        // Read before the version: a commit between the two shows as a changed header next
        // time, so an unchanged one proves nothing was committed since the version was read.
        let header = self.index.as_ref().and_then(WalIndex::header);
        if let (Some(now), Some((seen, v))) = (header, self.seen) {
            if now == seen {
                return Ok(v);
            }
        }
        let v = read_version(&self.conn)?;
        self.seen = header.map(|h| (h, v));
        Ok(v)
    }
}

fn read_version(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get::<_, i64>(0))?)
}

/// The cache of one handle. Its watch connection is opened at the first lookup.
pub(super) struct ReadCache {
    /// Which handle, in the marks it gives ([`ReadMark`]): a mark of another handle's cache
    /// says nothing about this one's.
    id: u64,
    watch: Mutex<Option<Watch>>,
    entries: Mutex<Entries>,
}

impl Default for ReadCache {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            watch: Mutex::default(),
            entries: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Entries are replaced whole and a connection is left between statements: a poisoned
    // lock holds nothing half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReadCache {
    /// The file's version now, the cache emptied if it moved since the last lookup.
    pub(super) fn version(&self, path: &Path) -> Result<i64> {
        let v = {
            let mut watch = lock(&self.watch);
            if watch.is_none() {
                *watch = Some(Watch::open(path)?);
            }
            watch.as_mut().expect("opened above").version()?
        };
        let mut e = lock(&self.entries);
        // Any difference, not only a larger value (the counter may wrap). A lookup that read
        // the version just before another saw it move may set the older one back: what it
        // keeps then was read after the move, and the next lookup sees the newer version.
        if e.version != Some(v) {
            *e = Entries {
                version: Some(v),
                ..Entries::default()
            };
        }
        Ok(v)
    }

    /// The mark of version `v`, for the records of a call read at it.
    pub(super) fn mark(&self, v: i64) -> ReadMark {
        ReadMark {
            handle: self.id,
            version: v,
        }
    }

    /// Whether this cache still holds what it held at `mark` (no change seen since): the
    /// version `mark` names, when it is this cache's.
    pub(super) fn stands_at(&self, mark: ReadMark) -> Option<i64> {
        (mark.handle == self.id && lock(&self.entries).version == Some(mark.version))
            .then_some(mark.version)
    }

    pub(super) fn caller(
        &self,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
    ) -> Option<CallerRecords> {
        lock(&self.entries)
            .callers
            .get(&(key.clone(), cluster.cloned()))
            .cloned()
    }

    /// Keeps `records`, read after [`ReadCache::version`] returned `v`, unless a commit was
    /// seen since.
    pub(super) fn keep_caller(
        &self,
        v: i64,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
        records: &CallerRecords,
    ) {
        let mut e = lock(&self.entries);
        if e.version == Some(v) {
            keep(
                &mut e.callers,
                (key.clone(), cluster.cloned()),
                records.clone(),
            );
        }
    }

    pub(super) fn jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Option<Vec<BackupJob>> {
        let e = lock(&self.entries);
        let (since, jobs) = e.jobs.get(&jobs_key(cluster, filter))?;
        let floor = secs(filter.ended_since);
        (floor >= secs(*since)).then(|| {
            jobs.iter()
                .filter(|j| j.ended_at.is_none_or(|t| secs(t) >= floor))
                .cloned()
                .collect()
        })
    }

    /// Keeps a listing read after [`ReadCache::version`] returned `v`, unless a commit was
    /// seen since.
    pub(super) fn keep_jobs(
        &self,
        v: i64,
        cluster: &DbClusterId,
        filter: &JobFilter,
        jobs: &[BackupJob],
    ) {
        let mut e = lock(&self.entries);
        if e.version == Some(v) {
            let entry = (filter.ended_since, jobs.to_vec());
            keep(&mut e.jobs, jobs_key(cluster, filter), entry);
        }
    }
}

/// Inserts into one kind of entries, emptied first when full ([`MAX_ENTRIES`]).
fn keep<K: std::hash::Hash + Eq, V>(entries: &mut HashMap<K, V>, key: K, value: V) {
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
    entries.insert(key, value);
}

fn jobs_key(cluster: &DbClusterId, filter: &JobFilter) -> JobsKey {
    (
        cluster.clone(),
        filter.job_id,
        filter.mode.map(JobMode::as_str),
    )
}
