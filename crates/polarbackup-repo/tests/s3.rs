//! What only S3 can show, on SeaweedFS with signatures checked: `Repo::open_url` end to end,
//! large objects uploaded in parts, credentials kept out of errors, retries riding out
//! transient faults (injected under the retry layer, and a real server restart), and a server
//! gone for good failing the commit with no backup left behind. Everything every backend must
//! do is in the contract suite (`tests/contract/`), which runs on SeaweedFS too.

mod common;
#[path = "../src/faults.rs"]
mod faults;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use faults::{Call, Faults};
use polarbackup_repo::{remote_layers, Manifest, Repo, RepoError, RepoUrl, S3Credentials};
use polarbackup_testkit::s3::SeaweedFs;

/// The server the tests that do not kill it share.
fn shared() -> &'static SeaweedFs {
    static WEED: OnceLock<SeaweedFs> = OnceLock::new();
    WEED.get_or_init(SeaweedFs::start)
}

fn credentials(weed: &SeaweedFs) -> S3Credentials {
    let (id, secret) = weed.credentials();
    S3Credentials::new(id, secret)
}

fn fresh_url(weed: &SeaweedFs, name: &str) -> RepoUrl {
    weed.url(name).parse().unwrap()
}

async fn verify(repo: &Repo, id: &str) -> Result<polarbackup_repo::VerifyReport, RepoError> {
    repo.verify(id, &mut |_, _| {}).await
}

/// A backup as the engine writes one: one archive, a side file, abort on any error before
/// the commit (whose own failure cleans up by itself).
async fn backup(repo: &Repo, id: &str, data: &[u8]) -> Result<Manifest, RepoError> {
    let mut w = repo.begin(id, CREATED_AT).await?;
    let stored = async {
        w.start_archive("base.tar", None).await?;
        for piece in data.chunks(64 * 1024) {
            w.write(piece).await?;
        }
        w.finish_archive().await?;
        w.put_file("backup_manifest", b"{}").await
    }
    .await;
    match stored {
        Ok(()) => w.commit(serde_json::json!({})).await,
        Err(e) => {
            let _ = w.abort().await;
            Err(e)
        }
    }
}

/// Objects over 16 MiB go up in 8 MiB parts (the layer below the retries sees each part as
/// one write), smaller ones in one request, and a second handle opened from the same URL
/// reads everything back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_url_stores_large_objects_in_parts_and_reads_them_back() {
    let weed = shared();
    let url = fresh_url(weed, "parts");
    assert_eq!(url.to_string().parse::<RepoUrl>().unwrap(), url);
    let creds = credentials(weed);
    let faults = Faults::default();
    let counted = remote_layers(url.storage(Some(&creds)).unwrap().layer(faults.layer()));
    let repo = Repo::new(counted, cfg(20 << 20, 2)).unwrap();
    // Incompressible: chunk objects of 20, 20 and 5 MiB (and a little).
    let data = random(45 << 20, 11);
    let m = backup(&repo, "big", &data).await.unwrap();
    let sizes: Vec<u64> = m.archives[0].chunks.iter().map(|c| c.stored_size).collect();
    assert_eq!(sizes.len(), 3);
    assert!(sizes[0] > 20 << 20 && sizes[2] > 5 << 20, "{sizes:?}");
    // 3 + 3 parts, the last chunk, the side file, the manifest (one PUT, never multipart).
    assert_eq!(faults.count(Call::Write), 9);
    assert_eq!(faults.count(Call::Close), 5);

    let reader = Repo::open_url(&url, Some(&creds), cfg(1024, 2)).unwrap();
    assert_eq!(reader.list_backup_ids().await.unwrap(), ["big"]);
    let report = verify(&reader, "big").await.unwrap();
    assert_eq!(report.raw_bytes, data.len() as u64 + 2);
    assert!(read_stream(&reader, "big", "base.tar").await.unwrap() == data);

    let wal = random(20 << 20, 12);
    let stored = reader
        .put_wal("c1", "000000010000000000000001", wal.clone())
        .await
        .unwrap();
    assert_eq!(
        faults.count(Call::Write),
        9,
        "the reader's handle has no fault layer"
    );
    let back = reader
        .read_wal(&stored.key, stored.raw_size, &stored.digest)
        .await
        .unwrap();
    assert!(back == wal);
    assert_eq!(reader.list_wal("c1").await.unwrap(), [stored.key.as_str()]);
    reader.delete_wal(&stored.key).await.unwrap();
    reader.delete("big").await.unwrap();
    assert!(reader.list_backup_ids().await.unwrap().is_empty());
}

/// A wrong secret or no credentials at all are refused by the server; neither the error nor
/// any Debug output carries the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_and_no_secret_is_ever_shown() {
    let weed = shared();
    let url = fresh_url(weed, "creds");
    let good = credentials(weed);
    let wrong = S3Credentials::new(good.access_key_id.clone(), "hunter2-not-the-secret");
    for creds in [Some(&wrong), None] {
        let repo = Repo::open_url(&url, creds, cfg(1024, 2)).unwrap();
        let err = repo.list_backup_ids().await.unwrap_err();
        assert!(matches!(err, RepoError::Storage { .. }), "{err}");
        let shown = format!("{err} {err:?} {repo:?}");
        assert!(shown.contains("403"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&good.secret_access_key), "{shown}");
        let begun = repo.begin("b1", CREATED_AT).await;
        assert!(matches!(begun, Err(RepoError::Storage { .. })));
    }
    let repo = Repo::open_url(&url, Some(&good), cfg(1024, 2)).unwrap();
    let m = backup(&repo, "b1", &random(10_000, 1)).await.unwrap();
    let shown = format!("{repo:?} {good:?} {m:?}");
    assert!(!shown.contains(&good.secret_access_key), "{shown}");
}

/// Temporary failures of every kind of call, injected under the retry layer, are retried:
/// the backup commits, verifies and reads back, and cleanup works through them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_the_backup_commits() {
    let weed = shared();
    let url = fresh_url(weed, "transient");
    let faults = Faults::default();
    faults.transient();
    for (call, n) in [
        (Call::List, 1),
        (Call::Write, 2),
        (Call::Write, 3),
        (Call::Write, 7),
        (Call::Close, 1),
        (Call::Close, 6),
        (Call::Stat, 2),
        (Call::Read, 1),
        (Call::Read, 4),
        (Call::Delete, 1),
    ] {
        faults.fail_nth(call, n);
    }
    let op = remote_layers(
        url.storage(Some(&credentials(weed)))
            .unwrap()
            .layer(faults.layer()),
    );
    let repo = Repo::new(op, cfg(1024, 3)).unwrap();
    let data = random(8 * 1024 + 10, 3);
    backup(&repo, "b1", &data).await.unwrap();
    verify(&repo, "b1").await.unwrap();
    assert_eq!(read_stream(&repo, "b1", "base.tar").await.unwrap(), data);
    repo.delete("b1").await.unwrap();
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
    assert_eq!(faults.injected(), 10, "every planned failure happened");
}

/// The server dies mid-backup and is back two seconds later: the retries ride it out and the
/// backup commits whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_during_a_backup_is_ridden_out() {
    let weed = Arc::new(SeaweedFs::start());
    let url = fresh_url(&weed, "restart");
    let repo = Repo::open_url(&url, Some(&credentials(&weed)), cfg(64 * 1024, 2)).unwrap();
    let data = random(2 << 20, 5);
    let (first, rest) = data.split_at(1 << 20);
    let mut w = repo.begin("b1", CREATED_AT).await.unwrap();
    w.start_archive("base.tar", None).await.unwrap();
    w.write(first).await.unwrap();
    weed.kill();
    let restarted = {
        let weed = weed.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(1));
            weed.restart();
        })
    };
    let m = async {
        for piece in rest.chunks(100_000) {
            w.write(piece).await?;
        }
        w.finish_archive().await?;
        w.put_file("backup_manifest", b"{}").await?;
        w.commit(serde_json::json!({})).await
    }
    .await;
    restarted.await.unwrap();
    let m = m.unwrap_or_else(|e| panic!("the retries did not ride out the restart: {e}"));
    assert_eq!(m.archives[0].chunks.len(), 32);
    verify(&repo, "b1").await.unwrap();
    assert!(read_stream(&repo, "b1", "base.tar").await.unwrap() == data);
}

/// The server dies before the commit and stays down: the commit fails (within the retry
/// budget) with a storage error. Back up again, the set has no manifest, so it is unusable
/// and listed for cleanup only; deleting it leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_for_good_fails_the_commit_and_leaves_no_backup() {
    let weed = SeaweedFs::start();
    let url = fresh_url(&weed, "gone");
    let repo = Repo::open_url(&url, Some(&credentials(&weed)), cfg(64 * 1024, 2)).unwrap();
    let mut w = repo.begin("b1", CREATED_AT).await.unwrap();
    write_archive(&mut w, "base.tar", None, &random(300_000, 6)).await;
    weed.kill();
    let started = Instant::now();
    let err = w.commit(serde_json::json!({})).await.unwrap_err();
    assert!(matches!(err, RepoError::Storage { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "retries are bounded: {:?}",
        started.elapsed()
    );

    weed.restart();
    assert_eq!(repo.manifest("b1").await.unwrap(), None);
    assert!(matches!(
        verify(&repo, "b1").await,
        Err(RepoError::NotFound(_))
    ));
    // The failed commit could not clean up with the server down: the set is listed, without
    // a manifest, for the cleanup that deletes it.
    for id in repo.list_backup_ids().await.unwrap() {
        assert_eq!(id, "b1");
        repo.delete(&id).await.unwrap();
    }
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
    backup(&repo, "b1", b"again").await.unwrap();
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b1"]);
}
