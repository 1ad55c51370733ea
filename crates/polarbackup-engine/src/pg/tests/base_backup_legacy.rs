//! BASE_BACKUP answers of PostgreSQL 13 and 14: the keyword command, one CopyOut per
//! tablespace with raw tar bytes, the manifest in its own CopyOut, and the tar trailer added.

use super::*;

/// A PG13-shaped answer: a tablespace, then the data directory (always last before 15), then
/// the manifest split over three CopyData messages.
fn legacy_script() -> Vec<u8> {
    let mut s = two_tablespaces_head();
    s.extend(copy_out());
    s.extend(copy_data(b"ts-bytes"));
    s.extend(copy_done());
    s.extend(copy_out());
    s.extend(copy_data(b"base-1"));
    s.extend(notice("still working"));
    s.extend(copy_data(b"base-2"));
    s.extend(copy_done());
    s.extend(copy_out());
    s.extend(copy_data(b"{\"PostgreSQL-Backup-"));
    s.extend(copy_data(b"Manifest-Version\": 1,"));
    s.extend(copy_data(b" \"Files\": []}"));
    s.extend(copy_done());
    s.extend(result_set(
        &["recptr", "tli"],
        &[&[Some("0/2000100"), Some("1")]],
    ));
    s.extend(command_complete("BASE_BACKUP"));
    s.extend(ready());
    s
}

fn opts() -> BaseBackupOptions {
    BaseBackupOptions {
        label: "it's old".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: Some("CRC32C".into()),
        wait: false,
        ..BaseBackupOptions::default()
    }
}

async fn events(
    conn: &mut ReplicationConn<tokio::io::DuplexStream>,
) -> Result<Vec<BackupEvent>, PgError> {
    let mut stream = conn.base_backup(&opts()).await?;
    let mut out = Vec::new();
    while let Some(ev) = stream.next().await? {
        out.push(ev);
    }
    Ok(out)
}

#[tokio::test]
async fn legacy_answer_becomes_the_same_events() {
    for version in ["13.23", "14.1 (Debian 14.1-1)"] {
        let (mut conn, server) = scripted_version(legacy_script(), false, version);
        let got = events(&mut conn).await.unwrap();
        use BackupEvent::*;
        let trailer = bytes::Bytes::from_static(&[0u8; 1024]);
        let expected: Vec<BackupEvent> = two_tablespaces_events()
            .into_iter()
            .chain([
                ArchiveStart {
                    name: "16385.tar".into(),
                    tablespace_location: Some("/srv/ts1".into()),
                },
                Data(b("ts-bytes")),
                Data(trailer.clone()),
                ArchiveStart {
                    name: "base.tar".into(),
                    tablespace_location: None,
                },
                Data(b("base-1")),
                Data(b("base-2")),
                Data(trailer),
            ])
            .chain(manifest_and_end_events())
            .collect();
        assert_eq!(got, expected, "{version}");
        assert!(!conn.busy);
        drop(conn);
        let sent = String::from_utf8_lossy(&server.await.unwrap()).to_string();
        assert!(
            sent.contains(
                "BASE_BACKUP LABEL 'it''s old' PROGRESS FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"
            ),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn legacy_every_truncation_is_an_error() {
    let full = legacy_script();
    for cut in 0..full.len() {
        let (mut conn, _server) = scripted_version(full[..cut].to_vec(), true, "13.23");
        match events(&mut conn).await {
            Err(PgError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "cut {cut}")
            }
            other => panic!("cut at {cut}: expected EOF error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn legacy_extra_copy_out_is_refused() {
    // One tablespace announced, two archives sent, no manifest asked for.
    let mut s = result_set(&["recptr", "tli"], &[&[Some("0/1"), Some("1")]]);
    s.extend(result_set(
        &["spcoid", "spclocation", "size"],
        &[&[None, None, None]],
    ));
    for _ in 0..2 {
        s.extend(copy_out());
        s.extend(copy_data(b"x"));
        s.extend(copy_done());
    }
    let (mut conn, _server) = scripted_version(s, true, "14.23");
    let mut stream = conn
        .base_backup(&BaseBackupOptions::default())
        .await
        .unwrap();
    let r = end_of(&mut stream).await;
    assert!(matches!(r, Err(PgError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn legacy_refuses_what_old_servers_cannot_do() {
    let compressed = BaseBackupOptions {
        compression: Some("zstd".into()),
        ..BaseBackupOptions::default()
    };
    let (mut conn, _server) = scripted_version(Vec::new(), false, "14.23");
    assert!(matches!(
        conn.base_backup(&compressed).await.err(),
        Some(PgError::InvalidInput(_))
    ));
    let (mut conn, _server) = scripted_version(Vec::new(), false, "12.9");
    assert!(matches!(
        conn.base_backup(&BaseBackupOptions::default()).await.err(),
        Some(PgError::InvalidInput(_))
    ));
}

#[test]
fn legacy_command_text() {
    let all = BaseBackupOptions {
        wal: true,
        ..every_option()
    };
    assert_eq!(
        all.legacy_command().unwrap(),
        "BASE_BACKUP LABEL 'x' PROGRESS FAST WAL NOWAIT TABLESPACE_MAP NOVERIFY_CHECKSUMS \
         MANIFEST 'yes' MANIFEST_CHECKSUMS 'SHA256' MAX_RATE 1024"
    );
    assert_eq!(
        BaseBackupOptions::default().legacy_command().unwrap(),
        "BASE_BACKUP LABEL 'base backup' MANIFEST 'no'"
    );
}
