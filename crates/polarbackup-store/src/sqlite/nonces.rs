//! Signature nonces in SQLite: one row per (key, nonce) until it expires; expired rows are
//! purged now and then, a bounded batch at a time ([`crate::rules::NoncePurge`]).
//!
//! They live in a database file of their own, `<metadata file>-nonces` (WAL mode,
//! `synchronous=FULL`, its own schema version): every signed request commits one, and a commit
//! to the metadata file would empty the page cache of every connection reading keys, clusters
//! and jobs from it. Rows an older version left in the metadata file (`legacy_nonces`,
//! migration 15) are moved here at open, so a nonce used before the upgrade is still refused
//! within its window.
//!
//! Group commit on a thread of the handle's own: every signed request writes its nonce
//! durably, and one commit (one fsync) per request was the API's ceiling. Callers queue their
//! nonce ([`NonceStore::queue_nonce`], or [`NonceStore::use_nonce`], which queues and waits);
//! the committer writes every nonce queued so far in one transaction on its own connection,
//! commits, and only then answers each caller, so a nonce is still used once, durably. Callers
//! arriving meanwhile queue for the next transaction, and no caller's thread waits for a
//! commit unless it asked to. A batch that fails is retried one nonce per transaction, so each
//! caller gets its own answer (out of space stays out of space). The reads every request
//! makes run on other connections, never behind this fsync.

use super::rows::secs;
use crate::rules::{NoncePurge, NONCE_PURGE_BATCH};
use crate::{NonceDone, Result, StoreError};
use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{params, Connection, TransactionBehavior};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Opens (creating and migrating) the nonce database next to the metadata file `main`, whose
/// connection is `main_conn`, and moves into it the nonces an older version kept in the
/// metadata file. Returns its path.
pub(super) fn open_db(main: &Path, main_conn: &mut Connection) -> Result<PathBuf> {
    let mut name = OsString::from(main.as_os_str());
    name.push("-nonces");
    let path = PathBuf::from(name);
    let mut conn = super::create_wal_file(&path)?;
    crate::migrations::apply_nonces(&mut conn)?;
    adopt_legacy(main_conn, &mut conn)?;
    Ok(path)
}

/// Moves `legacy_nonces` (metadata file) into the nonce database: committed there first, then
/// deleted from the metadata file, so a crash between the two leaves a nonce in both (moved
/// again at the next open) and never in neither. The metadata file's write lock is held
/// throughout, so processes opening the store together move each row once.
fn adopt_legacy(main: &mut Connection, nonces: &mut Connection) -> Result<()> {
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let any: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM legacy_nonces)", [], |r| {
        r.get(0)
    })?;
    if !any {
        return Ok(());
    }
    let into = nonces.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = into.prepare(
            "INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_id, nonce) DO UPDATE
                 SET expires_at = max(nonces.expires_at, excluded.expires_at)",
        )?;
        let mut select = tx.prepare("SELECT key_id, nonce, expires_at FROM legacy_nonces")?;
        let mut rows = select.query([])?;
        while let Some(r) = rows.next()? {
            insert.execute(params![
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?
            ])?;
        }
    }
    into.commit()?;
    tx.execute("DELETE FROM legacy_nonces", [])?;
    tx.commit()?;
    Ok(())
}

/// Every stored nonce, with its column names, in one read (for `migrate_metadata`).
pub(crate) fn all_rows(path: &Path) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let conn = super::open_connection(path)?;
    let mut stmt = conn.prepare("SELECT key_id, nonce, expires_at FROM nonces")?;
    let columns = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let rows = stmt
        .query_map([], |r| (0..3).map(|i| r.get::<_, Value>(i)).collect())?
        .collect::<rusqlite::Result<Vec<Vec<Value>>>>()?;
    Ok((columns, rows))
}

/// One caller's nonce.
struct Row {
    key: String,
    nonce: String,
    expires_at: Timestamp,
    now: Timestamp,
}

#[derive(Default)]
struct Queue {
    pending: Vec<(Row, NonceDone)>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing in `Queue` is left half-updated by a panic: reuse a poisoned lock.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The committer of one handle, started by the first nonce and stopped (after answering every
/// queued caller) when the handle is dropped.
#[derive(Default)]
pub(crate) struct NonceCommitter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl NonceCommitter {
    /// Queues one nonce; `done` gets the answer on the committer's thread.
    pub(crate) fn queue(
        &self,
        path: &Path,
        key: &str,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
        done: NonceDone,
    ) {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            match start(path, self.shared.clone()) {
                Ok(t) => *thread = Some(t),
                Err(e) => {
                    drop(thread);
                    return done(Err(e));
                }
            }
        }
        drop(thread);
        let row = Row {
            key: key.to_owned(),
            nonce: nonce.to_owned(),
            expires_at,
            now,
        };
        self.shared.lock().pending.push((row, done));
        self.shared.changed.notify_one();
    }
}

impl Drop for NonceCommitter {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens the committer's connection to the nonce database `path` and starts its thread.
fn start(path: &Path, shared: Arc<Shared>) -> Result<JoinHandle<()>> {
    let conn = super::open_connection(path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let thread = std::thread::Builder::new()
        .name("sqlite-nonces".into())
        .spawn(move || run(&shared, conn))?;
    Ok(thread)
}

fn run(shared: &Shared, mut conn: Connection) {
    let purge = NoncePurge::default();
    loop {
        let batch = {
            let mut q = shared.lock();
            while q.pending.is_empty() && !q.closed {
                q = shared.changed.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.pending.is_empty() {
                return;
            }
            std::mem::take(&mut q.pending)
        };
        // A panic (a bug) drops the batch's callbacks, which their callers see as an error;
        // the committer carries on with the next batch.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit_batch(&mut conn, &purge, batch)
        }));
    }
}

fn commit_batch(conn: &mut Connection, purge: &NoncePurge, batch: Vec<(Row, NonceDone)>) {
    let (rows, dones): (Vec<Row>, Vec<NonceDone>) = batch.into_iter().unzip();
    match write(conn, purge, &rows) {
        Ok(fresh) => {
            for (done, fresh) in dones.into_iter().zip(fresh) {
                done(Ok(fresh));
            }
        }
        // Nothing committed: each alone, so each caller gets its own answer.
        Err(_) => {
            for (row, done) in rows.iter().zip(dones) {
                done(write(conn, purge, std::slice::from_ref(row)).map(|f| f[0]));
            }
        }
    }
}

/// Writes `rows` in one IMMEDIATE transaction: whether each nonce was fresh.
fn write(conn: &mut Connection, purge: &NoncePurge, rows: &[Row]) -> Result<Vec<bool>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let fresh = rows
        .iter()
        .map(|r| write_one(&tx, purge, r))
        .collect::<Result<Vec<bool>>>()?;
    tx.commit()?;
    Ok(fresh)
}

/// The purge (when due) and one nonce's write, inside the batch's transaction.
fn write_one(tx: &Connection, purge: &NoncePurge, r: &Row) -> Result<bool> {
    if purge.due(r.now) {
        let n = tx.execute(
            "DELETE FROM nonces WHERE (key_id, nonce) IN
                 (SELECT key_id, nonce FROM nonces WHERE expires_at < ?1 LIMIT ?2)",
            params![secs(r.now), NONCE_PURGE_BATCH],
        )?;
        purge.purged(n);
    }
    // An expired row (not purged yet) is taken over: the nonce may be used again. A nonce
    // given twice in one batch conflicts with its first write, as across transactions.
    // Cached: every signed request makes this write.
    let changed = tx
        .prepare_cached(
            "INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE nonces.expires_at < ?4",
        )?
        .execute(params![r.key, r.nonce, secs(r.expires_at), secs(r.now)])?;
    Ok(changed == 1)
}

/// What a caller whose callback was dropped unanswered (a bug in the committer) gets.
pub(crate) fn committer_gone() -> StoreError {
    StoreError::Io(std::io::Error::other("the nonce committer stopped"))
}

impl crate::NonceStore for super::SqliteStore {
    fn use_nonce(
        &self,
        key: &polarbackup_model::AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done: NonceDone = Box::new(move |answer| {
            let _ = tx.send(answer);
        });
        if let Err(done) = self.queue_nonce(key, nonce, expires_at, now, done) {
            // Never: this store always queues.
            drop(done);
        }
        rx.recv().unwrap_or_else(|_| Err(committer_gone()))
    }

    fn queue_nonce(
        &self,
        key: &polarbackup_model::AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
        done: NonceDone,
    ) -> std::result::Result<(), NonceDone> {
        self.nonce_committer
            .queue(&self.nonce_path, key.as_str(), nonce, expires_at, now, done);
        Ok(())
    }
}
