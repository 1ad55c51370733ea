//! The evaluator (`RAM.md` A.3): explicit Deny beats Allow, and nothing applicable means Implicit Deny.
//!
//! This is the account-level identity-policy stage, the only one PolarDB
//! needs (no resource policies; no control or session policies here). A
//! statement applies when its action and resource scopes cover the request
//! and every condition holds; a statement whose conditions fail simply does
//! not apply — it never turns into a deny.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::operator::Operator;
use super::policy::{Effect, Policy};

/// What is being authorized.
#[derive(Debug, Clone, Copy)]
pub struct RamRequest<'a> {
    /// `<ram-code>:<Action>`, e.g. `polardb:DescribeBackupTasks`.
    pub action: &'a str,
    /// An ARN such as `acs:polardb:cn-hangzhou:1234:dbcluster/pc-xxx`, or `*`
    /// for APIs without resource-level authorization.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// Reported as `PolicyType` in RAM's policy APIs and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyType {
    System,
    Custom,
}

/// A policy attached to the principal (directly or through a group).
#[derive(Debug, Clone)]
pub struct AttachedPolicy {
    pub name: String,
    pub policy_type: PolicyType,
    pub policy: Arc<Policy>,
}

/// The outcome; the names are RAM's `NoPermissionType` values (plus Allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionEffect {
    Allow,
    ImplicitDeny,
    ExplicitDeny,
}

impl DecisionEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionEffect::Allow => "Allow",
            DecisionEffect::ImplicitDeny => "ImplicitDeny",
            DecisionEffect::ExplicitDeny => "ExplicitDeny",
        }
    }
}

/// One condition of a statement, as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConditionRef {
    pub operator: Operator,
    pub key: String,
    pub values: Vec<String>,
}

impl std::fmt::Display for ConditionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.operator, self.key, self.values)
    }
}

/// A statement whose action and resource scopes covered the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatementRef {
    pub policy_name: String,
    pub policy_type: PolicyType,
    /// Index into the policy's `Statement` array.
    pub statement_index: usize,
    pub effect: Effect,
    pub matched_conditions: Vec<ConditionRef>,
    /// Empty for statements that applied.
    pub failed_conditions: Vec<ConditionRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Decision {
    pub effect: DecisionEffect,
    /// The statements that decided: every applicable Deny for ExplicitDeny,
    /// every applicable Allow for Allow, none for ImplicitDeny.
    pub deciding: Vec<StatementRef>,
    /// Statements whose scope covered the request but whose conditions
    /// failed, so they did not apply — what explains most surprising denials.
    pub condition_failed: Vec<StatementRef>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == DecisionEffect::Allow
    }
}

/// Decides `request` against `policies`. Pure; the order of `policies`
/// affects only the order of the reported statements.
pub fn evaluate(request: &RamRequest<'_>, policies: &[AttachedPolicy]) -> Decision {
    let (mut allows, mut denies, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for attached in policies {
        for (index, stmt) in attached.policy.statements().iter().enumerate() {
            if !stmt.covers(request.action, request.resource) {
                continue;
            }
            let mut r = StatementRef {
                policy_name: attached.name.clone(),
                policy_type: attached.policy_type,
                statement_index: index,
                effect: stmt.effect(),
                matched_conditions: Vec::new(),
                failed_conditions: Vec::new(),
            };
            for (c, holds) in stmt.check_conditions(request.context) {
                let c = ConditionRef {
                    operator: c.operator(),
                    key: c.key().to_owned(),
                    values: c.values().to_vec(),
                };
                if holds {
                    r.matched_conditions.push(c);
                } else {
                    r.failed_conditions.push(c);
                }
            }
            match (r.failed_conditions.is_empty(), r.effect) {
                (false, _) => failed.push(r),
                (true, Effect::Allow) => allows.push(r),
                (true, Effect::Deny) => denies.push(r),
            }
        }
    }
    let (effect, deciding) = if !denies.is_empty() {
        (DecisionEffect::ExplicitDeny, denies)
    } else if !allows.is_empty() {
        (DecisionEffect::Allow, allows)
    } else {
        (DecisionEffect::ImplicitDeny, Vec::new())
    };
    Decision {
        effect,
        deciding,
        condition_failed: failed,
    }
}
