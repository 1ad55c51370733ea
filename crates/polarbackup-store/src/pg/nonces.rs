//! Signature nonces in PostgreSQL: one statement (one round trip per signed request) purges
//! expired nonces and records this one. An expired row for the same nonce is refreshed rather
//! than deleted, so the purge and the insert never touch the same row.

use super::{retrying, PgStore};
use crate::rows::secs;
use crate::{NonceStore, Result};
use jiff::Timestamp;
use polarbackup_model::AccessKeyId;

impl NonceStore for PgStore {
    fn use_nonce(
        &self,
        key: &AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let (key, nonce) = (key.clone(), nonce.to_owned());
        let (expires, now) = (secs(expires_at), secs(now));
        self.pool.run(move |conn| {
            let client = conn.client()?;
            // Concurrent purges can deadlock on the rows they share: retried.
            retrying(|| {
                let row = client.query_opt(
                    "WITH purge AS (
                         DELETE FROM nonces
                         WHERE expires_at < $4 AND NOT (key_id = $1 AND nonce = $2))
                     INSERT INTO nonces (key_id, nonce, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
                         WHERE nonces.expires_at < $4
                     RETURNING 1",
                    &[&key.as_str(), &nonce, &expires, &now],
                )?;
                Ok(row.is_some())
            })
        })
    }
}
