//! Restore: a verified backup set back into a PostgreSQL data directory.

use crate::extract::{with_writers, Contents, FileMeta, Syncer, SYNC_THREADS, WRITE_THREADS};
use crate::partial::{Startable, Written, PG_CONTROL};
use crate::{incremental, EngineError};
use bytes::{Buf, Bytes};
use polarbackup_repo::{Repo, RepoError};
use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct RestoreRequest<'a> {
    pub repo: &'a Repo,
    pub backup_id: &'a str,
    /// Must be absent or empty; created with mode 0700 as PostgreSQL requires.
    pub target: &'a Path,
    /// Where tablespaces go instead of their original location (old path, new path), as
    /// pg_basebackup's --tablespace-mapping.
    pub tablespace_mapping: &'a [(String, PathBuf)],
    /// Called with (bytes written, total bytes) a few times a second.
    pub progress: &'a (dyn Fn(u64, u64) + Send + Sync),
    /// On failure, keep what was written for inspection instead of removing it. It is never
    /// startable: `global/pg_control` is written only once everything was read and checked.
    pub keep_partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub bytes: u64,
    pub archives: usize,
}

/// Restores a backup set. On failure, what was written is removed (or kept, never startable,
/// with `keep_partial`), and the error names the corrupt object if one was.
pub async fn restore(req: RestoreRequest<'_>) -> Result<RestoreSummary, EngineError> {
    let keep_partial = req.keep_partial;
    let prepared = prepare(req).await?;
    let written = prepared.written().clone();
    let restored = async {
        let (summary, startable) = prepared.run(&CancellationToken::new()).await?;
        startable.commit()?;
        Ok(summary)
    };
    restored.await.map_err(|e| written.fail(e, keep_partial))
}

/// A restore whose destinations were all checked and then created: nothing else is written
/// before [`Prepared::run`].
pub(crate) struct Prepared<'a> {
    req: RestoreRequest<'a>,
    /// The sets to unpack, oldest (the full one) first: one for a full set, its chain for an
    /// incremental one.
    stages: Vec<Stage>,
    total: u64,
    /// PostgreSQL's `backup_manifest` of the set, read and checked before anything was written.
    backup_manifest: Vec<u8>,
    /// The set is PostgreSQL's own incremental backup: its label and manifest are rewritten
    /// for the rebuilt directory.
    native: bool,
    written: Written,
}

/// One set of a chain: each archive and where it is unpacked.
struct Stage {
    backup_id: String,
    archives: Vec<(String, PathBuf)>,
    /// An incremental set, applied over what the sets before it left.
    apply: bool,
}

/// The longest chain a restore follows; a longer one is a loop in corrupt metadata.
const MAX_CHAIN: usize = 1000;

/// Every check of `req` (the set and, for an incremental one, each set it builds on exist,
/// its `backup_manifest` is intact, every destination is absent or empty), then the
/// destinations created.
pub(crate) async fn prepare(req: RestoreRequest<'_>) -> Result<Prepared<'_>, EngineError> {
    let manifest = req.repo.manifest(req.backup_id).await?.ok_or_else(|| {
        EngineError::Restore(format!("backup {} is not in the repository", req.backup_id))
    })?;
    let native = manifest.meta.get("incremental").and_then(|v| v.as_str())
        == Some(incremental::base::NATIVE);
    let mut chain = vec![(req.backup_id.to_owned(), manifest)];
    while let Some(parent) = chain
        .last()
        .and_then(|(_, m)| m.meta.get("parent"))
        .and_then(|p| p.as_str())
        .map(str::to_owned)
    {
        if chain.len() >= MAX_CHAIN {
            return Err(EngineError::Restore(format!(
                "backup {} builds on a chain of more than {MAX_CHAIN} sets",
                req.backup_id
            )));
        }
        let child = chain.last().map(|(id, _)| id.clone()).unwrap_or_default();
        let m = req.repo.manifest(&parent).await?.ok_or_else(|| {
            EngineError::Restore(format!(
                "backup {child} is incremental on backup {parent}, which is not in the repository"
            ))
        })?;
        chain.push((parent, m));
    }
    chain.reverse();
    // Small, and a corrupt one fails the restore: read before anything is written.
    let backup_manifest = req.repo.read_file(req.backup_id, "backup_manifest").await?;
    let wal_dir = req.target.join("pg_wal");
    // Every destination is checked before anything is written.
    let last = chain.len() - 1;
    // A tablespace an earlier set of the chain holds and the newest does not was dropped on the
    // server since: its archive is skipped (like a dropped file, it is not restored), and its
    // old location is neither required empty nor written.
    let newest: HashSet<(String, Option<String>)> = chain[last]
        .1
        .archives
        .iter()
        .map(|a| (a.name.clone(), a.tablespace_location.clone()))
        .collect();
    let mut stages = Vec::with_capacity(chain.len());
    let mut dests: Vec<PathBuf> = Vec::new();
    let mut total = 0;
    for (i, (backup_id, manifest)) in chain.into_iter().enumerate() {
        let mut archives = Vec::with_capacity(manifest.archives.len());
        for archive in &manifest.archives {
            // Only the newest set's WAL makes the rebuilt directory consistent.
            if archive.name == "pg_wal.tar" && i != last {
                continue;
            }
            let key = (archive.name.clone(), archive.tablespace_location.clone());
            if i != last && !newest.contains(&key) {
                continue;
            }
            let dest = destination(
                req.target,
                &archive.name,
                archive.tablespace_location.as_deref(),
                req.tablespace_mapping,
            )?;
            if dest != wal_dir && !dests.contains(&dest) {
                check_empty(&dest)?;
                dests.push(dest.clone());
            }
            total += archive.raw_size;
            archives.push((archive.name.clone(), dest));
        }
        stages.push(Stage {
            backup_id,
            archives,
            apply: i > 0,
        });
    }
    let mut written = Written::default();
    for dest in &dests {
        if let Err(e) = written.create(dest, create_private_dir) {
            return Err(written.fail(e, req.keep_partial));
        }
    }
    Ok(Prepared {
        req,
        stages,
        total,
        backup_manifest,
        native,
        written,
    })
}

impl Prepared<'_> {
    /// The bytes the archives unpack to.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The directories this restore made or fills, to remove if it fails.
    pub(crate) fn written(&self) -> &Written {
        &self.written
    }

    /// Unpacks every archive and syncs what it wrote, all but `global/pg_control`: the
    /// directory becomes startable only through the returned [`Startable`]. Once `cancel`
    /// fires, the unpacking stops at its next read and this returns [`EngineError::Cancelled`].
    pub(crate) async fn run(
        self,
        cancel: &CancellationToken,
    ) -> Result<(RestoreSummary, Startable), EngineError> {
        let Prepared {
            req,
            stages,
            total,
            backup_manifest,
            native,
            written: _,
        } = self;
        let archives = stages.iter().map(|s| s.archives.len()).sum();
        let done = Arc::new(AtomicU64::new(0));
        let mut dests: Vec<PathBuf> = Vec::new();
        for (_, d) in stages.iter().flat_map(|s| &s.archives) {
            if d != &req.target.join("pg_wal") && !dests.contains(d) {
                dests.push(d.clone());
            }
        }
        // Files are fsynced on other threads as soon as they are written, so the writeback of
        // one overlaps the unpacking of the next instead of waiting for a pass at the end.
        let syncer = Arc::new(Syncer::start(SYNC_THREADS)?);
        let mut pg_control = None;
        // What the last set unpacked into each destination, for the next set to prune.
        let mut unpacked: std::collections::HashMap<PathBuf, HashSet<PathBuf>> =
            std::collections::HashMap::new();
        let plan = stages.into_iter().flat_map(|s| {
            let (id, apply) = (s.backup_id, s.apply);
            s.archives
                .into_iter()
                .map(move |(name, dest)| (id.clone(), apply, name, dest))
        });
        for (backup_id, apply, name, dest) in plan {
            // The WAL comes from the newest set alone, into a pg_wal no earlier set filled:
            // unpacked as is, it leaves the directories base.tar made there.
            let apply = apply && name != "pg_wal.tar";
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let reader = req.repo.open_archive(&backup_id, &name).await?;
            let object = reader.object();
            let repo_error = Arc::new(std::sync::Mutex::new(None));
            let runtime = tokio::runtime::Handle::current();
            let mut reader = reader;
            // Runs on the blocking thread that unpacks, like `SyncIoBridge`.
            let next = Box::new(move || runtime.block_on(reader.next_chunk()));
            let counted = Chunks::new(next, done.clone(), cancel.clone(), repo_error.clone());
            let files = syncer.clone();
            let hold = (name == "base.tar").then_some(PG_CONTROL);
            let before = apply.then(|| unpacked.remove(&dest).unwrap_or_default());
            let dest_for_task = dest.clone();
            let mut task = tokio::task::spawn_blocking(move || {
                unpack(counted, &dest_for_task, &files, &object, hold, before)
            });
            let result = loop {
                tokio::select! {
                    r = &mut task => break r,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        (req.progress)(done.load(Ordering::Relaxed), total);
                    }
                }
            };
            let unpacked_now =
                result.map_err(|e| EngineError::Restore(format!("extraction task failed: {e}")))?;
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            // Whatever tar made of it, a failed repository read is the cause: the object
            // that is missing or corrupt.
            let repo_error = repo_error.lock().map(|mut e| e.take()).ok().flatten();
            if let Some(e) = repo_error {
                return Err(EngineError::Repo(e));
            }
            let (held, listed) = unpacked_now?;
            if let Some(held) = held {
                pg_control = Some(held);
            }
            unpacked.insert(dest, listed);
        }
        let pg_control = pg_control.ok_or_else(|| {
            EngineError::Restore(format!(
                "backup {} has no {PG_CONTROL} in base.tar",
                req.backup_id
            ))
        })?;
        remap_tablespace_links(req.target, req.tablespace_mapping)?;
        let backup_manifest = if native {
            rebuilt_label_and_manifest(req.target, &backup_manifest, &syncer)?
        } else {
            backup_manifest
        };
        let manifest_path = req.target.join("backup_manifest");
        tokio::fs::write(&manifest_path, backup_manifest).await?;
        syncer.path(manifest_path)?;
        // Like pg_basebackup and pgBackRest: the restored files are on disk before we say done.
        let roots = dests.clone();
        tokio::task::spawn_blocking(move || {
            let files = Arc::try_unwrap(syncer)
                .map_err(|_| EngineError::Restore("an extraction still holds the syncer".into()))?;
            files.finish()?;
            roots.iter().try_for_each(|r| sync_dirs(r))
        })
        .await
        .map_err(|e| EngineError::Restore(format!("sync task failed: {e}")))??;
        (req.progress)(total, total);
        let startable = Startable {
            data_dir: req.target.to_path_buf(),
            pg_control,
        };
        let summary = RestoreSummary {
            bytes: total,
            archives,
        };
        Ok((summary, startable))
    }
}

/// A rebuilt native chain: `backup_label` without its `INCREMENTAL FROM` lines, and the
/// newest `backup_manifest` rewritten to describe the rebuilt files.
fn rebuilt_label_and_manifest(
    target: &Path,
    backup_manifest: &[u8],
    syncer: &Syncer,
) -> Result<Vec<u8>, EngineError> {
    let label_path = target.join("backup_label");
    let label = std::fs::read_to_string(&label_path)?;
    if !incremental::native::label_is_incremental(&label) {
        return Err(EngineError::Restore(
            "the newest set is recorded as an incremental backup, but its backup_label is not \
             one"
            .into(),
        ));
    }
    std::fs::write(&label_path, incremental::native::full_label(&label))?;
    syncer.path(label_path)?;
    let text = std::str::from_utf8(backup_manifest)
        .map_err(|_| EngineError::Restore("the backup_manifest is not UTF-8".into()))?;
    incremental::native::full_manifest(text, target)
        .map(String::into_bytes)
        .map_err(EngineError::Restore)
}

/// Refuses anything but a missing or empty directory: a restore never mixes with old files.
fn check_empty(dir: &Path) -> Result<(), EngineError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(EngineError::Restore(format!(
                "the target directory {} is not empty",
                dir.display()
            ))),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// PostgreSQL refuses a data directory others can read.
fn create_private_dir(dir: &Path) -> Result<(), EngineError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// base.tar → the data directory, pg_wal.tar → its pg_wal, a tablespace → its original
/// place or its mapping (where the symlink in pg_tblspc will point).
fn destination(
    target: &Path,
    name: &str,
    location: Option<&str>,
    mapping: &[(String, PathBuf)],
) -> Result<PathBuf, EngineError> {
    match (name, location) {
        ("base.tar", _) => Ok(target.to_path_buf()),
        ("pg_wal.tar", _) => Ok(target.join("pg_wal")),
        (_, Some(loc)) => Ok(mapping
            .iter()
            .find(|(old, _)| old == loc)
            .map_or_else(|| PathBuf::from(loc), |(_, new)| new.clone())),
        (other, None) => Err(EngineError::Restore(format!("unexpected archive {other}"))),
    }
}

/// Points pg_tblspc's symlinks at the mapped locations.
fn remap_tablespace_links(target: &Path, mapping: &[(String, PathBuf)]) -> Result<(), EngineError> {
    let dir = target.join("pg_tblspc");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries {
        let link = entry?.path();
        let Ok(points_to) = std::fs::read_link(&link) else {
            continue;
        };
        if let Some((_, new)) = mapping.iter().find(|(old, _)| Path::new(old) == points_to) {
            std::fs::remove_file(&link)?;
            std::os::unix::fs::symlink(new, &link)?;
        }
    }
    Ok(())
}

/// fsyncs every directory under `root` (symlinks are not followed), after its files: a file's
/// name is durable only once its directory is.
fn sync_dirs(root: &Path) -> Result<(), EngineError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
        std::fs::File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

/// An archive's bytes as they are read, chunk by chunk: counted for progress, and cut off once
/// cancelled. A repository error (a missing or corrupt object) is kept aside, as tar's own
/// error on top of it would hide it.
///
/// Two readers share it: tar, through `Read` (headers, and every entry but a regular file),
/// and the file writers' feed, through [`Contents`], which takes a regular file's contents
/// as slices of the verified chunks, without copying them. What the feed took is owed to tar
/// (`credit`): tar skips a file's contents by reading them, and those reads are answered
/// without data until the credit is used up, so tar's count of its position stays right.
struct Chunks {
    /// The archive's next verified chunk; `None` at its verified end.
    next: NextChunk,
    /// What is left of the chunk being read.
    current: Bytes,
    /// How many chunks were read (`current` is the last of them).
    chunk: u64,
    /// Bytes the feed took that tar has not yet skipped.
    credit: u64,
    done: Arc<AtomicU64>,
    cancel: CancellationToken,
    repo_error: Arc<std::sync::Mutex<Option<RepoError>>>,
}

type NextChunk = Box<dyn FnMut() -> Result<Option<Bytes>, RepoError> + Send>;

impl Chunks {
    fn new(
        next: NextChunk,
        done: Arc<AtomicU64>,
        cancel: CancellationToken,
        repo_error: Arc<std::sync::Mutex<Option<RepoError>>>,
    ) -> Chunks {
        Chunks {
            next,
            current: Bytes::new(),
            chunk: 0,
            credit: 0,
            done,
            cancel,
            repo_error,
        }
    }

    /// Makes `current` hold unread bytes; `false` at the archive's verified end.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        while self.current.is_empty() {
            match (self.next)() {
                Ok(Some(chunk)) => {
                    self.current = chunk;
                    self.chunk += 1;
                }
                Ok(None) => return Ok(false),
                Err(e) => {
                    let text = e.to_string();
                    if let Ok(mut slot) = self.repo_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return Err(std::io::Error::other(text));
                }
            }
        }
        Ok(true)
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.credit > 0 {
            // tar skipping what the feed took: nothing to hand over.
            let n = usize::try_from(self.credit).map_or(buf.len(), |c| c.min(buf.len()));
            self.credit -= n as u64;
            return Ok(n);
        }
        if buf.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Contents for Chunks {
    fn piece(&mut self, max: usize) -> std::io::Result<(Bytes, u64)> {
        if !self.fill()? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive ends inside a file",
            ));
        }
        let piece = self.current.split_to(self.current.len().min(max));
        self.credit += piece.len() as u64;
        self.done.fetch_add(piece.len() as u64, Ordering::Relaxed);
        Ok((piece, self.chunk))
    }

    fn chunk(&self) -> u64 {
        self.chunk
    }
}

/// [`Chunks`] for both its readers, on the one thread that unpacks an archive.
#[derive(Clone)]
struct Shared(Rc<RefCell<Chunks>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Contents for Shared {
    fn piece(&mut self, max: usize) -> std::io::Result<(Bytes, u64)> {
        self.0.borrow_mut().piece(max)
    }

    fn chunk(&self) -> u64 {
        self.0.borrow().chunk()
    }
}

/// Unpacks one archive into `dest`; the file at `hold` (relative), if any, is returned
/// instead of written. A stream that is not a valid tar is a corrupt `object`: its chunks
/// matched their digests, so only a manifest that lies can get here.
///
/// Returns the held file and every path the archive listed.
///
/// With `apply` (`Some`: what the earlier set unpacked there), the archive is an incremental
/// set laid over what earlier sets of its chain left in `dest`: its `INCREMENTAL.` entries are
/// applied, its other entries replace what was there, and what the earlier set unpacked but
/// this one does not list is removed.
fn unpack(
    chunks: Chunks,
    dest: &Path,
    syncer: &Syncer,
    object: &str,
    hold: Option<&str>,
    apply: Option<HashSet<PathBuf>>,
) -> Result<(Option<Vec<u8>>, HashSet<PathBuf>), EngineError> {
    let corrupt = |e: std::io::Error| {
        EngineError::Repo(RepoError::Corrupt {
            object: object.to_owned(),
            reason: format!("not a valid tar stream: {}", with_causes(&e)),
        })
    };
    let fail = |e: std::io::Error| {
        EngineError::Restore(format!(
            "extracting into {}: {}",
            dest.display(),
            with_causes(&e)
        ))
    };
    // tar reads headers (and what is not a regular file) from the chunks; regular files'
    // contents are taken from them directly.
    let chunks = Shared(Rc::new(RefCell::new(chunks)));
    let mut contents = chunks.clone();
    let mut archive = tar::Archive::new(chunks);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(false);
    let dest = dest.canonicalize().map_err(fail)?;
    let entries = archive.entries().map_err(corrupt)?;
    // Regular files are written by other threads meanwhile; all of them are done when
    // `with_writers` returns.
    let (directories, held, listed) = with_writers(WRITE_THREADS, syncer, |feed| {
        // As tar's own `unpack`: directories last, deepest first, so their modes and times stick.
        let mut directories = Vec::new();
        let mut held = None;
        let mut listed = HashSet::new();
        // Directories made or checked for the files written into them.
        let mut placed = HashSet::new();
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            let kind = entry.header().entry_type();
            let path = entry.path().map_err(fail)?;
            // tar's `unpack_in` skips a path with `..` in it.
            let climbs = path
                .components()
                .any(|c| c == std::path::Component::ParentDir);
            let relative: PathBuf = path
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            if kind == tar::EntryType::Directory {
                listed.insert(relative);
                directories.push(entry);
                continue;
            }
            let rebuilt = relative
                .to_str()
                .and_then(incremental::rebuilt_path)
                .filter(|_| kind.is_file());
            if let Some(rebuilt) = rebuilt {
                if apply.is_none() {
                    return Err(corrupt(std::io::Error::other(format!(
                        "{} is an incremental entry in a full backup",
                        relative.display()
                    ))));
                }
                let path = inside(&dest, Path::new(&rebuilt)).map_err(EngineError::Restore)?;
                let size = entry.size();
                incremental::apply::apply_entry(&path, size, &mut entry)
                    .map_err(EngineError::Restore)?;
                syncer.path(path)?;
                listed.insert(PathBuf::from(rebuilt));
                continue;
            }
            listed.insert(relative.clone());
            if apply.is_some() {
                let existing = dest.join(&relative);
                if std::fs::symlink_metadata(&existing).is_ok_and(|m| !m.is_dir()) {
                    std::fs::remove_file(&existing).map_err(fail)?;
                }
            }
            if kind.is_file() && hold.is_some_and(|h| relative == Path::new(h)) {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(fail)?;
                held = Some(bytes);
                continue;
            }
            if kind == tar::EntryType::Regular {
                if climbs || relative.as_os_str().is_empty() {
                    continue;
                }
                let path = place(&dest, &relative, &mut placed).map_err(fail)?;
                let header = entry.header();
                let meta = FileMeta {
                    path,
                    mode: header.mode().map_err(fail)?,
                    mtime: header.mtime().ok(),
                };
                let size = entry.size();
                // Taken past tar, which then skips them (`Chunks::credit`).
                feed.file(meta, size, &mut contents).map_err(fail)?;
                continue;
            }
            // unpack_in refuses paths that leave `dest`; only what it wrote is synced.
            if entry.unpack_in(&dest).map_err(fail)? && kind.is_file() {
                syncer.path(dest.join(relative))?;
            }
        }
        Ok((directories, held, listed))
    })?;
    let mut directories = directories;
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in directories {
        dir.unpack_in(&dest).map_err(fail)?;
    }
    if let Some(before) = &apply {
        incremental::apply::remove_stale(&dest, before, &listed).map_err(EngineError::Restore)?;
    }
    // Read to the end so the repository reader checks the whole-archive hash.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| EngineError::Restore(format!("verifying the archive: {e}")))?;
    Ok((held, listed))
}

/// Where the regular file `relative` goes under `dest`, its directory made as tar's
/// `unpack_in` makes it: refused when that directory resolves outside `dest` (through a
/// symlink an earlier entry made). A directory checked once stays good: nothing an archive
/// holds replaces a directory.
fn place(dest: &Path, relative: &Path, placed: &mut HashSet<PathBuf>) -> std::io::Result<PathBuf> {
    let path = dest.join(relative);
    let Some(parent) = path.parent() else {
        return Err(std::io::Error::other("an entry without a directory"));
    };
    if placed.contains(parent) {
        return Ok(path);
    }
    let check = |dir: &Path| -> std::io::Result<()> {
        if dir.canonicalize()?.starts_with(dest) {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{} leaves the restore target",
                relative.display()
            )))
        }
    };
    let mut missing = Vec::new();
    let mut ancestor = parent;
    while ancestor.symlink_metadata().is_err() {
        missing.push(ancestor);
        match ancestor.parent() {
            Some(up) => ancestor = up,
            None => break,
        }
    }
    for dir in missing.into_iter().rev() {
        if let Some(up) = dir.parent() {
            check(up)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    check(parent)?;
    placed.insert(parent.to_path_buf());
    Ok(path)
}

/// `relative` under `dest`, refusing a path whose directory resolves outside it (through a
/// symlink an earlier entry made).
fn inside(dest: &Path, relative: &Path) -> Result<PathBuf, String> {
    let path = dest.join(relative);
    let parent = path
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| format!("{}: its directory is missing", path.display()))?;
    if !parent.starts_with(dest) {
        return Err(format!("{} leaves the restore target", relative.display()));
    }
    Ok(path)
}

/// An error and what caused it: tar's "failed to unpack" alone hides why (a repository read
/// that failed, say).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A tar stream with what the unpacking must get right whatever the chunks: empty files,
    /// files around the block and piece sizes, one over several pieces, a GNU long name, a
    /// pax header, a directory, a symlink and the held `pg_control`.
    /// Each regular file: its path, contents and mode.
    type Files = Vec<(String, Vec<u8>, u32)>;

    fn archive() -> (Vec<u8>, Files) {
        let mut files = Vec::new();
        let sizes = [
            0, 1, 511, 512, 513, 0, 4096, 131_071, 131_072, 131_073, 300_001,
        ];
        for (i, &size) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            files.push((format!("base/1/f{i}"), data, 0o600 + (i as u32 % 2) * 0o40));
        }
        let long = format!("base/{}/long", "d".repeat(150));
        files.push((long, b"a file with a long name".to_vec(), 0o600));
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o700);
        dir.set_mtime(1_700_000_000);
        dir.set_size(0);
        b.append_data(&mut dir, "base", std::io::empty()).unwrap();
        for (i, (path, data, mode)) in files.iter().enumerate() {
            if i == 3 {
                b.append_pax_extensions([("comment", &b"restored as is"[..])])
                    .unwrap();
            }
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(1_700_000_000 + i as u64);
            b.append_data(&mut h, path, &data[..]).unwrap();
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        b.append_link(&mut link, "base/link", "1/f0").unwrap();
        let mut control = tar::Header::new_gnu();
        control.set_size(8192);
        control.set_mode(0o600);
        b.append_data(&mut control, PG_CONTROL, &[7u8; 8192][..])
            .unwrap();
        (b.into_inner().unwrap(), files)
    }

    /// `bytes` in chunks of `size`, then `end` (the verified end, or an error).
    fn chunks(
        bytes: &[u8],
        size: usize,
        end: Option<RepoError>,
    ) -> (Chunks, Arc<std::sync::Mutex<Option<RepoError>>>) {
        let mut parts: std::collections::VecDeque<Bytes> =
            bytes.chunks(size).map(Bytes::copy_from_slice).collect();
        let mut end = end;
        let next: NextChunk = Box::new(move || match parts.pop_front() {
            Some(part) => Ok(Some(part)),
            None => end.take().map_or(Ok(None), Err),
        });
        let repo_error = Arc::new(std::sync::Mutex::new(None));
        let done = Arc::new(AtomicU64::new(0));
        let c = Chunks::new(next, done, CancellationToken::new(), repo_error.clone());
        (c, repo_error)
    }

    #[test]
    fn files_come_out_whole_wherever_the_chunks_cut_the_tar_stream() {
        let (tar, files) = archive();
        // 512 ± 1 cut headers and contents at every offset of a block; 3 cuts every header.
        for size in [3, 511, 512, 513, 4099, 65_536, 1 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let syncer = Syncer::start(1).unwrap();
            let (source, _) = chunks(&tar, size, None);
            let (held, listed) =
                unpack(source, dir.path(), &syncer, "obj", Some(PG_CONTROL), None).unwrap();
            syncer.finish().unwrap();
            assert_eq!(held.as_deref(), Some(&[7u8; 8192][..]), "chunks of {size}");
            for (i, (path, data, mode)) in files.iter().enumerate() {
                let at = dir.path().join(path);
                assert_eq!(
                    &std::fs::read(&at).unwrap(),
                    data,
                    "{path}, chunks of {size}"
                );
                let m = std::fs::metadata(&at).unwrap();
                assert_eq!(m.permissions().mode() & 0o7777, *mode, "{path}");
                let mtime = m.modified().unwrap().duration_since(std::time::UNIX_EPOCH);
                assert_eq!(mtime.unwrap().as_secs(), 1_700_000_000 + i as u64, "{path}");
                assert!(listed.contains(Path::new(path)), "{path}");
            }
            let link = std::fs::read_link(dir.path().join("base/link")).unwrap();
            assert_eq!(link, Path::new("1/f0"));
            assert!(!dir.path().join(PG_CONTROL).exists(), "held, not written");
        }
    }

    #[test]
    fn an_archive_cut_inside_a_file_fails_and_a_repository_error_is_kept() {
        let (tar, _) = archive();
        let inside = tar.len() - 8192 - 1024 - 100_000;
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start(1).unwrap();
        let (source, kept) = chunks(&tar[..inside], 4096, None);
        let err = unpack(source, dir.path(), &syncer, "obj", Some(PG_CONTROL), None)
            .unwrap_err()
            .to_string();
        syncer.finish().unwrap();
        assert!(err.contains("ends inside a file"), "{err}");
        assert!(kept.lock().unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start(1).unwrap();
        let bad = RepoError::Corrupt {
            object: "backups/x/c1".into(),
            reason: "stored blake3 does not match the manifest".into(),
        };
        let (source, kept) = chunks(&tar[..inside], 4096, Some(bad));
        assert!(unpack(source, dir.path(), &syncer, "obj", None, None).is_err());
        syncer.finish().unwrap();
        let kept = kept.lock().unwrap().take().map(|e| e.to_string());
        assert!(kept.is_some_and(|e| e.contains("backups/x/c1")));
    }
}
