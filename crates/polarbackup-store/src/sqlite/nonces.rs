//! Signature nonces in SQLite: one row per (key, nonce) until it expires; expired rows are
//! purged now and then, a bounded batch at a time ([`crate::rules::NoncePurge`]).
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
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

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

/// Opens the committer's connection and starts its thread.
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
            .queue(&self.path, key.as_str(), nonce, expires_at, now, done);
        Ok(())
    }
}
