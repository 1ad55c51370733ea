//! Writing backups and reading them back: archives, files, totals, manifests, misuse.

mod common;

use common::*;
use polarbackup_repo::{Checksum, Manifest, Repo, RepoConfig, RepoError, FORMAT_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_is_byte_identical_with_correct_totals() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(4096, 3)).unwrap();
    let mut base = random(10_000, 1);
    base.extend(compressible(50_000));
    base.extend(random(123, 2));
    let tablespace = random(3 * 4096, 3); // exactly three chunks
    let side = b"{\"Files\": []}".to_vec();

    let mut w = repo.begin("b1").await.unwrap();
    write_archive(&mut w, "base.tar", None, &base).await;
    write_archive(&mut w, "16384.tar", Some("/srv/ts1"), &tablespace).await;
    write_archive(&mut w, "pg_wal.tar", None, &[]).await;
    w.put_file("backup_manifest", &side).await.unwrap();
    let raw_total = (base.len() + tablespace.len() + side.len()) as u64;
    assert_eq!(w.raw_bytes(), raw_total);
    let stored_so_far = w.stored_bytes();
    let committed = w.commit(serde_json::json!({"timeline": 1})).await.unwrap();

    assert_eq!(committed.format_version, FORMAT_VERSION);
    assert_eq!(committed.totals.raw_bytes, raw_total);
    assert_eq!(committed.totals.stored_bytes, stored_so_far);
    assert!(
        committed.totals.stored_bytes < raw_total / 2,
        "compressible data compresses"
    );
    let names: Vec<_> = committed.archives.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["base.tar", "16384.tar", "pg_wal.tar"]);
    assert_eq!(
        committed.archives[0].chunks.len(),
        base.len().div_ceil(4096)
    );
    assert_eq!(committed.archives[1].chunks.len(), 3);
    assert_eq!(
        committed.archives[1].tablespace_location.as_deref(),
        Some("/srv/ts1")
    );
    assert!(committed.archives[2].chunks.is_empty());
    assert_eq!(committed.archives[2].raw_size, 0);
    assert_eq!(committed.meta["timeline"], 1);

    assert_eq!(repo.manifest("b1").await.unwrap(), Some(committed.clone()));
    assert_eq!(read_chunks(&repo, "b1", "base.tar").await, base);
    assert_eq!(read_stream(&repo, "b1", "base.tar").await.unwrap(), base);
    assert_eq!(
        read_stream(&repo, "b1", "16384.tar").await.unwrap(),
        tablespace
    );
    assert!(read_chunks(&repo, "b1", "pg_wal.tar").await.is_empty());
    assert_eq!(repo.read_file("b1", "backup_manifest").await.unwrap(), side);

    let mut seen = Vec::new();
    let report = repo
        .verify("b1", &mut |done, total| seen.push((done, total)))
        .await
        .unwrap();
    assert_eq!(
        report.chunks,
        committed
            .archives
            .iter()
            .map(|a| a.chunks.len() as u64)
            .sum::<u64>()
    );
    assert_eq!((report.archives, report.files), (3, 1));
    let total = committed.totals.stored_bytes;
    assert_eq!(seen.first(), Some(&(0, total)));
    assert_eq!(seen.last(), Some(&(total, total)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test]
async fn unknown_things_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    assert_eq!(repo.manifest("nope").await.unwrap(), None);
    assert!(matches!(
        repo.verify("nope", &mut |_, _| {}).await,
        Err(RepoError::NotFound(_))
    ));
    three_chunk_backup(&repo, "b1").await;
    assert!(matches!(
        repo.open_archive("b1", "x.tar").await,
        Err(RepoError::NotFound(_))
    ));
    assert!(matches!(
        repo.read_file("b1", "x").await,
        Err(RepoError::NotFound(_))
    ));
    assert!(matches!(
        repo.manifest("../etc").await,
        Err(RepoError::InvalidName { .. })
    ));
}

#[tokio::test]
async fn begin_refuses_an_id_with_objects() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    three_chunk_backup(&repo, "done").await;
    assert!(matches!(
        repo.begin("done").await,
        Err(RepoError::Exists(_))
    ));

    // Uncommitted leftovers count too.
    let mut w = repo.begin("half").await.unwrap();
    w.put_file("x", b"y").await.unwrap();
    drop(w);
    assert!(matches!(
        repo.begin("half").await,
        Err(RepoError::Exists(_))
    ));
    assert!(matches!(
        repo.begin("a/b").await,
        Err(RepoError::InvalidName { .. })
    ));
}

#[tokio::test]
async fn writer_misuse_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    let mut w = repo.begin("b1").await.unwrap();
    assert!(matches!(
        w.write(b"x").await,
        Err(RepoError::InvalidState(_))
    ));
    assert!(matches!(
        w.finish_archive().await,
        Err(RepoError::InvalidState(_))
    ));
    assert!(matches!(
        w.start_archive("files", None).await,
        Err(RepoError::InvalidName { .. })
    ));
    write_archive(&mut w, "base.tar", None, b"abc").await;
    assert!(matches!(
        w.start_archive("base.tar", None).await,
        Err(RepoError::Exists(_))
    ));
    w.put_file("f", b"1").await.unwrap();
    assert!(matches!(
        w.put_file("f", b"2").await,
        Err(RepoError::Exists(_))
    ));
    w.start_archive("pg_wal.tar", None).await.unwrap();
    assert!(matches!(
        w.start_archive("other.tar", None).await,
        Err(RepoError::InvalidState(_))
    ));
    w.write(&random(5000, 1)).await.unwrap();
    // Committing with an unfinished archive fails and removes what was written.
    assert!(matches!(
        w.commit(serde_json::Value::Null).await,
        Err(RepoError::InvalidState(_))
    ));
    assert!(!dir.path().join("backups/b1").exists());
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}

#[test]
fn committed_sample_manifest_keeps_loading() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/manifest-v1.json"
    );
    let data = std::fs::read(path).unwrap();
    let m = Manifest::from_json(&data, path).unwrap();
    assert_eq!(m.format_version, 1);
    assert_eq!(m.backup_id, "sample-1");
    assert_eq!(m.archives.len(), 2);
    assert_eq!(m.files[0].name, "backup_manifest");
    assert_eq!(m.meta["pg_version"], 150018);
}

#[test]
fn newer_or_missing_format_versions_are_refused() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/manifest-v1.json"
    );
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["format_version"] = 3.into();
    let err = Manifest::from_json(v.to_string().as_bytes(), "m").unwrap_err();
    assert!(matches!(err, RepoError::UnsupportedFormat(3)), "{err}");
    // Format 1 knew only SHA-256.
    v["format_version"] = 1.into();
    v["checksum"] = "blake3".into();
    let err = Manifest::from_json(v.to_string().as_bytes(), "m").unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
    v.as_object_mut().unwrap().remove("format_version");
    let err = Manifest::from_json(v.to_string().as_bytes(), "m").unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_backups_use_blake3_and_format_1_backups_still_verify_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    let (m, _) = three_chunk_backup(&repo, "new").await;
    assert_eq!((m.format_version, m.checksum()), (2, Checksum::Blake3));
    let json = std::fs::read_to_string(object_file(dir.path(), "new", "manifest.json")).unwrap();
    assert!(
        json.contains("\"raw_hash\"") && !json.contains("raw_sha256"),
        "{json}"
    );

    // A backup as format 1 wrote it: SHA-256 under the old field names.
    let old = Repo::open_fs(
        dir.path(),
        RepoConfig {
            checksum: Checksum::Sha256,
            ..cfg(1024, 2)
        },
    )
    .unwrap();
    let (_, data) = three_chunk_backup(&old, "old").await;
    let path = object_file(dir.path(), "old", "manifest.json");
    let v1 = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"raw_hash\"", "\"raw_sha256\"")
        .replace("\"stored_hash\"", "\"stored_sha256\"")
        .replace("\"format_version\": 2", "\"format_version\": 1");
    std::fs::write(&path, &v1).unwrap();
    let m = repo.manifest("old").await.unwrap().unwrap();
    assert_eq!((m.format_version, m.checksum()), (1, Checksum::Sha256));
    repo.verify("old", &mut |_, _| {}).await.unwrap();
    assert_eq!(read_chunks(&repo, "old", "base.tar").await, data);

    // The same digests claimed as BLAKE3 do not verify.
    std::fs::write(
        &path,
        v1.replace("\"format_version\": 1", "\"format_version\": 2")
            .replace("\"checksum\": \"sha256\"", "\"checksum\": \"blake3\""),
    )
    .unwrap();
    let err = repo.verify("old", &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
}
