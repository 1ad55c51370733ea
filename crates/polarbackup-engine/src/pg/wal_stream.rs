//! Physical WAL streaming (START_REPLICATION ... PHYSICAL): XLogData in, standby status updates out.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use jiff::Timestamp;
use polarbackup_model::{Clock, SystemClock};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::conn::{parse_lsn, validate_slot_name, ReplicationConn};
use super::error::PgError;
use super::frame::{server_error, take_u64, Backend};
use super::query::{parse_num, ResultSet, ResultSetBuilder};
use super::stream::PgStream;
use polarbackup_model::lsn::Lsn;

/// How often to report progress unprompted; the server's wal_sender_timeout defaults to 60 s.
const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Seconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 UTC.
const PG_EPOCH_OFFSET_SECS: i64 = 946_684_800;

/// What the WAL stream delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalEvent {
    /// WAL bytes starting at `start` (contiguous with the previous `Data`).
    Data { start: Lsn, data: Bytes },
    /// The server ended streaming: the timeline ended (`next_timeline` = its successor and where
    /// it starts) or the server is shutting down (`None`). `next` returns `None` afterwards.
    EndOfStream { next_timeline: Option<(u32, Lsn)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// START_REPLICATION answered with the next timeline and no COPY: the requested timeline
    /// ends exactly at the start point. `next` reports that end once.
    EndPending,
    Streaming,
    /// Server sent CopyDone; reading the optional next-timeline result set up to ReadyForQuery.
    Ending,
    Done,
    Failed,
}

/// A START_REPLICATION stream. Owns the connection; `finish` hands it back.
pub struct WalStream<S = PgStream> {
    conn: ReplicationConn<S>,
    phase: Phase,
    /// End of the last XLogData: everything before it has been received.
    received: Lsn,
    /// What the caller confirmed durable; reported as the flush position (0 = unknown), which
    /// lets the server release WAL held by the slot.
    flushed: Lsn,
    server_wal_end: Lsn,
    status_interval: Duration,
    next_status: Instant,
    sent_copy_done: bool,
    rs: Option<ResultSetBuilder>,
    next_timeline: Option<(u32, Lsn)>,
    /// Set once the server has sent CommandComplete after its CopyDone; EOF is then a shutdown.
    completed: bool,
    /// Stamps the status updates (the server shows it as the standby's reply time).
    clock: Arc<dyn Clock>,
    /// The server's clock in the last XLogData or keepalive; `None` if it carried no usable one.
    last_server_time: Option<Timestamp>,
    /// See [`WalStream::watch_server_time`]: the position watched, and the time once reached.
    watch: Option<(Lsn, Option<Timestamp>)>,
    /// When the server last sent XLogData or a keepalive (or streaming began).
    heard: Instant,
    /// Whether status updates ask the server to answer (with a keepalive).
    request_replies: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReplicationConn<S> {
    /// START_REPLICATION [SLOT slot] PHYSICAL start TIMELINE timeline. Physical streaming sends
    /// exactly from `start`; a `WalSegmentWriter` wants it at a segment boundary.
    pub async fn start_physical_replication(
        mut self,
        slot: Option<&str>,
        start: Lsn,
        timeline: u32,
    ) -> Result<WalStream<S>, PgError> {
        let slot_clause = match slot {
            Some(s) => {
                validate_slot_name(s)?;
                format!("SLOT {s} ")
            }
            None => String::new(),
        };
        self.send_query(&format!(
            "START_REPLICATION {slot_clause}PHYSICAL {start} TIMELINE {timeline}"
        ))
        .await?;
        // A timeline that ends exactly at `start` answers with its successor and no COPY.
        let mut rs: Option<ResultSetBuilder> = None;
        let mut next_timeline = None;
        let phase = loop {
            match self.framed.read().await? {
                Backend::CopyBoth => break Phase::Streaming,
                // The connection goes with the error: the caller reconnects to retry.
                Backend::Msg(Message::ErrorResponse(b)) => {
                    return Err(server_error(b.fields()).error)
                }
                Backend::Msg(Message::RowDescription(d)) => rs = Some(ResultSetBuilder::new(&d)?),
                Backend::Msg(Message::DataRow(r)) => rs
                    .as_mut()
                    .ok_or_else(|| PgError::protocol("DataRow without RowDescription"))?
                    .push(&r)?,
                Backend::Msg(Message::CommandComplete(_)) => {
                    if let Some(b) = rs.take() {
                        next_timeline = next_timeline_row(&b.finish(String::new()))?;
                    }
                }
                Backend::Msg(Message::ReadyForQuery(_)) => {
                    self.busy = false;
                    if next_timeline.is_none() {
                        return Err(PgError::protocol(format!(
                            "START_REPLICATION: timeline {timeline} ends at or before {start}; nothing to stream"
                        )));
                    }
                    break Phase::EndPending;
                }
                _ => return Err(PgError::protocol("START_REPLICATION: unexpected answer")),
            }
        };
        Ok(WalStream {
            conn: self,
            phase,
            received: start,
            flushed: Lsn::INVALID,
            server_wal_end: Lsn::INVALID,
            status_interval: DEFAULT_STATUS_INTERVAL,
            next_status: Instant::now() + DEFAULT_STATUS_INTERVAL,
            sent_copy_done: false,
            rs: None,
            next_timeline,
            completed: false,
            clock: Arc::new(SystemClock),
            last_server_time: None,
            watch: None,
            heard: Instant::now(),
            request_replies: false,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WalStream<S> {
    /// The end of the WAL received so far.
    pub fn received_up_to(&self) -> Lsn {
        self.received
    }

    /// The server's WAL end as last reported (keepalive or XLogData).
    pub fn server_wal_end(&self) -> Lsn {
        self.server_wal_end
    }

    /// Records that WAL up to `lsn` is durably stored; the next status update reports it.
    pub fn confirm_flushed(&mut self, lsn: Lsn) {
        self.flushed = self.flushed.max(lsn.min(self.received));
    }

    /// The server's clock in the last XLogData or keepalive received: right after a `Data`
    /// event, the send time of the message that carried it. `None` when that message's clock
    /// was unusable (negative, or beyond what a timestamp can hold) or nothing came yet.
    pub fn last_server_time(&self) -> Option<Timestamp> {
        self.last_server_time
    }

    /// Watches for the server's clock at the moment it sent WAL reaching `lsn`: the send time of
    /// the first XLogData whose data ends at or past `lsn`; if that one carried no usable clock,
    /// the first later message (keepalive or XLogData) that does. Never a time from before the
    /// WAL was sent, so never earlier than the state at `lsn` existed on the server.
    pub fn watch_server_time(&mut self, lsn: Lsn) {
        self.watch = Some((lsn, None));
    }

    /// The time [`WalStream::watch_server_time`] found, once the WAL reached its position.
    pub fn watched_server_time(&self) -> Option<Timestamp> {
        self.watch.and_then(|(_, t)| t)
    }

    /// Records the clock of a message received once everything before `self.received` arrived.
    fn note_server_time(&mut self, send_time: u64) {
        self.last_server_time = pg_timestamp(send_time);
        if let Some((lsn, found @ None)) = &mut self.watch {
            if self.received >= *lsn {
                *found = self.last_server_time;
            }
        }
    }

    /// Sends a status update with the next call to `next`, rather than when the interval is up:
    /// for a flush position the server should learn at once (it lets the slot move on).
    pub fn report_now(&mut self) {
        if self.phase == Phase::Streaming {
            self.queue_status();
        }
    }

    /// Makes every status update ask for an answer. A server that gets our updates never
    /// needs to send keepalives of its own, so on an idle server this is what shows the
    /// connection is alive (see [`WalStream::last_heard`]).
    pub fn set_request_replies(&mut self, yes: bool) {
        self.request_replies = yes;
    }

    /// When the server last sent WAL or a keepalive (when streaming began, before that).
    pub fn last_heard(&self) -> Instant {
        self.heard
    }

    /// How often to send a status update when the server does not ask for one.
    pub fn set_status_interval(&mut self, interval: Duration) {
        self.status_interval = interval;
        self.next_status = Instant::now() + interval;
    }

    /// The clock the status updates report (the wall clock unless set).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// The next WAL chunk. Keepalives are answered here, so keep calling it: a stream left
    /// unpolled longer than the server's wal_sender_timeout gets disconnected. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<WalEvent>, PgError> {
        let r = self.next_inner().await;
        if r.is_err() {
            self.phase = Phase::Failed;
        }
        r
    }

    async fn next_inner(&mut self) -> Result<Option<WalEvent>, PgError> {
        loop {
            match self.phase {
                Phase::EndPending => {
                    self.phase = Phase::Done;
                    return Ok(Some(WalEvent::EndOfStream {
                        next_timeline: self.next_timeline,
                    }));
                }
                Phase::Done => return Ok(None),
                Phase::Failed => {
                    return Err(PgError::protocol("the WAL stream has already failed"))
                }
                _ => {}
            }
            // Checked here too: while data keeps arriving the select! below is never reached.
            if self.phase == Phase::Streaming && Instant::now() >= self.next_status {
                self.queue_status();
            }
            // Sends queued replies, and finishes any a cancelled call left half-sent.
            self.conn.framed.flush().await?;
            if let Some(m) = self.conn.framed.try_next()? {
                if let Some(ev) = self.step(m)? {
                    return Ok(Some(ev));
                }
                continue;
            }
            if self.phase == Phase::Streaming {
                tokio::select! {
                    r = self.conn.framed.fill() => r?,
                    _ = tokio::time::sleep_until(self.next_status) => self.queue_status(),
                }
            } else {
                match self.conn.framed.fill().await {
                    // A shutting-down walsender closes right after CommandComplete, without ReadyForQuery.
                    Err(PgError::Io(e))
                        if self.completed && e.kind() == std::io::ErrorKind::UnexpectedEof =>
                    {
                        self.phase = Phase::Done;
                        return Ok(Some(WalEvent::EndOfStream {
                            next_timeline: self.next_timeline,
                        }));
                    }
                    r => r?,
                }
            }
        }
    }

    fn step(&mut self, m: Backend) -> Result<Option<WalEvent>, PgError> {
        let Backend::Msg(m) = m else {
            return Err(PgError::protocol("second CopyBothResponse"));
        };
        match (m, self.phase) {
            (Message::CopyData(d), Phase::Streaming) => self.on_copy_data(d.into_bytes()),
            // Data the server sent before it saw our CopyDone (during `finish`) is dropped there.
            (Message::CopyDone, Phase::Streaming) => {
                self.phase = Phase::Ending;
                if !self.sent_copy_done {
                    frontend::copy_done(self.conn.framed.wbuf());
                    self.sent_copy_done = true;
                }
                Ok(None)
            }
            (Message::RowDescription(d), Phase::Ending) => {
                self.rs = Some(ResultSetBuilder::new(&d)?);
                Ok(None)
            }
            (Message::DataRow(r), Phase::Ending) => {
                let rs = self
                    .rs
                    .as_mut()
                    .ok_or_else(|| PgError::protocol("DataRow without RowDescription"))?;
                rs.push(&r)?;
                Ok(None)
            }
            (Message::CommandComplete(c), Phase::Ending) => {
                if let Some(rs) = self
                    .rs
                    .take()
                    .map(|b| b.finish(c.tag().unwrap_or_default().to_string()))
                {
                    self.next_timeline = next_timeline_row(&rs)?;
                } else {
                    self.completed = true;
                }
                Ok(None)
            }
            (Message::ReadyForQuery(_), Phase::Ending) => {
                self.phase = Phase::Done;
                self.conn.busy = false;
                Ok(Some(WalEvent::EndOfStream {
                    next_timeline: self.next_timeline,
                }))
            }
            (Message::ErrorResponse(b), _) => Err(server_error(b.fields()).error),
            (_, phase) => Err(PgError::protocol(format!(
                "WAL stream: unexpected message in phase {phase:?}"
            ))),
        }
    }

    fn on_copy_data(&mut self, mut data: Bytes) -> Result<Option<WalEvent>, PgError> {
        if data.is_empty() {
            return Err(PgError::protocol("WAL stream: empty CopyData"));
        }
        let kind = data.get_u8();
        if matches!(kind, b'w' | b'k') {
            self.heard = Instant::now();
        }
        match kind {
            b'w' => {
                let mut hdr: &[u8] = &data;
                let start = Lsn(take_u64(&mut hdr)?);
                let wal_end = Lsn(take_u64(&mut hdr)?);
                let send_time = take_u64(&mut hdr)?;
                data.advance(24);
                if start != self.received {
                    return Err(PgError::protocol(format!(
                        "WAL stream: XLogData at {start}, expected {}",
                        self.received
                    )));
                }
                self.received = start + data.len() as u64;
                self.server_wal_end = self.server_wal_end.max(wal_end);
                self.note_server_time(send_time);
                Ok(Some(WalEvent::Data { start, data }))
            }
            b'k' => {
                let mut p: &[u8] = &data;
                let wal_end = Lsn(take_u64(&mut p)?);
                let send_time = take_u64(&mut p)?;
                let reply = *p
                    .first()
                    .ok_or_else(|| PgError::protocol("truncated keepalive"))?;
                self.server_wal_end = self.server_wal_end.max(wal_end);
                self.note_server_time(send_time);
                if reply != 0 {
                    self.queue_status();
                }
                Ok(None)
            }
            other => Err(PgError::protocol(format!(
                "WAL stream: unknown CopyData kind '{}'",
                other.escape_ascii()
            ))),
        }
    }

    /// Buffers a standby status update ('r'); the next loop turn sends it.
    fn queue_status(&mut self) {
        let msg = status_update(
            self.received,
            self.flushed,
            self.clock.now(),
            self.request_replies,
        );
        // CopyData::new only fails for payloads over i32::MAX.
        if let Ok(cd) = frontend::CopyData::new(&msg[..]) {
            cd.write(self.conn.framed.wbuf());
        }
        self.next_status = Instant::now() + self.status_interval;
    }

    /// Ends streaming: CopyDone, then reads up to ReadyForQuery and returns the connection.
    pub async fn finish(mut self) -> Result<ReplicationConn<S>, PgError> {
        match self.phase {
            Phase::Done | Phase::EndPending if !self.conn.busy => return Ok(self.conn),
            Phase::Done | Phase::EndPending => {
                return Err(PgError::protocol("the server closed the stream"))
            }
            Phase::Failed => return Err(PgError::protocol("the WAL stream has failed")),
            _ => {}
        }
        if !self.sent_copy_done {
            frontend::copy_done(self.conn.framed.wbuf());
            self.sent_copy_done = true;
        }
        self.conn.framed.flush().await?;
        loop {
            match self.conn.framed.read().await? {
                Backend::Msg(Message::CopyData(_)) if self.phase == Phase::Streaming => {}
                m => {
                    self.step(m)?;
                }
            }
            self.conn.framed.flush().await?;
            if self.phase == Phase::Done {
                return Ok(self.conn);
            }
        }
    }
}

/// The timeline a finished one hands over to: the single row (`next_tli`,
/// `next_tli_startpos`) the server sends after streaming a historic timeline, if any.
fn next_timeline_row(rs: &ResultSet) -> Result<Option<(u32, Lsn)>, PgError> {
    const W: &str = "end of timeline";
    let Some(row) = rs.rows.first() else {
        return Ok(None);
    };
    let field = |i: usize| {
        row.get(i)
            .cloned()
            .flatten()
            .ok_or_else(|| PgError::protocol(W))
    };
    Ok(Some((parse_num(&field(0)?, W)?, parse_lsn(&field(1)?, W)?)))
}

/// The Standby Status Update payload: write, flush and apply positions, clock, and whether
/// the server should answer. Apply is reported as unknown (0): this client never replays WAL.
fn status_update(written: Lsn, flushed: Lsn, now: Timestamp, reply: bool) -> BytesMut {
    let mut b = BytesMut::with_capacity(34);
    b.put_u8(b'r');
    b.put_u64(written.0);
    b.put_u64(flushed.0);
    b.put_u64(0);
    b.put_i64(pg_micros(now));
    b.put_u8(u8::from(reply));
    b
}

/// The server's TimestampTz (microseconds since 2000-01-01 UTC, sent as an int64) as a
/// timestamp. A negative clock (before 2000, or -infinity) is no real server's, and +infinity
/// and its like do not fit a `Timestamp`: both are `None`.
pub(crate) fn pg_timestamp(raw: u64) -> Option<Timestamp> {
    let micros = i64::try_from(raw).ok()?;
    let unix = micros.checked_add(PG_EPOCH_OFFSET_SECS * 1_000_000)?;
    Timestamp::from_microsecond(unix).ok()
}

/// `t` in microseconds since 2000-01-01 UTC, the server's TimestampTz.
fn pg_micros(t: Timestamp) -> i64 {
    t.as_microsecond() - PG_EPOCH_OFFSET_SECS * 1_000_000
}
