//! `RepoConfig`: chunking, compression and parallelism settings, with validation.

use crate::codec::Checksum;
use crate::RepoError;

/// Largest accepted chunk size. Readers allocate up to one chunk per in-flight task, so a
/// (possibly tampered) manifest must not be able to ask for more than this.
pub const MAX_CHUNK_SIZE: usize = 256 * 1024 * 1024;

/// How a `Repo` writes new backups. Reading always follows the manifest, not this config,
/// except for `parallelism` (read-ahead depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    /// Raw bytes per chunk object (default 8 MiB).
    pub chunk_size: usize,
    /// zstd level for new objects (default 1: the engine is compression-bound).
    pub zstd_level: i32,
    /// Chunks compressed/stored (or read/decompressed) at once (default: available cores).
    pub parallelism: usize,
    /// The hash new backups record (default BLAKE3; SHA-256 for tools that need it).
    pub checksum: Checksum,
    /// Bound on each call to a local repository (`open_fs`): a hung file system (a hard NFS
    /// mount, a dead disk) fails the backup instead of holding it forever. Default 60 s; a
    /// remote one has its own (`remote_layers`).
    pub local_timeout: std::time::Duration,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            chunk_size: 8 * 1024 * 1024,
            zstd_level: 1,
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            checksum: Checksum::Blake3,
            local_timeout: std::time::Duration::from_secs(60),
        }
    }
}

impl RepoConfig {
    pub(crate) fn validate(&self) -> Result<(), RepoError> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(RepoError::InvalidConfig(format!(
                "chunk_size {} is outside 1..={MAX_CHUNK_SIZE}",
                self.chunk_size
            )));
        }
        if !zstd::compression_level_range().contains(&self.zstd_level) {
            return Err(RepoError::InvalidConfig(format!(
                "zstd_level {} is outside {:?}",
                self.zstd_level,
                zstd::compression_level_range()
            )));
        }
        if self.local_timeout.is_zero() {
            return Err(RepoError::InvalidConfig(
                "local_timeout must be above zero".into(),
            ));
        }
        if self.parallelism == 0 {
            return Err(RepoError::InvalidConfig(
                "parallelism must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_rejected() {
        RepoConfig::default().validate().unwrap();
        for bad in [
            RepoConfig {
                chunk_size: 0,
                ..RepoConfig::default()
            },
            RepoConfig {
                chunk_size: MAX_CHUNK_SIZE + 1,
                ..RepoConfig::default()
            },
            RepoConfig {
                zstd_level: 99,
                ..RepoConfig::default()
            },
            RepoConfig {
                parallelism: 0,
                ..RepoConfig::default()
            },
            RepoConfig {
                local_timeout: std::time::Duration::ZERO,
                ..RepoConfig::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(RepoError::InvalidConfig(_))),
                "{bad:?}"
            );
        }
    }
}
