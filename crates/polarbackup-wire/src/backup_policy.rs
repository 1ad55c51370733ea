//! DescribeBackupPolicy and ModifyBackupPolicy (API.md §3.5, §3.6).

use crate::{ApiError, Params};
use jiff::Timestamp;
use polarbackup_model::policy::{
    preferred_next_backup_time, BackupPolicy, PolicyChange, PolicyFieldError,
};
use serde_json::{Map, Value};

pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// The requested change; every field is validated with its own `Invalid<Field>.Malformed`.
pub fn parse_change(p: &Params) -> Result<(String, PolicyChange), ApiError> {
    let cluster_id = p.required("DBClusterId")?.to_owned();
    let change = PolicyChange::parse(|k| p.get(k)).map_err(|e| match e {
        PolicyFieldError::Malformed { field } => ApiError::Malformed(field),
        PolicyFieldError::Unsupported { field } => ApiError::IncorrectBackupPolicy(field),
    })?;
    Ok((cluster_id, change))
}

/// Every classic field as a string, plus the computed next backup time.
pub fn describe(policy: &BackupPolicy, now: Timestamp) -> Map<String, Value> {
    let mut body = Map::new();
    for (k, v) in policy.describe_fields() {
        body.insert(k.into(), Value::String(v));
    }
    body.insert(
        "PreferredNextBackupTime".into(),
        Value::String(preferred_next_backup_time(policy, now)),
    );
    body.insert(
        "AdvancedPolicyOption".into(),
        Value::String("notSupport".into()),
    );
    body.insert("EnableImmutableBackup".into(), Value::Bool(false));
    body.insert(
        "EnableCrossRegionImmutableBackup".into(),
        Value::Bool(false),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_has_every_classic_field_as_a_string() {
        let now: Timestamp = "2026-01-05T10:00:00Z".parse().expect("t");
        let body = describe(&BackupPolicy::default(), now);
        for k in [
            "PreferredBackupPeriod",
            "PreferredBackupTime",
            "BackupFrequency",
            "DataLevel1BackupRetentionPeriod",
            "BackupRetentionPolicyOnClusterDeletion",
            "PreferredNextBackupTime",
        ] {
            assert!(body[k].is_string(), "{k}");
        }
        assert_eq!(body["PreferredNextBackupTime"], "2026-01-06T02:00Z");
        assert_eq!(body["EnableImmutableBackup"], Value::Bool(false));
    }

    #[test]
    fn changes_are_validated_per_field() {
        let p = |q: &str| parse_change(&Params::decode(q, None));
        assert_eq!(
            p("PreferredBackupTime=02:00Z-03:00Z").err(),
            Some(ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(
            p("DBClusterId=pc-a&PreferredBackupTime=02:30Z-03:30Z").err(),
            Some(ApiError::Malformed("PreferredBackupTime"))
        );
        assert_eq!(
            p("DBClusterId=pc-a&PreferredBackupPeriod=Monday").err(),
            Some(ApiError::Malformed("PreferredBackupPeriod"))
        );
        assert_eq!(
            p("DBClusterId=pc-a&DataLevel1BackupRetentionPeriod=2").err(),
            Some(ApiError::Malformed("DataLevel1BackupRetentionPeriod"))
        );
        assert!(matches!(
            p("DBClusterId=pc-a&DataLevel2BackupRetentionPeriod=30").err(),
            Some(ApiError::IncorrectBackupPolicy(_))
        ));
        assert!(p("DBClusterId=pc-a&BackupFrequency=2/24H").is_ok());
    }
}
