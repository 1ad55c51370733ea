//! What the contract cases share: a repository over a backend, and object access through
//! the `Operator` alone (the layout is `backups/<id>/<object>`, as `lib.rs` documents it).

use opendal::{ErrorKind, Operator};
use polarbackup_repo::{Repo, RepoError};

use crate::backends::Backend;
use crate::common::cfg;
use crate::faults::Faults;

/// The id most cases write.
pub const ID: &str = "b1";

/// A backend's constructor; every case takes one.
pub type MakeBackend = fn() -> Backend;

/// A repository with 1 KiB chunks over a fresh backend.
pub fn repo(make: MakeBackend) -> (Backend, Repo) {
    let backend = make();
    let repo = backend.repo(cfg(1024, 2)).unwrap();
    (backend, repo)
}

/// A repository over a fresh backend wrapped in `faults`; the returned operator is the
/// wrapped one.
pub fn faulty(make: MakeBackend, faults: &Faults, parallelism: usize) -> (Backend, Operator, Repo) {
    let backend = make();
    let op = backend.op.clone().layer(faults.layer());
    let repo = backend.repo_on(op.clone(), cfg(1024, parallelism)).unwrap();
    (backend, op, repo)
}

pub fn path(id: &str, object: &str) -> String {
    format!("backups/{id}/{object}")
}

/// Every object stored under the backup's prefix (relative to it), sorted.
pub async fn objects(op: &Operator, id: &str) -> Vec<String> {
    let dir = format!("backups/{id}/");
    let entries = match op.list_with(&dir).recursive(true).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("listing {dir}: {e}"),
    };
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| e.metadata().is_file())
        .filter_map(|e| e.path().strip_prefix(&dir).map(str::to_owned))
        .collect();
    names.sort();
    names
}

pub async fn read_object(op: &Operator, id: &str, object: &str) -> Vec<u8> {
    op.read(&path(id, object)).await.unwrap().to_vec()
}

pub async fn write_object(op: &Operator, id: &str, object: &str, data: Vec<u8>) {
    op.write(&path(id, object), data).await.unwrap();
}

/// Edits the stored manifest as JSON; an encrypted one is opened with the backend's key and
/// sealed again, as only a holder of the key could.
pub async fn edit_manifest(backend: &Backend, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let op = &backend.op;
    let stored = read_object(op, id, "manifest.json").await;
    let Some(key) = &backend.key else {
        let mut v: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        edit(&mut v);
        let json = serde_json::to_vec_pretty(&v).unwrap();
        return write_object(op, id, "manifest.json", json).await;
    };
    let at = path(id, "manifest.json");
    let mut envelope: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    let sealed = hex::decode(envelope["sealed"].as_str().unwrap()).unwrap();
    let json = zstd::stream::decode_all(&key.open(&at, &sealed).unwrap()[..]).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    edit(&mut v);
    let json = zstd::stream::encode_all(&serde_json::to_vec(&v).unwrap()[..], 1).unwrap();
    envelope["sealed"] = hex::encode(key.seal(&at, &json).unwrap()).into();
    if let Some(id) = v.get("backup_id") {
        envelope["backup_id"] = id.clone();
    }
    let stored = serde_json::to_vec_pretty(&envelope).unwrap();
    write_object(op, id, "manifest.json", stored).await;
}

pub async fn verify(repo: &Repo, id: &str) -> Result<polarbackup_repo::VerifyReport, RepoError> {
    repo.verify(id, &mut |_, _| {}).await
}

/// Asserts that the set has no manifest and so cannot be read or verified.
pub async fn assert_unusable(repo: &Repo, id: &str) {
    assert_eq!(repo.manifest(id).await.unwrap(), None, "{id}");
    assert!(
        matches!(verify(repo, id).await, Err(RepoError::NotFound(_))),
        "{id}"
    );
    assert!(
        matches!(
            repo.open_archive(id, "base.tar").await,
            Err(RepoError::NotFound(_))
        ),
        "{id}"
    );
    assert!(
        matches!(
            repo.read_file(id, "backup_manifest").await,
            Err(RepoError::NotFound(_))
        ),
        "{id}"
    );
}
