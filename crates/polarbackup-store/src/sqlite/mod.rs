//! The embedded SQLite implementation of [`Store`], in `<data-dir>/metadata.sqlite`.

mod clusters;
mod jobs;
mod nonces;
mod policies;
mod ram;
mod rows;
mod secrets;
mod sets;
mod tenants;
mod wal;

use crate::rules::NoncePurge;
use crate::sealing::Sealer;
use crate::{migrations, Result, Store};
use rusqlite::{Connection, TransactionBehavior};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const DB_FILE: &str = "metadata.sqlite";

/// One connection behind a mutex: SQLite serialises writers anyway, and WAL mode lets other
/// processes (admin commands) read and write while the server runs.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    nonce_purge: NoncePurge,
    nonce_batcher: nonces::NonceBatcher,
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
        let mut conn = Connection::open(&path)?;
        // The file holds key secrets and database passwords: owner only.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
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
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Room for every statement a request runs, so the cache never evicts one of them.
        conn.set_prepared_statement_cache_capacity(64);
        migrations::apply(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            nonce_purge: NoncePurge::default(),
            nonce_batcher: nonces::NonceBatcher::default(),
            sealer: Sealer::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA integrity_check`: `["ok"]` for a sound database file, else SQLite's findings
    /// (the crash harness runs it after every restart).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to reuse.
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
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

impl Store for SqliteStore {
    fn ping(&self) -> Result<()> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }
}
