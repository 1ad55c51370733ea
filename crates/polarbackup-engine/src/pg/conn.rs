//! `ReplicationConn`: connecting as a physical walsender client and running replication commands.

use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::auth::authenticate;
use super::config::{ConnectConfig, PgHost};
use super::error::PgError;
use super::frame::{server_error, Backend, Framed};
use super::query::{parse_num, ResultSet, ResultSetBuilder};
use super::stream::PgStream;
use super::tls;
use polarbackup_model::lsn::Lsn;

/// The answer to IDENTIFY_SYSTEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    pub system_id: String,
    pub timeline: u32,
    pub xlog_pos: Lsn,
    pub dbname: Option<String>,
}

/// A replication slot as READ_REPLICATION_SLOT reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot_type: String,
    pub restart_lsn: Option<Lsn>,
    pub restart_tli: Option<u32>,
}

/// A connection in physical-replication mode (`replication=true`): it accepts replication
/// commands through the simple query protocol, but no SQL.
pub struct ReplicationConn<S = PgStream> {
    pub(crate) framed: Framed<S>,
    /// Set while a command's answer is unread (a stream dropped half-way, or an I/O error):
    /// the protocol position is then unknown and the connection refuses further commands.
    pub(crate) busy: bool,
}

/// TCP keepalive probes: after this much idle time, then every `KEEPALIVE_INTERVAL`, and
/// the connection is dropped after `KEEPALIVE_RETRIES` unanswered ones. They find a peer
/// that vanished (a host down, a NAT entry dropped) while we wait for it to send.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// Switches TCP keepalives on with the timing above.
fn keepalive(tcp: &TcpStream) -> std::io::Result<()> {
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&ka)
}

/// Opens the socket and negotiates TLS as `cfg.tls` says, without starting up: ordinary SQL
/// clients (tokio-postgres' `connect_raw`) can start up over it with the same TLS rules.
pub async fn open_transport(cfg: &ConnectConfig) -> Result<PgStream, PgError> {
    Ok(match &cfg.host {
        PgHost::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", cfg.port));
            PgStream::Unix(UnixStream::connect(&path).await?)
        }
        PgHost::Tcp(host) => {
            let tcp = TcpStream::connect((host.as_str(), cfg.port)).await?;
            // Standby status updates are tiny; don't let Nagle hold them back.
            tcp.set_nodelay(true)?;
            keepalive(&tcp)?;
            tls::negotiate(tcp, host, cfg.tls, cfg.tls_ca_file.as_deref()).await?
        }
    })
}

impl ReplicationConn<PgStream> {
    /// Opens a socket, negotiates TLS as `cfg.tls` says, starts up as a walsender client and authenticates.
    pub async fn connect(cfg: &ConnectConfig) -> Result<ReplicationConn<PgStream>, PgError> {
        let stream = open_transport(cfg).await?;
        let is_tls = stream.is_tls();
        ReplicationConn::startup(stream, cfg, is_tls).await
    }

    /// True when the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.framed.get_ref().is_tls()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReplicationConn<S> {
    /// Starts up over an already-open transport (no SSLRequest): for custom transports and tests.
    pub async fn connect_stream(
        stream: S,
        cfg: &ConnectConfig,
    ) -> Result<ReplicationConn<S>, PgError> {
        ReplicationConn::startup(stream, cfg, false).await
    }

    async fn startup(
        stream: S,
        cfg: &ConnectConfig,
        tls: bool,
    ) -> Result<ReplicationConn<S>, PgError> {
        let mut framed = Framed::new(stream);
        let mut params = vec![
            ("user", cfg.user.as_str()),
            ("replication", "true"),
            ("application_name", cfg.application_name.as_str()),
            ("client_encoding", "UTF8"),
        ];
        if let Some(db) = &cfg.database {
            params.push(("database", db.as_str()));
        }
        frontend::startup_message(params, framed.wbuf())?;
        framed.flush().await?;
        authenticate(&mut framed, &cfg.user, cfg.password.as_deref(), tls).await?;
        // After AuthenticationOk: BackendKeyData and parameters, then ReadyForQuery, or a late
        // FATAL such as 53300 when max_wal_senders is exhausted.
        loop {
            match framed.read().await? {
                Backend::Msg(Message::ReadyForQuery(_)) => break,
                Backend::Msg(Message::BackendKeyData(_)) => {}
                Backend::Msg(Message::ErrorResponse(b)) => {
                    return Err(server_error(b.fields()).error)
                }
                _ => return Err(PgError::protocol("unexpected message after authentication")),
            }
        }
        Ok(ReplicationConn {
            framed,
            busy: false,
        })
    }

    /// A connection taken to be past startup, with the server's `server_version`: for
    /// replaying a recorded answer (`crate::replay`).
    pub(crate) fn replayed(stream: S, server_version: &str) -> ReplicationConn<S> {
        let mut framed = Framed::new(stream);
        framed.set_param("server_version", server_version);
        ReplicationConn {
            framed,
            busy: false,
        }
    }

    /// A parameter the server reported at startup, e.g. `server_version`.
    pub fn server_parameter(&self, name: &str) -> Option<&str> {
        self.framed.param(name)
    }

    /// The server's major version (15 for "15.18 (Debian ...)"), from `server_version`.
    pub fn server_major_version(&self) -> Option<u32> {
        let v = self.server_parameter("server_version")?;
        let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    pub(crate) fn ensure_idle(&self) -> Result<(), PgError> {
        if self.busy {
            return Err(PgError::protocol(
                "the connection is in the middle of an earlier command (stream dropped or failed); reconnect",
            ));
        }
        Ok(())
    }

    /// Sends `sql` as a simple query and sends it off; marks the connection busy until its answer is read.
    pub(crate) async fn send_query(&mut self, sql: &str) -> Result<(), PgError> {
        self.ensure_idle()?;
        if sql.contains('\0') {
            return Err(PgError::InvalidInput("query contains a NUL byte".into()));
        }
        self.busy = true;
        frontend::query(sql, self.framed.wbuf())?;
        self.framed.flush().await
    }

    /// Runs a replication command (IDENTIFY_SYSTEM, SHOW, READ_REPLICATION_SLOT, ...) and returns
    /// its result sets. A server ERROR leaves the connection usable; commands that start a COPY do not belong here.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>, PgError> {
        Ok(self
            .query_sets(sql)
            .await?
            .into_iter()
            .map(|(builder, tag)| match builder {
                Some(b) => b.finish(tag),
                None => ResultSet {
                    tag,
                    ..ResultSet::default()
                },
            })
            .collect())
    }

    /// [`ReplicationConn::simple_query`] with each result set unfinished (`None` for a command
    /// that answers no rows), and its command tag.
    async fn query_sets(
        &mut self,
        sql: &str,
    ) -> Result<Vec<(Option<ResultSetBuilder>, String)>, PgError> {
        self.send_query(sql).await?;
        let mut sets = Vec::new();
        let mut current: Option<ResultSetBuilder> = None;
        let mut error = None;
        loop {
            let m = self.read_message("simple_query").await?;
            match m {
                Message::RowDescription(d) => current = Some(ResultSetBuilder::new(&d)?),
                Message::DataRow(r) => current
                    .as_mut()
                    .ok_or_else(|| PgError::protocol("DataRow without RowDescription"))?
                    .push(&r)?,
                Message::CommandComplete(c) => sets.push((current.take(), c.tag()?.to_string())),
                Message::EmptyQueryResponse => {}
                Message::ErrorResponse(b) => {
                    let se = server_error(b.fields());
                    if se.fatal {
                        return Err(se.error);
                    }
                    error = Some(se.error);
                }
                Message::ReadyForQuery(_) => {
                    self.busy = false;
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(sets),
                    };
                }
                Message::CopyOutResponse(_) | Message::CopyInResponse(_) => {
                    return Err(PgError::protocol(
                        "simple_query cannot run a command that starts a COPY",
                    ))
                }
                _ => {
                    return Err(PgError::protocol(
                        "unexpected message in a simple query's answer",
                    ))
                }
            }
        }
    }

    /// UPLOAD_MANIFEST (PostgreSQL 17+): sends a prior backup's `backup_manifest`, which the
    /// next `BASE_BACKUP (INCREMENTAL)` on this connection is taken relative to. A server
    /// ERROR (a manifest it refuses, WAL summaries missing) is returned and leaves the
    /// connection usable.
    pub async fn upload_manifest(&mut self, manifest: &[u8]) -> Result<(), PgError> {
        self.send_query("UPLOAD_MANIFEST").await?;
        let mut error = None;
        let mut sent = false;
        loop {
            let m = self.read_message("UPLOAD_MANIFEST").await?;
            match m {
                Message::CopyInResponse(_) if !sent => {
                    // CopyData messages of at most 1 MiB, as pg_basebackup sends them.
                    for piece in manifest.chunks(1 << 20) {
                        let data = frontend::CopyData::new(piece)?;
                        data.write(self.framed.wbuf());
                        self.framed.flush().await?;
                    }
                    frontend::copy_done(self.framed.wbuf());
                    self.framed.flush().await?;
                    sent = true;
                }
                Message::CommandComplete(_) | Message::NoticeResponse(_) => {}
                Message::ErrorResponse(b) => {
                    let se = server_error(b.fields());
                    if se.fatal {
                        return Err(se.error);
                    }
                    error = Some(se.error);
                }
                Message::ReadyForQuery(_) => {
                    self.busy = false;
                    return match (error, sent) {
                        (Some(e), _) => Err(e),
                        (None, true) => Ok(()),
                        (None, false) => Err(PgError::protocol(
                            "UPLOAD_MANIFEST ended without asking for the manifest",
                        )),
                    };
                }
                _ => {
                    return Err(PgError::protocol(
                        "unexpected message in UPLOAD_MANIFEST's answer",
                    ))
                }
            }
        }
    }

    /// The next message of a command's answer; `what` names the command in the error for
    /// a CopyBothResponse, which only START_REPLICATION may bring.
    async fn read_message(&mut self, what: &str) -> Result<Message, PgError> {
        match self.framed.read().await? {
            Backend::Msg(m) => Ok(m),
            Backend::CopyBoth => Err(PgError::protocol(format!("{what} got CopyBothResponse"))),
        }
    }

    /// Runs a command expected to answer exactly one row.
    async fn single_row(&mut self, sql: &str, what: &str) -> Result<ResultSet, PgError> {
        let mut sets = self.simple_query(sql).await?;
        match sets.pop() {
            Some(rs) if sets.is_empty() && rs.rows.len() == 1 => Ok(rs),
            _ => Err(PgError::protocol(format!("{what}: expected one row"))),
        }
    }

    /// IDENTIFY_SYSTEM: system identifier, current timeline and WAL flush position.
    pub async fn identify_system(&mut self) -> Result<SystemInfo, PgError> {
        const W: &str = "IDENTIFY_SYSTEM";
        let rs = self.single_row(W, W).await?;
        Ok(SystemInfo {
            system_id: rs.require(0, "systemid", W)?.to_string(),
            timeline: parse_num(rs.require(0, "timeline", W)?, W)?,
            xlog_pos: parse_lsn(rs.require(0, "xlogpos", W)?, W)?,
            dbname: rs.get(0, "dbname").map(str::to_string),
        })
    }

    /// `SHOW name` (allowed on a walsender since PG10).
    pub async fn show(&mut self, name: &str) -> Result<String, PgError> {
        validate_name(name, "setting name", |c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '.'
        })?;
        let rs = self.single_row(&format!("SHOW {name}"), "SHOW").await?;
        Ok(rs.rows[0].first().cloned().flatten().unwrap_or_default())
    }

    /// The WAL segment size in bytes, from `SHOW wal_segment_size` ("16MB").
    pub async fn wal_segment_size(&mut self) -> Result<u64, PgError> {
        let v = self.show("wal_segment_size").await?;
        parse_size(&v)
            .ok_or_else(|| PgError::protocol(format!("cannot read wal_segment_size {v:?}")))
    }

    /// Creates a physical slot that reserves WAL from now on and disappears with this connection,
    /// and returns the position it retains WAL from. CREATE_REPLICATION_SLOT answers 0/0 for
    /// physical slots, so the position comes from READ_REPLICATION_SLOT, which servers before 15
    /// lack: they give `None` (the slot reserves WAL all the same).
    pub async fn create_temporary_physical_slot(
        &mut self,
        name: &str,
    ) -> Result<Option<Lsn>, PgError> {
        self.create_physical_slot(name, true).await
    }

    /// Creates a physical slot that reserves WAL from now on (`temporary`: it disappears with
    /// this connection; otherwise it stays until dropped, across restarts of either side), and
    /// returns the position it retains WAL from as [`Self::create_temporary_physical_slot`] does.
    /// The unparenthesized option syntax is the one every supported version (13 to 18) accepts.
    /// An existing slot of that name is an error with SQLSTATE 42710.
    pub async fn create_physical_slot(
        &mut self,
        name: &str,
        temporary: bool,
    ) -> Result<Option<Lsn>, PgError> {
        validate_slot_name(name)?;
        let temp = if temporary { "TEMPORARY " } else { "" };
        self.simple_query(&format!(
            "CREATE_REPLICATION_SLOT {name} {temp}PHYSICAL RESERVE_WAL"
        ))
        .await?;
        if self.server_major_version().is_some_and(|v| v < 15) {
            return Ok(None);
        }
        self.read_replication_slot(name)
            .await?
            .and_then(|s| s.restart_lsn)
            .map(Some)
            .ok_or_else(|| {
                PgError::protocol(format!("slot {name} has no restart_lsn after creation"))
            })
    }

    /// READ_REPLICATION_SLOT (PG15+): `None` when no such slot exists.
    pub async fn read_replication_slot(&mut self, name: &str) -> Result<Option<SlotInfo>, PgError> {
        const W: &str = "READ_REPLICATION_SLOT";
        validate_slot_name(name)?;
        let rs = self.single_row(&format!("{W} {name}"), W).await?;
        let Some(slot_type) = rs.get(0, "slot_type") else {
            return Ok(None);
        };
        Ok(Some(SlotInfo {
            slot_type: slot_type.to_string(),
            restart_lsn: rs
                .get(0, "restart_lsn")
                .map(|v| parse_lsn(v, W))
                .transpose()?,
            restart_tli: rs
                .get(0, "restart_tli")
                .map(|v| parse_num(v, W))
                .transpose()?,
        }))
    }

    /// TIMELINE_HISTORY: the history file of `timeline` (2 or later), as its name
    /// (`00000002.history`) and its content byte for byte.
    pub async fn timeline_history(&mut self, timeline: u32) -> Result<(String, Vec<u8>), PgError> {
        const W: &str = "TIMELINE_HISTORY";
        let mut sets = self.query_sets(&format!("{W} {timeline}")).await?;
        let rs = match sets.pop() {
            Some((Some(b), _)) if sets.is_empty() => b.finish_raw(),
            _ => return Err(PgError::protocol(format!("{W}: expected one result set"))),
        };
        let (Some(name), Some(content), 1) =
            (rs.get(0, "filename"), rs.get(0, "content"), rs.rows.len())
        else {
            return Err(PgError::protocol(format!(
                "{W}: expected one row with filename and content"
            )));
        };
        let name = String::from_utf8_lossy(name).into_owned();
        Ok((name, content.to_vec()))
    }

    /// Says goodbye (Terminate) and closes the socket.
    pub async fn close(mut self) -> Result<(), PgError> {
        frontend::terminate(self.framed.wbuf());
        self.framed.flush().await?;
        tokio::io::AsyncWriteExt::shutdown(self.framed.get_mut()).await?;
        Ok(())
    }
}

pub(crate) fn parse_lsn(s: &str, what: &str) -> Result<Lsn, PgError> {
    s.parse()
        .map_err(|_| PgError::protocol(format!("{what}: {s:?} is not an LSN")))
}

fn validate_name(name: &str, what: &str, ok: impl Fn(char) -> bool) -> Result<(), PgError> {
    if name.is_empty() || name.len() > 63 || !name.chars().all(ok) {
        return Err(PgError::InvalidInput(format!("invalid {what} {name:?}")));
    }
    Ok(())
}

/// The server's own rule (ReplicationSlotValidateName): 1–63 of `[a-z0-9_]`. Checking here also
/// keeps the name from smuggling anything into the command text.
pub(crate) fn validate_slot_name(name: &str) -> Result<(), PgError> {
    validate_name(name, "replication slot name", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    })
}

/// Parses a memory GUC as SHOW prints it: "16MB", "1GB", "512kB", "8192" (bytes for a bare number).
fn parse_size(v: &str) -> Option<u64> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("512kB"), Some(512 << 10));
        assert_eq!(parse_size("8192"), Some(8192));
        assert_eq!(parse_size("16XB"), None);
        assert_eq!(parse_size(""), None);
    }

    /// Replication and SQL connections both open through `open_transport`.
    #[tokio::test]
    async fn tcp_connections_send_keepalives() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cfg = ConnectConfig::new(PgHost::Tcp("127.0.0.1".into()), port, "u");
        cfg.tls = super::super::TlsMode::Disable;
        let stream = open_transport(&cfg).await.unwrap();
        let PgStream::Tcp(tcp) = &stream else {
            panic!("{stream:?}")
        };
        let sock = socket2::SockRef::from(tcp);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), KEEPALIVE_RETRIES);
    }

    #[test]
    fn validates_slot_names() {
        assert!(validate_slot_name("polarbackup_12").is_ok());
        for bad in ["", "Upper", "a b", "x;DROP", &"a".repeat(64)] {
            assert!(validate_slot_name(bad).is_err(), "{bad}");
        }
    }
}
