//! Archived WAL: one object per segment, partial segment or history file, under
//! `wal/<cluster>/<name>.zst`, zstd-compressed. The metadata store keeps each object's raw size
//! and BLAKE3 digest, and every read is checked against them. In an encrypted repository the
//! compressed object is sealed for its key (`crypt`), so WAL objects cannot be swapped either.

use crate::crypt;
use crate::layout;
use crate::repo::{delete_path, put_object, Repo};
use crate::RepoError;
use opendal::ErrorKind;

const WAL_DIR: &str = "wal/";
/// A WAL object is a segment (at most 1 GiB, PostgreSQL's limit) or a small history file.
pub const MAX_WAL_OBJECT: u64 = 1 << 30;

/// A WAL object as stored: what the metadata store records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWal {
    /// The object's key, relative to the repository root.
    pub key: String,
    pub raw_size: u64,
    pub stored_size: u64,
    /// BLAKE3 of the raw bytes, lower-case hex.
    pub digest: String,
}

fn key(cluster: &str, name: &str) -> Result<String, RepoError> {
    layout::check_name("cluster id", cluster)?;
    layout::check_name("WAL object name", name)?;
    Ok(format!("{WAL_DIR}{cluster}/{name}.zst"))
}

fn check_key(key: &str) -> Result<(), RepoError> {
    let ok = key.strip_prefix(WAL_DIR).is_some_and(|rest| {
        let mut parts = rest.split('/');
        let (Some(c), Some(n), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        layout::check_name("cluster id", c).is_ok()
            && n.strip_suffix(".zst")
                .is_some_and(|n| layout::check_name("WAL object name", n).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(RepoError::InvalidName {
            kind: "WAL object key",
            name: key.to_owned(),
            reason: "is not a key put_wal hands out",
        })
    }
}

impl Repo {
    /// Stores one WAL object of `cluster` under `name` (unique per object: the caller puts a
    /// partial segment's end into its name) and returns what to record. Durable once this
    /// returns. Overwrites an object of the same name (a retry after a failed record).
    pub async fn put_wal(
        &self,
        cluster: &str,
        name: &str,
        raw: Vec<u8>,
    ) -> Result<StoredWal, RepoError> {
        let key = key(cluster, name)?;
        let level = self.inner.cfg.zstd_level;
        let (repo_key, object) = (self.inner.key.clone(), key.clone());
        let (stored, raw_size, digest) = tokio::task::spawn_blocking(move || {
            let digest = blake3::hash(&raw).to_hex().to_string();
            let compressed = zstd::bulk::compress(&raw, level)
                .map_err(|e| RepoError::Internal(format!("zstd compression failed: {e}")))?;
            let stored = match &repo_key {
                Some(k) => k.seal(&object, &compressed)?,
                None => compressed,
            };
            Ok::<_, RepoError>((stored, raw.len() as u64, digest))
        })
        .await
        .map_err(RepoError::join)??;
        let stored_size = stored.len() as u64;
        put_object(&self.inner.op, &key, stored).await?;
        Ok(StoredWal {
            key,
            raw_size,
            stored_size,
            digest,
        })
    }

    /// Reads a WAL object back, checked against the size and digest recorded for it.
    pub async fn read_wal(
        &self,
        key: &str,
        raw_size: u64,
        digest: &str,
    ) -> Result<Vec<u8>, RepoError> {
        check_key(key)?;
        if raw_size > MAX_WAL_OBJECT {
            return Err(RepoError::corrupt(
                key,
                format!("recorded size {raw_size} is too large"),
            ));
        }
        let stored = match self.inner.op.read(key).await {
            Ok(b) => b.to_vec(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(RepoError::NotFound(key.to_owned()))
            }
            Err(e) => return Err(RepoError::storage(key, e)),
        };
        let owned_key = key.to_owned();
        let digest = digest.to_owned();
        let repo_key = self.inner.key.clone();
        tokio::task::spawn_blocking(move || {
            let stored = match (&repo_key, crypt::is_sealed(&stored)) {
                (Some(k), true) => k.open(&owned_key, &stored)?,
                (None, false) => stored,
                (Some(_), false) => {
                    return Err(RepoError::InvalidConfig(format!(
                        "{owned_key} is not encrypted, but a repository key is set"
                    )))
                }
                (None, true) => {
                    return Err(RepoError::InvalidConfig(format!(
                        "{owned_key} is encrypted: reading it needs the repository key \
                         (--repository-key-file)"
                    )))
                }
            };
            let raw = zstd::bulk::decompress(&stored, raw_size as usize)
                .map_err(|e| crate::codec::zstd_failed(&owned_key, e))?;
            if raw.len() as u64 != raw_size {
                return Err(RepoError::corrupt(
                    &owned_key,
                    format!("raw size is {} bytes, recorded {raw_size}", raw.len()),
                ));
            }
            if blake3::hash(&raw).to_hex().as_str() != digest {
                return Err(RepoError::corrupt(
                    &owned_key,
                    "BLAKE3 does not match the record",
                ));
            }
            Ok(raw)
        })
        .await
        .map_err(RepoError::join)?
    }

    /// Removes a WAL object; removing a missing one succeeds.
    pub async fn delete_wal(&self, key: &str) -> Result<(), RepoError> {
        check_key(key)?;
        delete_path(&self.inner.op, key, false).await
    }

    /// Every WAL object key of a cluster, for the orphan sweep.
    pub async fn list_wal(&self, cluster: &str) -> Result<Vec<String>, RepoError> {
        layout::check_name("cluster id", cluster)?;
        let dir = format!("{WAL_DIR}{cluster}/");
        match self.inner.op.list(&dir).await {
            Ok(entries) => Ok(entries
                .into_iter()
                .map(|e| e.path().to_owned())
                .filter(|p| p != &dir && check_key(p).is_ok())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(RepoError::storage(&dir, e)),
        }
    }
}
