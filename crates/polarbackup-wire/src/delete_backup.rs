//! DeleteBackup: request validation (API.md §3.4).

use crate::{ApiError, Params};
use polarbackup_model::BackupJobId;

pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// More ids than any cluster can hold manual sets is certainly a mistake or an attack.
const MAX_IDS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    pub backup_ids: Vec<BackupJobId>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let raw = p.required("BackupId")?;
        let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
        if parts.len() > MAX_IDS {
            return Err(ApiError::BackupSetNotFound);
        }
        let mut backup_ids = Vec::with_capacity(parts.len());
        for part in parts {
            let id = BackupJobId::parse(part).map_err(|_| ApiError::BackupSetNotFound)?;
            if !backup_ids.contains(&id) {
                backup_ids.push(id);
            }
        }
        Ok(Self {
            cluster_id,
            backup_ids,
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
    fn comma_separated_ids() {
        assert_eq!(
            parse("BackupId=1"),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(
            parse("DBClusterId=pc-a"),
            Err(ApiError::MissingParameter("BackupId"))
        );
        let r = parse("DBClusterId=pc-a&BackupId=11,22,%2011,33").expect("ok");
        assert_eq!(
            r.backup_ids,
            vec![BackupJobId(11), BackupJobId(22), BackupJobId(33)]
        );
        for bad in ["1,,2", "1,x", "-1", "1,"] {
            assert_eq!(
                parse(&format!("DBClusterId=pc-a&BackupId={bad}")),
                Err(ApiError::BackupSetNotFound),
                "{bad}"
            );
        }
        let many = vec!["1"; 101].join(",");
        assert_eq!(
            parse(&format!("DBClusterId=pc-a&BackupId={many}")),
            Err(ApiError::BackupSetNotFound)
        );
    }
}
