//! The embedded SQLite implementation of [`Store`], in `<data-dir>/metadata.sqlite`.

mod clusters;
mod jobs;
mod policies;
mod ram;
mod rows;
mod sets;

use crate::records::{
    AccessKey, Account, Attachment, ClaimedJob, Cluster, ClusterDeletion, CreateJobOutcome,
    DeleteRefusal, DeletionRefusal, JobFilter, KeyKind, ManualJobRequest, NewCluster, PolicyKind,
    RamUser, SetFilter, SetPage, StoredPolicy,
};
use crate::{ids, migrations, Result, Store, StoreError};
use jiff::Timestamp;
use polarbackup_model::policy::{BackupPolicy, RetentionOnClusterDeletion};
use polarbackup_model::{
    AccessKeyId, AccountId, BackupJob, BackupJobId, BackupSet, ClusterStatus, DbClusterId, JobMode,
    TaskAction,
};
use rows::{account_from, cluster_from, key_from, secs};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const DB_FILE: &str = "metadata.sqlite";

/// One connection behind a mutex: SQLite serialises writers anyway, and WAL mode lets other
/// processes (admin commands) read and write while the server runs.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating with mode 0700 if needed) the data directory and migrates the schema.
    pub fn open(data_dir: &Path) -> Result<Self> {
        if !data_dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)?;
        }
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        // The file holds key secrets and database passwords: owner only.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // Switching to WAL needs a moment of exclusive access and does not wait on the busy
        // handler, so processes opening a fresh directory together retry briefly.
        let mut attempt = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 100 =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::apply(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn new_key(
        &self,
        account: &AccountId,
        user: Option<&str>,
        rsa_public_key: Option<&str>,
        now: Timestamp,
    ) -> Result<AccessKey> {
        for _ in 0..8 {
            let key = AccessKey {
                id: AccessKeyId::parse(&ids::access_key_id())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                account: account.clone(),
                user: user.map(str::to_owned),
                kind: if rsa_public_key.is_some() {
                    KeyKind::Rsa
                } else {
                    KeyKind::Hmac
                },
                secret: rsa_public_key.map_or_else(ids::access_key_secret, str::to_owned),
                active: true,
                created_at: now,
            };
            match self.import_key(&key) {
                Err(StoreError::Conflict(_)) => continue,
                other => return other.map(|()| key),
            }
        }
        Err(StoreError::Conflict("access key id"))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to reuse.
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }
}

impl Store for SqliteStore {
    fn ping(&self) -> Result<()> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    fn create_account(&self, name: Option<&str>, now: Timestamp) -> Result<Account> {
        self.with(|c| {
            // Random ids can collide; a few tries make that vanishingly unlikely to surface.
            for _ in 0..8 {
                let id = ids::account_id();
                let inserted = c.execute(
                    "INSERT OR IGNORE INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)",
                    params![id, name, secs(now)],
                )?;
                if inserted == 1 {
                    let account =
                        c.query_row("SELECT * FROM accounts WHERE id = ?1", [&id], account_from)?;
                    return Ok(account);
                }
            }
            Err(StoreError::Conflict("account id"))
        })
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT * FROM accounts WHERE id = ?1",
                [id.as_str()],
                account_from,
            )
            .optional()?)
        })
    }

    fn create_key(&self, account: &AccountId, now: Timestamp) -> Result<AccessKey> {
        self.new_key(account, None, None, now)
    }

    fn create_user_key(&self, user: &RamUser, now: Timestamp) -> Result<AccessKey> {
        self.new_key(&user.account, Some(&user.id), None, now)
    }

    fn create_rsa_key(
        &self,
        account: &AccountId,
        user: Option<&RamUser>,
        public_key_pem: &str,
        now: Timestamp,
    ) -> Result<AccessKey> {
        self.new_key(
            account,
            user.map(|u| u.id.as_str()),
            Some(public_key_pem),
            now,
        )
    }

    fn import_key(&self, key: &AccessKey) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let account_exists = tx
                .query_row(
                    "SELECT 1 FROM accounts WHERE id = ?1",
                    [key.account.as_str()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !account_exists {
                return Err(StoreError::NotFound { what: "account" });
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO access_keys (id, account_id, secret, active, created_at,
                     user_id, kind)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE ?6 IS NULL OR EXISTS (SELECT 1 FROM ram_users WHERE id = ?6 AND account_id = ?2)",
                params![
                    key.id.as_str(),
                    key.account.as_str(),
                    key.secret,
                    key.active,
                    secs(key.created_at),
                    key.user,
                    key.kind.as_str()
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict("access key id"));
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn key(&self, id: &str) -> Result<Option<AccessKey>> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT * FROM access_keys WHERE id = ?1", [id], key_from)
                    .optional()?,
            )
        })
    }

    fn set_key_active(&self, id: &AccessKeyId, active: bool) -> Result<()> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE access_keys SET active = ?2 WHERE id = ?1",
                params![id.as_str(), active],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: "access key" });
            }
            Ok(())
        })
    }

    fn create_cluster(&self, spec: &NewCluster, now: Timestamp) -> Result<Cluster> {
        if self.account(&spec.account)?.is_none() {
            return Err(StoreError::NotFound { what: "account" });
        }
        self.with(|c| {
            for _ in 0..8 {
                let id = ids::cluster_id();
                let inserted = c.execute(
                    "INSERT OR IGNORE INTO clusters (id, account_id, region, engine, host, port,
                         user_name, password, database, description, created_at, tls_mode,
                         tls_ca_file)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        id,
                        spec.account.as_str(),
                        spec.region,
                        spec.engine,
                        spec.host,
                        spec.port,
                        spec.user,
                        spec.password,
                        spec.database,
                        spec.description,
                        secs(now),
                        spec.tls_mode,
                        spec.tls_ca_file
                    ],
                )?;
                if inserted == 1 {
                    // The schedule starts now: no slot before the cluster existed is due.
                    let json = serde_json::to_string(&BackupPolicy::default())
                        .map_err(|e| StoreError::Corrupt(format!("backup policy: {e}")))?;
                    c.execute(
                        "INSERT INTO backup_policies (cluster_id, policy, last_slot) VALUES (?1, ?2, ?3)",
                        params![id, json, secs(now)],
                    )?;
                    return Ok(c.query_row(
                        "SELECT * FROM clusters WHERE id = ?1",
                        [&id],
                        cluster_from,
                    )?);
                }
            }
            Err(StoreError::Conflict("cluster id"))
        })
    }

    fn cluster(&self, id: &DbClusterId) -> Result<Option<Cluster>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT * FROM clusters WHERE id = ?1",
                [id.as_str()],
                cluster_from,
            )
            .optional()?)
        })
    }

    fn begin_cluster_deletion(
        &self,
        cluster: &DbClusterId,
        retention: Option<RetentionOnClusterDeletion>,
        now: Timestamp,
    ) -> Result<std::result::Result<ClusterDeletion, DeletionRefusal>> {
        self.with(|c| clusters::begin_deletion(c, cluster, retention, now))
    }

    fn insert_job(
        &self,
        cluster: &DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Result<BackupJob> {
        self.with(|c| jobs::insert(c, cluster, mode, action, None, now))
    }

    fn create_manual_job(
        &self,
        req: &ManualJobRequest,
        now: Timestamp,
        limit: u32,
    ) -> Result<CreateJobOutcome> {
        self.with(|c| jobs::create_manual(c, req, now, limit))
    }

    fn update_job(&self, job: &BackupJob) -> Result<()> {
        self.with(|c| jobs::update(c, job))
    }

    fn end_job(&self, job: &BackupJob, set: Option<&BackupSet>) -> Result<()> {
        self.with(|c| jobs::end(c, job, set))
    }

    fn list_jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>> {
        self.with(|c| jobs::list(c, cluster, filter))
    }

    fn claim_job(
        &self,
        worker: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<ClaimedJob>> {
        self.with(|c| jobs::claim(c, worker, lease_until, now))
    }

    fn renew_lease(&self, job: BackupJobId, worker: &str, lease_until: Timestamp) -> Result<bool> {
        self.with(|c| jobs::renew(c, job, worker, lease_until))
    }

    fn abandoned_jobs(&self, now: Timestamp) -> Result<Vec<BackupJob>> {
        self.with(|c| jobs::abandoned(c, now))
    }

    fn list_backup_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage> {
        self.with(|c| sets::list(c, cluster, filter, false))
    }

    fn list_detached_sets(&self, cluster: &DbClusterId, filter: &SetFilter) -> Result<SetPage> {
        self.with(|c| sets::list(c, cluster, filter, true))
    }

    fn detached_set_count(&self, cluster: &DbClusterId) -> Result<u64> {
        self.with(|c| sets::detached_count(c, cluster))
    }

    fn backup_set(&self, id: BackupJobId) -> Result<Option<BackupSet>> {
        self.with(|c| sets::get(c, id))
    }

    fn begin_delete_sets(
        &self,
        cluster: &DbClusterId,
        ids: &[BackupJobId],
    ) -> Result<std::result::Result<Vec<BackupSet>, DeleteRefusal>> {
        self.with(|c| sets::begin_delete(c, cluster, ids))
    }

    fn pending_deletions(&self) -> Result<Vec<BackupSet>> {
        self.with(|c| sets::pending_deletions(c))
    }

    fn forget_set(&self, id: BackupJobId) -> Result<()> {
        self.with(|c| sets::forget(c, id))
    }

    fn known_backup_ids(&self) -> Result<Vec<BackupJobId>> {
        self.with(|c| sets::known_ids(c))
    }

    fn create_user(&self, account: &AccountId, name: &str, now: Timestamp) -> Result<RamUser> {
        self.with(|c| ram::create_user(c, account, name, now))
    }

    fn user(&self, id: &str) -> Result<Option<RamUser>> {
        self.with(|c| ram::user(c, id))
    }

    fn create_policy(&self, policy: &StoredPolicy) -> Result<()> {
        self.with(|c| ram::create_policy(c, policy))
    }

    fn list_policies(&self, account: &AccountId) -> Result<Vec<StoredPolicy>> {
        self.with(|c| ram::list_policies(c, account))
    }

    fn attach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
        self.with(|c| ram::attach(c, user, kind, name))
    }

    fn detach_policy(&self, user: &RamUser, kind: PolicyKind, name: &str) -> Result<bool> {
        self.with(|c| ram::detach(c, user, kind, name))
    }

    fn attachments(&self, user: &RamUser) -> Result<Vec<Attachment>> {
        self.with(|c| ram::attachments(c, user))
    }

    fn backup_policy(&self, cluster: &DbClusterId) -> Result<(BackupPolicy, Option<Timestamp>)> {
        self.with(|c| policies::get(c, cluster))
    }

    fn set_backup_policy(
        &self,
        cluster: &DbClusterId,
        policy: &BackupPolicy,
    ) -> Result<std::result::Result<(), ClusterStatus>> {
        self.with(|c| policies::set(c, cluster, policy))
    }

    fn schedules(&self) -> Result<Vec<(DbClusterId, BackupPolicy, Option<Timestamp>)>> {
        self.with(|c| policies::all(c))
    }

    fn schedule_automated_job(
        &self,
        cluster: &DbClusterId,
        slot: Timestamp,
        now: Timestamp,
    ) -> Result<Option<BackupJob>> {
        self.with(|c| policies::schedule(c, cluster, slot, now))
    }

    fn cluster_sets(&self, cluster: &DbClusterId) -> Result<Vec<BackupSet>> {
        self.with(|c| policies::sets_of(c, cluster))
    }

    fn expire_sets(&self, ids: &[BackupJobId]) -> Result<()> {
        self.with(|c| policies::expire(c, ids))
    }

    fn use_nonce(
        &self,
        key: &str,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM nonces WHERE expires_at < ?1", [secs(now)])?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO nonces (key_id, nonce, expires_at) VALUES (?1, ?2, ?3)",
                params![key, nonce, secs(expires_at)],
            )?;
            tx.commit()?;
            Ok(inserted == 1)
        })
    }
}
