//! The storage backends the contract runs on. A backend is a function returning a fresh,
//! empty `Backend`; a new one is a function here and one line in `main.rs`.

use std::sync::OnceLock;

use opendal::Operator;
use polarbackup_repo::{remote_layers, RepoUrl, S3Credentials};
use polarbackup_testkit::s3::{SeaweedFs, REGION};

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

/// One SeaweedFS for the whole test binary (killed by its watchdog when the binary exits).
pub fn seaweed() -> &'static SeaweedFs {
    static SEAWEED: OnceLock<SeaweedFs> = OnceLock::new();
    SEAWEED.get_or_init(SeaweedFs::start)
}

/// A repository URL under a key prefix of a fresh bucket of the shared SeaweedFS.
pub fn s3_url() -> RepoUrl {
    let weed = seaweed();
    RepoUrl::S3 {
        bucket: weed.create_bucket("contract"),
        prefix: "pb/repo".into(),
        endpoint: Some(weed.endpoint()),
        region: REGION.into(),
    }
}

pub fn s3_credentials() -> S3Credentials {
    let (id, secret) = seaweed().credentials();
    S3Credentials::new(id, secret)
}

/// S3 on SeaweedFS, with signatures checked and the retry and timeout layers
/// `Repo::open_url` uses: an object store without rename or directories.
pub fn s3() -> Backend {
    let op = s3_url().storage(Some(&s3_credentials())).unwrap();
    Backend {
        op: remote_layers(op),
        _keep: None,
    }
}
