//! The bad-input matrix: every parameter of every action, one hostile value at a time, through the official SDKs (and the raw signer for what no SDK can send), answered with a documented 4xx and never a 5xx.

mod common;

use common::*;
use polarbackup_testkit::{checks, request, sdk_batch, Tenant};
use polarbackup_wire::ApiError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// DescribeBackups' and DescribeDetachedBackups' parameters (the same).
const SET_LISTING: &[(&str, &str)] = &[
    ("DBClusterId", "C"),
    ("StartTime", "2020-11-14T00:00Z"),
    ("EndTime", "2030-11-16T00:00Z"),
    ("BackupStatus", "Success"),
    ("BackupMode", "Manual"),
    ("BackupId", "1"),
    ("PageSize", "30"),
    ("PageNumber", "1"),
];

/// Each action with its parameters and a value each that it accepts (so a request differs
/// from a good one in one parameter only). `C` stands for the tenant's cluster.
const ACTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "DescribeBackupTasks",
        &[
            ("DBClusterId", "C"),
            ("BackupJobId", "1"),
            ("BackupMode", "Manual"),
        ],
    ),
    (
        "CreateBackup",
        &[
            ("DBClusterId", "C"),
            ("ClientToken", "matrix-token-1"),
            ("Comment", "nightly"),
        ],
    ),
    ("DescribeBackups", SET_LISTING),
    ("DeleteBackup", &[("DBClusterId", "C"), ("BackupId", "1")]),
    ("DescribeBackupPolicy", &[("DBClusterId", "C")]),
    (
        "ModifyBackupPolicy",
        &[
            ("DBClusterId", "C"),
            ("PreferredBackupPeriod", "Monday,Thursday"),
            ("PreferredBackupTime", "02:00Z-03:00Z"),
            ("BackupFrequency", "Normal"),
            ("DataLevel1BackupPeriod", "Monday,Thursday"),
            ("DataLevel1BackupTime", "02:00Z-03:00Z"),
            ("DataLevel1BackupFrequency", "Normal"),
            ("DataLevel1BackupRetentionPeriod", "7"),
            ("BackupRetentionPolicyOnClusterDeletion", "NONE"),
            ("DataLevel2BackupPeriod", ""),
            ("DataLevel2BackupRetentionPeriod", "0"),
            ("DataLevel2BackupAnotherRegionRegion", ""),
            ("DataLevel2BackupAnotherRegionRetentionPeriod", "0"),
            ("BackupPolicyLevel", "Normal"),
            ("AdvancedDataPolicies", "[]"),
        ],
    ),
    ("DescribeDetachedBackups", SET_LISTING),
    ("DescribeLogBackupPolicy", &[("DBClusterId", "C")]),
    (
        "ModifyLogBackupPolicy",
        &[
            ("DBClusterId", "C"),
            ("LogBackupRetentionPeriod", "7"),
            ("LogBackupAnotherRegionRegion", ""),
            ("LogBackupAnotherRegionRetentionPeriod", "0"),
            ("AdvancedLogPolicies", "[]"),
        ],
    ),
    (
        "DescribeBackupLogs",
        &[
            ("DBClusterId", "C"),
            ("StartTime", "2020-11-14T00:00Z"),
            ("EndTime", "2030-11-16T00:00Z"),
            ("PageSize", "30"),
            ("PageNumber", "1"),
        ],
    ),
    (
        "DescribeBackupLogDownloadLinks",
        &[
            ("DBClusterId", "C"),
            ("BackupLogIds", "1"),
            ("ExpireHours", "1"),
        ],
    ),
    (
        "DescribeLocalAvailableRecoveryTime",
        &[("DBClusterId", "C")],
    ),
];

/// Hostile values an SDK can send, by kind.
fn sdk_values() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("over-long", "7".repeat(5000)),
        ("over-long", "pc-".to_string() + &"a".repeat(3000)),
        ("control bytes", "\u{0}\u{1}\t\n\r\u{1b}[2J\u{7f}x".into()),
        ("unicode", "ＤＢ😀\u{202e}\u{feff}".into()),
    ];
    for typed in [
        "-1",
        "0",
        "1.5",
        "1e400",
        "99999999999999999999999",
        "0x10",
        "true",
        "null",
        "[\"x\"]",
        "{\"a\":1}",
    ] {
        v.push(("wrongly typed", typed.into()));
    }
    for meta in [
        "' OR '1'='1' --",
        "\"; DROP TABLE t; --",
        "\"}],\"Code\":\"x\",\"a\":[{\"",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>",
        "]]><![CDATA[<Code>x</Code>",
        "%00%zz%",
        "${jndi:ldap://127.0.0.1/x}",
        "*",
        "\\",
        "../etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
    ] {
        v.push(("metacharacters", meta.into()));
    }
    v
}

/// The official clients the SDK values go through, in turn.
const CLIENTS: [&str; 2] = ["v3", "old-common-post"];

/// Every (status, Code) the error table can answer for these actions' parameters.
fn documented() -> Vec<(u16, String)> {
    let mut errors = vec![
        ApiError::InvalidAction,
        ApiError::InvalidVersion,
        ApiError::InvalidFormat,
        ApiError::UnsupportedHttpMethod,
        ApiError::BodyTooLarge { limit: 0 },
        ApiError::RequestTimeout,
        ApiError::MalformedBody(""),
        ApiError::MalformedRequest,
        ApiError::UriTooLong,
        ApiError::HeadersTooLarge,
        ApiError::AccessKeyNotFound,
        ApiError::AccessKeyInactive,
        ApiError::SignatureDoesNotMatch {
            string_to_sign: String::new(),
        },
        ApiError::IncompleteSignature(String::new()),
        ApiError::InvalidSignatureMethod,
        ApiError::InvalidSignatureVersion,
        ApiError::SignatureNonceUsed,
        ApiError::TimestampExpired,
        ApiError::TimestampFormat,
        ApiError::SecurityTokenMalformed,
        ApiError::DbClusterNotFound { status: 400 },
        ApiError::DbClusterNotFound { status: 404 },
        ApiError::BackupModeMalformed,
        ApiError::BackupTimesExceeded,
        ApiError::IdempotentParameterMismatch,
        ApiError::BackupSetNotFound,
        ApiError::AutomatedBackupNotDeletable,
        ApiError::BackupDependency {
            id: 0,
            children: Vec::new(),
        },
        ApiError::ClusterStatus,
        ApiError::IncorrectBackupPolicy(""),
        ApiError::BackupLogNotFound,
        ApiError::HostUnusable,
    ];
    for (_, params) in ACTIONS {
        for (name, _) in *params {
            // The table's generic forms, with this parameter's name (leaked: test-only).
            let name: &'static str = Box::leak(name.to_string().into_boxed_str());
            errors.push(ApiError::MissingParameter(name));
            errors.push(ApiError::Malformed(name));
        }
    }
    // The code API.md gives for this field (its name in the error differs).
    errors.push(ApiError::Malformed(
        "DataLevel2AnotherRegionBackupRetentionPeriod",
    ));
    errors
        .iter()
        .map(|e| {
            let (status, code, _) = e.describe();
            (status, code)
        })
        .collect()
}

/// One request: `action` with its good parameters, `name` set to `value` (or, for the raw
/// options, left out and sent through `raw`).
fn case(
    t: &Tenant,
    client: &str,
    action: &str,
    params: &[(&str, &str)],
    name: &str,
    value: Option<&str>,
    raw: Value,
) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        let v: &str = if *v == "C" { &t.cluster_id } else { v };
        map.insert((*k).into(), json!(v));
    }
    match value {
        Some(v) => {
            map.insert(name.into(), json!(v));
        }
        None => {
            map.remove(name);
        }
    }
    let mut req = request(client, shared(), t, Value::Object(map));
    req["action"] = json!(action);
    if client.starts_with("v3") || client == "v1-new" {
        // The generic call sends every value as given; typed models would convert them.
        req["generic"] = json!(true);
    }
    if let Value::Object(extra) = raw {
        for (k, v) in extra {
            req[k] = v;
        }
    }
    req
}

#[test]
fn every_parameter_of_every_action_refuses_bad_values_with_a_documented_4xx() {
    let t = tenant();
    let values = sdk_values();
    // (action, parameter, kind, client) per request, in order.
    let mut labels: Vec<(String, String, &str, String)> = Vec::new();
    let mut requests = Vec::new();
    let mut turn = 0;
    for (action, params) in ACTIONS {
        for (name, good) in *params {
            let good: &str = if *good == "C" { &t.cluster_id } else { good };
            for (kind, value) in &values {
                let client = CLIENTS[turn % CLIENTS.len()];
                turn += 1;
                labels.push((action.to_string(), name.to_string(), *kind, client.into()));
                requests.push(case(
                    &t,
                    client,
                    action,
                    params,
                    name,
                    Some(value.as_str()),
                    json!({}),
                ));
            }
            // What no SDK sends: bytes that are not UTF-8, and the parameter twice (a bad
            // value after the good one, and before it).
            let raw_cases = [
                (
                    "non-UTF-8",
                    None,
                    json!({"raw_bytes": [[name, "fffe80c3"]]}),
                ),
                (
                    "duplicated",
                    Some(good),
                    json!({"extra_params": [[name, "' OR 1=1 --"]]}),
                ),
                (
                    "duplicated",
                    Some("<x/>"),
                    json!({"extra_params": [[name, good]]}),
                ),
            ];
            for (kind, value, raw) in raw_cases {
                labels.push((action.to_string(), name.to_string(), kind, "raw".into()));
                requests.push(case(&t, "raw", action, params, name, value, raw));
            }
        }
    }
    let total = requests.len();
    let results = sdk_batch(requests);
    assert_eq!(results.len(), total);

    let documented = documented();
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for ((action, name, kind, client), res) in labels.iter().zip(&results) {
        let status = res["status"].as_u64().unwrap_or(0) as u16;
        let code = res["code"].as_str().unwrap_or_default().to_string();
        let what = format!("{action} {name} {kind} via {client}");
        let key = if (200..300).contains(&status) {
            format!("{status}")
        } else {
            format!("{status} {code}")
        };
        *by_code.entry(key).or_default() += 1;
        if (200..300).contains(&status) {
            continue;
        }
        if !(400..500).contains(&status) {
            failures.push(format!("{what}: status {status}: {res}"));
            continue;
        }
        if !documented.contains(&(status, code.clone())) {
            failures.push(format!("{what}: undocumented {status} {code:?}: {res}"));
        }
        let rid = res["request_id"].as_str().unwrap_or_default();
        let message = res["message"].as_str().unwrap_or_default();
        if !checks::is_request_id(rid) || message.is_empty() {
            failures.push(format!("{what}: no RequestId or Message: {res}"));
        }
    }
    eprintln!("bad-input matrix: {total} requests; answers by status and code:");
    for (k, n) in &by_code {
        eprintln!("  {n:5}  {k}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} answers break the rule:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The server is still healthy: it answers a good call, and logged no internal error.
    let res = sdk_batch(vec![request(
        "v3",
        shared(),
        &t,
        json!({"DBClusterId": t.cluster_id}),
    )]);
    ok_jobs(&res[0]);
    let log = shared().log();
    assert!(
        !log.contains("InternalError") && !log.contains("panicked"),
        "{log}"
    );
}
