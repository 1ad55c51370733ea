//! START_REPLICATION streams: XLogData, keepalives, status updates, ends and errors.

use super::*;
use bytes::{BufMut, BytesMut};
use polarbackup_model::ManualClock;
use std::sync::Arc;
use std::time::Duration;

fn xlog_data(start: u64, wal_end: u64, data: &[u8]) -> Vec<u8> {
    xlog_data_at(start, wal_end, 0, data)
}

/// XLogData the server sent at `send_time` (microseconds since 2000-01-01 UTC, as sent).
fn xlog_data_at(start: u64, wal_end: u64, send_time: u64, data: &[u8]) -> Vec<u8> {
    let mut p = BytesMut::new();
    p.put_u64(start);
    p.put_u64(wal_end);
    p.put_u64(send_time);
    p.put_slice(data);
    cd(b'w', &p)
}

fn keepalive(wal_end: u64, reply: bool) -> Vec<u8> {
    keepalive_at(wal_end, 0, reply)
}

fn keepalive_at(wal_end: u64, send_time: u64, reply: bool) -> Vec<u8> {
    let mut p = BytesMut::new();
    p.put_u64(wal_end);
    p.put_u64(send_time);
    p.put_u8(u8::from(reply));
    cd(b'k', &p)
}

/// 2026-01-02T03:04:05.123456Z on PostgreSQL's clock (microseconds since 2000-01-01 UTC).
const T_2026: u64 = 820_638_245_123_456;

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// Clocks a hostile or broken server might send: -1, -infinity, +infinity.
const HOSTILE: [u64; 3] = [u64::MAX, i64::MIN as u64, i64::MAX as u64];

/// Finds the standby status updates ('d' + 'r' ...) among what the client sent:
/// (written, flushed) positions.
fn status_updates(sent: &[u8]) -> Vec<(u64, u64)> {
    status_fields(sent).map(|f| (f[0], f[1])).collect()
}

/// The clocks (microseconds since 2000-01-01) of the standby status updates the client sent.
fn status_clocks(sent: &[u8]) -> Vec<i64> {
    status_fields(sent).map(|f| f[3] as i64).collect()
}

/// Each status update's written, flushed, applied and clock fields.
fn status_fields(sent: &[u8]) -> impl Iterator<Item = [u64; 4]> + '_ {
    status_messages(sent).map(|m| {
        let n = |i: usize| u64::from_be_bytes(m[i..i + 8].try_into().unwrap());
        [n(6), n(14), n(22), n(30)]
    })
}

/// The status update messages ('d' + 'r' ...) among what the client sent, whole.
fn status_messages(sent: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    messages(sent).filter(|m| m[0] == b'd' && m.get(5) == Some(&b'r'))
}

/// The whole messages the client sent, in order (a message still arriving is left out).
fn messages(sent: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut p = sent;
    std::iter::from_fn(move || {
        if p.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
        if p.len() < 1 + len {
            return None;
        }
        let (m, rest) = p.split_at(1 + len);
        p = rest;
        Some(m)
    })
}

#[tokio::test]
async fn wal_stream_data_keepalive_and_server_end() {
    let mut s = copy_both();
    s.extend(xlog_data(0x100_0000, 0x100_0010, b"0123456789"));
    s.extend(keepalive(0x100_0020, true));
    s.extend(xlog_data(0x100_000A, 0x100_0020, b"abcdef"));
    s.extend(copy_done());
    s.extend(command_complete("START_STREAMING"));
    s.extend(ready());
    let (conn, server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(Some("slot_1"), Lsn(0x100_0000), 1)
        .await
        .unwrap();
    let pg_epoch_plus_1500ms = jiff::Timestamp::from_millisecond(946_684_801_500).unwrap();
    ws.set_clock(Arc::new(ManualClock::new(pg_epoch_plus_1500ms)));
    let ev = ws.next().await.unwrap().unwrap();
    assert_eq!(
        ev,
        WalEvent::Data {
            start: Lsn(0x100_0000),
            data: b("0123456789")
        }
    );
    ws.confirm_flushed(Lsn(0x100_0004));
    let ev = ws.next().await.unwrap().unwrap();
    assert_eq!(
        ev,
        WalEvent::Data {
            start: Lsn(0x100_000A),
            data: b("abcdef")
        }
    );
    assert_eq!(ws.received_up_to(), Lsn(0x100_0010));
    assert_eq!(ws.server_wal_end(), Lsn(0x100_0020));
    assert_eq!(
        ws.next().await.unwrap(),
        Some(WalEvent::EndOfStream {
            next_timeline: None
        })
    );
    assert_eq!(ws.next().await.unwrap(), None);
    let conn = ws.finish().await.unwrap();
    drop(conn);
    let sent = server.await.unwrap();
    assert!(String::from_utf8_lossy(&sent)
        .contains("START_REPLICATION SLOT slot_1 PHYSICAL 0/1000000 TIMELINE 1"));
    // The keepalive asked for a reply: it reports what was received then, and the confirmed flush.
    assert_eq!(status_updates(&sent), vec![(0x100_000A, 0x100_0004)]);
    // Its clock is the stream's clock, on PostgreSQL's epoch.
    assert_eq!(status_clocks(&sent), vec![1_500_000]);
}

#[tokio::test]
async fn wal_stream_timeline_switch() {
    let mut s = copy_both();
    s.extend(xlog_data(0, 0, b"x"));
    // A promoted standby says so at any point, and may add a notice.
    s.extend(parameter_status("in_hot_standby", "off"));
    s.extend(notice("promoted"));
    s.extend(copy_done());
    s.extend(result_set(
        &["next_tli", "next_tli_startpos"],
        &[&[Some("2"), Some("0/3000000")]],
    ));
    s.extend(parameter_status("in_hot_standby", "off"));
    s.extend(command_complete("START_STREAMING"));
    s.extend(ready());
    let (conn, _server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    assert!(matches!(
        ws.next().await.unwrap(),
        Some(WalEvent::Data { .. })
    ));
    assert_eq!(
        ws.next().await.unwrap(),
        Some(WalEvent::EndOfStream {
            next_timeline: Some((2, Lsn(0x300_0000)))
        })
    );
    let conn = ws.finish().await.unwrap();
    assert!(!conn.busy);
    conn.ensure_idle().unwrap();
    assert_eq!(conn.server_parameter("in_hot_standby"), Some("off"));
}

#[tokio::test]
async fn a_timeline_ending_at_the_start_point_hands_over_without_streaming() {
    // No COPY: the next timeline's row, CommandComplete, ReadyForQuery.
    let mut s = result_set(
        &["next_tli", "next_tli_startpos"],
        &[&[Some("3"), Some("0/5000000")]],
    );
    s.extend(ready());
    let (conn, _server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(Some("s"), Lsn(0x500_0000), 2)
        .await
        .unwrap();
    ws.report_now();
    assert_eq!(
        ws.next().await.unwrap(),
        Some(WalEvent::EndOfStream {
            next_timeline: Some((3, Lsn(0x500_0000)))
        })
    );
    assert_eq!(ws.next().await.unwrap(), None);
    let conn = ws.finish().await.unwrap();
    conn.ensure_idle().unwrap();

    // Without that row there is nothing to stream and nowhere to go: an error.
    let s = [command_complete("START_STREAMING"), ready()].concat();
    let (conn, _server) = scripted(s, false);
    assert!(conn
        .start_physical_replication(None, Lsn(0x500_0000), 2)
        .await
        .is_err());
}

#[tokio::test]
async fn status_updates_can_ask_for_an_answer_and_answers_are_heard() {
    let mut s = copy_both();
    s.extend(keepalive(0x100_0000, false));
    let (conn, server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0x100_0000), 1)
        .await
        .unwrap();
    let began = ws.last_heard();
    ws.set_status_interval(Duration::from_secs(3600));
    ws.set_request_replies(true);
    ws.report_now();
    ws.set_request_replies(false);
    ws.report_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The keepalive is heard; the poll then waits for more.
    let _ = tokio::time::timeout(Duration::from_millis(100), ws.next()).await;
    assert!(ws.last_heard() > began);
    drop(ws);
    let sent = server.await.unwrap();
    let replies: Vec<u8> = status_messages(&sent).map(|m| m[m.len() - 1]).collect();
    assert_eq!(replies, vec![1, 0]);
}

#[tokio::test]
async fn report_now_sends_the_flush_position_without_waiting() {
    let mut s = copy_both();
    s.extend(xlog_data(0x100_0000, 0, b"0123456789"));
    let (conn, server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(Some("s"), Lsn(0x100_0000), 1)
        .await
        .unwrap();
    ws.set_status_interval(Duration::from_secs(3600));
    ws.next().await.unwrap().unwrap();
    ws.confirm_flushed(Lsn(0x100_0008));
    ws.report_now();
    // The update goes out with the next poll; nothing more comes, so that poll waits.
    let _ = tokio::time::timeout(Duration::from_millis(100), ws.next()).await;
    drop(ws);
    let sent = server.await.unwrap();
    assert_eq!(status_updates(&sent), vec![(0x100_000A, 0x100_0008)]);
}

#[tokio::test]
async fn wal_stream_server_shutdown_is_an_end_not_an_error() {
    // A shutting-down walsender: CopyDone, CommandComplete, then it closes (no ReadyForQuery).
    let s = [
        copy_both(),
        xlog_data(0, 0, b"x"),
        copy_done(),
        command_complete("COPY 0"),
    ]
    .concat();
    let (conn, _server) = scripted(s, true);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    assert!(matches!(
        ws.next().await.unwrap(),
        Some(WalEvent::Data { .. })
    ));
    assert_eq!(
        ws.next().await.unwrap(),
        Some(WalEvent::EndOfStream {
            next_timeline: None
        })
    );
    assert_eq!(ws.next().await.unwrap(), None);
    assert!(ws.finish().await.is_err(), "no connection to hand back");

    // What PostgreSQL really sends (WalSndDone): CommandComplete with no CopyDone, then EOF.
    let s = [
        copy_both(),
        xlog_data(0, 0, b"x"),
        command_complete("COPY 0"),
    ]
    .concat();
    let (conn, _server) = scripted(s, true);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    assert!(matches!(
        ws.next().await.unwrap(),
        Some(WalEvent::Data { .. })
    ));
    assert_eq!(
        ws.next().await.unwrap(),
        Some(WalEvent::EndOfStream {
            next_timeline: None
        })
    );
    assert_eq!(ws.next().await.unwrap(), None);

    // Without the CommandComplete, the same EOF is an error.
    let s = [copy_both(), copy_done()].concat();
    let (conn, _server) = scripted(s, true);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    assert!(matches!(ws.next().await, Err(PgError::Io(_))));
}

#[tokio::test]
async fn wal_stream_errors() {
    // A gap between XLogData messages.
    let mut s = copy_both();
    s.extend(xlog_data(0, 0, b"abc"));
    s.extend(xlog_data(10, 0, b"def"));
    let (conn, _server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    ws.next().await.unwrap();
    assert!(matches!(ws.next().await, Err(PgError::Protocol(_))));
    assert!(ws.next().await.is_err());

    // A server error mid-stream, then EOF.
    let mut s = copy_both();
    s.extend(error(
        "FATAL",
        "57P01",
        "terminating connection due to administrator command",
    ));
    let (conn, _server) = scripted(s, true);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    assert_eq!(ws.next().await.unwrap_err().sqlstate(), Some("57P01"));

    // EOF mid-stream is never a clean end.
    let mut s = copy_both();
    let x = xlog_data(0, 0, b"abcdef");
    s.extend(&x[..x.len() - 2]);
    let (conn, _server) = scripted(s, true);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0), 1)
        .await
        .unwrap();
    assert!(matches!(ws.next().await, Err(PgError::Io(_))));

    // Truncated XLogData header and keepalive.
    for bad in [cd(b'w', &[0; 20]), cd(b'k', &[0; 16]), cd(b'q', b"")] {
        let (conn, _server) = scripted([copy_both(), bad].concat(), true);
        let mut ws = conn
            .start_physical_replication(None, Lsn(0), 1)
            .await
            .unwrap();
        assert!(matches!(ws.next().await, Err(PgError::Protocol(_))));
    }

    // START_REPLICATION refused: the server's error surfaces.
    let mut s = error(
        "ERROR",
        "58P01",
        "requested WAL segment has already been removed",
    );
    s.extend(ready());
    let (conn, _server) = scripted(s, false);
    let Err(e) = conn.start_physical_replication(None, Lsn(0), 1).await else {
        panic!("expected an error");
    };
    assert_eq!(e.sqlstate(), Some("58P01"));
}

#[tokio::test(start_paused = true)]
async fn wal_stream_sends_periodic_status_and_finishes() {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let conn = ReplicationConn {
        framed: Framed::new(client),
        busy: false,
    };
    let server = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(buf[0], b'Q', "{:?}", &buf[..n]);
        server
            .write_all(&[copy_both(), xlog_data(0x10, 0, b"wal")].concat())
            .await
            .unwrap();
        // With no keepalive asking, the client must still report within its interval.
        let mut got = Vec::new();
        while status_updates(&got).is_empty() {
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        // Then the client's CopyDone; the server ends the command.
        // A message's type, not any byte: the status update's clock may hold a 'c'.
        while !messages(&got).any(|m| m[0] == b'c') {
            let n = server.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        server
            .write_all(
                &[
                    xlog_data(0x13, 0, b"late"),
                    copy_done(),
                    command_complete("START_STREAMING"),
                    ready(),
                ]
                .concat(),
            )
            .await
            .unwrap();
        (got, server)
    });
    let mut ws = conn
        .start_physical_replication(None, Lsn(0x10), 1)
        .await
        .unwrap();
    ws.set_status_interval(std::time::Duration::from_secs(5));
    assert!(matches!(
        ws.next().await.unwrap(),
        Some(WalEvent::Data { .. })
    ));
    // Time is paused: this waits until the status timer fires, then the server sees the update.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(6), ws.next()).await;
    assert!(waited.is_err(), "no event, only a status update");
    let conn = ws.finish().await.unwrap();
    assert!(!conn.busy);
    let (got, _server) = server.await.unwrap();
    assert_eq!(status_updates(&got), vec![(0x13, 0)]);
}

#[tokio::test]
async fn wal_stream_decodes_the_servers_clock() {
    let mut s = copy_both();
    s.extend(xlog_data_at(0x10, 0x20, 0, b"a"));
    s.extend(keepalive_at(0x20, T_2026, false));
    s.extend(xlog_data_at(0x11, 0x20, T_2026 + 1, b"b"));
    for (i, bad) in HOSTILE.into_iter().enumerate() {
        s.extend(xlog_data_at(0x12 + i as u64, 0x20, bad, b"c"));
    }
    s.extend(keepalive_at(0x20, u64::MAX, false));
    s.extend(xlog_data_at(0x15, 0x20, 1, b"d"));
    let (conn, _server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0x10), 1)
        .await
        .unwrap();
    assert_eq!(ws.last_server_time(), None, "nothing received yet");
    ws.next().await.unwrap();
    // Zero is PostgreSQL's epoch itself.
    assert_eq!(ws.last_server_time(), Some(ts("2000-01-01T00:00:00Z")));
    // The keepalive's clock is read too, but the next Data event reports its own message's.
    ws.next().await.unwrap();
    assert_eq!(
        ws.last_server_time(),
        Some(ts("2026-01-02T03:04:05.123457Z"))
    );
    for bad in HOSTILE {
        assert!(matches!(
            ws.next().await.unwrap(),
            Some(WalEvent::Data { .. })
        ));
        assert_eq!(ws.last_server_time(), None, "{bad:#x} is no clock");
    }
    ws.next().await.unwrap();
    assert_eq!(
        ws.last_server_time(),
        Some(ts("2000-01-01T00:00:00.000001Z"))
    );
    assert_eq!(ws.received_up_to(), Lsn(0x16));
}

#[tokio::test]
async fn wal_stream_watches_the_clock_of_the_wal_reaching_a_position() {
    // The first XLogData ending at or past the position wins; keepalives before it and
    // messages after it do not count.
    let mut s = copy_both();
    s.extend(xlog_data_at(0x10, 0x40, 100, b"0123"));
    s.extend(keepalive_at(0x40, 200, false));
    s.extend(xlog_data_at(0x14, 0x40, T_2026, b"4567"));
    s.extend(keepalive_at(0x40, T_2026 + 5, false));
    s.extend(xlog_data_at(0x18, 0x40, T_2026 + 9, b"89"));
    let (conn, _server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0x10), 1)
        .await
        .unwrap();
    ws.watch_server_time(Lsn(0x16));
    ws.next().await.unwrap();
    assert_eq!(ws.watched_server_time(), None, "not reached yet");
    ws.next().await.unwrap();
    assert_eq!(
        ws.watched_server_time(),
        Some(ts("2026-01-02T03:04:05.123456Z"))
    );
    ws.next().await.unwrap();
    assert_eq!(
        ws.watched_server_time(),
        Some(ts("2026-01-02T03:04:05.123456Z"))
    );

    // Exactly reaching counts; when that XLogData's clock is unusable, the next keepalive's.
    let mut s = copy_both();
    s.extend(xlog_data_at(0x10, 0x40, 100, b"0123"));
    s.extend(xlog_data_at(0x14, 0x40, u64::MAX, b"45"));
    s.extend(keepalive_at(0x40, T_2026, false));
    s.extend(xlog_data_at(0x16, 0x40, T_2026 + 9, b"67"));
    let (conn, _server) = scripted(s, false);
    let mut ws = conn
        .start_physical_replication(None, Lsn(0x10), 1)
        .await
        .unwrap();
    ws.watch_server_time(Lsn(0x16));
    ws.next().await.unwrap();
    ws.next().await.unwrap();
    assert_eq!(ws.watched_server_time(), None, "reached, but no clock");
    ws.next().await.unwrap();
    assert_eq!(
        ws.watched_server_time(),
        Some(ts("2026-01-02T03:04:05.123456Z"))
    );
}
