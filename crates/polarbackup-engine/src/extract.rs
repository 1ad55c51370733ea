//! A restore's files written on a few threads while the archive is still being read, and
//! fsynced on others as soon as each is complete.
//!
//! The thread reading the tar stream only parses headers and hands file contents over as
//! pieces of the archive's verified chunks (`Bytes` slices, no copy). Small files go in
//! batches, written with `write(2)`; a large file is streamed to one writer piece by piece,
//! gathered into aligned blocks written with `O_DIRECT` (or, where the file system refuses
//! that, written buffered with its writeback flushed as it grows), so its final fsync waits
//! only for the tail. Every finished file goes to the [`Syncer`].

use crate::EngineError;
use bytes::Bytes;
use polarbackup_repo::{set_direct, write_direct, AlignedBuf};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

/// Bytes per piece: the most one write call gets, and the most file contents in one batch of
/// small files.
const PIECE: usize = 128 << 10;
/// Pieces (and batches) between the reading thread and the writers: at most 4 MiB of file
/// contents queued.
const BUFFERS: usize = 32;
/// The pieces in flight lie in at most this many chunks after the oldest one any of them lies
/// in: what the writers keep of the archive is at most `CHUNK_SPAN + 1` chunks (the read-ahead
/// holds the ones after).
const CHUNK_SPAN: u64 = 2;
/// Small files in one batch at most.
const BATCH_FILES: usize = 256;
/// Pieces of one large file queued for its writer.
const PIECES_QUEUED: usize = 4;
/// A large file is flushed (`fdatasync`, on a sync thread) every this many bytes written.
const WRITEBACK_EVERY: u64 = 32 << 20;
/// How many threads write files.
pub(crate) const WRITE_THREADS: usize = 2;

/// Where a file's contents come from: the archive's verified chunks, numbered in order.
pub(crate) trait Contents {
    /// The next at most `max` (> 0) bytes of the archive (fewer at the end of a chunk), and
    /// the number of the chunk they lie in; an error if the archive ends first.
    fn piece(&mut self, max: usize) -> std::io::Result<(Bytes, u64)>;
    /// The number of the chunk the next byte lies in (or the last one read).
    fn chunk(&self) -> u64;
}

/// A regular file to create: where, and the mode and modification time its tar header gives.
pub(crate) struct FileMeta {
    pub(crate) path: PathBuf,
    pub(crate) mode: u32,
    /// Seconds since the epoch (tar's own `unpack` sets both times to it, 0 as 1).
    pub(crate) mtime: Option<u64>,
}

enum Job {
    /// Whole files and their contents; `chunk` is the first chunk they lie in (the
    /// batch's token, handed back when it is written).
    Batch {
        chunk: u64,
        files: Vec<(FileMeta, Bytes)>,
    },
    /// A file of `size` bytes whose contents arrive on `pieces`, each with the chunk it lies
    /// in (its token).
    Stream {
        meta: FileMeta,
        size: u64,
        pieces: Receiver<(Bytes, u64)>,
    },
}

/// The first error of any writer; once set, the reader stops.
#[derive(Default)]
struct Failure {
    set: AtomicBool,
    error: Mutex<Option<EngineError>>,
}

impl Failure {
    fn record(&self, e: EngineError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        self.set.store(true, Ordering::Release);
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<EngineError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}

/// Runs `body` with a [`Feed`] whose files `threads` writers create meanwhile; returns once
/// every file handed over was written and handed to `syncer`. A writer's error wins over
/// `body`'s (which then only says the writers stopped).
pub(crate) fn with_writers<T>(
    threads: usize,
    syncer: &Syncer,
    body: impl FnOnce(&mut Feed) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    let failure = Failure::default();
    let (jobs_tx, jobs_rx) = channel::<Job>();
    let jobs_rx = Mutex::new(jobs_rx);
    let (free_tx, free_rx) = channel::<u64>();
    let result = std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let (jobs, free, fail) = (&jobs_rx, free_tx.clone(), &failure);
            let spawned = std::thread::Builder::new()
                .name("restore-write".into())
                .spawn_scoped(s, move || write_jobs(jobs, &free, syncer, fail));
            if let Err(e) = spawned {
                failure.record(EngineError::Restore(format!("starting a file writer: {e}")));
            }
        }
        drop(free_tx);
        let mut feed = Feed {
            jobs: Some(jobs_tx),
            free: free_rx,
            in_flight: 0,
            chunks: BTreeMap::new(),
            batch: None,
            failure: &failure,
        };
        let result = body(&mut feed).and_then(|t| feed.finish().map(|()| t));
        // Whatever happened, the writers see the end of their queue and return.
        drop(feed);
        result
    });
    match failure.take() {
        Some(e) => Err(e),
        None => result,
    }
}

/// The batch being filled: its token's chunk, the bytes used, the files in it.
type Batch = (u64, usize, Vec<(FileMeta, Bytes)>);

/// The reading side: hands files to the writers.
pub(crate) struct Feed<'a> {
    jobs: Option<Sender<Job>>,
    /// Tokens handed back by the writers: the chunk of a piece or batch written.
    free: Receiver<u64>,
    /// Tokens out (pieces and batches queued or being written, the batch being filled).
    in_flight: usize,
    /// How many tokens out lie in each chunk.
    chunks: BTreeMap<u64, usize>,
    batch: Option<Batch>,
    failure: &'a Failure,
}

impl Feed<'_> {
    /// Takes the `size` bytes of a regular file from `data` and has it written at
    /// `meta.path` (which must not exist; its directory must).
    pub(crate) fn file(
        &mut self,
        meta: FileMeta,
        size: u64,
        data: &mut impl Contents,
    ) -> std::io::Result<()> {
        self.check()?;
        match usize::try_from(size) {
            Ok(small) if small <= PIECE => self.small(meta, small, data),
            _ => self.stream(meta, size, data),
        }
    }

    fn small(
        &mut self,
        meta: FileMeta,
        size: usize,
        data: &mut impl Contents,
    ) -> std::io::Result<()> {
        let (bytes, chunk) = whole(data, size)?;
        // A batch's files lie in the chunk of its token (or were copied out of two).
        let full = self.batch.as_ref().is_some_and(|(first, used, files)| {
            used + size > PIECE || files.len() >= BATCH_FILES || chunk != *first
        });
        if full {
            self.send_batch()?;
        }
        if self.batch.is_none() {
            self.token(chunk)?;
            self.batch = Some((chunk, 0, Vec::new()));
        }
        let Some((_, used, files)) = &mut self.batch else {
            return Err(stopped());
        };
        *used += size;
        files.push((meta, bytes));
        Ok(())
    }

    fn stream(
        &mut self,
        meta: FileMeta,
        size: u64,
        data: &mut impl Contents,
    ) -> std::io::Result<()> {
        let (tx, rx) = sync_channel(PIECES_QUEUED);
        self.send(Job::Stream {
            meta,
            size,
            pieces: rx,
        })?;
        let mut left = size;
        while left > 0 {
            self.check()?;
            let n = usize::try_from(left).map_or(PIECE, |l| l.min(PIECE));
            let (piece, chunk) = data.piece(n)?;
            self.token(chunk)?;
            left -= piece.len() as u64;
            tx.send((piece, chunk)).map_err(|_| stopped())?;
        }
        Ok(())
    }

    /// Takes a token for a piece (or batch) lying in `chunk`: waits while `BUFFERS` are out,
    /// or while the oldest one out lies more than `CHUNK_SPAN` chunks back.
    fn token(&mut self, chunk: u64) -> std::io::Result<()> {
        while let Ok(done) = self.free.try_recv() {
            self.returned(done);
        }
        while self.in_flight >= BUFFERS
            || self
                .chunks
                .keys()
                .next()
                .is_some_and(|&oldest| chunk > oldest + CHUNK_SPAN)
        {
            // The batch being filled holds a token too: sent, its writer hands it back.
            if self.batch.is_some() {
                self.send_batch()?;
                continue;
            }
            // Every writer hands back every token, also after an error; none coming back
            // means they are gone.
            let done = self.free.recv().map_err(|_| stopped())?;
            self.returned(done);
        }
        self.in_flight += 1;
        *self.chunks.entry(chunk).or_default() += 1;
        Ok(())
    }

    fn returned(&mut self, chunk: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(n) = self.chunks.get_mut(&chunk) {
            *n -= 1;
            if *n == 0 {
                self.chunks.remove(&chunk);
            }
        }
    }

    fn send_batch(&mut self) -> std::io::Result<()> {
        match self.batch.take() {
            Some((chunk, _, files)) => self.send(Job::Batch { chunk, files }),
            None => Ok(()),
        }
    }

    fn send(&mut self, job: Job) -> std::io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())
    }

    fn check(&self) -> std::io::Result<()> {
        if self.failure.is_set() {
            return Err(stopped());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        self.send_batch()
            .map_err(|e| EngineError::Restore(e.to_string()))?;
        self.jobs = None;
        Ok(())
    }
}

/// The `size` (≤ `PIECE`) bytes of a small file and the chunk they (or their end) lie in: a
/// slice of one chunk, or, for a file across a chunk boundary, a copy of its parts.
fn whole(data: &mut impl Contents, size: usize) -> std::io::Result<(Bytes, u64)> {
    if size == 0 {
        return Ok((Bytes::new(), data.chunk()));
    }
    let (first, mut chunk) = data.piece(size)?;
    if first.len() == size {
        return Ok((first, chunk));
    }
    let mut joined = Vec::with_capacity(size);
    joined.extend_from_slice(&first);
    while joined.len() < size {
        let (more, c) = data.piece(size - joined.len())?;
        joined.extend_from_slice(&more);
        chunk = c;
    }
    Ok((Bytes::from(joined), chunk))
}

fn stopped() -> std::io::Error {
    std::io::Error::other("the file writers stopped")
}

/// A writer: takes jobs until the feed is gone. After an error (its own or another
/// writer's) it writes nothing more but still returns every buffer, so the feed never
/// waits for one.
fn write_jobs(jobs: &Mutex<Receiver<Job>>, free: &Sender<u64>, syncer: &Syncer, failure: &Failure) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        match job {
            Job::Batch { chunk, files } => {
                for (meta, bytes) in files {
                    if failure.is_set() {
                        break;
                    }
                    let written = create(&meta).and_then(|mut f| {
                        f.write_all(&bytes)?;
                        finish_file(f, &meta)
                    });
                    match written {
                        Ok(f) => syncer.file(f, meta.path),
                        Err(e) => failure.record(write_error(&meta, e)),
                    }
                }
                let _ = free.send(chunk);
            }
            Job::Stream { meta, size, pieces } => {
                if !failure.is_set() {
                    match stream_file(&meta, size, &pieces, free, syncer) {
                        Ok(Some(f)) => syncer.file(f, meta.path),
                        // The feed stopped inside the file: its own error says why.
                        Ok(None) => {}
                        Err(e) => failure.record(write_error(&meta, e)),
                    }
                }
                for (_, chunk) in pieces {
                    let _ = free.send(chunk);
                }
            }
        }
    }
}

fn write_error(meta: &FileMeta, e: std::io::Error) -> EngineError {
    EngineError::Restore(format!("writing {}: {e}", meta.path.display()))
}

/// Writes a streamed file as its pieces arrive: around the page cache ([`Sink`]) where the
/// file system allows, else buffered with what it wrote so far flushed every
/// `WRITEBACK_EVERY` bytes on a sync thread, so its final fsync waits only for the tail;
/// `None` when the feed stopped before its end.
fn stream_file(
    meta: &FileMeta,
    size: u64,
    pieces: &Receiver<(Bytes, u64)>,
    free: &Sender<u64>,
    syncer: &Syncer,
) -> std::io::Result<Option<File>> {
    let mut sink = Sink::create(meta)?;
    let (mut written, mut flushed) = (0u64, 0u64);
    while written < size {
        // The feed stops sending only when the restore failed: this file is never used.
        let Ok((piece, chunk)) = pieces.recv() else {
            return Ok(None);
        };
        let wrote = sink.write(&piece);
        // The piece (with the last one, its chunk) is let go before its token goes back.
        let n = piece.len();
        drop(piece);
        let _ = free.send(chunk);
        wrote?;
        written += n as u64;
        if let Sink::Buffered(file) = &sink {
            if written - flushed >= WRITEBACK_EVERY {
                syncer.data(file.try_clone()?, meta.path.clone());
                flushed = written;
            }
        }
    }
    finish_file(sink.finish(written)?, meta).map(Some)
}

/// Bytes a direct writer gathers before each write.
const DIRECT_WRITE: usize = 8 << 20;

thread_local! {
    /// A writer thread's gathering buffers for direct writes, kept from file to file.
    static SPARES: RefCell<Vec<AlignedBuf>> = const { RefCell::new(Vec::new()) };
}

/// Where a streamed file's bytes go. Direct: gathered into whole aligned blocks and written
/// with `O_DIRECT`, so a restore neither copies into freshly allocated cache pages (most of a
/// buffered write's CPU on a VM that hands free pages back to its host) nor evicts what the
/// host has cached; a last part block goes through the page cache ([`write_direct`]).
enum Sink {
    Direct(DirectSink),
    Buffered(File),
}

/// A file written in `DIRECT_WRITE` blocks, each on a thread of its own while the next one is
/// gathered: the device's write overlaps the copy into the other buffer.
struct DirectSink {
    file: Arc<File>,
    /// Bytes handed to block writes so far.
    at: u64,
    /// The block being gathered, and how much of it is.
    block: AlignedBuf,
    gathered: usize,
    /// The last full block's write: its buffer back when it is done.
    writing: Option<std::thread::JoinHandle<std::io::Result<AlignedBuf>>>,
}

impl Sink {
    /// The new file at `meta.path`, written directly if the file system allows.
    fn create(meta: &FileMeta) -> std::io::Result<Sink> {
        let file = create(meta)?;
        Ok(match set_direct(&file)? {
            true => Sink::Direct(DirectSink {
                file: Arc::new(file),
                at: 0,
                block: spare(),
                gathered: 0,
                writing: None,
            }),
            false => Sink::Buffered(file),
        })
    }

    fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let d = match self {
            Sink::Buffered(file) => return file.write_all(data),
            Sink::Direct(d) => d,
        };
        while !data.is_empty() {
            let n = (DIRECT_WRITE - d.gathered).min(data.len());
            d.block.blocks(DIRECT_WRITE)?[d.gathered..d.gathered + n].copy_from_slice(&data[..n]);
            (d.gathered, data) = (d.gathered + n, &data[n..]);
            if d.gathered == DIRECT_WRITE {
                let next = match d.writing.take() {
                    Some(w) => joined(w)?,
                    None => spare(),
                };
                let (file, at) = (d.file.clone(), d.at);
                let mut full = std::mem::replace(&mut d.block, next);
                let write = move || {
                    file.write_all_at(full.blocks(DIRECT_WRITE)?, at)?;
                    Ok(full)
                };
                let named = std::thread::Builder::new().name("restore-direct".into());
                d.writing = Some(named.spawn(write)?);
                (d.at, d.gathered) = (d.at + DIRECT_WRITE as u64, 0);
            }
        }
        Ok(())
    }

    /// Waits for the last block's write and writes what is gathered (the file then has its
    /// `size` bytes): the file.
    fn finish(self, size: u64) -> std::io::Result<File> {
        let mut d = match self {
            Sink::Buffered(file) => return Ok(file),
            Sink::Direct(d) => d,
        };
        if let Some(w) = d.writing.take() {
            keep(joined(w)?);
        }
        let gathered = d.gathered;
        if gathered > 0 {
            write_direct(&d.file, d.block.blocks(gathered)?, gathered, d.at)?;
        }
        debug_assert_eq!(d.at + gathered as u64, size);
        keep(std::mem::take(&mut d.block));
        // The block writes have ended, so this is the only handle left.
        Arc::try_unwrap(d.file)
            .map_err(|_| std::io::Error::other("a block write still holds the file"))
    }
}

/// A gathering buffer: one this thread kept, or a new one.
fn spare() -> AlignedBuf {
    SPARES.with_borrow_mut(|s| s.pop()).unwrap_or_default()
}

/// Keeps `buf` for this thread's next direct file (two at most: one gathering, one writing).
fn keep(buf: AlignedBuf) {
    SPARES.with_borrow_mut(|s| {
        if s.len() < 2 {
            s.push(buf);
        }
    });
}

/// A block write's result, its buffer back.
fn joined(w: std::thread::JoinHandle<std::io::Result<AlignedBuf>>) -> std::io::Result<AlignedBuf> {
    w.join()
        .map_err(|_| std::io::Error::other("a block write panicked"))?
}

fn create(meta: &FileMeta) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&meta.path)
}

/// Times and mode as tar's own `unpack` with preserved permissions and times sets them.
fn finish_file(file: File, meta: &FileMeta) -> std::io::Result<File> {
    if let Some(mtime) = meta.mtime {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(1));
        file.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode))?;
    Ok(file)
}

/// How many threads fsync restored files while extraction goes on. fsyncs mostly wait for
/// the disk and the journal, and concurrent ones share a journal commit.
pub(crate) const SYNC_THREADS: usize = 4;
/// Files waiting for an fsync at most (each holds a descriptor).
const SYNC_QUEUED: usize = 256;

/// fsyncs files handed to it on a few threads; `finish` waits for all and reports the first
/// error. It takes open files, so a file removed meanwhile (a later set of a chain replaced
/// it) is still synced, never missed or failed by name. Dropped unfinished (the restore
/// failed), it closes what is queued without syncing it and waits for its threads, so no
/// descriptor keeps a removed file's space.
pub(crate) struct Syncer {
    /// A file, its path (for errors), and whether it is complete (else only its data so far
    /// is flushed). `None` once finished.
    tx: Option<SyncSender<(File, PathBuf, bool)>>,
    workers: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    abandoned: Arc<AtomicBool>,
}

impl Syncer {
    pub(crate) fn start(threads: usize) -> Result<Syncer, EngineError> {
        let (tx, rx) = sync_channel::<(File, PathBuf, bool)>(SYNC_QUEUED);
        let rx = Arc::new(Mutex::new(rx));
        let abandoned = Arc::new(AtomicBool::new(false));
        let workers = (0..threads.max(1))
            .map(|_| {
                let (rx, abandoned) = (rx.clone(), abandoned.clone());
                let named = std::thread::Builder::new().name("restore-fsync".into());
                named.spawn(move || -> std::io::Result<()> {
                    let mut first_error = None;
                    loop {
                        let next = rx
                            .lock()
                            .map_err(|_| std::io::Error::other("poisoned"))?
                            .recv();
                        let Ok((file, path, complete)) = next else {
                            break;
                        };
                        // Keep draining after an error so the sender never blocks on us.
                        if first_error.is_none() && !abandoned.load(Ordering::Acquire) {
                            let synced = if complete {
                                file.sync_all()
                            } else {
                                file.sync_data()
                            };
                            if let Err(e) = synced {
                                first_error = Some(std::io::Error::new(
                                    e.kind(),
                                    format!("fsync {}: {e}", path.display()),
                                ));
                            }
                        }
                    }
                    first_error.map_or(Ok(()), Err)
                })
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| EngineError::Restore(format!("starting an fsync thread: {e}")))?;
        Ok(Syncer {
            tx: Some(tx),
            workers,
            abandoned,
        })
    }

    /// Queues `file` (at `path`, for errors) for an fsync.
    pub(crate) fn file(&self, file: File, path: PathBuf) {
        // The workers outlive every sender; a send can only fail after `finish`.
        if let Some(tx) = &self.tx {
            let _ = tx.send((file, path, true));
        }
    }

    /// Queues a flush of what was written to `file` so far: its writeback starts before the
    /// file is complete. Its final fsync comes through [`Syncer::file`].
    fn data(&self, file: File, path: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((file, path, false));
        }
    }

    /// Opens `path` and queues it for an fsync.
    pub(crate) fn path(&self, path: PathBuf) -> Result<(), EngineError> {
        let file = File::open(&path).map_err(|e| {
            EngineError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })?;
        self.file(file, path);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<(), EngineError> {
        self.tx = None;
        let mut result = Ok(());
        for w in std::mem::take(&mut self.workers) {
            let r = w
                .join()
                .map_err(|_| EngineError::Restore("an fsync thread panicked".into()))?;
            if let (Ok(()), Err(e)) = (&result, r) {
                result = Err(EngineError::Io(e));
            }
        }
        result
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        self.abandoned.store(true, Ordering::Release);
        self.tx = None;
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syncer_syncs_every_file_and_reports_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Syncer::start(2).unwrap();
        for i in 0..20 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, b"x").unwrap();
            ok.path(path).unwrap();
        }
        ok.finish().unwrap();

        // A file removed after it was queued is still synced (a later set replaced it).
        let removed = Syncer::start(1).unwrap();
        let path = dir.path().join("f1");
        removed.path(path.clone()).unwrap();
        std::fs::remove_file(&path).unwrap();
        removed.finish().unwrap();

        // A character device cannot be fsynced: the error names it.
        let failing = Syncer::start(2).unwrap();
        failing.path(dir.path().join("f2")).unwrap();
        failing.path(PathBuf::from("/dev/null")).unwrap();
        failing.path(dir.path().join("f3")).unwrap();
        let err = failing.finish().unwrap_err().to_string();
        assert!(err.contains("fsync /dev/null"), "{err}");
    }

    /// Contents cut into chunks of `chunk` bytes, as the archive's chunks cut a file.
    struct Chunked {
        data: Bytes,
        chunk: usize,
        taken: usize,
    }

    impl Chunked {
        fn new(data: &[u8], chunk: usize) -> Chunked {
            Chunked {
                data: Bytes::copy_from_slice(data),
                chunk,
                taken: 0,
            }
        }
    }

    impl Contents for Chunked {
        fn piece(&mut self, max: usize) -> std::io::Result<(Bytes, u64)> {
            if self.data.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let in_chunk = self.chunk - self.taken % self.chunk;
            let n = max.min(in_chunk).min(self.data.len());
            let number = (self.taken / self.chunk) as u64;
            self.taken += n;
            Ok((self.data.split_to(n), number))
        }

        fn chunk(&self) -> u64 {
            (self.taken / self.chunk) as u64
        }
    }

    fn meta(path: PathBuf, mode: u32, mtime: u64) -> FileMeta {
        FileMeta {
            path,
            mode,
            mtime: Some(mtime),
        }
    }

    #[test]
    fn writers_write_small_and_large_files_with_their_mode_and_time() {
        let dir = tempfile::tempdir().unwrap();
        write_files_and_check(dir.path());
    }

    /// The same on a file system without `O_DIRECT` (ramfs): large files written buffered.
    #[test]
    fn writers_write_buffered_where_direct_io_is_refused() {
        let disk = polarbackup_testkit::Tmpfs::ramfs();
        let probe = File::create(disk.path().join("probe")).expect("probe");
        let refused = set_direct(&probe);
        assert!(matches!(refused, Ok(false)), "{refused:?}");
        write_files_and_check(disk.path());
    }

    /// Writes files of many sizes (and modes and times) under `dir` and checks each.
    fn write_files_and_check(dir: &std::path::Path) {
        // Sizes around the batch and piece boundaries, around a direct write's and in no
        // whole block (the last part block written through the page cache), one large enough
        // to be flushed on its way (when buffered), and several batches' worth of files.
        let sizes = [
            0,
            1,
            511,
            PIECE - 1,
            PIECE,
            PIECE + 1,
            3 * PIECE + 7,
            DIRECT_WRITE - 1,
            2 * DIRECT_WRITE + 12_345,
            40 << 20,
        ];
        let mut expected = Vec::new();
        let syncer = Syncer::start(2).unwrap();
        with_writers(2, &syncer, |feed| {
            for (i, &size) in sizes.iter().chain(&[4096; 600]).enumerate() {
                let data: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
                let path = dir.join(format!("f{i}"));
                let mode = if i % 2 == 0 { 0o600 } else { 0o640 };
                // Chunk sizes that cut files anywhere: inside a small file, between
                // pieces, and in a large file many times.
                let chunk = [PIECE / 3, 4096, 1 << 20, 777][i % 4];
                feed.file(
                    meta(path.clone(), mode, 1_000_000 + i as u64),
                    size as u64,
                    &mut Chunked::new(&data, chunk),
                )
                .unwrap();
                expected.push((path, data, mode, 1_000_000 + i as u64));
            }
            Ok(())
        })
        .unwrap();
        syncer.finish().unwrap();
        for (path, data, mode, mtime) in expected {
            assert_eq!(std::fs::read(&path).unwrap(), data, "{}", path.display());
            let m = std::fs::metadata(&path).unwrap();
            assert_eq!(m.permissions().mode() & 0o7777, mode);
            let secs = m
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(secs, mtime);
        }
    }

    /// Contents that fail after `ok` bytes, like an archive cut off by a repository error.
    struct CutOff {
        ok: usize,
    }

    impl Contents for CutOff {
        fn piece(&mut self, max: usize) -> std::io::Result<(Bytes, u64)> {
            if self.ok == 0 {
                return Err(std::io::Error::other("the archive is cut off"));
            }
            let n = max.min(self.ok).min(5000);
            self.ok -= n;
            Ok((Bytes::from(vec![3; n]), 0))
        }

        fn chunk(&self) -> u64 {
            0
        }
    }

    #[test]
    fn a_read_failing_inside_a_large_file_is_the_result_not_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start(1).unwrap();
        let path = dir.path().join("big");
        let err = with_writers(2, &syncer, |feed| {
            feed.file(
                meta(path.clone(), 0o600, 1),
                8 * PIECE as u64,
                &mut CutOff { ok: 2 * PIECE + 5 },
            )
            .map_err(EngineError::Io)
        })
        .unwrap_err()
        .to_string();
        syncer.finish().unwrap();
        assert!(err.contains("cut off"), "{err}");
    }

    #[test]
    fn a_writer_error_stops_the_feed_and_is_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start(1).unwrap();
        let mut fed = 0;
        let err = with_writers(2, &syncer, |feed| {
            // The second file's directory is missing: its writer fails, and the feed stops
            // within the files already queued.
            let big = vec![1u8; 3 * PIECE];
            for i in 0..100 {
                let path = if i == 1 {
                    dir.path().join("missing/f")
                } else {
                    dir.path().join(format!("f{i}"))
                };
                let mut contents = Chunked::new(&big, 1 << 20);
                if let Err(e) = feed.file(meta(path, 0o600, 1), big.len() as u64, &mut contents) {
                    return Err(EngineError::Io(e));
                }
                fed += 1;
            }
            Ok(())
        })
        .unwrap_err()
        .to_string();
        syncer.finish().unwrap();
        assert!(err.contains("missing/f"), "{err}");
        assert!(fed < 100, "the feed stopped");
    }
}
