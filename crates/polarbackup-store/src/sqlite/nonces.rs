//! Signature nonces in SQLite: one row per (key, nonce) until it expires; expired rows are
//! purged now and then, a bounded batch at a time ([`crate::rules::NoncePurge`]).

use super::rows::secs;
use super::SqliteStore;
use crate::rules::NONCE_PURGE_BATCH;
use crate::{NonceStore, Result};
use jiff::Timestamp;
use polarbackup_model::AccessKeyId;
use rusqlite::params;

impl NonceStore for SqliteStore {
    fn use_nonce(
        &self,
        key: &AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let (fresh, purged) = self.write(|tx| {
            let purged = if self.nonce_purge.due(now) {
                Some(tx.execute(
                    "DELETE FROM nonces WHERE (key_id, nonce) IN
                         (SELECT key_id, nonce FROM nonces WHERE expires_at < ?1 LIMIT ?2)",
                    params![secs(now), NONCE_PURGE_BATCH],
                )?)
            } else {
                None
            };
            // An expired row (not purged yet) is taken over: the nonce may be used again.
            // Cached: every signed request makes this write.
            let changed = tx
                .prepare_cached(
                    "INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
                         WHERE nonces.expires_at < ?4",
                )?
                .execute(params![key.as_str(), nonce, secs(expires_at), secs(now)])?;
            Ok((changed == 1, purged))
        })?;
        if let Some(n) = purged {
            self.nonce_purge.purged(n);
        }
        Ok(fresh)
    }
}
