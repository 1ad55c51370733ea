//! The storage backends the contract runs on. A backend is a function returning a fresh,
//! empty `Backend`; the S3 issue adds one here and one line in `main.rs`.

use opendal::Operator;

/// A fresh, empty storage, and whatever must live as long as it.
pub struct Backend {
    pub op: Operator,
    _keep: Option<tempfile::TempDir>,
}

/// A local directory, as `Repo::open_fs` uses (renames the manifest into place).
pub fn fs() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let op = Operator::new(opendal::services::Fs::default().root(root.to_str().unwrap())).unwrap();
    Backend {
        op,
        _keep: Some(dir),
    }
}

/// opendal's in-memory store: an object store without rename or directories, like S3.
pub fn memory() -> Backend {
    Backend {
        op: Operator::new(opendal::services::Memory::default()).unwrap(),
        _keep: None,
    }
}
