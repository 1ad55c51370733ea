//! Backup policy model: defaults, ModifyBackupPolicy parameter validation, aliases, apply.

use jiff::civil::Weekday;
use polarbackup_model::policy::{
    BackupFrequency, BackupPolicy, BackupWindow, PolicyChange, PolicyFieldError, RetentionDays,
    RetentionOnClusterDeletion, WeekdaySet,
};
use serde::de::value::{Error as DeError, StrDeserializer, U8Deserializer};
use serde::Deserialize;

fn parse(pairs: &[(&str, &str)]) -> Result<PolicyChange, PolicyFieldError> {
    PolicyChange::parse(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
}

fn malformed(field: &'static str) -> Result<PolicyChange, PolicyFieldError> {
    Err(PolicyFieldError::Malformed { field })
}

fn unsupported(field: &'static str) -> Result<PolicyChange, PolicyFieldError> {
    Err(PolicyFieldError::Unsupported { field })
}

fn days(s: &str) -> WeekdaySet {
    WeekdaySet::parse(s).unwrap()
}

#[test]
fn default_policy_is_documented() {
    let p = BackupPolicy::default();
    assert_eq!(p.period, WeekdaySet::ALL);
    assert_eq!(p.window.to_string(), "02:00Z-03:00Z");
    assert_eq!(p.frequency, BackupFrequency::Normal);
    assert_eq!(p.retention_days.get(), 7);
    assert_eq!(p.on_cluster_deletion, RetentionOnClusterDeletion::None);
    let f = p.describe_fields();
    let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        get("PreferredBackupPeriod"),
        Some("Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday")
    );
    assert_eq!(get("DataLevel1BackupPeriod"), get("PreferredBackupPeriod"));
    assert_eq!(get("PreferredBackupTime"), Some("02:00Z-03:00Z"));
    assert_eq!(get("DataLevel1BackupTime"), Some("02:00Z-03:00Z"));
    assert_eq!(get("BackupFrequency"), Some("Normal"));
    assert_eq!(get("DataLevel1BackupFrequency"), Some("Normal"));
    assert_eq!(get("DataLevel1BackupRetentionPeriod"), Some("7"));
    assert_eq!(get("DataLevel2BackupRetentionPeriod"), Some("0"));
    assert_eq!(
        get("DataLevel2BackupAnotherRegionRetentionPeriod"),
        Some("0")
    );
    assert_eq!(get("BackupRetentionPolicyOnClusterDeletion"), Some("NONE"));
    assert_eq!(get("BackupPolicyLevel"), Some("Normal"));
}

#[test]
fn describe_then_modify_round_trip_is_a_no_op() {
    let mut p = BackupPolicy::default();
    p.apply(
        parse(&[
            ("PreferredBackupPeriod", "Monday,Friday"),
            ("PreferredBackupTime", "23:00Z-00:00Z"),
            ("DataLevel1BackupRetentionPeriod", "14"),
            ("BackupRetentionPolicyOnClusterDeletion", "LATEST"),
        ])
        .unwrap(),
    );
    let fields = p.describe_fields();
    let change = PolicyChange::parse(|k| {
        fields
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_str())
    })
    .unwrap();
    let before = p.clone();
    p.apply(change);
    assert_eq!(p, before);
}

#[test]
fn empty_request_changes_nothing() {
    let c = parse(&[("DBClusterId", "pc-abcdefghijklmno")]).unwrap();
    assert!(c.is_empty());
    let mut p = BackupPolicy::default();
    p.apply(c);
    assert_eq!(p, BackupPolicy::default());
}

#[test]
fn period_valid_forms() {
    for (input, canonical) in [
        ("Monday,Tuesday", "Monday,Tuesday"),
        ("Sunday,Monday", "Monday,Sunday"),
        ("Friday,Wednesday,Monday", "Monday,Wednesday,Friday"),
        (
            "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
            "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
        ),
    ] {
        for field in ["PreferredBackupPeriod", "DataLevel1BackupPeriod"] {
            let c = parse(&[(field, input)]).unwrap();
            assert_eq!(c.period.unwrap().to_string(), canonical, "{field}={input}");
        }
    }
    assert_eq!(days("Saturday,Sunday").count(), 2);
    assert!(days("Saturday,Sunday").contains(Weekday::Sunday));
    assert!(!days("Saturday,Sunday").contains(Weekday::Monday));
    assert_eq!(
        days("Wednesday,Monday").days().collect::<Vec<_>>(),
        vec![Weekday::Monday, Weekday::Wednesday]
    );
}

#[test]
fn period_invalid_forms() {
    for bad in [
        "",
        "Monday",
        "Monday,Monday",
        "Monday,Tuesday,Monday",
        "monday,tuesday",
        "MONDAY,TUESDAY",
        "Mon,Tue",
        "Monday, Tuesday",
        "Monday,Tuesday,",
        ",Monday,Tuesday",
        "Monday;Tuesday",
        "Monday,Funday",
    ] {
        for field in ["PreferredBackupPeriod", "DataLevel1BackupPeriod"] {
            assert_eq!(parse(&[(field, bad)]), malformed(field), "{field}={bad:?}");
        }
    }
}

#[test]
fn weekday_set_from_days_needs_two_distinct() {
    assert!(WeekdaySet::from_days([Weekday::Monday]).is_none());
    assert!(WeekdaySet::from_days([Weekday::Monday, Weekday::Monday]).is_none());
    assert_eq!(
        WeekdaySet::from_days([Weekday::Friday, Weekday::Monday]),
        Some(days("Monday,Friday"))
    );
}

#[test]
fn time_valid_forms_including_wraparound() {
    for (input, hour) in [
        ("00:00Z-01:00Z", 0),
        ("14:00Z-15:00Z", 14),
        ("22:00Z-23:00Z", 22),
        ("23:00Z-00:00Z", 23),
    ] {
        for field in ["PreferredBackupTime", "DataLevel1BackupTime"] {
            let w = parse(&[(field, input)]).unwrap().window.unwrap();
            assert_eq!(w.start_hour(), hour);
            assert_eq!(w.to_string(), input);
        }
    }
    assert_eq!(
        BackupWindow::starting_at(23).unwrap().to_string(),
        "23:00Z-00:00Z"
    );
    assert!(BackupWindow::starting_at(24).is_none());
}

#[test]
fn time_invalid_forms() {
    for bad in [
        "",
        "14:30Z-15:30Z",
        "14:00Z-16:00Z",
        "14:00Z-14:00Z",
        "15:00Z-14:00Z",
        "23:00Z-24:00Z",
        "24:00Z-01:00Z",
        "14:00-15:00",
        "14:00z-15:00z",
        "4:00Z-5:00Z",
        "14:00Z-15:00Z ",
        "14:00Z~15:00Z",
        "14:00:00Z-15:00:00Z",
        "1a:00Z-1b:00Z",
    ] {
        for field in ["PreferredBackupTime", "DataLevel1BackupTime"] {
            assert_eq!(parse(&[(field, bad)]), malformed(field), "{field}={bad:?}");
        }
    }
}

#[test]
fn frequency_valid_and_invalid() {
    for (input, f) in [
        ("Normal", BackupFrequency::Normal),
        ("2/24H", BackupFrequency::TwoPer24H),
        ("3/24H", BackupFrequency::ThreePer24H),
        ("4/24H", BackupFrequency::FourPer24H),
    ] {
        for field in ["BackupFrequency", "DataLevel1BackupFrequency"] {
            assert_eq!(parse(&[(field, input)]).unwrap().frequency, Some(f));
        }
        assert_eq!(f.as_str(), input);
    }
    for bad in [
        "", "normal", "NORMAL", "1/24H", "5/24H", "6/24H", "2/24h", "2/24H ",
    ] {
        for field in ["BackupFrequency", "DataLevel1BackupFrequency"] {
            assert_eq!(parse(&[(field, bad)]), malformed(field), "{field}={bad:?}");
        }
    }
}

#[test]
fn retention_boundaries() {
    let field = "DataLevel1BackupRetentionPeriod";
    for ok in 3..=14u8 {
        let s = ok.to_string();
        assert_eq!(
            parse(&[(field, &s)]).unwrap().retention_days.unwrap().get(),
            ok
        );
    }
    for bad in [
        "", "0", "1", "2", "15", "30", "300", "-1", "-7", "+7", " 7", "7 ", "7.0", "abc", "0x7",
        "255", "256", "1000",
    ] {
        assert_eq!(parse(&[(field, bad)]), malformed(field), "{bad:?}");
    }
    assert!(RetentionDays::new(2).is_none());
    assert!(RetentionDays::new(15).is_none());
    assert_eq!(
        RetentionDays::new(14).unwrap().duration().as_secs(),
        14 * 86_400
    );
}

#[test]
fn deletion_policy_valid_and_invalid() {
    let field = "BackupRetentionPolicyOnClusterDeletion";
    for (input, d) in [
        ("ALL", RetentionOnClusterDeletion::All),
        ("LATEST", RetentionOnClusterDeletion::Latest),
        ("NONE", RetentionOnClusterDeletion::None),
    ] {
        assert_eq!(
            parse(&[(field, input)]).unwrap().on_cluster_deletion,
            Some(d)
        );
        assert_eq!(d.as_str(), input);
    }
    for bad in ["", "all", "Latest", "None", "NONE ", "SOME"] {
        assert_eq!(parse(&[(field, bad)]), malformed(field), "{bad:?}");
    }
}

#[test]
fn aliases_set_the_same_field() {
    let a = parse(&[("DataLevel1BackupPeriod", "Monday,Tuesday")]).unwrap();
    let b = parse(&[("PreferredBackupPeriod", "Monday,Tuesday")]).unwrap();
    assert_eq!(a, b);
    let a = parse(&[("DataLevel1BackupTime", "05:00Z-06:00Z")]).unwrap();
    let b = parse(&[("PreferredBackupTime", "05:00Z-06:00Z")]).unwrap();
    assert_eq!(a, b);
    let a = parse(&[("DataLevel1BackupFrequency", "3/24H")]).unwrap();
    let b = parse(&[("BackupFrequency", "3/24H")]).unwrap();
    assert_eq!(a, b);

    // Both given, equal (day order does not matter).
    let c = parse(&[
        ("PreferredBackupPeriod", "Monday,Tuesday"),
        ("DataLevel1BackupPeriod", "Tuesday,Monday"),
        ("PreferredBackupTime", "05:00Z-06:00Z"),
        ("DataLevel1BackupTime", "05:00Z-06:00Z"),
        ("BackupFrequency", "Normal"),
        ("DataLevel1BackupFrequency", "Normal"),
    ])
    .unwrap();
    assert_eq!(c.period, Some(days("Monday,Tuesday")));

    // Setting one view changes both in Describe.
    let mut p = BackupPolicy::default();
    p.apply(parse(&[("DataLevel1BackupTime", "05:00Z-06:00Z")]).unwrap());
    let f = p.describe_fields();
    assert!(f.contains(&("PreferredBackupTime", "05:00Z-06:00Z".to_owned())));
    assert!(f.contains(&("DataLevel1BackupTime", "05:00Z-06:00Z".to_owned())));
}

#[test]
fn conflicting_aliases_blame_the_data_level1_field() {
    assert_eq!(
        parse(&[
            ("PreferredBackupPeriod", "Monday,Tuesday"),
            ("DataLevel1BackupPeriod", "Monday,Wednesday"),
        ]),
        malformed("DataLevel1BackupPeriod")
    );
    assert_eq!(
        parse(&[
            ("PreferredBackupTime", "05:00Z-06:00Z"),
            ("DataLevel1BackupTime", "06:00Z-07:00Z"),
        ]),
        malformed("DataLevel1BackupTime")
    );
    assert_eq!(
        parse(&[
            ("BackupFrequency", "Normal"),
            ("DataLevel1BackupFrequency", "2/24H"),
        ]),
        malformed("DataLevel1BackupFrequency")
    );
    // An invalid legacy value is reported under its own name, before any comparison.
    assert_eq!(
        parse(&[
            ("PreferredBackupTime", "05:30Z-06:30Z"),
            ("DataLevel1BackupTime", "05:00Z-06:00Z"),
        ]),
        malformed("PreferredBackupTime")
    );
}

#[test]
fn apply_is_a_partial_update() {
    let mut p = BackupPolicy::default();
    p.apply(parse(&[("DataLevel1BackupRetentionPeriod", "3")]).unwrap());
    assert_eq!(p.retention_days.get(), 3);
    assert_eq!(p.window, BackupPolicy::default().window);
    assert_eq!(p.period, WeekdaySet::ALL);
    p.apply(parse(&[("BackupRetentionPolicyOnClusterDeletion", "ALL")]).unwrap());
    assert_eq!(p.on_cluster_deletion, RetentionOnClusterDeletion::All);
    assert_eq!(p.retention_days.get(), 3);
}

#[test]
fn high_frequency_forces_all_seven_days() {
    let mut p = BackupPolicy::default();
    p.apply(parse(&[("PreferredBackupPeriod", "Monday,Wednesday")]).unwrap());
    assert_eq!(p.period, days("Monday,Wednesday"));

    p.apply(parse(&[("BackupFrequency", "2/24H")]).unwrap());
    assert_eq!(p.period, WeekdaySet::ALL);

    // A period in the same request, or later while high, is overridden.
    let mut q = BackupPolicy::default();
    q.apply(
        parse(&[
            ("DataLevel1BackupFrequency", "4/24H"),
            ("PreferredBackupPeriod", "Monday,Tuesday"),
        ])
        .unwrap(),
    );
    assert_eq!(q.period, WeekdaySet::ALL);
    q.apply(parse(&[("PreferredBackupPeriod", "Monday,Tuesday")]).unwrap());
    assert_eq!(q.period, WeekdaySet::ALL);

    // Back to Normal: the period can be narrowed again.
    q.apply(
        parse(&[
            ("BackupFrequency", "Normal"),
            ("PreferredBackupPeriod", "Monday,Tuesday"),
        ])
        .unwrap(),
    );
    assert_eq!(q.frequency, BackupFrequency::Normal);
    assert_eq!(q.period, days("Monday,Tuesday"));
}

#[test]
fn off_values_of_unbuilt_features_are_no_ops() {
    for pairs in [
        &[("DataLevel2BackupRetentionPeriod", "0")][..],
        &[("DataLevel2BackupAnotherRegionRetentionPeriod", "0")],
        &[("BackupPolicyLevel", "Normal")],
        &[("DataLevel2BackupPeriod", "")],
        &[("DataLevel2BackupAnotherRegionRegion", "")],
        &[("AdvancedDataPolicies", "")],
        &[("AdvancedDataPolicies", "[]")],
        &[("AdvancedDataPolicies", " [ ] ")],
    ] {
        assert!(parse(pairs).unwrap().is_empty(), "{pairs:?}");
    }
}

#[test]
fn unbuilt_features_are_refused_as_unsupported() {
    for (field, v) in [
        ("DataLevel2BackupRetentionPeriod", "30"),
        ("DataLevel2BackupRetentionPeriod", "7300"),
        ("DataLevel2BackupRetentionPeriod", "-1"),
        ("DataLevel2BackupAnotherRegionRetentionPeriod", "30"),
        ("DataLevel2BackupAnotherRegionRetentionPeriod", "-1"),
        ("DataLevel2BackupAnotherRegionRegion", "cn-hangzhou"),
        ("DataLevel2BackupPeriod", "Monday,Tuesday"),
        ("BackupPolicyLevel", "Advanced"),
        (
            "AdvancedDataPolicies",
            r#"[{"ActionType":"CREATE","SrcType":"level1","DestType":"level2"}]"#,
        ),
    ] {
        assert_eq!(parse(&[(field, v)]), unsupported(field), "{field}={v}");
    }
}

#[test]
fn unbuilt_features_with_malformed_values_use_their_documented_codes() {
    for (param, v, field) in [
        (
            "DataLevel2BackupRetentionPeriod",
            "29",
            "DataLevel2BackupRetentionPeriod",
        ),
        (
            "DataLevel2BackupRetentionPeriod",
            "7301",
            "DataLevel2BackupRetentionPeriod",
        ),
        (
            "DataLevel2BackupRetentionPeriod",
            "-2",
            "DataLevel2BackupRetentionPeriod",
        ),
        (
            "DataLevel2BackupRetentionPeriod",
            "",
            "DataLevel2BackupRetentionPeriod",
        ),
        (
            "DataLevel2BackupRetentionPeriod",
            "abc",
            "DataLevel2BackupRetentionPeriod",
        ),
        ("DataLevel2BackupPeriod", "Monday", "DataLevel2BackupPeriod"),
        (
            "DataLevel2BackupAnotherRegionRetentionPeriod",
            "5",
            "DataLevel2AnotherRegionBackupRetentionPeriod",
        ),
        ("BackupPolicyLevel", "advanced", "BackupPolicyLevel"),
    ] {
        assert_eq!(parse(&[(param, v)]), malformed(field), "{param}={v:?}");
    }
}

#[test]
fn supported_fields_are_checked_before_unsupported_ones() {
    assert_eq!(
        parse(&[
            ("BackupPolicyLevel", "Advanced"),
            ("DataLevel1BackupRetentionPeriod", "99"),
        ]),
        malformed("DataLevel1BackupRetentionPeriod")
    );
}

#[test]
fn error_codes() {
    assert_eq!(
        PolicyFieldError::Malformed {
            field: "PreferredBackupTime"
        }
        .code(),
        "InvalidPreferredBackupTime.Malformed"
    );
    let e = PolicyFieldError::Unsupported {
        field: "BackupPolicyLevel",
    };
    assert_eq!(e.code(), "IncorrectBackupPolicy");
    assert_eq!(e.field(), "BackupPolicyLevel");
    assert!(e.to_string().contains("BackupPolicyLevel"));
}

#[test]
fn serde_uses_api_strings_and_validates() {
    let d = |s: &'static str| WeekdaySet::deserialize(StrDeserializer::<DeError>::new(s));
    assert_eq!(d("Monday,Friday").unwrap(), days("Monday,Friday"));
    assert!(d("Monday").is_err());
    let w = |s: &'static str| BackupWindow::deserialize(StrDeserializer::<DeError>::new(s));
    assert_eq!(w("23:00Z-00:00Z").unwrap().start_hour(), 23);
    assert!(w("23:00Z-01:00Z").is_err());
    let f = |s: &'static str| BackupFrequency::deserialize(StrDeserializer::<DeError>::new(s));
    assert_eq!(f("4/24H").unwrap(), BackupFrequency::FourPer24H);
    assert!(f("FourPer24H").is_err());
    let r = |s: &'static str| {
        RetentionOnClusterDeletion::deserialize(StrDeserializer::<DeError>::new(s))
    };
    assert_eq!(r("LATEST").unwrap(), RetentionOnClusterDeletion::Latest);
    let n = |v: u8| RetentionDays::deserialize(U8Deserializer::<DeError>::new(v));
    assert_eq!(n(14).unwrap().get(), 14);
    assert!(n(15).is_err());
}
