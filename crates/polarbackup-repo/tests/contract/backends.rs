//! The storage backends the contract runs on. A backend is a function returning a fresh,
//! empty `Backend`; a new one is a function here and one line in `main.rs`. Each storage
//! also runs encrypted (`*_encrypted`): the same cases through a repository with a key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use opendal::Operator;
use polarbackup_repo::{
    remote_layers, Repo, RepoConfig, RepoError, RepoKey, RepoUrl, S3Credentials,
};
use polarbackup_testkit::s3::{SeaweedFs, REGION};

/// A fresh, empty storage, and whatever must live as long as it.
pub struct Backend {
    pub op: Operator,
    /// Set: repositories on this backend are encrypted with it.
    pub key: Option<RepoKey>,
    _keep: Option<tempfile::TempDir>,
}

impl Backend {
    /// A repository on `op` (this backend's operator, perhaps under a layer), with the
    /// backend's key if it has one.
    pub fn repo_on(&self, op: Operator, cfg: RepoConfig) -> Result<Repo, RepoError> {
        let repo = Repo::new(op, cfg)?;
        Ok(match &self.key {
            Some(key) => repo.with_key(key.clone()),
            None => repo,
        })
    }

    /// A repository on this backend.
    pub fn repo(&self, cfg: RepoConfig) -> Result<Repo, RepoError> {
        self.repo_on(self.op.clone(), cfg)
    }
}

/// The key of the encrypted variants.
pub fn test_key() -> RepoKey {
    RepoKey::from_bytes(b"contract-suite repository key, 32+ bytes long").unwrap()
}

fn encrypted(backend: Backend) -> Backend {
    Backend {
        key: Some(test_key()),
        ..backend
    }
}

pub fn fs_encrypted() -> Backend {
    encrypted(fs())
}

pub fn memory_encrypted() -> Backend {
    encrypted(memory())
}

pub fn s3_encrypted() -> Backend {
    encrypted(s3())
}

/// A local directory, as `Repo::open_fs` uses (renames the manifest into place).
pub fn fs() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let op = Operator::new(opendal::services::Fs::default().root(root.to_str().unwrap())).unwrap();
    Backend {
        op,
        key: None,
        _keep: Some(dir),
    }
}

/// opendal's in-memory store: an object store without rename or directories, like S3.
pub fn memory() -> Backend {
    Backend {
        op: Operator::new(opendal::services::Memory::default()).unwrap(),
        key: None,
        _keep: None,
    }
}

/// One SeaweedFS for the whole test binary (killed by its watchdog when the binary exits),
/// and its one bucket.
pub fn seaweed() -> &'static (SeaweedFs, String) {
    static SEAWEED: OnceLock<(SeaweedFs, String)> = OnceLock::new();
    SEAWEED.get_or_init(|| {
        let weed = SeaweedFs::start();
        let bucket = weed.create_bucket("contract");
        (weed, bucket)
    })
}

/// A repository URL on a fresh key prefix of the shared bucket (a new bucket per case would
/// cost SeaweedFS a new collection with volumes of its own each time).
pub fn s3_url() -> RepoUrl {
    static CASES: AtomicUsize = AtomicUsize::new(0);
    let (weed, bucket) = seaweed();
    RepoUrl::S3 {
        bucket: bucket.clone(),
        prefix: format!("pb/case-{}", CASES.fetch_add(1, Ordering::SeqCst)),
        endpoint: Some(weed.endpoint()),
        region: REGION.into(),
    }
}

pub fn s3_credentials() -> S3Credentials {
    let (id, secret) = seaweed().0.credentials();
    S3Credentials::new(id, secret)
}

/// S3 on SeaweedFS, with signatures checked and the retry and timeout layers
/// `Repo::open_url` uses: an object store without rename, whose folders outlive their objects.
pub fn s3() -> Backend {
    let op = s3_url().storage(Some(&s3_credentials())).unwrap();
    Backend {
        op: remote_layers(op),
        key: None,
        _keep: None,
    }
}
