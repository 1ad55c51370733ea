//! Policy validation, one refusal at a time: each test feeds one defect and expects its own `PolicyError`.

use polarbackup_auth::ram::{Limits, Policy, PolicyError, Scope};

fn err(json: &str) -> PolicyError {
    Policy::parse(json).expect_err(json)
}

/// A document with one statement whose members are `members` (a JSON fragment).
fn one(members: &str) -> String {
    format!(r#"{{"Version":"1","Statement":[{{{members}}}]}}"#)
}

const OK: &str = r#""Effect":"Allow","Action":"polardb:*","Resource":"*""#;

fn with_condition(cond: &str) -> String {
    one(&format!(r#"{OK},"Condition":{cond}"#))
}

fn el(s: &str) -> String {
    s.to_owned()
}

#[test]
fn accepts_the_documented_forms() {
    // String or array, Sid ignored, Condition optional, NotAction/NotResource.
    for doc in [
        one(OK),
        one(
            r#""Effect":"Deny","Action":["polardb:CreateBackup","polardb:DeleteBackup"],"Resource":["acs:polardb:*:*:dbcluster/pc-1","acs:polardb:*:*:dbcluster/pc-2"]"#,
        ),
        one(&format!(r#""Sid":"s1",{OK}"#)),
        one(r#""Effect":"Allow","NotAction":"polardb:Delete*","NotResource":"acs:ram::1:role/x""#),
        with_condition(r#"{}"#),
        with_condition(
            r#"{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"Bool":{"acs:SecureTransport":"true"}}"#,
        ),
    ] {
        let p = Policy::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(p.statements().len(), 1);
    }
    let p = Policy::parse(&one(OK)).unwrap();
    assert!(matches!(p.statements()[0].action(), Scope::Listed(a) if a[0].as_str() == "polardb:*"));
}

#[test]
fn too_large() {
    let pad = " ".repeat(6144 - one(OK).len());
    let at_limit = format!("{}{pad}", one(OK));
    assert_eq!(at_limit.len(), 6144);
    assert!(Policy::parse(&at_limit).is_ok());
    let over = format!("{at_limit} ");
    assert_eq!(
        err(&over),
        PolicyError::TooLarge {
            size: 6145,
            limit: 6144
        }
    );
    // The limit is configurable (e.g. a stricter one for STS session policies).
    let strict = Limits {
        max_document_bytes: 64,
        ..Limits::default()
    };
    assert!(matches!(
        Policy::parse_with(&one(OK), &strict),
        Err(PolicyError::TooLarge { limit: 64, .. })
    ));
}

#[test]
fn invalid_json() {
    for bad in [
        "",
        "{",
        r#"{"Version":"1",}"#,
        "{'Version':'1'}",
        r#"{"Version":"1"} x"#,
    ] {
        assert!(matches!(err(bad), PolicyError::InvalidJson(_)), "{bad:?}");
    }
}

#[test]
fn wrong_types() {
    assert_eq!(
        err("[]"),
        PolicyError::WrongType {
            element: el("The policy document"),
            expected: "an object",
            found: "an array"
        }
    );
    assert!(
        matches!(err(r#"{"Version":"1","Statement":{}}"#), PolicyError::WrongType { element, .. } if element == "Statement")
    );
    assert!(
        matches!(err(r#"{"Version":"1","Statement":["x"]}"#), PolicyError::WrongType { element, .. } if element == "Statement[0]")
    );
    assert!(
        matches!(err(&one(r#""Effect":true,"Action":"a:b","Resource":"*""#)), PolicyError::WrongType { element, .. } if element == "Statement[0].Effect")
    );
    assert!(
        matches!(err(&one(r#""Effect":"Allow","Action":7,"Resource":"*""#)), PolicyError::WrongType { element, found: "a number", .. } if element == "Statement[0].Action")
    );
    assert!(
        matches!(err(&one(r#""Effect":"Allow","Action":"a:b","Resource":[null]"#)), PolicyError::WrongType { element, found: "null", .. } if element == "Statement[0].Resource")
    );
    assert!(
        matches!(err(&with_condition(r#""x""#)), PolicyError::WrongType { element, .. } if element == "Statement[0].Condition")
    );
    assert!(
        matches!(err(&with_condition(r#"{"StringEquals":["a"]}"#)), PolicyError::WrongType { element, .. } if element == "Statement[0].Condition.StringEquals")
    );
    assert!(
        matches!(err(&one(&format!(r#""Sid":1,{OK}"#))), PolicyError::WrongType { element, .. } if element == "Statement[0].Sid")
    );
}

#[test]
fn duplicate_keys() {
    // serde_json would keep the last "Effect" and read this as an Allow.
    assert_eq!(
        err(&one(
            r#""Effect":"Deny","Action":"*","Resource":"*","Effect":"Allow""#
        )),
        PolicyError::DuplicateKey {
            element: el("Statement[0]"),
            key: el("Effect")
        }
    );
    assert!(
        matches!(err(r#"{"Version":"1","Version":"1","Statement":[]}"#), PolicyError::DuplicateKey { key, .. } if key == "Version")
    );
    assert!(matches!(
        err(&with_condition(r#"{"Bool":{"acs:SecureTransport":"true"},"Bool":{"acs:SecureTransport":"false"}}"#)),
        PolicyError::DuplicateKey { element, key } if element == "Statement[0].Condition" && key == "Bool"
    ));
}

#[test]
fn unknown_elements() {
    assert_eq!(
        err(r#"{"Version":"1","Id":"x","Statement":[]}"#),
        PolicyError::UnknownElement { element: el("Id") }
    );
    // Element names are case-sensitive.
    assert_eq!(
        err(&one(r#""Effect":"Allow","action":"a:b","Resource":"*""#)),
        PolicyError::UnknownElement {
            element: el("Statement[0].action")
        }
    );
}

#[test]
fn missing_version_statement_effect() {
    assert_eq!(
        err(r#"{"Statement":[]}"#),
        PolicyError::MissingElement {
            element: el("Version")
        }
    );
    assert_eq!(
        err(r#"{"Version":"1"}"#),
        PolicyError::MissingElement {
            element: el("Statement")
        }
    );
    assert_eq!(
        err(&one(r#""Action":"a:b","Resource":"*""#)),
        PolicyError::MissingElement {
            element: el("Statement[0].Effect")
        }
    );
}

#[test]
fn invalid_version() {
    let v = |v: &str| err(&format!(r#"{{"Version":{v},"Statement":[{{{OK}}}]}}"#));
    assert_eq!(
        v(r#""2""#),
        PolicyError::InvalidVersion { found: el("\"2\"") }
    );
    assert_eq!(
        v(r#""2012-10-17""#),
        PolicyError::InvalidVersion {
            found: el("\"2012-10-17\"")
        }
    );
    assert_eq!(
        v("1"),
        PolicyError::InvalidVersion {
            found: el("a number")
        }
    );
}

#[test]
fn empty_statement_list() {
    assert_eq!(
        err(r#"{"Version":"1","Statement":[]}"#),
        PolicyError::EmptyList {
            element: el("Statement")
        }
    );
}

#[test]
fn too_many_statements() {
    let stmts = vec![format!("{{{OK}}}"); 101].join(",");
    assert_eq!(
        err(&format!(r#"{{"Version":"1","Statement":[{stmts}]}}"#)),
        PolicyError::TooManyStatements {
            count: 101,
            limit: 100
        }
    );
}

#[test]
fn unknown_effect() {
    for e in ["allow", "Permit", "DENY"] {
        assert_eq!(
            err(&one(&format!(
                r#""Effect":"{e}","Action":"a:b","Resource":"*""#
            ))),
            PolicyError::UnknownEffect {
                element: el("Statement[0]"),
                found: e.to_owned()
            }
        );
    }
}

#[test]
fn missing_action() {
    assert_eq!(
        err(&one(r#""Effect":"Allow","Resource":"*""#)),
        PolicyError::MissingAction { statement: 0 }
    );
}

#[test]
fn action_and_not_action() {
    assert_eq!(
        err(&one(
            r#""Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*""#
        )),
        PolicyError::ActionAndNotAction { statement: 0 }
    );
}

#[test]
fn missing_resource() {
    let second =
        format!(r#"{{"Version":"1","Statement":[{{{OK}}},{{"Effect":"Allow","Action":"a:b"}}]}}"#);
    assert_eq!(err(&second), PolicyError::MissingResource { statement: 1 });
}

#[test]
fn resource_and_not_resource() {
    assert_eq!(
        err(&one(
            r#""Effect":"Allow","Action":"a:b","Resource":"*","NotResource":"*""#
        )),
        PolicyError::ResourceAndNotResource { statement: 0 }
    );
}

#[test]
fn not_resource_can_be_refused() {
    let strict = Limits {
        allow_not_resource: false,
        ..Limits::CUSTOM_POLICY
    };
    assert_eq!(
        Policy::parse_with(
            &one(r#""Effect":"Allow","Action":"a:b","NotResource":"*""#),
            &strict
        ),
        Err(PolicyError::NotResourceRefused { statement: 0 })
    );
}

#[test]
fn principal_not_allowed() {
    assert_eq!(
        err(&one(&format!(
            r#"{OK},"Principal":{{"RAM":["acs:ram::1:root"]}}"#
        ))),
        PolicyError::PrincipalNotAllowed { statement: 0 }
    );
}

#[test]
fn empty_strings() {
    let cases = [
        (
            one(r#""Effect":"Allow","Action":"","Resource":"*""#),
            "Statement[0].Action",
        ),
        (
            one(r#""Effect":"Allow","Action":["a:b",""],"Resource":"*""#),
            "Statement[0].Action",
        ),
        (
            one(r#""Effect":"Allow","Action":"a:b","Resource":"""#),
            "Statement[0].Resource",
        ),
        (
            with_condition(r#"{"StringEquals":{"acs:UserAgent":""}}"#),
            "Statement[0].Condition.StringEquals.acs:UserAgent",
        ),
        (
            with_condition(r#"{"StringEquals":{"":"x"}}"#),
            "Statement[0].Condition.StringEquals (a condition key)",
        ),
    ];
    for (doc, element) in cases {
        assert_eq!(
            err(&doc),
            PolicyError::EmptyString {
                element: el(element)
            },
            "{doc}"
        );
    }
}

#[test]
fn empty_lists() {
    let cases = [
        (
            one(r#""Effect":"Allow","Action":[],"Resource":"*""#),
            "Statement[0].Action",
        ),
        (
            one(r#""Effect":"Allow","Action":"a:b","NotResource":[]"#),
            "Statement[0].NotResource",
        ),
        (
            with_condition(r#"{"StringEquals":{}}"#),
            "Statement[0].Condition.StringEquals",
        ),
        (
            with_condition(r#"{"IpAddress":{"acs:SourceIp":[]}}"#),
            "Statement[0].Condition.IpAddress.acs:SourceIp",
        ),
    ];
    for (doc, element) in cases {
        assert_eq!(
            err(&doc),
            PolicyError::EmptyList {
                element: el(element)
            },
            "{doc}"
        );
    }
}

#[test]
fn invalid_actions() {
    for a in [
        "polardb",
        "polardb:",
        ":DescribeBackups",
        "polardb: DescribeBackups",
    ] {
        assert_eq!(
            err(&one(&format!(
                r#""Effect":"Allow","Action":"{a}","Resource":"*""#
            ))),
            PolicyError::InvalidAction {
                element: el("Statement[0].Action"),
                value: a.to_owned()
            }
        );
    }
}

#[test]
fn invalid_resources() {
    for r in [
        "acs:polardb:*:*",
        "arn:polardb:*:*:*",
        "acs::*:*:x",
        "acs:polardb:*:*:",
        "pc-abc",
        "acs:polardb:*:*:a b",
    ] {
        assert_eq!(
            err(&one(&format!(
                r#""Effect":"Allow","Action":"a:b","Resource":"{r}""#
            ))),
            PolicyError::InvalidResource {
                element: el("Statement[0].Resource"),
                value: r.to_owned()
            }
        );
    }
}

#[test]
fn unsupported_operators() {
    for op in [
        "StringEqualsIfExists",
        "IpAddressIfExists",
        "Null",
        "ForAnyValue:StringEquals",
        "ForAllValues:StringLike",
        "ArnEquals",
        "BinaryEquals",
        "stringequals",
        "BoolIfExists",
    ] {
        let e = err(&with_condition(&format!(
            r#"{{"{op}":{{"acs:UserAgent":"x"}}}}"#
        )));
        assert_eq!(
            e,
            PolicyError::UnsupportedOperator {
                element: el("Statement[0].Condition"),
                operator: op.to_owned()
            }
        );
        assert!(e.to_string().contains(&format!("'{op}' is not supported")));
    }
}

#[test]
fn invalid_condition_keys() {
    for key in ["SourceIp", "acs:", ":SourceIp", "acs: SourceIp"] {
        assert_eq!(
            err(&with_condition(&format!(
                r#"{{"StringEquals":{{"{key}":"x"}}}}"#
            ))),
            PolicyError::InvalidConditionKey {
                element: el("Statement[0].Condition.StringEquals"),
                key: key.to_owned()
            }
        );
    }
}

#[test]
fn only_the_condition_keys_the_server_fills_are_accepted() {
    let supported =
        "acs:AccessId, acs:CurrentTime, acs:SecureTransport, acs:SourceIp, acs:UserAgent";
    for key in [
        "acs:SourceAddress",
        "acs:MFAPresent",
        "acs:SourceVpc",
        "ram:ServiceName",
        "polardb:N",
    ] {
        let e = err(&with_condition(&format!(
            r#"{{"StringEquals":{{"{key}":"x"}}}}"#
        )));
        assert_eq!(
            e,
            PolicyError::UnsupportedConditionKey {
                element: el("Statement[0].Condition.StringEquals"),
                key: key.to_owned(),
                supported: supported.to_owned(),
            }
        );
        assert!(e.to_string().contains(supported), "{e}");
    }
    // Every supported key, in any ASCII case (lookups ignore it).
    for (op, key, value) in [
        ("StringEquals", "acs:AccessId", "LTAI1"),
        ("DateLessThan", "acs:CurrentTime", "2030-01-01T00:00:00Z"),
        ("Bool", "acs:SecureTransport", "false"),
        ("IpAddress", "ACS:SOURCEIP", "10.0.0.0/8"),
        ("StringLike", "acs:useragent", "sdk*"),
    ] {
        let doc = with_condition(&format!(r#"{{"{op}":{{"{key}":"{value}"}}}}"#));
        Policy::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
    }
    // Alibaba's system documents keep their other services' keys.
    let lenient = Limits {
        supported_keys_only: false,
        ..Limits::CUSTOM_POLICY
    };
    assert_eq!(lenient, Limits::SYSTEM_POLICY);
    assert!(Policy::parse_with(
        &with_condition(r#"{"StringEquals":{"ram:ServiceName":"polardb.aliyuncs.com"}}"#),
        &lenient
    )
    .is_ok());
}

#[test]
fn condition_values_must_be_strings() {
    for (value, found) in [
        ("true", "a boolean"),
        ("7", "a number"),
        ("[\"a\",1]", "a number"),
        ("null", "null"),
        ("{}", "an object"),
    ] {
        assert_eq!(
            err(&with_condition(&format!(
                r#"{{"Bool":{{"acs:SecureTransport":{value}}}}}"#
            ))),
            PolicyError::ConditionValueNotString {
                element: el("Statement[0].Condition.Bool.acs:SecureTransport"),
                found
            },
            "{value}"
        );
    }
}

#[test]
fn condition_values_must_fit_the_operator() {
    let cases = [
        ("NumericLessThan", "polardb:N", "ten"),
        ("NumericEquals", "polardb:N", "1e3"),
        ("DateLessThan", "acs:CurrentTime", "tomorrow"),
        ("DateGreaterThan", "acs:CurrentTime", "2024-01-01T00:00:00"),
        ("Bool", "acs:SecureTransport", "yes"),
        ("IpAddress", "acs:SourceIp", "10.0.0.0/33"),
        ("NotIpAddress", "acs:SourceIp", "localhost"),
    ];
    // Any key, so the numeric operators can be tried at all.
    let any_key = Limits {
        supported_keys_only: false,
        ..Limits::CUSTOM_POLICY
    };
    for (op, key, value) in cases {
        let doc = with_condition(&format!(r#"{{"{op}":{{"{key}":["{value}"]}}}}"#));
        let e = Policy::parse_with(&doc, &any_key).expect_err(&doc);
        assert!(
            matches!(&e, PolicyError::InvalidConditionValue { operator, value: v, element, .. }
                if *operator == op && v == value && *element == format!("Statement[0].Condition.{op}.{key}")),
            "{op} {value}: {e:?}"
        );
    }
}

#[test]
fn checks_run_in_document_order() {
    // Statement 0 is fine; statement 1 has two defects; the first one found is reported.
    let doc =
        format!(r#"{{"Version":"1","Statement":[{{{OK}}},{{"Effect":"Maybe","Resource":"*"}}]}}"#);
    assert!(
        matches!(err(&doc), PolicyError::UnknownEffect { element, .. } if element == "Statement[1]")
    );
}

#[test]
fn messages_are_specific() {
    let msg = err(&one(r#""Effect":"Allow","Resource":"*""#)).to_string();
    assert_eq!(msg, "Statement[0] needs an Action or a NotAction.");
    let msg = err(r#"{"Version":"2","Statement":[]}"#).to_string();
    assert_eq!(msg, "Version must be \"1\", found \"2\".");
}

#[test]
fn has_conditions_tells_whether_any_statement_reads_the_context() {
    assert!(!Policy::parse(&one(OK)).unwrap().has_conditions());
    // An empty Condition block has no condition to read anything with.
    assert!(!Policy::parse(&with_condition("{}"))
        .unwrap()
        .has_conditions());
    let second_has_one = format!(
        r#"{{"Version":"1","Statement":[{{{OK}}},{{{OK},"Condition":{{"Bool":{{"acs:SecureTransport":"true"}}}}}}]}}"#
    );
    assert!(Policy::parse(&second_has_one).unwrap().has_conditions());
}
