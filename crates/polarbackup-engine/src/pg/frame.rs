//! Message framing over any async byte stream: postgres-protocol's parser plus the 'W' it lacks.

use std::collections::HashMap;

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{self, ErrorFields, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::PgError;

/// Tag of CopyBothResponse, which `postgres_protocol::message::backend::Message` does not know.
const COPY_BOTH_RESPONSE_TAG: u8 = b'W';

/// Refuse larger messages rather than reserve whatever a corrupt length asks for. The server's
/// CopyData chunks are tens of kB; 64 MiB leaves room for big DataRows (TIMELINE_HISTORY).
const MAX_MESSAGE_LEN: usize = 64 << 20;

/// How much to ask the socket for at a time: big reads keep throughput near the server's ~1 GB/s.
const READ_CHUNK: usize = 256 << 10;

/// With `set_coalesce`, a read shorter than this means the socket was nearly drained...
const SHORT_READ: usize = READ_CHUNK / 4;
/// ...and the next read waits this long first, so the bytes arriving meanwhile come in one read.
const COALESCE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// One message from the server.
pub(crate) enum Backend {
    Msg(Message),
    /// CopyBothResponse: START_REPLICATION has begun streaming. Column formats are not needed.
    CopyBoth,
}

/// A decoded ErrorResponse: the error, and whether the server is closing the connection.
pub(crate) struct ServerError {
    pub error: PgError,
    pub fatal: bool,
}

/// A byte stream with read and write buffers, speaking the v3 protocol.
pub(crate) struct Framed<S> {
    io: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// ParameterStatus values (server_version, ...), which the server may send at any time.
    params: HashMap<String, String>,
    /// See [`Framed::set_coalesce`].
    coalesce: bool,
    /// The last read was shorter than `SHORT_READ`.
    last_short: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    pub fn new(io: S) -> Framed<S> {
        Framed {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(1024),
            params: HashMap::new(),
            coalesce: false,
            last_short: false,
        }
    }

    /// The buffer that `postgres_protocol::message::frontend` functions write into.
    pub fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Sends everything buffered by `wbuf`. Cancel-safe: what was not yet written stays
    /// buffered and goes out with the next flush, so a message is never sent twice or torn.
    pub async fn flush(&mut self) -> Result<(), PgError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        while !self.wbuf.is_empty() {
            let n = self.io.write(&self.wbuf).await?;
            if n == 0 {
                return Err(PgError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Bulk mode, for BASE_BACKUP's stream: after a short read, wait `COALESCE_WAIT` before
    /// reading again. The server sends 32 kB CopyData messages; read as they come, a reader
    /// faster than the server wakes (and wakes the server's walsender, whose socket drained)
    /// for every one or two of them, tens of thousands of context switches for 1.6 GB on both
    /// sides. Waiting a millisecond lets the socket buffer fill, so each read takes hundreds of
    /// kB; the stream's tail is at most a few ms late.
    pub fn set_coalesce(&mut self, on: bool) {
        self.coalesce = on;
        self.last_short = false;
    }

    /// A server parameter reported with ParameterStatus, e.g. `server_version`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Plays a ParameterStatus, for scripted and replayed servers that skip startup.
    pub fn set_param(&mut self, name: &str, value: &str) {
        self.params.insert(name.to_string(), value.to_string());
    }

    /// Decodes one message if the read buffer holds a whole one. Never blocks.
    pub fn try_parse(&mut self) -> Result<Option<Backend>, PgError> {
        let Some(header) = backend::Header::parse(&self.rbuf)? else {
            return Ok(None);
        };
        let total = header.len() as usize + 1;
        if total > MAX_MESSAGE_LEN {
            return Err(PgError::protocol(format!(
                "message '{}' of {total} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit",
                header.tag().escape_ascii()
            )));
        }
        if self.rbuf.len() < total {
            self.rbuf.reserve(total - self.rbuf.len());
            return Ok(None);
        }
        if header.tag() == COPY_BOTH_RESPONSE_TAG {
            // Int8 format, Int16 column count, Int16 per column: nothing the caller needs.
            self.rbuf.advance(total);
            return Ok(Some(Backend::CopyBoth));
        }
        match Message::parse(&mut self.rbuf)? {
            Some(m) => Ok(Some(Backend::Msg(m))),
            None => Err(PgError::protocol(
                "incomplete message after a complete header",
            )),
        }
    }

    /// Reads more bytes. Cancel-safe (for `select!`): a cancelled read consumes nothing.
    pub async fn fill(&mut self) -> Result<(), PgError> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        if self.coalesce && self.last_short {
            tokio::time::sleep(COALESCE_WAIT).await;
        }
        let n = self.io.read_buf(&mut self.rbuf).await?;
        self.last_short = n < SHORT_READ;
        if n == 0 {
            let what = if self.rbuf.is_empty() {
                "server closed the connection"
            } else {
                "server closed the connection in the middle of a message"
            };
            return Err(PgError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                what,
            )));
        }
        Ok(())
    }

    /// Reads the next message, skipping notices and parameter changes (which may come at any time).
    pub async fn read(&mut self) -> Result<Backend, PgError> {
        loop {
            match self.try_next()? {
                Some(m) => return Ok(m),
                None => self.fill().await?,
            }
        }
    }

    /// [`Framed::try_parse`], skipping notices and parameter changes as `read` does: a
    /// promoted standby reports `in_hot_standby` even in the middle of a WAL stream.
    pub fn try_next(&mut self) -> Result<Option<Backend>, PgError> {
        loop {
            match self.try_parse()? {
                Some(Backend::Msg(Message::NoticeResponse(n))) => log_notice(n.fields()),
                Some(Backend::Msg(Message::ParameterStatus(p))) => {
                    self.params
                        .insert(p.name()?.to_string(), p.value()?.to_string());
                }
                other => return Ok(other),
            }
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }
}

/// Turns an ErrorResponse into `PgError::Server`.
pub(crate) fn server_error(fields: ErrorFields<'_>) -> ServerError {
    let mut code = String::new();
    let mut message = String::new();
    let mut severity = String::new();
    let mut detail = String::new();
    let mut fields = fields;
    // A malformed field list still yields what was decoded before the fault.
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = v,
            b'M' => message = v,
            b'V' => severity = v,
            b'S' if severity.is_empty() => severity = v,
            b'D' => detail = v,
            _ => {}
        }
    }
    if !detail.is_empty() {
        tracing::debug!(%code, %detail, "server error detail");
    }
    ServerError {
        fatal: matches!(severity.as_str(), "FATAL" | "PANIC"),
        error: PgError::Server { code, message },
    }
}

fn log_notice(fields: ErrorFields<'_>) {
    let ServerError { error, .. } = server_error(fields);
    if let PgError::Server { code, message } = error {
        tracing::info!(%code, %message, "server notice");
    }
}

/// Reads a NUL-terminated string from a CopyData payload.
pub(crate) fn take_cstr(buf: &mut &[u8]) -> Result<String, PgError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| PgError::protocol("unterminated string in CopyData"))?;
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    *buf = &buf[end + 1..];
    Ok(s)
}

/// Reads a big-endian Int64 from a CopyData payload.
pub(crate) fn take_u64(buf: &mut &[u8]) -> Result<u64, PgError> {
    if buf.len() < 8 {
        return Err(PgError::protocol("truncated Int64 in CopyData"));
    }
    Ok(buf.get_u64())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for backend messages, to feed synthetic streams to the parser.

    use bytes::{BufMut, BytesMut};

    pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.put_slice(body);
        b.to_vec()
    }

    fn cstr(b: &mut BytesMut, s: &str) {
        b.put_slice(s.as_bytes());
        b.put_u8(0);
    }

    pub fn row_description(cols: &[&str]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(cols.len() as i16);
        for c in cols {
            cstr(&mut b, c);
            b.put_i32(0); // table oid
            b.put_i16(0); // attnum
            b.put_i32(25); // type oid: text
            b.put_i16(-1);
            b.put_i32(-1);
            b.put_i16(0); // text format
        }
        msg(b'T', &b)
    }

    pub fn data_row(vals: &[Option<&str>]) -> Vec<u8> {
        let raw: Vec<Option<&[u8]>> = vals.iter().map(|v| v.map(str::as_bytes)).collect();
        data_row_bytes(&raw)
    }

    /// A DataRow with values as given, UTF-8 or not.
    pub fn data_row_bytes(vals: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(vals.len() as i16);
        for v in vals {
            match v {
                Some(s) => {
                    b.put_i32(s.len() as i32);
                    b.put_slice(s);
                }
                None => b.put_i32(-1),
            }
        }
        msg(b'D', &b)
    }

    pub fn command_complete(tag: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        cstr(&mut b, tag);
        msg(b'C', &b)
    }

    pub fn ready() -> Vec<u8> {
        msg(b'Z', b"I")
    }

    pub fn error(severity: &str, code: &str, message: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        for (t, v) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', message),
        ] {
            b.put_u8(t);
            cstr(&mut b, v);
        }
        b.put_u8(0);
        msg(b'E', &b)
    }

    pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
        msg(b'S', format!("{name}\0{value}\0").as_bytes())
    }

    pub fn notice(message: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        for (t, v) in [(b'S', "WARNING"), (b'C', "01000"), (b'M', message)] {
            b.put_u8(t);
            cstr(&mut b, v);
        }
        b.put_u8(0);
        msg(b'N', &b)
    }

    pub fn copy_out() -> Vec<u8> {
        msg(b'H', &[0, 0, 0])
    }

    pub fn copy_both() -> Vec<u8> {
        msg(b'W', &[0, 0, 0])
    }

    pub fn copy_data(payload: &[u8]) -> Vec<u8> {
        msg(b'd', payload)
    }

    pub fn copy_done() -> Vec<u8> {
        msg(b'c', &[])
    }

    /// A full result set: RowDescription, rows, CommandComplete.
    pub fn result_set(cols: &[&str], rows: &[&[Option<&str>]]) -> Vec<u8> {
        let mut out = row_description(cols);
        for r in rows {
            out.extend(data_row(r));
        }
        out.extend(command_complete("SELECT"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn framed(bytes: Vec<u8>) -> Framed<tokio::io::DuplexStream> {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            server.write_all(&bytes).await.unwrap();
            // Keep the write side open long enough for the reader, then close it (EOF).
            drop(server);
        });
        Framed::new(client)
    }

    #[tokio::test]
    async fn parses_copy_both_and_skips_notices() {
        let mut input = notice("hello");
        input.extend(msg(b'S', b"a\0b\0"));
        input.extend(copy_both());
        input.extend(ready());
        let mut f = framed(input);
        assert!(matches!(f.read().await.unwrap(), Backend::CopyBoth));
        assert!(matches!(
            f.read().await.unwrap(),
            Backend::Msg(Message::ReadyForQuery(_))
        ));
        let e = f.read().await.err().unwrap();
        assert!(
            matches!(&e, PgError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof),
            "{e}"
        );
    }

    /// An `AsyncRead` that counts the reads that returned bytes.
    struct Counting {
        io: tokio::io::DuplexStream,
        reads: usize,
    }

    impl AsyncRead for Counting {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.reads += 1;
            }
            r
        }
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// A server trickling 64 small messages: read as they come, each takes a read of its own;
    /// coalescing, they arrive in a few reads. Either way every message arrives in order, and
    /// so does the last one, though the server then sends nothing more and keeps the
    /// connection open.
    #[tokio::test(start_paused = true)]
    async fn coalescing_reads_a_trickle_in_few_reads_and_still_delivers_its_tail() {
        let mut reads = Vec::new();
        for coalesce in [false, true] {
            let (client, mut server) = tokio::io::duplex(1 << 20);
            let mut f = Framed::new(Counting {
                io: client,
                reads: 0,
            });
            f.set_coalesce(coalesce);
            let writer = tokio::spawn(async move {
                for i in 0..64u8 {
                    server.write_all(&copy_data(&[i; 1000])).await.unwrap();
                    tokio::task::yield_now().await;
                }
                server.write_all(&ready()).await.unwrap();
                server
            });
            for i in 0..64u8 {
                match f.read().await.unwrap() {
                    Backend::Msg(Message::CopyData(d)) => assert_eq!(d.data(), [i; 1000]),
                    _ => panic!("message {i} is not its CopyData"),
                }
            }
            assert!(matches!(
                f.read().await.unwrap(),
                Backend::Msg(Message::ReadyForQuery(_))
            ));
            let _open = writer.await.unwrap();
            reads.push(f.get_ref().reads);
        }
        assert!(
            reads[0] >= 32 && reads[1] <= 4,
            "reads plain, coalesced: {reads:?}"
        );
    }

    #[tokio::test]
    async fn truncated_message_is_an_eof_error() {
        let mut input = copy_data(b"dhello world");
        input.truncate(input.len() - 3);
        let mut f = framed(input);
        let e = f.read().await.err().unwrap();
        assert!(e.to_string().contains("middle of a message"), "{e}");
    }

    #[tokio::test]
    async fn absurd_length_is_refused() {
        let mut f = framed(vec![b'd', 0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(f.read().await, Err(PgError::Protocol(_))));
        let mut f = framed(vec![b'd', 0, 0, 0, 1]);
        assert!(f.read().await.is_err());
    }

    #[tokio::test]
    async fn unknown_tag_is_an_error_not_a_panic() {
        let mut f = framed(msg(b'?', b"xyz"));
        assert!(f.read().await.is_err());
    }

    #[test]
    fn decodes_error_fields() {
        let raw = error("FATAL", "28P01", "password authentication failed");
        let mut buf = BytesMut::from(&raw[..]);
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut buf).unwrap() else {
            panic!("not an error");
        };
        let se = server_error(body.fields());
        assert!(se.fatal);
        assert!(se.error.is_auth_failed());
    }

    #[test]
    fn payload_readers_reject_truncation() {
        let mut b: &[u8] = b"abc";
        assert!(take_cstr(&mut b).is_err());
        let mut b: &[u8] = b"abc\0rest";
        assert_eq!(take_cstr(&mut b).unwrap(), "abc");
        assert_eq!(b, b"rest");
        let mut b: &[u8] = &[0, 0, 0, 0, 0, 0, 1];
        assert!(take_u64(&mut b).is_err());
    }
}
