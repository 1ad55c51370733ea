//! Registered clusters: where the engine connects ([`NewCluster`], [`TlsMode`]) and their
//! lifecycle: `Running`, then `Deleting` while a final backup runs, then `Deleted` (a tombstone
//! that keeps the id of a released cluster and its retained sets).

use crate::ids::{AccountId, BackupJobId, DbClusterId};
use crate::policy::{FullBackupEvery, RetentionOnClusterDeletion};
use jiff::Timestamp;
use std::fmt;
use std::str::FromStr;

/// How the engine secures its connections, with libpq's `sslmode` names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    Disable,
    /// Encrypt when the server offers TLS; no certificate check.
    #[default]
    Prefer,
    /// Encrypt; no certificate check.
    Require,
    /// Encrypt and check the chain and the host name.
    VerifyFull,
}

impl TlsMode {
    pub const ALL: [TlsMode; 4] = [Self::Disable, Self::Prefer, Self::Require, Self::VerifyFull];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or(())
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
    pub tls_mode: TlsMode,
    pub tls_ca_file: Option<String>,
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
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// A registered cluster, in any lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub id: DbClusterId,
    pub spec: NewCluster,
    pub created_at: Timestamp,
    pub status: ClusterStatus,
    /// When it became `Deleted`.
    pub deleted_at: Option<Timestamp>,
    /// The retention its deletion applies (set once deletion begins).
    pub deletion_retention: Option<RetentionOnClusterDeletion>,
    /// The final `TempBackupTask` of a `LATEST` deletion.
    pub deletion_job: Option<BackupJobId>,
    /// How often its automated backups are full (`admin cluster full-backup-every`); `None`:
    /// the serving server's default (`--full-backup-every`).
    pub full_backup_every: Option<FullBackupEvery>,
}

/// `DBClusterStatus`, restricted to the states polarbackup's clusters go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterStatus {
    Running,
    /// DeleteDBCluster or `admin cluster delete` with `LATEST` retention: the final
    /// `TempBackupTask` runs. (The cluster APIs also show a `Deleted` cluster whose release the
    /// workers have not finished as `Deleting`.)
    Deleting,
    /// Released. The live APIs answer as for an unknown cluster; retained (detached) sets are
    /// listed by DescribeDetachedBackups.
    Deleted,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Deleting => "Deleting",
            Self::Deleted => "Deleted",
        }
    }
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClusterStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Running, Self::Deleting, Self::Deleted]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ClusterStatus, TlsMode};

    #[test]
    fn tls_modes_use_libpq_names() {
        for m in TlsMode::ALL {
            assert_eq!(m.as_str().parse::<TlsMode>(), Ok(m));
        }
        assert_eq!("verify-full".parse::<TlsMode>(), Ok(TlsMode::VerifyFull));
        assert!("verify-ca".parse::<TlsMode>().is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            ClusterStatus::Running,
            ClusterStatus::Deleting,
            ClusterStatus::Deleted,
        ] {
            assert_eq!(s.as_str().parse::<ClusterStatus>(), Ok(s));
        }
        assert!("running".parse::<ClusterStatus>().is_err());
    }
}
