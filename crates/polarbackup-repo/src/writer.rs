//! `BackupWriter`: chunks, compresses and stores archives in parallel, then commits the manifest.

use opendal::Operator;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::codec::{self, Checksum};
use crate::config::MAX_CHUNK_SIZE;
use crate::direct::{self, Direct, DirectFs};
use crate::layout;
use crate::manifest::{
    ArchiveEntry, ChunkEntry, Compression, Encryption, FileEntry, Manifest, Totals,
    ENCRYPTED_FORMAT_VERSION, FORMAT_VERSION,
};
use crate::ordered::Ordered;
use crate::pool::WriterPool;
use crate::repo::{check_object, put_object, remove_backup_dir, ChunkHook, Repo};
use crate::{RepoError, RepoKey};

/// Writes one backup. Nothing is visible as a backup until `commit` writes the manifest.
///
/// Memory is bounded: one chunk being filled, plus at most twice `parallelism` chunks in
/// flight over every writer of the repository (`WriterPool`), of which at most `parallelism`
/// are being compressed at once (the others are being stored or read back, each keeping its
/// raw bytes for the check); `write` waits (backpressure) when all are busy. Raw buffers are
/// reused.
/// After any error (or a cancelled call) the writer only accepts `abort`.
pub struct BackupWriter {
    repo: Repo,
    backup_id: String,
    created_at: jiff::Timestamp,
    archives: Vec<ArchiveEntry>,
    files: Vec<FileEntry>,
    open: Option<OpenArchive>,
    /// Chunks of the open archive being compressed and stored, oldest first.
    window: Ordered<ChunkEntry>,
    /// The repository's compression slots, chunk slots and spare buffers.
    pool: Arc<WriterPool>,
    raw_bytes: u64,
    stored_bytes: u64,
    /// Set while an operation runs and cleared when it succeeds, so an error or a dropped
    /// future leaves the writer refusing everything but `abort`.
    broken: bool,
    consumed: bool,
}

struct OpenArchive {
    name: String,
    tablespace_location: Option<String>,
    buf: Vec<u8>,
    next_seq: usize,
    raw_size: u64,
    chunks: Vec<ChunkEntry>,
}

/// Everything one chunk task needs, owned, so it can run on its own.
struct ChunkJob {
    op: Operator,
    direct: Option<Arc<DirectFs>>,
    backup_id: String,
    archive: String,
    seq: usize,
    raw: Vec<u8>,
    level: i32,
    checksum: Checksum,
    hook: ChunkHook,
    key: Option<RepoKey>,
    pool: Arc<WriterPool>,
    /// This chunk's room in the repository's chunks in flight, given back when it is done.
    slot: OwnedSemaphorePermit,
}

impl BackupWriter {
    pub(crate) fn new(repo: Repo, backup_id: String, created_at: jiff::Timestamp) -> Self {
        let parallelism = repo.inner.cfg.parallelism;
        let pool = repo.inner.writers.clone();
        pool.enter();
        BackupWriter {
            repo,
            backup_id,
            created_at,
            archives: Vec::new(),
            files: Vec::new(),
            open: None,
            window: Ordered::new(parallelism * 2),
            pool,
            raw_bytes: 0,
            stored_bytes: 0,
            broken: false,
            consumed: false,
        }
    }

    pub fn backup_id(&self) -> &str {
        &self.backup_id
    }

    /// Raw bytes accepted so far (archives and files).
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Compressed bytes durably stored so far.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Opens the next archive; `tablespace_location` is recorded for restore.
    pub async fn start_archive(
        &mut self,
        name: &str,
        tablespace_location: Option<&str>,
    ) -> Result<(), RepoError> {
        self.check_usable()?;
        layout::check_name("archive", name)?;
        if let Some(open) = &self.open {
            return Err(RepoError::InvalidState(format!(
                "archive {} is still open",
                open.name
            )));
        }
        if self.archives.iter().any(|a| a.name == name) {
            return Err(RepoError::Exists(format!("archive {name}")));
        }
        self.open = Some(OpenArchive {
            name: name.to_owned(),
            tablespace_location: tablespace_location.map(str::to_owned),
            buf: self.pool.take(),
            next_seq: 0,
            raw_size: 0,
            chunks: Vec::new(),
        });
        Ok(())
    }

    /// Appends bytes to the open archive. Full chunks go to the worker pool; this waits
    /// while `parallelism` chunks are already in flight.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), RepoError> {
        self.check_usable()?;
        self.open_archive()?;
        self.broken = true;
        self.write_inner(data).await?;
        self.broken = false;
        Ok(())
    }

    async fn write_inner(&mut self, mut data: &[u8]) -> Result<(), RepoError> {
        let chunk_size = self.repo.inner.cfg.chunk_size;
        while !data.is_empty() {
            let open = self.open_archive()?;
            let n = (chunk_size - open.buf.len()).min(data.len());
            let (head, rest) = data.split_at(n);
            open.buf.extend_from_slice(head);
            open.raw_size += n as u64;
            let full = open.buf.len() == chunk_size;
            self.raw_bytes += n as u64;
            data = rest;
            if full {
                self.seal_chunk(true).await?;
            }
        }
        Ok(())
    }

    /// Hands the open archive's buffer to a worker (after waiting for a free slot), and with
    /// `more` takes a buffer for the next chunk: only then, so a writer waiting for room holds
    /// no buffer but the full one.
    async fn seal_chunk(&mut self, more: bool) -> Result<(), RepoError> {
        while self.window.is_full() {
            if let Some(done) = self.window.next().await {
                self.record(done?)?;
            }
        }
        while let Some(done) = self.window.next_ready() {
            self.record(done?)?;
        }
        let slot = self.pool.chunk_slot().await?;
        let next_buf = if more { self.pool.take() } else { Vec::new() };
        let cfg = &self.repo.inner.cfg;
        let (level, checksum, op, direct, hook, key) = (
            cfg.zstd_level,
            cfg.checksum,
            self.repo.inner.op.clone(),
            self.repo.inner.direct.clone(),
            self.repo.inner.chunk_hook.clone(),
            self.repo.inner.key.clone(),
        );
        let backup_id = self.backup_id.clone();
        let pool = self.pool.clone();
        let open = self.open_archive()?;
        let job = ChunkJob {
            op,
            direct,
            backup_id,
            archive: open.name.clone(),
            seq: open.next_seq,
            raw: std::mem::replace(&mut open.buf, next_buf),
            level,
            checksum,
            hook,
            key,
            pool,
            slot,
        };
        open.next_seq += 1;
        self.window.spawn(store_chunk(job));
        Ok(())
    }

    fn record(&mut self, chunk: ChunkEntry) -> Result<(), RepoError> {
        self.stored_bytes += chunk.stored_size;
        self.open_archive()?.chunks.push(chunk);
        Ok(())
    }

    /// Flushes the last partial chunk, waits for all chunks, and records the archive.
    pub async fn finish_archive(&mut self) -> Result<(), RepoError> {
        self.check_usable()?;
        self.open_archive()?;
        self.broken = true;
        if !self.open_archive()?.buf.is_empty() {
            self.seal_chunk(false).await?;
        }
        while let Some(done) = self.window.next().await {
            self.record(done?)?;
        }
        let open = self
            .open
            .take()
            .ok_or_else(|| RepoError::Internal("open archive vanished".into()))?;
        let mut chain = self.repo.inner.cfg.checksum.chain();
        for c in &open.chunks {
            chain.update(&c.raw_hash);
        }
        self.archives.push(ArchiveEntry {
            name: open.name,
            tablespace_location: open.tablespace_location,
            raw_size: open.raw_size,
            raw_hash: chain.finish(),
            chunks: open.chunks,
        });
        self.broken = false;
        Ok(())
    }

    /// Stores a small side file (such as PostgreSQL's `backup_manifest`) as one object.
    pub async fn put_file(&mut self, name: &str, data: &[u8]) -> Result<(), RepoError> {
        self.check_usable()?;
        layout::check_name("file", name)?;
        if self.files.iter().any(|f| f.name == name) {
            return Err(RepoError::Exists(format!("file {name}")));
        }
        if data.len() > MAX_CHUNK_SIZE {
            return Err(RepoError::InvalidState(format!(
                "file {name} is larger than {MAX_CHUNK_SIZE} bytes"
            )));
        }
        self.broken = true;
        let object = layout::file_object(name);
        let cfg = &self.repo.inner.cfg;
        let (entry, _) = seal_and_store(
            (&self.repo.inner.op, self.repo.inner.direct.clone()),
            &self.backup_id,
            object,
            data.to_vec(),
            (
                cfg.zstd_level,
                cfg.checksum,
                self.repo.inner.key.clone(),
                None,
            ),
            || {},
        )
        .await?;
        let (raw_size, stored_size) = (entry.raw_size, entry.stored_size);
        self.files.push(FileEntry {
            name: name.to_owned(),
            object: entry.object,
            raw_size,
            stored_size,
            raw_hash: entry.raw_hash,
            stored_hash: entry.stored_hash,
        });
        self.raw_bytes += raw_size;
        self.stored_bytes += stored_size;
        self.broken = false;
        Ok(())
    }

    /// Writes `manifest.json` atomically, which makes the backup exist. On any error the
    /// backup's objects are removed (best effort; `Repo::delete` finishes the job).
    pub async fn commit(mut self, meta: serde_json::Value) -> Result<Manifest, RepoError> {
        self.consumed = true;
        match self.commit_inner(meta).await {
            Ok(manifest) => Ok(manifest),
            Err(e) => {
                if let Err(cleanup) = self.remove_all().await {
                    tracing::warn!(backup_id = %self.backup_id, error = %cleanup,
                        "could not remove the objects of a failed commit");
                }
                Err(e)
            }
        }
    }

    async fn commit_inner(&mut self, meta: serde_json::Value) -> Result<Manifest, RepoError> {
        self.check_usable()?;
        if let Some(open) = &self.open {
            return Err(RepoError::InvalidState(format!(
                "archive {} was not finished",
                open.name
            )));
        }
        let cfg = &self.repo.inner.cfg;
        let archives = std::mem::take(&mut self.archives);
        let files = std::mem::take(&mut self.files);
        let raw_bytes = archives.iter().map(|a| a.raw_size).sum::<u64>()
            + files.iter().map(|f| f.raw_size).sum::<u64>();
        let stored_bytes = archives
            .iter()
            .flat_map(|a| &a.chunks)
            .map(|c| c.stored_size)
            .sum::<u64>()
            + files.iter().map(|f| f.stored_size).sum::<u64>();
        let key = self.repo.inner.key.clone();
        let manifest = Manifest {
            format_version: match key {
                Some(_) => ENCRYPTED_FORMAT_VERSION,
                None => FORMAT_VERSION,
            },
            backup_id: self.backup_id.clone(),
            created_at: self.created_at,
            chunk_size: cfg.chunk_size as u64,
            compression: Compression {
                algorithm: "zstd".into(),
                level: cfg.zstd_level,
            },
            checksum: cfg.checksum.as_str().into(),
            archives,
            files,
            totals: Totals {
                raw_bytes,
                stored_bytes,
            },
            meta,
            encryption: key.as_ref().map(Encryption::of),
        };
        let path = layout::manifest_path(&self.backup_id);
        let stored = manifest.to_stored(&path, key.as_ref())?;
        // What we write must be what we can load back.
        Manifest::load(&stored, &path, key.as_ref())
            .map_err(|e| RepoError::Internal(format!("refusing to commit: {e}")))?;
        self.write_manifest(stored).await?;
        Ok(manifest)
    }

    /// Temp name + rename where the storage can rename (fs; the writer fsyncs the file);
    /// object stores without rename make a single PUT visible atomically anyway (so the
    /// manifest is one plain write, never a multipart upload).
    async fn write_manifest(&self, json: Vec<u8>) -> Result<(), RepoError> {
        let op = &self.repo.inner.op;
        let path = layout::manifest_path(&self.backup_id);
        if !op.info().capability().rename {
            return op
                .write(&path, json)
                .await
                .map(drop)
                .map_err(|e| RepoError::storage(&path, e));
        }
        let tmp = layout::manifest_tmp_path(&self.backup_id);
        op.write(&tmp, json)
            .await
            .map_err(|e| RepoError::storage(&tmp, e))?;
        op.rename(&tmp, &path)
            .await
            .map_err(|e| RepoError::storage(&path, e))
    }

    /// Stops all workers and deletes everything written for this backup id.
    pub async fn abort(mut self) -> Result<(), RepoError> {
        self.consumed = true;
        self.remove_all().await
    }

    async fn remove_all(&mut self) -> Result<(), RepoError> {
        self.window.settle().await;
        remove_backup_dir(&self.repo.inner.op, &self.backup_id).await
    }

    fn check_usable(&self) -> Result<(), RepoError> {
        if self.broken {
            Err(RepoError::InvalidState(
                "an earlier operation failed; only abort is possible".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn open_archive(&mut self) -> Result<&mut OpenArchive, RepoError> {
        self.open
            .as_mut()
            .ok_or_else(|| RepoError::InvalidState("no archive is open".into()))
    }
}

impl Drop for BackupWriter {
    fn drop(&mut self) {
        self.pool.leave();
        if !self.consumed {
            // In-flight chunks are cancelled by `Ordered`; stored objects stay for cleanup.
            tracing::warn!(backup_id = %self.backup_id,
                "backup writer dropped without commit or abort; objects are left for cleanup");
        }
    }
}

/// How an object is sealed: zstd level, digest, key, and the permits compression waits for.
type Sealing = (i32, Checksum, Option<RepoKey>, Option<Arc<Semaphore>>);

/// Compresses and hashes one chunk on the blocking pool, then stores it.
async fn store_chunk(job: ChunkJob) -> Result<ChunkEntry, RepoError> {
    let ChunkJob {
        op,
        direct,
        backup_id,
        archive,
        seq,
        raw,
        level,
        checksum,
        hook,
        key,
        pool,
        slot,
    } = job;
    let object = layout::chunk_object(&archive, seq);
    let before = move || {
        if let Some(hook) = hook {
            hook(seq);
        }
    };
    let sealing = (level, checksum, key, Some(pool.compressors()));
    let storage = (&op, direct);
    let (entry, raw) = seal_and_store(storage, &backup_id, object, raw, sealing, before).await?;
    // The buffer goes back before the slot, so the writer that gets the slot reuses it.
    pool.give(raw);
    drop(slot);
    Ok(entry)
}

/// Compresses, hashes and (with a key) encrypts `raw` on the blocking pool, after `before` (a
/// test hook), then stores it as the backup's `object` and reads it back, checking it as a
/// restore would (size, stored digest, decryption, decompression, and the decompressed bytes
/// equal to `raw`, which the raw digest was computed from): the manifest's entry for it, and
/// `raw` back for reuse. Each object is so verified while later ones are still being
/// compressed, instead of in a pass after the commit.
async fn seal_and_store(
    (op, direct): (&Operator, Option<Arc<DirectFs>>),
    backup_id: &str,
    object: String,
    raw: Vec<u8>,
    (level, checksum, key, compressors): Sealing,
    before: impl FnOnce() + Send + 'static,
) -> Result<(ChunkEntry, Vec<u8>), RepoError> {
    let path = layout::object_path(backup_id, &object);
    let sealed_path = path.clone();
    let read_key = key.clone();
    let permit = match compressors {
        Some(c) => Some(
            c.acquire_owned()
                .await
                .map_err(|_| RepoError::Internal("the compressors were closed".into()))?,
        ),
        None => None,
    };
    let (sealed, raw) = tokio::task::spawn_blocking(move || {
        before();
        codec::seal(
            &raw,
            level,
            checksum,
            key.as_ref().map(|k| (k, &*sealed_path)),
        )
        .map(|sealed| (sealed, raw))
    })
    .await
    .map_err(RepoError::join)??;
    drop(permit);
    let entry = ChunkEntry {
        object,
        raw_size: sealed.raw_size,
        stored_size: sealed.stored.len() as u64,
        raw_hash: sealed.raw_hash,
        stored_hash: sealed.stored_hash,
    };
    let (stored, raw) = match direct.filter(|d| d.usable()) {
        Some(d) => {
            let want = (entry.clone(), checksum, read_key.clone());
            match store_direct(d, path.clone(), sealed.stored, want, raw).await? {
                Ok(raw) => return Ok((entry, raw)),
                Err(refused) => refused,
            }
        }
        None => (sealed.stored, raw),
    };
    put_object(op, &path, stored).await?;
    let raw = check_object(op, path, entry.clone(), checksum, read_key, raw).await?;
    Ok((entry, raw))
}

/// [`seal_and_store`]'s store and read-back check through [`DirectFs`], on the blocking pool:
/// `raw` back for reuse, or both buffers back when the file system refused direct I/O.
async fn store_direct(
    direct: Arc<DirectFs>,
    path: String,
    stored: Vec<u8>,
    (want, checksum, key): (ChunkEntry, Checksum, Option<RepoKey>),
    raw: Vec<u8>,
) -> Result<Result<Vec<u8>, (Vec<u8>, Vec<u8>)>, RepoError> {
    // Two storage calls' worth: the write (with its sync) and the read-back.
    let limit = direct.timeout * 2;
    let at = path.clone();
    let task = tokio::task::spawn_blocking(move || {
        let expected = want.expected(checksum);
        let done = direct.store_and_read(&path, &stored, |read| {
            codec::check(&path, read, &expected, key.as_ref(), Some(&raw))
        })?;
        Ok(match done {
            Direct::Checked(()) => Ok(raw),
            Direct::Refused => Err((stored, raw)),
        })
    });
    match tokio::time::timeout(limit, task).await {
        Ok(joined) => joined.map_err(RepoError::join)?,
        Err(_) => Err(direct::io_error(
            &at,
            std::io::Error::new(std::io::ErrorKind::TimedOut, "storage call timed out"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RepoConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Chunk 0 compresses slowest; later chunks finish first, at most `parallelism` run at
    /// once, and the manifest still lists every chunk in stream order.
    #[tokio::test]
    async fn chunks_compress_in_parallel_and_are_recorded_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let Slowed {
            repo,
            peak,
            finished,
        } = slowed_repo(dir.path(), 3, |seq| {
            Duration::from_millis(if seq == 0 { 300 } else { 30 })
        });
        let data: Vec<u8> = (0..7500u32).map(|i| (i * 7 % 251) as u8).collect();

        let mut w = repo.begin("b1", jiff::Timestamp::UNIX_EPOCH).await.unwrap();
        w.start_archive("base.tar", None).await.unwrap();
        w.write(&data).await.unwrap();
        w.finish_archive().await.unwrap();
        let manifest = w.commit(serde_json::Value::Null).await.unwrap();

        let finished = finished.lock().unwrap().clone();
        assert_eq!(finished.len(), 8);
        assert!(
            finished[0] != 0 && finished[1] != 0,
            "chunk 0 finished late: {finished:?}"
        );
        assert_eq!(
            peak.load(Ordering::SeqCst),
            3,
            "finished order {finished:?}"
        );
        let objects: Vec<_> = manifest.archives[0]
            .chunks
            .iter()
            .map(|c| c.object.clone())
            .collect();
        let expected: Vec<_> = (0..8)
            .map(|seq| layout::chunk_object("base.tar", seq))
            .collect();
        assert_eq!(objects, expected);

        assert_eq!(read_archive(&repo, "b1").await, data);
    }

    /// Two backups at once share the repository's slots: no more compressions than cores, no
    /// more chunk buffers than one per writer plus twice the cores in flight (each writer had
    /// its own before, so two held twice as many), and no spare kept once both have ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_the_repositorys_slots_and_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let Slowed { repo, peak, .. } = slowed_repo(dir.path(), 2, |_| Duration::from_millis(20));
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let backup = |id: &'static str| {
            let (repo, data) = (repo.clone(), data.clone());
            tokio::spawn(async move {
                let mut w = repo.begin(id, jiff::Timestamp::UNIX_EPOCH).await.unwrap();
                w.start_archive("base.tar", None).await.unwrap();
                for piece in data.chunks(700) {
                    w.write(piece).await.unwrap();
                }
                w.finish_archive().await.unwrap();
                w.commit(serde_json::Value::Null).await.unwrap();
            })
        };
        let (a, b) = tokio::join!(backup("b1"), backup("b2"));
        a.unwrap();
        b.unwrap();

        assert_eq!(peak.load(Ordering::SeqCst), 2, "compressions at once");
        let (spares, made) = repo.inner.writers.buffers();
        assert!(made <= 2 + 4, "{made} chunk buffers for two writers");
        assert_eq!(spares, 0, "spares kept after both writers ended");
        for id in ["b1", "b2"] {
            assert_eq!(read_archive(&repo, id).await, data, "{id}");
        }
    }

    /// A repository with 1000-byte chunks whose compressions sleep `delay(seq)` first (the
    /// chunk hook), counting the most at once and the order they finished in.
    struct Slowed {
        repo: Repo,
        peak: Arc<AtomicUsize>,
        finished: Arc<Mutex<Vec<usize>>>,
    }

    fn slowed_repo(
        dir: &std::path::Path,
        parallelism: usize,
        delay: impl Fn(usize) -> Duration + Send + Sync + 'static,
    ) -> Slowed {
        let cfg = RepoConfig {
            chunk_size: 1000,
            zstd_level: 1,
            parallelism,
            ..RepoConfig::default()
        };
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Mutex::new(Vec::new()));
        let hook = {
            let (peak, finished) = (peak.clone(), finished.clone());
            Arc::new(move |seq: usize| {
                peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                std::thread::sleep(delay(seq));
                running.fetch_sub(1, Ordering::SeqCst);
                finished.lock().unwrap().push(seq);
            })
        };
        let repo = Repo::open_fs(dir, cfg).unwrap().with_chunk_hook(hook);
        Slowed {
            repo,
            peak,
            finished,
        }
    }

    /// The archive `base.tar` of backup `id`, read back whole.
    async fn read_archive(repo: &Repo, id: &str) -> Vec<u8> {
        let mut reader = repo.open_archive(id, "base.tar").await.unwrap();
        let mut back = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            back.extend_from_slice(&chunk);
        }
        back
    }
}
