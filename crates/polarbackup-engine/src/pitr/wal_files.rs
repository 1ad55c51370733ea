//! The plan's WAL objects as PostgreSQL's archive: each checked against the plan, read back
//! from the repository (size and digest verified) and written under its file name, a partial
//! segment padded with zeros to the segment size (PostgreSQL refuses a restored segment of any
//! other size; the zeros read as the end of the WAL).

use super::WAL_DIR;
use crate::xlog::{segment_geometry, WalSource};
use crate::EngineError;
use polarbackup_model::log_backup::{WalObject, WalObjectKind};
use polarbackup_model::Lsn;
use polarbackup_repo::{Repo, RepoError};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// PostgreSQL's default, for a backup whose manifest predates the recorded segment size.
const DEFAULT_SEG_SIZE: u64 = 16 << 20;
/// How many objects are read and written at once, and the memory they may hold together (each
/// is held whole: a segment is at most 1 GiB).
const PARALLEL: usize = 4;
const IN_FLIGHT_BYTES: u64 = 256 << 20;

/// One file to write: the object and the bytes it takes on disk.
pub(super) struct WalFile {
    pub object: WalObject,
    pub size: u64,
}

fn bad(o: &WalObject, why: &str) -> EngineError {
    EngineError::Restore(format!(
        "WAL object {} ({} {}) {why}",
        o.id,
        o.object.kind.as_str(),
        o.object.name
    ))
}

/// The WAL segment size: the backup's record of it, else a whole segment's size, else 16 MiB.
pub(super) fn segment_size(
    meta: &serde_json::Value,
    wal: &[WalObject],
) -> Result<u64, EngineError> {
    let recorded = meta
        .get("wal_segment_size")
        .and_then(serde_json::Value::as_u64);
    let seg = recorded
        .or_else(|| {
            wal.iter()
                .find(|w| w.object.kind == WalObjectKind::Segment)
                .map(|w| w.object.size)
        })
        .unwrap_or(DEFAULT_SEG_SIZE);
    if !seg.is_power_of_two() || !(1 << 20..=1 << 30).contains(&seg) {
        return Err(EngineError::Restore(format!(
            "{seg} bytes is not a PostgreSQL WAL segment size"
        )));
    }
    Ok(seg)
}

/// Checks every object against its kind, name and place, before anything is written.
pub(super) fn plan_files(wal: &[WalObject], seg_size: u64) -> Result<Vec<WalFile>, EngineError> {
    let mut names = HashSet::new();
    let mut files = Vec::with_capacity(wal.len());
    for w in wal {
        let o = &w.object;
        let size = match o.kind {
            WalObjectKind::History => {
                if o.name != format!("{:08X}.history", o.timeline) {
                    return Err(bad(w, "is not named after its timeline"));
                }
                o.size
            }
            WalObjectKind::Segment | WalObjectKind::Partial => {
                if o.name != o.start.wal_file_name(o.timeline, seg_size) {
                    return Err(bad(w, "is not named after its timeline and start"));
                }
                let whole = o.kind == WalObjectKind::Segment;
                let fits = o.start.segment_offset(seg_size) == 0
                    && o.size == o.end - o.start
                    && o.size > 0
                    && (if whole {
                        o.size == seg_size
                    } else {
                        o.size <= seg_size
                    });
                if !fits {
                    return Err(bad(
                        w,
                        &format!(
                            "does not fit a {seg_size}-byte segment ({} to {}, {} bytes)",
                            o.start, o.end, o.size
                        ),
                    ));
                }
                seg_size
            }
        };
        if !names.insert(o.name.clone()) {
            return Err(bad(w, "appears twice in the plan"));
        }
        files.push(WalFile {
            object: w.clone(),
            size,
        });
    }
    Ok(files)
}

/// A segment must be the cluster's and sit where the plan says (its long page header).
fn check_segment(
    w: &WalObject,
    raw: &[u8],
    seg_size: u64,
    system_id: Option<u64>,
) -> Result<(), EngineError> {
    if w.object.kind == WalObjectKind::History {
        return Ok(());
    }
    let geometry = segment_geometry(w.object.start, raw)
        .map_err(|e| bad(w, &format!("is not a WAL segment: {e}")))?;
    if geometry.seg_size != seg_size {
        return Err(bad(
            w,
            &format!(
                "has {}-byte segments, the backup {seg_size}",
                geometry.seg_size
            ),
        ));
    }
    if let Some(id) = system_id.filter(|&id| id != geometry.system_id) {
        return Err(bad(
            w,
            &format!(
                "belongs to database system {}, the backup to {id}",
                geometry.system_id
            ),
        ));
    }
    Ok(())
}

/// Reads each object from the repository and writes it into `dir` (created 0700), fsyncing
/// files and directory; `progress` gets the bytes written so far. Returns the bytes written.
/// On a failure, or once `cancel` fires, starts no further object and returns only after
/// every write already under way has ended.
pub(super) async fn write_all(
    repo: &Repo,
    files: Vec<WalFile>,
    dir: &Path,
    seg_size: u64,
    system_id: Option<u64>,
    progress: &(dyn Fn(u64) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<u64, EngineError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| EngineError::Restore(format!("creating {}: {e}", dir.display())))?;
    let mut tasks = JoinSet::new();
    let mut queue = files.into_iter();
    let mut written = 0u64;
    let mut failed = None;
    let parallel = PARALLEL.min((IN_FLIGHT_BYTES / seg_size).max(1) as usize);
    loop {
        if failed.is_none() && cancel.is_cancelled() {
            failed = Some(EngineError::Cancelled);
        }
        while failed.is_none() && tasks.len() < parallel {
            let Some(file) = queue.next() else { break };
            let repo = repo.clone();
            let path = dir.join(&file.object.object.name);
            tasks.spawn(async move {
                let o = &file.object.object;
                let raw = match repo.read_wal(&o.key, o.size, &o.digest).await {
                    Err(RepoError::NotFound(_)) => {
                        return Err(EngineError::WalReplaced(o.key.clone()))
                    }
                    r => r?,
                };
                check_segment(&file.object, &raw, seg_size, system_id)?;
                let size = file.size;
                tokio::task::spawn_blocking(move || write_file(&path, &raw, size))
                    .await
                    .map_err(|e| EngineError::Restore(format!("WAL write task failed: {e}")))??;
                Ok::<u64, EngineError>(size)
            });
        }
        // Every task is awaited, even after a failure: a write must not outlive this call.
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let done = done
            .map_err(|e| EngineError::Restore(format!("WAL task failed: {e}")))
            .and_then(|r| r);
        match done {
            Ok(size) if failed.is_none() => {
                written += size;
                progress(written);
            }
            Ok(_) => {}
            Err(e) => {
                if failed.is_none() || matches!(failed, Some(EngineError::Cancelled)) {
                    failed = Some(e);
                }
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(written)
}

/// Once the base backup is restored too: `dir` holds nothing but the plan's `files`. A base
/// backup of a cluster that was itself restored to a point in time carries that restore's
/// `polarbackup_wal/`, whose old files recovery must not mix with the plan's.
pub(super) fn check_only_planned(dir: &Path, files: &HashSet<String>) -> Result<(), EngineError> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if !name.to_str().is_some_and(|n| files.contains(n)) {
            return Err(EngineError::Restore(format!(
                "{} holds {}, which is not in the plan: the base backup carries a {WAL_DIR}/ \
                 of its own (the source was restored to a point in time and still has it)",
                dir.display(),
                name.to_string_lossy()
            )));
        }
    }
    Ok(())
}

/// Writes `raw`, then zeros up to `size`, and syncs.
fn write_file(path: &Path, raw: &[u8], size: u64) -> Result<(), EngineError> {
    let fail = |e: std::io::Error| EngineError::Restore(format!("writing {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(raw).map_err(fail)?;
    if size > raw.len() as u64 {
        // A partial segment: the rest reads as zeros, which PostgreSQL takes as the WAL's end.
        f.set_len(size).map_err(fail)?;
    }
    f.sync_all().map_err(fail)
}

/// Blocks until the base backup's `pg_wal/` is restored; an error when it never will be.
pub(super) type PgWalReady = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// Per segment, the newest timeline's file (not beyond the target timeline) in one directory.
type Newest = BTreeMap<u64, (u32, PathBuf)>;

/// The WAL files of a restored data directory as recovery will read them: per segment, the
/// newest timeline's file (not beyond `timeline`), from `polarbackup_wal/` before `pg_wal/`,
/// as PostgreSQL tries the archive before pg_wal.
///
/// The archive is listed at once, `pg_wal/` only when a segment needs it: the archive's file
/// on the target timeline is read whatever `pg_wal/` holds, so the scan can run while the base
/// backup is still being restored and waits for it only for a segment the archive lacks.
pub(super) struct RestoredWal {
    seg_size: u64,
    timeline: u32,
    archive: Newest,
    pg_wal: LazyPgWal,
    open: Option<(u64, std::fs::File)>,
}

/// `pg_wal/`, listed once it is restored.
struct LazyPgWal {
    dir: PathBuf,
    ready: Option<PgWalReady>,
    /// The listing, or why there is none.
    listed: Option<Result<Newest, (std::io::ErrorKind, String)>>,
}

impl LazyPgWal {
    fn files(&mut self, timeline: u32, seg_size: u64) -> std::io::Result<&Newest> {
        let (ready, dir) = (&mut self.ready, &self.dir);
        let listed = self.listed.get_or_insert_with(|| {
            ready
                .take()
                .map_or(Ok(()), |ready| ready())
                .and_then(|()| {
                    newest(dir, timeline, seg_size).map_err(|e| {
                        std::io::Error::other(format!("listing {}: {e}", dir.display()))
                    })
                })
                .map_err(|e| (e.kind(), e.to_string()))
        });
        match listed {
            Ok(files) => Ok(files),
            Err((kind, why)) => Err(std::io::Error::new(*kind, why.clone())),
        }
    }
}

impl RestoredWal {
    /// Lists `archive` (complete by now); `pg_wal` is listed after `ready` returned.
    pub fn scan(
        archive: &Path,
        pg_wal: &Path,
        timeline: u32,
        seg_size: u64,
        ready: PgWalReady,
    ) -> Result<RestoredWal, EngineError> {
        Ok(RestoredWal {
            seg_size,
            timeline,
            archive: newest(archive, timeline, seg_size)?,
            pg_wal: LazyPgWal {
                dir: pg_wal.to_path_buf(),
                ready: Some(ready),
                listed: None,
            },
            open: None,
        })
    }

    /// The file recovery reads for `segno`.
    fn file(&mut self, segno: u64) -> std::io::Result<Option<&Path>> {
        if matches!(self.archive.get(&segno), Some((tl, _)) if *tl == self.timeline) {
            return Ok(self.archive.get(&segno).map(|(_, p)| p.as_path()));
        }
        let pg_wal = self.pg_wal.files(self.timeline, self.seg_size)?;
        // (timeline, from the archive): the greatest wins.
        let from_pg_wal = pg_wal.get(&segno).map(|(tl, p)| ((*tl, false), p));
        let from_archive = self.archive.get(&segno).map(|(tl, p)| ((*tl, true), p));
        Ok(from_pg_wal
            .into_iter()
            .chain(from_archive)
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, p)| p.as_path()))
    }

    pub fn has_segment(&mut self, segno: u64) -> std::io::Result<bool> {
        Ok(self.file(segno)?.is_some())
    }
}

/// Per segment, the newest timeline's file in `dir` up to `timeline` (none if `dir` is missing).
fn newest(dir: &Path, timeline: u32, seg_size: u64) -> Result<Newest, EngineError> {
    let mut best = Newest::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(best),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let Some((tl, segno)) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_segment_name(n, seg_size))
        else {
            continue;
        };
        if tl > timeline || best.get(&segno).is_some_and(|(b, _)| *b >= tl) {
            continue;
        }
        best.insert(segno, (tl, entry.path()));
    }
    Ok(best)
}

/// `TTTTTTTTXXXXXXXXYYYYYYYY` → (timeline, segment number).
fn parse_segment_name(name: &str, seg_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tl = u32::from_str_radix(&name[..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..], 16).ok()?;
    Some((tl, log * (0x1_0000_0000 / seg_size) + seg))
}

impl WalSource for RestoredWal {
    fn read_at(&mut self, lsn: Lsn, buf: &mut [u8]) -> std::io::Result<usize> {
        let segno = lsn.segment_number(self.seg_size);
        if self.open.as_ref().map(|(s, _)| *s) != Some(segno) {
            let Some(path) = self.file(segno)? else {
                return Ok(0);
            };
            let file = std::fs::File::open(path)?;
            self.open = Some((segno, file));
        }
        let Some((_, file)) = &self.open else {
            return Ok(0);
        };
        let offset = lsn.segment_offset(self.seg_size);
        let room = (self.seg_size - offset).min(buf.len() as u64) as usize;
        let mut got = 0;
        while got < room {
            let n = file.read_at(&mut buf[got..room], offset + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polarbackup_model::log_backup::{BackupLogId, NewWalObject};
    use polarbackup_model::DbClusterId;

    const SEG: u64 = 16 << 20;

    fn object(kind: WalObjectKind, timeline: u32, name: &str, start: u64, end: u64) -> WalObject {
        WalObject {
            id: BackupLogId(start + 1),
            object: NewWalObject {
                cluster_id: DbClusterId::parse("pc-abcdefghijklmno").unwrap(),
                timeline,
                kind,
                name: name.to_owned(),
                start: Lsn(start),
                end: Lsn(end),
                size: end - start,
                stored_size: 1,
                key: format!("wal/pc-abcdefghijklmno/{name}.zst"),
                digest: "0".repeat(64),
                start_time: jiff::Timestamp::UNIX_EPOCH,
                end_time: jiff::Timestamp::UNIX_EPOCH,
            },
        }
    }

    #[test]
    fn the_segment_size_comes_from_the_backup_then_a_segment() {
        let seg = object(WalObjectKind::Segment, 1, "x", 0, 1 << 24);
        let meta = serde_json::json!({"wal_segment_size": 64 << 20});
        assert_eq!(
            segment_size(&meta, std::slice::from_ref(&seg)).unwrap(),
            64 << 20
        );
        assert_eq!(
            segment_size(&serde_json::json!({}), &[seg]).unwrap(),
            16 << 20
        );
        assert_eq!(segment_size(&serde_json::json!({}), &[]).unwrap(), 16 << 20);
        let odd = serde_json::json!({"wal_segment_size": 3 << 20});
        assert!(segment_size(&odd, &[]).is_err());
    }

    #[test]
    fn every_object_must_sit_where_its_name_says() {
        let good = vec![
            object(
                WalObjectKind::History,
                2,
                "00000002.history",
                5 * SEG + 8,
                5 * SEG + 8,
            ),
            object(
                WalObjectKind::Segment,
                1,
                "000000010000000000000004",
                4 * SEG,
                5 * SEG,
            ),
            object(
                WalObjectKind::Partial,
                1,
                "000000010000000000000005",
                5 * SEG,
                5 * SEG + 100,
            ),
            object(
                WalObjectKind::Segment,
                2,
                "000000020000000000000005",
                5 * SEG,
                6 * SEG,
            ),
        ];
        let mut history = good[0].clone();
        history.object.size = 42;
        let mut files = good.clone();
        files[0] = history;
        let planned = plan_files(&files, SEG).unwrap();
        let sizes: Vec<u64> = planned.iter().map(|f| f.size).collect();
        assert_eq!(sizes, vec![42, SEG, SEG, SEG], "a partial is padded");

        let cases = [
            (
                object(WalObjectKind::History, 3, "00000002.history", 0, 0),
                "timeline",
            ),
            (
                object(
                    WalObjectKind::Segment,
                    1,
                    "000000010000000000000005",
                    4 * SEG,
                    5 * SEG,
                ),
                "start",
            ),
            (
                object(
                    WalObjectKind::Segment,
                    2,
                    "000000010000000000000004",
                    4 * SEG,
                    5 * SEG,
                ),
                "timeline",
            ),
            (
                object(
                    WalObjectKind::Segment,
                    1,
                    "000000010000000000000004",
                    4 * SEG,
                    4 * SEG + 9,
                ),
                "fit",
            ),
            (
                object(
                    WalObjectKind::Partial,
                    1,
                    "000000010000000000000004",
                    4 * SEG,
                    6 * SEG,
                ),
                "fit",
            ),
            (
                object(
                    WalObjectKind::Partial,
                    1,
                    "../../etc/passwd",
                    4 * SEG,
                    4 * SEG + 1,
                ),
                "named",
            ),
            (good[1].clone(), "twice"),
        ];
        for (wrong, why) in cases {
            let mut plan = good.clone();
            plan.push(wrong);
            let err = plan_files(&plan, SEG).err().unwrap().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn segment_names_give_timeline_and_number() {
        assert_eq!(
            parse_segment_name("0000000300000001000000A2", SEG),
            Some((3, 256 + 0xA2))
        );
        assert_eq!(
            parse_segment_name("000000010000000200000003", 1 << 30),
            Some((1, 2 * 4 + 3))
        );
        assert_eq!(parse_segment_name("00000002.history", SEG), None);
        assert_eq!(
            parse_segment_name("000000010000000000000003.partial", SEG),
            None
        );
    }

    #[test]
    fn recovery_reads_the_newest_timeline_and_the_archive_first() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, pg_wal) = (dir.path().join("a"), dir.path().join("p"));
        std::fs::create_dir_all(&archive).unwrap();
        std::fs::create_dir_all(&pg_wal).unwrap();
        let put =
            |d: &Path, name: &str, byte: u8| std::fs::write(d.join(name), [byte; 16]).unwrap();
        put(&pg_wal, "000000010000000000000003", 1);
        put(&pg_wal, "000000010000000000000004", 2);
        put(&archive, "000000010000000000000004", 3);
        put(&archive, "000000010000000000000005", 4);
        put(&archive, "000000020000000000000005", 5);
        put(&archive, "000000030000000000000005", 6);
        put(&archive, "00000002.history", 7);
        let mut wal = RestoredWal::scan(&archive, &pg_wal, 2, SEG, Box::new(|| Ok(()))).unwrap();
        let mut byte = |segno: u64| {
            let mut b = [0u8; 4];
            let n = wal.read_at(Lsn(segno * SEG + 3), &mut b).unwrap();
            (n > 0).then_some(b[0])
        };
        assert_eq!(byte(3), Some(1));
        assert_eq!(byte(4), Some(3), "the archive's copy");
        assert_eq!(byte(5), Some(5), "timeline 2, not 3 beyond the target");
        assert_eq!(byte(6), None);
        let mut b = [0u8; 64];
        assert_eq!(
            wal.read_at(Lsn(3 * SEG), &mut b).unwrap(),
            16,
            "as long as the file"
        );
    }

    #[test]
    fn pg_wal_is_waited_for_only_where_the_archive_lacks_the_target_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, pg_wal) = (dir.path().join("a"), dir.path().join("p"));
        std::fs::create_dir_all(&archive).unwrap();
        let put =
            |d: &Path, name: &str, byte: u8| std::fs::write(d.join(name), [byte; 16]).unwrap();
        put(&archive, "000000020000000000000004", 1);
        put(&archive, "000000010000000000000005", 2);
        let byte = |wal: &mut RestoredWal, segno: u64| {
            let mut b = [0u8; 4];
            let n = wal.read_at(Lsn(segno * SEG), &mut b)?;
            Ok::<_, std::io::Error>((n > 0).then_some(b[0]))
        };

        // The base is still being restored (pg_wal/ does not exist yet): waiting now would be
        // an error here rather than a hang.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let ready: PgWalReady = Box::new(move || {
            rx.try_recv()
                .map_err(|_| std::io::Error::other("waited before the base was restored"))
        });
        let mut wal = RestoredWal::scan(&archive, &pg_wal, 2, SEG, ready).unwrap();
        assert_eq!(
            byte(&mut wal, 4).unwrap(),
            Some(1),
            "the archive's, at once"
        );
        // Restored meanwhile: pg_wal/ has segment 5 on timeline 2, newer than the archive's.
        std::fs::create_dir_all(&pg_wal).unwrap();
        put(&pg_wal, "000000020000000000000005", 3);
        tx.send(()).unwrap();
        assert_eq!(
            byte(&mut wal, 5).unwrap(),
            Some(3),
            "pg_wal/'s newer timeline"
        );
        assert_eq!(byte(&mut wal, 6).unwrap(), None);

        // The base failed: what needs pg_wal/ is an error, not the end of the WAL.
        let failed: PgWalReady = Box::new(|| Err(std::io::Error::other("the base failed")));
        let mut wal = RestoredWal::scan(&archive, &pg_wal, 2, SEG, failed).unwrap();
        assert_eq!(byte(&mut wal, 4).unwrap(), Some(1));
        let err = byte(&mut wal, 5).unwrap_err().to_string();
        assert!(err.contains("the base failed"), "{err}");
        assert!(byte(&mut wal, 6).is_err(), "still an error");
    }
}
