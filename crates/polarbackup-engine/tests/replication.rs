//! Integration tests against a real PostgreSQL (15+): startup and auth, IDENTIFY_SYSTEM,
//! BASE_BACKUP over TCP and a Unix socket, WAL streaming through a temporary slot, TLS.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Cluster, MD5_USER, NO_REPL_USER, SCRAM_USER, SUPERUSER};
use polarbackup_engine::pg::{
    BackupEvent, BaseBackupOptions, ConnectConfig, Lsn, PgError, ReplicationConn, TlsMode,
    WalEvent, WalSegmentWriter,
};

/// Every test gets this long; a hang is a failure, not a stuck CI run.
const LIMIT: Duration = Duration::from_secs(60);

async fn connect(cfg: &ConnectConfig) -> Result<ReplicationConn, PgError> {
    tokio::time::timeout(LIMIT, ReplicationConn::connect(cfg))
        .await
        .expect("connect timed out")
}

#[tokio::test]
async fn identify_system_over_tcp_and_unix() {
    let c = Cluster::shared();
    let mut tcp = connect(&c.tcp(SUPERUSER, None)).await.unwrap();
    let a = tcp.identify_system().await.unwrap();
    assert!(
        a.system_id.len() >= 10 && a.system_id.bytes().all(|b| b.is_ascii_digit()),
        "{a:?}"
    );
    assert_eq!(a.timeline, 1);
    assert!(a.xlog_pos > Lsn(0));
    assert_eq!(a.dbname, None);
    assert!(tcp.server_major_version().unwrap() >= 15);
    assert_eq!(tcp.wal_segment_size().await.unwrap(), 16 << 20);

    let mut unix_cfg = c.unix();
    unix_cfg.database = Some("postgres".into());
    let mut unix = connect(&unix_cfg).await.unwrap();
    let b = unix.identify_system().await.unwrap();
    assert_eq!(a.system_id, b.system_id);
    // A plain server error leaves the connection usable.
    let e = unix.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        e.sqlstate(),
        Some("0A000"),
        "no SQL on a physical walsender: {e}"
    );
    assert_eq!(unix.identify_system().await.unwrap().system_id, a.system_id);
    tcp.close().await.unwrap();
    unix.close().await.unwrap();
}

#[tokio::test]
async fn password_auth_md5_and_scram() {
    let c = Cluster::shared();
    for (user, pw) in [MD5_USER, SCRAM_USER] {
        let mut conn = connect(&c.tcp(user, Some(pw)))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        conn.identify_system().await.unwrap();

        let e = connect(&c.tcp(user, Some("wrong"))).await.err().unwrap();
        assert!(e.is_auth_failed(), "{user}: {e}");
        assert_eq!(e.sqlstate(), Some("28P01"));

        let e = connect(&c.tcp(user, None)).await.err().unwrap();
        assert!(matches!(e, PgError::Auth(_)), "{user}: {e}");
    }
}

#[tokio::test]
async fn role_without_replication_is_refused() {
    let c = Cluster::shared();
    let e = connect(&c.tcp(NO_REPL_USER, None)).await.err().unwrap();
    assert!(e.is_permission_denied(), "{e:?}");
}

#[tokio::test]
async fn closed_port_is_an_io_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = ConnectConfig::new(
        polarbackup_engine::pg::PgHost::Tcp("127.0.0.1".into()),
        port,
        "x",
    );
    cfg.tls = TlsMode::Disable;
    match connect(&cfg).await {
        Err(PgError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected connection refused, got {:?}", other.err()),
    }
}

/// What a backup delivered, checked for event order on the way in.
struct Received {
    start: (Lsn, u32),
    end: (Lsn, u32),
    spc_kb: u64,
    /// Archive name -> (tablespace location, bytes, last progress during it).
    archives: BTreeMap<String, (Option<String>, Vec<u8>, u64)>,
    manifest: Vec<u8>,
    manifest_chunks: usize,
    data_bytes: u64,
    progress: u64,
}

async fn run_backup(conn: &mut ReplicationConn, opts: &BaseBackupOptions) -> Received {
    let mut stream = conn.base_backup(opts).await.unwrap();
    let mut r = Received {
        start: (Lsn(0), 0),
        end: (Lsn(0), 0),
        spc_kb: 0,
        archives: BTreeMap::new(),
        manifest: Vec::new(),
        manifest_chunks: 0,
        data_bytes: 0,
        progress: 0,
    };
    let mut n = 0;
    let mut current: Option<String> = None;
    let mut in_manifest = false;
    while let Some(ev) = tokio::time::timeout(LIMIT, stream.next())
        .await
        .unwrap()
        .unwrap()
    {
        match ev {
            BackupEvent::Started {
                start_lsn,
                timeline,
            } => {
                assert_eq!(n, 0);
                r.start = (start_lsn, timeline);
            }
            BackupEvent::Tablespaces(t) => {
                assert_eq!(n, 1);
                assert_eq!(t.len(), 2, "{t:?}");
                r.spc_kb = t.iter().filter_map(|s| s.size_kb).sum();
            }
            BackupEvent::ArchiveStart {
                name,
                tablespace_location,
            } => {
                assert!(!in_manifest);
                r.archives
                    .insert(name.clone(), (tablespace_location, Vec::new(), 0));
                current = Some(name);
            }
            BackupEvent::Data(d) => {
                r.data_bytes += d.len() as u64;
                r.archives
                    .get_mut(current.as_ref().unwrap())
                    .unwrap()
                    .1
                    .extend_from_slice(&d);
            }
            BackupEvent::Progress(p) => {
                // Progress counts the whole backup so far, across archives.
                assert!(
                    p >= r.progress && p <= r.data_bytes,
                    "{p} after {} of {}",
                    r.progress,
                    r.data_bytes
                );
                r.progress = p;
                r.archives.get_mut(current.as_ref().unwrap()).unwrap().2 = p;
            }
            BackupEvent::ManifestStart => in_manifest = true,
            BackupEvent::ManifestData(d) => {
                assert!(in_manifest);
                r.manifest.extend_from_slice(&d);
                r.manifest_chunks += 1;
            }
            BackupEvent::Finished { end_lsn, timeline } => {
                assert!(in_manifest || !opts.manifest);
                r.end = (end_lsn, timeline);
            }
        }
        n += 1;
    }
    assert!(r.end.0 >= r.start.0 && r.start.0 > Lsn(0));
    r
}

/// Writes the archives out, extracts them as a plain data directory (the tablespace in place of
/// its symlink) and runs pg_verifybackup on it.
fn verify_backup(c: &Cluster, r: &Received, work: &Path, parse_wal: bool) {
    let tar_list = |tar: &Path| {
        let out = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let data = work.join("restore");
    std::fs::create_dir(&data).unwrap();
    // base.tar first: it holds pg_tblspc/<oid>, which the tablespace's contents then replace.
    let mut archives: Vec<_> = r.archives.iter().collect();
    archives.sort_by_key(|(name, _)| *name != "base.tar");
    for (name, (loc, bytes, progress)) in archives {
        assert_eq!(
            bytes.len() % 512,
            0,
            "{name}: tar streams come in 512-byte blocks"
        );
        assert!(*progress > 0, "{name}: no progress reported");
        let tar = work.join(name);
        std::fs::write(&tar, bytes).unwrap();
        let listing = tar_list(&tar);
        let dest = match loc {
            None => {
                for f in ["PG_VERSION", "backup_label", "global/pg_control"] {
                    assert!(listing.lines().any(|l| l == f), "{f} missing from {name}");
                }
                data.clone()
            }
            Some(_) => {
                let oid = name.trim_end_matches(".tar");
                data.join("pg_tblspc").join(oid)
            }
        };
        if loc.is_some() {
            // Restored from base.tar as a symlink to the live tablespace.
            std::fs::remove_file(&dest).unwrap();
            std::fs::create_dir_all(&dest).unwrap();
        }
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&dest)
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::write(work.join("backup_manifest"), &r.manifest).unwrap();
    let mut cmd = Command::new(c.bin("pg_verifybackup"));
    cmd.arg("-m").arg(work.join("backup_manifest"));
    if !parse_wal {
        cmd.arg("-n");
    }
    let out = cmd.arg(&data).output().unwrap();
    assert!(
        out.status.success(),
        "pg_verifybackup: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_manifest(r: &Received) -> serde_json::Value {
    let m: serde_json::Value = serde_json::from_slice(&r.manifest).expect("manifest is JSON");
    assert_eq!(m["PostgreSQL-Backup-Manifest-Version"], 1);
    let range = &m["WAL-Ranges"][0];
    assert_eq!(range["Start-LSN"], r.start.0.to_string());
    assert_eq!(range["End-LSN"], r.end.0.to_string());
    m
}

#[tokio::test]
async fn base_backup_over_tcp_with_progress_and_manifest() {
    let c = Cluster::shared();
    let mut conn = connect(&c.tcp(SUPERUSER, None)).await.unwrap();
    let opts = BaseBackupOptions {
        label: "polarbackup 'tcp' test".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: Some("SHA256".into()),
        wait: false,
        ..BaseBackupOptions::default()
    };
    let r = run_backup(&mut conn, &opts).await;
    assert_eq!(r.archives.len(), 2, "base.tar and the tablespace's");
    let base = &r.archives["base.tar"];
    assert_eq!(base.0, None);
    let (spc_name, spc) = r.archives.iter().find(|(n, _)| *n != "base.tar").unwrap();
    assert_eq!(
        spc.0.as_deref(),
        Some(c.tablespace_dir.to_str().unwrap()),
        "{spc_name}"
    );
    // Σ data ≈ Σ estimated sizes: headers and padding add a little, files may change a little.
    let total: u64 = r.archives.values().map(|a| a.1.len() as u64).sum();
    let estimate = r.spc_kb * 1024;
    assert!(total >= 2 << 20, "a few MB expected, got {total}");
    assert!(
        total * 10 >= estimate * 9 && total * 10 <= estimate * 12,
        "{total} vs {estimate}"
    );
    assert_eq!(
        r.progress, total,
        "at the end, progress covers every archived byte"
    );
    assert!(r.manifest_chunks >= 1);
    let m = check_manifest(&r);
    assert_eq!(m["Files"][0]["Checksum-Algorithm"], "SHA256");
    // The connection is usable after the backup.
    conn.identify_system().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    verify_backup(&c, &r, work.path(), false);
}

#[tokio::test]
async fn base_backup_over_unix_socket_with_wal() {
    let c = Cluster::shared();
    let mut conn = connect(&c.unix()).await.unwrap();
    let opts = BaseBackupOptions {
        label: "unix".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        wal: true,
        wait: false,
        ..BaseBackupOptions::default()
    };
    let r = run_backup(&mut conn, &opts).await;
    check_manifest(&r);
    let work = tempfile::tempdir().unwrap();
    // With WAL included, pg_verifybackup also parses the WAL from start to end.
    verify_backup(&c, &r, work.path(), true);
}

#[tokio::test]
async fn wal_streaming_through_temporary_slot() {
    let c = Cluster::shared();
    let mut wal_conn = connect(&c.tcp(SUPERUSER, None)).await.unwrap();
    // The slot first: it then holds all WAL from before the backup's checkpoint.
    let slot = format!("pb_test_{}", std::process::id());
    let reserved = wal_conn
        .create_temporary_physical_slot(&slot)
        .await
        .unwrap()
        .expect("PostgreSQL 15 reports the slot's position");
    assert!(reserved > Lsn(0));
    let seg = wal_conn.wal_segment_size().await.unwrap();

    let mut bb = connect(&c.tcp(SUPERUSER, None)).await.unwrap();
    let opts = BaseBackupOptions {
        fast_checkpoint: true,
        wait: false,
        ..BaseBackupOptions::default()
    };
    let r = run_backup(&mut bb, &opts).await;
    let (start, tli) = r.start;
    let end = r.end.0;
    assert!(
        reserved <= start,
        "slot {reserved} must precede the backup start {start}"
    );
    // Close the end segment so it can be streamed whole.
    c.psql("SELECT pg_switch_wal()");

    let dir = tempfile::tempdir().unwrap();
    let mut writer = WalSegmentWriter::new(dir.path(), tli, seg).unwrap();
    let mut ws = wal_conn
        .start_physical_replication(Some(&slot), start.segment_start(seg), tli)
        .await
        .unwrap();
    let mut completed = Vec::new();
    // Until the segment holding the end LSN is complete.
    while writer.completed_up_to() <= end {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WalEvent::Data { start, data }) => {
                completed.extend(writer.write(start, &data).await.unwrap());
                ws.confirm_flushed(writer.completed_up_to());
            }
            other => panic!("stream ended early: {other:?}"),
        }
    }
    assert!(ws.received_up_to() >= writer.completed_up_to());
    let conn = ws.finish().await.unwrap();
    conn.close().await.unwrap();
    writer.finish().await.unwrap();

    let first = dir.path().join(start.wal_file_name(tli, seg));
    let last = dir.path().join(end.wal_file_name(tli, seg));
    assert!(
        completed.contains(&first) && completed.contains(&last),
        "{completed:?}"
    );
    for f in [&first, &last] {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(bytes.len() as u64, seg);
        // XLogLongPageHeader.xlp_magic of PG15 is 0xD110 (little-endian on this machine).
        assert_eq!(&bytes[..2], &[0x10, 0xD1], "{}", f.display());
    }
    // pg_waldump can read every record from the backup start to its end.
    let out = Command::new(c.bin("pg_waldump"))
        .arg("--path")
        .arg(dir.path())
        .args([
            "--start",
            &start.to_string(),
            "--end",
            &end.to_string(),
            "--timeline",
            &tli.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_waldump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHECKPOINT_ONLINE"));
}

#[tokio::test]
async fn tls_modes() {
    let c = Cluster::shared();
    let ca = c.ca_file.clone();
    let tls = |mode: TlsMode, ca: Option<&Path>, user: (&str, &str)| {
        let mut cfg = c.tcp(user.0, Some(user.1));
        cfg.tls = mode;
        cfg.tls_ca_file = ca.map(Path::to_path_buf);
        cfg
    };
    // Verified against our CA, with SCRAM over TLS (the server offers SCRAM-SHA-256-PLUS).
    for mode in [TlsMode::Require, TlsMode::Prefer] {
        let mut conn = connect(&tls(mode, Some(&ca), SCRAM_USER)).await.unwrap();
        assert!(conn.is_tls());
        conn.identify_system().await.unwrap();
    }
    let mut conn = connect(&tls(TlsMode::RequireNoVerify, None, MD5_USER))
        .await
        .unwrap();
    assert!(conn.is_tls());
    // Big transfers work through TLS too.
    let r = run_backup(
        &mut conn,
        &BaseBackupOptions {
            fast_checkpoint: true,
            wait: false,
            progress: true,
            ..BaseBackupOptions::default()
        },
    )
    .await;
    assert!(r.archives["base.tar"].1.len() > 1 << 20);
    // The system store does not know our CA: verification must fail, not fall back.
    let e = connect(&tls(TlsMode::Require, None, MD5_USER))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, PgError::Tls(_)), "{e}");
    let e = connect(&tls(TlsMode::Prefer, None, MD5_USER))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, PgError::Tls(_)), "{e}");
    // Unix sockets never use TLS, whatever the mode (as in libpq).
    let mut unix = c.unix();
    unix.tls = TlsMode::Require;
    let conn = connect(&unix).await.unwrap();
    assert!(!conn.is_tls());
}
