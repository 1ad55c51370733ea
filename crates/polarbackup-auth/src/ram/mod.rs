//! The RAM policy language and its evaluator, as Alibaba Cloud documents them (`RAM.md` A.1–A.7).
//!
//! Pure like the rest of the crate: policies arrive as text, the request
//! context (source IP, current time, ...) arrives as a [`Context`], and the
//! diagnostic key arrives as bytes. Nothing here reads a clock, a file or a
//! random source.
//!
//! Flow: [`Policy::parse`] validates and compiles a document once (at
//! `CreatePolicy` time); [`evaluate`] decides a request against the policies
//! attached to a principal; [`encode_diagnostic`] turns the decision into the
//! authenticated `EncodedDiagnosticMessage` that [`decode_diagnostic`] reads
//! back. Root accounts bypass all of this; that is the caller's job.

mod condition;
mod context;
mod diagnostic;
mod error;
mod eval;
mod ip;
mod json;
mod matcher;
mod operator;
mod parse;
mod policy;
mod system;
mod value;

pub use condition::Condition;
pub use context::{
    is_supported_key, Context, KEY_ACCESS_ID, KEY_CURRENT_TIME, KEY_SECURE_TRANSPORT,
    KEY_SOURCE_IP, KEY_USER_AGENT, SUPPORTED_KEYS,
};
pub use diagnostic::{
    decode_diagnostic, encode_diagnostic, DiagError, DiagnosticCondition, DiagnosticContext,
    DiagnosticReport, DiagnosticStatement,
};
pub use error::PolicyError;
pub use eval::{
    evaluate, AttachedPolicy, ConditionRef, Decision, DecisionEffect, PolicyType, RamRequest,
    StatementRef,
};
pub use matcher::{is_action_name, ActionPattern, ResourcePattern};
pub use operator::Operator;
pub use policy::{Effect, Limits, Policy, Scope, Statement};
pub use system::{
    system_policies, system_policy, system_policy_document, FULL_ACCESS, READ_ONLY_ACCESS,
};
