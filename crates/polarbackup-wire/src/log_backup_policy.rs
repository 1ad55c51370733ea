//! DescribeLogBackupPolicy and ModifyLogBackupPolicy (API.md §3.8, §3.9).

use crate::{ApiError, Params};
use polarbackup_model::policy::level2_retention;
use polarbackup_model::{LogBackupPolicy, LogRetention};
use serde_json::{Map, Value};

pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// A validated ModifyLogBackupPolicy; `retention` is `None` when the call changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyRequest {
    pub cluster_id: String,
    pub retention: Option<LogRetention>,
}

impl ModifyRequest {
    /// `LogBackupRetentionPeriod` first, then the cross-region and advanced fields, which are
    /// refused like ModifyBackupPolicy's: their "off" values (what DescribeLogBackupPolicy
    /// shows) pass, so a Describe→Modify round trip works; a value in the documented domain
    /// that would turn the feature on is `IncorrectBackupPolicy`; one outside it is
    /// `Invalid<Field>.Malformed`.
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let retention = p
            .get("LogBackupRetentionPeriod")
            .map(|v| {
                LogRetention::parse(v).map_err(|_| ApiError::Malformed("LogBackupRetentionPeriod"))
            })
            .transpose()?;
        check_unsupported(p)?;
        Ok(Self {
            cluster_id,
            retention,
        })
    }
}

fn check_unsupported(p: &Params) -> Result<(), ApiError> {
    if p.get("LogBackupAnotherRegionRegion")
        .is_some_and(|v| !v.is_empty())
    {
        return Err(ApiError::IncorrectBackupPolicy(
            "LogBackupAnotherRegionRegion",
        ));
    }
    if let Some(v) = p.get("LogBackupAnotherRegionRetentionPeriod") {
        // `LogBackupAnotherRegionRetentionPeriod` has the backup policy's cross-region domain.
        match level2_retention(v) {
            Some(0) => {}
            Some(_) => {
                return Err(ApiError::IncorrectBackupPolicy(
                    "LogBackupAnotherRegionRetentionPeriod",
                ))
            }
            None => return Err(ApiError::Malformed("LogBackupAnotherRegionRetentionPeriod")),
        }
    }
    if let Some(v) = p.get("AdvancedLogPolicies") {
        let t = v.trim();
        let empty_list = t
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|inner| inner.trim().is_empty());
        if !(t.is_empty() || empty_list) {
            return Err(ApiError::IncorrectBackupPolicy("AdvancedLogPolicies"));
        }
    }
    Ok(())
}

/// The documented mixed typing: `EnableBackupLog` and `LogBackupRetentionPeriod` are JSON
/// integers, the cross-region fields strings (off: no region, `"0"`). No `AdvancedLogPolicies`:
/// advanced policies do not exist here, as DescribeBackupPolicy sends no
/// `AdvancedDataPolicies`.
pub fn describe(policy: &LogBackupPolicy) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("EnableBackupLog".into(), Value::from(1));
    body.insert(
        "LogBackupRetentionPeriod".into(),
        Value::from(policy.retention.as_days()),
    );
    body.insert(
        "LogBackupAnotherRegionRegion".into(),
        Value::String(String::new()),
    );
    body.insert(
        "LogBackupAnotherRegionRetentionPeriod".into(),
        Value::String("0".into()),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(q: &str) -> Result<ModifyRequest, ApiError> {
        ModifyRequest::parse(&Params::decode(q, None))
    }

    #[test]
    fn describe_mixes_integers_and_strings_as_documented() {
        let body = describe(&LogBackupPolicy::default());
        assert_eq!(
            Value::Object(body),
            json!({"EnableBackupLog": 1, "LogBackupRetentionPeriod": 7,
                   "LogBackupAnotherRegionRegion": "", "LogBackupAnotherRegionRetentionPeriod": "0"})
        );
        let forever = describe(&LogBackupPolicy {
            retention: LogRetention::Forever,
        });
        assert_eq!(forever["LogBackupRetentionPeriod"], json!(-1));
    }

    #[test]
    fn retention_is_validated() {
        assert_eq!(
            parse("LogBackupRetentionPeriod=7"),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        let r = parse("DBClusterId=pc-a&LogBackupRetentionPeriod=3").expect("ok");
        assert_eq!(r.retention, Some(LogRetention::Days(3)));
        let r = parse("DBClusterId=pc-a&LogBackupRetentionPeriod=-1").expect("ok");
        assert_eq!(r.retention, Some(LogRetention::Forever));
        assert_eq!(parse("DBClusterId=pc-a").expect("ok").retention, None);
        for bad in ["", "2", "7301", "0", "07", "+7", "seven", "-2"] {
            assert_eq!(
                parse(&format!("DBClusterId=pc-a&LogBackupRetentionPeriod={bad}")),
                Err(ApiError::Malformed("LogBackupRetentionPeriod")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cross_region_and_advanced_fields_accept_only_off() {
        let ok = [
            "LogBackupAnotherRegionRegion=",
            "LogBackupAnotherRegionRetentionPeriod=0",
            "AdvancedLogPolicies=",
            "AdvancedLogPolicies=%5B%20%5D",
        ];
        for q in ok {
            assert!(parse(&format!("DBClusterId=pc-a&{q}")).is_ok(), "{q}");
        }
        let refused = [
            (
                "LogBackupAnotherRegionRegion=cn-beijing",
                ApiError::IncorrectBackupPolicy("LogBackupAnotherRegionRegion"),
            ),
            (
                "LogBackupAnotherRegionRetentionPeriod=30",
                ApiError::IncorrectBackupPolicy("LogBackupAnotherRegionRetentionPeriod"),
            ),
            (
                "LogBackupAnotherRegionRetentionPeriod=-1",
                ApiError::IncorrectBackupPolicy("LogBackupAnotherRegionRetentionPeriod"),
            ),
            (
                "LogBackupAnotherRegionRetentionPeriod=29",
                ApiError::Malformed("LogBackupAnotherRegionRetentionPeriod"),
            ),
            (
                "LogBackupAnotherRegionRetentionPeriod=",
                ApiError::Malformed("LogBackupAnotherRegionRetentionPeriod"),
            ),
            (
                "AdvancedLogPolicies=%5B%7B%22ActionType%22%3A%22CREATE%22%7D%5D",
                ApiError::IncorrectBackupPolicy("AdvancedLogPolicies"),
            ),
        ];
        for (q, err) in refused {
            assert_eq!(parse(&format!("DBClusterId=pc-a&{q}")), Err(err), "{q}");
        }
        // The retention is checked before the unsupported fields.
        assert_eq!(
            parse("DBClusterId=pc-a&LogBackupRetentionPeriod=1&LogBackupAnotherRegionRegion=x"),
            Err(ApiError::Malformed("LogBackupRetentionPeriod"))
        );
    }
}
