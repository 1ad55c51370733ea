//! One stretch of streaming: WAL in, segments and partials out, timeline switches followed,
//! until cancelled, the lease is lost, the server removed WAL we need, or an error.

use super::history::History;
use super::segment::{Assembler, Piece};
use super::store::{Outcome, Target};
use crate::pg::{Lsn, PgError, ReplicationConn, WalEvent, WalStream};
use crate::stall::Deadline;
use crate::EngineError;
use polarbackup_model::log_backup::WalObjectKind;
use polarbackup_model::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long a last partial may take when the run ends (cancelled, or the source failed).
const FINAL_STORE_LIMIT: Duration = Duration::from_secs(10);
/// How long saying goodbye to the server may take after a cancel.
const GOODBYE_LIMIT: Duration = Duration::from_secs(2);

/// How a session ended, other than with an error.
#[derive(Debug)]
pub enum Ended {
    Cancelled,
    LeaseLost,
    /// The server no longer has WAL the archive needs (the archive is complete up to its
    /// recorded end): a gap.
    Removed(String),
}

/// The streaming state of one session.
pub struct Session<'a> {
    pub target: &'a Target<'a>,
    pub slot: &'a str,
    pub clock: Arc<dyn Clock>,
    pub partial_interval: Duration,
    /// How long the server may stay silent although every status update asks it to
    /// answer: a stopped server or a dead connection (a peer gone, a network cut) ends the
    /// session as stalled.
    pub stall: Deadline,
    pub asm: Assembler,
    /// The archive's end: what the last recorded object reached, on its timeline.
    pub archived: Option<(u32, Lsn)>,
    /// When the WAL not yet stored must be stored as a partial.
    deadline: Option<Instant>,
    /// Where the caller watches the lag.
    pub position: Option<&'a super::ArchivePosition>,
}

/// How often the server hears from us: often enough that the slot follows the archive
/// closely, and that a live server answers several times within the stall deadline.
fn status_interval(partial_interval: Duration, stall: Duration) -> Duration {
    partial_interval
        .min(stall / 3)
        .clamp(Duration::from_millis(100), Duration::from_secs(10))
}

impl<'a> Session<'a> {
    pub fn new(
        target: &'a Target<'a>,
        slot: &'a str,
        clock: Arc<dyn Clock>,
        partial_interval: Duration,
        stall: Deadline,
        asm: Assembler,
        archived: Option<(u32, Lsn)>,
    ) -> Session<'a> {
        Session {
            target,
            slot,
            clock,
            partial_interval,
            stall,
            asm,
            archived,
            deadline: None,
            position: None,
        }
    }

    /// START_REPLICATION on the slot from the assembler's position.
    pub async fn start(&self, conn: ReplicationConn, from: Lsn) -> Result<WalStream, EngineError> {
        let timeline = self.asm.timeline();
        let mut stream = self
            .stall
            .wait(async {
                conn.start_physical_replication(Some(self.slot), from, timeline)
                    .await
                    .map_err(|e| EngineError::from_pg(e, false))
            })
            .await?;
        stream.set_clock(self.clock.clone());
        stream.set_status_interval(status_interval(self.partial_interval, self.stall.limit));
        stream.set_request_replies(true);
        Ok(stream)
    }

    pub async fn run(
        &mut self,
        mut stream: WalStream,
        cancel: &CancellationToken,
    ) -> Result<Ended, EngineError> {
        let silence = self.stall.limit;
        loop {
            if let Some(p) = self.position {
                p.set(stream.server_wal_end(), self.archived.map(|(_, end)| end));
            }
            let deadline = self.deadline;
            let silent_at = stream.last_heard() + silence;
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(self.on_cancel(stream).await),
                () = sleep_until(deadline) => {
                    if self.store_partial(&mut stream).await? == Outcome::LeaseLost {
                        return Ok(Ended::LeaseLost);
                    }
                    continue;
                }
                r = stream.next() => r,
                // Last: WAL already waiting to be read must not look like silence.
                () = tokio::time::sleep_until(silent_at) => {
                    // A keepalive read just now counts: `next` consumes those itself.
                    if stream.last_heard() + silence > Instant::now() {
                        continue;
                    }
                    let e = self.stall.stalled();
                    return self.fail(stream, e).await;
                }
            };
            match event {
                Ok(Some(WalEvent::Data { start, data })) => {
                    let time = stream.last_server_time();
                    let done = self
                        .asm
                        .push(start, &data, time)
                        .map_err(EngineError::Stream)?;
                    for piece in done {
                        if self.store(&mut stream, piece).await? == Outcome::LeaseLost {
                            return Ok(Ended::LeaseLost);
                        }
                    }
                    if self.asm.has_unstored() {
                        self.deadline
                            .get_or_insert_with(|| Instant::now() + self.partial_interval);
                    }
                }
                Ok(Some(WalEvent::EndOfStream {
                    next_timeline: Some((tl, switch)),
                })) => match self.switch_timeline(stream, tl, switch).await? {
                    Some(next) => stream = next,
                    None => return Ok(Ended::LeaseLost),
                },
                Ok(Some(WalEvent::EndOfStream {
                    next_timeline: None,
                }))
                | Ok(None) => {
                    let e = EngineError::Stream(
                        "the server ended the WAL stream (shutting down?)".into(),
                    );
                    return self.fail(stream, e).await;
                }
                Err(e) => match removed(&e) {
                    Some(why) => {
                        // What arrived before is good WAL: keep it, the gap starts after it.
                        if self.store_partial(&mut stream).await? == Outcome::LeaseLost {
                            return Ok(Ended::LeaseLost);
                        }
                        return Ok(Ended::Removed(why));
                    }
                    None => return self.fail(stream, EngineError::from_pg(e, false)).await,
                },
            }
        }
    }

    /// Stores a segment or partial; once recorded, the slot may release the WAL before its end.
    async fn store(
        &mut self,
        stream: &mut WalStream,
        piece: Piece,
    ) -> Result<Outcome, EngineError> {
        let (timeline, end, kind) = (piece.timeline, piece.end, piece.kind);
        let outcome = self.target.store(piece).await?;
        if outcome == Outcome::Kept {
            self.asm.mark_stored(end);
            if !self.asm.has_unstored() {
                self.deadline = None;
            } else if kind == WalObjectKind::Segment {
                // What is left arrived with or after the segment's last bytes, just now: its
                // partial is due an interval from now, not from the old segment's first bytes
                // (under steady load that stored a needless partial every interval).
                self.deadline = Some(Instant::now() + self.partial_interval);
            }
            self.archived = Some((timeline, end));
            stream.confirm_flushed(end);
            stream.report_now();
        }
        Ok(outcome)
    }

    /// Stores the segment in progress as a partial, if it holds WAL not stored yet.
    async fn store_partial(&mut self, stream: &mut WalStream) -> Result<Outcome, EngineError> {
        self.deadline = None;
        match self.asm.partial() {
            Some(p) => self.store(stream, p).await,
            None => Ok(Outcome::Kept),
        }
    }

    /// The timeline streamed ended at `switch` and `tl` follows: the old timeline's last
    /// partial, the new one's history file, then streaming on `tl`. `None`: the lease is lost.
    async fn switch_timeline(
        &mut self,
        mut stream: WalStream,
        tl: u32,
        switch: Lsn,
    ) -> Result<Option<WalStream>, EngineError> {
        let old = self.asm.timeline();
        if self.asm.received() != switch {
            return Err(EngineError::Stream(format!(
                "timeline {old} ended at {switch}, but its WAL was received up to {}",
                self.asm.received()
            )));
        }
        info!(
            cluster = self.target.cluster.as_str(),
            from = old,
            to = tl,
            %switch,
            "timeline switch"
        );
        if self.store_partial(&mut stream).await? == Outcome::LeaseLost {
            return Ok(None);
        }
        let time = stream.last_server_time();
        let mut conn = self
            .stall
            .wait(async {
                stream
                    .finish()
                    .await
                    .map_err(|e| EngineError::from_pg(e, false))
            })
            .await?;
        if self.store_history(&mut conn, tl, time).await? == Outcome::LeaseLost {
            return Ok(None);
        }
        // The old timeline is archived up to the switch, and the new one goes on from there.
        self.archived = Some((tl, switch));
        let from = switch.segment_start(self.target.seg_size);
        self.asm = Assembler::new(tl, self.target.seg_size, from, from);
        self.start(conn, from).await.map(Some)
    }

    /// Fetches and stores the history file of `tl`, recording it at the point where `tl` began.
    /// The archive's WAL end stays where it is: a history file holds no WAL.
    pub async fn store_history(
        &mut self,
        conn: &mut ReplicationConn,
        tl: u32,
        time: Option<jiff::Timestamp>,
    ) -> Result<Outcome, EngineError> {
        let (_, content) = self
            .stall
            .wait(async {
                conn.timeline_history(tl)
                    .await
                    .map_err(|e| EngineError::from_pg(e, false))
            })
            .await?;
        let begin = History::parse(tl, &content)
            .map_err(|e| EngineError::Stream(format!("timeline {tl}: {e}")))?
            .begin();
        let piece = Piece {
            timeline: tl,
            kind: WalObjectKind::History,
            start: begin,
            end: begin,
            bytes: content,
            first_time: time,
            last_time: time,
        };
        self.target.store(piece).await
    }

    /// Cancelled: the WAL received goes in as a partial (best effort, bounded), the server
    /// hears the final flush position, and the run ends.
    async fn on_cancel(&mut self, mut stream: WalStream) -> Ended {
        match tokio::time::timeout(FINAL_STORE_LIMIT, self.store_partial(&mut stream)).await {
            Ok(Ok(Outcome::Kept)) => {}
            Ok(Ok(Outcome::LeaseLost)) => return Ended::Cancelled,
            Ok(Err(e)) => {
                warn!(cluster = self.target.cluster.as_str(), error = %e, "cannot store the last partial segment")
            }
            Err(_) => warn!(
                cluster = self.target.cluster.as_str(),
                "storing the last partial segment took too long"
            ),
        }
        let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.finish()).await;
        Ended::Cancelled
    }

    /// The stream failed with `e`: the WAL received still goes in (best effort, bounded),
    /// since the source may be gone for a while.
    async fn fail(&mut self, mut stream: WalStream, e: EngineError) -> Result<Ended, EngineError> {
        match tokio::time::timeout(FINAL_STORE_LIMIT, self.store_partial(&mut stream)).await {
            Ok(Ok(Outcome::LeaseLost)) => return Ok(Ended::LeaseLost),
            Ok(Ok(Outcome::Kept)) | Err(_) => {}
            Ok(Err(store)) => {
                warn!(cluster = self.target.cluster.as_str(), error = %store, "cannot store the last partial segment")
            }
        }
        Err(e)
    }
}

/// The server's message if it answered that WAL it was asked for is gone ("requested WAL
/// segment ... has already been removed": a file-access error, SQLSTATE 58P01 when the file
/// is missing).
fn removed(e: &PgError) -> Option<String> {
    match e {
        PgError::Server { code, message }
            if code == "58P01" || message.contains("has already been removed") =>
        {
            Some(message.clone())
        }
        _ => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
