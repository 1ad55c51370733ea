//! `EncodedDiagnosticMessage`: round trip, readability, and refusal of anything altered or made with another key.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use polarbackup_auth::ram::{
    decode_diagnostic, encode_diagnostic, evaluate, system_policy, AttachedPolicy, Context,
    DecisionEffect, DiagError, Effect, Operator, Policy, PolicyType, RamRequest, READ_ONLY_ACCESS,
};

const KEY: &[u8] = b"server diagnostic key, 32 bytes!";
const C1: &str = "acs:polardb:cn-hangzhou:1234567890123456:dbcluster/pc-abc";

fn custom(name: &str, json: &str) -> AttachedPolicy {
    AttachedPolicy {
        name: name.to_owned(),
        policy_type: PolicyType::Custom,
        policy: Arc::new(Policy::parse(json).unwrap()),
    }
}

/// A denial with a deciding Deny, plus an Allow whose condition failed.
fn sample() -> (String, Context) {
    let policies = vec![
        system_policy(READ_ONLY_ACCESS).unwrap(),
        custom(
            "office-only",
            r#"{"Version":"1","Statement":[
                {"Effect":"Allow","Action":"polardb:*","Resource":"*",
                 "Condition":{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"},"Bool":{"acs:SecureTransport":"true"}}},
                {"Effect":"Deny","Action":"polardb:Create*","Resource":"*",
                 "Condition":{"NotIpAddress":{"acs:SourceIp":"192.168.0.0/16"}}}]}"#,
        ),
    ];
    let ctx = Context::new()
        .with_source_ip("127.0.0.1".parse().unwrap())
        .with_secure_transport(true)
        .with_access_id("LTAIexample")
        .with_user_agent("AlibabaCloud (Linux) Python/3.12");
    let req = RamRequest {
        action: "polardb:CreateBackup",
        resource: C1,
        context: &ctx,
    };
    let decision = evaluate(&req, &policies);
    assert_eq!(decision.effect, DecisionEffect::ExplicitDeny);
    (encode_diagnostic(&decision, &req, KEY), ctx)
}

#[test]
fn round_trip_explains_the_decision() {
    let (msg, _) = sample();
    assert!(msg.starts_with("PBD1."));
    assert!(
        msg.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "{msg}"
    );
    let r = decode_diagnostic(&msg, KEY).unwrap();
    assert_eq!(r.effect, DecisionEffect::ExplicitDeny);
    assert_eq!(r.auth_action, "polardb:CreateBackup");
    assert_eq!(r.auth_resource, C1);
    assert!(!r.truncated);
    assert_eq!(r.statements.len(), 2);
    let deny = &r.statements[0];
    assert_eq!(
        (
            deny.policy_name.as_str(),
            deny.policy_type,
            deny.statement_index,
            deny.effect,
            deny.applied
        ),
        ("office-only", PolicyType::Custom, 1, Effect::Deny, true)
    );
    assert_eq!(deny.conditions.len(), 1);
    assert_eq!(deny.conditions[0].operator, Operator::NotIpAddress);
    assert!(deny.conditions[0].matched);
    let allow = &r.statements[1];
    assert_eq!(
        (allow.statement_index, allow.effect, allow.applied),
        (0, Effect::Allow, false)
    );
    let by_key: Vec<_> = allow
        .conditions
        .iter()
        .map(|c| (c.key.as_str(), c.matched))
        .collect();
    assert!(by_key.contains(&("acs:SourceIp", false)));
    assert!(by_key.contains(&("acs:SecureTransport", true)));
    // Context values of the keys involved, and only those.
    let keys: Vec<_> = r
        .auth_conditions
        .iter()
        .map(|c| c.condition_key.as_str())
        .collect();
    assert_eq!(keys, ["acs:SourceIp", "acs:SecureTransport"]);
    assert_eq!(r.auth_conditions[0].condition_values, ["127.0.0.1"]);
}

#[test]
fn payload_is_readable_but_carries_no_policy_values() {
    let (msg, _) = sample();
    let payload = msg.split('.').nth(1).unwrap();
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(json.contains("office-only"));
    assert!(json.contains("polardb:CreateBackup"));
    // The policy's allowed network is not disclosed to the caller.
    assert!(!json.contains("192.168"), "{json}");
    // Keys not referenced by any reported condition are not echoed.
    assert!(!json.contains("LTAIexample"));
    assert!(!json.contains("Python"));
}

#[test]
fn implicit_deny_without_statements_round_trips() {
    let ctx = Context::new();
    let req = RamRequest {
        action: "polardb:DeleteBackup",
        resource: C1,
        context: &ctx,
    };
    let d = evaluate(&req, &[system_policy(READ_ONLY_ACCESS).unwrap()]);
    let r = decode_diagnostic(&encode_diagnostic(&d, &req, KEY), KEY).unwrap();
    assert_eq!(r.effect, DecisionEffect::ImplicitDeny);
    assert!(r.statements.is_empty() && r.auth_conditions.is_empty());
}

#[test]
fn every_single_character_change_is_rejected() {
    let (msg, _) = sample();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    for i in 0..msg.len() {
        let original = msg.as_bytes()[i] as char;
        // Two substitutes per position: one neighbour in the alphabet and '.'/'A'.
        let pos = alphabet.find(original).unwrap();
        let subs = [
            alphabet.as_bytes()[(pos + 1) % alphabet.len()] as char,
            if original == 'A' { 'B' } else { 'A' },
        ];
        for sub in subs {
            let mut forged = msg.clone().into_bytes();
            forged[i] = sub as u8;
            let forged = String::from_utf8(forged).unwrap();
            assert!(
                decode_diagnostic(&forged, KEY).is_err(),
                "accepted change at {i}: {forged}"
            );
        }
    }
}

#[test]
fn flipped_payload_byte_fails_authentication() {
    let (msg, _) = sample();
    let mut parts: Vec<String> = msg.split('.').map(str::to_owned).collect();
    let mut payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    // Turn "ExplicitDeny" into something else while keeping valid base64 and JSON shape.
    let at = payload.iter().position(|&b| b == b'E').unwrap();
    payload[at] ^= 0x01;
    parts[1] = URL_SAFE_NO_PAD.encode(&payload);
    assert_eq!(
        decode_diagnostic(&parts.join("."), KEY),
        Err(DiagError::BadSignature)
    );
}

#[test]
fn forged_payload_with_recomputed_shape_is_rejected() {
    // A caller who writes their own payload cannot produce the tag.
    let payload = URL_SAFE_NO_PAD.encode(br#"["Allow","polardb:CreateBackup","*",[],[],false]"#);
    let tag = URL_SAFE_NO_PAD.encode([0u8; 32]);
    assert_eq!(
        decode_diagnostic(&format!("PBD1.{payload}.{tag}"), KEY),
        Err(DiagError::BadSignature)
    );
}

#[test]
fn wrong_key_is_rejected() {
    let (msg, _) = sample();
    assert_eq!(
        decode_diagnostic(&msg, b"another key"),
        Err(DiagError::BadSignature)
    );
    assert_eq!(decode_diagnostic(&msg, b""), Err(DiagError::BadSignature));
}

#[test]
fn malformed_and_foreign_versions() {
    assert_eq!(decode_diagnostic("", KEY), Err(DiagError::Malformed));
    assert_eq!(decode_diagnostic("PBD1", KEY), Err(DiagError::Malformed));
    assert_eq!(
        decode_diagnostic("PBD1.abc", KEY),
        Err(DiagError::Malformed)
    );
    assert_eq!(
        decode_diagnostic("PBD1.a.b.c", KEY),
        Err(DiagError::Malformed)
    );
    assert_eq!(
        decode_diagnostic("PBD1.abc.!!", KEY),
        Err(DiagError::Malformed)
    );
    assert!(matches!(
        decode_diagnostic("PBD9.abc.def", KEY),
        Err(DiagError::UnsupportedVersion(v)) if v == "PBD9"
    ));
    let huge = format!("PBD1.{}.x", "A".repeat(70_000));
    assert_eq!(decode_diagnostic(&huge, KEY), Err(DiagError::Malformed));
}

#[test]
fn oversized_inputs_are_truncated_and_flagged() {
    let ua = "x".repeat(10_000);
    let ctx = Context::new().with_user_agent(&ua);
    let stmts: Vec<String> = (0..40)
        .map(|_| {
            r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"acs:UserAgent":"y*"}}}"#
                .to_owned()
        })
        .collect();
    let p = custom(
        "many",
        &format!(r#"{{"Version":"1","Statement":[{}]}}"#, stmts.join(",")),
    );
    let req = RamRequest {
        action: "polardb:CreateBackup",
        resource: C1,
        context: &ctx,
    };
    let d = evaluate(&req, &[p]);
    assert_eq!(d.condition_failed.len(), 40);
    let msg = encode_diagnostic(&d, &req, KEY);
    assert!(msg.len() < 8 * 1024, "{} bytes", msg.len());
    let r = decode_diagnostic(&msg, KEY).unwrap();
    assert!(r.truncated);
    assert_eq!(r.statements.len(), 32);
    assert_eq!(r.auth_conditions[0].condition_values[0].len(), 256);
}
