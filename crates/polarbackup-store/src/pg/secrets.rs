//! The PostgreSQL store's sealed secrets: adopting a master key at open (its check value, and
//! the sealing of plaintext rows left by older versions) and rotating to a new one. Every
//! server sharing the store must hold the same key: another one is refused at open.

use super::PgStore;
use crate::sealing::{self, key_place, password_place, MasterKey, SealReport, Sealer};
use crate::{Result, StoreError};
use postgres::GenericClient;
use std::sync::Arc;

impl PgStore {
    /// This handle, sealing secrets with `key` from now on. In one write transaction: a key
    /// other than the store's (its check value) is refused with "master key does not match the
    /// metadata store"; on the first keyed open the check value is recorded; every plaintext
    /// secret (an older version's, or an unkeyed handle's) is sealed.
    pub fn with_master_key(mut self, key: Arc<MasterKey>) -> Result<Self> {
        let k = Arc::clone(&key);
        self.write(move |tx| {
            adopt(tx, &k)?;
            seal_all(tx, |place, stored| {
                sealing::seal_if_plain(&k, place, stored)
            })
        })?;
        self.sealer = Sealer::new(key);
        Ok(self)
    }

    /// What this handle seals with, for a transaction that copies rows in.
    pub(crate) fn sealer(&self) -> Sealer {
        self.sealer.clone()
    }

    /// The id of the key this handle seals with, if any.
    pub fn master_key_id(&self) -> Option<&str> {
        self.sealer.key().map(MasterKey::id)
    }

    /// Re-seals every secret with `new` and makes it the store's key, in one transaction. This
    /// handle, and every server still holding the old key, must then be opened with `new`.
    pub fn rotate_master_key(&self, new: Arc<MasterKey>) -> Result<SealReport> {
        let sealer = self.sealer.clone();
        if sealer.key().is_none() {
            return Err(StoreError::MasterKey(
                "rotating needs the store opened with its current master key".into(),
            ));
        }
        self.write(move |tx| {
            let old = sealer
                .key()
                .ok_or(StoreError::NotFound { what: "master key" })?;
            adopt(tx, old)?;
            let report = seal_all(tx, |place, stored| {
                sealing::reseal(old, &new, place, stored).map(Some)
            })?;
            tx.execute(
                "UPDATE master_key_check SET key_id = $1, check_value = $2 WHERE id = 1",
                &[&new.id(), &sealing::check_value(&new)?],
            )?;
            Ok(report)
        })
    }
}

/// Refuses `key` unless it sealed the store; records its check value in a store that has none.
fn adopt(c: &mut impl GenericClient, key: &MasterKey) -> Result<()> {
    let stored = c.query_opt(
        "SELECT key_id, check_value FROM master_key_check WHERE id = 1",
        &[],
    )?;
    match stored {
        Some(row) => sealing::verify_check(
            key,
            &row.try_get::<_, String>(0)?,
            &row.try_get::<_, String>(1)?,
        ),
        None => {
            c.execute(
                "INSERT INTO master_key_check (id, key_id, check_value) VALUES (1, $1, $2)",
                &[&key.id(), &sealing::check_value(key)?],
            )?;
            Ok(())
        }
    }
}

/// Rewrites every stored secret `f` returns a new form for.
fn seal_all(
    c: &mut impl GenericClient,
    f: impl Fn(&str, &str) -> Result<Option<String>>,
) -> Result<SealReport> {
    let mut report = SealReport::default();
    for row in c.query("SELECT id, secret FROM access_keys", &[])? {
        let (id, secret): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if let Some(new) = f(&key_place(&id), &secret)? {
            c.execute(
                "UPDATE access_keys SET secret = $2 WHERE id = $1",
                &[&id, &new],
            )?;
            report.access_keys += 1;
        }
    }
    for row in c.query(
        "SELECT id, password FROM clusters WHERE password IS NOT NULL",
        &[],
    )? {
        let (id, password): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if let Some(new) = f(&password_place(&id), &password)? {
            c.execute(
                "UPDATE clusters SET password = $2 WHERE id = $1",
                &[&id, &new],
            )?;
            report.cluster_passwords += 1;
        }
    }
    Ok(report)
}

/// Seals, inside `tx`, the plaintext secrets of rows copied in (a migration from an SQLite
/// store an older version wrote); a no-op without a key.
pub(crate) fn seal_copied(sealer: &Sealer, tx: &mut postgres::Transaction<'_>) -> Result<()> {
    if let Some(key) = sealer.key() {
        seal_all(tx, |place, stored| {
            sealing::seal_if_plain(key, place, stored)
        })?;
    }
    Ok(())
}
