//! The SQLite store's sealed secrets: adopting a master key at open (its check value, and the
//! sealing of plaintext rows left by older versions) and rotating to a new one.

use super::SqliteStore;
use crate::sealing::{self, key_place, password_place, MasterKey, SealReport, Sealer};
use crate::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;

impl SqliteStore {
    /// This handle, sealing secrets with `key` from now on. In one write transaction: a key
    /// other than the store's (its check value) is refused with "master key does not match the
    /// metadata store"; on the first keyed open the check value is recorded; every plaintext
    /// secret (an older version's, or an unkeyed handle's) is sealed.
    pub fn with_master_key(mut self, key: Arc<MasterKey>) -> Result<Self> {
        self.write(|tx| {
            adopt(tx, &key)?;
            seal_all(tx, |place, stored| {
                sealing::seal_if_plain(&key, place, stored)
            })
        })?;
        self.sealer = Sealer::new(key);
        Ok(self)
    }

    /// The id of the key this handle seals with, if any.
    pub fn master_key_id(&self) -> Option<&str> {
        self.sealer.key().map(MasterKey::id)
    }

    /// Re-seals every secret with `new` and makes it the store's key, in one transaction. This
    /// handle, and every process still holding the old key, must then be opened with `new`.
    pub fn rotate_master_key(&self, new: Arc<MasterKey>) -> Result<SealReport> {
        let old = self.sealer.key().ok_or_else(no_key)?;
        self.write(|tx| {
            adopt(tx, old)?;
            let report = seal_all(tx, |place, stored| {
                sealing::reseal(old, &new, place, stored).map(Some)
            })?;
            tx.execute(
                "UPDATE master_key_check SET key_id = ?1, check_value = ?2 WHERE id = 1",
                params![new.id(), sealing::check_value(&new)?],
            )?;
            Ok(report)
        })
    }
}

fn no_key() -> StoreError {
    StoreError::MasterKey("rotating needs the store opened with its current master key".into())
}

/// Refuses `key` unless it sealed the store; records its check value in a store that has none.
fn adopt(c: &Connection, key: &MasterKey) -> Result<()> {
    let stored: Option<(String, String)> = c
        .query_row(
            "SELECT key_id, check_value FROM master_key_check WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match stored {
        Some((id, check)) => sealing::verify_check(key, &id, &check),
        None => {
            c.execute(
                "INSERT INTO master_key_check (id, key_id, check_value) VALUES (1, ?1, ?2)",
                params![key.id(), sealing::check_value(key)?],
            )?;
            Ok(())
        }
    }
}

/// Rewrites every stored secret `f` returns a new form for.
fn seal_all(
    c: &Connection,
    f: impl Fn(&str, &str) -> Result<Option<String>>,
) -> Result<SealReport> {
    let mut report = SealReport::default();
    let keys: Vec<(String, String)> = c
        .prepare("SELECT id, secret FROM access_keys")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, secret) in keys {
        if let Some(new) = f(&key_place(&id), &secret)? {
            c.execute(
                "UPDATE access_keys SET secret = ?2 WHERE id = ?1",
                params![id, new],
            )?;
            report.access_keys += 1;
        }
    }
    let passwords: Vec<(String, String)> = c
        .prepare("SELECT id, password FROM clusters WHERE password IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, password) in passwords {
        if let Some(new) = f(&password_place(&id), &password)? {
            c.execute(
                "UPDATE clusters SET password = ?2 WHERE id = ?1",
                params![id, new],
            )?;
            report.cluster_passwords += 1;
        }
    }
    Ok(report)
}
