//! DescribeDetachedBackups: the retained sets of a released cluster (API.md §3.10). Its
//! parameters and their validation are DescribeBackups'.

use crate::describe_backups::{common_fields, page};
use crate::ApiError;
use polarbackup_model::BackupSet;
use serde_json::{Map, Value};

pub use crate::describe_backups::{BackupSelector, Request};

/// A live cluster, one released with `NONE`, or one whose retained sets are all gone.
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// Like DescribeBackups' item without `Comment` (and the `ExpectExpire*` and
/// `TableRestoreMetaStatus` fields DescribeBackups does not send either), plus `StoreStatus`:
/// `Enabled`, since DeleteBackup takes every retained set.
fn backup(s: &BackupSet) -> Value {
    let mut o = common_fields(s);
    o.insert("StoreStatus".into(), Value::String("Enabled".into()));
    Value::Object(o)
}

/// No `TotalLevel2BackupSize` here.
pub fn response(sets: &[BackupSet], total: u64, page_number: u32) -> Map<String, Value> {
    page(sets.iter().map(backup).collect(), total, page_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use polarbackup_model::{BackupJobId, BackupSetStatus, DbClusterId, JobMode};
    use serde_json::json;

    #[test]
    fn items_carry_store_status_and_no_comment() {
        let set = BackupSet {
            id: BackupJobId(111),
            cluster_id: DbClusterId::parse("pc-abcdefghij12345").expect("id"),
            mode: JobMode::Automated,
            status: BackupSetStatus::Success,
            start_time: Timestamp::from_second(1_589_253_900).expect("t"),
            end_time: Timestamp::from_second(1_589_253_960).expect("t"),
            consistent_time: Some(Timestamp::from_second(1_589_253_947).expect("t")),
            size: 42,
            stored_size: 7,
            comment: Some("final".into()),
            wal: None,
            corrupt: None,
            parent: None,
        };
        assert_eq!(
            Value::Object(response(&[set], 1, 1)),
            json!({"TotalRecordCount":"1","PageNumber":"1","PageRecordCount":"1","Items":{"Backup":[{
                "BackupId":"111","DBClusterId":"pc-abcdefghij12345","BackupStatus":"Success",
                "BackupMode":"Automated","BackupMethod":"Snapshot","BackupType":"FullBackup",
                "BackupsLevel":"Level-1","BackupStartTime":"2020-05-12T03:25:00Z",
                "BackupEndTime":"2020-05-12T03:26:00Z","BackupSetSize":"42",
                "ConsistentTime":"1589253947","IsAvail":"1","StoreStatus":"Enabled"}]}})
        );
        assert_eq!(
            Value::Object(response(&[], 0, 3)),
            json!({"TotalRecordCount":"0","PageNumber":"3","PageRecordCount":"0","Items":{"Backup":[]}})
        );
    }

    #[test]
    fn parameters_are_describe_backups_ones() {
        let p = crate::Params::decode("DBClusterId=pc-a&StartTime=2020-11-14T00:00Z", None);
        assert_eq!(
            Request::parse(&p),
            Err(ApiError::MissingParameter("EndTime"))
        );
    }
}
