//! RAM users, custom policies and their attachments in SQLite. Each check and the write it
//! guards share one write transaction.

use super::rows::{policy_from, secs, user_from};
use super::{tenants, SqliteStore};
use crate::records::{Attachment, PolicyKind, StoredPolicy};
use crate::{ids, RamStore, Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::{AccountId, RamUser, RamUserId};
use rusqlite::{params, Connection, OptionalExtension};

fn create_user(c: &Connection, account: &AccountId, name: &str, now: Timestamp) -> Result<RamUser> {
    tenants::require_account(c, account)?;
    let taken = c
        .query_row(
            "SELECT 1 FROM ram_users WHERE account_id = ?1 AND name = ?2",
            params![account.as_str(), name],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if taken {
        return Err(StoreError::Conflict("user name"));
    }
    for _ in 0..8 {
        let id = ids::account_id();
        let n = c.execute(
            "INSERT OR IGNORE INTO ram_users (id, account_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, account.as_str(), name, secs(now)],
        )?;
        if n == 1 {
            return Ok(c.query_row("SELECT * FROM ram_users WHERE id = ?1", [&id], user_from)?);
        }
    }
    Err(StoreError::Conflict("user id"))
}

pub(super) fn user(c: &Connection, id: &RamUserId) -> Result<Option<RamUser>> {
    // Cached: every call of a RAM user loads it.
    Ok(c.prepare_cached("SELECT * FROM ram_users WHERE id = ?1")?
        .query_row([id.as_str()], user_from)
        .optional()?)
}

fn create_policy(c: &Connection, p: &StoredPolicy) -> Result<()> {
    let n = c.execute(
        "INSERT OR IGNORE INTO ram_policies (account_id, name, document, created_at)
         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)",
        params![p.account.as_str(), p.name, p.document, secs(p.created_at)],
    )?;
    if n == 0 {
        let exists = c
            .query_row(
                "SELECT 1 FROM accounts WHERE id = ?1",
                [p.account.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        return Err(if exists {
            StoreError::Conflict("policy name")
        } else {
            StoreError::NotFound { what: "account" }
        });
    }
    Ok(())
}

fn list_policies(c: &Connection, account: &AccountId) -> Result<Vec<StoredPolicy>> {
    let mut stmt = c.prepare("SELECT * FROM ram_policies WHERE account_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([account.as_str()], policy_from)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn attach(c: &Connection, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
    if kind == PolicyKind::Custom {
        let exists = c
            .query_row(
                "SELECT 1 FROM ram_policies WHERE account_id = ?1 AND name = ?2",
                params![user.account.as_str(), name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound { what: "policy" });
        }
    }
    let n = c.execute(
        "INSERT OR IGNORE INTO ram_attachments (user_id, policy_type, policy_name) VALUES (?1, ?2, ?3)",
        params![user.id.as_str(), kind.as_str(), name],
    )?;
    Ok(n == 1)
}

fn detach(c: &Connection, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
    let n = c.execute(
        "DELETE FROM ram_attachments WHERE user_id = ?1 AND policy_type = ?2 AND policy_name = ?3",
        params![user.id.as_str(), kind.as_str(), name],
    )?;
    Ok(n == 1)
}

pub(super) fn attachments(c: &Connection, user: &RamUser) -> Result<Vec<Attachment>> {
    // Cached: every call of a RAM user is authorized with them.
    let mut stmt = c.prepare_cached(
        "SELECT a.policy_type, a.policy_name, p.document FROM ram_attachments a
         LEFT JOIN ram_policies p
           ON a.policy_type = 'Custom' AND p.account_id = ?2 AND p.name = a.policy_name
         WHERE a.user_id = ?1 ORDER BY a.policy_type, a.policy_name",
    )?;
    let rows = stmt.query_map(params![user.id.as_str(), user.account.as_str()], |r| {
        let kind: String = r.get(0)?;
        Ok(Attachment {
            kind: if kind == "System" {
                PolicyKind::System
            } else {
                PolicyKind::Custom
            },
            name: r.get(1)?,
            document: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl RamStore for SqliteStore {
    fn create_user(&self, account: &AccountId, name: &str, now: Timestamp) -> Result<RamUser> {
        self.write(|tx| create_user(tx, account, name, now))
    }

    fn user(&self, id: &RamUserId) -> Result<Option<RamUser>> {
        self.read(|c| user(c, id))
    }

    fn create_policy(&self, policy: &StoredPolicy) -> Result<()> {
        self.write(|tx| create_policy(tx, policy))
    }

    fn list_policies(&self, account: &AccountId) -> Result<Vec<StoredPolicy>> {
        self.with(|c| list_policies(c, account))
    }

    fn attach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
        self.write(|tx| attach(tx, user, kind, name))
    }

    fn detach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
        self.with(|c| detach(c, user, kind, name))
    }

    fn attachments(&self, user: &RamUser) -> Result<Vec<Attachment>> {
        self.read(|c| attachments(c, user))
    }
}
