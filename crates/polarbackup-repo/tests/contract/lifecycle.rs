//! A set's life: abort, a crash before the manifest, delete (manifest first, idempotent),
//! and the listing cleanup works from.

use polarbackup_repo::{Repo, RepoError};

use crate::common::*;
use crate::faults::{Call, Faults};
use crate::support::*;

pub async fn abort_leaves_nothing(make: MakeBackend) {
    let (backend, repo) = repo(make);
    let mut w = repo.begin(ID, CREATED_AT).await.unwrap();
    write_archive(&mut w, "base.tar", None, &random(10_000, 1)).await;
    w.start_archive("pg_wal.tar", None).await.unwrap();
    w.write(&random(5000, 2)).await.unwrap(); // chunks still in flight
    w.put_file("backup_manifest", b"{}").await.unwrap();
    assert!(w.stored_bytes() > 0);
    assert_eq!(repo.list_backup_ids().await.unwrap(), [ID]);
    w.abort().await.unwrap();

    assert!(objects(&backend.op, ID).await.is_empty());
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
    assert_eq!(repo.manifest(ID).await.unwrap(), None);
    // The id is free again.
    three_chunk_backup(&repo, ID).await;
}

/// A process that dies (no destructor runs) or a writer dropped mid-archive leaves objects
/// but no manifest: never a usable set, always found by the listing, and removable.
pub async fn a_crash_before_the_manifest_leaves_an_incomplete_set(make: MakeBackend) {
    let (backend, repo) = repo(make);
    three_chunk_backup(&repo, "done").await;
    for (id, forget) in [("crashed", true), ("dropped", false)] {
        let mut w = repo.begin(id, CREATED_AT).await.unwrap();
        write_archive(&mut w, "base.tar", None, &random(5000, 1)).await;
        w.put_file("backup_manifest", b"{}").await.unwrap();
        w.start_archive("pg_wal.tar", None).await.unwrap();
        // Less than a chunk: nothing is in flight, so what is stored stays as it is.
        w.write(&random(500, 2)).await.unwrap();
        if forget {
            std::mem::forget(w);
        } else {
            drop(w);
        }
    }
    for id in ["crashed", "dropped"] {
        assert_unusable(&repo, id).await;
        assert!(objects(&backend.op, id).await.len() >= 6, "{id}");
        assert!(matches!(
            repo.begin(id, CREATED_AT).await,
            Err(RepoError::Exists(_))
        ));
    }
    let listed = repo.list_backup_ids().await.unwrap();
    assert_eq!(listed, ["crashed", "done", "dropped"]);

    // What cleanup does: every listed id without a manifest is deleted.
    for id in listed {
        if repo.manifest(&id).await.unwrap().is_none() {
            repo.delete(&id).await.unwrap();
        }
    }
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["done"]);
    for id in ["crashed", "dropped"] {
        assert!(objects(&backend.op, id).await.is_empty(), "{id}");
    }
    verify(&repo, "done").await.unwrap();
    three_chunk_backup(&repo, "crashed").await;
}

/// Every delete after the first fails, as a crash right after delete's first step would
/// leave it: the manifest is gone, so the set is unusable, and it is still listed for
/// cleanup. A second delete finishes the job; deleting again changes nothing.
pub async fn delete_removes_the_manifest_first_and_is_idempotent(make: MakeBackend) {
    let faults = Faults::default();
    let (_backend, op, repo) = faulty(make, &faults, 2);
    three_chunk_backup(&repo, "b1").await;
    three_chunk_backup(&repo, "b2").await;
    let before = objects(&op, "b1").await;
    assert!(before.contains(&"manifest.json".to_owned()), "{before:?}");

    faults.fail_from(Call::Delete, faults.count(Call::Delete) + 2);
    let err = repo.delete("b1").await.unwrap_err();
    assert!(matches!(err, RepoError::Storage { .. }), "{err}");
    let after = objects(&op, "b1").await;
    let expected: Vec<_> = before
        .into_iter()
        .filter(|o| o != "manifest.json")
        .collect();
    assert_eq!(after, expected, "only the manifest went");
    assert_unusable(&repo, "b1").await;
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b1", "b2"]);
    assert!(matches!(
        repo.begin("b1", CREATED_AT).await,
        Err(RepoError::Exists(_))
    ));

    faults.heal();
    repo.delete("b1").await.unwrap();
    repo.delete("b1").await.unwrap();
    repo.delete("never-existed").await.unwrap();
    assert!(objects(&op, "b1").await.is_empty());
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["b2"]);
    verify(&repo, "b2").await.unwrap();
    repo.delete("b2").await.unwrap();
    assert!(repo.list_backup_ids().await.unwrap().is_empty());
}

/// The listing holds every id with objects, committed or not, sorted, and nothing that is
/// not a backup id; a failing listing is an error, never an empty repository.
pub async fn listing_finds_every_set_and_nothing_else(make: MakeBackend) {
    let faults = Faults::default();
    let (_backend, op, repo) = faulty(make, &faults, 2);
    assert!(repo.list_backup_ids().await.unwrap().is_empty());

    three_chunk_backup(&repo, "b2").await;
    let mut w = repo.begin("a1", CREATED_AT).await.unwrap();
    w.put_file("x", b"y").await.unwrap();
    drop(w);
    let mut w = repo.begin("c3", CREATED_AT).await.unwrap();
    w.put_file("x", b"y").await.unwrap();
    w.abort().await.unwrap();
    for stray in ["backups/stray-file", "backups/.hidden/x", "elsewhere/b9/x"] {
        op.write(stray, b"x".to_vec()).await.unwrap();
    }
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["a1", "b2"]);

    faults.fail_nth(Call::List, faults.count(Call::List) + 1);
    let err = repo.list_backup_ids().await.unwrap_err();
    assert!(matches!(err, RepoError::Storage { .. }), "{err}");
    // `begin` must not take a failed look for an unused id.
    faults.fail_nth(Call::List, faults.count(Call::List) + 1);
    let err = repo.begin("d4", CREATED_AT).await.map(drop).unwrap_err();
    assert!(matches!(err, RepoError::Storage { .. }), "{err}");
    assert_eq!(repo.list_backup_ids().await.unwrap(), ["a1", "b2"]);
}

/// Two processes may remove the same data at once (a running server and `cluster delete`
/// both release a deleted cluster's sets and WAL): both succeed, whichever removes an object
/// first, and nothing is left.
pub async fn two_deleters_of_the_same_data_both_succeed(make: MakeBackend) {
    let (backend, repo) = repo(make);
    for round in 0..3 {
        let mut w = repo.begin(ID, CREATED_AT).await.unwrap();
        write_archive(&mut w, "base.tar", None, &random(150 * 1024, round)).await;
        w.commit(serde_json::json!({})).await.unwrap();
        let mut keys = Vec::new();
        for i in 0..150 {
            let name = format!("00000001000000000000{i:04X}");
            keys.push(
                repo.put_wal("pc-1", &name, random(100, i))
                    .await
                    .unwrap()
                    .key,
            );
        }
        let deleter = |repo: Repo, keys: Vec<String>| {
            tokio::spawn(async move {
                repo.delete(ID).await?;
                for key in &keys {
                    repo.delete_wal(key).await?;
                }
                Ok::<_, RepoError>(())
            })
        };
        let first = deleter(repo.clone(), keys.clone());
        let second = deleter(repo.clone(), keys.into_iter().rev().collect());
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert!(objects(&backend.op, ID).await.is_empty(), "round {round}");
        assert!(repo.list_backup_ids().await.unwrap().is_empty());
        assert!(repo.list_wal("pc-1").await.unwrap().is_empty());
    }
}
