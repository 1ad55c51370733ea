//! DescribeBackupTasks: request validation and the response shape (API.md §3.1).

use crate::{format_time, ApiError, Params};
use polarbackup_model::{BackupJob, JobMode};
use serde_json::{json, Map, Value};

/// A validated request. The cluster id is kept as sent: an id of the wrong shape is simply a
/// cluster that does not exist, and must be reported exactly like one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    pub job: JobSelector,
    pub mode: Option<JobMode>,
}

pub use crate::params::IdSelector as JobSelector;

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let mode = p
            .get("BackupMode")
            .map(|m| {
                m.parse::<JobMode>()
                    .map_err(|()| ApiError::BackupModeMalformed)
            })
            .transpose()?;
        let job = p.id_filter("BackupJobId");
        Ok(Self {
            cluster_id,
            job,
            mode,
        })
    }
}

/// The status InvalidDBClusterId.NotFound has for this action (400, unlike most others).
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 400 };

/// `{"Items":{"BackupJob":[...]}}`, every field a string.
pub fn response(jobs: &[BackupJob]) -> Map<String, Value> {
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "StartTime": format_time(j.start_time),
                "Process": j.process.to_string(),
                "BackupJobId": j.id.to_string(),
                "JobMode": j.mode.as_str(),
                "BackupProgressStatus": j.status.as_str(),
                "TaskAction": j.action.as_str(),
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert("Items".into(), json!({ "BackupJob": items }));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use polarbackup_model::{BackupJobId, DbClusterId, TaskAction};

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn validation() {
        assert_eq!(parse(""), Err(ApiError::MissingParameter("DBClusterId")));
        assert_eq!(
            parse("DBClusterId="),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(
            parse("DBClusterId=pc-x&BackupMode=manual"),
            Err(ApiError::BackupModeMalformed)
        );
        assert_eq!(
            parse("DBClusterId=pc-x&BackupMode="),
            Err(ApiError::BackupModeMalformed)
        );
        let r = parse("DBClusterId=pc-x&BackupMode=Manual&BackupJobId=42&OwnerId=1&RegionId=cn")
            .expect("ok");
        assert_eq!(r.mode, Some(JobMode::Manual));
        assert_eq!(r.job, JobSelector::One(BackupJobId(42)));
        assert_eq!(
            parse("DBClusterId=pc-x&BackupJobId=abc").expect("ok").job,
            JobSelector::Nothing
        );
        assert_eq!(parse("DBClusterId=pc-x").expect("ok").job, JobSelector::All);
    }

    #[test]
    fn response_fields_are_strings() {
        let job = BackupJob::new(
            BackupJobId(11111111),
            DbClusterId::parse("pc-abcdefghij12345").expect("id"),
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            jiff::Timestamp::from_second(1_596_871_441).expect("t"),
        );
        let body = Value::Object(response(&[job]));
        assert_eq!(
            body,
            json!({"Items":{"BackupJob":[{"StartTime":"2020-08-08T07:24:01Z","Process":"0","BackupJobId":"11111111","JobMode":"Automated","BackupProgressStatus":"NoStart","TaskAction":"NormalBackupTask"}]}})
        );
        assert_eq!(
            Value::Object(response(&[])),
            json!({"Items":{"BackupJob":[]}})
        );
    }
}
