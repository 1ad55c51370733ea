//! RAM users, custom policies and their attachments in PostgreSQL. Each check and the write it
//! guards share one write transaction.

use super::{all, exists, opt, tenants, PgStore};
use crate::records::{Attachment, PolicyKind, StoredPolicy};
use crate::rows::{policy_from, secs, user_from};
use crate::{ids, RamStore, Result, StoreError};
use jiff::Timestamp;
use polarbackup_model::{AccountId, RamUser, RamUserId};
use postgres::GenericClient;

fn create_user(
    c: &mut impl GenericClient,
    account: &AccountId,
    name: &str,
    now: Timestamp,
) -> Result<RamUser> {
    tenants::require_account(c, account)?;
    if exists(
        c,
        "SELECT 1 FROM ram_users WHERE account_id = $1 AND name = $2",
        &[&account.as_str(), &name],
    )? {
        return Err(StoreError::Conflict("user name"));
    }
    for _ in 0..8 {
        let user = opt(
            c,
            "INSERT INTO ram_users (id, account_id, name, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING RETURNING *",
            &[&ids::account_id(), &account.as_str(), &name, &secs(now)],
            user_from,
        )?;
        if let Some(u) = user {
            return Ok(u);
        }
    }
    Err(StoreError::Conflict("user id"))
}

fn create_policy(c: &mut impl GenericClient, p: &StoredPolicy) -> Result<()> {
    tenants::require_account(c, &p.account)?;
    let n = c.execute(
        "INSERT INTO ram_policies (account_id, name, document, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[
            &p.account.as_str(),
            &p.name,
            &p.document,
            &secs(p.created_at),
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict("policy name"));
    }
    Ok(())
}

fn attach(
    c: &mut impl GenericClient,
    user: &RamUser,
    kind: PolicyKind,
    name: &str,
) -> Result<bool> {
    if kind == PolicyKind::Custom
        && !exists(
            c,
            "SELECT 1 FROM ram_policies WHERE account_id = $1 AND name = $2",
            &[&user.account.as_str(), &name],
        )?
    {
        return Err(StoreError::NotFound { what: "policy" });
    }
    let n = c.execute(
        "INSERT INTO ram_attachments (user_id, policy_type, policy_name) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[&user.id.as_str(), &kind.as_str(), &name],
    )?;
    Ok(n == 1)
}

/// A user's attachments with their documents (`$1` the user, `$2` its account).
pub(super) const ATTACHMENTS: &str =
    "SELECT a.policy_type, a.policy_name, p.document FROM ram_attachments a
     LEFT JOIN ram_policies p
       ON a.policy_type = 'Custom' AND p.account_id = $2 AND p.name = a.policy_name
     WHERE a.user_id = $1 ORDER BY a.policy_type, a.policy_name";

pub(super) fn attachment_from(r: &postgres::Row) -> Result<Attachment> {
    let kind: String = r.try_get(0)?;
    Ok(Attachment {
        kind: PolicyKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("policy type {kind:?}")))?,
        name: r.try_get(1)?,
        document: r.try_get(2)?,
    })
}

impl RamStore for PgStore {
    fn create_user(&self, account: &AccountId, name: &str, now: Timestamp) -> Result<RamUser> {
        let (account, name) = (account.clone(), name.to_owned());
        self.write(move |tx| create_user(tx, &account, &name, now))
    }

    fn user(&self, id: &RamUserId) -> Result<Option<RamUser>> {
        let id = id.clone();
        self.read(move |c| {
            opt(
                c,
                "SELECT * FROM ram_users WHERE id = $1",
                &[&id.as_str()],
                user_from,
            )
        })
    }

    fn create_policy(&self, policy: &StoredPolicy) -> Result<()> {
        let policy = policy.clone();
        self.write(move |tx| create_policy(tx, &policy))
    }

    fn list_policies(&self, account: &AccountId) -> Result<Vec<StoredPolicy>> {
        let account = account.clone();
        self.read(move |c| {
            all(
                c,
                "SELECT * FROM ram_policies WHERE account_id = $1 ORDER BY name",
                &[&account.as_str()],
                policy_from,
            )
        })
    }

    fn attach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
        let (user, name) = (user.clone(), name.to_owned());
        self.write(move |tx| attach(tx, &user, kind, &name))
    }

    fn detach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
        let (user, name) = (user.id.clone(), name.to_owned());
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM ram_attachments
                 WHERE user_id = $1 AND policy_type = $2 AND policy_name = $3",
                &[&user.as_str(), &kind.as_str(), &name],
            )?;
            Ok(n == 1)
        })
    }

    fn attachments(&self, user: &RamUser) -> Result<Vec<Attachment>> {
        let user = user.clone();
        self.read(move |c| {
            all(
                c,
                ATTACHMENTS,
                &[&user.id.as_str(), &user.account.as_str()],
                attachment_from,
            )
        })
    }
}
