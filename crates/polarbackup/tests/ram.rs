//! RAM end to end: RAM users' calls through the official SDKs (new V3 and old V1), denials with `AccessDeniedDetail`, diagnostics, conditions, modes, and the admin CLI for users and policies.

mod common;

use common::*;
use polarbackup_testkit::ram::policy_create_output;
use polarbackup_testkit::{request, sdk, sdk_batch, RamUser, Server, Tenant};
use serde_json::{json, Value};
use std::process::Output;
use std::time::{Duration, Instant};

const READ_ONLY: &str = "AliyunPolardbReadOnlyAccess";
const FULL_ACCESS: &str = "AliyunPolardbFullAccess";
const FORBIDDEN_MESSAGE: &str =
    "User not authorized to operate on the specified resource, or this API doesn't support RAM.";
/// A well-formed cluster id that no account has.
const GHOST: &str = "pc-zzzzzzzzzzzzzzz";
/// The members of `AccessDeniedDetail`, sorted.
const DETAIL_KEYS: [&str; 7] = [
    "AuthAction",
    "AuthPrincipalDisplayName",
    "AuthPrincipalOwnerId",
    "AuthPrincipalType",
    "EncodedDiagnosticMessage",
    "NoPermissionType",
    "PolicyType",
];
/// DescribeBackups' mandatory time range.
const ALL_TIME: (&str, &str) = ("2000-01-01T00:00Z", "2099-01-01T00:00Z");

// ---------------------------------------------------------------------------------------------
// helpers

/// A driver request: `action` on `cluster` as `who`, through `client`, against `server`.
fn call_on(server: &Server, client: &str, who: &Tenant, action: &str, cluster: &str) -> Value {
    let params = match action {
        "DescribeBackups" => {
            json!({"DBClusterId": cluster, "StartTime": ALL_TIME.0, "EndTime": ALL_TIME.1})
        }
        _ => json!({ "DBClusterId": cluster }),
    };
    let mut req = request(client, server, who, params);
    req["action"] = json!(action);
    req
}

/// [`call_on`] the shared (strict) server.
fn call(client: &str, who: &Tenant, action: &str, cluster: &str) -> Value {
    call_on(shared(), client, who, action, cluster)
}

fn policy(statements: Value) -> Value {
    json!({ "Version": "1", "Statement": statements })
}

/// Asserts a successful answer of any action (RequestId, no Code).
fn assert_ok(res: &Value) {
    assert_eq!(res["ok"], true, "expected success, got {res:#}");
    assert_eq!(res["status"], 200, "{res:#}");
    assert!(wire_body(res).get("Code").is_none(), "{res:#}");
}

/// Asserts a RAM denial as the SDK reported it and returns the body's `AccessDeniedDetail`,
/// after checking the envelope, the documented message and the detail's fixed members.
fn assert_denied(res: &Value, user: &RamUser, action: &str, kind: &str) -> Value {
    assert_error(res, 403, "Forbidden.RAM");
    assert_error_envelope(res);
    let body = wire_body(res);
    assert_eq!(body["Message"], FORBIDDEN_MESSAGE, "{res:#}");
    let detail = body["AccessDeniedDetail"].clone();
    let obj = detail
        .as_object()
        .unwrap_or_else(|| panic!("no AccessDeniedDetail object: {res:#}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, DETAIL_KEYS, "{res:#}");
    assert_eq!(detail["AuthAction"], format!("polardb:{action}"), "{res:#}");
    assert_eq!(detail["AuthPrincipalType"], "SubUser", "{res:#}");
    assert_eq!(detail["AuthPrincipalOwnerId"], user.account_id, "{res:#}");
    assert_eq!(detail["AuthPrincipalDisplayName"], user.user_id, "{res:#}");
    assert_eq!(
        detail["PolicyType"], "AccountLevelIdentityBasedPolicy",
        "{res:#}"
    );
    assert_eq!(detail["NoPermissionType"], kind, "{res:#}");
    let encoded = detail["EncodedDiagnosticMessage"].as_str().unwrap_or("");
    assert!(
        !encoded.is_empty(),
        "empty EncodedDiagnosticMessage: {res:#}"
    );
    detail
}

/// The new SDK's `ClientException.access_denied_detail` (as the driver reports it) agrees
/// with the body it came from.
fn assert_sdk_detail(res: &Value, detail: &Value) {
    assert_eq!(res["exception"], "ClientException", "{res:#}");
    assert_eq!(&res["access_denied_detail"], detail, "{res:#}");
}

fn encoded(detail: &Value) -> &str {
    detail["EncodedDiagnosticMessage"].as_str().unwrap()
}

/// The resource a call on `cluster` is authorized on: the client's RegionId, or `*`.
fn assert_resource(report: &Value, account: &str, cluster: &str) {
    let resource = report["AuthResource"].as_str().unwrap_or_default();
    let candidates = [
        format!("acs:polardb:*:{account}:dbcluster/{cluster}"),
        format!("acs:polardb:cn-hangzhou:{account}:dbcluster/{cluster}"),
    ];
    assert!(
        candidates.iter().any(|c| c == resource),
        "AuthResource {resource:?} is none of {candidates:?}: {report:#}"
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits (up to 10 s) for `needle` in the server's log.
fn wait_for_log(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. a read-only user

#[test]
fn a_read_only_user_can_describe_but_not_create_backups() {
    let server = shared();
    let t = tenant();
    let user = server.ram_user(&t.account_id, "reader", &[READ_ONLY]);
    let u = user.tenant(&t.cluster_id);
    let c = &t.cluster_id;
    let mut xml = call("old-xml", &u, "CreateBackup", c);
    xml["format"] = json!("XML");
    let res = sdk_batch(vec![
        call("v3", &u, "DescribeBackupTasks", c),
        call("v3", &u, "DescribeBackups", c),
        call("old-typed-post", &u, "DescribeBackupTasks", c),
        call("old-common-get", &u, "DescribeBackups", c),
        call("v3", &u, "CreateBackup", c),
        call("v3-sm3", &u, "CreateBackup", c),
        call("v1-new", &u, "CreateBackup", c),
        call("old-typed-post", &u, "CreateBackup", c),
        call("old-common-post-form", &u, "CreateBackup", c),
        xml,
    ]);
    ok_jobs(&res[0]);
    assert_ok(&res[1]);
    ok_jobs(&res[2]);
    assert_ok(&res[3]);
    assert_eq!(wire_body(&res[1])["TotalRecordCount"], "0", "{:#}", res[1]);

    // The new SDK parses the detail into ClientException.access_denied_detail.
    for r in &res[4..7] {
        let detail = assert_denied(r, &user, "CreateBackup", "ImplicitDeny");
        assert_sdk_detail(r, &detail);
    }
    // The old SDK (V1 signatures) reports the code and status; the detail is in its body.
    for r in &res[7..9] {
        assert_denied(r, &user, "CreateBackup", "ImplicitDeny");
        assert_eq!(r["exception"], "ServerException", "{r:#}");
    }
    // XML: the same detail as nested elements (the old SDK never parses XML bodies: it
    // reports SDK.UnknownServerError with the raw body).
    let x = &res[9];
    assert_eq!(x["status"], 403, "{x:#}");
    assert_eq!(x["code"], "SDK.UnknownServerError", "{x:#}");
    let root = &x["xml"];
    assert_eq!(root["root"], "Error", "{x:#}");
    assert_eq!(root["value"]["Code"][0], "Forbidden.RAM", "{x:#}");
    let detail = &root["value"]["AccessDeniedDetail"][0];
    assert_eq!(detail["AuthAction"][0], "polardb:CreateBackup", "{x:#}");
    assert_eq!(detail["NoPermissionType"][0], "ImplicitDeny", "{x:#}");
    assert_eq!(
        detail["AuthPrincipalDisplayName"][0],
        json!(user.user_id),
        "{x:#}"
    );

    // The diagnostic explains the decision: the action, the resource, no statement granted it.
    let message = encoded(&res[4]["access_denied_detail"]).to_string();
    let report = server.decode_diagnostic(&message);
    assert_eq!(report["Effect"], "ImplicitDeny", "{report:#}");
    assert_eq!(report["AuthAction"], "polardb:CreateBackup", "{report:#}");
    assert_resource(&report, &t.account_id, c);
    assert_eq!(report["Statements"], json!([]), "{report:#}");
    // The old SDK's message decodes too.
    let old = server.decode_diagnostic(encoded(&wire_body(&res[7])["AccessDeniedDetail"]));
    assert_eq!(old["AuthAction"], "polardb:CreateBackup", "{old:#}");
    assert_resource(&old, &t.account_id, c);

    // Tampered, forged or garbage messages are refused.
    let (signed, tag) = message.rsplit_once('.').unwrap();
    let (prefix, payload) = signed.split_once('.').unwrap();
    let flip = |s: &str, at: usize| {
        let mut b = s.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let forged_payload = {
        // base64url (no padding) of a payload that claims Allow, made without the server's key.
        let text = format!(
            r#"["Allow","polardb:CreateBackup","acs:polardb:*:{}:dbcluster/{c}",[],[],false]"#,
            t.account_id
        );
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(table[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    };
    for bad in [
        format!("{prefix}.{}.{tag}", flip(payload, 5)),
        format!("{prefix}.{payload}.{}", flip(tag, 3)),
        format!("{prefix}.{forged_payload}.{tag}"),
        format!("{message}x"),
        "PBD2.e30.AAAA".to_string(),
        "hello".to_string(),
    ] {
        let out = server.decode_diagnostic_output(&bad);
        assert!(
            !out.status.success(),
            "decode-diagnostic accepted {bad:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "{bad:?}");
        assert!(
            stderr(&out).contains("cannot decode the diagnostic message"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    let out = server.decode_diagnostic_output(&format!("{prefix}.{forged_payload}.{tag}"));
    assert!(stderr(&out).contains("not authentic"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// 2. resource scoping, existence, explicit Deny

/// Replaces what differs legitimately between two denials (RequestId, the ids, the encoded
/// message) with placeholders, leaving the rest byte for byte.
fn normalize(text: &str, ids: &[&str]) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let rid = v["RequestId"].as_str().unwrap();
    let diag = v["AccessDeniedDetail"]["EncodedDiagnosticMessage"]
        .as_str()
        .unwrap();
    let mut out = text.replace(diag, "<DIAG>").replace(rid, "<RID>");
    for id in ids {
        out = out.replace(id, "<ID>");
    }
    out
}

#[test]
fn a_user_allowed_on_one_cluster_is_refused_on_others_whether_they_exist_or_not() {
    let server = shared();
    let t = tenant();
    let a = t.cluster_id.clone();
    let b = t.add_cluster(bin(), &server.data_dir);
    let stranger = tenant();
    let theirs = stranger.cluster_id.clone();
    server.ram_policy(
        &t.account_id,
        "only-a",
        &policy(json!([{
            "Effect": "Allow",
            "Action": "polardb:*",
            "Resource": format!("acs:polardb:*:*:dbcluster/{a}"),
        }])),
    );
    let user = server.ram_user(&t.account_id, "scoped", &["only-a"]);
    let u = user.tenant(&a);
    let mut reqs = Vec::new();
    for client in ["v3", "old-typed-post", "raw"] {
        for cluster in [&a, &b, &GHOST.to_string(), &theirs] {
            reqs.push(call(client, &u, "DescribeBackupTasks", cluster));
        }
    }
    reqs.push(call("v3", &u, "CreateBackup", GHOST));
    reqs.push(call("v3", &u, "DescribeBackups", &b));
    reqs.push(call("v3", &u, "DescribeBackupTasks", "pc-NOT-VALID"));
    // The account's own key bypasses RAM and so learns what exists.
    reqs.push(call("v3", &t, "DescribeBackupTasks", GHOST));
    reqs.push(call("old-typed-post", &t, "DescribeBackupTasks", GHOST));
    reqs.push(call("v3", &t, "DescribeBackupTasks", &b));
    // So does a user allowed everywhere: a missing and a stranger's cluster look the same.
    let admin_user = server.ram_user(&t.account_id, "everywhere", &[FULL_ACCESS]);
    let everywhere = admin_user.tenant(&a);
    reqs.push(call("v3", &everywhere, "DescribeBackupTasks", GHOST));
    reqs.push(call("v3", &everywhere, "DescribeBackupTasks", &theirs));
    reqs.push(call("v3", &everywhere, "DescribeBackupTasks", &b));
    let res = sdk_batch(reqs);
    let (per_client, rest) = res.split_at(12);

    for (i, client_res) in per_client.chunks(4).enumerate() {
        ok_jobs(&client_res[0]);
        let details: Vec<Value> = client_res[1..]
            .iter()
            .map(|r| assert_denied(r, &user, "DescribeBackupTasks", "ImplicitDeny"))
            .collect();
        if i == 0 {
            for (r, d) in client_res[1..].iter().zip(&details) {
                assert_sdk_detail(r, d);
            }
        }
        // Same members, same values but for the encoded message.
        let strip = |d: &Value| {
            let mut d = d.clone();
            d["EncodedDiagnosticMessage"] = json!("");
            d
        };
        assert_eq!(strip(&details[0]), strip(&details[1]));
        assert_eq!(strip(&details[0]), strip(&details[2]));
        // Byte for byte the same body (old SDK and raw have the text as sent), and the same
        // length: nothing tells an existing cluster from a missing or a stranger's one.
        if let Some(texts) = client_res[1..]
            .iter()
            .map(|r| r["raw_body"].as_str())
            .collect::<Option<Vec<&str>>>()
        {
            let ids = [b.as_str(), GHOST, theirs.as_str()];
            let normalized: Vec<String> = texts.iter().map(|s| normalize(s, &ids)).collect();
            assert_eq!(normalized[0], normalized[1]);
            assert_eq!(normalized[0], normalized[2]);
            assert_eq!(texts[0].len(), texts[1].len());
            assert_eq!(texts[0].len(), texts[2].len());
            let keys = |r: &Value| -> Vec<String> {
                let mut k: Vec<String> = r["headers"]
                    .as_object()
                    .map(|h| h.keys().cloned().collect())
                    .unwrap_or_default();
                k.sort();
                k
            };
            assert_eq!(keys(&client_res[1]), keys(&client_res[2]));
            assert_eq!(
                client_res[1]["headers"]["content-length"],
                client_res[2]["headers"]["content-length"]
            );
        } else {
            assert_eq!(i, 0, "client {i} has no raw body text");
        }
        // The diagnostics differ only in the id.
        let reports: Vec<String> = details
            .iter()
            .zip([&b, &GHOST.to_string(), &theirs])
            .map(|(d, id)| {
                server
                    .decode_diagnostic(encoded(d))
                    .to_string()
                    .replace(id.as_str(), "<ID>")
            })
            .collect();
        assert_eq!(reports[0], reports[1]);
        assert_eq!(reports[0], reports[2]);
        assert!(reports[0].contains("dbcluster/<ID>"), "{}", reports[0]);
    }

    // CreateBackup on a missing cluster: refused by RAM, not NotFound.
    let d = assert_denied(&rest[0], &user, "CreateBackup", "ImplicitDeny");
    assert_sdk_detail(&rest[0], &d);
    assert_denied(&rest[1], &user, "DescribeBackups", "ImplicitDeny");
    // A malformed id is refused by RAM as well, before any validation.
    assert_denied(&rest[2], &user, "DescribeBackupTasks", "ImplicitDeny");
    assert_error(&rest[3], 400, "InvalidDBClusterId.NotFound");
    assert_error(&rest[4], 400, "InvalidDBClusterId.NotFound");
    assert_error_envelope(&rest[4]);
    ok_jobs(&rest[5]);
    assert_error(&rest[6], 400, "InvalidDBClusterId.NotFound");
    assert_error(&rest[7], 400, "InvalidDBClusterId.NotFound");
    assert_eq!(
        wire_body(&rest[6])["Message"],
        wire_body(&rest[7])["Message"]
    );
    ok_jobs(&rest[8]);
}

#[test]
fn an_explicit_deny_beats_full_access() {
    let server = shared();
    let t = tenant();
    server.ram_policy(
        &t.account_id,
        "no-create",
        &policy(json!([{
            "Effect": "Deny",
            "Action": "polardb:CreateBackup",
            "Resource": "*",
        }])),
    );
    let user = server.ram_user(&t.account_id, "almost-admin", &[FULL_ACCESS, "no-create"]);
    let u = user.tenant(&t.cluster_id);
    let c = &t.cluster_id;
    let res = sdk_batch(vec![
        call("v3", &u, "CreateBackup", c),
        call("old-common-post", &u, "CreateBackup", c),
        call("v3", &u, "DescribeBackupTasks", c),
        call("old-typed-post", &u, "DescribeBackups", c),
    ]);
    let detail = assert_denied(&res[0], &user, "CreateBackup", "ExplicitDeny");
    assert_sdk_detail(&res[0], &detail);
    assert_denied(&res[1], &user, "CreateBackup", "ExplicitDeny");
    ok_jobs(&res[2]);
    assert_ok(&res[3]);

    let report = server.decode_diagnostic(encoded(&detail));
    assert_eq!(report["Effect"], "ExplicitDeny", "{report:#}");
    assert_resource(&report, &t.account_id, c);
    let deciding: Vec<&Value> = report["Statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Applied"] == true)
        .collect();
    assert_eq!(deciding.len(), 1, "{report:#}");
    assert_eq!(deciding[0]["PolicyName"], "no-create", "{report:#}");
    assert_eq!(deciding[0]["PolicyType"], "Custom", "{report:#}");
    assert_eq!(deciding[0]["StatementIndex"], 0, "{report:#}");
    assert_eq!(deciding[0]["Effect"], "Deny", "{report:#}");
}

// ---------------------------------------------------------------------------------------------
// 3. acs:SourceIp

fn ip_statement(effect: &str, operator: &str, cidr: &str) -> Value {
    json!([{
        "Effect": effect,
        "Action": "polardb:*",
        "Resource": "*",
        "Condition": { operator: { "acs:SourceIp": cidr } },
    }])
}

#[test]
fn source_ip_conditions_see_the_loopback_caller() {
    let server = shared();
    let t = tenant();
    let a = &t.account_id;
    for (name, effect, op, cidr) in [
        ("allow-ten", "Allow", "IpAddress", "10.0.0.0/8"),
        ("allow-loopback", "Allow", "IpAddress", "127.0.0.0/8"),
        ("deny-outside-ten", "Deny", "NotIpAddress", "10.0.0.0/8"),
        (
            "deny-outside-loopback",
            "Deny",
            "NotIpAddress",
            "127.0.0.0/8",
        ),
        ("deny-loopback", "Deny", "IpAddress", "127.0.0.1/32"),
    ] {
        server.ram_policy(a, name, &policy(ip_statement(effect, op, cidr)));
    }
    let from_ten = server.ram_user(a, "from-ten", &["allow-ten"]);
    let from_loopback = server.ram_user(a, "from-loopback", &["allow-loopback"]);
    let outside_ten = server.ram_user(a, "outside-ten", &[FULL_ACCESS, "deny-outside-ten"]);
    let outside_loopback = server.ram_user(
        a,
        "outside-loopback",
        &[FULL_ACCESS, "deny-outside-loopback"],
    );
    let on_loopback = server.ram_user(a, "on-loopback", &[FULL_ACCESS, "deny-loopback"]);
    let c = &t.cluster_id;
    let users = [
        &from_ten,
        &from_loopback,
        &outside_ten,
        &outside_loopback,
        &on_loopback,
    ];
    let mut reqs = Vec::new();
    for u in users {
        reqs.push(call("v3", &u.tenant(c), "DescribeBackupTasks", c));
        reqs.push(call(
            "old-common-get",
            &u.tenant(c),
            "DescribeBackupTasks",
            c,
        ));
    }
    let res = sdk_batch(reqs);
    let pairs: Vec<&[Value]> = res.chunks(2).collect();

    // Allow only from 10.0.0.0/8: the loopback caller is refused, and the diagnostic shows the
    // statement whose condition failed and the address the server saw.
    let d = assert_denied(
        &pairs[0][0],
        &from_ten,
        "DescribeBackupTasks",
        "ImplicitDeny",
    );
    assert_sdk_detail(&pairs[0][0], &d);
    assert_denied(
        &pairs[0][1],
        &from_ten,
        "DescribeBackupTasks",
        "ImplicitDeny",
    );
    let report = server.decode_diagnostic(encoded(&d));
    assert_eq!(report["Effect"], "ImplicitDeny", "{report:#}");
    let s = &report["Statements"][0];
    assert_eq!(s["PolicyName"], "allow-ten", "{report:#}");
    assert_eq!(s["Applied"], false, "{report:#}");
    assert_eq!(
        s["Conditions"],
        json!([{"Operator": "IpAddress", "Key": "acs:SourceIp", "Matched": false}]),
        "{report:#}"
    );
    assert_eq!(
        report["AuthConditions"],
        json!([{"ConditionKey": "acs:SourceIp", "ConditionValues": ["127.0.0.1"]}]),
        "{report:#}"
    );
    // The allowed network itself is not revealed to the caller.
    assert!(!report.to_string().contains("10.0.0.0"), "{report:#}");

    // Allow from 127.0.0.0/8: allowed.
    ok_jobs(&pairs[1][0]);
    ok_jobs(&pairs[1][1]);
    // Deny outside 10.0.0.0/8 (with full access): loopback is outside, so refused.
    let d = assert_denied(
        &pairs[2][0],
        &outside_ten,
        "DescribeBackupTasks",
        "ExplicitDeny",
    );
    assert_sdk_detail(&pairs[2][0], &d);
    assert_denied(
        &pairs[2][1],
        &outside_ten,
        "DescribeBackupTasks",
        "ExplicitDeny",
    );
    // Deny outside 127.0.0.0/8: loopback is inside, the Deny does not apply (a failed
    // condition never turns into a deny), and full access allows.
    ok_jobs(&pairs[3][0]);
    ok_jobs(&pairs[3][1]);
    // Deny from 127.0.0.1/32: refused.
    let d = assert_denied(
        &pairs[4][0],
        &on_loopback,
        "DescribeBackupTasks",
        "ExplicitDeny",
    );
    assert_sdk_detail(&pairs[4][0], &d);
    assert_denied(
        &pairs[4][1],
        &on_loopback,
        "DescribeBackupTasks",
        "ExplicitDeny",
    );
}

#[test]
fn the_other_context_keys_are_built_from_the_request() {
    let server = shared();
    let t = tenant();
    let a = &t.account_id;
    let c = &t.cluster_id;
    let allow_if = |name: &str, operator: &str, key: &str, value: &str| {
        server.ram_policy(
            a,
            name,
            &policy(json!([{
                "Effect": "Allow",
                "Action": "polardb:*",
                "Resource": "*",
                "Condition": { operator: { key: value } },
            }])),
        );
    };
    // (policy, operator, key, value, allowed?); acs:AccessId ones name the user's own key.
    let cases = [
        ("plain-http", "Bool", "acs:SecureTransport", "false", true),
        ("tls-only", "Bool", "acs:SecureTransport", "true", false),
        ("this-key", "StringEquals", "acs:AccessId", "", true),
        (
            "other-key",
            "StringEquals",
            "acs:AccessId",
            "LTAI5tNotThisKey0000000",
            false,
        ),
        (
            "after-2000",
            "DateGreaterThan",
            "acs:CurrentTime",
            "2000-01-01T00:00:00Z",
            true,
        ),
        (
            "before-2000",
            "DateLessThan",
            "acs:CurrentTime",
            "2000-01-01T00:00:00Z",
            false,
        ),
        (
            "sdk-agent",
            "StringLike",
            "acs:UserAgent",
            "AlibabaCloud (*",
            true,
        ),
        ("curl-agent", "StringLike", "acs:UserAgent", "curl/*", false),
    ];
    let mut users = Vec::new();
    let mut reqs = Vec::new();
    for (name, operator, key, value, _) in cases {
        let user = server.ram_user(a, name, &[]);
        let value = if value.is_empty() {
            user.key_id.as_str()
        } else {
            value
        };
        allow_if(name, operator, key, value);
        polarbackup_testkit::ram::attach(bin(), &server.data_dir, &user.user_id, name);
        reqs.push(call("v3", &user.tenant(c), "DescribeBackupTasks", c));
        reqs.push(call(
            "old-typed-post",
            &user.tenant(c),
            "DescribeBackupTasks",
            c,
        ));
        users.push(user);
    }
    let res = sdk_batch(reqs);
    for ((case, user), pair) in cases.iter().zip(&users).zip(res.chunks(2)) {
        let (name, operator, key, _, allowed) = *case;
        if allowed {
            ok_jobs(&pair[0]);
            ok_jobs(&pair[1]);
            continue;
        }
        let d = assert_denied(&pair[0], user, "DescribeBackupTasks", "ImplicitDeny");
        assert_sdk_detail(&pair[0], &d);
        assert_denied(&pair[1], user, "DescribeBackupTasks", "ImplicitDeny");
        let report = server.decode_diagnostic(encoded(&d));
        let s = &report["Statements"][0];
        assert_eq!(s["PolicyName"], name, "{report:#}");
        assert_eq!(
            s["Conditions"],
            json!([{"Operator": operator, "Key": key, "Matched": false}]),
            "{report:#}"
        );
        // What the server saw for that key.
        let seen = report["AuthConditions"][0]["ConditionValues"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            report["AuthConditions"][0]["ConditionKey"], key,
            "{report:#}"
        );
        match key {
            "acs:SecureTransport" => assert_eq!(seen, "false", "{report:#}"),
            "acs:AccessId" => assert_eq!(seen, user.key_id, "{report:#}"),
            "acs:CurrentTime" => assert!(seen.starts_with("20"), "{report:#}"),
            "acs:UserAgent" => assert!(seen.starts_with("AlibabaCloud ("), "{report:#}"),
            _ => unreachable!(),
        }
    }
}

/// The region of a resource ARN comes from the client (`RegionId`, or `*` when the client sends
/// none, as the new SDK does), not from the cluster. A policy that names the cluster's region
/// therefore depends on what the caller chooses to send. FAILS today: see the report.
#[test]
fn a_region_scoped_policy_cannot_be_sidestepped_through_region_id() {
    let server = shared();
    let t = tenant(); // its cluster is in cn-hangzhou
    let a = &t.account_id;
    let c = &t.cluster_id;
    let hangzhou = "acs:polardb:cn-hangzhou:*:dbcluster/*";
    server.ram_policy(
        a,
        "no-tasks-in-hangzhou",
        &policy(json!([{"Effect": "Deny", "Action": "polardb:DescribeBackupTasks", "Resource": hangzhou}])),
    );
    server.ram_policy(
        a,
        "hangzhou-only",
        &policy(json!([{"Effect": "Allow", "Action": "polardb:*", "Resource": hangzhou}])),
    );
    let denied = server.ram_user(a, "denied-in-hz", &[FULL_ACCESS, "no-tasks-in-hangzhou"]);
    let allowed = server.ram_user(a, "allowed-in-hz", &["hangzhou-only"]);
    let d = denied.tenant(c);
    let with_region = |client: &str, who: &Tenant, region: &str| {
        let mut r = call(client, who, "DescribeBackupTasks", c);
        r["region"] = json!(region);
        r
    };
    let mut raw_upper = call("raw", &d, "DescribeBackupTasks", c);
    raw_upper["params"]["RegionId"] = json!("CN-HANGZHOU");
    let res = sdk_batch(vec![
        call("old-typed-post", &d, "DescribeBackupTasks", c), // RegionId=cn-hangzhou
        call("v3", &d, "DescribeBackupTasks", c),             // no RegionId
        with_region("old-typed-post", &d, "cn-beijing"),      // another region
        raw_upper,                                            // another spelling
        call("v3", &allowed.tenant(c), "DescribeBackupTasks", c),
    ]);
    assert_denied(&res[0], &denied, "DescribeBackupTasks", "ExplicitDeny");
    let mut failures = Vec::new();
    for (what, r) in [
        ("new SDK, no RegionId", &res[1]),
        ("old SDK, RegionId=cn-beijing", &res[2]),
        ("raw, RegionId=CN-HANGZHOU", &res[3]),
    ] {
        // Either the Deny applies, or the cluster is not found in the region asked for; never
        // the cluster's data.
        let refused = (r["status"] == 403 && r["code"] == "Forbidden.RAM")
            || (r["status"] == 400 && r["code"] == "InvalidDBClusterId.NotFound");
        if !refused {
            failures.push(format!(
                "{what}: the Deny on {hangzhou} was sidestepped: {} {}",
                r["status"], r["code"]
            ));
        }
    }
    if res[4]["ok"] != true {
        failures.push(format!(
            "new SDK: an Allow on {hangzhou} does not cover a cn-hangzhou cluster: {} {} ({})",
            res[4]["status"],
            res[4]["code"],
            wire_body(&res[4])["AccessDeniedDetail"]["NoPermissionType"]
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. modes

#[test]
fn soft_mode_allows_a_denied_call_and_logs_the_would_be_denial() {
    let server = Server::start(bin(), None, &["--ram-mode", "soft"]);
    let t = server.tenant();
    let user = server.ram_user(&t.account_id, "reader", &[READ_ONLY]);
    let nobody = server.ram_user(&t.account_id, "nobody", &[]);
    let c = &t.cluster_id;
    let res = sdk_batch(vec![
        call_on(&server, "v3", &user.tenant(c), "CreateBackup", c),
        call_on(
            &server,
            "old-typed-post",
            &nobody.tenant(c),
            "DescribeBackupTasks",
            c,
        ),
        call_on(&server, "v3", &user.tenant(c), "DescribeBackupTasks", c),
    ]);
    assert_ok(&res[0]);
    let job = wire_body(&res[0])["BackupJobId"]
        .as_str()
        .unwrap_or_default();
    assert!(!job.is_empty(), "{:#}", res[0]);
    ok_jobs(&res[1]);
    ok_jobs(&res[2]);
    let log = wait_for_log(&server, "polardb:DescribeBackupTasks");
    let would: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("RAM would deny"))
        .collect();
    assert!(
        would.iter().any(|l| l.contains("polardb:CreateBackup")
            && l.contains(&user.user_id)
            && l.contains("ImplicitDeny")),
        "no would-be denial of CreateBackup logged:\n{log}"
    );
    assert!(
        would
            .iter()
            .any(|l| l.contains("polardb:DescribeBackupTasks") && l.contains(&nobody.user_id)),
        "no would-be denial of DescribeBackupTasks logged:\n{log}"
    );
    // The allowed call is not reported as a would-be denial.
    assert_eq!(would.len(), 2, "{log}");
}

/// A replayed call is refused as a replay, before RAM: a user's denied call answers
/// Forbidden.RAM, the same request again SignatureNonceUsed, and only the first is logged as a
/// denial (DescribeBackupTasks, answered on the async thread, and CreateBackup, on a blocking
/// one, alike; in soft mode, the would-be denial is logged once too).
#[test]
fn a_replay_is_refused_as_a_replay_before_ram() {
    for mode in ["strict", "soft"] {
        let server = Server::start(bin(), None, &["--ram-mode", mode]);
        let t = server.tenant();
        let nobody = server.ram_user(&t.account_id, "nobody", &[]);
        let u = nobody.tenant(&t.cluster_id);
        let mut reqs = Vec::new();
        for action in ["DescribeBackupTasks", "CreateBackup"] {
            let mut req = call_on(&server, "raw", &u, action, &t.cluster_id);
            req["sig"] = json!("v3");
            req["nonce"] = json!(format!("{mode}-{action}-replayed"));
            reqs.push(req.clone());
            reqs.push(req);
        }
        let res = sdk_batch(reqs);
        for (i, action) in ["DescribeBackupTasks", "CreateBackup"].iter().enumerate() {
            let (first, replay) = (&res[2 * i], &res[2 * i + 1]);
            if mode == "strict" {
                assert_denied(first, &nobody, action, "ImplicitDeny");
            } else {
                assert_ok(first);
            }
            assert_error(replay, 400, "SignatureNonceUsed");
            assert_error_envelope(replay);
        }
        let log = wait_for_log(&server, "polardb:CreateBackup");
        let note = if mode == "strict" {
            "RAM denied"
        } else {
            "RAM would deny"
        };
        for action in ["DescribeBackupTasks", "CreateBackup"] {
            let logged = log
                .lines()
                .filter(|l| l.contains(note) && l.contains(&format!("polardb:{action}")))
                .count();
            assert_eq!(logged, 1, "{mode}, {action}:\n{log}");
        }
    }
}

#[test]
fn off_mode_allows_everything_and_warns_at_start() {
    let server = Server::start(bin(), None, &["--ram-mode", "off"]);
    let log = wait_for_log(&server, "RAM is off");
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("RAM is off")),
        "no warning at start:\n{log}"
    );
    let t = server.tenant();
    let nobody = server.ram_user(&t.account_id, "nobody", &[]);
    let c = &t.cluster_id;
    let u = nobody.tenant(c);
    let res = sdk_batch(vec![
        call_on(&server, "v3", &u, "DescribeBackupTasks", c),
        call_on(&server, "old-common-get", &u, "DescribeBackups", c),
        call_on(&server, "v3", &u, "CreateBackup", c),
    ]);
    ok_jobs(&res[0]);
    assert_ok(&res[1]);
    assert_ok(&res[2]);
    let log = server.log();
    assert!(!log.contains("RAM would deny"), "{log}");
    assert!(!log.contains("RAM denied"), "{log}");
    // The strict server never warned.
    assert!(!shared().log().contains("RAM is off"));
}

// ---------------------------------------------------------------------------------------------
// 5. the CLI

/// A document of exactly `size` bytes: one Allow statement whose resource id pads it.
fn document_of_size(size: usize) -> String {
    let make = |pad: usize| {
        policy(json!([{
            "Effect": "Allow",
            "Action": "polardb:DescribeBackupTasks",
            "Resource": format!("acs:polardb:*:*:dbcluster/pc-{}", "a".repeat(pad)),
        }]))
        .to_string()
    };
    let base = make(0).len();
    let doc = make(size - base);
    assert_eq!(doc.len(), size);
    doc
}

#[test]
fn policy_documents_are_validated_one_rule_at_a_time() {
    let server = shared();
    let account = server.admin(&["account", "create"]);
    let account = account["AccountId"].as_str().unwrap();
    let good = json!({"Effect": "Allow", "Action": "polardb:*", "Resource": "*"});
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "invalid JSON",
            r#"{"Version": "1", "Statement": [ {"Effect": "Allow""#.to_string(),
            "The policy document is not valid JSON",
        ),
        (
            "Version 2",
            json!({"Version": "2", "Statement": [good]}).to_string(),
            r#"Version must be "1", found "2"."#,
        ),
        (
            "Effect Maybe",
            policy(json!([{"Effect": "Maybe", "Action": "polardb:*", "Resource": "*"}]))
                .to_string(),
            r#"Statement[0]: Effect must be "Allow" or "Deny" (case-sensitive), found "Maybe"."#,
        ),
        (
            "missing Action",
            policy(json!([good, {"Effect": "Allow", "Resource": "*"}])).to_string(),
            "Statement[1] needs an Action or a NotAction.",
        ),
        (
            "missing Resource",
            policy(json!([{"Effect": "Deny", "Action": "polardb:CreateBackup"}])).to_string(),
            "Statement[0] needs a Resource (or NotResource).",
        ),
        (
            "StringEqualsIfExists",
            policy(json!([{"Effect": "Allow", "Action": "polardb:*", "Resource": "*",
                "Condition": {"StringEqualsIfExists": {"acs:UserAgent": "x"}}}]))
            .to_string(),
            "Statement[0].Condition: the condition operator 'StringEqualsIfExists' is not supported.",
        ),
        (
            "Null",
            policy(json!([{"Effect": "Allow", "Action": "polardb:*", "Resource": "*",
                "Condition": {"Null": {"acs:SourceIp": "true"}}}]))
            .to_string(),
            "Statement[0].Condition: the condition operator 'Null' is not supported.",
        ),
        (
            "unsupported condition key",
            policy(json!([{"Effect": "Deny", "Action": "polardb:*", "Resource": "*",
                "Condition": {"NotIpAddress": {"acs:SourceAddress": "10.0.0.0/8"}}}]))
            .to_string(),
            r#"Statement[0].Condition.NotIpAddress: the condition key "acs:SourceAddress" is not supported; the supported keys are acs:AccessId, acs:CurrentTime, acs:SecureTransport, acs:SourceIp, acs:UserAgent."#,
        ),
        (
            "6145 bytes",
            document_of_size(6145),
            "The policy document is 6145 bytes; the limit is 6144 bytes.",
        ),
    ];
    for (i, (what, doc, expected)) in cases.iter().enumerate() {
        let name = format!("bad-{i}");
        let out = policy_create_output(bin(), &server.data_dir, account, &name, doc);
        assert!(
            !out.status.success(),
            "{what}: accepted ({})",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "{what}: printed on failure");
        let err = stderr(&out);
        assert!(
            err.contains("invalid policy document") && err.contains(expected),
            "{what}: expected {expected:?} in:\n{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
    }
    // 6144 bytes is still fine; nothing refused was stored.
    let at_limit = document_of_size(6144);
    let out = policy_create_output(bin(), &server.data_dir, account, "at-limit", &at_limit);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = server.admin(&["policy", "list", "--account", account]);
    let mut names: Vec<(String, String)> = listed["Policies"]["Policy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["PolicyName"].as_str().unwrap().to_string(),
                p["PolicyType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            (FULL_ACCESS.to_string(), "System".to_string()),
            (READ_ONLY.to_string(), "System".to_string()),
            ("at-limit".to_string(), "Custom".to_string()),
        ],
        "{listed:#}"
    );
    let custom = listed["Policies"]["Policy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PolicyName"] == "at-limit")
        .unwrap();
    assert_eq!(custom["PolicyDocument"], at_limit, "{listed:#}");
}

#[test]
fn attach_and_detach_refuse_what_does_not_exist() {
    let server = shared();
    let t = tenant();
    let other = tenant();
    let doc = policy(json!([{"Effect": "Allow", "Action": "polardb:*", "Resource": "*"}]));
    server.ram_policy(&t.account_id, "mine", &doc);
    server.ram_policy(&other.account_id, "theirs", &doc);
    let user = server.ram_user(&t.account_id, "operator", &[]);
    let run = |args: &[&str]| polarbackup_testkit::admin_output(bin(), &server.data_dir, args);
    let attach = |p: &str| run(&["policy", "attach", "--user", &user.user_id, "--policy", p]);
    let detach = |p: &str| run(&["policy", "detach", "--user", &user.user_id, "--policy", p]);
    let fails = |out: Output, what: &str, needle: &str| {
        assert!(!out.status.success(), "{what}: succeeded");
        assert!(out.stdout.is_empty(), "{what}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{what}: expected {needle:?} in {err}");
    };

    fails(
        attach("no-such-policy"),
        "unknown custom policy",
        "not found",
    );
    fails(attach("theirs"), "another account's policy", "not found");
    fails(
        detach("mine"),
        "detach of a policy never attached",
        "is not attached",
    );
    fails(
        detach(READ_ONLY),
        "detach of a system policy not attached",
        "is not attached",
    );
    fails(
        run(&[
            "policy",
            "attach",
            "--user",
            "1111111111111111",
            "--policy",
            READ_ONLY,
        ]),
        "attach to an unknown user",
        "does not exist",
    );

    let first = server.admin(&[
        "policy",
        "attach",
        "--user",
        &user.user_id,
        "--policy",
        "mine",
    ]);
    assert_eq!(first["Changed"], true, "{first}");
    assert_eq!(first["PolicyType"], "Custom", "{first}");
    let again = server.admin(&[
        "policy",
        "attach",
        "--user",
        &user.user_id,
        "--policy",
        "mine",
    ]);
    assert_eq!(again["Changed"], false, "{again}");
    let sys = server.admin(&[
        "policy",
        "attach",
        "--user",
        &user.user_id,
        "--policy",
        READ_ONLY,
    ]);
    assert_eq!(sys["PolicyType"], "System", "{sys}");
    let out = server.admin(&[
        "policy",
        "detach",
        "--user",
        &user.user_id,
        "--policy",
        "mine",
    ]);
    assert_eq!(out["PolicyName"], "mine", "{out}");
    fails(detach("mine"), "detach twice", "is not attached");
    // System policy names are reserved.
    let out = policy_create_output(
        bin(),
        &server.data_dir,
        &t.account_id,
        FULL_ACCESS,
        &doc.to_string(),
    );
    assert!(
        !out.status.success(),
        "a custom policy took a system policy's name"
    );
}

/// Without `--context`, the simulator sees the keys every request has (the time, plain HTTP),
/// so a grant that depends on them agrees with the server; given keys still win.
#[test]
fn simulate_without_a_context_agrees_with_the_server() {
    let server = shared();
    let t = tenant();
    let a = &t.account_id;
    let c = &t.cluster_id;
    server.ram_policy(
        a,
        "plain-http-this-century",
        &policy(json!([{
            "Effect": "Allow",
            "Action": "polardb:*",
            "Resource": "*",
            "Condition": {
                "Bool": {"acs:SecureTransport": "false"},
                "DateGreaterThan": {"acs:CurrentTime": "2000-01-01T00:00:00Z"},
            },
        }])),
    );
    let user = server.ram_user(a, "simulated-defaults", &["plain-http-this-century"]);
    let arn = format!("acs:polardb:cn-hangzhou:{a}:dbcluster/{c}");
    let served = sdk(call("v3", &user.tenant(c), "DescribeBackupTasks", c));
    ok_jobs(&served);
    let out = server.simulate(&user.user_id, "polardb:DescribeBackupTasks", &arn, &[]);
    assert_eq!(out["Decision"]["Effect"], "Allow", "{out:#}");
    assert_eq!(
        out["Context"]["acs:SecureTransport"],
        json!(["false"]),
        "{out:#}"
    );
    let time = out["Context"]["acs:CurrentTime"][0]
        .as_str()
        .unwrap_or_default();
    assert!(time.starts_with("20") && time.ends_with('Z'), "{out:#}");
    // A key given on the command line is not overridden.
    let out = server.simulate(
        &user.user_id,
        "polardb:DescribeBackupTasks",
        &arn,
        &["acs:SecureTransport=true"],
    );
    assert_eq!(out["Decision"]["Effect"], "ImplicitDeny", "{out:#}");
    assert_eq!(
        out["Context"]["acs:SecureTransport"],
        json!(["true"]),
        "{out:#}"
    );
}

/// An action without its service prefix (or with a wildcard) names no request, so the
/// simulator refuses it instead of answering ImplicitDeny.
#[test]
fn simulate_refuses_an_action_that_is_not_service_colon_name() {
    let server = shared();
    let t = tenant();
    let a = &t.account_id;
    let user = server.ram_user(a, "simulated-prefix", &[FULL_ACCESS]);
    let arn = format!("acs:polardb:cn-hangzhou:{a}:dbcluster/{}", t.cluster_id);
    for action in [
        "DescribeBackups",
        "polardb:*",
        ":DescribeBackups",
        "polardb:",
    ] {
        let out = server.simulate_output(&user.user_id, action, &arn, &[]);
        assert!(
            !out.status.success(),
            "{action}: accepted: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = stderr(&out);
        assert!(
            err.contains("is not an action") && err.contains("polardb:DescribeBackups"),
            "{action}: {err}"
        );
    }
    let out = server.simulate(&user.user_id, "polardb:DescribeBackups", &arn, &[]);
    assert_eq!(out["Decision"]["Effect"], "Allow", "{out:#}");
}

#[test]
fn simulate_prints_the_decision_and_the_deciding_statements() {
    let server = shared();
    let t = tenant();
    let a = &t.account_id;
    server.ram_policy(
        a,
        "create-only-from-loopback",
        &policy(ip_statement("Deny", "NotIpAddress", "127.0.0.0/8")),
    );
    let user = server.ram_user(a, "simulated", &[READ_ONLY, "create-only-from-loopback"]);
    let arn = format!("acs:polardb:cn-hangzhou:{a}:dbcluster/{}", t.cluster_id);
    let sim = |action: &str, context: &[&str]| {
        let out = server.simulate(&user.user_id, action, &arn, context);
        assert_eq!(out["UserId"], user.user_id, "{out:#}");
        assert_eq!(out["Action"], action, "{out:#}");
        assert_eq!(out["Resource"], arn, "{out:#}");
        out["Decision"].clone()
    };
    let statement = |name: &str, index: u64, effect: &str| {
        let kind = if name.starts_with("Aliyun") {
            "System"
        } else {
            "Custom"
        };
        json!({"PolicyName": name, "PolicyType": kind, "StatementIndex": index, "Effect": effect})
    };
    let summary = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                json!({"PolicyName": s["PolicyName"], "PolicyType": s["PolicyType"],
                       "StatementIndex": s["StatementIndex"], "Effect": s["Effect"]})
            })
            .collect()
    };
    let loopback = ["acs:SourceIp=127.0.0.1"];

    // Read-only allows Describe*, from anywhere the Deny does not apply to.
    let d = sim("polardb:DescribeBackups", &loopback);
    assert_eq!(d["Effect"], "Allow", "{d:#}");
    assert_eq!(
        summary(&d["Deciding"]),
        [statement(READ_ONLY, 0, "Allow")],
        "{d:#}"
    );
    // Actions compare case-insensitively.
    let d = sim("polardb:describebackuptasks", &loopback);
    assert_eq!(d["Effect"], "Allow", "{d:#}");

    // CreateBackup from loopback: nothing allows it, the Deny's condition failed.
    let d = sim("polardb:CreateBackup", &loopback);
    assert_eq!(d["Effect"], "ImplicitDeny", "{d:#}");
    assert_eq!(d["Deciding"], json!([]), "{d:#}");
    assert_eq!(
        summary(&d["ConditionFailed"]),
        [statement("create-only-from-loopback", 0, "Deny")],
        "{d:#}"
    );
    assert_eq!(
        d["ConditionFailed"][0]["FailedConditions"],
        json!([{"Operator": "NotIpAddress", "Key": "acs:SourceIp", "Values": ["127.0.0.0/8"]}]),
        "{d:#}"
    );

    // From elsewhere the Deny applies; so it does with no address at all (a negated operator
    // on a missing key holds).
    for ctx in [&["acs:SourceIp=10.1.2.3"][..], &[][..]] {
        let d = sim("polardb:CreateBackup", ctx);
        assert_eq!(d["Effect"], "ExplicitDeny", "{ctx:?}: {d:#}");
        assert_eq!(
            summary(&d["Deciding"]),
            [statement("create-only-from-loopback", 0, "Deny")],
            "{d:#}"
        );
        assert_eq!(
            d["Deciding"][0]["MatchedConditions"][0]["Operator"], "NotIpAddress",
            "{d:#}"
        );
    }
    // Even a Describe call is denied from elsewhere: the Deny covers polardb:*.
    let d = sim("polardb:DescribeBackups", &["acs:SourceIp=192.168.1.1"]);
    assert_eq!(d["Effect"], "ExplicitDeny", "{d:#}");

    // With full access attached, CreateBackup from loopback is allowed by its first statement.
    polarbackup_testkit::ram::attach(bin(), &server.data_dir, &user.user_id, FULL_ACCESS);
    let d = sim("polardb:CreateBackup", &loopback);
    assert_eq!(d["Effect"], "Allow", "{d:#}");
    assert_eq!(
        summary(&d["Deciding"]),
        [statement(FULL_ACCESS, 0, "Allow")],
        "{d:#}"
    );

    // Bad input is refused.
    let out = polarbackup_testkit::admin_output(
        bin(),
        &server.data_dir,
        &[
            "ram",
            "simulate",
            "--user",
            &user.user_id,
            "--action",
            "polardb:CreateBackup",
            "--resource",
            &arn,
            "--context",
            "no-equals-sign",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("KEY=VALUE"), "{}", stderr(&out));
    let out = polarbackup_testkit::admin_output(
        bin(),
        &server.data_dir,
        &[
            "ram",
            "simulate",
            "--user",
            "1111111111111111",
            "--action",
            "polardb:CreateBackup",
            "--resource",
            &arn,
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn a_disabled_user_key_is_inactive_until_enabled_again() {
    let server = shared();
    let t = tenant();
    let user = server.ram_user(&t.account_id, "sometimes", &[FULL_ACCESS]);
    let u = user.tenant(&t.cluster_id);
    let c = &t.cluster_id;
    server.admin(&["key", "disable", "--key", &user.key_id]);
    let res = sdk_batch(vec![
        call("v3", &u, "DescribeBackupTasks", c),
        call("old-typed-post", &u, "DescribeBackupTasks", c),
        call("v3", &t, "DescribeBackupTasks", c),
    ]);
    for r in &res[..2] {
        assert_error(r, 400, "InvalidAccessKeyId.Inactive");
        assert_error_envelope(r);
        assert!(wire_body(r).get("AccessDeniedDetail").is_none(), "{r:#}");
    }
    // The account's own key is another key: unaffected.
    ok_jobs(&res[2]);
    server.admin(&["key", "enable", "--key", &user.key_id]);
    ok_jobs(&sdk_batch(vec![call("v3", &u, "DescribeBackupTasks", c)])[0]);
}
