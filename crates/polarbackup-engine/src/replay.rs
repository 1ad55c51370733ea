//! The engine's decoders of server bytes, fed a recorded answer instead of a live server: for the
//! fuzz targets (`fuzz/`) and the corpus replay test. Not used by backups.
//!
//! Each function plays `server` as everything a PostgreSQL server sends, discards what the
//! client writes, and drives one decoder to its end or its first error. The contract they check
//! is the decoders': whatever the bytes, an error and never a panic or a hang (the input is
//! finite and ends in EOF, which every decoder reports as an error).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::archive::history::History;
use crate::pg::{BaseBackupOptions, ConnectConfig, Lsn, PgError, PgHost, ReplicationConn};

/// A transport whose reads return `data` (in pieces of at most `piece` bytes, to exercise
/// partial frames) and then EOF, and whose writes succeed and are dropped.
struct Recorded {
    data: Vec<u8>,
    at: usize,
    piece: usize,
}

impl AsyncRead for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let end = (self.at + self.piece.min(buf.remaining())).min(self.data.len());
        buf.put_slice(&self.data[self.at..end]);
        self.at = end;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The input's first byte picks the read size (1..=255 bytes) and the server version the
/// decoder believes (15+, or 14 with the legacy BASE_BACKUP answer); the rest is the server's
/// bytes.
fn transport(input: &[u8]) -> (Recorded, &'static str) {
    let (head, data) = input.split_first().unwrap_or((&0, &[]));
    let version = if head & 0x80 == 0 { "16.4" } else { "14.13" };
    let piece = usize::from(head & 0x7f) * 2 + 1;
    let stream = Recorded {
        data: data.to_vec(),
        at: 0,
        piece,
    };
    (stream, version)
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}

fn conn(input: &[u8]) -> ReplicationConn<Recorded> {
    let (stream, version) = transport(input);
    ReplicationConn::replayed(stream, version)
}

/// The startup exchange (authentication requests, SCRAM messages, parameters) over `input`,
/// as user `fuzz` with a password.
pub fn startup(input: &[u8]) -> Result<(), PgError> {
    let (stream, _) = transport(input);
    let mut cfg = ConnectConfig::new(PgHost::Tcp("127.0.0.1".into()), 5432, "fuzz");
    cfg.password = Some("fuzz-password".into());
    run(async move {
        ReplicationConn::connect_stream(stream, &cfg)
            .await
            .map(drop)
    })
}

/// A BASE_BACKUP answer decoded to its end. Returns the number of events.
pub fn base_backup(input: &[u8]) -> Result<usize, PgError> {
    let mut conn = conn(input);
    run(async move {
        let opts = BaseBackupOptions {
            progress: true,
            manifest: true,
            ..BaseBackupOptions::default()
        };
        let mut stream = conn.base_backup(&opts).await?;
        let mut events = 0;
        while stream.next().await?.is_some() {
            events += 1;
        }
        Ok(events)
    })
}

/// A START_REPLICATION answer decoded to its end: the input is the head byte (as for
/// [`base_backup`]), the start position (8 bytes, big-endian: where the first XLogData must
/// begin), then the server's bytes. Returns the number of events.
pub fn wal_stream(input: &[u8]) -> Result<usize, PgError> {
    let (head, rest) = input.split_first().unwrap_or((&0, &[]));
    let (start, server) = rest.split_at(rest.len().min(8));
    let mut lsn = [0u8; 8];
    lsn[..start.len()].copy_from_slice(start);
    let conn = conn(&[&[*head], server].concat());
    run(async move {
        let start = Lsn(u64::from_be_bytes(lsn));
        let mut stream = conn.start_physical_replication(None, start, 1).await?;
        let mut events = 0;
        while stream.next().await?.is_some() {
            events += 1;
        }
        stream.finish().await?;
        Ok(events)
    })
}

/// A timeline history file as TIMELINE_HISTORY returns it, read for timeline 5.
pub fn timeline_history(content: &[u8]) -> Result<(), String> {
    History::parse(5, content).map(drop)
}
