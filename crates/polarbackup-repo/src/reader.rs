//! `ArchiveReader`: one archive's raw bytes in order, verified, with parallel read-ahead.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opendal::Operator;
use tokio::io::{AsyncRead, ReadBuf};

use crate::codec::{Chain, Checksum};
use crate::layout;
use crate::manifest::ArchiveEntry;
use crate::ordered::Ordered;
use crate::repo::{fetch_object_into, Repo};
use crate::{RepoError, RepoKey};

/// Reads an archive chunk by chunk (`next_chunk`) or as a byte stream (`AsyncRead`).
///
/// Up to `parallelism` chunks are fetched and decompressed ahead. Every chunk is checked
/// before it is returned; the whole-stream hash can only be checked at the end, so the
/// end (`Ok(None)` / EOF) is reported only if it matches — otherwise the last call fails
/// and everything already returned must be discarded.
pub struct ArchiveReader {
    op: Operator,
    key: Option<RepoKey>,
    backup_id: String,
    entry: ArchiveEntry,
    next_spawn: usize,
    window: Ordered<Verified>,
    checksum: Checksum,
    /// `None` once finished.
    chain: Option<Chain>,
    seen: u64,
    chunks_seen: usize,
    state: State,
    /// The part of the current chunk not yet handed out through `AsyncRead`.
    pending: Bytes,
    /// Buffers of chunks whose bytes were all dropped, decompressed into again.
    pool: Pool,
}

/// Spare chunk buffers: a chunk's buffer comes back here when the last `Bytes` of it is
/// dropped (wherever that is: a restore's file writer holds slices of chunks), so reading
/// an archive does not allocate, and fault in, a fresh buffer per chunk.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// A decompressed chunk's buffer; dropped, it goes back to its pool (if that has room).
struct Recycled {
    buf: Vec<u8>,
    pool: Pool,
    keep: usize,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < self.keep {
                pool.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

pub(crate) struct Verified {
    pub(crate) data: Bytes,
    pub(crate) stored_size: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Done,
    Failed,
}

impl ArchiveReader {
    pub(crate) fn new(
        repo: &Repo,
        backup_id: &str,
        entry: ArchiveEntry,
        checksum: Checksum,
    ) -> Self {
        ArchiveReader {
            op: repo.inner.op.clone(),
            key: repo.inner.key.clone(),
            backup_id: backup_id.to_owned(),
            entry,
            next_spawn: 0,
            window: Ordered::new(repo.inner.cfg.parallelism),
            checksum,
            chain: Some(checksum.chain()),
            seen: 0,
            chunks_seen: 0,
            state: State::Reading,
            pending: Bytes::new(),
            pool: Pool::default(),
        }
    }

    /// The manifest entry being read.
    pub fn entry(&self) -> &ArchiveEntry {
        &self.entry
    }

    /// The archive's path in the repository (`backups/<id>/<archive>`), as errors name it.
    pub fn object(&self) -> String {
        format!("{}{}", layout::backup_dir(&self.backup_id), self.entry.name)
    }

    /// The next piece of the archive (a chunk, or what `AsyncRead` left of one);
    /// `Ok(None)` at the verified end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RepoError> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        Ok(self.next_verified().await?.map(|v| v.data))
    }

    pub(crate) async fn next_verified(&mut self) -> Result<Option<Verified>, RepoError> {
        let next = std::future::poll_fn(|cx| self.poll_verified(cx)).await;
        if next.is_err() {
            // The reads still ahead are stopped before the error is returned: once a verify or
            // restore has failed, nothing of it goes on touching the repository.
            self.window.cancel().await;
        }
        next
    }

    fn fill(&mut self) {
        while !self.window.is_full() && self.next_spawn < self.entry.chunks.len() {
            let chunk = self.entry.chunks[self.next_spawn].clone();
            let path = layout::object_path(&self.backup_id, &chunk.object);
            let (op, checksum, key) = (self.op.clone(), self.checksum, self.key.clone());
            let pool = self.pool.clone();
            // The window's chunks, the one being handed out and a few held by its consumer.
            let keep = self.window.limit() + 2;
            let buf = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .unwrap_or_default();
            self.window.spawn(async move {
                let stored_size = chunk.stored_size;
                let buf = fetch_object_into(&op, path, chunk, checksum, key, buf).await?;
                Ok(Verified {
                    data: Bytes::from_owner(Recycled { buf, pool, keep }),
                    stored_size,
                })
            });
            self.next_spawn += 1;
        }
    }

    fn poll_verified(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Verified>, RepoError>> {
        match self.state {
            State::Reading => {}
            State::Done => return Poll::Ready(Ok(None)),
            State::Failed => {
                return Poll::Ready(Err(RepoError::InvalidState(
                    "the archive reader failed earlier".into(),
                )))
            }
        }
        self.fill();
        let result = match self.window.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => self.check_end().map(|()| None),
            Poll::Ready(Some(Ok(chunk))) => {
                // The chunk's bytes matched its own digest; chain that digest in order.
                match (self.entry.chunks.get(self.chunks_seen), self.chain.as_mut()) {
                    (Some(c), Some(chain)) => chain.update(&c.raw_hash),
                    _ => {
                        return Poll::Ready(Err(RepoError::Internal(
                            "more chunks than the manifest lists".into(),
                        )))
                    }
                }
                self.chunks_seen += 1;
                self.seen += chunk.data.len() as u64;
                self.fill();
                Ok(Some(chunk))
            }
            Poll::Ready(Some(Err(e))) => Err(e),
        };
        match &result {
            Ok(Some(_)) => {}
            Ok(None) => self.state = State::Done,
            Err(_) => {
                self.state = State::Failed;
                self.window.abort_all();
            }
        }
        Poll::Ready(result)
    }

    fn check_end(&mut self) -> Result<(), RepoError> {
        let object = self.object();
        if self.seen != self.entry.raw_size {
            return Err(RepoError::corrupt(
                &object,
                format!(
                    "archive has {} bytes, manifest says {}",
                    self.seen, self.entry.raw_size
                ),
            ));
        }
        let hash = self.chain.take().map(Chain::finish);
        if hash.as_deref() != Some(self.entry.raw_hash.as_str()) {
            return Err(RepoError::corrupt(
                &object,
                format!(
                    "archive {} does not match the manifest",
                    self.checksum.as_str()
                ),
            ));
        }
        Ok(())
    }
}

impl AsyncRead for ArchiveReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match this.poll_verified(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(chunk))) => this.pending = chunk.data,
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}
