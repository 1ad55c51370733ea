//! A local repository's chunk objects written and read back with `O_DIRECT`, around the page
//! cache: a backup does not evict the database's cached pages with its own output, writing
//! costs no copy into freshly allocated cache pages (on a VM that hands free pages back to its
//! host, each such page is faulted in again: most of the CPU of a buffered write here), and
//! the read-back check reads what the device holds, not what the cache does.
//!
//! Both directions go through one page-aligned buffer per thread; an object's last part
//! block, if any, is written through the page cache ([`write_direct`]). A file system that
//! refuses `O_DIRECT` (`EINVAL` at open) is remembered, and its objects go through opendal as
//! before. [`AlignedBuf`], [`set_direct`] and [`write_direct`] are public for the restore's
//! file writers, which write around the page cache the same way.

use crate::error::RepoError;
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The alignment `O_DIRECT` needs here of buffers, offsets and lengths: the largest logical
/// block size in use.
pub const DIRECT_ALIGN: usize = 4096;

/// A buffer for `O_DIRECT` transfers, aligned without unsafe code: a zeroed vector a block
/// longer than asked, used from its first block boundary. Kept and reused, its pages are
/// faulted in once.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    bytes: Vec<u8>,
}

impl AlignedBuf {
    /// The buffer's first `len` bytes rounded up to whole blocks, starting on a block
    /// boundary (grown, zeroed, when it is shorter).
    pub fn blocks(&mut self, len: usize) -> std::io::Result<&mut [u8]> {
        let padded = len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        if self.bytes.len() < padded + DIRECT_ALIGN {
            // Whole mebibytes: objects of slightly varying sizes do not each make a new one.
            self.bytes = vec![0; (padded + DIRECT_ALIGN).next_multiple_of(1 << 20)];
        }
        let start = self.bytes.as_ptr().align_offset(DIRECT_ALIGN);
        self.bytes
            .get_mut(start..start.saturating_add(padded))
            .ok_or_else(|| std::io::Error::other("no aligned buffer"))
    }
}

/// Opens `path` with `options` and `O_DIRECT`: `None` when the file system refuses direct
/// I/O (`EINVAL`; with `create`, the file may have been created before the refusal).
pub(crate) fn open_direct(path: &Path, options: &mut OpenOptions) -> std::io::Result<Option<File>> {
    match options
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(None),
        opened => opened.map(Some),
    }
}

/// Turns `O_DIRECT` on for an open `file`: false when its file system refuses direct I/O
/// (`EINVAL`), the file then unchanged.
pub fn set_direct(file: &File) -> std::io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    match rustix::fs::fcntl_setfl(file, flags | rustix::fs::OFlags::DIRECT) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::INVAL) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Writes the first `len` bytes of `blocks` (an [`AlignedBuf`] slice) at `at` (a block
/// boundary) of `file`, opened with `O_DIRECT`: the whole blocks directly, then any rest
/// (less than a block) with `O_DIRECT` cleared, through the page cache. (A padded last block
/// cut back by a truncate would make the file system read that block back from the device
/// first.) The file is no longer direct after a rest.
pub fn write_direct(file: &File, blocks: &[u8], len: usize, at: u64) -> std::io::Result<()> {
    let whole = len / DIRECT_ALIGN * DIRECT_ALIGN;
    file.write_all_at(&blocks[..whole], at)?;
    if len > whole {
        let flags = rustix::fs::fcntl_getfl(file)?;
        rustix::fs::fcntl_setfl(file, flags - rustix::fs::OFlags::DIRECT)?;
        file.write_all_at(&blocks[whole..len], at + whole as u64)?;
    }
    Ok(())
}

thread_local! {
    /// This thread's transfer buffer for repository objects.
    static BUF: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// The directory of a local repository, for direct I/O of its chunk objects.
#[derive(Debug)]
pub(crate) struct DirectFs {
    root: PathBuf,
    /// How long one object's write, sync and read-back may take.
    pub(crate) timeout: Duration,
    /// Set once the file system refused `O_DIRECT`.
    refused: AtomicBool,
}

/// What [`DirectFs::store_and_read`] did.
#[derive(Debug)]
pub(crate) enum Direct<T> {
    /// Stored, synced and read back; what the check of the bytes read made of them.
    Checked(T),
    /// This file system does not do direct I/O: nothing was written.
    Refused,
}

impl DirectFs {
    pub(crate) fn new(root: &Path, timeout: Duration) -> Self {
        Self {
            root: root.to_owned(),
            timeout,
            refused: AtomicBool::new(false),
        }
    }

    /// Whether objects should still be tried here.
    pub(crate) fn usable(&self) -> bool {
        !self.refused.load(Ordering::Relaxed)
    }

    /// Writes `stored` as the object at `path` (relative to the root, parent directories
    /// made), syncs it, reads it back from the device and hands the bytes read to `check`.
    /// Blocking.
    pub(crate) fn store_and_read<T>(
        &self,
        path: &str,
        stored: &[u8],
        check: impl FnOnce(&[u8]) -> Result<T, RepoError>,
    ) -> Result<Direct<T>, RepoError> {
        let full = self.root.join(path.trim_start_matches('/'));
        let io = |e| io_error(path, e);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        let Some(file) =
            open_direct(&full, options.write(true).create(true).truncate(true)).map_err(io)?
        else {
            self.refused.store(true, Ordering::Relaxed);
            return Ok(Direct::Refused);
        };
        let len = stored.len();
        BUF.with_borrow_mut(|aligned| {
            let buf = aligned.blocks(len).map_err(io)?;
            buf[..len].copy_from_slice(stored);
            write_direct(&file, buf, len, 0)
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            drop(file);
            read_back(&full, path, buf, len)?;
            check(&buf[..len]).map(Direct::Checked)
        })
    }
}

/// A storage error of `path` from the file system's error `e`.
pub(crate) fn io_error(path: &str, e: std::io::Error) -> RepoError {
    RepoError::Storage {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Reads the object `path` at `full`, which must hold `len` bytes, from the device into
/// `buf` (an [`AlignedBuf`] slice, cleared first, so nothing of the write survives in it
/// unread).
fn read_back(full: &Path, path: &str, buf: &mut [u8], len: usize) -> Result<(), RepoError> {
    let io = |e| io_error(path, e);
    let refused = || std::io::Error::other("O_DIRECT refused after the object was written");
    let file = open_direct(full, OpenOptions::new().read(true))
        .and_then(|f| f.ok_or_else(refused))
        .map_err(io)?;
    let found = file.metadata().map_err(io)?.len();
    if found != len as u64 {
        return Err(RepoError::corrupt(
            path,
            format!("object has {found} bytes after its write of {len}"),
        ));
    }
    buf.fill(0);
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], got as u64).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    match got >= len {
        true => Ok(()),
        false => Err(RepoError::corrupt(
            path,
            format!("object read back short: {got} of {len} bytes"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(dir: &Path) -> DirectFs {
        DirectFs::new(dir, Duration::from_secs(5))
    }

    /// An object of no whole number of blocks is stored at its exact length, in directories
    /// made for it, and the check is handed exactly its bytes as read back.
    #[test]
    fn an_object_is_stored_at_its_length_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = direct(dir.path());
        for len in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8 + 1).collect();
            let path = format!("/backups/b/{len}.zst");
            let seen = d
                .store_and_read(&path, &data, |read| Ok(read.to_vec()))
                .unwrap();
            let Direct::Checked(seen) = seen else {
                panic!("this file system refused O_DIRECT")
            };
            assert_eq!(seen, data, "len {len}");
            let on_disk = std::fs::read(dir.path().join(format!("backups/b/{len}.zst"))).unwrap();
            assert_eq!(on_disk, data, "len {len}");
        }
    }

    /// A shorter object over a longer one leaves nothing of the longer behind.
    #[test]
    fn an_object_replaces_a_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = direct(dir.path());
        d.store_and_read("a", &[7u8; 10_000], |_| Ok(())).unwrap();
        d.store_and_read("a", &[9u8; 100], |_| Ok(())).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), vec![9u8; 100]);
    }

    /// The read-back reads the file, not the buffer it was written from: what the file holds
    /// after another write is what a later read-back sees.
    #[test]
    fn the_read_back_sees_what_the_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        std::fs::write(&path, [5u8; 6000]).unwrap();
        let mut aligned = AlignedBuf::default();
        let buf = aligned.blocks(6000).unwrap();
        read_back(&path, "obj", buf, 6000).unwrap();
        assert!(buf[..6000].iter().all(|b| *b == 5));
        assert!(buf[6000..].iter().all(|b| *b == 0));
        let err = read_back(&path, "obj", aligned.blocks(6001).unwrap(), 6001).unwrap_err();
        assert!(err.to_string().contains("has 6000 bytes"), "{err}");
    }

    /// On a file system without `O_DIRECT` (ramfs) nothing is checked, the refusal is
    /// remembered, and a repository there still stores and reads back through opendal.
    #[tokio::test]
    async fn a_file_system_without_direct_io_falls_back_to_buffered_writes() {
        let disk = polarbackup_testkit::Tmpfs::ramfs();
        let d = direct(disk.path());
        let out = d.store_and_read("a", b"abc", |_| -> Result<(), RepoError> {
            panic!("nothing was stored to check")
        });
        assert!(matches!(out, Ok(Direct::Refused)), "{out:?}");
        assert!(!d.usable());

        let cfg = crate::RepoConfig {
            chunk_size: 5000,
            ..Default::default()
        };
        let repo = crate::Repo::open_fs(disk.path(), cfg).unwrap();
        let data: Vec<u8> = (0..12_345u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = repo.begin("b1", jiff::Timestamp::UNIX_EPOCH).await.unwrap();
        w.start_archive("base.tar", None).await.unwrap();
        w.write(&data).await.unwrap();
        w.finish_archive().await.unwrap();
        w.commit(serde_json::Value::Null).await.unwrap();
        let direct = repo.inner.direct.as_ref().expect("a local repository");
        assert!(!direct.usable(), "the refusal is remembered");
        let mut reader = repo.open_archive("b1", "base.tar").await.unwrap();
        let mut back = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            back.extend_from_slice(&chunk);
        }
        assert_eq!(back, data);
        repo.verify("b1", &mut |_, _| {}).await.unwrap();
    }

    /// A failed check is the caller's error, unchanged.
    #[test]
    fn a_failed_check_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let d = direct(dir.path());
        let out = d.store_and_read("x", b"abc", |_| -> Result<(), RepoError> {
            Err(RepoError::corrupt("x", "no"))
        });
        assert!(matches!(out, Err(RepoError::Corrupt { .. })), "{out:?}");
    }
}
