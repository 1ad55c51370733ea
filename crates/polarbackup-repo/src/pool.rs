//! `WriterPool`: what every backup writer of one repository shares, its cores and its memory.
//!
//! Backups that run at once (one per worker) compete for the same cores, so giving each its
//! own compression slots and chunk window only multiplied the memory they hold without making
//! them faster: two backups held twice the chunks in flight for the same throughput. Here the
//! slots are the repository's, so memory is one chunk being filled per writer plus a fixed
//! number in flight, however many backups run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::RepoError;

pub(crate) struct WriterPool {
    /// Permits to compress: one per core, so storing and reading back overlap compression
    /// instead of holding a core's slot.
    compressors: Arc<Semaphore>,
    /// Permits for a chunk in flight (being compressed, stored or read back, each keeping its
    /// raw bytes for the check): twice the cores, over every writer.
    in_flight: Arc<Semaphore>,
    spares: Mutex<Spares>,
    chunk_size: usize,
    /// Chunk buffers allocated so far (the rest were spares reused).
    made: AtomicUsize,
}

/// Raw chunk buffers done with, kept for the next chunks: a new 8 MiB buffer costs a page
/// fault for every 4 kB as it fills (the allocator hands such sizes back to the kernel when
/// they are freed). Kept only while a writer is open, at most `keep` of them.
struct Spares {
    bufs: Vec<Vec<u8>>,
    keep: usize,
    writers: usize,
}

impl WriterPool {
    pub(crate) fn new(parallelism: usize, chunk_size: usize) -> Self {
        WriterPool {
            compressors: Arc::new(Semaphore::new(parallelism)),
            in_flight: Arc::new(Semaphore::new(parallelism * 2)),
            spares: Mutex::new(Spares {
                bufs: Vec::new(),
                keep: parallelism * 2 + 1,
                writers: 0,
            }),
            chunk_size,
            made: AtomicUsize::new(0),
        }
    }

    pub(crate) fn compressors(&self) -> Arc<Semaphore> {
        self.compressors.clone()
    }

    /// Waits for room for one more chunk in flight; the room is given back when the permit
    /// is dropped, after the chunk was stored and checked.
    pub(crate) async fn chunk_slot(&self) -> Result<OwnedSemaphorePermit, RepoError> {
        self.in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RepoError::Internal("the chunk slots were closed".into()))
    }

    /// A writer begins: spare buffers are kept from now until the last writer ends.
    pub(crate) fn enter(&self) {
        self.spares().writers += 1;
    }

    /// A writer ended; after the last one the spares are freed, so an idle server holds none.
    pub(crate) fn leave(&self) {
        let mut spares = self.spares();
        spares.writers = spares.writers.saturating_sub(1);
        if spares.writers == 0 {
            spares.bufs = Vec::new();
        }
    }

    /// An empty buffer of a chunk's capacity, reused if one is spare.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.spares().bufs.pop().unwrap_or_else(|| {
            self.made.fetch_add(1, Ordering::Relaxed);
            Vec::with_capacity(self.chunk_size)
        })
    }

    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() != self.chunk_size {
            return;
        }
        buf.clear();
        let mut spares = self.spares();
        if spares.writers > 0 && spares.bufs.len() < spares.keep {
            spares.bufs.push(buf);
        }
    }

    /// How many spare buffers are kept now, and how many were allocated in all (tests).
    #[cfg(test)]
    pub(crate) fn buffers(&self) -> (usize, usize) {
        (self.spares().bufs.len(), self.made.load(Ordering::Relaxed))
    }

    fn spares(&self) -> std::sync::MutexGuard<'_, Spares> {
        self.spares.lock().unwrap_or_else(|e| e.into_inner())
    }
}
