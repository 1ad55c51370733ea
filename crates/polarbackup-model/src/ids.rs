//! Validated identifier newtypes. Parsing is the only way to build one from outside input.

use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{kind} is not valid")]
    Invalid { kind: &'static str },
}

/// A 16-digit account id, as Alibaba Cloud prints them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub const LEN: usize = 16;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok =
            s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
        ok.then(|| Self(s.to_owned()))
            .ok_or(IdError::Invalid { kind: "AccountId" })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cluster id: `pc-` and 15 lower-case letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbClusterId(String);

impl DbClusterId {
    pub const PREFIX: &'static str = "pc-";
    pub const SUFFIX_LEN: usize = 15;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|rest| {
            rest.len() == Self::SUFFIX_LEN
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        ok.then(|| Self(s.to_owned())).ok_or(IdError::Invalid {
            kind: "DBClusterId",
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A RAM user id: 16 digits, first one non-zero, like the account ids RAM hands out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RamUserId(String);

impl RamUserId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        AccountId::parse(s)
            .map(|a| Self(a.0))
            .map_err(|_| IdError::Invalid { kind: "RamUserId" })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RamUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AccessKeyId: `LTAI` and 20 letters or digits, like the real ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessKeyId(String);

impl AccessKeyId {
    /// Any printable ASCII up to 128 bytes is accepted, so externally supplied ids
    /// (for example the root key from the environment) keep working.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.to_owned())).ok_or(IdError::Invalid {
            kind: "AccessKeyId",
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A backup job id: a positive integer, shown as a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupJobId(pub u64);

impl BackupJobId {
    /// Accepts only canonical decimal (no sign, no leading zero) so that one job has one spelling.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let canonical = !s.is_empty()
            && s.len() <= 19
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        canonical
            .then(|| s.parse().ok())
            .flatten()
            .map(Self)
            .ok_or(IdError::Invalid {
                kind: "BackupJobId",
            })
    }
}

impl fmt::Display for BackupJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids() {
        assert!(DbClusterId::parse("pc-abcdefghij12345").is_ok());
        assert!(DbClusterId::parse("pc-ABCDEFGHIJ12345").is_err());
        assert!(DbClusterId::parse("pc-abc").is_err());
        assert!(DbClusterId::parse("pi-abcdefghij12345").is_err());
        assert!(DbClusterId::parse("pc-abcdefghij1234é").is_err());
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("1234567890123456").is_ok());
        assert!(AccountId::parse("0234567890123456").is_err());
        assert!(AccountId::parse("123456789012345").is_err());
        assert!(AccountId::parse("12345678901234a6").is_err());
        assert!(RamUserId::parse("1234567890123456").is_ok());
        assert!(RamUserId::parse("u-1").is_err());
    }

    #[test]
    fn job_ids() {
        assert_eq!(BackupJobId::parse("11111111"), Ok(BackupJobId(11111111)));
        for bad in [
            "",
            "0",
            "012",
            "-1",
            "+1",
            "1a",
            "99999999999999999999",
            " 1",
        ] {
            assert!(BackupJobId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(BackupJobId(42).to_string(), "42");
    }
}
