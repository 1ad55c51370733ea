//! Signature nonces in SQLite: one row per (key, nonce) until it expires; expired rows are
//! purged now and then, a bounded batch at a time ([`crate::rules::NoncePurge`]).
//!
//! Group commit: every signed request writes its nonce durably, and one commit (one fsync) per
//! request was the API's ceiling. Concurrent callers on one handle therefore share a
//! transaction: the first becomes the leader, writes every nonce queued so far in one
//! transaction and commits; callers arriving meanwhile queue for the next one. Each caller
//! returns only after the transaction holding its nonce committed, so a nonce is still used
//! once, durably. A batch that fails is retried one nonce per transaction by its own callers,
//! so each gets its own error (out of space stays out of space).

use super::rows::secs;
use super::SqliteStore;
use crate::rules::NONCE_PURGE_BATCH;
use crate::{NonceStore, Result};
use jiff::Timestamp;
use polarbackup_model::AccessKeyId;
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// One caller's nonce, waiting for a batch.
struct Pending {
    ticket: u64,
    key: String,
    nonce: String,
    expires_at: Timestamp,
    now: Timestamp,
}

/// A batch's answer for one caller: fresh or not, or "the batch failed, write it alone".
type Outcome = Option<bool>;

#[derive(Default)]
struct State {
    queue: Vec<Pending>,
    leading: bool,
    next_ticket: u64,
    done: HashMap<u64, Outcome>,
}

/// The queue concurrent `use_nonce` callers share (one per handle).
#[derive(Default)]
pub(crate) struct NonceBatcher {
    state: Mutex<State>,
    changed: Condvar,
}

impl NonceBatcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in `State` is left half-updated by a panic: reuse a poisoned lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Clears the leader's flag even if writing the batch panicked, so the queue never stalls;
/// the batch's callers then write alone.
struct Leading<'a> {
    batcher: &'a NonceBatcher,
    tickets: Vec<u64>,
    outcomes: Option<Vec<bool>>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut st = self.batcher.lock();
        let outcomes = self.outcomes.take();
        for (i, ticket) in self.tickets.iter().enumerate() {
            st.done.insert(*ticket, outcomes.as_ref().map(|o| o[i]));
        }
        st.leading = false;
        drop(st);
        self.batcher.changed.notify_all();
    }
}

/// The purge (when due) and one nonce's write, inside the caller's transaction.
fn write_one(
    store: &SqliteStore,
    tx: &Connection,
    key: &str,
    nonce: &str,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    if store.nonce_purge.due(now) {
        let n = tx.execute(
            "DELETE FROM nonces WHERE (key_id, nonce) IN
                 (SELECT key_id, nonce FROM nonces WHERE expires_at < ?1 LIMIT ?2)",
            params![secs(now), NONCE_PURGE_BATCH],
        )?;
        store.nonce_purge.purged(n);
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
        .execute(params![key, nonce, secs(expires_at), secs(now)])?;
    Ok(changed == 1)
}

impl SqliteStore {
    /// Writes the queued nonces in one transaction; `None` if it failed (nothing committed).
    fn write_batch(&self, batch: &[Pending]) -> Option<Vec<bool>> {
        self.write(|tx| {
            batch
                .iter()
                .map(|p| write_one(self, tx, &p.key, &p.nonce, p.expires_at, p.now))
                .collect::<Result<Vec<bool>>>()
        })
        .ok()
    }
}

impl NonceStore for SqliteStore {
    fn use_nonce(
        &self,
        key: &AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let batcher = &self.nonce_batcher;
        let mut st = batcher.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push(Pending {
            ticket,
            key: key.as_str().to_string(),
            nonce: nonce.to_string(),
            expires_at,
            now,
        });
        let outcome = loop {
            if let Some(outcome) = st.done.remove(&ticket) {
                break outcome;
            }
            if st.leading {
                st = batcher.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leading = true;
            let batch = std::mem::take(&mut st.queue);
            drop(st);
            let mut leading = Leading {
                batcher,
                tickets: batch.iter().map(|p| p.ticket).collect(),
                outcomes: None,
            };
            leading.outcomes = self.write_batch(&batch);
            drop(leading);
            st = batcher.lock();
        };
        drop(st);
        match outcome {
            Some(fresh) => Ok(fresh),
            None => self.write(|tx| write_one(self, tx, key.as_str(), nonce, expires_at, now)),
        }
    }
}
