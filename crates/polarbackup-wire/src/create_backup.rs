//! CreateBackup: request validation and the response shape (API.md §3.2).

use crate::{ApiError, Params};
use polarbackup_model::BackupJobId;
use serde_json::{json, Map, Value};

/// Manual backup sets (finished or in progress) a cluster may have at once.
pub const MANUAL_BACKUP_LIMIT: u32 = 3;

/// CreateBackup answers 404 for an unknown cluster (unlike DescribeBackupTasks).
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

const MAX_CLIENT_TOKEN: usize = 64;
const MAX_COMMENT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    pub client_token: Option<String>,
    pub comment: Option<String>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let client_token = match p.get("ClientToken") {
            None | Some("") => None,
            Some(t) if t.len() <= MAX_CLIENT_TOKEN && t.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(t.to_owned())
            }
            Some(_) => return Err(ApiError::Malformed("ClientToken")),
        };
        let comment = match p.get("Comment") {
            None | Some("") => None,
            Some(c) if c.chars().count() <= MAX_COMMENT && !c.chars().any(char::is_control) => {
                Some(c.to_owned())
            }
            Some(_) => return Err(ApiError::Malformed("Comment")),
        };
        Ok(Self {
            cluster_id,
            client_token,
            comment,
        })
    }

    /// What a ClientToken commits to: the same token must come with the same parameters.
    pub fn fingerprint(&self) -> String {
        json!([self.cluster_id, self.comment]).to_string()
    }
}

pub fn response(job: BackupJobId) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("BackupJobId".into(), Value::String(job.to_string()));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn validation() {
        assert_eq!(parse(""), Err(ApiError::MissingParameter("DBClusterId")));
        let long = "x".repeat(65);
        assert_eq!(
            parse(&format!("DBClusterId=pc-a&ClientToken={long}")),
            Err(ApiError::Malformed("ClientToken"))
        );
        assert_eq!(
            parse("DBClusterId=pc-a&ClientToken=a%20b"),
            Err(ApiError::Malformed("ClientToken"))
        );
        assert_eq!(
            parse("DBClusterId=pc-a&Comment=a%0Ab"),
            Err(ApiError::Malformed("Comment"))
        );
        let r = parse("DBClusterId=pc-a&ClientToken=tok-1&Comment=nightly%20%C3%BC").expect("ok");
        assert_eq!(r.client_token.as_deref(), Some("tok-1"));
        assert_eq!(r.comment.as_deref(), Some("nightly ü"));
        assert_ne!(
            r.fingerprint(),
            parse("DBClusterId=pc-a&ClientToken=tok-1")
                .expect("ok")
                .fingerprint()
        );
        assert_eq!(
            Value::Object(response(BackupJobId(7))),
            json!({"BackupJobId": "7"})
        );
    }
}
