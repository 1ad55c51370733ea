//! Property tests of the evaluator's monotonicity, of the wildcard matcher against a reference, and of parser robustness.

use std::sync::Arc;

use polarbackup_auth::ram::{
    decode_diagnostic, encode_diagnostic, evaluate, AttachedPolicy, Context, Decision,
    DecisionEffect, Limits, Policy, PolicyType, RamRequest,
};
use proptest::prelude::*;

const ACTIONS: &[&str] = &[
    "polardb:CreateBackup",
    "polardb:DescribeBackups",
    "polardb:DeleteBackup",
    "polardb:describebackuptasks",
    "ecs:DescribeInstances",
];
const ACTION_PATTERNS: &[&str] = &[
    "*",
    "polardb:*",
    "polardb:Describe*",
    "polardb:?reateBackup",
    "*:*Backup*",
    "ecs:*",
    "polardb:DeleteBackup",
    "POLARDB:createbackup",
];
const RESOURCES: &[&str] = &[
    "acs:polardb:cn-hangzhou:1:dbcluster/pc-abc",
    "acs:polardb:cn-hangzhou:1:dbcluster/pc-a.c",
    "acs:polardb:cn-beijing:2:DBCluster/pc-abc",
    "acs:polardb:cn-hangzhou:1:dbcluster/PC-ABC",
    "*",
];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "acs:polardb:*:*:*",
    "acs:polardb:*:*:dbcluster/pc-a*",
    "acs:polardb:cn-hangzhou:1:dbcluster/pc-abc",
    "acs:polardb:cn-*:*:dbcluster/pc-???",
    "acs:polardb:*:1:dbcluster/pc-a.c",
    "acs:ecs:*:*:*",
];
const CONDITIONS: &[&str] = &[
    r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"NotIpAddress":{"acs:SourceIp":["10.0.0.0/8","::1"]}}"#,
    r#"{"Bool":{"acs:SecureTransport":"true"}}"#,
    r#"{"StringLike":{"acs:UserAgent":"sdk*"}}"#,
    r#"{"StringNotEquals":{"acs:AccessId":"LTAI1"}}"#,
    r#"{"DateLessThan":{"acs:CurrentTime":"2024-06-01T00:00:00Z"}}"#,
    r#"{"NumericGreaterThan":{"polardb:N":"5"},"Bool":{"acs:SecureTransport":"false"}}"#,
];
const CONTEXT_ENTRIES: &[(&str, &str)] = &[
    ("acs:SourceIp", "10.1.1.1"),
    ("acs:SourceIp", "127.0.0.1"),
    ("acs:SecureTransport", "true"),
    ("acs:SecureTransport", "false"),
    ("acs:UserAgent", "sdk-python"),
    ("acs:UserAgent", "curl"),
    ("acs:AccessId", "LTAI1"),
    ("acs:CurrentTime", "2024-01-01T00:00:00Z"),
    ("acs:CurrentTime", "2025-01-01T00:00:00Z"),
    ("polardb:N", "7"),
];

#[derive(Debug, Clone)]
struct Stmt {
    deny: bool,
    not_action: bool,
    actions: Vec<usize>,
    not_resource: bool,
    resources: Vec<usize>,
    condition: Option<usize>,
}

impl Stmt {
    fn json(&self) -> String {
        let list = |idx: &[usize], from: &[&str]| {
            let items: Vec<String> = idx.iter().map(|&i| format!("{:?}", from[i])).collect();
            format!("[{}]", items.join(","))
        };
        let cond = self.condition.map_or(String::new(), |c| {
            format!(r#","Condition":{}"#, CONDITIONS[c])
        });
        format!(
            r#"{{"Effect":"{}","{}":{},"{}":{}{cond}}}"#,
            if self.deny { "Deny" } else { "Allow" },
            if self.not_action {
                "NotAction"
            } else {
                "Action"
            },
            list(&self.actions, ACTION_PATTERNS),
            if self.not_resource {
                "NotResource"
            } else {
                "Resource"
            },
            list(&self.resources, RESOURCE_PATTERNS),
        )
    }
}

fn stmt(deny: impl Strategy<Value = bool>) -> impl Strategy<Value = Stmt> {
    (
        deny,
        prop::bool::weighted(0.2),
        prop::collection::vec(0..ACTION_PATTERNS.len(), 1..3),
        prop::bool::weighted(0.2),
        prop::collection::vec(0..RESOURCE_PATTERNS.len(), 1..3),
        prop::option::weighted(0.4, 0..CONDITIONS.len()),
    )
        .prop_map(
            |(deny, not_action, actions, not_resource, resources, condition)| Stmt {
                deny,
                not_action,
                actions,
                not_resource,
                resources,
                condition,
            },
        )
}

type PolicySet = Vec<Vec<Stmt>>;

fn policy_set() -> impl Strategy<Value = PolicySet> {
    prop::collection::vec(prop::collection::vec(stmt(any::<bool>()), 1..4), 0..4)
}

#[derive(Debug, Clone)]
struct Req {
    action: String,
    resource: String,
    ctx: Vec<usize>,
}

fn request() -> impl Strategy<Value = Req> {
    (
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        prop::collection::vec(0..CONTEXT_ENTRIES.len(), 0..5),
    )
        .prop_map(|(a, r, ctx)| Req {
            action: ACTIONS[a].to_owned(),
            resource: RESOURCES[r].to_owned(),
            ctx,
        })
}

fn compile(set: &PolicySet) -> Vec<AttachedPolicy> {
    set.iter()
        .enumerate()
        .map(|(i, stmts)| {
            let body: Vec<String> = stmts.iter().map(Stmt::json).collect();
            let json = format!(r#"{{"Version":"1","Statement":[{}]}}"#, body.join(","));
            AttachedPolicy {
                name: format!("p{i}"),
                policy_type: PolicyType::Custom,
                // Any key: one condition uses a numeric key the server does not fill.
                policy: Arc::new(
                    Policy::parse_with(
                        &json,
                        &Limits {
                            supported_keys_only: false,
                            ..Limits::CUSTOM_POLICY
                        },
                    )
                    .unwrap_or_else(|e| panic!("{json}: {e}")),
                ),
            }
        })
        .collect()
}

fn decide(set: &PolicySet, req: &Req) -> Decision {
    let ctx: Context = req.ctx.iter().map(|&i| CONTEXT_ENTRIES[i]).collect();
    evaluate(
        &RamRequest {
            action: &req.action,
            resource: &req.resource,
            context: &ctx,
        },
        &compile(set),
    )
}

/// `set` with `extra` added either as a new policy or inside an existing one at `at`.
fn with_statement(set: &PolicySet, extra: Stmt, at: usize) -> PolicySet {
    let mut out = set.clone();
    if out.is_empty() || at.is_multiple_of(2) {
        out.insert(at % (out.len() + 1), vec![extra]);
    } else {
        let n = out.len();
        let target = &mut out[at % n];
        target.insert(at % (target.len() + 1), extra);
    }
    out
}

/// Reference wildcard matcher: plain recursion, obviously correct, exponential but fine for short inputs.
fn reference(p: &[char], s: &[char]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some('*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
        (Some(_), None) => false,
        (Some(&c), Some(&d)) => (c == '?' || c == d) && reference(&p[1..], &s[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_deny_never_grants(set in policy_set(), deny in stmt(Just(true)), at in 0usize..16, req in request()) {
        let before = decide(&set, &req).effect;
        let after = decide(&with_statement(&set, deny, at), &req).effect;
        if after == DecisionEffect::Allow {
            prop_assert_eq!(before, DecisionEffect::Allow);
        }
        if before == DecisionEffect::ExplicitDeny {
            prop_assert_eq!(after, DecisionEffect::ExplicitDeny);
        }
    }

    #[test]
    fn adding_an_allow_never_removes_access(set in policy_set(), allow in stmt(Just(false)), at in 0usize..16, req in request()) {
        let before = decide(&set, &req).effect;
        let after = decide(&with_statement(&set, allow, at), &req).effect;
        if before == DecisionEffect::Allow {
            prop_assert_eq!(after, DecisionEffect::Allow);
        }
        // An Allow cannot lift an explicit Deny either.
        if before == DecisionEffect::ExplicitDeny {
            prop_assert_eq!(after, DecisionEffect::ExplicitDeny);
        }
    }

    #[test]
    fn explicit_deny_for_the_request_never_allows(set in policy_set(), at in 0usize..16, upper in any::<bool>(), req in request()) {
        // An unconditional Deny naming exactly this action (in any case) and resource.
        let action = if upper { req.action.to_uppercase() } else { req.action.clone() };
        let json = format!(
            r#"{{"Version":"1","Statement":[{{"Effect":"Deny","Action":{:?},"Resource":{:?}}}]}}"#,
            action, req.resource
        );
        let mut policies = compile(&set);
        let deny = AttachedPolicy {
            name: "deny".into(),
            policy_type: PolicyType::Custom,
            policy: Arc::new(Policy::parse(&json).unwrap()),
        };
        policies.insert(at % (policies.len() + 1), deny);
        let ctx: Context = req.ctx.iter().map(|&i| CONTEXT_ENTRIES[i]).collect();
        let d = evaluate(&RamRequest { action: &req.action, resource: &req.resource, context: &ctx }, &policies);
        prop_assert_eq!(d.effect, DecisionEffect::ExplicitDeny);
        prop_assert!(d.deciding.iter().any(|s| s.policy_name == "deny"));
    }

    #[test]
    fn evaluation_ignores_policy_order(set in policy_set(), req in request()) {
        let mut reversed = set.clone();
        reversed.reverse();
        prop_assert_eq!(decide(&set, &req).effect, decide(&reversed, &req).effect);
    }

    #[test]
    fn wildcards_agree_with_the_reference(p in "[ab.+(\\[*?]{1,8}", s in "[ab.+(\\[]{0,10}") {
        // Through a Deny-free Allow policy, so this checks the real action path.
        let json = format!(r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"x:{p}","Resource":"*"}}]}}"#);
        let policy = Policy::parse(&json).unwrap();
        let got = policy.statements()[0].covers(&format!("x:{s}"), "*");
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        prop_assert_eq!(got, reference(&pc, &sc), "pattern {:?} subject {:?}", p, s);
    }

    #[test]
    fn parser_never_panics(text in ".{0,200}") {
        let _ = Policy::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_near_valid_documents(cut in 0usize..200, ch in any::<char>()) {
        let base = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["polardb:*"],"Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}]}"#;
        let mut s: Vec<char> = base.chars().collect();
        let i = cut % s.len();
        s[i] = ch;
        let _ = Policy::parse(&s.into_iter().collect::<String>());
    }

    #[test]
    fn diagnostics_round_trip_and_resist_tampering(set in policy_set(), req in request(), at in any::<prop::sample::Index>()) {
        let ctx: Context = req.ctx.iter().map(|&i| CONTEXT_ENTRIES[i]).collect();
        let r = RamRequest { action: &req.action, resource: &req.resource, context: &ctx };
        let d = evaluate(&r, &compile(&set));
        let msg = encode_diagnostic(&d, &r, b"k");
        let report = decode_diagnostic(&msg, b"k").unwrap();
        prop_assert_eq!(report.effect, d.effect);
        prop_assert_eq!(report.statements.len(), (d.deciding.len() + d.condition_failed.len()).min(32));
        let i = at.index(msg.len());
        let mut bytes = msg.into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        prop_assert!(decode_diagnostic(&String::from_utf8(bytes).unwrap(), b"k").is_err());
    }
}
