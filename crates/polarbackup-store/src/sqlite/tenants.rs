//! Accounts and access keys in SQLite.

use super::rows::{account_from, key_from, secs};
use super::SqliteStore;
use crate::sealing::{key_place, Sealer};
use crate::{ids, rules, Result, StoreError, TenantStore};
use jiff::Timestamp;
use polarbackup_model::{AccessKey, AccessKeyId, Account, AccountId, KeyKind, RamUser, RamUserId};
use rusqlite::{params, Connection, OptionalExtension};

/// `NotFound` unless the account exists; run inside the writing transaction.
pub fn require_account(c: &Connection, account: &AccountId) -> Result<()> {
    let exists = c
        .query_row(
            "SELECT 1 FROM accounts WHERE id = ?1",
            [account.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound { what: "account" })
    }
}

fn insert_account(c: &Connection, name: Option<&str>, now: Timestamp) -> Result<Account> {
    // Random ids can collide; a few tries make that vanishingly unlikely to surface.
    for _ in 0..8 {
        let id = ids::account_id();
        let inserted = c.execute(
            "INSERT OR IGNORE INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)",
            params![id, name, secs(now)],
        )?;
        if inserted == 1 {
            return Ok(c.query_row("SELECT * FROM accounts WHERE id = ?1", [&id], account_from)?);
        }
    }
    Err(StoreError::Conflict("account id"))
}

fn insert_key(c: &Connection, sealer: &Sealer, key: &AccessKey) -> Result<()> {
    require_account(c, &key.account)?;
    let secret = sealer.seal(&key_place(key.id.as_str()), &key.secret)?;
    let inserted = c.execute(
        "INSERT OR IGNORE INTO access_keys (id, account_id, secret, active, created_at,
             user_id, kind)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
         WHERE ?6 IS NULL OR EXISTS (SELECT 1 FROM ram_users WHERE id = ?6 AND account_id = ?2)",
        params![
            key.id.as_str(),
            key.account.as_str(),
            secret,
            key.active,
            secs(key.created_at),
            key.user.as_ref().map(RamUserId::as_str),
            key.kind.as_str()
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict("access key id"));
    }
    Ok(())
}

pub(super) fn get_key(
    c: &Connection,
    sealer: &Sealer,
    id: &AccessKeyId,
) -> Result<Option<AccessKey>> {
    // Cached: every signed request looks its key up.
    let key = c
        .prepare_cached("SELECT * FROM access_keys WHERE id = ?1")?
        .query_row([id.as_str()], key_from)
        .optional()?;
    key.map(|mut k| {
        k.secret = sealer.open(&key_place(k.id.as_str()), &k.secret)?;
        Ok(k)
    })
    .transpose()
}

impl TenantStore for SqliteStore {
    fn create_account(&self, name: Option<&str>, now: Timestamp) -> Result<Account> {
        self.write(|tx| insert_account(tx, name, now))
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT * FROM accounts WHERE id = ?1",
                [id.as_str()],
                account_from,
            )
            .optional()?)
        })
    }

    fn create_key(&self, account: &AccountId, now: Timestamp) -> Result<AccessKey> {
        rules::new_key(self, account, None, None, now)
    }

    fn create_user_key(&self, user: &RamUser, now: Timestamp) -> Result<AccessKey> {
        rules::new_key(self, &user.account, Some(&user.id), None, now)
    }

    fn create_rsa_key(
        &self,
        account: &AccountId,
        user: Option<&RamUser>,
        public_key_pem: &str,
        now: Timestamp,
    ) -> Result<AccessKey> {
        rules::new_key(
            self,
            account,
            user.map(|u| &u.id),
            Some(public_key_pem),
            now,
        )
    }

    fn import_key(&self, key: &AccessKey) -> Result<()> {
        self.write(|tx| insert_key(tx, &self.sealer, key))
    }

    fn key(&self, id: &AccessKeyId) -> Result<Option<AccessKey>> {
        self.read(|c| get_key(c, &self.sealer, id))
    }

    fn bootstrap_account_key(
        &self,
        name: &str,
        id: &AccessKeyId,
        secret: &str,
        now: Timestamp,
    ) -> Result<Option<Account>> {
        self.write(|tx| {
            if get_key(tx, &self.sealer, id)?.is_some() {
                return Ok(None);
            }
            let account = insert_account(tx, Some(name), now)?;
            insert_key(
                tx,
                &self.sealer,
                &AccessKey {
                    id: id.clone(),
                    account: account.id.clone(),
                    user: None,
                    kind: KeyKind::Hmac,
                    secret: secret.to_owned(),
                    active: true,
                    created_at: now,
                },
            )?;
            Ok(Some(account))
        })
    }

    fn set_key_active(&self, id: &AccessKeyId, active: bool) -> Result<()> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE access_keys SET active = ?2 WHERE id = ?1",
                params![id.as_str(), active],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "access key" });
            }
            Ok(())
        })
    }
}
