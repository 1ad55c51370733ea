//! Versioned schema migrations, applied in order on open. The version lives in `PRAGMA user_version`.

use crate::{Result, StoreError};
use rusqlite::{Connection, TransactionBehavior};

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry: add one.
const MIGRATIONS: &[&str] = &[
    // 1: tenants, clusters, jobs, nonces.
    r#"
    CREATE TABLE accounts (
        id          TEXT PRIMARY KEY,
        name        TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE access_keys (
        id          TEXT PRIMARY KEY,
        account_id  TEXT NOT NULL REFERENCES accounts(id),
        secret      TEXT NOT NULL,
        active      INTEGER NOT NULL CHECK (active IN (0, 1)),
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE clusters (
        id          TEXT PRIMARY KEY,
        account_id  TEXT NOT NULL REFERENCES accounts(id),
        region      TEXT NOT NULL,
        engine      TEXT NOT NULL,
        host        TEXT NOT NULL,
        port        INTEGER NOT NULL,
        user_name   TEXT NOT NULL,
        password    TEXT,
        database    TEXT,
        description TEXT,
        created_at  INTEGER NOT NULL
    );
    -- AUTOINCREMENT: ids are never reused, even after the newest job is deleted.
    CREATE TABLE backup_jobs (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster_id      TEXT NOT NULL REFERENCES clusters(id),
        mode            TEXT NOT NULL,
        action          TEXT NOT NULL,
        status          TEXT NOT NULL,
        process         INTEGER NOT NULL CHECK (process BETWEEN 0 AND 100),
        start_time      INTEGER NOT NULL,
        ended_at        INTEGER,
        failure_reason  TEXT
    );
    CREATE INDEX backup_jobs_by_cluster ON backup_jobs (cluster_id, start_time DESC);
    -- Job ids look like the cloud's (eight digits and up).
    INSERT INTO sqlite_sequence (name, seq) VALUES ('backup_jobs', 10000000);
    CREATE TABLE nonces (
        key_id      TEXT NOT NULL,
        nonce       TEXT NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (key_id, nonce)
    ) WITHOUT ROWID;
    CREATE INDEX nonces_by_expiry ON nonces (expires_at);
    "#,
    // 2: leases, comments, idempotency tokens, backup sets.
    r#"
    ALTER TABLE backup_jobs ADD COLUMN comment TEXT;
    ALTER TABLE backup_jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE backup_jobs ADD COLUMN lease_expires INTEGER;
    CREATE INDEX backup_jobs_queued ON backup_jobs (status, id);
    CREATE TABLE client_tokens (
        account_id  TEXT NOT NULL,
        action      TEXT NOT NULL,
        token       TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        job_id      INTEGER NOT NULL REFERENCES backup_jobs(id),
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (account_id, action, token)
    ) WITHOUT ROWID;
    -- A set shares its id with the job that made it. deleting = 1 hides it while its data is
    -- being removed, so a crash mid-delete never shows a set whose data is gone.
    CREATE TABLE backup_sets (
        id              INTEGER PRIMARY KEY REFERENCES backup_jobs(id),
        cluster_id      TEXT NOT NULL REFERENCES clusters(id),
        mode            TEXT NOT NULL,
        status          TEXT NOT NULL,
        start_time      INTEGER NOT NULL,
        end_time        INTEGER NOT NULL,
        consistent_time INTEGER,
        size            INTEGER NOT NULL,
        stored_size     INTEGER NOT NULL,
        comment         TEXT,
        deleting        INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1))
    );
    CREATE INDEX backup_sets_by_cluster ON backup_sets (cluster_id, start_time DESC);
    "#,
    // 3: TLS to the database, with libpq's sslmode names.
    r#"
    ALTER TABLE clusters ADD COLUMN tls_mode TEXT NOT NULL DEFAULT 'prefer';
    ALTER TABLE clusters ADD COLUMN tls_ca_file TEXT;
    "#,
    // 4: RAM users, their keys, custom policies and attachments.
    r#"
    CREATE TABLE ram_users (
        id          TEXT PRIMARY KEY,
        account_id  TEXT NOT NULL REFERENCES accounts(id),
        name        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        UNIQUE (account_id, name)
    );
    -- NULL: the account's own (root) key, which RAM policies do not restrict.
    ALTER TABLE access_keys ADD COLUMN user_id TEXT REFERENCES ram_users(id);
    CREATE TABLE ram_policies (
        account_id  TEXT NOT NULL REFERENCES accounts(id),
        name        TEXT NOT NULL,
        document    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (account_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE ram_attachments (
        user_id     TEXT NOT NULL REFERENCES ram_users(id),
        policy_type TEXT NOT NULL CHECK (policy_type IN ('System', 'Custom')),
        policy_name TEXT NOT NULL,
        PRIMARY KEY (user_id, policy_type, policy_name)
    ) WITHOUT ROWID;
    "#,
    // 5: backup policies and the scheduler's high-water mark. `last_slot` is compared and set
    // in the same transaction that queues an automated job, so each slot runs exactly once
    // even with several servers on one database.
    r#"
    CREATE TABLE backup_policies (
        cluster_id  TEXT PRIMARY KEY REFERENCES clusters(id),
        policy      TEXT NOT NULL,
        last_slot   INTEGER
    ) WITHOUT ROWID;
    "#,
    // 6: cluster deletion. A deleted cluster's row stays as a tombstone (status 'Deleted') so
    // its retained sets keep their owner. `deletion_job` is the final TempBackupTask of a
    // LATEST deletion, whose end decides the outcome in the same transaction. Detached sets
    // belong to a released cluster and never expire.
    r#"
    ALTER TABLE clusters ADD COLUMN status TEXT NOT NULL DEFAULT 'Running'
        CHECK (status IN ('Running', 'Deleting', 'Deleted'));
    ALTER TABLE clusters ADD COLUMN deleted_at INTEGER;
    ALTER TABLE clusters ADD COLUMN deletion_retention TEXT
        CHECK (deletion_retention IN ('ALL', 'LATEST', 'NONE'));
    ALTER TABLE clusters ADD COLUMN deletion_job INTEGER REFERENCES backup_jobs(id);
    ALTER TABLE backup_sets ADD COLUMN detached INTEGER NOT NULL DEFAULT 0
        CHECK (detached IN (0, 1));
    "#,
    // 7: RSA access keys (ACS3-RSA-SHA256). For them `secret` holds the public key's PEM:
    // the private key never reaches the server.
    r#"
    ALTER TABLE access_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'hmac'
        CHECK (kind IN ('hmac', 'rsa'));
    "#,
    // 8: a set's place in the WAL (timeline, start and end LSN), all three or none: what a
    // point-in-time restore replays from. Sets recorded before have none.
    r#"
    ALTER TABLE backup_sets ADD COLUMN wal_timeline INTEGER;
    ALTER TABLE backup_sets ADD COLUMN wal_start INTEGER;
    ALTER TABLE backup_sets ADD COLUMN wal_end INTEGER
        CHECK ((wal_timeline IS NULL) = (wal_end IS NULL)
               AND (wal_start IS NULL) = (wal_end IS NULL));
    "#,
    // 9: log backups. The log-backup policy (no row: the default; -1 keeps WAL as long as the
    // cluster), the archiver's lease on each cluster (one streamer across every server), the
    // WAL objects it stored and the gaps it found. LSNs are stored as INTEGER (below 2^63, so
    // they sort as numbers); AUTOINCREMENT: a WAL object's id is never reused.
    r#"
    CREATE TABLE log_backup_policies (
        cluster_id      TEXT PRIMARY KEY REFERENCES clusters(id),
        retention_days  INTEGER NOT NULL CHECK (retention_days = -1 OR retention_days > 0)
    ) WITHOUT ROWID;
    CREATE TABLE wal_archivers (
        cluster_id  TEXT PRIMARY KEY REFERENCES clusters(id),
        worker      TEXT NOT NULL,
        lease_until INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE wal_objects (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster_id  TEXT NOT NULL REFERENCES clusters(id),
        timeline    INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('segment', 'partial', 'history')),
        name        TEXT NOT NULL,
        start_lsn   INTEGER NOT NULL CHECK (start_lsn >= 0),
        end_lsn     INTEGER NOT NULL CHECK (end_lsn >= start_lsn),
        size        INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        key         TEXT NOT NULL UNIQUE,
        digest      TEXT NOT NULL,
        start_time  INTEGER NOT NULL,
        end_time    INTEGER NOT NULL
    );
    CREATE INDEX wal_objects_by_lsn ON wal_objects (cluster_id, start_lsn);
    CREATE INDEX wal_objects_by_time ON wal_objects (cluster_id, end_time);
    CREATE TABLE wal_gaps (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster_id  TEXT NOT NULL REFERENCES clusters(id),
        timeline    INTEGER NOT NULL,
        from_lsn    INTEGER NOT NULL,
        to_lsn      INTEGER NOT NULL,
        detected_at INTEGER NOT NULL,
        reason      TEXT NOT NULL
    );
    CREATE INDEX wal_gaps_by_cluster ON wal_gaps (cluster_id, detected_at);
    "#,
    // 10: WAL objects' times and gaps' detection times in microseconds since the epoch, as the
    // server's clock gives them: in whole seconds the recovery window ended up to a second
    // before the newest archived commit. Renaming keeps the indexes (they follow the column)
    // and the AUTOINCREMENT sequence; existing rows keep their second.
    r#"
    ALTER TABLE wal_objects RENAME COLUMN start_time TO start_us;
    ALTER TABLE wal_objects RENAME COLUMN end_time TO end_us;
    UPDATE wal_objects SET start_us = start_us * 1000000, end_us = end_us * 1000000;
    ALTER TABLE wal_gaps RENAME COLUMN detected_at TO detected_us;
    UPDATE wal_gaps SET detected_us = detected_us * 1000000;
    "#,
    // 11: secrets at rest. The check value (a constant sealed with the master key) tells a
    // process started with another key apart at open; access-key secrets and passwords are
    // sealed in place (`sealing`), with no column of their own.
    r#"
    CREATE TABLE master_key_check (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        key_id      TEXT NOT NULL,
        check_value TEXT NOT NULL
    );
    "#,
    // 12: re-verification of stored sets (`polarbackup verify`, the scrub in serve): when a
    // set was last verified, why it was found corrupt (it is then unavailable), and the
    // scrub's claim on it, so one server at a time re-reads a set.
    r#"
    ALTER TABLE backup_sets ADD COLUMN verified_at INTEGER;
    ALTER TABLE backup_sets ADD COLUMN corrupt_reason TEXT;
    ALTER TABLE backup_sets ADD COLUMN corrupt_at INTEGER;
    ALTER TABLE backup_sets ADD COLUMN scrub_owner TEXT;
    ALTER TABLE backup_sets ADD COLUMN scrub_until INTEGER;
    "#,
    // 13: DescribeBackupTasks lists a cluster's jobs not ended or ended recently; with only the
    // by-start index it read the cluster's whole history row by row (a quarter of serve's CPU
    // at a million jobs). The listing reads the two ranges of this index instead.
    r#"
    CREATE INDEX backup_jobs_by_cluster_end ON backup_jobs (cluster_id, ended_at);
    "#,
    // 14: incremental backups. What kind of backup a job was asked for, the set a set is
    // incremental on (no foreign key: a broken chain's base may go before its children), and
    // a cluster's schedule of full backups (NULL: the server's default). DeleteBackup looks
    // a set's children up by parent.
    r#"
    ALTER TABLE backup_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'Full'
        CHECK (kind IN ('Full', 'Incremental'));
    ALTER TABLE backup_sets ADD COLUMN parent_id INTEGER;
    CREATE INDEX backup_sets_by_parent ON backup_sets (parent_id);
    ALTER TABLE clusters ADD COLUMN full_backup_every TEXT
        CHECK (full_backup_every IN ('week', 'always'));
    "#,
    // 15: signature nonces live in a database file of their own (`nonce_db`): their commit on
    // every signed request emptied the page caches of the connections reading keys, clusters
    // and jobs from this file. The rows left here are moved into it at open (still refused
    // within their window); the version bump keeps an older binary, which would look for
    // nonces here only, from opening the store.
    r#"
    DROP INDEX nonces_by_expiry;
    ALTER TABLE nonces RENAME TO legacy_nonces;
    "#,
    // 16: `job_counts` (every metrics scrape) groups all jobs by cluster and status; without
    // this index it read every job's row and sorted them (~0.5 s at a million jobs), with it
    // it counts index entries in order (~60 ms).
    r#"
    CREATE INDEX backup_jobs_by_cluster_status ON backup_jobs (cluster_id, status);
    "#,
    // 17: signature nonces move from their SQLite file (`-nonces`) to an append-only log
    // (`-nonce-log`), at open. No table changes: the version bump keeps a binary that would
    // still use the SQLite file from opening the store.
    "",
];

/// Brings the schema up to the last of [`MIGRATIONS`]; refuses a database written by a newer binary. Each step
/// reads the version inside its own write transaction, so two processes opening a fresh data
/// directory at once cannot both apply the same migration.
pub fn apply(conn: &mut Connection) -> Result<()> {
    apply_list(conn, MIGRATIONS)
}

fn apply_list(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let latest = migrations.len() as i64;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current > latest {
            return Err(StoreError::TooNew {
                found: current,
                supported: latest,
            });
        }
        let Some(sql) = usize::try_from(current)
            .ok()
            .and_then(|i| migrations.get(i))
        else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
    }
}
