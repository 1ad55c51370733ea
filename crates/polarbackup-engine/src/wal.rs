//! The WAL that makes a base backup consistent: streamed through the backup's temporary slot
//! while the data files stream (as `pg_basebackup -Xs` does), then stored as `pg_wal.tar`.

use crate::pg::{Lsn, PgError, ReplicationConn, WalEvent, WalSegmentWriter, WalStream};
use crate::stall::Deadline;
use crate::EngineError;
use jiff::Timestamp;
use polarbackup_model::Clock;
use polarbackup_repo::BackupWriter;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const BLOCK: usize = 512;

/// The WAL a backup needs, collected.
pub struct Collected {
    /// The segment files, oldest first.
    pub files: Vec<PathBuf>,
    /// The server's clock when it sent the WAL reaching the end point (see
    /// `WalStream::watch_server_time`); `None` only if the server sent no usable clock then.
    pub server_time: Option<Timestamp>,
}

/// How many received positions (with the server's send time) are kept while the end point is
/// unknown: the WAL reaching it arrives at most a few messages before the end point does.
const RECENT: usize = 4096;

/// Where the backup's WAL starts and where it must reach, each with its timeline, as
/// BASE_BACKUP reports them: [`collect`]'s side.
pub struct Points {
    start: oneshot::Receiver<(Lsn, u32)>,
    end: oneshot::Receiver<(Lsn, u32)>,
}

/// The data stream's side of [`Points`]. Dropped before a point was reported (the data stream
/// failed), it ends the collection.
pub struct Reporter {
    start: Option<oneshot::Sender<(Lsn, u32)>>,
    end: Option<oneshot::Sender<(Lsn, u32)>>,
}

/// A connected [`Reporter`] and [`Points`].
pub fn points() -> (Reporter, Points) {
    let (start_tx, start) = oneshot::channel();
    let (end_tx, end) = oneshot::channel();
    let reporter = Reporter {
        start: Some(start_tx),
        end: Some(end_tx),
    };
    (reporter, Points { start, end })
}

impl Reporter {
    /// BASE_BACKUP's start point. The receiver is gone only if the WAL side failed, which
    /// ends the backup anyway.
    pub fn started(&mut self, lsn: Lsn, timeline: u32) {
        if let Some(tx) = self.start.take() {
            let _ = tx.send((lsn, timeline));
        }
    }

    /// BASE_BACKUP's end point.
    pub fn finished(&mut self, lsn: Lsn, timeline: u32) {
        if let Some(tx) = self.end.take() {
            let _ = tx.send((lsn, timeline));
        }
    }
}

/// Streams WAL into `dir` from the segment holding the backup's start, as soon as the data
/// stream reports it, until the segment holding its end is complete. The slot was created
/// before BASE_BACKUP, so every byte from the start is still there, and what is received is
/// confirmed at once, so the server need not keep the backup's WAL until its data is done.
/// Until the end point is known there is no deadline (an idle server sends no WAL while its
/// files stream); after it, `deadline` bounds each wait. `clock` stamps the status updates.
#[allow(clippy::too_many_arguments)]
pub async fn collect(
    conn: ReplicationConn,
    slot: &str,
    points: Points,
    seg_size: u64,
    dir: &Path,
    cancel: &CancellationToken,
    clock: Arc<dyn Clock>,
    deadline: Deadline,
) -> Result<Collected, EngineError> {
    let no_end = || EngineError::Stream("the data stream ended without an end point".into());
    let (start, timeline) = tokio::select! {
        () = cancel.cancelled() => return Err(EngineError::Cancelled),
        p = points.start => p.map_err(|_| no_end())?,
    };
    let mut writer = WalSegmentWriter::new(dir, timeline, seg_size).map_err(stream_err)?;
    let mut stream = deadline
        .wait(async {
            conn.start_physical_replication(Some(slot), start.segment_start(seg_size), timeline)
                .await
                .map_err(stream_err)
        })
        .await?;
    stream.set_clock(clock);
    let mut files = Vec::new();
    let mut recent = VecDeque::with_capacity(RECENT);
    let mut end_point = points.end;
    let mut open = true;
    let (end, end_timeline) = loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return Err(EngineError::Cancelled),
            end = &mut end_point => break end.map_err(|_| no_end())?,
            r = stream.next(), if open => r.map_err(stream_err)?,
        };
        open = receive(&mut stream, &mut writer, &mut files, event).await?;
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((stream.received_up_to(), stream.last_server_time()));
    };
    if end_timeline != timeline {
        // Only a standby following a promotion upstream gets here; the next backup starts on
        // the new timeline.
        return Err(EngineError::Stream(format!(
            "the server moved from timeline {timeline} to {end_timeline} during the backup"
        )));
    }
    // The send time of the first message that reached the end point, if it has come (the
    // oldest kept, if even that one was past it: a later time, never an earlier one).
    let reached = recent
        .iter()
        .filter(|(at, _)| *at >= end)
        .find_map(|(_, time)| *time);
    if reached.is_none() {
        stream.watch_server_time(end);
    }
    while open && writer.completed_up_to() < end {
        let event = tokio::select! {
            () = cancel.cancelled() => return Err(EngineError::Cancelled),
            r = deadline.wait(async { stream.next().await.map_err(stream_err) }) => r?,
        };
        open = receive(&mut stream, &mut writer, &mut files, event).await?;
    }
    if writer.completed_up_to() < end {
        return Err(EngineError::Stream(format!(
            "the WAL stream ended at {} before the backup's end point {end}",
            writer.received_up_to()
        )));
    }
    // The WAL is complete; a failure to end the conversation politely does not matter.
    let server_time = reached.or_else(|| stream.watched_server_time());
    let _ = stream.finish().await;
    Ok(Collected { files, server_time })
}

/// A failure of the WAL stream or its files: the server was reached, so not a connection failure.
fn stream_err(e: PgError) -> EngineError {
    EngineError::from_pg(e, false)
}

/// Writes one event's WAL and confirms what is complete; `false` when the stream ended.
async fn receive(
    stream: &mut WalStream,
    writer: &mut WalSegmentWriter,
    files: &mut Vec<PathBuf>,
    event: Option<WalEvent>,
) -> Result<bool, EngineError> {
    match event {
        Some(WalEvent::Data { start, data }) => {
            let completed = writer.write(start, &data).await.map_err(stream_err)?;
            stream.confirm_flushed(writer.completed_up_to());
            if !completed.is_empty() {
                // A whole segment is here: the server may recycle it now.
                stream.report_now();
            }
            files.extend(completed);
            Ok(true)
        }
        Some(WalEvent::EndOfStream { .. }) | None => Ok(false),
    }
}

/// Writes the segment files as a ustar archive into the current repository archive, each
/// stamped with `mtime`.
pub async fn store_tar(
    out: &mut BackupWriter,
    files: &[PathBuf],
    mtime: Timestamp,
) -> Result<(), EngineError> {
    let mut buf = vec![0u8; 1 << 20];
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| EngineError::Stream(format!("odd WAL file name {}", path.display())))?;
        let mut file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        let mut header = tar::Header::new_ustar();
        header.set_path(name)?;
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(mtime.as_second().max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        out.write(header.as_bytes()).await?;
        let mut copied = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.write(&buf[..n]).await?;
            copied += n as u64;
        }
        if copied != size {
            return Err(EngineError::Stream(format!(
                "{name} changed while being stored"
            )));
        }
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        out.write(&vec![0u8; pad]).await?;
    }
    // End of archive: two zero blocks.
    out.write(&[0u8; 2 * BLOCK]).await?;
    Ok(())
}
