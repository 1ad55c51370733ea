//! Signature nonces in PostgreSQL: one statement per signed request records the nonce (an
//! expired row for it is taken over in place). Expired rows are purged now and then, a bounded
//! batch at a time ([`crate::rules::NoncePurge`]), skipping rows another server is purging.

use super::{retrying, PgStore};
use crate::rows::secs;
use crate::rules::NONCE_PURGE_BATCH;
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
        let (expires, now_s) = (secs(expires_at), secs(now));
        let purge = self.nonce_purge.due(now);
        let (fresh, purged) = self.pool.run(move |conn| {
            let client = conn.client()?;
            let purged = if purge {
                let batch = i64::try_from(NONCE_PURGE_BATCH).unwrap_or(i64::MAX);
                let n = retrying(|| {
                    Ok(client.execute(
                        "DELETE FROM nonces WHERE (key_id, nonce) IN (
                             SELECT key_id, nonce FROM nonces WHERE expires_at < $1
                             LIMIT $2 FOR UPDATE SKIP LOCKED)",
                        &[&now_s, &batch],
                    )?)
                })?;
                Some(usize::try_from(n).unwrap_or(usize::MAX))
            } else {
                None
            };
            let row = retrying(|| {
                Ok(client.query_opt(
                    "INSERT INTO nonces (key_id, nonce, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
                         WHERE nonces.expires_at < $4
                     RETURNING 1",
                    &[&key.as_str(), &nonce, &expires, &now_s],
                )?)
            })?;
            Ok((row.is_some(), purged))
        })?;
        if let Some(n) = purged {
            self.nonce_purge.purged(n);
        }
        Ok(fresh)
    }
}
