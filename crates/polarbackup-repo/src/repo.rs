//! `Repo`: opening a repository and the per-backup operations (read, verify, delete, list).

use std::path::Path;
use std::sync::Arc;

use opendal::{ErrorKind, Operator};
use serde::Serialize;

use crate::codec::{self, Checksum};
use crate::direct::DirectFs;
use crate::layout::{self, BACKUPS_DIR};
use crate::manifest::{ChunkEntry, FileEntry, Manifest};
use crate::pool::WriterPool;
use crate::reader::ArchiveReader;
use crate::remote::{local_layers, remote_layers};
use crate::url::{RepoUrl, S3Credentials};
use crate::writer::BackupWriter;
use crate::{RepoConfig, RepoError, RepoKey};

/// Objects up to this size are one request (a default 8 MiB chunk that did not compress, a
/// 16 MiB WAL segment); larger ones go in parts where the storage has multipart uploads.
pub(crate) const SINGLE_PUT_MAX: usize = 16 * 1024 * 1024;
/// The size of those parts (S3's minimum is 5 MiB, except the last).
pub(crate) const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one object uploaded at once.
pub(crate) const PARTS_IN_FLIGHT: usize = 4;

/// Called with a chunk's sequence number on the compression thread; a seam for tests that
/// need to delay chunks, `None` otherwise.
pub(crate) type ChunkHook = Option<Arc<dyn Fn(usize) + Send + Sync>>;

/// A backup repository. Cheap to clone; clones share the storage handle.
#[derive(Clone)]
pub struct Repo {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) op: Operator,
    pub(crate) cfg: RepoConfig,
    pub(crate) chunk_hook: ChunkHook,
    /// Set: an encrypted repository (every object sealed, every manifest keyed).
    pub(crate) key: Option<RepoKey>,
    /// What its backup writers share (kept by `with_key`: the same storage and cores).
    pub(crate) writers: Arc<WriterPool>,
    /// A local directory's chunk objects go around the page cache (`open_fs` only).
    pub(crate) direct: Option<Arc<DirectFs>>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("storage", &self.inner.op.info())
            .field("cfg", &self.inner.cfg)
            .field("encrypted", &self.inner.key.is_some())
            .finish()
    }
}

/// What `verify` checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub backup_id: String,
    pub archives: usize,
    pub chunks: u64,
    pub files: usize,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl Repo {
    /// A repository on any opendal storage. The operator must be able to read, write, stat,
    /// list and delete; `rename` is used for the manifest where the storage has it.
    pub fn new(op: Operator, cfg: RepoConfig) -> Result<Repo, RepoError> {
        Repo::build(op, cfg, None)
    }

    fn build(
        op: Operator,
        cfg: RepoConfig,
        direct: Option<Arc<DirectFs>>,
    ) -> Result<Repo, RepoError> {
        cfg.validate()?;
        let cap = op.info().capability();
        let missing: Vec<&str> = [
            ("read", cap.read),
            ("write", cap.write),
            ("stat", cap.stat),
            ("list", cap.list),
            ("delete", cap.delete),
        ]
        .into_iter()
        .filter_map(|(name, ok)| (!ok).then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(RepoError::InvalidConfig(format!(
                "the storage cannot {}",
                missing.join(", ")
            )));
        }
        let writers = Arc::new(WriterPool::new(cfg.parallelism, cfg.chunk_size));
        Ok(Repo {
            inner: Arc::new(Inner {
                op,
                cfg,
                chunk_hook: None,
                key: None,
                writers,
                direct,
            }),
        })
    }

    /// This repository, encrypted with `key`: what it writes is sealed, and it reads only
    /// backups sealed with the same key (an unencrypted one is refused, so nobody can slip in
    /// a forged plaintext manifest).
    pub fn with_key(&self, key: RepoKey) -> Repo {
        Repo {
            inner: Arc::new(Inner {
                op: self.inner.op.clone(),
                cfg: self.inner.cfg.clone(),
                chunk_hook: self.inner.chunk_hook.clone(),
                key: Some(key),
                writers: self.inner.writers.clone(),
                direct: self.inner.direct.clone(),
            }),
        }
    }

    /// Whether this repository encrypts (`with_key`).
    pub fn is_encrypted(&self) -> bool {
        self.inner.key.is_some()
    }

    /// A repository in the local directory `root` (created if missing).
    pub fn open_fs(root: &Path, cfg: RepoConfig) -> Result<Repo, RepoError> {
        let root = root.to_str().ok_or_else(|| {
            RepoError::InvalidConfig(format!("repository path {root:?} is not UTF-8"))
        })?;
        let op = Operator::new(opendal::services::Fs::default().root(root))
            .map_err(|e| RepoError::storage(root, e))?;
        let direct = DirectFs::new(Path::new(root), cfg.local_timeout);
        Repo::build(local_layers(op, &cfg), cfg, Some(Arc::new(direct)))
    }

    /// `open_fs` under a [`crate::faults::FaultLayer`]: test-only, for fault injection.
    #[cfg(feature = "fault-injection")]
    pub fn open_fs_with_faults(
        root: &Path,
        cfg: RepoConfig,
        faults: &crate::faults::Faults,
    ) -> Result<Repo, RepoError> {
        let path = root.to_str().ok_or_else(|| {
            RepoError::InvalidConfig(format!("repository path {root:?} is not UTF-8"))
        })?;
        let op = Operator::new(opendal::services::Fs::default().root(path))
            .map_err(|e| RepoError::storage(path, e))?
            .layer(faults.layer());
        Repo::new(local_layers(op, &cfg), cfg)
    }

    /// A repository at `url`: a local directory as `open_fs` does, or an S3 bucket (under the
    /// URL's prefix) behind `remote_layers`. `creds` sign the S3 requests (without them the
    /// requests go unsigned); a `file://` repository has no use for them.
    pub fn open_url(
        url: &RepoUrl,
        creds: Option<&S3Credentials>,
        cfg: RepoConfig,
    ) -> Result<Repo, RepoError> {
        match url {
            RepoUrl::File(path) => Repo::open_fs(path, cfg),
            RepoUrl::S3 { .. } => Repo::new(remote_layers(url.storage(creds)?), cfg),
        }
    }

    #[cfg(test)]
    pub(crate) fn with_chunk_hook(&self, hook: Arc<dyn Fn(usize) + Send + Sync>) -> Repo {
        Repo {
            inner: Arc::new(Inner {
                op: self.inner.op.clone(),
                cfg: self.inner.cfg.clone(),
                chunk_hook: Some(hook),
                key: self.inner.key.clone(),
                writers: self.inner.writers.clone(),
                direct: self.inner.direct.clone(),
            }),
        }
    }

    pub fn config(&self) -> &RepoConfig {
        &self.inner.cfg
    }

    /// Starts writing a new backup; its manifest will say it was created at `created_at` (the
    /// caller's clock, so this crate never reads the wall clock). Refuses an id that already
    /// has objects, committed or not. Two writers for one id at the same time are the
    /// caller's job to prevent (job leases).
    pub async fn begin(
        &self,
        backup_id: &str,
        created_at: jiff::Timestamp,
    ) -> Result<BackupWriter, RepoError> {
        layout::check_name("backup id", backup_id)?;
        if self.has_objects(backup_id).await? {
            return Err(RepoError::Exists(format!("backup {backup_id}")));
        }
        Ok(BackupWriter::new(
            self.clone(),
            backup_id.to_owned(),
            created_at,
        ))
    }

    /// The committed manifest, or `None` if there is none (never committed, or being deleted).
    pub async fn manifest(&self, backup_id: &str) -> Result<Option<Manifest>, RepoError> {
        layout::check_name("backup id", backup_id)?;
        let path = layout::manifest_path(backup_id);
        let data = match self.inner.op.read(&path).await {
            Ok(data) => data.to_bytes(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RepoError::storage(&path, e)),
        };
        let manifest = Manifest::load(&data, &path, self.inner.key.as_ref())?;
        if manifest.backup_id != backup_id {
            return Err(RepoError::corrupt(
                &path,
                format!("manifest belongs to backup {:?}", manifest.backup_id),
            ));
        }
        Ok(Some(manifest))
    }

    async fn committed(&self, backup_id: &str) -> Result<Manifest, RepoError> {
        self.manifest(backup_id)
            .await?
            .ok_or_else(|| RepoError::NotFound(format!("backup {backup_id}")))
    }

    /// Re-reads every object of a committed backup and checks every recorded size and hash,
    /// including each archive's whole-stream hash. `progress(done, total)` counts stored bytes.
    pub async fn verify(
        &self,
        backup_id: &str,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<VerifyReport, RepoError> {
        let manifest = self.committed(backup_id).await?;
        let total = manifest.totals.stored_bytes;
        let mut done = 0u64;
        let mut chunks = 0u64;
        progress(0, total);
        for archive in &manifest.archives {
            let mut reader =
                ArchiveReader::new(self, backup_id, archive.clone(), manifest.checksum());
            while let Some(chunk) = reader.next_verified().await? {
                done += chunk.stored_size;
                chunks += 1;
                progress(done, total);
            }
        }
        for file in &manifest.files {
            fetch_file(self, backup_id, file, manifest.checksum()).await?;
            done += file.stored_size;
            progress(done, total);
        }
        Ok(VerifyReport {
            backup_id: backup_id.to_owned(),
            archives: manifest.archives.len(),
            chunks,
            files: manifest.files.len(),
            raw_bytes: manifest.totals.raw_bytes,
            stored_bytes: total,
        })
    }

    /// What a backup's Checking phase still needs after its writer verified every object as
    /// it stored it: the committed manifest read back and loaded, and each object it names
    /// present with its recorded size (a few objects at a time). [`Repo::verify`] re-reads
    /// everything instead, for sets written earlier.
    pub async fn confirm(
        &self,
        backup_id: &str,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<VerifyReport, RepoError> {
        const IN_FLIGHT: usize = 16;
        let manifest = self.committed(backup_id).await?;
        let objects: Vec<(String, u64)> = manifest
            .archives
            .iter()
            .flat_map(|a| &a.chunks)
            .map(|c| (c.object.clone(), c.stored_size))
            .chain(
                manifest
                    .files
                    .iter()
                    .map(|f| (f.object.clone(), f.stored_size)),
            )
            .collect();
        let total = manifest.totals.stored_bytes;
        let mut done = 0u64;
        progress(0, total);
        let mut pending = objects.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < IN_FLIGHT {
                let Some((object, size)) = pending.next() else {
                    break;
                };
                let op = self.inner.op.clone();
                let path = layout::object_path(backup_id, &object);
                running.spawn(async move { stat_size(&op, &path, size).await.map(|()| size) });
            }
            let Some(next) = running.join_next().await else {
                break;
            };
            done += next.map_err(RepoError::join)??;
            progress(done, total);
        }
        Ok(VerifyReport {
            backup_id: backup_id.to_owned(),
            archives: manifest.archives.len(),
            chunks: manifest
                .archives
                .iter()
                .map(|a| a.chunks.len() as u64)
                .sum(),
            files: manifest.files.len(),
            raw_bytes: manifest.totals.raw_bytes,
            stored_bytes: total,
        })
    }

    /// Streams one archive's raw bytes, verified, with read-ahead and parallel decompression.
    pub async fn open_archive(
        &self,
        backup_id: &str,
        archive: &str,
    ) -> Result<ArchiveReader, RepoError> {
        let manifest = self.committed(backup_id).await?;
        let entry = manifest.archive(archive).ok_or_else(|| {
            RepoError::NotFound(format!("archive {archive} in backup {backup_id}"))
        })?;
        Ok(ArchiveReader::new(
            self,
            backup_id,
            entry.clone(),
            manifest.checksum(),
        ))
    }

    /// One side file's raw bytes, verified.
    pub async fn read_file(&self, backup_id: &str, name: &str) -> Result<Vec<u8>, RepoError> {
        let manifest = self.committed(backup_id).await?;
        let entry = manifest
            .file(name)
            .ok_or_else(|| RepoError::NotFound(format!("file {name} in backup {backup_id}")))?;
        fetch_file(self, backup_id, entry, manifest.checksum()).await
    }

    /// Removes a backup: the manifest first, so a crash midway leaves an unusable set that
    /// `list_backup_ids` still reports for cleanup, then everything else. Idempotent.
    pub async fn delete(&self, backup_id: &str) -> Result<(), RepoError> {
        layout::check_name("backup id", backup_id)?;
        let manifest = layout::manifest_path(backup_id);
        delete_path(&self.inner.op, &manifest, false).await?;
        remove_backup_dir(&self.inner.op, backup_id).await
    }

    /// Every backup id with a directory in the repository, committed or not, sorted.
    pub async fn list_backup_ids(&self) -> Result<Vec<String>, RepoError> {
        let entries = match self.inner.op.list(BACKUPS_DIR).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(RepoError::storage(BACKUPS_DIR, e)),
        };
        let mut ids: Vec<String> = entries
            .iter()
            .filter(|e| e.metadata().is_dir())
            .filter_map(|e| e.path().strip_prefix(BACKUPS_DIR)?.strip_suffix('/'))
            // Skips the listed prefix itself and anything we could not have written.
            .filter(|id| layout::check_name("backup id", id).is_ok())
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn has_objects(&self, backup_id: &str) -> Result<bool, RepoError> {
        let dir = layout::backup_dir(backup_id);
        match self.inner.op.list(&dir).await {
            Ok(entries) => Ok(entries.iter().any(|e| e.path() != dir)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RepoError::storage(&dir, e)),
        }
    }
}

/// Deletes every object of a backup, then the folder entries some S3-compatible stores keep
/// (SeaweedFS's filer lists an emptied prefix until its folders are deleted, deepest first);
/// elsewhere those deletes find nothing, which succeeds.
pub(crate) async fn remove_backup_dir(op: &Operator, backup_id: &str) -> Result<(), RepoError> {
    let dir = layout::backup_dir(backup_id);
    delete_path(op, &dir, true).await?;
    let folders = match op.list(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RepoError::storage(&dir, e)),
    };
    // Names are single path components (`layout::check_name`): one level of folders.
    for folder in folders.iter().filter(|e| e.metadata().is_dir()) {
        if folder.path() != dir {
            delete_path(op, folder.path(), false).await?;
        }
    }
    delete_path(op, &dir, false).await
}

/// Deletes an object (or, `recursive`, everything under a prefix); one already gone succeeds.
/// Another process may be removing the same things (a running server and `cluster delete`
/// both release a deleted cluster's data), and opendal's file system backend stats before it
/// removes, so an object removed in between fails with `NotFound`: that is success, but for a
/// recursive delete, which may have stopped midway, so it goes over the prefix again.
pub(crate) async fn delete_path(
    op: &Operator,
    path: &str,
    recursive: bool,
) -> Result<(), RepoError> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        match op.delete_with(path).recursive(recursive).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound && !recursive => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(RepoError::storage(path, e)),
        }
    }
}

/// Stores one data object (a chunk, side file or WAL object) durably: in parts, several at
/// once, where it is large and the storage has multipart uploads.
pub(crate) async fn put_object(op: &Operator, path: &str, data: Vec<u8>) -> Result<(), RepoError> {
    let written = if data.len() <= SINGLE_PUT_MAX {
        op.write(path, data).await
    } else {
        op.write_with(path, data)
            .chunk(PART_SIZE)
            .concurrent(PARTS_IN_FLIGHT)
            .await
    };
    written.map(drop).map_err(|e| RepoError::storage(path, e))
}

/// Checks that the object at `path` exists with `want` bytes.
async fn stat_size(op: &Operator, path: &str, want: u64) -> Result<(), RepoError> {
    let size = match op.stat(path).await {
        Ok(meta) => meta.content_length(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(RepoError::corrupt(path, "object is missing"))
        }
        Err(e) => return Err(RepoError::storage(path, e)),
    };
    if size != want {
        return Err(RepoError::corrupt(
            path,
            format!("object has {size} bytes, manifest says {want}"),
        ));
    }
    Ok(())
}

/// Reads one object, then checks and decompresses it on the blocking pool. The size is
/// checked first so an oversized (or truncated) object is never read into memory whole.
pub(crate) async fn fetch_object(
    op: &Operator,
    path: String,
    want: ChunkEntry,
    checksum: Checksum,
    key: Option<RepoKey>,
) -> Result<Vec<u8>, RepoError> {
    fetch_object_into(op, path, want, checksum, key, Vec::new()).await
}

/// [`fetch_object`], decompressing into `buf` (a recycled chunk buffer; its contents are
/// dropped, its capacity reused).
pub(crate) async fn fetch_object_into(
    op: &Operator,
    path: String,
    want: ChunkEntry,
    checksum: Checksum,
    key: Option<RepoKey>,
    buf: Vec<u8>,
) -> Result<Vec<u8>, RepoError> {
    let stored = read_sized(op, &path, want.stored_size).await?;
    tokio::task::spawn_blocking(move || {
        codec::open_into(&path, &stored, &want.expected(checksum), key.as_ref(), buf)
    })
    .await
    .map_err(RepoError::join)?
}

/// [`fetch_object`] for a writer checking what it just stored: the same checks, with the
/// decompressed bytes compared with `raw`, the bytes it sealed (`codec::check`), which are
/// handed back for reuse.
pub(crate) async fn check_object(
    op: &Operator,
    path: String,
    want: ChunkEntry,
    checksum: Checksum,
    key: Option<RepoKey>,
    raw: Vec<u8>,
) -> Result<Vec<u8>, RepoError> {
    let stored = read_sized(op, &path, want.stored_size).await?;
    tokio::task::spawn_blocking(move || {
        codec::check(
            &path,
            &stored,
            &want.expected(checksum),
            key.as_ref(),
            Some(&raw),
        )
        .map(|()| raw)
    })
    .await
    .map_err(RepoError::join)?
}

/// The object at `path`, which must have `size` bytes: the size is checked first so an
/// oversized (or truncated) object is never read into memory whole.
async fn read_sized(op: &Operator, path: &str, size: u64) -> Result<bytes::Bytes, RepoError> {
    let missing_or = |e: opendal::Error| match e.kind() {
        ErrorKind::NotFound => RepoError::corrupt(path, "object is missing"),
        ErrorKind::RangeNotSatisfied => RepoError::corrupt(path, "object is shorter than recorded"),
        _ => RepoError::storage(path, e),
    };
    let found = op.stat(path).await.map_err(missing_or)?.content_length();
    if found != size {
        return Err(RepoError::corrupt(
            path,
            format!("object has {found} bytes, manifest says {size}"),
        ));
    }
    Ok(op
        .read_with(path)
        .range(0..size)
        .await
        .map_err(missing_or)?
        .to_bytes())
}

async fn fetch_file(
    repo: &Repo,
    backup_id: &str,
    file: &FileEntry,
    checksum: Checksum,
) -> Result<Vec<u8>, RepoError> {
    let path = layout::object_path(backup_id, &file.object);
    let key = repo.inner.key.clone();
    fetch_object(&repo.inner.op, path, file.as_chunk(), checksum, key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_refuses_a_storage_that_cannot_do_what_the_repository_needs() {
        let op = Operator::new(opendal::services::Memory::default())
            .unwrap()
            .layer(opendal::layers::CapabilityOverrideLayer::new(|c| {
                opendal::Capability {
                    list: false,
                    delete: false,
                    ..c
                }
            }));
        match Repo::new(op, RepoConfig::default()) {
            Err(RepoError::InvalidConfig(msg)) => {
                assert_eq!(msg, "the storage cannot list, delete")
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        let op = Operator::new(opendal::services::Memory::default()).unwrap();
        let bad = RepoConfig {
            parallelism: 0,
            ..RepoConfig::default()
        };
        assert!(matches!(
            Repo::new(op.clone(), bad),
            Err(RepoError::InvalidConfig(_))
        ));
        Repo::new(op, RepoConfig::default()).unwrap();
    }
}
