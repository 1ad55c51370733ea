//! Writing backups and reading them back: archives, files, totals, ids, misuse, old formats,
//! two writers at once.

use std::sync::Arc;

use polarbackup_repo::{
    Checksum, Repo, RepoConfig, RepoError, ENCRYPTED_FORMAT_VERSION, FORMAT_VERSION,
};
use tokio::sync::Barrier;

use crate::common::*;
use crate::support::*;

pub async fn round_trip_is_byte_identical_with_correct_totals(make: MakeBackend) {
    let backend = make();
    let repo = backend.repo(cfg(4096, 3)).unwrap();
    let mut base = random(10_000, 1);
    base.extend(compressible(50_000));
    base.extend(random(123, 2));
    let tablespace = random(3 * 4096, 3); // exactly three chunks
    let side = b"{\"Files\": []}".to_vec();
    let label = b"START WAL LOCATION: 0/2000028".to_vec();

    let mut w = repo.begin(ID, CREATED_AT).await.unwrap();
    write_archive(&mut w, "base.tar", None, &base).await;
    write_archive(&mut w, "16384.tar", Some("/srv/ts1"), &tablespace).await;
    write_archive(&mut w, "pg_wal.tar", None, &[]).await;
    w.put_file("backup_manifest", &side).await.unwrap();
    w.put_file("backup_label", &label).await.unwrap();
    w.put_file("empty", b"").await.unwrap();
    let raw_total = (base.len() + tablespace.len() + side.len() + label.len()) as u64;
    assert_eq!(w.raw_bytes(), raw_total);
    let stored_so_far = w.stored_bytes();
    let committed = w.commit(serde_json::json!({"timeline": 1})).await.unwrap();

    let format = match backend.key {
        Some(_) => ENCRYPTED_FORMAT_VERSION,
        None => FORMAT_VERSION,
    };
    assert_eq!(committed.format_version, format);
    assert_eq!(committed.encryption.is_some(), backend.key.is_some());
    assert_eq!(committed.backup_id, ID);
    assert_eq!(committed.created_at, CREATED_AT);
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

    assert_eq!(repo.manifest(ID).await.unwrap(), Some(committed.clone()));
    assert_eq!(read_chunks(&repo, ID, "base.tar").await, base);
    assert_eq!(read_stream(&repo, ID, "base.tar").await.unwrap(), base);
    assert_eq!(
        read_stream(&repo, ID, "16384.tar").await.unwrap(),
        tablespace
    );
    assert!(read_chunks(&repo, ID, "pg_wal.tar").await.is_empty());
    assert_eq!(repo.read_file(ID, "backup_manifest").await.unwrap(), side);
    assert_eq!(repo.read_file(ID, "backup_label").await.unwrap(), label);
    assert!(repo.read_file(ID, "empty").await.unwrap().is_empty());

    // A second repository on the same storage (another server) reads the same backup.
    let other = backend.repo(cfg(1024, 1)).unwrap();
    assert_eq!(other.manifest(ID).await.unwrap(), Some(committed));
    assert_eq!(read_stream(&other, ID, "base.tar").await.unwrap(), base);
}

/// A backup with no archive and no file is still a backup.
pub async fn an_empty_backup_commits_and_verifies(make: MakeBackend) {
    let (_backend, repo) = repo(make);
    let w = repo.begin(ID, CREATED_AT).await.unwrap();
    let m = w.commit(serde_json::Value::Null).await.unwrap();
    assert!(m.archives.is_empty() && m.files.is_empty());
    assert_eq!((m.totals.raw_bytes, m.totals.stored_bytes), (0, 0));
    assert_eq!(repo.manifest(ID).await.unwrap(), Some(m));
    let report = verify(&repo, ID).await.unwrap();
    assert_eq!((report.archives, report.chunks, report.files), (0, 0, 0));
    assert_eq!(repo.list_backup_ids().await.unwrap(), [ID]);
}

pub async fn unknown_and_invalid_ids_are_refused(make: MakeBackend) {
    let (_backend, repo) = repo(make);
    assert_unusable(&repo, "nope").await;
    repo.delete("nope").await.unwrap();
    three_chunk_backup(&repo, ID).await;
    assert!(matches!(
        repo.open_archive(ID, "x.tar").await,
        Err(RepoError::NotFound(_))
    ));
    assert!(matches!(
        repo.read_file(ID, "x").await,
        Err(RepoError::NotFound(_))
    ));
    for bad in ["", "../etc", "a/b", ".hidden", "x y"] {
        let invalid = |r: Result<(), RepoError>| matches!(r, Err(RepoError::InvalidName { .. }));
        assert!(invalid(repo.manifest(bad).await.map(drop)), "{bad:?}");
        assert!(
            invalid(repo.begin(bad, CREATED_AT).await.map(drop)),
            "{bad:?}"
        );
        assert!(invalid(verify(&repo, bad).await.map(drop)), "{bad:?}");
        assert!(invalid(repo.delete(bad).await), "{bad:?}");
    }
    assert_eq!(repo.list_backup_ids().await.unwrap(), [ID]);
}

pub async fn begin_refuses_an_id_with_objects(make: MakeBackend) {
    let (_backend, repo) = repo(make);
    three_chunk_backup(&repo, "done").await;
    assert!(matches!(
        repo.begin("done", CREATED_AT).await,
        Err(RepoError::Exists(_))
    ));

    // Uncommitted leftovers count too.
    let mut w = repo.begin("half", CREATED_AT).await.unwrap();
    w.put_file("x", b"y").await.unwrap();
    drop(w);
    assert!(matches!(
        repo.begin("half", CREATED_AT).await,
        Err(RepoError::Exists(_))
    ));
}

pub async fn writer_misuse_is_an_error(make: MakeBackend) {
    let (backend, repo) = repo(make);
    let mut w = repo.begin(ID, CREATED_AT).await.unwrap();
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
    assert!(objects(&backend.op, ID).await.is_empty());
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}

pub async fn new_backups_use_blake3_and_format_1_backups_still_read(make: MakeBackend) {
    let (backend, repo) = repo(make);
    let op = &backend.op;
    let (m, _) = three_chunk_backup(&repo, "new").await;
    assert_eq!((m.format_version, m.checksum()), (2, Checksum::Blake3));
    let json = String::from_utf8(read_object(op, "new", "manifest.json").await).unwrap();
    assert!(
        json.contains("\"raw_hash\"") && !json.contains("raw_sha256"),
        "{json}"
    );

    // A backup as format 1 wrote it: SHA-256 under the old field names.
    let old = Repo::new(
        op.clone(),
        RepoConfig {
            checksum: Checksum::Sha256,
            ..cfg(1024, 2)
        },
    )
    .unwrap();
    let (_, data) = three_chunk_backup(&old, "old").await;
    let v1 = String::from_utf8(read_object(op, "old", "manifest.json").await)
        .unwrap()
        .replace("\"raw_hash\"", "\"raw_sha256\"")
        .replace("\"stored_hash\"", "\"stored_sha256\"")
        .replace("\"format_version\": 2", "\"format_version\": 1");
    write_object(op, "old", "manifest.json", v1.clone().into_bytes()).await;
    let m = repo.manifest("old").await.unwrap().unwrap();
    assert_eq!((m.format_version, m.checksum()), (1, Checksum::Sha256));
    verify(&repo, "old").await.unwrap();
    assert_eq!(read_chunks(&repo, "old", "base.tar").await, data);

    // The same digests claimed as BLAKE3 do not verify.
    let claimed = v1
        .replace("\"format_version\": 1", "\"format_version\": 2")
        .replace("\"checksum\": \"sha256\"", "\"checksum\": \"blake3\"");
    write_object(op, "old", "manifest.json", claimed.into_bytes()).await;
    let err = verify(&repo, "old").await.unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
}

/// Two writers (as two servers would have) fill two backups on one storage at the same time.
pub async fn concurrent_writers_of_two_ids_stay_apart(make: MakeBackend) {
    let backend = make();
    let both_open = Arc::new(Barrier::new(2));
    let mut tasks = Vec::new();
    for (id, seed, parallelism) in [("a1", 1, 2), ("b2", 2, 3)] {
        let repo = backend.repo(cfg(1024, parallelism)).unwrap();
        let both_open = both_open.clone();
        tasks.push(tokio::spawn(async move {
            let data = random(20_000 + seed as usize * 1000, seed);
            let mut w = repo.begin(id, CREATED_AT).await.unwrap();
            both_open.wait().await;
            write_archive(&mut w, "base.tar", None, &data).await;
            w.put_file("backup_manifest", id.as_bytes()).await.unwrap();
            both_open.wait().await;
            let m = w.commit(serde_json::json!({ "id": id })).await.unwrap();
            (id, data, m)
        }));
    }
    let repo = backend.repo(cfg(1024, 2)).unwrap();
    let mut written = Vec::new();
    for task in tasks {
        written.push(task.await.unwrap());
    }
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["a1", "b2"]);
    for (id, data, m) in &written {
        assert_eq!(repo.manifest(id).await.unwrap().as_ref(), Some(m));
        assert_eq!(&read_stream(&repo, id, "base.tar").await.unwrap(), data);
        assert_eq!(
            repo.read_file(id, "backup_manifest").await.unwrap(),
            id.as_bytes()
        );
        verify(&repo, id).await.unwrap();
    }
    repo.delete("a1").await.unwrap();
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b2"]);
    verify(&repo, "b2").await.unwrap();
}
