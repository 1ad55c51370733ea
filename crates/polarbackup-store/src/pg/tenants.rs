//! Accounts and access keys in PostgreSQL.

use super::{exists, opt, PgStore};
use crate::rows::{account_from, key_from, secs};
use crate::sealing::{key_place, Sealer};
use crate::{ids, rules, Result, StoreError, TenantStore};
use jiff::Timestamp;
use polarbackup_model::{AccessKey, AccessKeyId, Account, AccountId, KeyKind, RamUser, RamUserId};
use postgres::GenericClient;

/// `NotFound` unless the account exists; run inside the writing transaction.
pub fn require_account(c: &mut impl GenericClient, account: &AccountId) -> Result<()> {
    if exists(
        c,
        "SELECT 1 FROM accounts WHERE id = $1",
        &[&account.as_str()],
    )? {
        Ok(())
    } else {
        Err(StoreError::NotFound { what: "account" })
    }
}

fn insert_account(
    c: &mut impl GenericClient,
    name: Option<&str>,
    now: Timestamp,
) -> Result<Account> {
    // Random ids can collide; a few tries make that vanishingly unlikely to surface.
    for _ in 0..8 {
        let inserted = opt(
            c,
            "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING id, name, created_at",
            &[&ids::account_id(), &name, &secs(now)],
            account_from,
        )?;
        if let Some(a) = inserted {
            return Ok(a);
        }
    }
    Err(StoreError::Conflict("account id"))
}

fn insert_key(c: &mut impl GenericClient, sealer: &Sealer, key: &AccessKey) -> Result<()> {
    require_account(c, &key.account)?;
    let secret = sealer.seal(&key_place(key.id.as_str()), &key.secret)?;
    let inserted = c.execute(
        "INSERT INTO access_keys (id, account_id, secret, active, created_at, user_id, kind)
         SELECT $1::text, $2::text, $3::text, $4::bigint, $5::bigint, $6::text, $7::text
         WHERE $6::text IS NULL
            OR EXISTS (SELECT 1 FROM ram_users WHERE id = $6::text AND account_id = $2::text)
         ON CONFLICT DO NOTHING",
        &[
            &key.id.as_str(),
            &key.account.as_str(),
            &secret,
            &i64::from(key.active),
            &secs(key.created_at),
            &key.user.as_ref().map(RamUserId::as_str),
            &key.kind.as_str(),
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict("access key id"));
    }
    Ok(())
}

pub(super) fn get_key(
    c: &mut impl GenericClient,
    sealer: &Sealer,
    id: &str,
) -> Result<Option<AccessKey>> {
    let key = opt(
        c,
        "SELECT * FROM access_keys WHERE id = $1",
        &[&id],
        key_from,
    )?;
    key.map(|mut k| {
        k.secret = sealer.open(&key_place(k.id.as_str()), &k.secret)?;
        Ok(k)
    })
    .transpose()
}

impl TenantStore for PgStore {
    fn create_account(&self, name: Option<&str>, now: Timestamp) -> Result<Account> {
        let name = name.map(str::to_owned);
        self.write(move |tx| insert_account(tx, name.as_deref(), now))
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        let id = id.clone();
        self.read(move |c| {
            opt(
                c,
                "SELECT * FROM accounts WHERE id = $1",
                &[&id.as_str()],
                account_from,
            )
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
        let (key, sealer) = (key.clone(), self.sealer.clone());
        self.write(move |tx| insert_key(tx, &sealer, &key))
    }

    fn key(&self, id: &AccessKeyId) -> Result<Option<AccessKey>> {
        let (id, sealer) = (id.clone(), self.sealer.clone());
        self.read(move |c| get_key(c, &sealer, id.as_str()))
    }

    fn bootstrap_account_key(
        &self,
        name: &str,
        id: &AccessKeyId,
        secret: &str,
        now: Timestamp,
    ) -> Result<Option<Account>> {
        let (name, id, secret) = (name.to_owned(), id.clone(), secret.to_owned());
        let sealer = self.sealer.clone();
        self.write(move |tx| {
            if get_key(tx, &sealer, id.as_str())?.is_some() {
                return Ok(None);
            }
            let account = insert_account(tx, Some(&name), now)?;
            insert_key(
                tx,
                &sealer,
                &AccessKey {
                    id: id.clone(),
                    account: account.id.clone(),
                    user: None,
                    kind: KeyKind::Hmac,
                    secret: secret.clone(),
                    active: true,
                    created_at: now,
                },
            )?;
            Ok(Some(account))
        })
    }

    fn set_key_active(&self, id: &AccessKeyId, active: bool) -> Result<()> {
        let id = id.clone();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE access_keys SET active = $2 WHERE id = $1",
                &[&id.as_str(), &i64::from(active)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "access key" });
            }
            Ok(())
        })
    }
}
