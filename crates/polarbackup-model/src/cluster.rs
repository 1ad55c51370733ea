//! A registered cluster's lifecycle: `Running`, then `Deleting` while a final backup runs, then
//! `Deleted` (a tombstone that keeps the id of a released cluster and its retained sets).

use std::fmt;
use std::str::FromStr;

/// `DBClusterStatus`, restricted to the states polarbackup's clusters go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterStatus {
    Running,
    /// `admin cluster delete` with `LATEST` retention: the final `TempBackupTask` runs.
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
    use super::ClusterStatus;

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
