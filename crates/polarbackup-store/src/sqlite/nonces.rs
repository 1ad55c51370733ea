//! Signature nonces on SQLite stores: kept in the nonce log next to the metadata file
//! ([`super::nonce_log`], `<metadata file>-nonce-log`), not in SQLite: every signed request
//! uses one, and a SQLite transaction per batch of them (page writes, WAL, checkpoints) was
//! the largest share of the API's CPU after the job listing.
//!
//! Group commit on a thread of the handle's own: callers queue their nonce
//! ([`NonceStore::queue_nonce`], or [`NonceStore::use_nonce`], which queues and waits); the
//! committer checks every nonce queued so far against the log, appends the fresh ones as one
//! frame, syncs it, and only then answers each caller, so a nonce is still used once, durably,
//! across every handle of the data directory. Callers arriving meanwhile queue for the next
//! batch, and no caller's thread waits for a sync unless it asked to. A batch that fails is
//! retried one nonce at a time, so each caller gets its own answer (out of space stays out of
//! space).
//!
//! Calls that change nothing may use a nonce without waiting for a sync
//! ([`NonceStore::use_nonce_unsynced`]): while asked for, the committer holds the log's lock
//! between batches (a lease of at most [`LEASE`]), and such a call decides its nonce on its own
//! thread from the set alone and writes it to the file before it is answered, so every handle
//! refuses it from then on and a killed process forgets none; the committer syncs those writes
//! when the lease ends, before the lock goes to anyone else. Only a machine crash within a
//! lease can forget such a nonce, and only of a call that read. A lease ends after [`LEASE`],
//! and the next starts no sooner than [`BETWEEN_LEASES`] later, so other handles wait for the
//! lock no longer than a lease. Batches queued meanwhile are written holding the handle only
//! briefly and synced without it, so the unsynced uses go on during their syncs.
//!
//! Older versions kept nonces in the metadata file (`legacy_nonces` since migration 15) and
//! then in a SQLite file of their own (`<metadata file>-nonces`): both are moved into the log
//! at open, synced there before they are deleted, so a nonce used before the upgrade is still
//! refused within its window.

use super::nonce_log::{self, NonceLog, Record};
use super::rows::secs;
use crate::{NonceDone, Result, StoreError};
use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the committer holds the log's lock for unsynced uses at most: the longest a
/// machine crash can forget such a nonce, and another handle waits for the lock.
pub(crate) const LEASE: Duration = Duration::from_millis(25);
/// How long after a lease ends the committer takes the next at the earliest, so another
/// handle waiting for the lock gets it in between.
const BETWEEN_LEASES: Duration = Duration::from_millis(1);
/// How many times an unsynced use tries for the handle before it queues instead.
const SPINS: usize = 100;

/// `<main>` with `suffix` appended to its file name.
fn beside(main: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(main.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens (creating) the nonce log next to the metadata file `main`, whose connection is
/// `main_conn`, and moves into it the nonces older versions kept elsewhere. Returns its path.
pub(super) fn open_log(main: &Path, main_conn: &mut Connection) -> Result<PathBuf> {
    let path = beside(main, "-nonce-log");
    let mut log = NonceLog::open(&path)?;
    // Under the log's lock, so processes opening the store together move each row once and
    // none finds a file another has just removed.
    log.locked(|log| {
        adopt_sqlite_file(&beside(main, "-nonces"), log)?;
        adopt_legacy_table(main_conn, log)
    })?;
    Ok(path)
}

/// Moves the nonce database of schema 15–16 (`<main>-nonces`) into the log, then removes it.
fn adopt_sqlite_file(old: &Path, log: &mut NonceLog) -> Result<()> {
    if !old.exists() {
        return Ok(());
    }
    let records = {
        let conn = Connection::open_with_flags(
            old,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > 1 {
            return Err(StoreError::TooNew {
                found: version,
                supported: 1,
            });
        }
        if version == 0 {
            Vec::new()
        } else {
            read_records(&conn, "nonces")?
        }
    };
    log.append_records(&records)?;
    for suffix in ["-wal", "-shm", ""] {
        match std::fs::remove_file(beside(old, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Moves `legacy_nonces` (metadata file) into the log: synced there first, then deleted from
/// the metadata file, so a crash between the two leaves a nonce in both (moved again at the
/// next open) and never in neither.
fn adopt_legacy_table(main: &mut Connection, log: &mut NonceLog) -> Result<()> {
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let records = read_records(&tx, "legacy_nonces")?;
    if records.is_empty() {
        return Ok(());
    }
    log.append_records(&records)?;
    tx.execute("DELETE FROM legacy_nonces", [])?;
    tx.commit()?;
    Ok(())
}

fn read_records(conn: &Connection, table: &str) -> Result<Vec<Record>> {
    let mut stmt = conn.prepare(&format!("SELECT key_id, nonce, expires_at FROM {table}"))?;
    let rows = stmt.query_map([], |r| {
        Ok(Record {
            key: r.get(0)?,
            nonce: r.get(1)?,
            expires_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Every stored nonce (the latest expiry of each), with column names, in one read (for
/// `migrate_metadata`).
pub(crate) fn all_rows(path: &Path) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let mut latest: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in nonce_log::read_all(path)? {
        let e = latest.entry((r.key, r.nonce)).or_insert(r.expires_at);
        *e = (*e).max(r.expires_at);
    }
    let columns = ["key_id", "nonce", "expires_at"].map(String::from).to_vec();
    let rows = latest
        .into_iter()
        .map(|((k, n), e)| vec![Value::Text(k), Value::Text(n), Value::Integer(e)])
        .collect();
    Ok((columns, rows))
}

/// What the integrity check finds in the log: nothing when it reads whole (a write cut off
/// at its end by a crash is not damage: nobody was answered for it, and the next write cuts
/// it off).
pub(crate) fn check_log(path: &Path) -> Vec<String> {
    match nonce_log::read_all(path) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("nonce log: {e}")],
    }
}

/// One caller's nonce.
struct Row {
    key: String,
    nonce: String,
    expires_at: Timestamp,
    now: Timestamp,
}

/// A caller of [`NonceCommitter::load`], answered once the log is read in.
type Loaded = Box<dyn FnOnce(Result<u64>) + Send>;

#[derive(Default)]
struct Queue {
    pending: Vec<(Row, NonceDone)>,
    loads: Vec<Loaded>,
    closed: bool,
    /// The committer is asleep on `changed`: only then does a new nonce wake it (a wake-up
    /// is a system call, and while it writes a batch the committer looks at the queue anyway).
    idle: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// The committer's handle on the log, opened by it; callers of unsynced uses reach it only
    /// when nobody holds it (never waiting behind a sync).
    log: Mutex<Option<NonceLog>>,
    /// An unsynced use found no lease: the committer takes one after its next batch.
    lease_wanted: AtomicBool,
    /// The committer holds a lease (set once it is taken, cleared before it ends): only then
    /// does an unsynced use try for `log`.
    leased: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing in `Queue` is left half-updated by a panic: reuse a poisoned lock.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, Option<NonceLog>> {
        // A panic between a write and its bookkeeping leaves at most a frame the set does not
        // hold: the nonce is refused by other handles, accepted once more by this one.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `log` for a caller on an async thread, which never waits for it longer than another
    /// such call holds it (a few µs of spinning): `None` while the committer works on it
    /// longer (a batch's write, a prune of the set, the end of a lease).
    fn try_log(&self) -> Option<MutexGuard<'_, Option<NonceLog>>> {
        for _ in 0..SPINS {
            match self.log.try_lock() {
                Ok(log) => return Some(log),
                Err(TryLockError::Poisoned(e)) => return Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        None
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
        if let Err(e) = self.started(path) {
            return done(Err(e));
        }
        let row = Row {
            key: key.to_owned(),
            nonce: nonce.to_owned(),
            expires_at,
            now,
        };
        self.push(|q| q.pending.push((row, done)));
    }

    /// Uses a nonce on the caller's thread without waiting for a sync, while the committer
    /// holds a lease; `None` (the caller queues instead) without one, or while the committer
    /// works on the handle.
    pub(crate) fn use_unsynced(
        &self,
        key: &str,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Option<Result<bool>> {
        let answer = if self.shared.leased.load(Ordering::Acquire) {
            self.shared
                .try_log()?
                .as_mut()
                .and_then(|log| log.use_leased(key, nonce, secs(expires_at), secs(now)))
        } else {
            None
        };
        if answer.is_none() {
            self.shared.lease_wanted.store(true, Ordering::Relaxed);
        }
        answer
    }

    /// Has the committer read the log in (opening it first), and waits for that.
    pub(crate) fn load(&self, path: &Path) -> Result<u64> {
        self.started(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.push(|q| {
            q.loads.push(Box::new(move |answer| {
                let _ = tx.send(answer);
            }))
        });
        rx.recv().unwrap_or_else(|_| Err(committer_gone()))
    }

    /// Starts the committer's thread unless it runs.
    fn started(&self, path: &Path) -> Result<()> {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            *thread = Some(start(path, self.shared.clone())?);
        }
        Ok(())
    }

    /// Adds to the queue with `add`, waking the committer if it sleeps.
    fn push(&self, add: impl FnOnce(&mut Queue)) {
        let mut q = self.shared.lock();
        add(&mut q);
        let idle = q.idle;
        drop(q);
        if idle {
            self.shared.changed.notify_one();
        }
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

/// Starts the committer's thread, which opens its handle on the log `path` itself: opening
/// takes the log's lock, which another process may hold a while, and the caller may be an
/// async thread.
fn start(path: &Path, shared: Arc<Shared>) -> Result<JoinHandle<()>> {
    let path = path.to_owned();
    let thread = std::thread::Builder::new()
        .name("nonce-log".into())
        .spawn(move || run(&shared, &path))?;
    Ok(thread)
}

fn run(shared: &Shared, path: &Path) {
    // When the lease was taken, and when the last one ended.
    let mut leased_at: Option<Instant> = None;
    let mut released_at: Option<Instant> = None;
    loop {
        let (batch, loads, closed) = {
            let mut q = shared.lock();
            while q.pending.is_empty() && q.loads.is_empty() && !q.closed {
                q.idle = true;
                match leased_at.map(|at| LEASE.saturating_sub(at.elapsed())) {
                    None => q = shared.changed.wait(q).unwrap_or_else(|e| e.into_inner()),
                    Some(left) if !left.is_zero() => {
                        q = shared
                            .changed
                            .wait_timeout(q, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    Some(_) => {
                        q.idle = false;
                        break;
                    }
                }
                q.idle = false;
            }
            (
                std::mem::take(&mut q.pending),
                std::mem::take(&mut q.loads),
                q.closed,
            )
        };
        let mut guard = shared.log();
        // Reading in ends a lease too (it syncs holding the handle).
        if leased_at.is_some_and(|at| closed || !loads.is_empty() || at.elapsed() >= LEASE) {
            guard = end_lease(shared, guard);
            leased_at = None;
            released_at = Some(Instant::now());
        }
        if batch.is_empty() && loads.is_empty() && closed {
            return;
        }
        if leased_at.is_some() {
            drop(guard);
            if !batch.is_empty() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit_leased(shared, batch);
                }));
            }
            continue;
        }
        // A panic (a bug) drops the batch's callbacks, which their callers see as an error;
        // the committer carries on with the next batch.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let log = match &mut *guard {
                Some(log) => log,
                None => match NonceLog::open(path) {
                    Ok(opened) => guard.insert(opened),
                    // Every caller of the batch gets the failure; the next batch tries again.
                    Err(e) => {
                        let failed = || StoreError::Io(std::io::Error::other(e.to_string()));
                        for (_, done) in batch {
                            done(Err(failed()));
                        }
                        for loaded in loads {
                            loaded(Err(failed()));
                        }
                        return;
                    }
                },
            };
            // Each its own answer: after the first, reading in is only a look at the end.
            for loaded in loads {
                loaded(log.load());
            }
            if !batch.is_empty() {
                commit_batch(log, batch);
            }
            let rested = released_at.is_none_or(|at| at.elapsed() >= BETWEEN_LEASES);
            if !closed && rested && shared.lease_wanted.swap(false, Ordering::Relaxed) {
                let _ = log.lease();
            }
        }));
        if leased_at.is_none() && guard.as_ref().is_some_and(NonceLog::is_leased) {
            leased_at = Some(Instant::now());
            shared.leased.store(true, Ordering::Release);
        }
    }
}

/// Ends the lease: what was used under it is synced, without holding the handle (a call
/// finding it held does not wait), before the lock goes. Returns the handle held again.
fn end_lease<'a>(
    shared: &'a Shared,
    mut guard: MutexGuard<'a, Option<NonceLog>>,
) -> MutexGuard<'a, Option<NonceLog>> {
    shared.leased.store(false, Ordering::Release);
    let file = guard.as_mut().and_then(NonceLog::end_lease);
    drop(guard);
    let synced = file.is_some_and(|f| f.and_then(|f| f.sync_data()).is_ok());
    let mut guard = shared.log();
    if let Some(log) = guard.as_mut() {
        let _ = log.unlock_after_lease(synced);
    }
    guard
}

fn commit_batch(log: &mut NonceLog, batch: Vec<(Row, NonceDone)>) {
    let (rows, dones): (Vec<Row>, Vec<NonceDone>) = batch.into_iter().unzip();
    for (done, answer) in dones.into_iter().zip(answers(&rows, |b| log.use_batch(b))) {
        done(answer);
    }
    // Every caller is answered: none waits for the rewrite.
    let _ = log.compact_if_due();
}

/// A batch under the lease: decided and written holding the handle only briefly, then synced
/// without it, so unsynced uses go on meanwhile; each caller is answered after the sync.
fn commit_leased(shared: &Shared, batch: Vec<(Row, NonceDone)>) {
    let (rows, dones): (Vec<Row>, Vec<NonceDone>) = batch.into_iter().unzip();
    let (answers, file) = {
        let mut guard = shared.log();
        let Some(log) = guard.as_mut() else {
            return;
        };
        let answers = answers(&rows, |b| {
            log.use_batch_leased(b)
                .unwrap_or_else(|| Err(committer_gone()))
        });
        (answers, log.file())
    };
    let synced = file.and_then(|f| f.sync_data());
    for (done, answer) in dones.into_iter().zip(answers) {
        done(match &synced {
            Ok(()) => answer,
            Err(e) => Err(StoreError::Io(std::io::Error::new(e.kind(), e.to_string()))),
        });
    }
}

/// Each row's answer from `decide` (a use of a batch): the whole batch at once, or, when that
/// failed (nothing written), each row alone, so each caller gets its own answer.
fn answers(
    rows: &[Row],
    mut decide: impl FnMut(&[(&str, &str, i64, i64)]) -> Result<Vec<bool>>,
) -> Vec<Result<bool>> {
    match decide(&uses(rows)) {
        Ok(fresh) => fresh.into_iter().map(Ok).collect(),
        Err(_) => rows
            .iter()
            .map(|row| decide(&uses(std::slice::from_ref(row))).map(|f| f[0]))
            .collect(),
    }
}

/// The log's view of `rows`: key, nonce, expiry and the caller's now (seconds).
fn uses(rows: &[Row]) -> Vec<(&str, &str, i64, i64)> {
    rows.iter()
        .map(|r| (&*r.key, &*r.nonce, secs(r.expires_at), secs(r.now)))
        .collect()
}

/// What a caller whose callback was dropped unanswered (a bug in the committer) gets.
pub(crate) fn committer_gone() -> StoreError {
    StoreError::Io(std::io::Error::other("the nonce committer stopped"))
}

impl crate::NonceStore for super::SqliteStore {
    fn load_nonces(&self) -> Result<Option<u64>> {
        self.nonce_committer.load(&self.nonce_log).map(Some)
    }

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
            .queue(&self.nonce_log, key.as_str(), nonce, expires_at, now, done);
        Ok(())
    }

    fn use_nonce_unsynced(
        &self,
        key: &polarbackup_model::AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Option<Result<bool>> {
        self.nonce_committer
            .use_unsynced(key.as_str(), nonce, expires_at, now)
    }
}
