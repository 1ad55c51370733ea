//! The nonce log, `<metadata file>-nonce-log`: an append-only file of the signature nonces
//! used, read into a set in memory, so using one costs a lookup, an append and a share of one
//! `fdatasync` instead of a SQLite transaction.
//!
//! Layout: a 16-byte header (magic, format version), then frames. A frame is one committed
//! batch: payload length (u32 LE), the first 8 bytes of the payload's SHA-256, the payload.
//! The payload is records: expiry (i64 LE, seconds), key id and nonce (each u16 LE length and
//! bytes). A frame is complete and its digest matches, or it is the unfinished write of a
//! process that died (nobody was answered for it) and is cut off by the next writer.
//!
//! The file is kept longer than its frames by a tail of written zeros (a zero frame head ends
//! the log), extended by the write that finds it short: a frame then mostly overwrites blocks
//! the file already has, so its `fdatasync` writes the data only, not the inode's new size (a
//! second write, or a journal commit on a journaling file system: about a third of the sync's
//! time here, `bench/fsync_tail.py`). Versions that wrote no tail read one as an unfinished
//! frame of length 0 and cut it off: the records are the same either way. A torn write is a prefix (a process
//! died in it) followed by zeros, or after a machine crash any pieces of it past the last
//! frame; either is cut off, while a bad frame with anything but zeros after it is damage.
//!
//! Several handles, in one process or several, share the file: every read and write happens
//! under an exclusive `flock` of it, and each handle first folds in what others appended since
//! it last looked, so a nonce is used once across all of them. Compaction writes the live
//! records to a new file and renames it over the log; a handle that then takes the lock on the
//! old file sees that the path names another file, and starts over from the new one.

use crate::{Result, StoreError};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PBNONCE\n";
/// The format this binary writes; a log of a later one is refused.
pub(super) const FORMAT: u32 = 1;
const HEADER_LEN: u64 = 16;
const FRAME_HEAD: usize = 12;
/// A frame larger than this is damage: writers close a frame once its payload reaches
/// `FRAME_TARGET`, and one record is at most 8 + 2 × (2 + 65535) bytes.
const MAX_FRAME: usize = 16 << 20;
/// Where writers close a frame and start the next (a large batch, adoption, compaction).
const FRAME_TARGET: usize = 1 << 20;
/// Compaction starts once the log holds this many records and more than twice the live ones.
const COMPACT_MIN_RECORDS: u64 = 100_000;
/// How often (seconds of the callers' clock) a handle drops expired nonces from its set.
const PRUNE_EVERY: i64 = 60;
/// The zero tail: once a write would leave less than `TAIL_LOW` of it, that write carries
/// zeros up to `TAIL` past its frames (one larger write and a size change, in its one sync,
/// every ~100 KiB of nonces).
const TAIL_LOW: u64 = 32 << 10;
const TAIL: u64 = 128 << 10;

/// One nonce as stored: which key, which nonce, until when (seconds) it may not be used again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub key: String,
    pub nonce: String,
    pub expires_at: i64,
}

/// One handle's view of the log: the file, how far of it is folded into `live`, and the
/// nonces not yet expired (by a keyed 64-bit hash of key and nonce: a collision could only
/// refuse a fresh nonce, never accept a used one).
pub(super) struct NonceLog {
    path: PathBuf,
    file: File,
    /// Where this handle's view of the frames ends (the next frame goes here).
    read_to: u64,
    /// The file's length (frames and the zero tail): read when the lock is taken, then kept
    /// by this handle's own writes while it holds the lock.
    len: u64,
    /// Whether the tail after `read_to` was found all zeros since the file was opened: until
    /// then it may hold pieces of a write torn by a crash.
    tail_checked: bool,
    records: u64,
    live: HashMap<u64, i64>,
    hasher: RandomState,
    next_prune: i64,
    /// The latest batch's earliest caller's now (seconds): compaction drops what expired
    /// before it.
    last_now: i64,
    /// This handle holds the lock between calls ([`NonceLog::lease`]): nobody else writes,
    /// so a nonce is decided from the set alone and written without a sync.
    leased: bool,
    /// Written since the last sync (under a lease).
    unsynced: bool,
}

impl NonceLog {
    /// Opens the log at `path`, creating it (0600, header written and synced) if missing, and
    /// refusing a file that is not a nonce log or is of a later format. Reads no records.
    pub(super) fn open(path: &Path) -> Result<Self> {
        let file = open_file(path)?;
        let mut log = Self {
            path: path.to_owned(),
            file,
            read_to: HEADER_LEN,
            len: 0,
            tail_checked: false,
            records: 0,
            live: HashMap::new(),
            hasher: RandomState::new(),
            next_prune: i64::MIN,
            last_now: i64::MIN,
            leased: false,
            unsynced: false,
        };
        log.locked(|log| log.ensure_header())?;
        Ok(log)
    }

    /// Folds in every record the file holds now; returns how many nonces are remembered.
    pub(super) fn load(&mut self) -> Result<u64> {
        self.locked(|log| log.catch_up())?;
        Ok(self.live.len() as u64)
    }

    /// Runs `f` holding the log's lock ([`NonceLog::lock`]); under a lease the lock is already
    /// held, and stays.
    pub(super) fn locked<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.leased {
            return f(self);
        }
        self.lock()?;
        let out = f(self);
        let _ = self.file.unlock();
        out
    }

    /// Takes the lock on the file the path names now (reopened, and read from the start, when
    /// compaction replaced it).
    fn lock(&mut self) -> Result<()> {
        loop {
            self.file.lock()?;
            let current = path_ino(&self.path).ok();
            match ino_and_len(&self.file) {
                Ok((ino, len)) if current == Some(ino) => {
                    self.len = len;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = self.file.unlock();
                    return Err(e.into());
                }
            }
            let _ = self.file.unlock();
            self.file = open_file(&self.path)?;
            self.read_to = HEADER_LEN;
            self.len = 0;
            self.tail_checked = false;
            self.records = 0;
            self.live.clear();
        }
        Ok(())
    }

    /// Takes the lock and keeps it, caught up, until [`NonceLog::end_lease`]: meanwhile
    /// [`NonceLog::use_leased`] decides nonces from the set alone and writes them unsynced.
    pub(super) fn lease(&mut self) -> Result<()> {
        if self.leased {
            return Ok(());
        }
        self.lock()?;
        if let Err(e) = self.catch_up() {
            let _ = self.file.unlock();
            return Err(e);
        }
        self.leased = true;
        Ok(())
    }

    /// Whether this handle holds a lease.
    pub(super) fn is_leased(&self) -> bool {
        self.leased
    }

    /// Ends the lease's unsynced uses ([`NonceLog::use_leased`] answers `None` from now on) but
    /// keeps the lock: returns a second handle on the file, to sync what was written under the
    /// lease without holding this one, or `None` when there is nothing to sync. Then
    /// [`NonceLog::unlock_after_lease`].
    pub(super) fn end_lease(&mut self) -> Option<std::io::Result<File>> {
        let ended = std::mem::replace(&mut self.leased, false);
        (ended && self.unsynced).then(|| self.file.try_clone())
    }

    /// Gives the lock up after [`NonceLog::end_lease`], once the lease's writes were synced
    /// (`synced`; else they are synced here). The lock goes even when that sync fails: the
    /// nonces are in the file for every handle to see, and the next sync of the file makes
    /// them durable.
    pub(super) fn unlock_after_lease(&mut self, synced: bool) -> Result<()> {
        let synced = if synced || !self.unsynced {
            Ok(())
        } else {
            self.file.sync_data()
        };
        self.unsynced = synced.is_err();
        let _ = self.file.unlock();
        Ok(synced?)
    }

    /// Uses one nonce under a lease, without a sync: `None` without a lease. The nonce is
    /// written (every handle that takes the lock next sees it, and a killed process forgets
    /// none) before the answer, and synced when the lease ends. Nothing is used on error.
    pub(super) fn use_leased(
        &mut self,
        key: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Option<Result<bool>> {
        if !self.leased {
            return None;
        }
        // Neither a catch-up (nobody else writes) nor a prune (it walks the whole set): the
        // committer's batches prune, and one comes at least once a lease.
        Some(
            self.record(&[(key, nonce, expires_at, now)], false)
                .map(|f| f[0]),
        )
    }

    /// Writes the header of a new (or torn-at-birth) file, or checks the one there. Call under
    /// the lock.
    fn ensure_header(&mut self) -> Result<()> {
        if self.len < HEADER_LEN {
            self.file.set_len(0)?;
            self.file.write_all_at(&header(), 0)?;
            self.file.sync_all()?;
            sync_dir(&self.path)?;
            self.len = HEADER_LEN;
            return Ok(());
        }
        let mut header = [0u8; HEADER_LEN as usize];
        self.file.read_exact_at(&mut header, 0)?;
        check_header(&header)
    }

    /// Folds in the frames appended since this handle last looked; cuts off an unfinished
    /// frame at the end (its writer died before answering anyone). Call under the lock.
    fn catch_up(&mut self) -> Result<()> {
        if self.read_to == HEADER_LEN {
            self.ensure_header()?;
        }
        let len = self.len;
        if len <= self.read_to || (self.tail_checked && self.zero_head_at(self.read_to)?) {
            return Ok(());
        }
        let (hasher, live, records) = (&self.hasher, &mut self.live, &mut self.records);
        let check_tail = !self.tail_checked;
        let (at, stop) = walk(&self.file, self.read_to, len, check_tail, |r| {
            remember(live, hasher, &r);
            *records += 1;
        })?;
        if stop == Stop::Unfinished {
            self.file.set_len(at)?;
            self.file.sync_all()?;
            self.len = at;
        }
        self.read_to = at;
        self.tail_checked = true;
        Ok(())
    }

    /// Whether a whole zero frame head is at `at`: nothing was appended there.
    fn zero_head_at(&self, at: u64) -> Result<bool> {
        if self.len.saturating_sub(at) < FRAME_HEAD as u64 {
            return Ok(false);
        }
        let mut head = [0u8; FRAME_HEAD];
        self.file.read_exact_at(&mut head, at)?;
        Ok(head == [0; FRAME_HEAD])
    }

    /// Uses each nonce of `batch` (key, nonce, expiry, the caller's now) against everything
    /// any handle has written, appends the fresh ones as one frame and syncs it: whether each
    /// was fresh. A nonce is fresh when unknown or expired before its caller's now; one given
    /// twice in a batch is fresh the first time only. Nothing is answered on error, and the
    /// set is left as the file has it.
    pub(super) fn use_batch(&mut self, batch: &[(&str, &str, i64, i64)]) -> Result<Vec<bool>> {
        self.locked(|log| log.decide(batch, true))
    }

    /// [`NonceLog::use_batch`] under a lease, written but not synced: the caller syncs (a clone
    /// of [`NonceLog::file`], without holding this handle) before it answers anyone. `None`
    /// without a lease.
    pub(super) fn use_batch_leased(
        &mut self,
        batch: &[(&str, &str, i64, i64)],
    ) -> Option<Result<Vec<bool>>> {
        self.leased.then(|| self.decide(batch, false))
    }

    /// A second handle on the file, to sync it without holding this one.
    pub(super) fn file(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// The body of [`NonceLog::use_batch`], under the lock, synced only if `sync`.
    fn decide(&mut self, batch: &[(&str, &str, i64, i64)], sync: bool) -> Result<Vec<bool>> {
        self.catch_up()?;
        // The earliest caller's now: a nonce still in use for any caller stays in the set.
        self.prune(earliest(batch));
        self.record(batch, sync)
    }

    /// Checks `batch` against the set as it stands and writes the fresh ones (synced only if
    /// `sync`): whether each was fresh. Nothing of the batch is used unless all of it is
    /// written.
    fn record(&mut self, batch: &[(&str, &str, i64, i64)], sync: bool) -> Result<Vec<bool>> {
        let mut fresh = Vec::with_capacity(batch.len());
        let mut written = Vec::new();
        let mut frames = Frames::default();
        let mut decided = Ok(());
        for &(key, nonce, expires_at, now) in batch {
            let h = self.hash(key, nonce);
            let used = self.live.get(&h).is_some_and(|&e| e >= now);
            if !used {
                decided = frames.push(key, nonce, expires_at);
                if decided.is_err() {
                    break;
                }
                written.push((h, self.live.insert(h, expires_at)));
            }
            fresh.push(!used);
        }
        if let Err(e) = decided.and_then(|()| self.write(frames.finish(), sync)) {
            for (h, before) in written.into_iter().rev() {
                match before {
                    Some(e) => self.live.insert(h, e),
                    None => self.live.remove(&h),
                };
            }
            return Err(e);
        }
        self.records += fresh.iter().filter(|f| **f).count() as u64;
        self.last_now = self.last_now.max(earliest(batch));
        Ok(fresh)
    }

    /// Compacts the log once it holds more than twice the live records (and enough to be
    /// worth it), dropping what expired before the latest batch. Called after a batch's
    /// callers were answered, so none waits for it; a failed compaction leaves the log as it
    /// was. Not under a lease: compaction moves the handle to a new file, which it has not
    /// locked.
    pub(super) fn compact_if_due(&mut self) -> Result<()> {
        if self.leased
            || self.records <= COMPACT_MIN_RECORDS
            || self.records <= 2 * self.live.len() as u64
        {
            return Ok(());
        }
        self.locked(|log| {
            log.catch_up()?;
            if log.records > COMPACT_MIN_RECORDS && log.records > 2 * log.live.len() as u64 {
                log.compact(log.last_now)?;
            }
            Ok(())
        })
    }

    /// Writes `frames` (whole frames, [`Frames`]) at the end of the log, extending the zero
    /// tail when due, and syncs them (and whatever was written unsynced before). Call under
    /// the lock, caught up.
    fn append(&mut self, frames: Vec<u8>) -> Result<()> {
        self.write(frames, true)
    }

    /// [`NonceLog::append`], synced only if `sync`.
    fn write(&mut self, mut frames: Vec<u8>, sync: bool) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let end = self.read_to + frames.len() as u64;
        if self.len < end + TAIL_LOW {
            frames.resize(frames.len() + TAIL as usize, 0);
        }
        let written = self
            .file
            .write_all_at(&frames, self.read_to)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Whatever reached the file is an unfinished frame: cut it off now if we can
            // (else the next writer does).
            if self.file.set_len(self.read_to).is_ok() {
                self.len = self.read_to;
            }
            return Err(e.into());
        }
        self.len = self.len.max(self.read_to + frames.len() as u64);
        self.read_to = end;
        self.unsynced = !sync;
        Ok(())
    }

    /// Appends `records` (of other files, at adoption) in frames, synced, without checking
    /// them against the set (a nonce kept twice is refused the same). Call under the lock.
    pub(super) fn append_records(&mut self, records: &[Record]) -> Result<()> {
        self.catch_up()?;
        let mut frames = Frames::default();
        for r in records {
            frames.push(&r.key, &r.nonce, r.expires_at)?;
        }
        self.append(frames.finish())?;
        for r in records {
            remember(&mut self.live, &self.hasher, r);
        }
        self.records += records.len() as u64;
        Ok(())
    }

    /// Drops nonces expired before `now` from the set, once a minute.
    fn prune(&mut self, now: i64) {
        if now >= self.next_prune {
            self.live.retain(|_, e| *e >= now);
            self.next_prune = now.saturating_add(PRUNE_EVERY);
        }
    }

    /// Rewrites the log with the records not expired at `now`, into a new file renamed over
    /// it (synced, then the directory synced), and moves this handle to it. Call under the
    /// lock, caught up.
    fn compact(&mut self, now: i64) -> Result<()> {
        let kept = scan(&self.file, self.read_to, |r| r.expires_at >= now)?;
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".compacting");
        let tmp = PathBuf::from(tmp_name);
        let mut out = open_noatime(OpenOptions::new().create(true).truncate(true), &tmp)?;
        let mut frames = Frames::default();
        for r in &kept {
            frames.push(&r.key, &r.nonce, r.expires_at)?;
        }
        let mut bytes = header().to_vec();
        bytes.extend_from_slice(&frames.finish());
        out.write_all(&bytes)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        // The new file is complete: a handle that locks it from now on finds everything there,
        // and one waiting for the old file's lock moves over when it gets it. (`locked` then
        // unlocks the new file, which this handle never locked: a no-op.)
        let old = std::mem::replace(&mut self.file, out);
        let _ = old.unlock();
        self.read_to = bytes.len() as u64;
        self.len = self.read_to;
        self.records = kept.len() as u64;
        Ok(())
    }

    fn hash(&self, key: &str, nonce: &str) -> u64 {
        hash(&self.hasher, key, nonce)
    }
}

/// The earliest caller's now of a batch.
fn earliest(batch: &[(&str, &str, i64, i64)]) -> i64 {
    batch.iter().map(|b| b.3).min().unwrap_or(i64::MIN)
}

/// Every record of the log at `path`, read under a shared lock (an unfinished frame at the end
/// left out): for `migrate_metadata` and the integrity check.
pub(crate) fn read_all(path: &Path) -> Result<Vec<Record>> {
    let file = File::open(path)?;
    file.lock_shared()?;
    let len = file.metadata()?.len();
    let out = scan(&file, len, |_| true);
    let _ = file.unlock();
    out
}

/// The records of the log's first `len` bytes that `keep` keeps.
fn scan(file: &File, len: u64, keep: impl Fn(&Record) -> bool) -> Result<Vec<Record>> {
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    check_header(&header)?;
    let mut records = Vec::new();
    walk(file, HEADER_LEN, len, false, |r| {
        if keep(&r) {
            records.push(r);
        }
    })?;
    Ok(records)
}

/// Why [`walk`] stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// At the end of the file or at the zero tail.
    End,
    /// At a write its process did not finish (nobody was answered for it), to be cut off.
    Unfinished,
}

/// Hands `each` the records of the whole frames from byte `from` to `len`, one frame at a
/// time: where they end and why, or an error for damage. With `check_tail`, a zero tail with
/// anything but zeros in it (a write torn by a crash, its head lost) is unfinished.
fn walk(
    file: &File,
    from: u64,
    len: u64,
    check_tail: bool,
    mut each: impl FnMut(Record),
) -> Result<(u64, Stop)> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(from))?;
    let mut at = from;
    loop {
        match read_frame(&mut reader, len - at, check_tail)? {
            Frame::Whole(payload) => {
                at += (FRAME_HEAD + payload.len()) as u64;
                decode(&payload)?.into_iter().for_each(&mut each);
            }
            Frame::End => return Ok((at, Stop::End)),
            Frame::Unfinished => return Ok((at, Stop::Unfinished)),
            Frame::Damaged => return Err(damaged(at)),
        }
    }
}

enum Frame {
    Whole(Vec<u8>),
    /// Nothing left but zeros.
    End,
    /// The last frame, cut short or torn: a write its process did not finish (nobody was
    /// answered for it).
    Unfinished,
    /// A frame that does not check out with more than zeros after it: the file was damaged
    /// since.
    Damaged,
}

/// Reads the frame at the reader's position, `left` bytes before the end of the file.
fn read_frame(reader: &mut impl Read, left: u64, check_tail: bool) -> Result<Frame> {
    if left == 0 {
        return Ok(Frame::End);
    }
    let mut head = [0u8; FRAME_HEAD];
    let got = left.min(FRAME_HEAD as u64);
    reader.read_exact(&mut head[..got as usize])?;
    if head == [0; FRAME_HEAD] {
        let clean = !check_tail || rest_is_zero(reader, left - got)?;
        return Ok(if clean { Frame::End } else { Frame::Unfinished });
    }
    if got < FRAME_HEAD as u64 {
        return Ok(Frame::Unfinished);
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    // A write cut short is the last thing in the file: its length not written yet, or the
    // frame it announces reaching past the end, or torn (its digest wrong) up to the end.
    let extent = (FRAME_HEAD + len) as u64;
    if len == 0 || extent > left {
        return Ok(Frame::Unfinished);
    }
    if len > MAX_FRAME {
        return Ok(Frame::Damaged);
    }
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload)?;
    if digest(&payload) != head[4..] {
        // With more than the zero tail after it, it was damaged since it was written whole.
        return Ok(if rest_is_zero(reader, left - extent)? {
            Frame::Unfinished
        } else {
            Frame::Damaged
        });
    }
    Ok(Frame::Whole(payload))
}

/// Whether the reader's next `left` bytes are all zero.
fn rest_is_zero(reader: &mut impl Read, mut left: u64) -> Result<bool> {
    let mut buf = [0u8; 8 << 10];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        reader.read_exact(&mut buf[..n])?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

/// Notes a record read or written in `live`: the latest expiry of a nonce stands.
fn remember(live: &mut HashMap<u64, i64>, hasher: &RandomState, r: &Record) {
    let e = live
        .entry(hash(hasher, &r.key, &r.nonce))
        .or_insert(r.expires_at);
    *e = (*e).max(r.expires_at);
}

/// A nonce's place in the set: a keyed hash of its key and itself.
fn hash(hasher: &RandomState, key: &str, nonce: &str) -> u64 {
    hasher.hash_one((key, nonce))
}

/// Records encoded into frames, each closed once its payload reaches [`FRAME_TARGET`].
#[derive(Default)]
struct Frames {
    done: Vec<u8>,
    payload: Vec<u8>,
}

impl Frames {
    fn push(&mut self, key: &str, nonce: &str, expires_at: i64) -> Result<()> {
        encode(&mut self.payload, key, nonce, expires_at)?;
        if self.payload.len() >= FRAME_TARGET {
            self.close();
        }
        Ok(())
    }

    fn close(&mut self) {
        if self.payload.is_empty() {
            return;
        }
        self.done
            .extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        self.done.extend_from_slice(&digest(&self.payload));
        self.done.extend_from_slice(&self.payload);
        self.payload.clear();
    }

    /// Every frame, ready to append.
    fn finish(mut self) -> Vec<u8> {
        self.close();
        self.done
    }
}

fn digest(payload: &[u8]) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, payload);
    d.as_ref()[..8].try_into().expect("8 bytes")
}

/// Appends one record to `out`, or nothing when a field is too long for the format.
fn encode(out: &mut Vec<u8>, key: &str, nonce: &str, expires_at: i64) -> Result<()> {
    let len = |s: &str| {
        u16::try_from(s.len())
            .map_err(|_| StoreError::Corrupt(format!("a nonce or key id of {} bytes", s.len())))
    };
    let (key_len, nonce_len) = (len(key)?, len(nonce)?);
    out.extend_from_slice(&expires_at.to_le_bytes());
    for (n, s) in [(key_len, key), (nonce_len, nonce)] {
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    Ok(())
}

/// The records of a whole frame's payload (its digest matched, so damage here is a bug or a
/// forged file, refused as corrupt).
fn decode(mut p: &[u8]) -> Result<Vec<Record>> {
    let bad = || StoreError::Corrupt("a nonce log frame with a malformed record".into());
    let mut out = Vec::new();
    while !p.is_empty() {
        let (exp, rest) = p.split_at_checked(8).ok_or_else(bad)?;
        let expires_at = i64::from_le_bytes(exp.try_into().expect("8 bytes"));
        p = rest;
        let mut text = || -> Result<String> {
            let (len, rest) = p.split_at_checked(2).ok_or_else(bad)?;
            let len = u16::from_le_bytes(len.try_into().expect("2 bytes")) as usize;
            let (s, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
            p = rest;
            String::from_utf8(s.to_vec()).map_err(|_| bad())
        };
        let key = text()?;
        let nonce = text()?;
        out.push(Record {
            key,
            nonce,
            expires_at,
        });
    }
    Ok(out)
}

/// Damage inside the log fails every use of a nonce until an operator looks (refusing
/// requests is safer than accepting a replay of a nonce whose record was lost).
fn damaged(at: u64) -> StoreError {
    StoreError::Corrupt(format!("the nonce log is damaged at byte {at}"))
}

/// The header this binary writes: magic, format version, 4 bytes reserved (zero).
fn header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    header
}

fn check_header(header: &[u8; HEADER_LEN as usize]) -> Result<()> {
    if &header[..8] != MAGIC {
        return Err(StoreError::Corrupt(
            "the nonce log has no nonce log header".into(),
        ));
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format > FORMAT {
        return Err(StoreError::TooNew {
            found: format.into(),
            supported: FORMAT.into(),
        });
    }
    Ok(())
}

fn open_file(path: &Path) -> Result<File> {
    Ok(open_noatime(
        OpenOptions::new().create(true).truncate(false),
        path,
    )?)
}

// A batch's `fdatasync` writes the inode too (a second device write) whenever a timestamp
// changed since the last one. So the log is opened without access-time updates (under
// `relatime` a read after a write in the same clock tick updates it), and its per-batch stats
// ask for no timestamp: once a stat has asked for one, Linux (6.13+, multigrain timestamps)
// gives the next write a new fine-grained mtime instead of reusing the coarse tick's.

/// Opens `path` read-write (0600, with `options`' creation flags) without access-time updates.
/// `O_NOATIME` is only for the file's owner (or `CAP_FOWNER`): anyone else opens it as usual.
fn open_noatime(options: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    options.read(true).write(true).mode(0o600);
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match options.clone().custom_flags(noatime).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => options.open(path),
        opened => opened,
    }
}

/// The inode number and length of `file`, without asking for (and so marking) its times.
fn ino_and_len(file: &File) -> std::io::Result<(u64, u64)> {
    let mask = rustix::fs::StatxFlags::INO | rustix::fs::StatxFlags::SIZE;
    let st = rustix::fs::statx(file, "", rustix::fs::AtFlags::EMPTY_PATH, mask)?;
    Ok((st.stx_ino, st.stx_size))
}

/// The inode number `path` names now, without asking for its times.
fn path_ino(path: &Path) -> std::io::Result<u64> {
    let mask = rustix::fs::StatxFlags::INO;
    let st = rustix::fs::statx(rustix::fs::CWD, path, rustix::fs::AtFlags::empty(), mask)?;
    Ok(st.stx_ino)
}

/// Syncs the directory holding `path`, so a file created or renamed there stays.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    Ok(())
}
