//! The actions this service answers, and the RAM action each one is authorized as.

use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    DescribeBackupTasks,
    CreateBackup,
    DescribeBackups,
    DeleteBackup,
    DescribeBackupPolicy,
    ModifyBackupPolicy,
    DescribeDetachedBackups,
    DescribeBackupLogs,
    DescribeLogBackupPolicy,
    ModifyLogBackupPolicy,
    DescribeBackupLogDownloadLinks,
    DescribeLocalAvailableRecoveryTime,
    DescribeDBClusters,
    DescribeDBClusterAttribute,
    DeleteDBCluster,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::DescribeBackupTasks,
        Action::CreateBackup,
        Action::DescribeBackups,
        Action::DeleteBackup,
        Action::DescribeBackupPolicy,
        Action::ModifyBackupPolicy,
        Action::DescribeDetachedBackups,
        Action::DescribeBackupLogs,
        Action::DescribeLogBackupPolicy,
        Action::ModifyLogBackupPolicy,
        Action::DescribeBackupLogDownloadLinks,
        Action::DescribeLocalAvailableRecoveryTime,
        Action::DescribeDBClusters,
        Action::DescribeDBClusterAttribute,
        Action::DeleteDBCluster,
    ];

    /// Action names are case-sensitive, as on the real gateway.
    pub fn parse(name: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or(ApiError::InvalidAction)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::DescribeBackupTasks => "DescribeBackupTasks",
            Self::CreateBackup => "CreateBackup",
            Self::DescribeBackups => "DescribeBackups",
            Self::DeleteBackup => "DeleteBackup",
            Self::DescribeBackupPolicy => "DescribeBackupPolicy",
            Self::ModifyBackupPolicy => "ModifyBackupPolicy",
            Self::DescribeDetachedBackups => "DescribeDetachedBackups",
            Self::DescribeBackupLogs => "DescribeBackupLogs",
            Self::DescribeLogBackupPolicy => "DescribeLogBackupPolicy",
            Self::ModifyLogBackupPolicy => "ModifyLogBackupPolicy",
            Self::DescribeBackupLogDownloadLinks => "DescribeBackupLogDownloadLinks",
            Self::DescribeLocalAvailableRecoveryTime => "DescribeLocalAvailableRecoveryTime",
            Self::DescribeDBClusters => "DescribeDBClusters",
            Self::DescribeDBClusterAttribute => "DescribeDBClusterAttribute",
            Self::DeleteDBCluster => "DeleteDBCluster",
        }
    }

    /// The access level the RAM documentation gives the action (API.md §6; the two actions
    /// it has no RAM data for, DescribeBackupLogDownloadLinks and
    /// DescribeLocalAvailableRecoveryTime, are reads like their neighbours).
    pub fn access_level(self) -> &'static str {
        match self {
            Self::DescribeBackupTasks
            | Self::DescribeBackups
            | Self::DescribeBackupPolicy
            | Self::DescribeDetachedBackups
            | Self::DescribeBackupLogs
            | Self::DescribeLogBackupPolicy
            | Self::DescribeBackupLogDownloadLinks
            | Self::DescribeLocalAvailableRecoveryTime
            | Self::DescribeDBClusterAttribute => "get",
            Self::DescribeDBClusters => "list",
            Self::CreateBackup => "create",
            Self::DeleteBackup | Self::DeleteDBCluster => "delete",
            Self::ModifyBackupPolicy | Self::ModifyLogBackupPolicy => "update",
        }
    }

    /// The request parameter naming the `dbcluster` resource the action is authorized on;
    /// `None` for DescribeDBClusters, a listing authorized on `dbcluster/*` whatever the
    /// request carries (so no parameter can narrow the resource a policy is checked against).
    pub fn resource_param(self) -> Option<&'static str> {
        match self {
            Self::DescribeDBClusters => None,
            _ => Some("DBClusterId"),
        }
    }

    /// The RAM action checked before the call runs.
    pub fn ram_action(self) -> String {
        format!("polardb:{}", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            Action::parse("DescribeBackupTasks"),
            Ok(Action::DescribeBackupTasks)
        );
        assert_eq!(
            Action::parse("describebackuptasks"),
            Err(ApiError::InvalidAction)
        );
        assert_eq!(Action::parse(""), Err(ApiError::InvalidAction));
        assert_eq!(
            Action::DescribeBackupTasks.ram_action(),
            "polardb:DescribeBackupTasks"
        );
        assert_eq!(Action::DescribeBackupTasks.access_level(), "get");
        assert_eq!(Action::CreateBackup.access_level(), "create");
        assert_eq!(Action::ModifyBackupPolicy.access_level(), "update");
        let detached = Action::parse("DescribeDetachedBackups").expect("known");
        assert_eq!(detached.ram_action(), "polardb:DescribeDetachedBackups");
        assert_eq!(
            (detached.access_level(), detached.resource_param()),
            ("get", Some("DBClusterId"))
        );
    }

    #[test]
    fn every_action_round_trips_through_its_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Ok(a));
            assert_eq!(a.ram_action(), format!("polardb:{}", a.name()));
            let listing = a == Action::DescribeDBClusters;
            assert_eq!(a.resource_param().is_none(), listing, "{a:?}");
        }
    }

    #[test]
    fn cluster_actions() {
        let level = |name| Action::parse(name).expect(name).access_level();
        assert_eq!(level("DescribeDBClusters"), "list");
        assert_eq!(level("DescribeDBClusterAttribute"), "get");
        assert_eq!(level("DeleteDBCluster"), "delete");
        assert_eq!(
            Action::DeleteDBCluster.resource_param(),
            Some("DBClusterId")
        );
        assert_eq!(
            Action::parse("DescribeDbClusters"),
            Err(ApiError::InvalidAction)
        );
    }

    #[test]
    fn log_backup_actions() {
        let level = |name| Action::parse(name).expect(name).access_level();
        assert_eq!(level("DescribeBackupLogs"), "get");
        assert_eq!(level("DescribeLogBackupPolicy"), "get");
        assert_eq!(level("ModifyLogBackupPolicy"), "update");
        assert_eq!(level("DescribeBackupLogDownloadLinks"), "get");
        assert_eq!(level("DescribeLocalAvailableRecoveryTime"), "get");
        assert_eq!(
            Action::parse("describeBackupLogs"),
            Err(ApiError::InvalidAction)
        );
    }
}
