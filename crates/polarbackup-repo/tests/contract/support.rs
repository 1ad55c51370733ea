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
    let repo = Repo::new(backend.op.clone(), cfg(1024, 2)).unwrap();
    (backend, repo)
}

/// A repository over a fresh backend wrapped in `faults`; the returned operator is the
/// wrapped one.
pub fn faulty(make: MakeBackend, faults: &Faults, parallelism: usize) -> (Backend, Operator, Repo) {
    let backend = make();
    let op = backend.op.clone().layer(faults.layer());
    let repo = Repo::new(op.clone(), cfg(1024, parallelism)).unwrap();
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

pub async fn edit_manifest(op: &Operator, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_slice(&read_object(op, id, "manifest.json").await).unwrap();
    edit(&mut v);
    write_object(
        op,
        id,
        "manifest.json",
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .await;
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
