//! BASE_BACKUP: the command text, and a stream of events decoded from its answer. PostgreSQL 15+
//! gets the parenthesised options and answers in one CopyOut of typed messages; 13 and 14 get
//! the older keyword syntax and answer with one CopyOut per tablespace, then one for the
//! manifest, which the stream turns into the same events.

use bytes::{Buf, Bytes};
use postgres_protocol::message::backend::Message;
use std::collections::VecDeque;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{parse_lsn, ReplicationConn};
use super::error::PgError;
use super::frame::{server_error, take_cstr, take_u64, Backend};
use super::query::{parse_num, ResultSet, ResultSetBuilder};
use super::stream::PgStream;
use polarbackup_model::lsn::Lsn;

/// What to ask BASE_BACKUP for. `Default` mirrors the server's own defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackupOptions {
    pub label: String,
    /// Have the server size every tablespace first, so `Tablespaces` carries sizes and `Progress` arrives.
    pub progress: bool,
    /// CHECKPOINT 'fast' instead of spreading the checkpoint over checkpoint_timeout.
    pub fast_checkpoint: bool,
    pub manifest: bool,
    /// MANIFEST_CHECKSUMS: NONE, CRC32C (server default), SHA224, SHA256, SHA384 or SHA512.
    pub manifest_checksums: Option<String>,
    /// Append the WAL needed for consistency to base.tar (pg_basebackup -Xfetch).
    pub wal: bool,
    /// Wait until the last WAL segment is archived.
    pub wait: bool,
    /// kB/s, 32..=1048576.
    pub max_rate: Option<u32>,
    pub tablespace_map: bool,
    pub verify_checksums: bool,
    /// Server-side COMPRESSION: gzip, lz4 or zstd; `Data` then carries compressed bytes.
    pub compression: Option<String>,
    /// COMPRESSION_DETAIL, e.g. "level=1,workers=2".
    pub compression_detail: Option<String>,
    /// INCREMENTAL (PostgreSQL 17+): relative to the manifest sent first with
    /// [`ReplicationConn::upload_manifest`]; relation files come as `INCREMENTAL.<file>`.
    pub incremental: bool,
}

impl Default for BaseBackupOptions {
    fn default() -> BaseBackupOptions {
        BaseBackupOptions {
            label: "base backup".into(),
            progress: false,
            fast_checkpoint: false,
            manifest: false,
            manifest_checksums: None,
            wal: false,
            wait: true,
            max_rate: None,
            tablespace_map: false,
            verify_checksums: true,
            compression: None,
            compression_detail: None,
            incremental: false,
        }
    }
}

impl BaseBackupOptions {
    /// The command text, always the parenthesised PG15+ syntax with every boolean spelled out.
    pub fn command(&self) -> Result<String, PgError> {
        let b = |v: bool| if v { "true" } else { "false" };
        let mut opts = vec![
            format!("LABEL {}", quote_literal(&self.label)?),
            format!("PROGRESS {}", b(self.progress)),
            format!(
                "CHECKPOINT '{}'",
                if self.fast_checkpoint {
                    "fast"
                } else {
                    "spread"
                }
            ),
            format!("WAL {}", b(self.wal)),
            format!("WAIT {}", b(self.wait)),
            format!("MANIFEST '{}'", if self.manifest { "yes" } else { "no" }),
            format!("TABLESPACE_MAP {}", b(self.tablespace_map)),
            format!("VERIFY_CHECKSUMS {}", b(self.verify_checksums)),
        ];
        if let Some(c) = &self.manifest_checksums {
            opts.push(format!("MANIFEST_CHECKSUMS {}", quote_literal(c)?));
        }
        if let Some(r) = self.max_rate {
            opts.push(format!("MAX_RATE {r}"));
        }
        if let Some(c) = &self.compression {
            opts.push(format!("COMPRESSION {}", quote_literal(c)?));
        }
        if let Some(d) = &self.compression_detail {
            opts.push(format!("COMPRESSION_DETAIL {}", quote_literal(d)?));
        }
        if self.incremental {
            opts.push("INCREMENTAL true".into());
        }
        Ok(format!("BASE_BACKUP ({})", opts.join(", ")))
    }

    /// The command text in the keyword syntax of PostgreSQL 13 and 14, which has no server-side
    /// compression. Options at their default are left out (14 knows no `WAIT` keyword, only `NOWAIT`).
    pub fn legacy_command(&self) -> Result<String, PgError> {
        if self.compression.is_some() || self.compression_detail.is_some() {
            return Err(PgError::InvalidInput(
                "server-side compression needs PostgreSQL 15 or later".into(),
            ));
        }
        if self.incremental {
            return Err(PgError::InvalidInput(
                "incremental BASE_BACKUP needs PostgreSQL 17 or later".into(),
            ));
        }
        let mut opts = vec![format!("LABEL {}", quote_literal(&self.label)?)];
        let flags = [
            (self.progress, "PROGRESS"),
            (self.fast_checkpoint, "FAST"),
            (self.wal, "WAL"),
            (!self.wait, "NOWAIT"),
            (self.tablespace_map, "TABLESPACE_MAP"),
            (!self.verify_checksums, "NOVERIFY_CHECKSUMS"),
        ];
        opts.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
        opts.push(format!(
            "MANIFEST '{}'",
            if self.manifest { "yes" } else { "no" }
        ));
        if let Some(c) = &self.manifest_checksums {
            opts.push(format!("MANIFEST_CHECKSUMS {}", quote_literal(c)?));
        }
        if let Some(r) = self.max_rate {
            opts.push(format!("MAX_RATE {r}"));
        }
        Ok(format!("BASE_BACKUP {}", opts.join(" ")))
    }
}

/// A string constant for the replication grammar: quotes doubled, backslashes literal (as in its scanner).
fn quote_literal(s: &str) -> Result<String, PgError> {
    if s.contains('\0') {
        return Err(PgError::InvalidInput(format!("{s:?} contains a NUL byte")));
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// One row of BASE_BACKUP's second result set. The main data directory has no oid and no location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceInfo {
    pub oid: Option<u32>,
    pub location: Option<String>,
    /// Estimated size; only with `progress`.
    pub size_kb: Option<u64>,
}

/// What BASE_BACKUP's answer says, in the order the server says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupEvent {
    Started {
        start_lsn: Lsn,
        timeline: u32,
    },
    Tablespaces(Vec<TablespaceInfo>),
    /// A new tar archive begins: `base.tar` (location `None`) or `<oid>.tar` for a tablespace.
    ArchiveStart {
        name: String,
        tablespace_location: Option<String>,
    },
    /// A chunk of the current archive.
    Data(Bytes),
    /// Bytes done so far in the whole backup, all archives together (uncompressed, even with
    /// server compression). Sent about once a second and at each archive's end; never by
    /// PostgreSQL 13 and 14, where the client counts the bytes itself.
    Progress(u64),
    /// The backup_manifest follows as `ManifestData` chunks.
    ManifestStart,
    ManifestData(Bytes),
    /// The backup is complete: all WAL from `start_lsn` to `end_lsn` makes it consistent.
    Finished {
        end_lsn: Lsn,
        timeline: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    StartResult,
    TablespaceResult,
    AwaitCopy,
    Copy { archive: bool, manifest: bool },
    EndResult,
    AwaitReady { end_lsn: Lsn, timeline: u32 },
    Done,
    Failed,
}

/// The answer to BASE_BACKUP, read one message at a time. `next` is cancel-safe. Dropping the
/// stream before `None` leaves the connection unusable.
pub struct BaseBackupStream<'a, S = PgStream> {
    conn: &'a mut ReplicationConn<S>,
    phase: Phase,
    rs: Option<ResultSetBuilder>,
    /// Set for PostgreSQL 13 and 14.
    legacy: Option<Legacy>,
}

/// What a pre-15 answer still owes: one CopyOut per tablespace, in the order of the tablespace
/// result set, then one for the manifest if it was asked for.
#[derive(Debug, Default)]
struct Legacy {
    archives: VecDeque<(String, Option<String>)>,
    manifest: bool,
}

/// Two zero blocks end a tar archive. Servers before 15 leave them out (pg_basebackup adds them);
/// the stream adds them too, so every archive is a complete tar whichever the server.
const TAR_TRAILER: [u8; 1024] = [0; 1024];

impl<S: AsyncRead + AsyncWrite + Unpin> ReplicationConn<S> {
    /// Sends BASE_BACKUP in the syntax the server's version takes (an unknown version is taken
    /// to be 15 or later); the events come from the returned stream. Requires PostgreSQL 13+.
    pub async fn base_backup(
        &mut self,
        opts: &BaseBackupOptions,
    ) -> Result<BaseBackupStream<'_, S>, PgError> {
        let (cmd, legacy) = match self.server_major_version() {
            Some(v) if v < 13 => {
                return Err(PgError::InvalidInput(format!(
                    "BASE_BACKUP with a manifest needs PostgreSQL 13 or later; the server is {v}"
                )))
            }
            Some(13 | 14) => (
                opts.legacy_command()?,
                Some(Legacy {
                    manifest: opts.manifest,
                    ..Legacy::default()
                }),
            ),
            _ => (opts.command()?, None),
        };
        tracing::debug!(%cmd, "starting base backup");
        self.send_query(&cmd).await?;
        // Until the stream ends: bulk data, read in large pieces (see `set_coalesce`).
        self.framed.set_coalesce(true);
        Ok(BaseBackupStream {
            conn: self,
            phase: Phase::StartResult,
            rs: None,
            legacy,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> BaseBackupStream<'_, S> {
    /// The next event; `Ok(None)` only after the server has confirmed the end of the backup.
    pub async fn next(&mut self) -> Result<Option<BackupEvent>, PgError> {
        loop {
            match self.phase {
                Phase::Done => return Ok(None),
                Phase::Failed => {
                    return Err(PgError::protocol(
                        "the base backup stream has already failed",
                    ))
                }
                _ => {}
            }
            let step = match self.conn.framed.read().await {
                Ok(m) => self.step(m),
                Err(e) => Err(e),
            };
            match step {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => {}
                Err(e) => {
                    self.phase = Phase::Failed;
                    return Err(e);
                }
            }
        }
    }

    /// Handles one message. After any error the connection stays marked busy: a failed backup's
    /// connection is not worth resynchronising, callers reconnect.
    fn step(&mut self, m: Backend) -> Result<Option<BackupEvent>, PgError> {
        let Backend::Msg(m) = m else {
            return Err(PgError::protocol("CopyBothResponse during BASE_BACKUP"));
        };
        match (m, self.phase) {
            (Message::ErrorResponse(b), _) => Err(server_error(b.fields()).error),
            (
                Message::RowDescription(d),
                Phase::StartResult | Phase::TablespaceResult | Phase::EndResult,
            ) if self.rs.is_none() => {
                self.rs = Some(ResultSetBuilder::new(&d)?);
                Ok(None)
            }
            (Message::DataRow(r), _) if self.rs.is_some() => {
                self.rs.as_mut().map(|rs| rs.push(&r)).transpose()?;
                Ok(None)
            }
            (Message::CommandComplete(c), phase) => match self.rs.take() {
                Some(b) => self.on_result_set(b.finish(c.tag()?.to_string())),
                // BASE_BACKUP's own CommandComplete, after the last result set.
                None if matches!(phase, Phase::AwaitReady { .. }) => Ok(None),
                None => Err(PgError::protocol(
                    "BASE_BACKUP: CommandComplete out of place",
                )),
            },
            (Message::CopyOutResponse(_), Phase::AwaitCopy) => match self.legacy.as_mut() {
                Some(legacy) => Ok(Some(legacy_copy_start(legacy, &mut self.phase)?)),
                None => {
                    self.phase = Phase::Copy {
                        archive: false,
                        manifest: false,
                    };
                    Ok(None)
                }
            },
            (Message::CopyData(d), Phase::Copy { archive, manifest }) => {
                let data = d.into_bytes();
                match (&self.legacy, archive) {
                    // Before 15 the CopyData carries raw bytes, no message type.
                    (Some(_), _) if data.is_empty() => Ok(None),
                    (Some(_), true) => Ok(Some(BackupEvent::Data(data))),
                    (Some(_), false) => Ok(Some(BackupEvent::ManifestData(data))),
                    (None, _) => self.on_copy_data(data, archive, manifest),
                }
            }
            (Message::CopyDone, Phase::Copy { archive, .. }) => match &self.legacy {
                Some(legacy) => {
                    self.phase = if legacy.archives.is_empty() && !legacy.manifest {
                        Phase::EndResult
                    } else {
                        Phase::AwaitCopy
                    };
                    Ok(archive.then(|| BackupEvent::Data(Bytes::from_static(&TAR_TRAILER))))
                }
                None => {
                    self.phase = Phase::EndResult;
                    Ok(None)
                }
            },
            (Message::ReadyForQuery(_), Phase::AwaitReady { end_lsn, timeline }) => {
                self.phase = Phase::Done;
                self.conn.busy = false;
                // The connection may take further commands, which want their answers at once.
                self.conn.framed.set_coalesce(false);
                Ok(Some(BackupEvent::Finished { end_lsn, timeline }))
            }
            (Message::ReadyForQuery(_), _) => Err(PgError::protocol(
                "BASE_BACKUP ended before the backup was complete",
            )),
            (_, phase) => Err(PgError::protocol(format!(
                "BASE_BACKUP: unexpected message in phase {phase:?}"
            ))),
        }
    }

    fn on_result_set(&mut self, rs: ResultSet) -> Result<Option<BackupEvent>, PgError> {
        const W: &str = "BASE_BACKUP";
        let lsn_tli = |rs: &ResultSet| -> Result<(Lsn, u32), PgError> {
            match rs.rows.as_slice() {
                [row] if row.len() >= 2 => {
                    let lsn = row[0]
                        .as_deref()
                        .ok_or_else(|| PgError::protocol("BASE_BACKUP: NULL LSN"))?;
                    let tli = row[1]
                        .as_deref()
                        .ok_or_else(|| PgError::protocol("BASE_BACKUP: NULL timeline"))?;
                    Ok((parse_lsn(lsn, W)?, parse_num(tli, W)?))
                }
                _ => Err(PgError::protocol(
                    "BASE_BACKUP: expected one row of LSN and timeline",
                )),
            }
        };
        match self.phase {
            Phase::StartResult => {
                let (start_lsn, timeline) = lsn_tli(&rs)?;
                self.phase = Phase::TablespaceResult;
                Ok(Some(BackupEvent::Started {
                    start_lsn,
                    timeline,
                }))
            }
            Phase::TablespaceResult => {
                let mut spcs = Vec::with_capacity(rs.rows.len());
                for row in &rs.rows {
                    let col = |i: usize| row.get(i).cloned().flatten();
                    spcs.push(TablespaceInfo {
                        oid: col(0).map(|v| parse_num(&v, W)).transpose()?,
                        location: col(1),
                        size_kb: col(2).map(|v| parse_num(&v, W)).transpose()?,
                    });
                }
                if let Some(legacy) = self.legacy.as_mut() {
                    legacy.archives = spcs
                        .iter()
                        .map(|t| match t.oid {
                            Some(oid) => (format!("{oid}.tar"), t.location.clone()),
                            None => ("base.tar".to_string(), None),
                        })
                        .collect();
                }
                self.phase = Phase::AwaitCopy;
                Ok(Some(BackupEvent::Tablespaces(spcs)))
            }
            Phase::EndResult => {
                let (end_lsn, timeline) = lsn_tli(&rs)?;
                // Finished is held back until ReadyForQuery: a late error must not follow success.
                self.phase = Phase::AwaitReady { end_lsn, timeline };
                Ok(None)
            }
            _ => Err(PgError::protocol("BASE_BACKUP: result set out of place")),
        }
    }

    fn on_copy_data(
        &mut self,
        mut data: Bytes,
        archive: bool,
        manifest: bool,
    ) -> Result<Option<BackupEvent>, PgError> {
        if data.is_empty() {
            return Err(PgError::protocol("BASE_BACKUP: empty CopyData"));
        }
        let kind = data.get_u8();
        let ev = match kind {
            b'n' => {
                let mut p: &[u8] = &data;
                let name = take_cstr(&mut p)?;
                let location = take_cstr(&mut p)?;
                self.phase = Phase::Copy {
                    archive: true,
                    manifest: false,
                };
                BackupEvent::ArchiveStart {
                    name,
                    tablespace_location: Some(location).filter(|l| !l.is_empty()),
                }
            }
            b'd' if manifest => BackupEvent::ManifestData(data),
            b'd' if archive => BackupEvent::Data(data),
            b'd' => return Err(PgError::protocol("BASE_BACKUP: data before any archive")),
            b'p' => BackupEvent::Progress(take_u64(&mut &data[..])?),
            b'm' => {
                self.phase = Phase::Copy {
                    archive: false,
                    manifest: true,
                };
                BackupEvent::ManifestStart
            }
            other => {
                return Err(PgError::protocol(format!(
                    "BASE_BACKUP: unknown CopyData kind '{}'",
                    other.escape_ascii()
                )))
            }
        };
        Ok(Some(ev))
    }
}

/// A pre-15 CopyOut begins: the next tablespace's archive, or else the manifest.
fn legacy_copy_start(legacy: &mut Legacy, phase: &mut Phase) -> Result<BackupEvent, PgError> {
    if let Some((name, tablespace_location)) = legacy.archives.pop_front() {
        *phase = Phase::Copy {
            archive: true,
            manifest: false,
        };
        return Ok(BackupEvent::ArchiveStart {
            name,
            tablespace_location,
        });
    }
    if std::mem::take(&mut legacy.manifest) {
        *phase = Phase::Copy {
            archive: false,
            manifest: true,
        };
        return Ok(BackupEvent::ManifestStart);
    }
    Err(PgError::protocol(
        "BASE_BACKUP: more archives than tablespaces",
    ))
}
