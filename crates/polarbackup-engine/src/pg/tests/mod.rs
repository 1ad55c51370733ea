//! Protocol tests against scripted servers over `tokio::io::duplex`: synthetic byte streams in,
//! events (or errors) out.

mod base_backup;
mod base_backup_legacy;
mod startup;
mod wal_stream;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::frame::testutil::*;
use super::frame::Framed;
use super::*;

/// A connection already past startup, and a server task that plays `script`, optionally closes
/// its side, then collects everything the client sends until the client goes away.
pub(super) fn scripted(
    script: Vec<u8>,
    close: bool,
) -> (ReplicationConn<DuplexStream>, JoinHandle<Vec<u8>>) {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move {
        server.write_all(&script).await.unwrap();
        if close {
            server.shutdown().await.unwrap();
        }
        let mut got = Vec::new();
        let _ = server.read_to_end(&mut got).await;
        got
    });
    (
        ReplicationConn {
            framed: Framed::new(client),
            busy: false,
        },
        task,
    )
}

/// [`scripted`], as a server that reported `server_version` at startup.
pub(super) fn scripted_version(
    script: Vec<u8>,
    close: bool,
    version: &str,
) -> (ReplicationConn<DuplexStream>, JoinHandle<Vec<u8>>) {
    let (mut conn, task) = scripted(script, close);
    conn.framed.set_param("server_version", version);
    (conn, task)
}

pub(super) fn cd(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![kind];
    p.extend_from_slice(body);
    copy_data(&p)
}

pub(super) fn archive(name: &str, location: &str) -> Vec<u8> {
    cd(b'n', format!("{name}\0{location}\0").as_bytes())
}

pub(super) fn progress(n: u64) -> Vec<u8> {
    cd(b'p', &n.to_be_bytes())
}

/// BASE_BACKUP's first two result sets: the start point, then a tablespace and the data directory.
pub(super) fn two_tablespaces_head() -> Vec<u8> {
    let mut s = result_set(&["recptr", "tli"], &[&[Some("0/2000028"), Some("1")]]);
    s.extend(result_set(
        &["spcoid", "spclocation", "size"],
        &[
            &[Some("16385"), Some("/srv/ts1"), Some("12")],
            &[None, None, Some("30000")],
        ],
    ));
    s
}

/// The events [`two_tablespaces_head`] decodes to.
pub(super) fn two_tablespaces_events() -> Vec<BackupEvent> {
    vec![
        BackupEvent::Started {
            start_lsn: "0/2000028".parse().unwrap(),
            timeline: 1,
        },
        BackupEvent::Tablespaces(vec![
            TablespaceInfo {
                oid: Some(16385),
                location: Some("/srv/ts1".into()),
                size_kb: Some(12),
            },
            TablespaceInfo {
                oid: None,
                location: None,
                size_kb: Some(30000),
            },
        ]),
    ]
}

/// The events of the manifest both answer scripts send in three pieces, then the end.
pub(super) fn manifest_and_end_events() -> Vec<BackupEvent> {
    vec![
        BackupEvent::ManifestStart,
        BackupEvent::ManifestData(b("{\"PostgreSQL-Backup-")),
        BackupEvent::ManifestData(b("Manifest-Version\": 1,")),
        BackupEvent::ManifestData(b(" \"Files\": []}")),
        BackupEvent::Finished {
            end_lsn: "0/2000100".parse().unwrap(),
            timeline: 1,
        },
    ]
}

/// Every option set away from its default (server compression aside), for the command texts.
pub(super) fn every_option() -> BaseBackupOptions {
    BaseBackupOptions {
        label: "x".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: Some("SHA256".into()),
        wal: false,
        wait: false,
        max_rate: Some(1024),
        tablespace_map: true,
        verify_checksums: false,
        compression: None,
        compression_detail: None,
        incremental: false,
    }
}

/// Reads a BASE_BACKUP answer past every event and returns how it ended: `Ok(None)` or the error.
pub(super) async fn end_of(
    stream: &mut BaseBackupStream<'_, DuplexStream>,
) -> Result<Option<BackupEvent>, PgError> {
    loop {
        match stream.next().await {
            Ok(Some(_)) => continue,
            other => return other,
        }
    }
}

pub(super) fn b(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

/// The engine runs these on tokio's multi-threaded runtime: every future must be `Send`.
#[allow(dead_code)]
fn futures_are_send(
    mut c: ReplicationConn,
    ws: WalStream,
    cfg: &ConnectConfig,
    opts: &BaseBackupOptions,
    w: &mut WalSegmentWriter,
) {
    fn send<T: Send>(_: &T) {}
    send(&ReplicationConn::connect(cfg));
    send(&c.identify_system());
    send(&c.simple_query("x"));
    send(&c.create_temporary_physical_slot("s"));
    send(&c.create_physical_slot("s", false));
    send(&c.timeline_history(2));
    send(&w.write(Lsn(0), b""));
    send(&async move {
        let mut ws = ws;
        ws.next().await?;
        ws.finish().await
    });
    send(&async {
        let mut bb = c.base_backup(opts).await?;
        bb.next().await
    });
    send(&c.start_physical_replication(None, Lsn(0), 1));
}
