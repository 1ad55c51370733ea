//! Helpers shared by the repository integration tests: configs, test data, a sample backup.
#![allow(dead_code)] // each test binary uses a different subset

use polarbackup_repo::{Manifest, Repo, RepoConfig};
use rand::{RngCore, SeedableRng};
use tokio::io::AsyncReadExt;

pub fn cfg(chunk_size: usize, parallelism: usize) -> RepoConfig {
    RepoConfig {
        chunk_size,
        zstd_level: 1,
        parallelism,
        ..RepoConfig::default()
    }
}

pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

pub fn compressible(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"polarbackup "[i % 12]).collect()
}

/// The creation time the tests give their backups (the repository never reads a clock).
pub const CREATED_AT: jiff::Timestamp = jiff::Timestamp::constant(1_700_000_000, 0);

/// Writes `data` in uneven pieces so chunk boundaries fall inside writes.
pub async fn write_archive(
    w: &mut polarbackup_repo::BackupWriter,
    name: &str,
    location: Option<&str>,
    data: &[u8],
) {
    w.start_archive(name, location).await.unwrap();
    let mut rest = data;
    let mut piece = 1;
    while !rest.is_empty() {
        let n = piece.min(rest.len());
        w.write(&rest[..n]).await.unwrap();
        rest = &rest[n..];
        piece = piece * 3 + 7;
    }
    w.finish_archive().await.unwrap();
}

/// A committed backup with one archive of three full random chunks of 1 KiB and one file.
pub async fn three_chunk_backup(repo: &Repo, id: &str) -> (Manifest, Vec<u8>) {
    let data = random(3 * 1024, 7);
    let mut w = repo.begin(id, CREATED_AT).await.unwrap();
    write_archive(&mut w, "base.tar", None, &data).await;
    w.put_file(
        "backup_manifest",
        b"{\"PostgreSQL-Backup-Manifest-Version\": 1}",
    )
    .await
    .unwrap();
    let manifest = w
        .commit(serde_json::json!({"start_lsn": "0/2000028"}))
        .await
        .unwrap();
    (manifest, data)
}

pub async fn read_chunks(repo: &Repo, id: &str, archive: &str) -> Vec<u8> {
    let mut reader = repo.open_archive(id, archive).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

pub async fn read_stream(repo: &Repo, id: &str, archive: &str) -> std::io::Result<Vec<u8>> {
    let mut reader = repo.open_archive(id, archive).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    Ok(out)
}
