//! `verify` and reads catch every kind of damage and name the damaged object.

mod common;

use std::path::Path;

use common::*;
use polarbackup_repo::{Repo, RepoError};

const ID: &str = "b1";

async fn setup() -> (tempfile::TempDir, Repo, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::open_fs(dir.path(), cfg(1024, 2)).unwrap();
    let (_, data) = three_chunk_backup(&repo, ID).await;
    repo.verify(ID, &mut |_, _| {}).await.unwrap();
    (dir, repo, data)
}

/// Asserts `verify` fails with `Corrupt` naming `object` (relative to the backup directory).
async fn assert_corrupt(repo: &Repo, object: &str) {
    let want = format!("backups/{ID}/{object}");
    match repo.verify(ID, &mut |_, _| {}).await {
        Err(RepoError::Corrupt {
            object: got,
            reason,
        }) => {
            assert_eq!(got, want, "reason: {reason}")
        }
        other => panic!("expected Corrupt {{ {want} }}, got {other:?}"),
    }
}

fn chunk(root: &Path, seq: usize) -> std::path::PathBuf {
    object_file(root, ID, &format!("base.tar/{seq:08}.zst"))
}

fn edit_manifest(root: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = object_file(root, ID, "manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[tokio::test]
async fn flipped_byte() {
    let (dir, repo, _) = setup().await;
    let mut bytes = std::fs::read(chunk(dir.path(), 1)).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(chunk(dir.path(), 1), bytes).unwrap();
    assert_corrupt(&repo, "base.tar/00000001.zst").await;
    // Reading fails the same way, and the stream never reaches a clean EOF.
    let err = read_stream(&repo, ID, "base.tar").await.unwrap_err();
    assert!(err.to_string().contains("00000001.zst"), "{err}");
}

#[tokio::test]
async fn truncated_and_extended_objects() {
    let (dir, repo, _) = setup().await;
    let bytes = std::fs::read(chunk(dir.path(), 2)).unwrap();
    std::fs::write(chunk(dir.path(), 2), &bytes[..bytes.len() - 1]).unwrap();
    assert_corrupt(&repo, "base.tar/00000002.zst").await;
    std::fs::write(chunk(dir.path(), 2), [&bytes[..], b"tail"].concat()).unwrap();
    assert_corrupt(&repo, "base.tar/00000002.zst").await;
    std::fs::write(chunk(dir.path(), 2), b"").unwrap();
    assert_corrupt(&repo, "base.tar/00000002.zst").await;
}

#[tokio::test]
async fn missing_object() {
    let (dir, repo, _) = setup().await;
    std::fs::remove_file(chunk(dir.path(), 0)).unwrap();
    assert_corrupt(&repo, "base.tar/00000000.zst").await;
}

#[tokio::test]
async fn swapped_chunks() {
    let (dir, repo, _) = setup().await;
    let (a, b) = (chunk(dir.path(), 0), chunk(dir.path(), 1));
    let tmp = dir.path().join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    assert_corrupt(&repo, "base.tar/00000000.zst").await;

    // Swapping the manifest entries' checksums along with the objects passes every chunk
    // check; the whole-archive hash still catches it.
    edit_manifest(dir.path(), |m| {
        let chunks = m["archives"][0]["chunks"].as_array_mut().unwrap();
        for key in ["raw_hash", "stored_hash", "stored_size"] {
            let first = chunks[0][key].clone();
            chunks[0][key] = chunks[1][key].clone();
            chunks[1][key] = first;
        }
    });
    assert_corrupt(&repo, "base.tar").await;
}

#[tokio::test]
async fn tampered_manifest_hashes() {
    let (dir, repo, _) = setup().await;
    let good = std::fs::read(object_file(dir.path(), ID, "manifest.json")).unwrap();
    let flip = |h: &serde_json::Value| {
        let h = h.as_str().unwrap();
        let first = if h.starts_with('0') { "1" } else { "0" };
        serde_json::Value::from(format!("{first}{}", &h[1..]))
    };

    edit_manifest(dir.path(), |m| {
        m["archives"][0]["chunks"][2]["raw_hash"] = flip(&m["archives"][0]["chunks"][2]["raw_hash"])
    });
    assert_corrupt(&repo, "base.tar/00000002.zst").await;

    std::fs::write(object_file(dir.path(), ID, "manifest.json"), &good).unwrap();
    edit_manifest(dir.path(), |m| {
        m["archives"][0]["raw_hash"] = flip(&m["archives"][0]["raw_hash"])
    });
    assert_corrupt(&repo, "base.tar").await;

    std::fs::write(object_file(dir.path(), ID, "manifest.json"), &good).unwrap();
    edit_manifest(dir.path(), |m| {
        m["files"][0]["stored_hash"] = flip(&m["files"][0]["stored_hash"])
    });
    assert_corrupt(&repo, "files/backup_manifest").await;
    assert!(matches!(
        repo.read_file(ID, "backup_manifest").await,
        Err(RepoError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn inconsistent_or_hostile_manifests_do_not_load() {
    let (dir, repo, _) = setup().await;
    let path = object_file(dir.path(), ID, "manifest.json");
    let good = std::fs::read(&path).unwrap();
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
        std::fs::write(&path, &good).unwrap();
        edit_manifest(dir.path(), *edit);
        match repo.manifest(ID).await {
            Err(RepoError::Corrupt { object, .. }) => {
                assert_eq!(object, format!("backups/{ID}/manifest.json"), "edit {i}")
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
        std::fs::write(&path, garbage).unwrap();
        assert!(
            matches!(repo.manifest(ID).await, Err(RepoError::Corrupt { .. })),
            "{garbage:?}"
        );
    }
}
