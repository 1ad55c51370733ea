//! DeleteDBCluster: request validation (API.md §4.4). The call records the deletion; the
//! server's workers carry it out.

use crate::{ApiError, Params};
use polarbackup_model::policy::RetentionOnClusterDeletion;

/// Unknown, another account's, or deleted: answered alike, as by every other action.
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

const RETENTION: &str = "BackupRetentionPolicyOnClusterDeletion";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    /// `None`: the cluster's backup policy decides (`NONE` unless ModifyBackupPolicy changed
    /// it).
    pub retention: Option<RetentionOnClusterDeletion>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        // Case-sensitive, as documented; an empty value is not a choice.
        let retention = match p.get(RETENTION) {
            None => None,
            Some(v) => {
                Some(RetentionOnClusterDeletion::parse(v).ok_or(ApiError::Malformed(RETENTION))?)
            }
        };
        Ok(Self {
            cluster_id,
            retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn retention_is_optional_and_case_sensitive() {
        assert_eq!(
            parse("BackupRetentionPolicyOnClusterDeletion=ALL"),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        let r = parse("DBClusterId=pc-a").expect("ok");
        assert_eq!((r.cluster_id.as_str(), r.retention), ("pc-a", None));
        for (v, want) in [
            ("ALL", RetentionOnClusterDeletion::All),
            ("LATEST", RetentionOnClusterDeletion::Latest),
            ("NONE", RetentionOnClusterDeletion::None),
        ] {
            let r = parse(&format!("DBClusterId=pc-a&{RETENTION}={v}")).expect(v);
            assert_eq!(r.retention, Some(want));
        }
        for bad in ["all", "Latest", "", "SOME", "NONE%20"] {
            assert_eq!(
                parse(&format!("DBClusterId=pc-a&{RETENTION}={bad}")),
                Err(ApiError::Malformed(RETENTION)),
                "{bad:?}"
            );
        }
        let (status, code, _) = ApiError::Malformed(RETENTION).describe();
        assert_eq!(
            (status, code.as_str()),
            (
                400,
                "InvalidBackupRetentionPolicyOnClusterDeletion.Malformed"
            )
        );
    }
}
