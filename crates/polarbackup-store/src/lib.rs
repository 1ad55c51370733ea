//! The metadata store: small traits, one per aggregate (tenants and keys, RAM, clusters and
//! their policies, jobs, backup sets, nonces), the [`Store`] that joins them, and its two
//! implementations: embedded SQLite and PostgreSQL shared by several servers.

mod error;
mod ids;
mod migrate;
mod migrations;
mod pg;
mod records;
mod rows;
mod rules;
mod sealing;
mod sqlite;

pub use error::StoreError;
pub use migrate::{migrate_metadata, MigrationReport};
pub use pg::{PgOptions, PgStore};
pub use records::{
    Attachment, CallerRecords, ClusterDeletion, ClusterOverview, CreateJobOutcome, DeleteRefusal,
    DeletionRefusal, JobFilter, ListedCluster, ManualJobRequest, PolicyKind, ReadMark,
    RecoveryInputs, SetFilter, SetPage, StoredPolicy, WalFilter, WalPage, WalRecorded,
};
pub use rules::failed_set;
pub use sealing::{MasterKey, SealReport};
pub use sqlite::SqliteStore;

use jiff::Timestamp;
use polarbackup_model::policy::{
    BackupPolicy, FullBackupEvery, PolicyChange, RetentionOnClusterDeletion,
};
use polarbackup_model::{
    AccessKey, AccessKeyId, Account, AccountId, BackupJob, BackupJobId, BackupKind, BackupLogId,
    BackupSet, Cluster, ClusterStatus, DbClusterId, JobMode, JobStatus, LogBackupPolicy,
    LogRetention, NewCluster, NewWalObject, RamUser, RamUserId, TaskAction, WalGap, WalObject,
};

pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the service persists. Implementations must be safe to share between the HTTP
/// server, workers and admin commands running in other processes; every method is atomic
/// (one transaction), so no caller ever needs a read-then-write of its own.
pub trait Store:
    TenantStore + RamStore + ClusterStore + JobStore + SetStore + NonceStore + WalStore + Send + Sync
{
    /// Cheap round trip, for health checks.
    fn ping(&self) -> Result<()>;

    /// Whether [`Store::caller_records`], [`ClusterStore::cluster`] and
    /// [`JobStore::list_jobs`] are answered from local files in microseconds, never waiting
    /// for a write or a network (SQLite's read connections): the API then calls them on its
    /// async threads instead of handing each call to a blocking one. False by default.
    fn local_reads(&self) -> bool {
        false
    }

    /// The records every signed call reads before it is answered: access key `key` (`None`
    /// when it is not stored), its RAM user with the policies attached to them, and `cluster`
    /// when the call names one. Both backends read them in one snapshot (a key, user or policy
    /// change is seen whole or not at all) and one round trip instead of four; this default
    /// reads them one by one.
    fn caller_records(
        &self,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
    ) -> Result<Option<CallerRecords>> {
        let Some(key) = self.key(key)? else {
            return Ok(None);
        };
        let user = match &key.user {
            Some(id) => self.user(id)?,
            None => None,
        };
        let attachments = match &user {
            Some(u) => self.attachments(u)?,
            None => Vec::new(),
        };
        let cluster = match cluster {
            Some(id) => self.cluster(id)?,
            None => None,
        };
        Ok(Some(CallerRecords {
            key,
            user,
            attachments: attachments.into(),
            cluster: cluster.map(std::sync::Arc::new),
            mark: None,
        }))
    }
}

/// Accounts and their access keys.
pub trait TenantStore: Send + Sync {
    fn create_account(&self, name: Option<&str>, now: Timestamp) -> Result<Account>;
    fn account(&self, id: &AccountId) -> Result<Option<Account>>;

    /// Creates a key with a fresh random id and secret.
    fn create_key(&self, account: &AccountId, now: Timestamp) -> Result<AccessKey>;
    /// Creates a key for a RAM user, in the user's account.
    fn create_user_key(&self, user: &RamUser, now: Timestamp) -> Result<AccessKey>;
    /// Registers an RSA public key (PEM) for ACS3-RSA-SHA256, for the account or one of its
    /// RAM users. The caller checks the PEM.
    fn create_rsa_key(
        &self,
        account: &AccountId,
        user: Option<&RamUser>,
        public_key_pem: &str,
        now: Timestamp,
    ) -> Result<AccessKey>;
    /// Creates a key with the given id and secret (the root key from the environment);
    /// `Conflict` if the id is taken.
    fn import_key(&self, key: &AccessKey) -> Result<()>;
    fn key(&self, id: &AccessKeyId) -> Result<Option<AccessKey>>;
    /// Creates an account named `name` owning the HMAC key `id`, unless that key exists: one
    /// transaction, so servers starting together on one store create it once. `None` when the
    /// key existed (whatever its secret).
    fn bootstrap_account_key(
        &self,
        name: &str,
        id: &AccessKeyId,
        secret: &str,
        now: Timestamp,
    ) -> Result<Option<Account>>;
    fn set_key_active(&self, id: &AccessKeyId, active: bool) -> Result<()>;
}

/// RAM users, custom policies and their attachments.
pub trait RamStore: Send + Sync {
    /// A RAM user; names are unique within an account.
    fn create_user(&self, account: &AccountId, name: &str, now: Timestamp) -> Result<RamUser>;
    fn user(&self, id: &RamUserId) -> Result<Option<RamUser>>;
    /// Stores a custom policy (validated by the caller); names are unique within an account.
    fn create_policy(&self, policy: &StoredPolicy) -> Result<()>;
    fn list_policies(&self, account: &AccountId) -> Result<Vec<StoredPolicy>>;
    /// Attaches a policy by name; false when it was attached already. A custom policy must
    /// exist in the user's account.
    fn attach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool>;
    /// False when it was not attached.
    fn detach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool>;
    /// The policies that govern a user's calls.
    fn attachments(&self, user: &RamUser) -> Result<Vec<Attachment>>;
}

/// Clusters, their lifecycle and their backup policies, and the scheduling of automated jobs.
pub trait ClusterStore: Send + Sync {
    /// Registers a cluster with the default backup policy, whose schedule starts at `now`.
    fn create_cluster(&self, cluster: &NewCluster, now: Timestamp) -> Result<Cluster>;
    /// A cluster in any lifecycle state (a deleted one is a tombstone).
    fn cluster(&self, id: &DbClusterId) -> Result<Option<Cluster>>;
    /// The clusters of `account` the cluster APIs show, newest first: every one not `Deleted`,
    /// and a `Deleted` one the workers are still releasing ([`ListedCluster::releasing`]:
    /// sets hidden for deletion not yet removed, or WAL objects still recorded), read in one
    /// statement.
    fn account_clusters(&self, account: &AccountId) -> Result<Vec<ListedCluster>>;
    /// `Deleted` clusters that still have recorded WAL objects: what the archivers' release
    /// pass removes (with the replication slot), as `admin cluster delete` does itself.
    fn released_with_wal(&self) -> Result<Vec<Cluster>>;
    /// Starts deleting a Running cluster with `retention`, or with its policy's
    /// `BackupRetentionPolicyOnClusterDeletion` when `None`. One write transaction checks that
    /// no job is queued or running and switches the status: `ALL`/`NONE` end `Deleted` at once
    /// (sets detached or hidden for deletion), `LATEST` goes `Deleting` with a queued
    /// `TempBackupTask` whose end ([`JobStore::end_job`]) settles the deletion.
    fn begin_cluster_deletion(
        &self,
        cluster: &DbClusterId,
        retention: Option<RetentionOnClusterDeletion>,
        now: Timestamp,
    ) -> Result<std::result::Result<ClusterDeletion, DeletionRefusal>>;

    /// A cluster's backup policy (the default if never set) and its last scheduled slot.
    fn backup_policy(&self, cluster: &DbClusterId) -> Result<(BackupPolicy, Option<Timestamp>)>;
    /// Applies a partial change to a Running cluster's policy in one write transaction (so
    /// concurrent changes of different fields all survive) and returns the new policy;
    /// `Err(status)` (nothing changed) for one that is being deleted or deleted.
    fn modify_backup_policy(
        &self,
        cluster: &DbClusterId,
        change: &PolicyChange,
    ) -> Result<std::result::Result<BackupPolicy, ClusterStatus>>;
    /// Every Running cluster's policy and last slot.
    fn schedules(&self) -> Result<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>>;
    /// Queues the automated job of `slot`, of the `kind` the scheduler chose
    /// ([`polarbackup_model::policy::kind_for_slot`]), exactly once: `None` if that slot (or a
    /// later one) was already scheduled, by this process or another, or the cluster is not
    /// Running.
    fn schedule_automated_job(
        &self,
        cluster: &DbClusterId,
        slot: Timestamp,
        kind: BackupKind,
        now: Timestamp,
    ) -> Result<Option<BackupJob>>;
    /// Sets how often a Running cluster's automated backups are full (`None`: the serving
    /// server's default); `Err(status)` (nothing changed) for one being deleted or deleted.
    fn set_full_backup_every(
        &self,
        cluster: &DbClusterId,
        every: Option<FullBackupEvery>,
    ) -> Result<std::result::Result<(), ClusterStatus>>;
}

/// Backup jobs: creation, leases, progress and their end.
pub trait JobStore: Send + Sync {
    /// Records a new job in `NoStart`, with an id larger than every id handed out before.
    fn insert_job(
        &self,
        cluster: &DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Result<BackupJob>;
    /// CreateBackup: honours the cluster's status, the ClientToken and the per-cluster manual
    /// limit atomically.
    fn create_manual_job(
        &self,
        req: &ManualJobRequest,
        now: Timestamp,
        limit: u32,
    ) -> Result<CreateJobOutcome>;
    /// Persists a job after a state-machine step. `holder` is the worker that claimed it (`None`
    /// for a job no worker holds: tests and tools): the write applies only while the stored
    /// lease owner is `holder`, checked in the same transaction, else
    /// [`StoreError::LeaseLost`] and nothing changes, so a worker whose job was taken over
    /// (recovery, or another worker's claim once its lease lapsed) writes nothing more. Refuses
    /// to move a stored job backwards.
    fn update_job(&self, job: &BackupJob, holder: Option<&str>) -> Result<()>;
    /// Persists an ended job (Finished or Failed) together with the backup set it produced,
    /// fenced by `holder` as [`JobStore::update_job`] is; the job's lease ends with it. The
    /// final backup of a `LATEST` deletion also settles it: Finished releases the cluster
    /// (`Deleted`, its set detached, every other set hidden for deletion), Failed puts it back
    /// to `Running` with nothing deleted.
    fn end_job(&self, job: &BackupJob, set: Option<&BackupSet>, holder: Option<&str>)
        -> Result<()>;
    /// Jobs of one cluster, newest first.
    fn list_jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>>;
    /// [`JobStore::list_jobs`] in a call whose caller records were read at `mark`: a store
    /// that keeps reads in memory answers from them, without checking again for changes,
    /// while it still stands at `mark` (the call sees every change made before it began
    /// either way).
    fn list_jobs_read_with(
        &self,
        cluster: &DbClusterId,
        filter: &JobFilter,
        mark: Option<ReadMark>,
    ) -> Result<Vec<BackupJob>> {
        let _ = mark;
        self.list_jobs(cluster, filter)
    }
    /// How many jobs each cluster has stored, by status, in one read (for metrics); a
    /// cluster or status without jobs is left out.
    fn job_counts(&self) -> Result<Vec<(DbClusterId, JobStatus, u64)>>;
    /// Takes the lease on the oldest queued job whose cluster is not busy (a cluster being
    /// deleted included: its final backup must run).
    fn claim_job(
        &self,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupJob>>;
    /// Extends a lease; false when the worker no longer holds it.
    fn renew_lease(&self, job: BackupJobId, worker: &str, lease_until: Timestamp) -> Result<bool>;
    /// Started jobs whose lease ran out: their worker died (or stalled).
    fn abandoned_jobs(&self, now: Timestamp) -> Result<Vec<BackupJob>>;
    /// Crash recovery's takeover, before it touches the job's data: in one transaction, if job
    /// `id` is still started, not ended, and its lease lapsed at `now`, ends it Failed with
    /// `reason` and its failed set ([`failed_set`]), drops its lease (so its old worker's
    /// writes are refused from then on) and settles a `LATEST` deletion as
    /// [`JobStore::end_job`] does. Returns the failed job; `None` (nothing changed) when its
    /// worker ended or renewed it first, or another server took it over: of servers recovering
    /// a job at once, exactly one gets it.
    fn fail_abandoned_job(
        &self,
        id: BackupJobId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<BackupJob>>;
}

/// Backup sets: listing, deletion (hide, remove data, forget) and expiry.
pub trait SetStore: Send + Sync {
    /// One page of a cluster's backup sets (not detached), newest first.
    fn list_backup_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage>;
    /// One page of a released cluster's retained (detached) sets, newest first.
    fn list_detached_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage>;
    /// How many retained sets a released cluster still has: none means it is gone for good.
    fn detached_set_count(&self, cluster: &DbClusterId) -> Result<u64>;
    /// A listed (not deleting) backup set by id, whatever its cluster (detached ones too).
    fn backup_set(&self, id: BackupJobId) -> Result<Option<BackupSet>>;
    /// The listed sets of a cluster (not detached).
    fn cluster_sets(&self, cluster: &DbClusterId) -> Result<Vec<BackupSet>>;
    /// Validates every id, then hides them all; nothing changes if any id is refused. Takes a
    /// Running cluster's manual sets or a released cluster's detached sets.
    fn begin_delete_sets(
        &self,
        cluster: &DbClusterId,
        ids: &[BackupJobId],
    ) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>>;
    /// Hides expired automated sets (never detached ones); their data is removed like a
    /// deletion's.
    fn expire_sets(&self, ids: &[BackupJobId]) -> Result<()>;
    /// Sets hidden for deletion whose removal has not been confirmed.
    fn pending_deletions(&self) -> Result<Vec<BackupSet>>;
    /// Drops a hidden set once its data is gone.
    fn forget_set(&self, id: BackupJobId) -> Result<()>;
    /// Ids whose repository data must be kept: usable sets (listed, detached or being
    /// deleted), and jobs not ended. A failed set's data is never kept: whatever is stored
    /// under its id is an orphan (left by a worker that lost its lease, or a removal that
    /// failed).
    fn known_backup_ids(&self) -> Result<Vec<BackupJobId>>;

    /// Every successful set whose data is kept for restores (listed or detached, corrupt ones
    /// included; not being deleted), of every cluster, by id: what `polarbackup verify
    /// --all` re-reads.
    fn verifiable_sets(&self) -> Result<Vec<BackupSet>>;
    /// Marks a listed successful set that a re-read found corrupt: from then on it is not
    /// available (`IsAvail` 0) and never restored from, and `reason` (the object and what is
    /// wrong with it) is kept with it. A set marked before keeps its first reason. False when
    /// there is no such set (unknown, failed, or being deleted).
    fn mark_set_corrupt(&self, id: BackupJobId, reason: &str, now: Timestamp) -> Result<bool>;
    /// The scrub's claim: the listed (or detached) successful, not corrupt set verified
    /// longest ago (a set never re-verified counts from its end), if that was at or before
    /// `verified_before` and nobody's claim on it runs past `now`; `worker` then holds it
    /// until `lease_until`. One transaction, so of servers scrubbing one store at most one
    /// re-reads a set at a time.
    fn claim_scrub(
        &self,
        worker: &str,
        verified_before: Timestamp,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupSet>>;
    /// Ends `worker`'s claim on set `id`, recording that it was verified at `now`; false
    /// (nothing changed) when `worker` no longer holds it.
    fn end_scrub(&self, id: BackupJobId, worker: &str, now: Timestamp) -> Result<bool>;
}

/// Called once with [`NonceStore::use_nonce`]'s answer, by [`NonceStore::queue_nonce`].
pub type NonceDone = Box<dyn FnOnce(Result<bool>) + Send>;

/// Signature nonces, single-use per key across restarts and servers.
pub trait NonceStore: Send + Sync {
    /// Records a signature nonce for a key. Returns false when it was already used and has not
    /// expired (an expired one may be used again). Expired nonces are purged as a side effect,
    /// now and then and a bounded batch at a time, so a signed request rarely pays for it.
    fn use_nonce(
        &self,
        key: &AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;

    /// [`NonceStore::use_nonce`] without waiting, where the store can: `Ok(())` when the write
    /// is queued and `done` will get its answer, on a thread of the store's own, once the nonce
    /// is durable (SQLite's committer); `Err(done)` (this default) when the store cannot, and
    /// the caller calls `use_nonce` on a thread that may block.
    fn queue_nonce(
        &self,
        key: &AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
        done: NonceDone,
    ) -> std::result::Result<(), NonceDone> {
        let _ = (key, nonce, expires_at, now);
        Err(done)
    }

    /// [`NonceStore::use_nonce`] at once, on the caller's thread, without waiting for the
    /// nonce's sync, where the store can: `Some(answer)`, the nonce recorded so that every
    /// handle refuses it from then on and a killed process forgets none, made durable within
    /// a few milliseconds (SQLite, while its committer holds a lease on the nonce log); only
    /// a machine crash within them can forget it. Only for calls that change nothing, since
    /// the work is done before the nonce is durable. `None` (this default, or SQLite without a
    /// lease, which it then takes): use `queue_nonce` or `use_nonce`. Never blocks.
    fn use_nonce_unsynced(
        &self,
        key: &AccessKeyId,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Option<Result<bool>> {
        let _ = (key, nonce, expires_at, now);
        None
    }

    /// Reads the used nonces in now, where the store keeps them in memory (SQLite's log),
    /// so that the first signed request after a start does not wait for it; returns how many
    /// are remembered. A server calls it before it listens. The default (a store that keeps
    /// none in memory) reads nothing and returns `None`.
    fn load_nonces(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Log backups: the log-backup policy, the archiver's lease on each cluster, the WAL objects
/// it stored and the gaps it found.
pub trait WalStore: Send + Sync {
    /// A cluster's log-backup policy (the default if never set).
    fn log_backup_policy(&self, cluster: &DbClusterId) -> Result<LogBackupPolicy>;
    /// Sets the retention of a Running cluster's archived WAL; `Err(status)` (nothing
    /// changed) for one that is being deleted or deleted.
    fn modify_log_backup_policy(
        &self,
        cluster: &DbClusterId,
        retention: LogRetention,
    ) -> Result<std::result::Result<LogBackupPolicy, ClusterStatus>>;

    /// Takes or renews the archiver lease on a Running cluster: true when `worker` holds it
    /// until `lease_until`. Exactly one worker holds it across every server on the store;
    /// another takes it only once it lapsed (`lease_until` < `now`).
    fn claim_archiver(
        &self,
        cluster: &DbClusterId,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Gives the lease up (a no-op unless `worker` holds it).
    fn release_archiver(&self, cluster: &DbClusterId, worker: &str) -> Result<()>;

    /// Records a WAL object stored in the repository, if `worker` holds the cluster's archiver
    /// lease at `now` and the cluster is Running (checked in the same transaction): `None`,
    /// nothing recorded, when not (so nothing lands after a deletion began). A `Segment` or `Partial` replaces the `Partial` recorded at the same timeline
    /// and start, unless that one reaches further; the replaced (or refused) objects come
    /// back so the caller deletes their data. Its times (and a gap's) are kept to the
    /// microsecond, the server clock's precision; finer digits are dropped.
    fn record_wal(
        &self,
        worker: &str,
        object: &NewWalObject,
        now: Timestamp,
    ) -> Result<Option<WalRecorded>>;
    /// Every recorded WAL object of a cluster (any state of the cluster), by start LSN then
    /// timeline.
    fn wal_objects(&self, cluster: &DbClusterId) -> Result<Vec<WalObject>>;
    /// One page of DescribeBackupLogs: objects whose span (`start_time`..`end_time`) meets
    /// `from`..=`to` in whole seconds (see [`WalFilter`]), oldest first, and the total count
    /// of them.
    fn wal_page(&self, cluster: &DbClusterId, filter: &WalFilter) -> Result<WalPage>;
    /// A recorded WAL object by id, whatever its cluster.
    fn wal_object(&self, id: BackupLogId) -> Result<Option<WalObject>>;
    /// Forgets WAL objects of a cluster (retention, after a cluster's release); returns the
    /// ones that were recorded, whose data the caller then deletes.
    fn remove_wal(&self, cluster: &DbClusterId, ids: &[BackupLogId]) -> Result<Vec<WalObject>>;

    /// A cluster's listed sets, WAL objects and gaps read in one snapshot: what the recovery
    /// window and a restore plan are computed from, so retention or a gap recorded meanwhile
    /// cannot make them disagree.
    fn recovery_inputs(&self, cluster: &DbClusterId) -> Result<RecoveryInputs>;
    /// Every Running cluster with its log-backup policy and, as `recovery_inputs` reads them,
    /// its available sets, WAL objects and gaps: a handful of statements in one read snapshot
    /// whatever the number of clusters (a metrics scrape reads them all), ordered by cluster.
    fn recovery_overview(&self) -> Result<Vec<ClusterOverview>>;

    /// Records a gap in a cluster's archive, if `worker` holds the cluster's archiver lease at
    /// `now` and the cluster is Running (checked in the same transaction, as for
    /// [`WalStore::record_wal`]): false, nothing recorded, when not, so an archiver that lost
    /// its lease cannot shorten the recovery window.
    fn record_gap(&self, worker: &str, gap: &WalGap, now: Timestamp) -> Result<bool>;
    /// A cluster's gaps, oldest first.
    fn gaps(&self, cluster: &DbClusterId) -> Result<Vec<WalGap>>;
}

/// Every store trait, for code that calls a concrete store (admin commands, tests).
pub mod prelude {
    pub use crate::{
        ClusterStore, JobStore, NonceStore, RamStore, SetStore, Store, TenantStore, WalStore,
    };
}
