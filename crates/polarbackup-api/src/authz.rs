//! Authorization: every call of a RAM user is evaluated against its policies before any work.
//! The account's own keys bypass evaluation, as in the cloud.

use crate::authn::Caller;
use crate::handlers::store_failure;
use crate::AppState;
use polarbackup_auth::ram::{
    encode_diagnostic, evaluate, system_policy, AttachedPolicy, Context, DecisionEffect, Policy,
    PolicyType, RamRequest,
};
use polarbackup_model::DbClusterId;
use polarbackup_store::PolicyKind;
use polarbackup_wire::{AccessDenied, Action, ApiError, Params};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::{error, info, warn};

/// How RAM decisions are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamMode {
    /// Denials are refused with 403 Forbidden.RAM.
    Strict,
    /// Decisions are evaluated and logged, but every call is allowed (for migrating policies).
    Soft,
    /// No evaluation at all.
    Off,
}

/// The resource a call is authorized on: `acs:polardb:<region>:<account>:dbcluster/<id>` with
/// the request's `DBClusterId` whether or not that cluster exists (`*` for DescribeDBClusters,
/// a listing, and when it is absent). The region is the cluster's
/// own when the caller's account has it (so a region-scoped policy cannot be sidestepped), and
/// the server's region otherwise; `RegionId` is ignored, as PolarDB's central endpoint does.
/// With every cluster in the server's region, nothing in a denial depends on existence.
pub fn resource_arn(
    state: &AppState,
    caller: &Caller,
    action: Action,
    params: &Params,
) -> Result<String, ApiError> {
    let id = action
        .resource_param()
        .and_then(|name| params.get(name))
        .filter(|s| !s.is_empty())
        .unwrap_or("*");
    let read;
    let region = match DbClusterId::parse(id) {
        Ok(cid) => {
            let cluster = match caller.cluster_read_with_key(&cid) {
                Some(c) => c,
                None => {
                    read = state.store.cluster(&cid).map_err(|e| {
                        store_failure(&e, "cluster lookup for authorization failed")
                    })?;
                    read.as_ref()
                }
            };
            match cluster {
                Some(c) if c.spec.account == caller.account => c.spec.region.as_str(),
                _ => state.config.region.as_str(),
            }
        }
        Err(_) => state.config.region.as_str(),
    };
    Ok(format!(
        "acs:polardb:{region}:{}:dbcluster/{id}",
        caller.account
    ))
}

/// Parsed custom policies by their document's text, so a call does not parse the documents
/// it just read. Keyed by the whole text, read in the same snapshot as the key: a changed
/// document is another entry, so nothing stale is ever used. Bounded: emptied when full.
struct ParsedPolicies(Mutex<HashMap<String, Arc<Policy>>>);

impl ParsedPolicies {
    const CAPACITY: usize = 1024;

    fn get() -> &'static ParsedPolicies {
        static CACHE: OnceLock<ParsedPolicies> = OnceLock::new();
        CACHE.get_or_init(|| ParsedPolicies(Mutex::new(HashMap::new())))
    }

    fn parse(&self, document: &str) -> Result<Arc<Policy>, polarbackup_auth::ram::PolicyError> {
        // Nothing in the map is left half-updated by a panic: reuse a poisoned lock.
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = lock().get(document) {
            return Ok(p.clone());
        }
        let parsed = Arc::new(Policy::parse(document)?);
        let mut map = lock();
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(document.to_owned(), parsed.clone());
        Ok(parsed)
    }
}

/// The policies governing a user: system ones by name, custom ones parsed from the documents
/// read with the key.
fn user_policies(caller: &Caller) -> Vec<AttachedPolicy> {
    if caller.user.is_none() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(caller.attachments.len());
    for a in caller.attachments.iter() {
        match (a.kind, &a.document) {
            (PolicyKind::System, _) => match system_policy(&a.name) {
                Some(p) => out.push(p),
                None => warn!(policy = %a.name, "attached system policy is unknown; ignored"),
            },
            (PolicyKind::Custom, Some(doc)) => match ParsedPolicies::get().parse(doc) {
                Ok(policy) => out.push(AttachedPolicy {
                    name: a.name.clone(),
                    policy_type: PolicyType::Custom,
                    policy,
                }),
                // Validated when created; if it no longer parses, it grants nothing.
                Err(e) => {
                    error!(policy = %a.name, error = %e, "stored policy does not parse; ignored")
                }
            },
            (PolicyKind::Custom, None) => {}
        }
    }
    out
}

/// The condition keys of a call: what the server knows of every request, as `admin ram
/// simulate` fills it (plain HTTP only).
fn request_context(state: &AppState, caller: &Caller) -> Context {
    let mut context = Context::new()
        .with_request_defaults(state.request_clock.now(), false)
        .with_access_id(caller.access_key_id.as_str());
    if let Some(ip) = caller.source_ip {
        context = context.with_source_ip(ip);
    }
    if let Some(ua) = &caller.user_agent {
        context = context.with_user_agent(ua);
    }
    context
}

pub fn authorize(
    state: &AppState,
    caller: &Caller,
    action: Action,
    params: &Params,
    request_id: &str,
) -> Result<(), ApiError> {
    let Some(user) = &caller.user else {
        return Ok(());
    };
    let mode = state.config.ram.mode;
    if mode == RamMode::Off {
        return Ok(());
    }
    let ram_action = action.ram_action();
    let resource = resource_arn(state, caller, action, params)?;
    let policies = user_policies(caller);
    // Only conditions read the context (the decision and its diagnostic alike), and building
    // it costs more than most decisions: policies without any are evaluated without it.
    let context = if policies.iter().any(|p| p.policy.has_conditions()) {
        request_context(state, caller)
    } else {
        Context::new()
    };
    let request = RamRequest {
        action: &ram_action,
        resource: &resource,
        context: &context,
    };
    let decision = evaluate(&request, &policies);
    if decision.effect == DecisionEffect::Allow {
        return Ok(());
    }
    let kind = match decision.effect {
        DecisionEffect::ExplicitDeny => "ExplicitDeny",
        _ => "ImplicitDeny",
    };
    if mode == RamMode::Soft {
        info!(request_id, user = %user.id, action = %ram_action, level = action.access_level(), %resource, decision = kind, "RAM would deny (soft mode: allowed)");
        return Ok(());
    }
    info!(request_id, user = %user.id, action = %ram_action, level = action.access_level(), %resource, decision = kind, "RAM denied");
    Err(ApiError::ForbiddenRam(Box::new(AccessDenied {
        auth_action: ram_action.clone(),
        principal_owner_id: caller.account.to_string(),
        principal_display_name: user.id.to_string(),
        no_permission_type: kind.into(),
        encoded_diagnostic_message: encode_diagnostic(
            &decision,
            &request,
            state.config.ram.diagnostic_key.as_bytes(),
        ),
    })))
}
