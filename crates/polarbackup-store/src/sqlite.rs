//! The embedded SQLite implementation of [`Store`], in `<data-dir>/metadata.sqlite`.

use crate::records::{AccessKey, Account, Cluster, JobFilter, NewCluster};
use crate::{ids, migrations, Result, Store, StoreError};
use jiff::Timestamp;
use polarbackup_model::{
    AccessKeyId, AccountId, BackupJob, BackupJobId, DbClusterId, JobMode, JobStatus, TaskAction,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
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
        conn.pragma_update(None, "journal_mode", "WAL")?;
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

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to reuse.
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }
}

fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

fn ts(s: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_second(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what}: {value:?}").into(),
    )
}

fn account_from(row: &Row<'_>) -> rusqlite::Result<Account> {
    let id: String = row.get("id")?;
    Ok(Account {
        id: AccountId::parse(&id).map_err(|_| corrupt("account id", &id))?,
        name: row.get("name")?,
        created_at: ts(row.get("created_at")?)?,
    })
}

fn key_from(row: &Row<'_>) -> rusqlite::Result<AccessKey> {
    let id: String = row.get("id")?;
    let account: String = row.get("account_id")?;
    Ok(AccessKey {
        id: AccessKeyId::parse(&id).map_err(|_| corrupt("key id", &id))?,
        account: AccountId::parse(&account).map_err(|_| corrupt("account id", &account))?,
        secret: row.get("secret")?,
        active: row.get("active")?,
        created_at: ts(row.get("created_at")?)?,
    })
}

fn cluster_from(row: &Row<'_>) -> rusqlite::Result<Cluster> {
    let id: String = row.get("id")?;
    let account: String = row.get("account_id")?;
    Ok(Cluster {
        id: DbClusterId::parse(&id).map_err(|_| corrupt("cluster id", &id))?,
        spec: NewCluster {
            account: AccountId::parse(&account).map_err(|_| corrupt("account id", &account))?,
            region: row.get("region")?,
            engine: row.get("engine")?,
            host: row.get("host")?,
            port: row.get("port")?,
            user: row.get("user_name")?,
            password: row.get("password")?,
            database: row.get("database")?,
            description: row.get("description")?,
        },
        created_at: ts(row.get("created_at")?)?,
    })
}

fn job_from(row: &Row<'_>) -> rusqlite::Result<BackupJob> {
    let id: i64 = row.get("id")?;
    let cluster: String = row.get("cluster_id")?;
    let mode: String = row.get("mode")?;
    let action: String = row.get("action")?;
    let status: String = row.get("status")?;
    let ended_at: Option<i64> = row.get("ended_at")?;
    Ok(BackupJob {
        id: BackupJobId(u64::try_from(id).map_err(|_| corrupt("job id", &id.to_string()))?),
        cluster_id: DbClusterId::parse(&cluster).map_err(|_| corrupt("cluster id", &cluster))?,
        mode: mode.parse().map_err(|_| corrupt("job mode", &mode))?,
        action: action
            .parse()
            .map_err(|_| corrupt("task action", &action))?,
        status: status.parse().map_err(|_| corrupt("job status", &status))?,
        process: row.get("process")?,
        start_time: ts(row.get("start_time")?)?,
        ended_at: ended_at.map(ts).transpose()?,
        failure_reason: row.get("failure_reason")?,
    })
}

const JOB_COLUMNS: &str =
    "id, cluster_id, mode, action, status, process, start_time, ended_at, failure_reason";

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
        for _ in 0..8 {
            let key = AccessKey {
                id: AccessKeyId::parse(&ids::access_key_id())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                account: account.clone(),
                secret: ids::access_key_secret(),
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
                "INSERT OR IGNORE INTO access_keys (id, account_id, secret, active, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.id.as_str(),
                    key.account.as_str(),
                    key.secret,
                    key.active,
                    secs(key.created_at)
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
                         user_name, password, database, description, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                        secs(now)
                    ],
                )?;
                if inserted == 1 {
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

    fn insert_job(
        &self,
        cluster: &DbClusterId,
        mode: JobMode,
        action: TaskAction,
        now: Timestamp,
    ) -> Result<BackupJob> {
        self.with(|c| {
            let job = c.query_row(
                &format!(
                    "INSERT INTO backup_jobs (cluster_id, mode, action, status, process, start_time)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5) RETURNING {JOB_COLUMNS}"
                ),
                params![
                    cluster.as_str(),
                    mode.as_str(),
                    action.as_str(),
                    JobStatus::NoStart.as_str(),
                    secs(now)
                ],
                job_from,
            )?;
            Ok(job)
        })
    }

    fn update_job(&self, job: &BackupJob) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = tx
                .query_row(
                    &format!("SELECT {JOB_COLUMNS} FROM backup_jobs WHERE id = ?1"),
                    [job.id.0 as i64],
                    job_from,
                )
                .optional()?
                .ok_or(StoreError::NotFound { what: "backup job" })?;
            // The state machine runs in memory; this guards against two writers racing.
            let illegal = if stored.status.is_terminal() && stored != *job {
                Some("the job has already ended")
            } else if job.status < stored.status && job.status != JobStatus::Failed {
                Some("the status would go backwards")
            } else if job.process < stored.process {
                Some("Process would decrease")
            } else {
                None
            };
            if let Some(reason) = illegal {
                return Err(StoreError::IllegalJobUpdate {
                    id: job.id.0,
                    reason: reason.to_owned(),
                });
            }
            tx.execute(
                "UPDATE backup_jobs SET status = ?2, process = ?3, ended_at = ?4, failure_reason = ?5
                 WHERE id = ?1",
                params![
                    job.id.0 as i64,
                    job.status.as_str(),
                    job.process,
                    job.ended_at.map(secs),
                    job.failure_reason
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn list_jobs(&self, cluster: &DbClusterId, filter: &JobFilter) -> Result<Vec<BackupJob>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM backup_jobs
                 WHERE cluster_id = ?1
                   AND (?2 IS NULL OR id = ?2)
                   AND (?3 IS NULL OR mode = ?3)
                   AND (ended_at IS NULL OR ended_at >= ?4)
                 ORDER BY start_time DESC, id DESC"
            ))?;
            let rows = stmt.query_map(
                params![
                    cluster.as_str(),
                    filter.job_id.map(|id| id.0 as i64),
                    filter.mode.map(JobMode::as_str),
                    secs(filter.ended_since)
                ],
                job_from,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
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
