//! `WalSegmentWriter`: turns streamed WAL into segment files named as PostgreSQL names them.

use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::error::PgError;
use polarbackup_model::lsn::{wal_file_name, Lsn};

/// Writes contiguous WAL into `<dir>/<segment name>.partial` and renames each segment to its
/// final name once it is full and fsynced, so a file without `.partial` is always complete.
pub struct WalSegmentWriter {
    dir: PathBuf,
    timeline: u32,
    seg_size: u64,
    /// The segment being written, as (segment number, open `.partial` file).
    current: Option<(u64, File)>,
    /// Where the next byte must go; `None` before the first write.
    next: Option<Lsn>,
}

impl WalSegmentWriter {
    /// `seg_size` is the server's wal_segment_size: a power of two from 1 MiB to 1 GiB.
    pub fn new(
        dir: impl Into<PathBuf>,
        timeline: u32,
        seg_size: u64,
    ) -> Result<WalSegmentWriter, PgError> {
        if !seg_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&seg_size) {
            return Err(PgError::InvalidInput(format!(
                "invalid WAL segment size {seg_size}"
            )));
        }
        Ok(WalSegmentWriter {
            dir: dir.into(),
            timeline,
            seg_size,
            current: None,
            next: None,
        })
    }

    /// Everything before this position has been written (not necessarily fsynced, unless it is
    /// also before `completed_up_to`). `Lsn::INVALID` before the first write.
    pub fn received_up_to(&self) -> Lsn {
        self.next.unwrap_or(Lsn::INVALID)
    }

    /// Everything before this position is in complete, fsynced segment files.
    pub fn completed_up_to(&self) -> Lsn {
        self.next
            .map_or(Lsn::INVALID, |n| n.segment_start(self.seg_size))
    }

    /// Appends WAL that starts at `start`. The first write must start a segment; later ones must
    /// continue exactly where the previous ended. Returns the segment files completed by this call.
    pub async fn write(&mut self, start: Lsn, data: &[u8]) -> Result<Vec<PathBuf>, PgError> {
        match self.next {
            None if start.segment_offset(self.seg_size) != 0 => {
                return Err(PgError::InvalidInput(format!(
                    "WAL must start at a segment boundary, got {start}; stream from {}",
                    start.segment_start(self.seg_size)
                )))
            }
            Some(next) if next != start => {
                return Err(PgError::InvalidInput(format!(
                    "WAL at {start} does not continue {next}"
                )))
            }
            _ => {}
        }
        let mut done = Vec::new();
        let mut pos = start;
        let mut rest = data;
        while !rest.is_empty() {
            let segno = pos.segment_number(self.seg_size);
            let file = match &mut self.current {
                Some((n, f)) if *n == segno => f,
                _ => {
                    let f = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(self.partial_path(segno))
                        .await?;
                    &mut self.current.insert((segno, f)).1
                }
            };
            let room = self.seg_size - pos.segment_offset(self.seg_size);
            let n = room.min(rest.len() as u64) as usize;
            file.write_all(&rest[..n]).await?;
            pos = pos + n as u64;
            rest = &rest[n..];
            self.next = Some(pos);
            if pos.segment_offset(self.seg_size) == 0 {
                done.push(self.complete_current().await?);
            }
        }
        self.next = Some(pos);
        Ok(done)
    }

    /// Fsyncs the full segment, renames it to its final name and fsyncs the directory.
    async fn complete_current(&mut self) -> Result<PathBuf, PgError> {
        let (segno, mut file) = self
            .current
            .take()
            .ok_or_else(|| PgError::protocol("no segment open"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let path = self
            .dir
            .join(wal_file_name(self.timeline, segno, self.seg_size));
        tokio::fs::rename(self.partial_path(segno), &path).await?;
        sync_dir(&self.dir).await?;
        Ok(path)
    }

    /// Fsyncs the segment in progress and returns its `.partial` path, if any.
    pub async fn finish(mut self) -> Result<Option<PathBuf>, PgError> {
        let Some((segno, mut file)) = self.current.take() else {
            return Ok(None);
        };
        file.flush().await?;
        file.sync_all().await?;
        Ok(Some(self.partial_path(segno)))
    }

    fn partial_path(&self, segno: u64) -> PathBuf {
        self.dir.join(format!(
            "{}.partial",
            wal_file_name(self.timeline, segno, self.seg_size)
        ))
    }
}

/// Makes a rename durable.
async fn sync_dir(dir: &Path) -> Result<(), PgError> {
    File::open(dir).await?.sync_all().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 1 << 20;

    #[tokio::test]
    async fn writes_whole_segments_with_postgres_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalSegmentWriter::new(dir.path(), 1, SEG).unwrap();
        let start = Lsn(3 * SEG);
        let chunk = vec![7u8; 300 * 1024];
        let mut pos = start;
        let mut done = Vec::new();
        // 5 chunks of 300 KiB = 1.46 segments: one complete file and a partial one.
        for _ in 0..5 {
            done.extend(w.write(pos, &chunk).await.unwrap());
            pos = pos + chunk.len() as u64;
        }
        assert_eq!(w.received_up_to(), pos);
        assert_eq!(w.completed_up_to(), Lsn(4 * SEG));
        let name = "000000010000000000000003";
        assert_eq!(done, vec![dir.path().join(name)]);
        assert_eq!(std::fs::metadata(dir.path().join(name)).unwrap().len(), SEG);
        let partial = w.finish().await.unwrap().unwrap();
        assert!(partial.ends_with("000000010000000000000004.partial"));
        assert_eq!(
            std::fs::metadata(partial).unwrap().len(),
            5 * 300 * 1024 - SEG
        );
    }

    #[tokio::test]
    async fn refuses_unaligned_start_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalSegmentWriter::new(dir.path(), 1, SEG).unwrap();
        assert!(w.write(Lsn(SEG + 8), b"x").await.is_err());
        w.write(Lsn(SEG), b"abc").await.unwrap();
        assert!(w.write(Lsn(SEG + 4), b"x").await.is_err());
        assert!(WalSegmentWriter::new(dir.path(), 1, 3 << 20).is_err());
    }

    #[tokio::test]
    async fn a_write_spanning_segments_completes_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalSegmentWriter::new(dir.path(), 2, SEG).unwrap();
        let data = vec![1u8; (2 * SEG) as usize];
        let done = w.write(Lsn(0), &data).await.unwrap();
        assert_eq!(done.len(), 2);
        assert!(done[1].ends_with("000000020000000000000001"));
        assert!(w.finish().await.unwrap().is_none());
    }
}
