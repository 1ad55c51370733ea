//! polarbackup's backup repository: chunked, zstd-compressed, checksummed backups on opendal storage.
//!
//! Layout under the repository root (see `layout`):
//! `backups/<id>/manifest.json` (ours, written last and atomically),
//! `backups/<id>/<archive>/<seq:08>.zst` (chunks of a tar stream) and
//! `backups/<id>/files/<name>` (small side files such as PostgreSQL's `backup_manifest`), and
//! `wal/<cluster>/<name>.zst`, the archived WAL (`wal`).
//! A backup exists exactly when its manifest does; everything else is orphan data for cleanup.
//!
//! `Repo::new` takes any opendal `Operator` (`Repo::open_fs` is the local directory;
//! `Repo::open_url` opens a `RepoUrl`, `file://` or `s3://`, the latter with retries and
//! timeouts, see `remote`); the contract suite in `tests/contract/` states what every backend
//! must give, and runs on SeaweedFS for S3.
//!
//! `Repo::with_key` makes an encrypted repository (`crypt`): every object it writes (chunks,
//! side files, manifests, WAL) is sealed with AES-256-GCM, bound to its path, and the
//! manifest records the cipher and a key check, so a missing or wrong key is refused clearly.

mod codec;
mod config;
mod crypt;
mod direct;
mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod layout;
mod manifest;
mod ordered;
mod pool;
mod reader;
mod remote;
mod repo;
mod url;
mod wal;
mod writer;

pub use codec::Checksum;
pub use config::{RepoConfig, MAX_CHUNK_SIZE};
pub use crypt::{RepoKey, MIN_KEY_LEN};
pub use direct::{set_direct, write_direct, AlignedBuf, DIRECT_ALIGN};
pub use error::RepoError;
pub use manifest::{
    ArchiveEntry, ChunkEntry, Compression, Encryption, FileEntry, Manifest, Totals,
    ENCRYPTED_FORMAT_VERSION, FORMAT_VERSION, WRONG_KEY,
};
pub use reader::ArchiveReader;
pub use remote::{local_layers, remote_layers, IO_TIMEOUT, MAX_RETRIES, REQUEST_TIMEOUT};
pub use repo::{Repo, VerifyReport};
pub use url::{RepoUrl, S3Credentials, DEFAULT_REGION};
pub use wal::{StoredWal, MAX_WAL_OBJECT};
pub use writer::BackupWriter;
