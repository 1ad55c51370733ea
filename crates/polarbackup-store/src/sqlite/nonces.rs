//! Signature nonces in SQLite: one row per (key, nonce) until it expires.

use super::rows::secs;
use super::SqliteStore;
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
        self.write(|tx| {
            tx.execute("DELETE FROM nonces WHERE expires_at < ?1", [secs(now)])?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO nonces (key_id, nonce, expires_at) VALUES (?1, ?2, ?3)",
                params![key.as_str(), nonce, secs(expires_at)],
            )?;
            Ok(inserted == 1)
        })
    }
}
