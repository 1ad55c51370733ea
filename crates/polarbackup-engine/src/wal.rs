//! The WAL that makes a base backup consistent: streamed through the backup's temporary slot
//! after the data files, then stored as `pg_wal.tar`.

use crate::pg::{Lsn, ReplicationConn, WalEvent, WalSegmentWriter};
use crate::stall::Deadline;
use crate::EngineError;
use jiff::Timestamp;
use polarbackup_model::Clock;
use polarbackup_repo::BackupWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
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

/// Streams WAL from `start` until the segment holding `end` is complete, into `dir`.
/// The slot was created before BASE_BACKUP, so every byte from `start` is still there.
/// `clock` stamps the standby status updates; `deadline` bounds each wait for WAL.
#[allow(clippy::too_many_arguments)]
pub async fn collect(
    conn: ReplicationConn,
    slot: &str,
    start: Lsn,
    end: Lsn,
    timeline: u32,
    seg_size: u64,
    dir: &Path,
    cancel: &CancellationToken,
    clock: Arc<dyn Clock>,
    deadline: Deadline,
) -> Result<Collected, EngineError> {
    let stream_err = |e| EngineError::from_pg(e, false);
    let mut writer = WalSegmentWriter::new(dir, timeline, seg_size).map_err(stream_err)?;
    let mut stream = deadline
        .wait(async {
            conn.start_physical_replication(Some(slot), start.segment_start(seg_size), timeline)
                .await
                .map_err(stream_err)
        })
        .await?;
    stream.set_clock(clock);
    stream.watch_server_time(end);
    let mut files = Vec::new();
    while writer.completed_up_to() < end {
        let event = tokio::select! {
            () = cancel.cancelled() => return Err(EngineError::Cancelled),
            r = deadline.wait(async { stream.next().await.map_err(stream_err) }) => r?,
        };
        match event {
            Some(WalEvent::Data { start, data }) => {
                files.extend(writer.write(start, &data).await.map_err(stream_err)?);
                stream.confirm_flushed(writer.completed_up_to());
            }
            Some(WalEvent::EndOfStream { .. }) | None => break,
        }
    }
    if writer.completed_up_to() < end {
        return Err(EngineError::Stream(format!(
            "the WAL stream ended at {} before the backup's end point {end}",
            writer.received_up_to()
        )));
    }
    // The WAL is complete; a failure to end the conversation politely does not matter.
    let server_time = stream.watched_server_time();
    let _ = stream.finish().await;
    Ok(Collected { files, server_time })
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
