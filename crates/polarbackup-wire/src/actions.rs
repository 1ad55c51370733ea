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
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::DescribeBackupTasks,
        Action::CreateBackup,
        Action::DescribeBackups,
        Action::DeleteBackup,
        Action::DescribeBackupPolicy,
        Action::ModifyBackupPolicy,
        Action::DescribeDetachedBackups,
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
        }
    }

    /// The access level the RAM documentation gives the action.
    pub fn access_level(self) -> &'static str {
        match self {
            Self::DescribeBackupTasks
            | Self::DescribeBackups
            | Self::DescribeBackupPolicy
            | Self::DescribeDetachedBackups => "get",
            Self::CreateBackup => "create",
            Self::DeleteBackup => "delete",
            Self::ModifyBackupPolicy => "update",
        }
    }

    /// The request parameter naming the `dbcluster` resource the action is authorized on.
    pub fn resource_param(self) -> &'static str {
        "DBClusterId"
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
            ("get", "DBClusterId")
        );
    }
}
