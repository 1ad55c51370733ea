//! One PostgreSQL backup, end to end: prerequisites, BASE_BACKUP into the repository, the WAL
//! through a temporary slot, PostgreSQL's own manifest, commit, and verification.

use crate::incremental::base::{Base, Method};
use crate::incremental::diff::{manifest_path, sizes_for_archive, TarDiff};
use crate::incremental::native::rewrite_manifest;
use crate::pg::ConnectConfig;
use crate::pg::{BackupEvent, BaseBackupOptions, Lsn, ReplicationConn};
use crate::progress::{Phase, ProgressSink, Throttle};
use crate::stall::Deadline;
use crate::{incremental, prereq, wal, EngineError};
use jiff::Timestamp;
use polarbackup_model::Clock;
use polarbackup_repo::{BackupWriter, Repo};
use serde_json::json;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Everything one backup needs.
pub struct BackupRequest<'a> {
    /// The repository id of the set (the job id).
    pub backup_id: &'a str,
    /// Where to connect; both the replication and the SQL connections use it.
    pub source: &'a ConnectConfig,
    pub repo: &'a Repo,
    /// A private directory for the WAL segments on their way into the repository.
    pub scratch: &'a Path,
    pub progress: &'a dyn ProgressSink,
    pub cancel: &'a CancellationToken,
    /// The time source for WAL file times and replication status updates, and for the
    /// consistent time only when the server's replication stream carried no usable clock.
    pub clock: Arc<dyn Clock>,
    /// The progress deadline: waiting this long for the database without a byte from it
    /// fails the backup as stalled (`DEFAULT_STALL` unless configured).
    pub stall: Duration,
    /// The set to take an incremental backup on; the engine may take a full one instead.
    pub parent: Option<String>,
}

/// A stored, verified backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub start_lsn: Lsn,
    pub end_lsn: Lsn,
    pub timeline: u32,
    /// When the database reached the state the backup restores to, by the database's clock:
    /// the send time of the WAL reaching `end_lsn` (the service's clock only if the server
    /// sent none).
    pub consistent_time: Timestamp,
    /// The set this one is incremental on: `None` for a full backup.
    pub parent: Option<String>,
}

/// What the stream phase learned, for the manifest and the summary.
struct Streamed {
    start_lsn: Lsn,
    end_lsn: Lsn,
    timeline: u32,
    tablespaces: Vec<serde_json::Value>,
}

/// Takes, stores and verifies one backup. On any failure nothing of it stays in the
/// repository (best effort: the caller should still `Repo::delete` the id).
pub async fn backup(req: BackupRequest<'_>) -> Result<BackupSummary, EngineError> {
    req.progress.report(Phase::Preparing).await;
    let deadline = Deadline::new(req.stall, "backup");
    let facts = cancellable(req.cancel, deadline.wait(prereq::check(req.source))).await?;
    let cfg = req.source;
    let connect_err = |e| EngineError::from_pg(e, true);
    // Each wait on the database below is bounded by the deadline, so a database that stops
    // answering fails the job and frees its slot and connections.
    let (mut data_conn, system, seg_size, mut wal_conn) = cancellable(
        req.cancel,
        deadline.wait(async {
            let mut data_conn = ReplicationConn::connect(cfg).await.map_err(connect_err)?;
            let system = data_conn.identify_system().await.map_err(connect_err)?;
            let seg_size = data_conn.wal_segment_size().await.map_err(connect_err)?;
            let wal_conn = ReplicationConn::connect(cfg).await.map_err(connect_err)?;
            Ok((data_conn, system, seg_size, wal_conn))
        }),
    )
    .await?;
    // Job ids are unique per data directory only; several polarbackup servers may back up
    // one database, so the slot name also carries a random part (PostgreSQL's limit is 63).
    let slot = format!(
        "polarbackup_{}_{:08x}",
        req.backup_id,
        rand::random::<u32>()
    );
    // Created before BASE_BACKUP starts, so the WAL from its start point is kept for us.
    deadline
        .wait(async {
            wal_conn
                .create_temporary_physical_slot(&slot)
                .await
                .map_err(|e| EngineError::from_pg(e, false))
        })
        .await?;

    let base = match &req.parent {
        Some(parent) => {
            incremental::base::choose(req.repo, req.backup_id, parent, &facts, &system).await
        }
        None => None,
    };
    let base = match base {
        Some(Base {
            parent,
            method: Method::Native { manifest },
        }) => {
            let uploaded = deadline
                .wait(async {
                    data_conn
                        .upload_manifest(&manifest)
                        .await
                        .map_err(|e| EngineError::from_pg(e, false))
                })
                .await;
            match uploaded {
                Ok(()) => Some(Base {
                    parent,
                    method: Method::Native { manifest },
                }),
                Err(e) => {
                    warn!(backup = req.backup_id, %parent, error = %e,
                        "the server refused the parent's manifest; taking a full backup");
                    None
                }
            }
        }
        other => other,
    };

    let mut writer = req.repo.begin(req.backup_id, req.clock.now()).await?;
    let scratch = req.scratch.join(format!("wal-{}", req.backup_id));
    let result = async {
        tokio::fs::create_dir_all(&scratch).await?;
        // The WAL streams beside the data files, from the start point on, as BASE_BACKUP
        // reports it: the server need not keep it, and little is left after the data.
        let (reporter, points) = wal::points();
        let (streamed, collected) = tokio::try_join!(
            stream_data(
                &req,
                deadline,
                &mut data_conn,
                &mut writer,
                base.as_ref(),
                reporter,
            ),
            wal::collect(
                wal_conn,
                &slot,
                points,
                seg_size,
                &scratch,
                req.cancel,
                req.clock.clone(),
                deadline,
            ),
        )?;
        writer.start_archive("pg_wal.tar", None).await?;
        wal::store_tar(&mut writer, &collected.files, req.clock.now()).await?;
        writer.finish_archive().await?;
        Ok::<_, EngineError>((streamed, collected.server_time))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let (streamed, server_time) = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = writer.abort().await;
            return Err(e);
        }
    };
    let consistent_time = server_time.unwrap_or_else(|| {
        // Every PostgreSQL stamps its XLogData; only an odd server or proxy gets here.
        warn!(
            backup = req.backup_id,
            "the server sent no usable clock with its WAL; the consistent time is the service's"
        );
        req.clock.now()
    });
    let meta = json!({
        "engine": "postgresql",
        "server_version": facts.version,
        "server_version_num": facts.version_num,
        "system_identifier": system.system_id,
        "timeline": streamed.timeline,
        "start_lsn": streamed.start_lsn.to_string(),
        "end_lsn": streamed.end_lsn.to_string(),
        "wal_segment_size": seg_size,
        "consistent_time": consistent_time.to_string(),
        "tablespaces": streamed.tablespaces,
    });
    let mut meta = meta;
    if let Some(base) = &base {
        meta["parent"] = json!(base.parent);
        meta["incremental"] = json!(base.method_name());
    }
    // A failed commit removes what it wrote.
    let manifest = writer.commit(meta).await?;
    let total = manifest.totals.stored_bytes;
    req.progress
        .report(Phase::Checking { done: 0, total })
        .await;
    if let Err(e) = verify(&req, total).await {
        // A set that failed verification must not survive as a committed manifest.
        let _ = req.repo.delete(req.backup_id).await;
        return Err(e);
    }
    info!(
        backup = req.backup_id,
        raw = manifest.totals.raw_bytes,
        stored = total,
        "backup verified"
    );
    Ok(BackupSummary {
        raw_bytes: manifest.totals.raw_bytes,
        stored_bytes: total,
        start_lsn: streamed.start_lsn,
        end_lsn: streamed.end_lsn,
        timeline: streamed.timeline,
        consistent_time,
        parent: base.map(|b| b.parent),
    })
}

async fn cancellable<T>(
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    tokio::select! {
        () = cancel.cancelled() => Err(EngineError::Cancelled),
        r = fut => r,
    }
}

/// Receives BASE_BACKUP and writes each archive and the manifest into the repository.
async fn stream_data(
    req: &BackupRequest<'_>,
    deadline: Deadline,
    conn: &mut ReplicationConn,
    writer: &mut BackupWriter,
    base: Option<&Base>,
    mut wal_points: wal::Reporter,
) -> Result<Streamed, EngineError> {
    let opts = BaseBackupOptions {
        label: format!("polarbackup {}", req.backup_id),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: Some("CRC32C".into()),
        wal: false,
        wait: false,
        verify_checksums: true,
        incremental: matches!(
            base,
            Some(Base {
                method: Method::Native { .. },
                ..
            })
        ),
        ..BaseBackupOptions::default()
    };
    let lsn_diff = match base {
        Some(Base {
            method: Method::Lsn {
                parent_start,
                sizes,
            },
            ..
        }) => Some((*parent_start, sizes)),
        _ => None,
    };
    let mut diff: Option<(String, TarDiff)> = None;
    let mut diffed = HashSet::new();
    let mut rewritten = Vec::new();
    let stream_err = |e| EngineError::from_pg(e, false);
    req.progress.report(Phase::Waiting).await;
    // Only the waits on the database are timed: a slow repository is not a stalled database.
    let mut stream = deadline
        .wait(async { conn.base_backup(&opts).await.map_err(stream_err) })
        .await?;
    let mut start = None;
    let mut total = 0u64;
    let mut done = 0u64;
    let mut in_archive = false;
    let mut manifest = Vec::new();
    let mut tablespaces = Vec::new();
    let mut throttle = Throttle::new();
    loop {
        let event = tokio::select! {
            () = req.cancel.cancelled() => return Err(EngineError::Cancelled),
            e = deadline.wait(async { stream.next().await.map_err(stream_err) }) => e?,
        };
        let Some(event) = event else {
            return Err(EngineError::Stream(
                "BASE_BACKUP ended without an end point".into(),
            ));
        };
        match event {
            BackupEvent::Started {
                start_lsn,
                timeline,
            } => {
                start = Some((start_lsn, timeline));
                wal_points.started(start_lsn, timeline);
                req.progress
                    .report(Phase::Uploading { done: 0, total: 1 })
                    .await;
            }
            BackupEvent::Tablespaces(list) => {
                total = list
                    .iter()
                    .map(|t| t.size_kb.unwrap_or(0).saturating_mul(1024))
                    .sum();
                tablespaces = list
                    .iter()
                    .map(|t| json!({"oid": t.oid, "location": t.location}))
                    .collect();
            }
            BackupEvent::ArchiveStart {
                name,
                tablespace_location,
            } => {
                if in_archive {
                    finish_diff(&mut diff, &mut diffed, req.backup_id)?;
                    writer.finish_archive().await?;
                }
                writer
                    .start_archive(&name, tablespace_location.as_deref())
                    .await?;
                diff = lsn_diff.map(|(start, sizes)| {
                    let diff = TarDiff::new(start, sizes_for_archive(sizes, &name));
                    (name.clone(), diff)
                });
                in_archive = true;
            }
            BackupEvent::Data(bytes) => {
                match &mut diff {
                    Some((_, d)) => {
                        d.feed(&bytes, &mut rewritten)
                            .map_err(|e| EngineError::Stream(format!("incremental diff: {e}")))?;
                        writer.write(&rewritten).await?;
                        rewritten.clear();
                    }
                    None => writer.write(&bytes).await?,
                }
                done += bytes.len() as u64;
                if throttle.due(done, total) {
                    req.progress.report(Phase::Uploading { done, total }).await;
                }
            }
            BackupEvent::Progress(_) => {}
            BackupEvent::ManifestStart => {
                if in_archive {
                    finish_diff(&mut diff, &mut diffed, req.backup_id)?;
                    writer.finish_archive().await?;
                    in_archive = false;
                }
            }
            BackupEvent::ManifestData(bytes) => manifest.extend_from_slice(&bytes),
            BackupEvent::Finished { end_lsn, timeline } => {
                wal_points.finished(end_lsn, timeline);
                let (start_lsn, _) = start.ok_or_else(|| {
                    EngineError::Stream("BASE_BACKUP did not report its start".into())
                })?;
                // Drain to ReadyForQuery so the server has really completed the backup.
                while deadline
                    .wait(async { stream.next().await.map_err(stream_err) })
                    .await?
                    .is_some()
                {}
                if in_archive {
                    finish_diff(&mut diff, &mut diffed, req.backup_id)?;
                    writer.finish_archive().await?;
                }
                if manifest.is_empty() {
                    return Err(EngineError::Stream(
                        "the server sent no backup_manifest".into(),
                    ));
                }
                if lsn_diff.is_some() {
                    manifest = without_checksums(&manifest, &diffed)?;
                }
                writer.put_file("backup_manifest", &manifest).await?;
                return Ok(Streamed {
                    start_lsn,
                    end_lsn,
                    timeline,
                    tablespaces,
                });
            }
        }
    }
}

/// Checks the archive's diff ended at an entry boundary, notes the files it diffed (by
/// `backup_manifest` path), and logs what it saved.
fn finish_diff(
    diff: &mut Option<(String, TarDiff)>,
    diffed: &mut HashSet<String>,
    backup_id: &str,
) -> Result<(), EngineError> {
    if let Some((archive, d)) = diff.take() {
        d.finish()
            .map_err(|e| EngineError::Stream(format!("incremental diff: {e}")))?;
        diffed.extend(d.diffed().iter().map(|p| manifest_path(&archive, p)));
        let stats = d.stats();
        info!(
            backup = backup_id,
            files = stats.files,
            blocks = stats.blocks,
            changed = stats.changed,
            "relation blocks kept by the incremental diff"
        );
    }
    Ok(())
}

/// The server's `backup_manifest` with the checksums of the files the LSN diff rebuilt from
/// the chain removed: such a file may differ from the server's copy in hint bits.
fn without_checksums(manifest: &[u8], diffed: &HashSet<String>) -> Result<Vec<u8>, EngineError> {
    let bad = |e: String| EngineError::Stream(format!("the server's backup_manifest: {e}"));
    let text = std::str::from_utf8(manifest).map_err(|e| bad(e.to_string()))?;
    rewrite_manifest(text, |path, size| {
        Ok(diffed.contains(path).then(|| (path.to_owned(), size)))
    })
    .map(String::into_bytes)
    .map_err(bad)
}

/// The Checking phase: every object was read back and checked by the writer as it was
/// stored; what is left is to read the committed manifest back and find each object it names
/// in place with its size.
async fn verify(req: &BackupRequest<'_>, total: u64) -> Result<(), EngineError> {
    // verify() reports through a synchronous callback; hand the numbers to the async sink
    // through a channel that keeps only the latest value.
    let (tx, mut rx) = tokio::sync::watch::channel((0u64, total));
    let repo = req.repo.clone();
    let id = req.backup_id.to_owned();
    let mut task = tokio::spawn(async move {
        let mut cb = move |done: u64, total: u64| {
            let _ = tx.send((done, total));
        };
        repo.confirm(&id, &mut cb).await
    });
    let mut throttle = Throttle::new();
    loop {
        tokio::select! {
            () = req.cancel.cancelled() => {
                task.abort();
                return Err(EngineError::Cancelled);
            }
            r = &mut task => {
                return match r {
                    Ok(Ok(_report)) => Ok(()),
                    Ok(Err(e)) => Err(EngineError::Repo(e)),
                    Err(e) => Err(EngineError::Stream(format!("verification task failed: {e}"))),
                };
            }
            changed = rx.changed() => {
                if changed.is_ok() {
                    let (done, total) = *rx.borrow_and_update();
                    if throttle.due(done, total) {
                        req.progress.report(Phase::Checking { done, total }).await;
                    }
                }
            }
        }
    }
}
