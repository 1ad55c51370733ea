//! `EncodedDiagnosticMessage`: an authenticated, readable trace of a decision, for `admin ram decode-diagnostic`.
//!
//! Format: `PBD1.<payload>.<tag>`, both parts base64url without padding.
//! The payload is compact JSON (arrays, not objects) naming the deciding and
//! condition-failed statements, which conditions held, the action, the
//! resource and the request's values for the condition keys involved. The
//! tag is HMAC-SHA256 under the server's key over a domain label and the
//! text before the second dot, so a caller can read the message but cannot
//! forge or alter one.
//!
//! The message goes back to the caller, so it carries only what the caller
//! already knows or may learn: policy names and statement indexes, operator
//! and key names — never the policies' condition values (an allowed network,
//! say) and never anything secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::eval::{Decision, DecisionEffect, PolicyType, RamRequest, StatementRef};
use super::operator::Operator;
use super::policy::Effect;

const PREFIX: &str = "PBD1";
/// Keeps a tag from this format from ever validating another use of the key.
const DOMAIN: &[u8] = b"polarbackup/ram-diagnostic\0";
/// Bounds on what one message carries, so a policy set with hundreds of
/// matching statements (or a megabyte User-Agent) cannot bloat a 403 body.
const MAX_STATEMENTS: usize = 32;
const MAX_CONDITIONS: usize = 16;
const MAX_KEYS: usize = 16;
const MAX_VALUES: usize = 8;
const MAX_VALUE_CHARS: usize = 256;
/// Longest string `decode_diagnostic` looks at.
const MAX_ENCODED: usize = 64 * 1024;

/// What decided, as recovered from a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosticReport {
    pub effect: DecisionEffect,
    pub auth_action: String,
    pub auth_resource: String,
    /// Deciding statements first (`applied`), then those whose conditions failed.
    pub statements: Vec<DiagnosticStatement>,
    /// The request's values of the condition keys the statements use.
    pub auth_conditions: Vec<DiagnosticContext>,
    /// Something was cut to the size bounds.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosticStatement {
    pub policy_name: String,
    pub policy_type: PolicyType,
    pub statement_index: usize,
    pub effect: Effect,
    pub applied: bool,
    pub conditions: Vec<DiagnosticCondition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosticCondition {
    pub operator: Operator,
    pub key: String,
    pub matched: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosticContext {
    pub condition_key: String,
    pub condition_values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagError {
    #[error("not an encoded diagnostic message")]
    Malformed,
    #[error("unsupported diagnostic message version {0:?}")]
    UnsupportedVersion(String),
    /// Altered, forged, or made with another key.
    #[error("the diagnostic message is not authentic (altered, or made with another key)")]
    BadSignature,
    #[error("the diagnostic message is authentic but its payload is unreadable")]
    InvalidPayload,
}

/// Positional wire form: effect, action, resource, statements, context, truncated.
#[derive(Serialize, Deserialize)]
struct Wire(
    DecisionEffect,
    String,
    String,
    Vec<WireStatement>,
    Vec<(String, Vec<String>)>,
    bool,
);

/// Policy name, type, statement index, effect, applied, conditions (operator, key, matched).
#[derive(Serialize, Deserialize)]
struct WireStatement(
    String,
    PolicyType,
    usize,
    Effect,
    bool,
    Vec<(Operator, String, bool)>,
);

fn truncate(s: &str, truncated: &mut bool) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => {
            *truncated = true;
            s[..cut].to_owned()
        }
        None => s.to_owned(),
    }
}

fn cap<T>(mut v: Vec<T>, max: usize, truncated: &mut bool) -> Vec<T> {
    if v.len() > max {
        v.truncate(max);
        *truncated = true;
    }
    v
}

fn wire_statement(r: &StatementRef, applied: bool, truncated: &mut bool) -> WireStatement {
    let conditions = r
        .matched_conditions
        .iter()
        .map(|c| (c.operator, c.key.clone(), true))
        .chain(
            r.failed_conditions
                .iter()
                .map(|c| (c.operator, c.key.clone(), false)),
        )
        .collect();
    WireStatement(
        r.policy_name.clone(),
        r.policy_type,
        r.statement_index,
        r.effect,
        applied,
        cap(conditions, MAX_CONDITIONS, truncated),
    )
}

fn tag(key: &[u8], signed: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(DOMAIN);
    mac.update(signed.as_bytes());
    mac
}

/// Encodes `decision` on `request` as an `EncodedDiagnosticMessage`.
pub fn encode_diagnostic(decision: &Decision, request: &RamRequest<'_>, key: &[u8]) -> String {
    let mut truncated = false;
    let statements: Vec<WireStatement> = decision
        .deciding
        .iter()
        .map(|r| (r, true))
        .chain(decision.condition_failed.iter().map(|r| (r, false)))
        .map(|(r, applied)| wire_statement(r, applied, &mut truncated))
        .collect();
    let statements = cap(statements, MAX_STATEMENTS, &mut truncated);
    let mut keys: Vec<&str> = Vec::new();
    for (_, key, _) in statements.iter().flat_map(|s| &s.5) {
        if !keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            keys.push(key);
        }
    }
    let keys = cap(keys, MAX_KEYS, &mut truncated);
    let context = keys
        .into_iter()
        .map(|k| {
            let values = request.context.values(k);
            let values: Vec<String> = values.iter().map(|v| truncate(v, &mut truncated)).collect();
            (k.to_owned(), cap(values, MAX_VALUES, &mut truncated))
        })
        .collect();
    let wire = Wire(
        decision.effect,
        truncate(request.action, &mut truncated),
        truncate(request.resource, &mut truncated),
        statements,
        context,
        truncated,
    );
    let payload = serde_json::to_vec(&wire).expect("plain data serializes");
    let signed = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(payload));
    let tag = tag(key, &signed).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks the tag (in constant time) and recovers the report.
pub fn decode_diagnostic(s: &str, key: &[u8]) -> Result<DiagnosticReport, DiagError> {
    if s.len() > MAX_ENCODED {
        return Err(DiagError::Malformed);
    }
    let (version, _) = s.split_once('.').ok_or(DiagError::Malformed)?;
    if version != PREFIX {
        return Err(DiagError::UnsupportedVersion(
            version.chars().take(16).collect(),
        ));
    }
    let (signed, tag_b64) = s.rsplit_once('.').ok_or(DiagError::Malformed)?;
    let payload_b64 = signed
        .strip_prefix(PREFIX)
        .and_then(|p| p.strip_prefix('.'))
        .filter(|p| !p.contains('.'))
        .ok_or(DiagError::Malformed)?;
    let tag_bytes = URL_SAFE_NO_PAD
        .decode(tag_b64)
        .map_err(|_| DiagError::Malformed)?;
    // `verify_slice` compares in constant time (via `subtle`).
    tag(key, signed)
        .verify_slice(&tag_bytes)
        .map_err(|_| DiagError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| DiagError::InvalidPayload)?;
    let Wire(effect, action, resource, statements, context, truncated) =
        serde_json::from_slice(&payload).map_err(|_| DiagError::InvalidPayload)?;
    Ok(DiagnosticReport {
        effect,
        auth_action: action,
        auth_resource: resource,
        statements: statements
            .into_iter()
            .map(
                |WireStatement(name, ty, index, effect, applied, conds)| DiagnosticStatement {
                    policy_name: name,
                    policy_type: ty,
                    statement_index: index,
                    effect,
                    applied,
                    conditions: conds
                        .into_iter()
                        .map(|(operator, key, matched)| DiagnosticCondition {
                            operator,
                            key,
                            matched,
                        })
                        .collect(),
                },
            )
            .collect(),
        auth_conditions: context
            .into_iter()
            .map(|(k, v)| DiagnosticContext {
                condition_key: k,
                condition_values: v,
            })
            .collect(),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked_in_constant_time() {
        // Guards against an edit swapping `verify_slice` for `==` on tag bytes.
        let src = include_str!("diagnostic.rs");
        assert!(src.contains(concat!(".verify_", "slice(&tag_bytes)")));
        assert!(!src.contains(concat!("tag_bytes ", "==")));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let mut t = false;
        let long = "é".repeat(MAX_VALUE_CHARS + 5);
        assert_eq!(truncate(&long, &mut t).chars().count(), MAX_VALUE_CHARS);
        assert!(t);
    }
}
