//! `ArchiveReader`: one archive's raw bytes in order, verified, with parallel read-ahead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opendal::Operator;
use tokio::io::{AsyncRead, ReadBuf};

use crate::codec::{Chain, Checksum};
use crate::layout;
use crate::manifest::ArchiveEntry;
use crate::ordered::Ordered;
use crate::repo::{fetch_object, Repo};
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
            self.window.spawn(async move {
                let stored_size = chunk.stored_size;
                let data = fetch_object(&op, path, chunk, checksum, key).await?;
                Ok(Verified {
                    data: Bytes::from(data),
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
