//! Plain records the store hands out, with secrets redacted from Debug output.

use jiff::Timestamp;
use polarbackup_model::{AccessKeyId, AccountId, BackupJobId, DbClusterId, JobMode};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: AccessKeyId,
    pub account: AccountId,
    pub secret: String,
    pub active: bool,
    pub created_at: Timestamp,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("secret", &"<redacted>")
            .field("active", &self.active)
            .finish()
    }
}

/// What `admin cluster create` registers: where the backup engine will connect.
#[derive(Clone, PartialEq, Eq)]
pub struct NewCluster {
    pub account: AccountId,
    pub region: String,
    pub engine: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
    pub description: Option<String>,
}

impl fmt::Debug for NewCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCluster")
            .field("account", &self.account)
            .field("region", &self.region)
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("description", &self.description)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub id: DbClusterId,
    pub spec: NewCluster,
    pub created_at: Timestamp,
}

/// Which jobs DescribeBackupTasks wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    pub job_id: Option<BackupJobId>,
    pub mode: Option<JobMode>,
    /// Jobs that ended before this instant are history and not listed.
    pub ended_since: Timestamp,
}
