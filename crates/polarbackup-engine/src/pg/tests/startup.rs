//! Startup, authentication and simple replication commands.

use super::*;

#[tokio::test]
async fn simple_query_and_identify_system() {
    let mut s = result_set(
        &["systemid", "timeline", "xlogpos", "dbname"],
        &[&[
            Some("7713280884712249790"),
            Some("1"),
            Some("0/1500790"),
            None,
        ]],
    );
    s.extend(ready());
    s.extend(error("ERROR", "42601", "syntax error"));
    s.extend(ready());
    s.extend(result_set(&["wal_segment_size"], &[&[Some("16MB")]]));
    s.extend(ready());
    s.extend(result_set(
        &["slot_type", "restart_lsn", "restart_tli"],
        &[&[None, None, None]],
    ));
    s.extend(ready());
    let (mut conn, _server) = scripted(s, true);
    let info = conn.identify_system().await.unwrap();
    assert_eq!(
        info,
        SystemInfo {
            system_id: "7713280884712249790".into(),
            timeline: 1,
            xlog_pos: Lsn(0x150_0790),
            dbname: None,
        }
    );
    let e = conn.simple_query("BOGUS").await.unwrap_err();
    assert_eq!(e.sqlstate(), Some("42601"));
    // After a plain ERROR the connection is usable again.
    assert_eq!(conn.wal_segment_size().await.unwrap(), 16 << 20);
    assert_eq!(conn.read_replication_slot("nope").await.unwrap(), None);
    assert!(matches!(
        conn.create_temporary_physical_slot("Bad Name").await,
        Err(PgError::InvalidInput(_))
    ));
}

fn auth_request(code: i32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    msg(b'R', &b)
}

#[tokio::test]
async fn startup_with_md5_and_cleartext() {
    for (code, extra) in [(5, &b"salt"[..]), (3, &b""[..])] {
        let mut s = auth_request(code, extra);
        s.extend(auth_request(0, b""));
        s.extend(msg(b'S', b"server_version\x0015.18 (Debian)\0"));
        s.extend(msg(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
        s.extend(ready());
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(async move {
            server.write_all(&s).await.unwrap();
            let mut got = Vec::new();
            let _ = server.read_to_end(&mut got).await;
            got
        });
        let mut cfg = ConnectConfig::new(PgHost::Tcp("x".into()), 5432, "alice");
        cfg.password = Some("secret".into());
        let conn = ReplicationConn::connect_stream(client, &cfg).await.unwrap();
        assert_eq!(conn.server_major_version(), Some(15));
        drop(conn);
        let sent = task.await.unwrap();
        let text = String::from_utf8_lossy(&sent);
        assert!(text.contains("replication\0true\0"), "{text}");
        let expected = if code == 5 {
            postgres_protocol::authentication::md5_hash(b"alice", b"secret", *b"salt")
        } else {
            "secret".to_string()
        };
        assert!(
            text.contains(&format!(
                "p\0\0\0{}{expected}\0",
                (expected.len() as u8 + 5) as char
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn startup_errors() {
    // The server hangs up at once.
    let (client, server) = tokio::io::duplex(1024);
    drop(server);
    let cfg = ConnectConfig::new(PgHost::Tcp("x".into()), 5432, "bob");
    assert!(matches!(
        ReplicationConn::connect_stream(client, &cfg).await,
        Err(PgError::Io(_))
    ));
    // No password configured; GSSAPI; pg_hba rejection; walsenders exhausted after auth.
    for (script, check) in [
        (auth_request(3, b""), "password"),
        (auth_request(7, b""), "GSSAPI"),
        (error("FATAL", "28000", "no pg_hba.conf entry"), "28000"),
        (
            [
                auth_request(0, b""),
                error("FATAL", "53300", "too many walsenders"),
            ]
            .concat(),
            "53300",
        ),
    ] {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            server.write_all(&script).await.unwrap();
            let mut sink = Vec::new();
            let _ = server.read_to_end(&mut sink).await;
        });
        let e = ReplicationConn::connect_stream(client, &cfg)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains(check), "{e}");
    }
}

#[tokio::test]
async fn permanent_slots_and_timeline_history() {
    let mut s = result_set(
        &[
            "slot_name",
            "consistent_point",
            "snapshot_name",
            "output_plugin",
        ],
        &[&[Some("keep_me"), Some("0/0"), None, None]],
    );
    s.extend(ready());
    // A history file is a file: its bytes come back as sent, even those that are not UTF-8.
    let content: &[u8] = b"1\t0/3000158\tat restore point \"\xe9t\xe9\"\n";
    s.extend(row_description(&["filename", "content"]));
    s.extend(data_row_bytes(&[Some(b"00000002.history"), Some(content)]));
    s.extend(command_complete("TIMELINE_HISTORY"));
    s.extend(ready());
    s.extend(error("ERROR", "58P01", "could not open file"));
    s.extend(ready());
    let (mut conn, server) = scripted_version(s, false, "14.12");
    // Before 15 there is no READ_REPLICATION_SLOT to ask for the position.
    assert_eq!(
        conn.create_physical_slot("keep_me", false).await.unwrap(),
        None
    );
    let (name, got) = conn.timeline_history(2).await.unwrap();
    assert_eq!(
        (name.as_str(), got.as_slice()),
        ("00000002.history", content)
    );
    let e = conn.timeline_history(9).await.unwrap_err();
    assert_eq!(e.sqlstate(), Some("58P01"));
    drop(conn);
    let sent = String::from_utf8_lossy(&server.await.unwrap()).into_owned();
    assert!(
        sent.contains("CREATE_REPLICATION_SLOT keep_me PHYSICAL RESERVE_WAL\0"),
        "{sent}"
    );
    assert!(sent.contains("TIMELINE_HISTORY 2\0") && sent.contains("TIMELINE_HISTORY 9\0"));
}
