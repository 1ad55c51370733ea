//! The embedded SQLite implementation of [`Store`], in `<data-dir>/metadata.sqlite`, with the
//! signature nonces in the log `metadata.sqlite-nonce-log` next to it.

mod cache;
mod caller;
mod clusters;
mod jobs;
mod nonce_log;
mod nonces;
mod policies;
mod ram;
mod rows;
mod secrets;
mod sets;
mod tenants;
mod wal;
mod wal_index;

use crate::sealing::Sealer;
use crate::{migrations, CallerRecords, Result, Store};
use polarbackup_model::{AccessKeyId, DbClusterId};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const DB_FILE: &str = "metadata.sqlite";

/// How many idle read connections a handle keeps.
const MAX_IDLE_READERS: usize = 16;

/// One connection behind a mutex for writes (SQLite serialises writers anyway) and most reads,
/// and a pool of read-only connections for the reads every request makes, so that they never
/// wait for a commit's fsync. WAL mode lets readers, the writer and other processes (admin
/// commands) work at once; a read sees everything committed before it began.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    /// The nonce log (`nonce_log`), next to `path`.
    nonce_log: PathBuf,
    nonce_committer: nonces::NonceCommitter,
    /// What every signed call reads, while nothing is written (`cache`).
    cache: cache::ReadCache,
    sealer: Sealer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens `<data_dir>/metadata.sqlite` (creating the directory with mode 0700 if needed) and
    /// migrates the schema.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_file(&data_dir.join(DB_FILE))
    }

    /// Opens the database file `path` (creating its directory with mode 0700 if needed) and
    /// migrates the schema.
    pub fn open_file(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
        }
        let mut conn = create_wal_file(&path)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Room for every statement a request runs, so the cache never evicts one of them.
        conn.set_prepared_statement_cache_capacity(64);
        migrations::apply(&mut conn)?;
        let nonce_log = nonces::open_log(&path, &mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path,
            nonce_log,
            nonce_committer: nonces::NonceCommitter::default(),
            cache: cache::ReadCache::default(),
            sealer: Sealer::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The nonce log (`<path>-nonce-log`).
    pub fn nonce_log_path(&self) -> &Path {
        &self.nonce_log
    }

    /// `PRAGMA integrity_check` of the metadata file and a read of the whole nonce log:
    /// `["ok"]` when both are sound, else the findings, the log's named as such (the crash
    /// harness runs it after every restart).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut found = self.with(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let log = nonces::check_log(&self.nonce_log);
        if !log.is_empty() {
            if found == ["ok"] {
                found.clear();
            }
            found.extend(log);
        }
        Ok(found)
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to reuse.
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }

    /// Runs `f` on a read-only connection of the pool (opened when none is idle), outside the
    /// writer's lock: for the reads every request makes. Several statements that must agree
    /// go in one transaction of `f`'s own (`unchecked_transaction`).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let out = f(&conn);
        // A connection left inside a transaction (which cannot happen short of a bug) is not
        // reused: it would pin an old snapshot.
        if conn.is_autocommit() {
            let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }

    fn open_reader(&self) -> Result<Connection> {
        let conn = open_connection(&self.path)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }

    /// Runs `f` in one IMMEDIATE write transaction (the write lock is taken up front, so two
    /// read-then-write callers cannot interleave) and commits when it returns `Ok`.
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// Every nonce `store` keeps, with the column names (for `migrate_metadata`).
pub(crate) fn nonce_rows(
    store: &SqliteStore,
) -> Result<(Vec<String>, Vec<Vec<rusqlite::types::Value>>)> {
    nonces::all_rows(&store.nonce_log)
}

/// Opens (creating) the database file `path`, private to its owner, in WAL mode with
/// `synchronous=FULL`.
fn create_wal_file(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // The metadata file holds key secrets and database passwords: owner only.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Switching to WAL needs a moment of exclusive access and does not wait on the busy
    // handler, so processes opening a fresh directory together retry briefly.
    let mut attempt = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 100 =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other?,
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Another connection to the handle's database, which exists (the handle made it) and is
/// already in WAL mode (which is persistent).
fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Store for SqliteStore {
    fn local_reads(&self) -> bool {
        true
    }

    fn ping(&self) -> Result<()> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    fn caller_records(
        &self,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
    ) -> Result<Option<CallerRecords>> {
        self.read_caller_records(key, cluster)
    }
}
