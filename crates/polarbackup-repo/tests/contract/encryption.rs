//! What an encrypted repository adds (run on every backend's `*_encrypted` variant): no
//! plaintext in any stored object, a wrong key or a changed or moved object refused as
//! corrupt by name, and a missing or unexpected key refused with a clear message.

use opendal::Operator;
use polarbackup_repo::{Repo, RepoError, RepoKey, ENCRYPTED_FORMAT_VERSION};

use crate::backends::Backend;
use crate::common::*;
use crate::support::*;

/// Text that must not appear in any stored object of an encrypted repository.
const MARKER: &[u8] = b"MARKER-pg_authid-SCRAM-SHA-256$4096:secret";

fn other_key() -> RepoKey {
    RepoKey::from_bytes(b"another repository key, also 32+ bytes long").unwrap()
}

/// The same storage without a key, or with another one.
fn plain(backend: &Backend) -> Repo {
    Repo::new(backend.op.clone(), cfg(1024, 2)).unwrap()
}

fn key(backend: &Backend) -> RepoKey {
    backend.key.clone().expect("an encrypted backend")
}

fn assert_corrupt_at<T: std::fmt::Debug>(got: Result<T, RepoError>, want: &str) {
    match got {
        Err(RepoError::Corrupt { object, reason }) => {
            assert_eq!(object, want, "reason: {reason}")
        }
        other => panic!("expected Corrupt {{ {want} }}, got {other:?}"),
    }
}

fn assert_invalid_config<T: std::fmt::Debug>(got: Result<T, RepoError>, says: &[&str]) {
    match got {
        Err(RepoError::InvalidConfig(msg)) => {
            for s in says {
                assert!(msg.contains(s), "{msg:?} should say {s:?}");
            }
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

/// Random data (which zstd stores as literals) with the marker in every chunk, and the
/// marker in a side file and the engine's metadata too.
async fn marked_backup(repo: &Repo, id: &str) -> Vec<u8> {
    let mut data = Vec::new();
    for seed in 0..4 {
        data.extend(random(400, seed));
        data.extend_from_slice(MARKER);
        data.extend(random(600 - MARKER.len(), seed + 10));
    }
    let mut w = repo.begin(id, CREATED_AT).await.unwrap();
    write_archive(&mut w, "base.tar", None, &data).await;
    w.put_file("backup_manifest", MARKER).await.unwrap();
    let marker = String::from_utf8(MARKER.to_vec()).unwrap();
    w.commit(serde_json::json!({ "system_identifier": marker }))
        .await
        .unwrap();
    data
}

/// Every stored object under the repository root, with its bytes.
async fn everything(op: &Operator) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in op.list_with("/").recursive(true).await.unwrap() {
        if entry.metadata().is_file() {
            let bytes = op.read(entry.path()).await.unwrap().to_vec();
            out.push((entry.path().to_owned(), bytes));
        }
    }
    out.sort();
    out
}

fn holds_marker(bytes: &[u8]) -> bool {
    bytes.windows(MARKER.len()).any(|w| w == MARKER)
}

pub async fn stored_objects_show_no_plaintext(make: MakeBackend) {
    // The same data in a plain repository shows the marker (so the check below can fail)...
    let shown = make();
    marked_backup(&plain(&shown), ID).await;
    plain(&shown)
        .put_wal("c1", "000000010000000000000001", MARKER.repeat(3))
        .await
        .unwrap();
    let plain_objects = everything(&shown.op).await;
    let with_marker = plain_objects
        .iter()
        .filter(|(_, b)| holds_marker(b))
        .count();
    assert!(with_marker >= 6, "{:?}", plain_objects.len());

    // ...and in the encrypted one, in no stored object at all.
    let (backend, repo) = repo(make);
    let data = marked_backup(&repo, ID).await;
    repo.put_wal("c1", "000000010000000000000001", MARKER.repeat(3))
        .await
        .unwrap();
    let stored = everything(&backend.op).await;
    assert_eq!(stored.len(), plain_objects.len(), "{stored:?}");
    for (path, bytes) in &stored {
        assert!(!holds_marker(bytes), "{path} holds plaintext");
    }
    // And it all reads back.
    let m = repo.manifest(ID).await.unwrap().unwrap();
    assert_eq!(m.format_version, ENCRYPTED_FORMAT_VERSION);
    let encryption = m.encryption.as_ref().unwrap();
    assert_eq!(
        (encryption.cipher.as_str(), encryption.key_check.as_str()),
        ("aes-256-gcm", key(&backend).check())
    );
    assert_eq!(read_chunks(&repo, ID, "base.tar").await, data);
    assert_eq!(repo.read_file(ID, "backup_manifest").await.unwrap(), MARKER);
    verify(&repo, ID).await.unwrap();
}

pub async fn a_wrong_key_is_refused_as_corrupt(make: MakeBackend) {
    let (backend, repo) = repo(make);
    three_chunk_backup(&repo, ID).await;
    let wrong = plain(&backend).with_key(other_key());
    let manifest = path(ID, "manifest.json");
    assert_corrupt_at(wrong.manifest(ID).await, &manifest);
    assert_corrupt_at(verify(&wrong, ID).await, &manifest);
    assert_corrupt_at(
        wrong.open_archive(ID, "base.tar").await.map(drop),
        &manifest,
    );
    assert_corrupt_at(wrong.read_file(ID, "backup_manifest").await, &manifest);
    // The wrong key still lists the set (for cleanup) and may write its own.
    assert_eq!(wrong.list_backup_ids().await.unwrap(), [ID]);
    verify(&repo, ID).await.unwrap();
}

pub async fn a_missing_or_unexpected_key_is_refused_clearly(make: MakeBackend) {
    let (backend, repo) = repo(make);
    three_chunk_backup(&repo, ID).await;
    let unkeyed = plain(&backend);
    let says = ["encrypted", "manifest.json", "repository key"];
    assert_invalid_config(unkeyed.manifest(ID).await, &says);
    assert_invalid_config(verify(&unkeyed, ID).await, &says);
    assert_invalid_config(unkeyed.open_archive(ID, "base.tar").await.map(drop), &says);

    // A set written without the key is refused by the keyed repository, so nobody can slip
    // a plaintext manifest in place of a sealed one.
    three_chunk_backup(&unkeyed, "plain").await;
    let says = ["not encrypted", "repository key"];
    assert_invalid_config(repo.manifest("plain").await, &says);
    let sealed = read_object(&backend.op, ID, "manifest.json").await;
    let forged = read_object(&backend.op, "plain", "manifest.json").await;
    assert_ne!(sealed, forged);
    write_object(&backend.op, ID, "manifest.json", forged).await;
    assert_invalid_config(repo.manifest(ID).await, &says);
}

pub async fn every_tampered_object_is_corrupt_by_name(make: MakeBackend) {
    let (backend, repo) = repo(make);
    three_chunk_backup(&repo, ID).await;
    let op = &backend.op;
    for object in objects(op, ID).await {
        let good = read_object(op, ID, &object).await;
        let mut bad = good.clone();
        if object == "manifest.json" {
            // A changed hex digit of the sealed manifest (the envelope still parses).
            let text = String::from_utf8(good.clone()).unwrap();
            let at = text.find("\"sealed\": \"").unwrap() + 40;
            bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        } else {
            // A byte of the ciphertext, past the header.
            let at = good.len() - 20;
            bad[at] ^= 0x04;
        }
        write_object(op, ID, &object, bad).await;
        assert_corrupt_at(verify(&repo, ID).await, &path(ID, &object));
        write_object(op, ID, &object, good).await;
        verify(&repo, ID).await.unwrap();
    }
}

pub async fn objects_moved_to_another_path_are_corrupt(make: MakeBackend) {
    let (backend, repo) = repo(make);
    let op = &backend.op;
    three_chunk_backup(&repo, "a1").await;
    three_chunk_backup(&repo, "b2").await;
    // b2's manifest (same data, same key) under a1's name.
    let moved = read_object(op, "b2", "manifest.json").await;
    write_object(op, "a1", "manifest.json", moved).await;
    assert_corrupt_at(repo.manifest("a1").await, &path("a1", "manifest.json"));
    verify(&repo, "b2").await.unwrap();
}

pub async fn wal_objects_are_sealed_and_bound_to_their_key(make: MakeBackend) {
    let (backend, repo) = repo(make);
    let (a, b) = (random(20_000, 1), random(20_000, 2));
    let wa = repo
        .put_wal("c1", "000000010000000000000001", a.clone())
        .await
        .unwrap();
    let wb = repo
        .put_wal("c1", "000000010000000000000002", b.clone())
        .await
        .unwrap();
    assert_eq!(
        wa.stored_size,
        backend.op.stat(&wa.key).await.unwrap().content_length()
    );
    assert_eq!(
        repo.read_wal(&wa.key, wa.raw_size, &wa.digest)
            .await
            .unwrap(),
        a
    );

    // Swapped objects (each with its own, valid sealing) do not open under the other key.
    let (sa, sb) = (
        backend.op.read(&wa.key).await.unwrap().to_vec(),
        backend.op.read(&wb.key).await.unwrap().to_vec(),
    );
    backend.op.write(&wa.key, sb).await.unwrap();
    backend.op.write(&wb.key, sa.clone()).await.unwrap();
    assert_corrupt_at(
        repo.read_wal(&wa.key, wb.raw_size, &wb.digest).await,
        &wa.key,
    );
    backend.op.write(&wa.key, sa).await.unwrap();

    let wrong = plain(&backend).with_key(other_key());
    assert_corrupt_at(
        wrong.read_wal(&wa.key, wa.raw_size, &wa.digest).await,
        &wa.key,
    );
    let says = ["encrypted", "repository key"];
    assert_invalid_config(
        plain(&backend)
            .read_wal(&wa.key, wa.raw_size, &wa.digest)
            .await,
        &says,
    );
    assert_eq!(
        repo.read_wal(&wa.key, wa.raw_size, &wa.digest)
            .await
            .unwrap(),
        a
    );
}
