//! DescribeDBClusterAttribute: one cluster's facts as a flat object (API.md §4.3); `DBNodes`
//! and `Tags` are bare arrays here, unlike the list view.

use crate::describe_db_clusters::common_fields;
use crate::{ApiError, Params};
use polarbackup_model::{Cluster, ClusterStatus};
use serde_json::{json, Map, Value};

/// Unknown, malformed, another account's, or deleted: answered alike, as by every other action.
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// The cluster asked about (`DescribeType` is accepted and changes nothing: there are no AI
/// nodes).
pub fn parse(p: &Params) -> Result<String, ApiError> {
    Ok(p.required("DBClusterId")?.to_owned())
}

/// `chain_size`: `DataLevel1BackupChainSize`, the bytes the cluster's available sets occupy in
/// the repository.
pub fn response(c: &Cluster, shown: ClusterStatus, chain_size: u64) -> Map<String, Value> {
    let mut o = common_fields(c, shown, "CreationTime");
    o.insert("DataLevel1BackupChainSize".into(), json!(chain_size));
    o.insert("DBNodes".into(), json!([]));
    o.insert("Tags".into(), json!([]));
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe_db_clusters::tests::cluster;

    #[test]
    fn flat_shape_with_bare_arrays() {
        assert_eq!(
            parse(&Params::decode("DescribeType=AI", None)),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(
            parse(&Params::decode("DBClusterId=pc-x", None)).as_deref(),
            Ok("pc-x")
        );
        let c = cluster("pc-aaaaaaaaaaaaaaa", None);
        let body = Value::Object(response(&c, ClusterStatus::Deleting, 4096));
        assert_eq!(
            body,
            json!({"DBClusterId":"pc-aaaaaaaaaaaaaaa","DBClusterDescription":"pc-aaaaaaaaaaaaaaa",
                "DBClusterStatus":"Deleting","DBType":"PostgreSQL","Engine":"POLARDB",
                "RegionId":"cn-hangzhou","PayType":"Postpaid","LockMode":"Unlock",
                "Expired":"false","CreationTime":"2020-08-08T07:24:01Z","DeletionLock":0,
                "DataLevel1BackupChainSize":4096,"DBNodes":[],"Tags":[]})
        );
        assert!(!body.to_string().contains("secret"));
    }
}
