//! Table-driven evaluator matrix: each case is policy documents, action, resource, context and the expected decision.
//!
//! Policies are built by small helpers so each row stays one line, but every
//! row is still evaluated from JSON text through `Policy::parse`, exactly as
//! a stored custom policy would be.

use std::sync::Arc;

use polarbackup_auth::ram::{
    evaluate, system_policy, AttachedPolicy, Context, Decision, DecisionEffect, Effect, Limits,
    Operator, Policy, PolicyType, RamRequest, FULL_ACCESS, READ_ONLY_ACCESS,
};

use DecisionEffect::{Allow as A, ExplicitDeny as X, ImplicitDeny as I};

const ACCT: &str = "1234567890123456";
/// The canonical PolarDB cluster ARN (A.2 / API.md §6).
const C1: &str = "acs:polardb:cn-hangzhou:1234567890123456:dbcluster/pc-abc";
const C2: &str = "acs:polardb:cn-hangzhou:1234567890123456:dbcluster/pc-def";
const SYS_FULL: &str = "system:AliyunPolardbFullAccess";
const SYS_RO: &str = "system:AliyunPolardbReadOnlyAccess";

#[derive(Clone)]
struct Case {
    name: String,
    policies: Vec<String>,
    action: String,
    resource: String,
    ctx: Vec<(String, String)>,
    expect: DecisionEffect,
}

fn case(
    name: &str,
    policies: &[String],
    action: &str,
    resource: &str,
    ctx: &[(&str, &str)],
    expect: DecisionEffect,
) -> Case {
    Case {
        name: name.to_owned(),
        policies: policies.to_vec(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        ctx: ctx
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        expect,
    }
}

/// A JSON string literal.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// One statement; `action`/`resource`/`cond` are JSON fragments.
fn st(effect: &str, action: &str, resource: &str, cond: Option<&str>) -> String {
    let cond = cond.map_or(String::new(), |c| format!(r#","Condition":{c}"#));
    format!(r#"{{"Effect":"{effect}","Action":{action},"Resource":{resource}{cond}}}"#)
}

fn doc(statements: &[String]) -> String {
    format!(
        r#"{{"Version":"1","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn allow(action: &str, resource: &str) -> String {
    doc(&[st("Allow", &q(action), &q(resource), None)])
}

fn deny(action: &str, resource: &str) -> String {
    doc(&[st("Deny", &q(action), &q(resource), None)])
}

/// Allow `polardb:*` on `*` when `op` holds for `key` against `values` (a JSON fragment).
fn allow_if(op: &str, key: &str, values: &str) -> String {
    let cond = format!(r#"{{"{op}":{{{}:{values}}}}}"#, q(key));
    doc(&[st("Allow", r#""polardb:*""#, r#""*""#, Some(&cond))])
}

/// Allow everything in PolarDB, but Deny it all when `op` holds.
fn deny_if(op: &str, key: &str, values: &str) -> Vec<String> {
    let cond = format!(r#"{{"{op}":{{{}:{values}}}}}"#, q(key));
    vec![
        allow("polardb:*", "*"),
        doc(&[st("Deny", r#""polardb:*""#, r#""*""#, Some(&cond))]),
    ]
}

fn p(s: String) -> Vec<String> {
    vec![s]
}

fn arn(relative: &str) -> String {
    format!("acs:polardb:cn-hangzhou:{ACCT}:{relative}")
}

fn attach(i: usize, text: &str) -> AttachedPolicy {
    if let Some(name) = text.strip_prefix("system:") {
        return system_policy(name).unwrap_or_else(|| panic!("no system policy {name}"));
    }
    // Any key: the evaluator is tested on keys (numeric ones) the server does not fill yet.
    let any_key = Limits {
        supported_keys_only: false,
        ..Limits::CUSTOM_POLICY
    };
    let policy = Policy::parse_with(text, &any_key).unwrap_or_else(|e| panic!("{text}: {e}"));
    AttachedPolicy {
        name: format!("custom-{i}"),
        policy_type: PolicyType::Custom,
        policy: Arc::new(policy),
    }
}

fn decide(c: &Case) -> Decision {
    let policies: Vec<_> = c
        .policies
        .iter()
        .enumerate()
        .map(|(i, t)| attach(i, t))
        .collect();
    let ctx: Context = c.ctx.iter().cloned().collect();
    evaluate(
        &RamRequest {
            action: &c.action,
            resource: &c.resource,
            context: &ctx,
        },
        &policies,
    )
}

/// Evaluates every case, checks the decision and its shape, and reports all failures at once.
fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let d = decide(c);
        let shape_ok = match d.effect {
            A => !d.deciding.is_empty() && d.deciding.iter().all(|s| s.effect == Effect::Allow),
            X => !d.deciding.is_empty() && d.deciding.iter().all(|s| s.effect == Effect::Deny),
            I => d.deciding.is_empty(),
        };
        let failed_ok = d
            .condition_failed
            .iter()
            .all(|s| !s.failed_conditions.is_empty());
        if d.effect != c.expect || !shape_ok || !failed_ok {
            failures.push(format!(
                "{}: expected {:?}, got {:?} (deciding {:?})",
                c.name, c.expect, d.effect, d.deciding
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[rustfmt::skip]
fn actions() -> Vec<Case> {
    let tasks = "polardb:DescribeBackupTasks";
    vec![
        case("no policies", &[], tasks, C1, &[], I),
        case("exact action", &p(allow(tasks, "*")), tasks, C1, &[], A),
        case("other action", &p(allow(tasks, "*")), "polardb:CreateBackup", C1, &[], I),
        case("policy lower-case action", &p(allow("polardb:describebackuptasks", "*")), tasks, C1, &[], A),
        case("request upper-case action", &p(allow(tasks, "*")), "POLARDB:DESCRIBEBACKUPTASKS", C1, &[], A),
        case("mixed-case service prefix", &p(allow("PolarDB:DescribeBackupTasks", "*")), tasks, C1, &[], A),
        case("action star", &p(allow("*", "*")), "ecs:RunInstances", C1, &[], A),
        case("service star", &p(allow("polardb:*", "*")), "polardb:DeleteDBCluster", C1, &[], A),
        case("service star other service", &p(allow("polardb:*", "*")), "ecs:DescribeInstances", C1, &[], I),
        case("trailing star matches", &p(allow("polardb:Describe*", "*")), "polardb:DescribeBackups", C1, &[], A),
        case("trailing star matches empty", &p(allow("polardb:Describe*", "*")), "polardb:Describe", C1, &[], A),
        case("trailing star mismatch", &p(allow("polardb:Describe*", "*")), "polardb:CreateBackup", C1, &[], I),
        case("trailing star is case-insensitive", &p(allow("polardb:describe*", "*")), "polardb:DescribeBackups", C1, &[], A),
        case("leading star", &p(allow("*:DescribeBackups", "*")), "polardb:DescribeBackups", C1, &[], A),
        case("leading star other service", &p(allow("*:DescribeBackups", "*")), "ecs:DescribeBackups", C1, &[], A),
        case("leading star anchored at end", &p(allow("*:DescribeBackups", "*")), "polardb:DescribeBackupsX", C1, &[], I),
        case("middle star", &p(allow("polardb:Describe*Policy", "*")), "polardb:DescribeLogBackupPolicy", C1, &[], A),
        case("middle star mismatch", &p(allow("polardb:Describe*Policy", "*")), "polardb:DescribeBackups", C1, &[], I),
        case("star before suffix", &p(allow("polardb:*Backup", "*")), "polardb:DeleteBackup", C1, &[], A),
        case("star before suffix mismatch", &p(allow("polardb:*Backup", "*")), "polardb:DescribeBackups", C1, &[], I),
        case("question mark one char", &p(allow("polardb:DescribeBackup?", "*")), "polardb:DescribeBackups", C1, &[], A),
        case("question mark not zero chars", &p(allow("polardb:DescribeBackup?", "*")), "polardb:DescribeBackup", C1, &[], I),
        case("question mark not two chars", &p(allow("polardb:DescribeBackup?", "*")), "polardb:DescribeBackupTasks", C1, &[], I),
        case("question marks at start of name", &p(allow("polardb:???eteBackup", "*")), "polardb:DeleteBackup", C1, &[], A),
        case("no implicit prefix match", &p(allow("polardb:Describe", "*")), "polardb:DescribeBackups", C1, &[], I),
        case("dot is literal in action", &p(allow("polardb:Describe.*", "*")), "polardb:DescribeBackups", C1, &[], I),
        case("dot literal still matches itself", &p(allow("polardb:Describe.*", "*")), "polardb:Describe.X", C1, &[], A),
        case("plus is literal in action", &p(allow("polardb:Create+Backup", "*")), "polardb:CreateeBackup", C1, &[], I),
        case("plus matches itself", &p(allow("polardb:Create+Backup", "*")), "polardb:Create+Backup", C1, &[], A),
        case("action array first", &p(doc(&[st("Allow", r#"["polardb:CreateBackup","polardb:DeleteBackup"]"#, r#""*""#, None)])), "polardb:CreateBackup", C1, &[], A),
        case("action array second", &p(doc(&[st("Allow", r#"["polardb:CreateBackup","polardb:DeleteBackup"]"#, r#""*""#, None)])), "polardb:DeleteBackup", C1, &[], A),
        case("action array miss", &p(doc(&[st("Allow", r#"["polardb:CreateBackup","polardb:DeleteBackup"]"#, r#""*""#, None)])), "polardb:DescribeBackups", C1, &[], I),
        case("question marks in service, star in name", &p(allow("polar??:Create*", "*")), "polardb:CreateBackup", C1, &[], A),
    ]
}

#[rustfmt::skip]
fn resources() -> Vec<Case> {
    let t = "polardb:DescribeBackupTasks";
    let r = |res: &str| p(allow(t, res));
    vec![
        case("exact ARN", &r(C1), t, C1, &[], A),
        case("other cluster", &r(C1), t, C2, &[], I),
        case("id is case-sensitive", &r(C1), t, &arn("dbcluster/PC-ABC"), &[], I),
        case("policy id upper-case", &r(&arn("dbcluster/PC-ABC")), t, C1, &[], I),
        case("type token DBCluster in policy", &r(&arn("DBCluster/pc-abc")), t, C1, &[], A),
        case("type token DBCluster in request", &r(C1), t, &arn("DBCluster/pc-abc"), &[], A),
        case("type token wildcard is case-insensitive", &r(&arn("DB*/pc-abc")), t, C1, &[], A),
        case("service token upper-case", &r("acs:POLARDB:cn-hangzhou:1234567890123456:dbcluster/pc-abc"), t, C1, &[], A),
        case("acs token upper-case", &r("ACS:polardb:cn-hangzhou:1234567890123456:dbcluster/pc-abc"), t, C1, &[], A),
        case("region is case-sensitive", &r("acs:polardb:CN-HANGZHOU:1234567890123456:dbcluster/pc-abc"), t, C1, &[], I),
        case("other account", &r("acs:polardb:cn-hangzhou:9999999999999999:dbcluster/pc-abc"), t, C1, &[], I),
        case("other region", &r("acs:polardb:cn-beijing:1234567890123456:dbcluster/pc-abc"), t, C1, &[], I),
        case("other service", &r("acs:rds:cn-hangzhou:1234567890123456:dbcluster/pc-abc"), t, C1, &[], I),
        case("other resource type", &r(&arn("backup/pc-abc")), t, C1, &[], I),
        case("region and account stars", &r("acs:polardb:*:*:dbcluster/pc-abc"), t, C1, &[], A),
        case("region prefix star", &r("acs:polardb:cn-*:*:dbcluster/pc-abc"), t, C1, &[], A),
        case("region prefix star mismatch", &r("acs:polardb:us-*:*:dbcluster/pc-abc"), t, C1, &[], I),
        case("region question mark", &r("acs:polardb:cn-hangzho?:*:dbcluster/pc-abc"), t, C1, &[], A),
        case("account question marks", &r("acs:polardb:*:123456789012345?:dbcluster/pc-abc"), t, C1, &[], A),
        case("service-wide ARN", &r("acs:polardb:*:*:*"), t, C1, &[], A),
        case("service-wide ARN other service", &r("acs:ecs:*:*:*"), t, C1, &[], I),
        case("star resource", &r("*"), t, C1, &[], A),
        case("id trailing star", &r(&arn("dbcluster/pc-*")), t, C1, &[], A),
        case("id trailing star mismatch", &r(&arn("dbcluster/pc-*")), t, &arn("dbcluster/pcx"), &[], I),
        case("id leading star", &r(&arn("dbcluster/*abc")), t, C1, &[], A),
        case("id middle star", &r(&arn("dbcluster/pc-*c")), t, C1, &[], A),
        case("id middle star mismatch", &r(&arn("dbcluster/pc-*c")), t, C2, &[], I),
        case("id question mark", &r(&arn("dbcluster/pc-?bc")), t, C1, &[], A),
        case("id question mark exact count", &r(&arn("dbcluster/pc-?c")), t, C1, &[], I),
        case("type and id star", &r(&arn("*")), t, C1, &[], A),
        case("type star keeps id", &r(&arn("*/pc-abc")), t, C1, &[], A),
        case("star does not cross segments", &r("acs:polardb:cn-hangzhou:*:dbcluster/pc-abc"), t, "acs:polardb:cn-beijing:1234567890123456:dbcluster/pc-abc", &[], I),
        case("dot in id is literal (match)", &r(&arn("dbcluster/pc.abc")), t, &arn("dbcluster/pc.abc"), &[], A),
        case("dot in id is literal (no regex)", &r(&arn("dbcluster/pc.abc")), t, &arn("dbcluster/pcXabc"), &[], I),
        case("dot-star in id is literal", &r(&arn("dbcluster/pc.*")), t, C1, &[], I),
        case("plus in id is literal (match)", &r(&arn("dbcluster/pc+1")), t, &arn("dbcluster/pc+1"), &[], A),
        case("plus in id is literal (no regex)", &r(&arn("dbcluster/pc+1")), t, &arn("dbcluster/pcc1"), &[], I),
        case("paren in id is literal (match)", &r(&arn("dbcluster/pc(1)")), t, &arn("dbcluster/pc(1)"), &[], A),
        case("paren in id is literal (no regex)", &r(&arn("dbcluster/pc(1)")), t, &arn("dbcluster/pc1"), &[], I),
        case("bracket in id is literal (match)", &r(&arn("dbcluster/pc[ab]")), t, &arn("dbcluster/pc[ab]"), &[], A),
        case("bracket in id is literal (no regex)", &r(&arn("dbcluster/pc[ab]")), t, &arn("dbcluster/pca"), &[], I),
        case("pipe in id is literal", &r(&arn("dbcluster/pc-abc|pc-def")), t, C2, &[], I),
        case("backslash-d in id is literal", &r(&arn(r"dbcluster/pc\d")), t, &arn("dbcluster/pc1"), &[], I),
        case("caret and dollar are literal", &r(&arn("dbcluster/^pc-abc$")), t, C1, &[], I),
        case("resource array second", &p(doc(&[st("Allow", &q(t), &format!("[{},{}]", q(C1), q(C2)), None)])), t, C2, &[], A),
        case("resource array miss", &p(doc(&[st("Allow", &q(t), &format!("[{},{}]", q(C1), q(C2)), None)])), t, &arn("dbcluster/pc-xyz"), &[], I),
        case("non-ARN request resource vs star", &r("*"), t, "*", &[], A),
        case("non-ARN request resource vs ARN pattern", &r("acs:polardb:*:*:*"), t, "*", &[], I),
    ]
}

#[rustfmt::skip]
fn precedence() -> Vec<Case> {
    let all = allow("polardb:*", "*");
    let both = |d: String| vec![all.clone(), d];
    vec![
        case("deny beats allow", &both(deny("polardb:DeleteBackup", "*")), "polardb:DeleteBackup", C1, &[], X),
        case("deny leaves other actions", &both(deny("polardb:DeleteBackup", "*")), "polardb:CreateBackup", C1, &[], A),
        case("deny wildcard action", &both(deny("polardb:Delete*", "*")), "polardb:DeleteDBCluster", C1, &[], X),
        case("deny wildcard action miss", &both(deny("polardb:Delete*", "*")), "polardb:DescribeBackups", C1, &[], A),
        case("deny specific cluster", &both(deny("polardb:*", C1)), "polardb:CreateBackup", C1, &[], X),
        case("deny specific cluster leaves others", &both(deny("polardb:*", C1)), "polardb:CreateBackup", C2, &[], A),
        case("deny case-insensitive action", &both(deny("POLARDB:deletebackup", "*")), "polardb:DeleteBackup", C1, &[], X),
        case("deny type-token case", &both(deny("polardb:*", &arn("DBCluster/pc-abc"))), "polardb:CreateBackup", C1, &[], X),
        case("deny id case differs", &both(deny("polardb:*", &arn("dbcluster/PC-ABC"))), "polardb:CreateBackup", C1, &[], A),
        case("deny alone", &p(deny("polardb:*", "*")), "polardb:CreateBackup", C1, &[], X),
        case("deny alone miss", &p(deny("polardb:Delete*", "*")), "polardb:CreateBackup", C1, &[], I),
        case("deny before allow in one policy", &p(doc(&[st("Deny", r#""polardb:CreateBackup""#, r#""*""#, None), st("Allow", r#""*""#, r#""*""#, None)])), "polardb:CreateBackup", C1, &[], X),
        case("deny after allow in one policy", &p(doc(&[st("Allow", r#""*""#, r#""*""#, None), st("Deny", r#""polardb:CreateBackup""#, r#""*""#, None)])), "polardb:CreateBackup", C1, &[], X),
        case("deny beats system full access", &[SYS_FULL.to_owned(), deny("polardb:CreateBackup", C1)], "polardb:CreateBackup", C1, &[], X),
        case("two allows", &[all.clone(), allow("polardb:CreateBackup", C1)], "polardb:CreateBackup", C1, &[], A),
        case("deny star everything", &both(deny("*", "*")), "polardb:DescribeBackups", C1, &[], X),
    ]
}

#[rustfmt::skip]
fn negations() -> Vec<Case> {
    let not_action = |effect: &str, a: &str| {
        st(effect, "", r#""*""#, None).replace(r#""Action":"#, &format!(r#""NotAction":{a}"#))
    };
    let not_resource = |effect: &str, r: &str| {
        st(effect, r#""polardb:*""#, "", None)
            .replace(r#""Resource":"#, &format!(r#""NotResource":{r}"#))
    };
    let allow_not_delete = p(doc(&[not_action("Allow", r#""polardb:Delete*""#)]));
    let all = st("Allow", r#""*""#, r#""*""#, None);
    vec![
        case("NotAction allows the rest", &allow_not_delete, "polardb:CreateBackup", C1, &[], A),
        case("NotAction excludes listed", &allow_not_delete, "polardb:DeleteBackup", C1, &[], I),
        case("NotAction is case-insensitive", &p(doc(&[not_action("Allow", r#""polardb:deletebackup""#)])), "polardb:DeleteBackup", C1, &[], I),
        case("NotAction covers other services", &allow_not_delete, "ecs:DescribeInstances", C1, &[], A),
        case("NotAction array", &p(doc(&[not_action("Allow", r#"["polardb:Delete*","polardb:Create*"]"#)])), "polardb:CreateBackup", C1, &[], I),
        case("Deny NotAction denies the rest", &p(doc(&[all.clone(), not_action("Deny", r#""polardb:Describe*""#)])), "polardb:CreateBackup", C1, &[], X),
        case("Deny NotAction spares listed", &p(doc(&[all.clone(), not_action("Deny", r#""polardb:Describe*""#)])), "polardb:DescribeBackups", C1, &[], A),
        case("NotAction star excludes everything", &p(doc(&[not_action("Allow", r#""*""#)])), "polardb:DescribeBackups", C1, &[], I),
        case("NotResource allows other clusters", &p(doc(&[not_resource("Allow", &q(C1))])), "polardb:CreateBackup", C2, &[], A),
        case("NotResource excludes listed", &p(doc(&[not_resource("Allow", &q(C1))])), "polardb:CreateBackup", C1, &[], I),
        case("NotResource type-token case", &p(doc(&[not_resource("Allow", &q(&arn("DBCluster/pc-abc")))])), "polardb:CreateBackup", C1, &[], I),
        case("NotResource id case", &p(doc(&[not_resource("Allow", &q(&arn("dbcluster/PC-ABC")))])), "polardb:CreateBackup", C1, &[], A),
        case("Deny NotResource outside prefix", &p(doc(&[all.clone(), not_resource("Deny", &q(&arn("dbcluster/pc-ok*")))])), "polardb:CreateBackup", C1, &[], X),
        case("Deny NotResource inside prefix", &p(doc(&[all.clone(), not_resource("Deny", &q(&arn("dbcluster/pc-ok*")))])), "polardb:CreateBackup", &arn("dbcluster/pc-ok1"), &[], A),
        case("NotResource vs non-ARN request", &p(doc(&[not_resource("Allow", r#""acs:polardb:*:*:*""#)])), "polardb:CreateDBCluster", "*", &[], A),
        case("NotAction and NotResource together", &p(doc(&[not_resource("Allow", &q(C1)).replace(r#""Action":"polardb:*""#, r#""NotAction":"polardb:Delete*""#)])), "polardb:CreateBackup", C2, &[], A),
        case("NotAction and NotResource, excluded action", &p(doc(&[not_resource("Allow", &q(C1)).replace(r#""Action":"polardb:*""#, r#""NotAction":"polardb:Delete*""#)])), "polardb:DeleteBackup", C2, &[], I),
    ]
}

/// (operator, key, policy values as JSON, a context value for which the
/// condition holds, one for which it fails). Each row yields three cases:
/// holds → Allow, fails → ImplicitDeny, key missing → Allow only for
/// negated operators.
#[rustfmt::skip]
const OPERATOR_ROWS: &[(&str, &str, &str, &str, &str)] = &[
    ("StringEquals", "acs:UserAgent", r#""aliyun-sdk""#, "aliyun-sdk", "Aliyun-SDK"),
    ("StringNotEquals", "acs:UserAgent", r#""curl""#, "aliyun-sdk", "curl"),
    ("StringEqualsIgnoreCase", "acs:UserAgent", r#""ALIYUN-SDK""#, "aliyun-sdk", "aliyun-sdk2"),
    ("StringNotEqualsIgnoreCase", "acs:UserAgent", r#""CURL""#, "wget", "curl"),
    ("StringLike", "acs:UserAgent", r#""aliyun-*-python/?.?""#, "aliyun-sdk-python/3.1", "aliyun-sdk-python/3.10"),
    ("StringNotLike", "acs:UserAgent", r#""curl/*""#, "wget/1", "curl/8.0"),
    ("NumericEquals", "polardb:RetentionDays", r#""7""#, "7.0", "8"),
    ("NumericNotEquals", "polardb:RetentionDays", r#""7""#, "8", "7"),
    ("NumericLessThan", "polardb:RetentionDays", r#""10""#, "9.99", "10"),
    ("NumericLessThanEquals", "polardb:RetentionDays", r#""10""#, "10", "10.01"),
    ("NumericGreaterThan", "polardb:RetentionDays", r#""-5""#, "-4", "-5"),
    ("NumericGreaterThanEquals", "polardb:RetentionDays", r#""3""#, "3", "2"),
    ("DateEquals", "acs:CurrentTime", r#""2024-01-01T00:00:00Z""#, "2024-01-01T08:00:00+08:00", "2024-01-01T00:00:01Z"),
    ("DateNotEquals", "acs:CurrentTime", r#""2024-01-01T00:00:00Z""#, "2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"),
    ("DateLessThan", "acs:CurrentTime", r#""2024-06-01T00:00:00Z""#, "2024-05-31T23:59:59Z", "2024-06-01T00:00:00Z"),
    ("DateLessThanEquals", "acs:CurrentTime", r#""2024-06-01T00:00:00Z""#, "2024-06-01T00:00:00Z", "2024-06-01T00:00:01Z"),
    ("DateGreaterThan", "acs:CurrentTime", r#""2024-06-01T08:00:00+08:00""#, "2024-06-01T00:00:01Z", "2024-06-01T00:00:00Z"),
    ("DateGreaterThanEquals", "acs:CurrentTime", r#""2024-06-01""#, "2024-06-01T00:00:00Z", "2024-05-31T23:59:59Z"),
    ("Bool", "acs:SecureTransport", r#""true""#, "true", "false"),
    ("IpAddress", "acs:SourceIp", r#""192.168.0.0/16""#, "192.168.3.4", "127.0.0.1"),
    ("NotIpAddress", "acs:SourceIp", r#""192.168.0.0/16""#, "127.0.0.1", "192.168.3.4"),
    // Beyond one row per operator: value lists, IPv6, mapped IPv4, literal metacharacters, key case.
    ("IpAddress", "acs:SourceIp", r#"["10.0.0.1","2001:db8::/32"]"#, "2001:db8::5", "10.0.0.2"),
    ("IpAddress", "acs:SourceIp", r#""10.0.0.1""#, "::ffff:10.0.0.1", "10.0.0.11"),
    ("IpAddress", "acs:SourceIp", r#""::1""#, "::1", "127.0.0.1"),
    ("IpAddress", "acs:SourceIp", r#""0.0.0.0/0""#, "203.0.113.9", "::1"),
    ("NotIpAddress", "acs:SourceIp", r#"["10.0.0.0/8","172.16.0.0/12"]"#, "8.8.8.8", "172.20.1.1"),
    ("NotIpAddress", "acs:SourceIp", r#""fd00::/8""#, "2001:db8::1", "fd12::1"),
    ("StringEquals", "acs:AccessId", r#"["LTAI1","LTAI2"]"#, "LTAI2", "LTAI3"),
    ("StringNotEquals", "acs:AccessId", r#"["LTAI1","LTAI2"]"#, "LTAI3", "LTAI2"),
    ("StringLike", "acs:UserAgent", r#""sdk.v1(beta)+[x]""#, "sdk.v1(beta)+[x]", "sdkXv1(beta)+[x]"),
    ("StringLike", "acs:UserAgent", r#""*python*""#, "alibabacloud-python-sdk", "java"),
    ("StringNotLike", "acs:UserAgent", r#""a.c""#, "abc", "a.c"),
    ("StringEquals", "ACS:USERAGENT", r#""x""#, "x", "y"),
    ("Bool", "acs:SecureTransport", r#""false""#, "false", "true"),
    ("Bool", "acs:SecureTransport", r#""TRUE""#, "True", "yes"),
    ("Bool", "polardb:EncryptionRequired", r#""true""#, "true", "false"),
    ("NumericEquals", "polardb:RetentionDays", r#"["1","2"]"#, "2", "3"),
    ("NumericLessThan", "polardb:RetentionDays", r#""10.5""#, "-3", "ten"),
    ("DateLessThan", "acs:CurrentTime", r#""2024-06-01T00:00:00+08:00""#, "2024-05-31T15:59:59Z", "2024-05-31T16:00:00Z"),
];

fn operators() -> Vec<Case> {
    let mut out = Vec::new();
    for &(op, key, values, holds, fails) in OPERATOR_ROWS {
        let policy = p(allow_if(op, key, values));
        let ctx_key = if key.starts_with("ACS:") {
            "acs:UserAgent"
        } else {
            key
        };
        let negated = Operator::from_name(op).expect(op).is_negated();
        let name = |what: &str| format!("{op} {key} {values} {what}");
        let a = "polardb:DescribeBackupTasks";
        out.push(case(
            &name(&format!("holds for {holds}")),
            &policy,
            a,
            C1,
            &[(ctx_key, holds)],
            A,
        ));
        out.push(case(
            &name(&format!("fails for {fails}")),
            &policy,
            a,
            C1,
            &[(ctx_key, fails)],
            I,
        ));
        let missing = if negated { A } else { I };
        out.push(case(
            &name("key missing"),
            &policy,
            a,
            C1,
            &[("acs:Other", holds)],
            missing,
        ));
    }
    out
}

#[rustfmt::skip]
fn combinations() -> Vec<Case> {
    let a = "polardb:CreateBackup";
    let ip_and_https = p(doc(&[st(
        "Allow",
        r#""polardb:*""#,
        r#""*""#,
        Some(
            r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"},"Bool":{"acs:SecureTransport":"true"}}"#,
        ),
    )]));
    let two_keys = p(doc(&[st(
        "Allow",
        r#""polardb:*""#,
        r#""*""#,
        Some(r#"{"StringEquals":{"acs:UserAgent":"sdk","acs:AccessId":"LTAI1"}}"#),
    )]));
    let ip = p(allow_if("IpAddress", "acs:SourceIp", r#""10.0.0.0/8""#));
    let not_ip = p(allow_if("NotIpAddress", "acs:SourceIp", r#""10.0.0.0/8""#));
    let (sip, https, ua, ak) = (
        "acs:SourceIp",
        "acs:SecureTransport",
        "acs:UserAgent",
        "acs:AccessId",
    );
    vec![
        case("operators AND: both hold", &ip_and_https, a, C1, &[(sip, "10.1.1.1"), (https, "true")], A),
        case("operators AND: https fails", &ip_and_https, a, C1, &[(sip, "10.1.1.1"), (https, "false")], I),
        case("operators AND: ip fails", &ip_and_https, a, C1, &[(sip, "11.1.1.1"), (https, "true")], I),
        case("operators AND: https missing", &ip_and_https, a, C1, &[(sip, "10.1.1.1")], I),
        case("keys AND: both hold", &two_keys, a, C1, &[(ua, "sdk"), (ak, "LTAI1")], A),
        case("keys AND: one fails", &two_keys, a, C1, &[(ua, "sdk"), (ak, "LTAI2")], I),
        case("keys AND: one missing", &two_keys, a, C1, &[(ua, "sdk")], I),
        case("multi-valued context, positive: any value", &ip, a, C1, &[(sip, "1.1.1.1"), (sip, "10.0.0.1")], A),
        case("multi-valued context, negated: none may match", &not_ip, a, C1, &[(sip, "1.1.1.1"), (sip, "10.0.0.1")], I),
        case("unparseable source ip, positive", &ip, a, C1, &[(sip, "unknown")], I),
        case("SourceIp from loopback vs another network", &ip, a, C1, &[(sip, "127.0.0.1")], I),
        case("deny if NotIpAddress fires on missing key", &deny_if("NotIpAddress", sip, r#""10.0.0.0/8""#), a, C1, &[], X),
        case("deny if NotIpAddress fires outside", &deny_if("NotIpAddress", sip, r#""10.0.0.0/8""#), a, C1, &[(sip, "127.0.0.1")], X),
        case("deny if NotIpAddress spares inside", &deny_if("NotIpAddress", sip, r#""10.0.0.0/8""#), a, C1, &[(sip, "10.9.9.9")], A),
        case("deny if IpAddress does not fire on missing key", &deny_if("IpAddress", sip, r#""10.0.0.0/8""#), a, C1, &[], A),
        case("deny if Bool false does not fire on missing key", &deny_if("Bool", https, r#""false""#), a, C1, &[], A),
        case("deny if Bool false fires on http", &deny_if("Bool", https, r#""false""#), a, C1, &[(https, "false")], X),
        case("deny if date passed", &deny_if("DateGreaterThan", "acs:CurrentTime", r#""2024-01-01T00:00:00Z""#), a, C1, &[("acs:CurrentTime", "2025-01-01T00:00:00Z")], X),
        case("deny if date not yet", &deny_if("DateGreaterThan", "acs:CurrentTime", r#""2024-01-01T00:00:00Z""#), a, C1, &[("acs:CurrentTime", "2023-01-01T00:00:00Z")], A),
        case("failed condition on allow is not a deny", &[p(allow_if("Bool", https, r#""true""#)), p(allow(a, C1))].concat(), a, C1, &[(https, "false")], A),
        case("condition is irrelevant when scope misses", &p(allow_if("Bool", https, r#""true""#)), "ecs:RunInstances", C1, &[(https, "true")], I),
    ]
}

#[rustfmt::skip]
fn system() -> Vec<Case> {
    let ro = || vec![SYS_RO.to_owned()];
    let full = || vec![SYS_FULL.to_owned()];
    assert_eq!(SYS_FULL, format!("system:{FULL_ACCESS}"));
    let pdb_arn = "acs:polardb:*:*:*";
    let polardb_wide = "acs:polardb:cn-hangzhou:1234567890123456:dbcluster/pc-abc";
    let rds = "acs:rds:cn-hangzhou:1234567890123456:dbinstance/rm-1";
    let svc = "ram:ServiceName";
    vec![
        case("RO DescribeBackupTasks", &ro(), "polardb:DescribeBackupTasks", C1, &[], A),
        case("RO DescribeBackups DBCluster ARN", &ro(), "polardb:DescribeBackups", &arn("DBCluster/pc-abc"), &[], A),
        case("RO DescribeDBClusters", &ro(), "polardb:DescribeDBClusters", &arn("dbcluster/*"), &[], A),
        case("RO DescribeLogBackupPolicy", &ro(), "polardb:DescribeLogBackupPolicy", C1, &[], A),
        case("RO CreateBackup", &ro(), "polardb:CreateBackup", C1, &[], I),
        case("RO DeleteBackup", &ro(), "polardb:DeleteBackup", C1, &[], I),
        case("RO ModifyBackupPolicy", &ro(), "polardb:ModifyBackupPolicy", C1, &[], I),
        case("RO RestoreTable", &ro(), "polardb:RestoreTable", C1, &[], I),
        case("RO dbs Get on polardb", &ro(), "dbs:GetBackupPlan", polardb_wide, &[], A),
        case("RO dbs Get on rds", &ro(), "dbs:GetBackupPlan", rds, &[], I),
        case("RO hdm Query", &ro(), "hdm:QuerySlowLog", polardb_wide, &[], A),
        case("RO hdm Create", &ro(), "hdm:CreateDiagnosticReport", polardb_wide, &[], I),
        case("RO dbs Support", &ro(), "dbs:SupportSomething", pdb_arn, &[], A),
        case("FULL CreateBackup", &full(), "polardb:CreateBackup", C1, &[], A),
        case("FULL DeleteDBCluster", &full(), "polardb:DeleteDBCluster", C1, &[], A),
        case("FULL CreateDBCluster on star", &full(), "polardb:CreateDBCluster", "*", &[], A),
        case("FULL hdm on polardb", &full(), "hdm:CreateDiagnosticReport", polardb_wide, &[], A),
        case("FULL dbs on rds", &full(), "dbs:CreateBackupPlan", rds, &[], I),
        case("FULL vpc DescribeVpcs", &full(), "vpc:DescribeVpcs", "*", &[], A),
        case("FULL vpc DescribeVSwitches", &full(), "vpc:DescribeVSwitches", "*", &[], A),
        case("FULL vpc CreateVpc", &full(), "vpc:CreateVpc", "*", &[], I),
        case("FULL dms LoginDatabase polardb", &full(), "dms:LoginDatabase", polardb_wide, &[], A),
        case("FULL dms LoginDatabase rds", &full(), "dms:LoginDatabase", rds, &[], I),
        case("FULL bss ModifyAgreementRecord", &full(), "bss:ModifyAgreementRecord", "*", &[], A),
        case("FULL service-linked role for polardb", &full(), "ram:CreateServiceLinkedRole", "*", &[(svc, "polardb.aliyuncs.com")], A),
        case("FULL service-linked role for another service", &full(), "ram:CreateServiceLinkedRole", "*", &[(svc, "ecs.aliyuncs.com")], I),
        case("FULL service-linked role without key", &full(), "ram:CreateServiceLinkedRole", "*", &[], I),
        case("FULL ecs", &full(), "ecs:DescribeInstances", "*", &[], I),
        case("FULL ram other", &full(), "ram:CreateUser", "*", &[], I),
        case("RO plus FULL", &[SYS_RO.to_owned(), SYS_FULL.to_owned()], "polardb:CreateBackup", C1, &[], A),
        case("RO plus custom allow", &[SYS_RO.to_owned(), allow("polardb:CreateBackup", C1)], "polardb:CreateBackup", C1, &[], A),
        case("RO plus custom allow other cluster", &[SYS_RO.to_owned(), allow("polardb:CreateBackup", C1)], "polardb:CreateBackup", C2, &[], I),
        case("RO with deny on describes", &[SYS_RO.to_owned(), deny("polardb:Describe*", C1)], "polardb:DescribeBackups", C1, &[], X),
    ]
}

#[test]
fn actions_match_case_insensitively_with_literal_metacharacters() {
    run(actions());
}

#[test]
fn resources_follow_the_arn_case_rules() {
    run(resources());
}

#[test]
fn explicit_deny_takes_precedence() {
    run(precedence());
}

#[test]
fn not_action_and_not_resource_invert_scope() {
    run(negations());
}

#[test]
fn every_operator_holds_fails_and_handles_missing_keys() {
    run(operators());
}

#[test]
fn conditions_combine_with_and_and_or() {
    run(combinations());
}

#[test]
fn system_policies_grant_what_ram_md_says() {
    run(system());
}

#[test]
fn matrix_is_large_and_names_are_unique() {
    let all: Vec<Case> = [
        actions(),
        resources(),
        precedence(),
        negations(),
        operators(),
        combinations(),
        system(),
    ]
    .concat();
    assert!(all.len() >= 150, "only {} cases", all.len());
    let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    let dups: Vec<_> = names.windows(2).filter(|w| w[0] == w[1]).collect();
    assert!(dups.is_empty(), "duplicate case names: {dups:?}");
    // Every one of the 21 operators appears in the table.
    for op in Operator::ALL {
        assert!(
            OPERATOR_ROWS.iter().any(|r| r.0 == op.name()),
            "{op} has no row"
        );
    }
}

#[test]
fn deciding_statements_name_policy_index_and_conditions() {
    let c = case(
        "deciding",
        &[
            SYS_RO.to_owned(),
            doc(&[
                st("Allow", r#""ecs:*""#, r#""*""#, None),
                st(
                    "Deny",
                    r#""polardb:*""#,
                    r#""*""#,
                    Some(r#"{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#),
                ),
            ]),
        ],
        "polardb:DescribeBackups",
        C1,
        &[("acs:SourceIp", "127.0.0.1")],
        X,
    );
    let d = decide(&c);
    assert_eq!(d.effect, X);
    assert_eq!(d.deciding.len(), 1);
    let s = &d.deciding[0];
    assert_eq!((s.policy_name.as_str(), s.statement_index), ("custom-1", 1));
    assert_eq!(s.policy_type, PolicyType::Custom);
    assert_eq!(s.matched_conditions.len(), 1);
    assert_eq!(
        s.matched_conditions[0].to_string(),
        r#"NotIpAddress acs:SourceIp ["10.0.0.0/8"]"#
    );
    // With the caller inside the network the Deny does not apply and the read-only Allow decides.
    let mut inside = c;
    inside.ctx = vec![("acs:SourceIp".into(), "10.1.2.3".into())];
    let d = decide(&inside);
    assert_eq!(d.effect, A);
    assert_eq!(d.deciding[0].policy_name, READ_ONLY_ACCESS);
    assert_eq!(d.deciding[0].policy_type, PolicyType::System);
    assert_eq!(d.condition_failed.len(), 1);
    assert_eq!(
        d.condition_failed[0].failed_conditions[0].key,
        "acs:SourceIp"
    );
}
