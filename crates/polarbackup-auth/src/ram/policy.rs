//! The compiled form of a policy document (`RAM.md` A.1): statements with their effect, scope and conditions.

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::context::Context;
use super::error::PolicyError;
use super::matcher::{ActionPattern, ResourcePattern};
use super::parse;

/// A statement's `Effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// Validation limits. RAM documents a 6,144-byte limit for custom policy
/// documents and none for the statement count; the latter is ours, and both
/// are configurable (`RAM.md` A.1 asks for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the document as submitted, whitespace included.
    pub max_document_bytes: usize,
    pub max_statements: usize,
    /// `NotResource` is in only one localized grammar page (A.1); a server
    /// that wants strict parity with the English docs can refuse it.
    pub allow_not_resource: bool,
    /// Refuse condition keys the server does not fill ([`super::SUPPORTED_KEYS`]): a condition
    /// on one is never true, so a Deny that depends on it would never fire.
    pub supported_keys_only: bool,
}

impl Limits {
    pub const CUSTOM_POLICY: Limits = Limits {
        max_document_bytes: 6144,
        max_statements: 100,
        allow_not_resource: true,
        supported_keys_only: true,
    };

    /// Alibaba's own documents, kept verbatim: they name keys of other services (such as
    /// `ram:ServiceName` for `ram:` actions this server never evaluates).
    pub const SYSTEM_POLICY: Limits = Limits {
        supported_keys_only: false,
        ..Limits::CUSTOM_POLICY
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::CUSTOM_POLICY
    }
}

/// `Action`/`NotAction` or `Resource`/`NotResource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<P> {
    /// `Action`/`Resource`: whatever one of the patterns matches.
    Listed(Vec<P>),
    /// `NotAction`/`NotResource`: whatever none of the patterns matches.
    AllExcept(Vec<P>),
}

impl<P> Scope<P> {
    fn covers(&self, matches: impl Fn(&P) -> bool) -> bool {
        match self {
            Scope::Listed(ps) => ps.iter().any(matches),
            Scope::AllExcept(ps) => !ps.iter().any(matches),
        }
    }

    pub fn patterns(&self) -> &[P] {
        match self {
            Scope::Listed(ps) | Scope::AllExcept(ps) => ps,
        }
    }
}

/// One validated statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub(crate) effect: Effect,
    pub(crate) action: Scope<ActionPattern>,
    pub(crate) resource: Scope<ResourcePattern>,
    /// AND'ed; empty when the statement has no `Condition`.
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    pub fn effect(&self) -> Effect {
        self.effect
    }

    pub fn action(&self) -> &Scope<ActionPattern> {
        &self.action
    }

    pub fn resource(&self) -> &Scope<ResourcePattern> {
        &self.resource
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether `action` on `resource` is in scope, conditions aside.
    pub fn covers(&self, action: &str, resource: &str) -> bool {
        self.action.covers(|p| p.matches(action)) && self.resource.covers(|p| p.matches(resource))
    }

    /// Each condition with whether it holds for `ctx`, in document order.
    pub fn check_conditions<'a>(
        &'a self,
        ctx: &'a Context,
    ) -> impl Iterator<Item = (&'a Condition, bool)> + 'a {
        self.conditions.iter().map(move |c| (c, c.holds(ctx)))
    }
}

/// A validated policy document (`Version` is always `"1"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates a custom policy under [`Limits::CUSTOM_POLICY`].
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse_with(json, &Limits::CUSTOM_POLICY)
    }

    /// Parses and validates under explicit limits. Checks run in a fixed
    /// order (size, JSON, top level, then each statement in document order)
    /// so the error reported for a document is always the same one.
    pub fn parse_with(json: &str, limits: &Limits) -> Result<Policy, PolicyError> {
        parse::policy(json, limits)
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Whether any statement has a `Condition`: only those read a request's context.
    pub fn has_conditions(&self) -> bool {
        self.statements.iter().any(|s| !s.conditions.is_empty())
    }
}
