//! The metadata store: one trait, [`Store`], and its embedded SQLite implementation.

mod error;
mod ids;
mod migrations;
mod records;
mod sqlite;

pub use error::StoreError;
pub use records::{AccessKey, Account, Cluster, JobFilter, NewCluster};
pub use sqlite::SqliteStore;

use jiff::Timestamp;
use polarbackup_model::{AccessKeyId, AccountId, BackupJob, DbClusterId, JobMode, TaskAction};

pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the service persists about tenants and jobs. Implementations must be safe to
/// share between the HTTP server, workers and admin commands running in other processes.
pub trait Store: Send + Sync {
    /// Cheap round trip, for health checks.
    fn ping(&self) -> Result<()>;

    fn create_account(&self, name: Option<&str>, now: Timestamp) -> Result<Account>;
    fn account(&self, id: &AccountId) -> Result<Option<Account>>;

    /// Creates a key with a fresh random id and secret.
    fn create_key(&self, account: &AccountId, now: Timestamp) -> Result<AccessKey>;
    /// Creates a key with the given id and secret (the root key from the environment).
    fn import_key(&self, key: &AccessKey) -> Result<()>;
    fn key(&self, id: &str) -> Result<Option<AccessKey>>;
    fn set_key_active(&self, id: &AccessKeyId, active: bool) -> Result<()>;

    fn create_cluster(&self, cluster: &NewCluster, now: Timestamp) -> Result<Cluster>;
    fn cluster(&self, id: &DbClusterId) -> Result<Option<Cluster>>;

    /// Records a new job in `NoStart`, with an id larger than every id handed out before.
    fn insert_job(
        &self,
        cluster: &DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Result<BackupJob>;
    /// Persists a job after a state-machine step. Refuses to move a stored job backwards.
    fn update_job(&self, job: &BackupJob) -> Result<()>;
    /// Jobs of one cluster, newest first.
    fn list_jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>>;

    /// Records a signature nonce for a key. Returns false when it was already used and has not
    /// expired. Expired nonces are purged as a side effect.
    fn use_nonce(
        &self,
        key: &str,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
}
