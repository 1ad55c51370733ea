//! `verify` reports what it checked, and it and reads catch every kind of damage and name the
//! damaged object. Damage is done through the `Operator`, as any writer to the storage could.

use opendal::Operator;
use polarbackup_repo::{Repo, RepoError};

use crate::common::*;
use crate::support::*;

async fn setup(make: MakeBackend) -> (crate::backends::Backend, Repo, Vec<u8>) {
    let (backend, repo) = repo(make);
    let (_, data) = three_chunk_backup(&repo, ID).await;
    verify(&repo, ID).await.unwrap();
    (backend, repo, data)
}

/// Asserts `verify` fails with `Corrupt` naming `object` (relative to the backup directory).
async fn assert_corrupt(repo: &Repo, object: &str) {
    let want = path(ID, object);
    match verify(repo, ID).await {
        Err(RepoError::Corrupt {
            object: got,
            reason,
        }) => {
            assert_eq!(got, want, "reason: {reason}")
        }
        other => panic!("expected Corrupt {{ {want} }}, got {other:?}"),
    }
}

fn chunk(seq: usize) -> String {
    format!("base.tar/{seq:08}.zst")
}

pub async fn verify_passes_and_reports_sizes(make: MakeBackend) {
    let (backend, repo) = repo(make);
    three_chunk_backup(&repo, ID).await;
    let m = repo.manifest(ID).await.unwrap().unwrap();
    let mut seen = Vec::new();
    let report = repo
        .verify(ID, &mut |done, total| seen.push((done, total)))
        .await
        .unwrap();
    assert_eq!(report.backup_id, ID);
    assert_eq!((report.archives, report.chunks, report.files), (1, 3, 1));
    assert_eq!(report.raw_bytes, m.totals.raw_bytes);
    assert_eq!(report.raw_bytes, 3 * 1024 + 41);
    assert_eq!(report.stored_bytes, m.totals.stored_bytes);
    // The reported size is what the storage holds, object by object.
    let mut stored = 0;
    for object in objects(&backend.op, ID).await {
        if object != "manifest.json" {
            stored += backend
                .op
                .stat(&path(ID, &object))
                .await
                .unwrap()
                .content_length();
        }
    }
    assert_eq!(report.stored_bytes, stored);
    let total = report.stored_bytes;
    assert_eq!(seen.first(), Some(&(0, total)));
    assert_eq!(seen.last(), Some(&(total, total)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
}

pub async fn verify_catches_a_flipped_byte(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    let mut bytes = read_object(&backend.op, ID, &chunk(1)).await;
    bytes[100] ^= 0x01;
    write_object(&backend.op, ID, &chunk(1), bytes).await;
    assert_corrupt(&repo, &chunk(1)).await;
    // Reading fails the same way, and the stream never reaches a clean EOF.
    let err = read_stream(&repo, ID, "base.tar").await.unwrap_err();
    assert!(err.to_string().contains("00000001.zst"), "{err}");
}

pub async fn verify_catches_short_and_long_objects(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    let op = &backend.op;
    let bytes = read_object(op, ID, &chunk(2)).await;
    write_object(op, ID, &chunk(2), bytes[..bytes.len() - 1].to_vec()).await;
    assert_corrupt(&repo, &chunk(2)).await;
    write_object(op, ID, &chunk(2), [&bytes[..], b"tail"].concat()).await;
    assert_corrupt(&repo, &chunk(2)).await;
    write_object(op, ID, &chunk(2), Vec::new()).await;
    assert_corrupt(&repo, &chunk(2)).await;
}

pub async fn verify_catches_a_missing_object(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    backend.op.delete(&path(ID, &chunk(0))).await.unwrap();
    assert_corrupt(&repo, &chunk(0)).await;
    backend
        .op
        .delete(&path(ID, "files/backup_manifest"))
        .await
        .unwrap();
    assert!(matches!(
        repo.read_file(ID, "backup_manifest").await,
        Err(RepoError::Corrupt { .. })
    ));
}

async fn swap(op: &Operator, a: &str, b: &str) {
    let (da, db) = (read_object(op, ID, a).await, read_object(op, ID, b).await);
    write_object(op, ID, a, db).await;
    write_object(op, ID, b, da).await;
}

pub async fn verify_catches_swapped_chunks(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    swap(&backend.op, &chunk(0), &chunk(1)).await;
    assert_corrupt(&repo, &chunk(0)).await;

    // Swapping the manifest entries' checksums along with the objects passes every chunk
    // check; the whole-archive hash still catches it.
    edit_manifest(&backend, ID, |m| {
        let chunks = m["archives"][0]["chunks"].as_array_mut().unwrap();
        for key in ["raw_hash", "stored_hash", "stored_size"] {
            let first = chunks[0][key].clone();
            chunks[0][key] = chunks[1][key].clone();
            chunks[1][key] = first;
        }
    })
    .await;
    // Encrypted, chunk 1's object does not open at chunk 0's path; plain, the order is caught.
    let at = match backend.key {
        Some(_) => chunk(0),
        None => "base.tar".into(),
    };
    assert_corrupt(&repo, &at).await;
}

pub async fn verify_catches_tampered_manifest_hashes(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    let op = &backend.op;
    let good = read_object(op, ID, "manifest.json").await;
    let flip = |h: &serde_json::Value| {
        let h = h.as_str().unwrap();
        let first = if h.starts_with('0') { "1" } else { "0" };
        serde_json::Value::from(format!("{first}{}", &h[1..]))
    };

    edit_manifest(&backend, ID, |m| {
        m["archives"][0]["chunks"][2]["raw_hash"] = flip(&m["archives"][0]["chunks"][2]["raw_hash"])
    })
    .await;
    assert_corrupt(&repo, &chunk(2)).await;

    write_object(op, ID, "manifest.json", good.clone()).await;
    edit_manifest(&backend, ID, |m| {
        m["archives"][0]["raw_hash"] = flip(&m["archives"][0]["raw_hash"])
    })
    .await;
    assert_corrupt(&repo, "base.tar").await;

    write_object(op, ID, "manifest.json", good).await;
    edit_manifest(&backend, ID, |m| {
        m["files"][0]["stored_hash"] = flip(&m["files"][0]["stored_hash"])
    })
    .await;
    assert_corrupt(&repo, "files/backup_manifest").await;
    assert!(matches!(
        repo.read_file(ID, "backup_manifest").await,
        Err(RepoError::Corrupt { .. })
    ));
}

pub async fn inconsistent_or_hostile_manifests_do_not_load(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    let op = &backend.op;
    let good = read_object(op, ID, "manifest.json").await;
    let edits: [fn(&mut serde_json::Value); 9] = [
        |m| m["totals"]["raw_bytes"] = 1.into(),
        |m| m["archives"][0]["raw_size"] = 5.into(),
        |m| m["archives"][0]["chunks"][0]["object"] = "../../etc/passwd".into(),
        |m| m["files"][0]["name"] = "../x".into(),
        |m| m["archives"][0]["chunks"][0]["raw_size"] = (1u64 << 40).into(),
        |m| m["archives"][0]["chunks"][0]["raw_hash"] = "xyz".into(),
        |m| m["backup_id"] = "other".into(),
        |m| m["compression"]["algorithm"] = "lz4".into(),
        |m| m["chunk_size"] = "big".into(),
    ];
    for (i, edit) in edits.iter().enumerate() {
        write_object(op, ID, "manifest.json", good.clone()).await;
        edit_manifest(&backend, ID, *edit).await;
        match repo.manifest(ID).await {
            Err(RepoError::Corrupt { object, .. }) => {
                assert_eq!(object, path(ID, "manifest.json"), "edit {i}")
            }
            other => panic!("edit {i}: expected Corrupt, got {other:?}"),
        }
    }
    for garbage in [
        &b""[..],
        b"{",
        b"\x00\xff",
        b"[]",
        b"{\"format_version\": \"1\"}",
    ] {
        write_object(op, ID, "manifest.json", garbage.to_vec()).await;
        assert!(
            matches!(repo.manifest(ID).await, Err(RepoError::Corrupt { .. })),
            "{garbage:?}"
        );
    }
}

/// `confirm` (a new backup's Checking phase, after its writer read every object back) finds
/// each object in place with its size, and names one that is missing or short.
pub async fn confirm_names_a_missing_or_short_object(make: MakeBackend) {
    let (backend, repo, _) = setup(make).await;
    let report = repo.confirm(ID, &mut |_, _| {}).await.unwrap();
    assert_eq!((report.archives, report.chunks, report.files), (1, 3, 1));
    let short = read_object(&backend.op, ID, &chunk(1)).await;
    write_object(
        &backend.op,
        ID,
        &chunk(1),
        short[..short.len() - 1].to_vec(),
    )
    .await;
    match repo.confirm(ID, &mut |_, _| {}).await {
        Err(RepoError::Corrupt { object, .. }) => assert_eq!(object, path(ID, &chunk(1))),
        other => panic!("expected the short chunk named, got {other:?}"),
    }
    backend.op.delete(&path(ID, &chunk(2))).await.unwrap();
    write_object(&backend.op, ID, &chunk(1), short).await;
    match repo.confirm(ID, &mut |_, _| {}).await {
        Err(RepoError::Corrupt { object, reason }) => {
            assert_eq!(object, path(ID, &chunk(2)));
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected the missing chunk named, got {other:?}"),
    }
}
