//! BASE_BACKUP answers: the full sequence, truncation at every byte, errors, malformed streams.

use super::*;

/// A PG15-shaped BASE_BACKUP answer: two tablespaces, progress, a manifest in three pieces.
fn full_backup_script() -> Vec<u8> {
    let mut s = two_tablespaces_head();
    s.extend(copy_out());
    s.extend(archive("16385.tar", "/srv/ts1"));
    s.extend(cd(b'd', b"ts-bytes"));
    s.extend(progress(8));
    s.extend(archive("base.tar", ""));
    s.extend(cd(b'd', b"base-1"));
    s.extend(notice("still working"));
    s.extend(cd(b'd', b"base-2"));
    s.extend(progress(12));
    s.extend(cd(b'm', b""));
    s.extend(cd(b'd', b"{\"PostgreSQL-Backup-"));
    s.extend(cd(b'd', b"Manifest-Version\": 1,"));
    s.extend(cd(b'd', b" \"Files\": []}"));
    s.extend(copy_done());
    s.extend(result_set(
        &["recptr", "tli"],
        &[&[Some("0/2000100"), Some("1")]],
    ));
    s.extend(command_complete("BASE_BACKUP"));
    s.extend(ready());
    s
}

#[tokio::test]
async fn base_backup_full_sequence() {
    let (mut conn, server) = scripted(full_backup_script(), false);
    let opts = BaseBackupOptions {
        label: "it's mine".into(),
        progress: true,
        manifest: true,
        ..BaseBackupOptions::default()
    };
    let mut events = Vec::new();
    {
        let mut stream = conn.base_backup(&opts).await.unwrap();
        while let Some(ev) = stream.next().await.unwrap() {
            events.push(ev);
        }
        assert!(stream.next().await.unwrap().is_none());
    }
    use BackupEvent::*;
    let expected: Vec<BackupEvent> = two_tablespaces_events()
        .into_iter()
        .chain([
            ArchiveStart {
                name: "16385.tar".into(),
                tablespace_location: Some("/srv/ts1".into()),
            },
            Data(b("ts-bytes")),
            Progress(8),
            ArchiveStart {
                name: "base.tar".into(),
                tablespace_location: None,
            },
            Data(b("base-1")),
            Data(b("base-2")),
            Progress(12),
        ])
        .chain(manifest_and_end_events())
        .collect();
    assert_eq!(events, expected);
    assert!(!conn.busy, "connection is idle again");
    drop(conn);
    let sent = server.await.unwrap();
    let text = String::from_utf8_lossy(&sent);
    assert!(
        text.contains("BASE_BACKUP (LABEL 'it''s mine', PROGRESS true, CHECKPOINT 'spread'"),
        "{text}"
    );
}

#[tokio::test]
async fn base_backup_every_truncation_is_an_error() {
    let full = full_backup_script();
    // Cutting before the final ReadyForQuery must never look like success.
    for cut in 0..full.len() {
        let (mut conn, _server) = scripted(full[..cut].to_vec(), true);
        let mut stream = conn
            .base_backup(&BaseBackupOptions::default())
            .await
            .unwrap();
        let outcome = loop {
            match stream.next().await {
                Ok(Some(BackupEvent::Finished { .. })) => break Ok(true),
                Ok(Some(_)) => continue,
                Ok(None) => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Err(PgError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "cut {cut}")
            }
            other => panic!("cut at {cut}: expected EOF error, got {other:?}"),
        }
        assert!(
            stream.next().await.is_err(),
            "a failed stream stays failed (cut {cut})"
        );
    }
}

#[tokio::test]
async fn base_backup_error_mid_stream() {
    let mut s = Vec::new();
    s.extend(result_set(
        &["recptr", "tli"],
        &[&[Some("0/2000028"), Some("1")]],
    ));
    s.extend(result_set(
        &["spcoid", "spclocation", "size"],
        &[&[None, None, None]],
    ));
    s.extend(copy_out());
    s.extend(archive("base.tar", ""));
    s.extend(cd(b'd', b"some"));
    s.extend(error("ERROR", "XX001", "invalid page in block 7"));
    s.extend(ready());
    let (mut conn, _server) = scripted(s, false);
    let mut stream = conn
        .base_backup(&BaseBackupOptions::default())
        .await
        .unwrap();
    let mut seen = 0;
    let err = loop {
        match stream.next().await {
            Ok(Some(_)) => seen += 1,
            Ok(None) => panic!("clean end after a server error"),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 4);
    assert_eq!(err.sqlstate(), Some("XX001"));
    assert!(stream.next().await.is_err());
    drop(stream);
    assert!(
        conn.identify_system().await.is_err(),
        "the connection refuses new commands"
    );
}

#[tokio::test]
async fn base_backup_rejects_malformed_streams() {
    let head = || {
        let mut s = result_set(&["recptr", "tli"], &[&[Some("0/1"), Some("1")]]);
        s.extend(result_set(
            &["spcoid", "spclocation", "size"],
            &[&[None, None, None]],
        ));
        s.extend(copy_out());
        s
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("data before archive", [head(), cd(b'd', b"x")].concat()),
        ("unknown kind", [head(), cd(b'z', b"x")].concat()),
        ("empty CopyData", [head(), copy_data(b"")].concat()),
        (
            "truncated progress",
            [head(), archive("base.tar", ""), cd(b'p', &[0, 1])].concat(),
        ),
        (
            "unterminated archive name",
            [head(), cd(b'n', b"base.tar")].concat(),
        ),
        (
            "early ReadyForQuery",
            [head(), copy_done(), ready()].concat(),
        ),
        (
            "bad LSN",
            result_set(&["recptr", "tli"], &[&[Some("nope"), Some("1")]]),
        ),
        ("copy both", copy_both()),
    ];
    for (what, script) in cases {
        let (mut conn, _server) = scripted(script, true);
        let mut stream = conn
            .base_backup(&BaseBackupOptions::default())
            .await
            .unwrap();
        let r = end_of(&mut stream).await;
        assert!(matches!(r, Err(PgError::Protocol(_))), "{what}: {r:?}");
    }
}

#[test]
fn base_backup_command_text() {
    let opts = every_option();
    assert_eq!(
        opts.command().unwrap(),
        "BASE_BACKUP (LABEL 'x', PROGRESS true, CHECKPOINT 'fast', WAL false, WAIT false, \
         MANIFEST 'yes', TABLESPACE_MAP true, VERIFY_CHECKSUMS false, MANIFEST_CHECKSUMS 'SHA256', MAX_RATE 1024)"
    );
    let incremental = BaseBackupOptions {
        incremental: true,
        ..BaseBackupOptions::default()
    };
    assert!(incremental
        .command()
        .unwrap()
        .ends_with(", INCREMENTAL true)"));
    assert!(matches!(
        incremental.legacy_command(),
        Err(PgError::InvalidInput(_))
    ));
    let bad = BaseBackupOptions {
        label: "a\0b".into(),
        ..BaseBackupOptions::default()
    };
    assert!(matches!(bad.command(), Err(PgError::InvalidInput(_))));
}
