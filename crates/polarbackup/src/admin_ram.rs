//! `polarbackup admin user|policy|ram`: RAM users, policies, simulation and diagnostics.

use crate::admin::open;
use crate::cli::{PolicyCommand, RamCommand, UserCommand};
use crate::config;
use anyhow::{bail, Context as _, Result};
use polarbackup_auth::ram::{
    decode_diagnostic, evaluate, is_action_name, system_policies, system_policy, AttachedPolicy,
    Context, Policy, PolicyType, RamRequest,
};
use polarbackup_model::{AccountId, Clock, RamUser, RamUserId, SystemClock};
use polarbackup_store::prelude::*;
use polarbackup_store::{PolicyKind, StoredPolicy};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn find_user(store: &dyn Store, id: &str) -> Result<RamUser> {
    let parsed = RamUserId::parse(id).with_context(|| format!("{id:?} is not a RAM user id"))?;
    store
        .user(&parsed)?
        .with_context(|| format!("RAM user {id} does not exist"))
}

fn account(store: &dyn Store, id: &str) -> Result<AccountId> {
    let id = AccountId::parse(id).context("--account")?;
    if store.account(&id)?.is_none() {
        bail!("account {id} does not exist");
    }
    Ok(id)
}

/// RAM user names: 1–64 letters, digits, '.', '_' or '-', as RAM allows.
fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn user(cmd: UserCommand) -> Result<Value> {
    match cmd {
        UserCommand::Create {
            account: a,
            name,
            data,
        } => {
            if !valid_user_name(&name) {
                bail!("--name must be 1 to 64 letters, digits, '.', '_' or '-'");
            }
            let store = open(&data)?;
            let a = account(store.as_ref(), &a)?;
            let user = store.create_user(&a, &name, SystemClock.now())?;
            Ok(json!({ "UserId": user.id.as_str(), "UserName": user.name }))
        }
    }
}

/// System policies by their names; anything else is the account's custom policy.
fn kind_of(name: &str) -> PolicyKind {
    if system_policy(name).is_some() {
        PolicyKind::System
    } else {
        PolicyKind::Custom
    }
}

pub fn policy(cmd: PolicyCommand) -> Result<Value> {
    match cmd {
        PolicyCommand::Create {
            account: a,
            name,
            document_file,
            data,
        } => {
            if !valid_user_name(&name) || system_policy(&name).is_some() {
                bail!("--name must be 1 to 64 letters, digits, '.', '_' or '-', and not a system policy's name");
            }
            let document = std::fs::read_to_string(&document_file)
                .with_context(|| format!("reading {}", document_file.display()))?;
            Policy::parse(&document)
                .map_err(|e| anyhow::anyhow!("invalid policy document: {e}"))?;
            let store = open(&data)?;
            let a = account(store.as_ref(), &a)?;
            store.create_policy(&StoredPolicy {
                account: a,
                name: name.clone(),
                document,
                created_at: SystemClock.now(),
            })?;
            Ok(json!({ "PolicyName": name, "PolicyType": "Custom" }))
        }
        PolicyCommand::Attach { user, policy, data } => {
            let store = open(&data)?;
            let user = find_user(store.as_ref(), &user)?;
            let kind = kind_of(&policy);
            let attached = store
                .attach_policy(&user, kind, &policy)
                .with_context(|| format!("policy {policy}"))?;
            Ok(
                json!({ "UserId": user.id.as_str(), "PolicyName": policy, "PolicyType": kind.as_str(), "Changed": attached }),
            )
        }
        PolicyCommand::Detach { user, policy, data } => {
            let store = open(&data)?;
            let user = find_user(store.as_ref(), &user)?;
            let kind = kind_of(&policy);
            let detached = store.detach_policy(&user, kind, &policy)?;
            if !detached {
                bail!("policy {policy} is not attached to user {}", user.id);
            }
            Ok(
                json!({ "UserId": user.id.as_str(), "PolicyName": policy, "PolicyType": kind.as_str() }),
            )
        }
        PolicyCommand::List { account: a, data } => {
            let store = open(&data)?;
            let a = account(store.as_ref(), &a)?;
            let mut policies: Vec<Value> = system_policies()
                .iter()
                .map(|p| json!({ "PolicyName": p.name, "PolicyType": "System" }))
                .collect();
            for p in store.list_policies(&a)? {
                policies.push(json!({
                    "PolicyName": p.name,
                    "PolicyType": "Custom",
                    "CreateDate": p.created_at.to_string(),
                    "PolicyDocument": p.document,
                }));
            }
            Ok(json!({ "Policies": { "Policy": policies } }))
        }
    }
}

pub fn ram(cmd: RamCommand) -> Result<Value> {
    match cmd {
        RamCommand::Simulate {
            user,
            action,
            resource,
            context,
            data,
        } => {
            // A bare name would match no statement and quietly read as ImplicitDeny.
            if !is_action_name(&action) {
                bail!("--action {action:?} is not an action: write <ram-code>:<action-name> without wildcards, e.g. polardb:DescribeBackups");
            }
            let store = open(&data)?;
            let user = find_user(store.as_ref(), &user)?;
            let mut ctx = Context::new();
            for kv in &context {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--context takes KEY=VALUE, got {kv:?}"))?;
                ctx.insert(k, v);
            }
            // What the server puts in every request's context (it serves plain HTTP), unless
            // given: without them a grant on the time or the transport would read as a denial.
            let ctx = ctx.with_request_defaults(SystemClock.now(), false);
            let mut policies = Vec::new();
            for a in store.attachments(&user)? {
                match (a.kind, a.document) {
                    (PolicyKind::System, _) => policies.extend(system_policy(&a.name)),
                    (PolicyKind::Custom, Some(doc)) => policies.push(AttachedPolicy {
                        policy: Arc::new(Policy::parse(&doc).map_err(|e| {
                            anyhow::anyhow!("stored policy {} does not parse: {e}", a.name)
                        })?),
                        name: a.name,
                        policy_type: PolicyType::Custom,
                    }),
                    (PolicyKind::Custom, None) => {}
                }
            }
            let request = RamRequest {
                action: &action,
                resource: &resource,
                context: &ctx,
            };
            let decision = evaluate(&request, &policies);
            Ok(json!({
                "UserId": user.id.as_str(),
                "Action": action,
                "Resource": resource,
                "Context": ctx.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "Decision": serde_json::to_value(&decision)?,
            }))
        }
        RamCommand::DecodeDiagnostic { message, data } => {
            let key = config::diagnostic_key(&data.settings()?.data_dir)?;
            let report = decode_diagnostic(message.trim(), &key)
                .map_err(|e| anyhow::anyhow!("cannot decode the diagnostic message: {e}"))?;
            Ok(serde_json::to_value(&report)?)
        }
    }
}
