//! Incremental backups end to end against real servers: the LSN block diff on PostgreSQL 15
//! (a chain of three sets, restored and compared with the source, checked by
//! `pg_verifybackup`), and PostgreSQL 18's native incremental backup, whose rebuilt directory
//! must equal, file for file, what `pg_combinebackup` makes of the same chain.

use polarbackup_engine::pg::{ConnectConfig, PgHost};
use polarbackup_engine::{backup, restore, BackupRequest, BackupSummary, Phase, ProgressSink};
use polarbackup_engine::{RestoreRequest, DEFAULT_STALL};
use polarbackup_model::ManualClock;
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_testkit::pg::{
    as_postgres, chown_to_postgres, server_bin_dir, PgCluster, SUPERUSER,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Quiet;

impl ProgressSink for Quiet {
    fn report(&self, _: Phase) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

struct Env {
    dir: tempfile::TempDir,
    repo: Repo,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("pbincr").tempdir().unwrap();
        chown_to_postgres(dir.path(), false);
        let repo = Repo::open_fs(&dir.path().join("repo"), RepoConfig::default()).unwrap();
        Env { dir, repo }
    }

    async fn backup(&self, pg: &PgCluster, id: &str, parent: Option<&str>) -> BackupSummary {
        let source = ConnectConfig::new(PgHost::parse("127.0.0.1"), pg.port, SUPERUSER.to_owned());
        backup(BackupRequest {
            backup_id: id,
            source: &source,
            repo: &self.repo,
            scratch: self.dir.path(),
            progress: &Quiet,
            cancel: &CancellationToken::new(),
            clock: Arc::new(ManualClock::new("2026-12-02T00:00:00Z".parse().unwrap())),
            stall: DEFAULT_STALL,
            parent: parent.map(str::to_owned),
        })
        .await
        .unwrap()
    }

    async fn method(&self, id: &str) -> Option<String> {
        let m = self.repo.manifest(id).await.unwrap().unwrap();
        m.meta["incremental"].as_str().map(str::to_owned)
    }

    /// Bytes of the data directory's archives as the server sent them (its WAL left out).
    async fn data_bytes(&self, id: &str) -> u64 {
        let m = self.repo.manifest(id).await.unwrap().unwrap();
        m.archives
            .iter()
            .filter(|a| a.name != "pg_wal.tar")
            .map(|a| a.raw_size)
            .sum()
    }

    async fn stored(&self, id: &str) -> u64 {
        let m = self.repo.manifest(id).await.unwrap().unwrap();
        m.totals.stored_bytes
    }

    /// Restores `id` (and its chain) into a fresh directory owned by `postgres`.
    async fn restore(&self, id: &str, name: &str) -> PathBuf {
        self.restore_mapped(id, name, &[]).await
    }

    /// [`Env::restore`] with tablespaces moved as `mapping` says.
    async fn restore_mapped(&self, id: &str, name: &str, mapping: &[(String, PathBuf)]) -> PathBuf {
        let target = self.dir.path().join(name);
        let progress = |_: u64, _: u64| {};
        restore(RestoreRequest {
            repo: &self.repo,
            backup_id: id,
            target: &target,
            tablespace_mapping: mapping,
            progress: &progress,
            keep_partial: false,
        })
        .await
        .unwrap();
        chown_to_postgres(&target, true);
        target
    }
}

fn assert_ok(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a server of `major` on a restored directory and returns the digests of `db`.
fn digests_of_restored(
    dir: &Path,
    major: Option<u32>,
    db: &str,
) -> BTreeMap<String, (u64, String)> {
    let restored = match major {
        Some(m) => PgCluster::start_on_major(dir, m),
        None => PgCluster::start_on(dir),
    };
    restored.table_digests(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lsn_diff_chain_stores_the_changes_and_restores_the_newest_state() {
    let pg = PgCluster::init();
    let db = pg.create_database("incr");
    pg.pgbench_init(&db, 5);
    let env = Env::new();

    let full = env.backup(&pg, "1", None).await;
    assert_eq!(full.parent, None);

    // About 1 % of the accounts change; a table is created and another dropped.
    pg.pgbench_run(&db, 500);
    pg.psql_db(
        &db,
        "CREATE TABLE added AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g;\n\
         CREATE TABLE dropped AS SELECT g AS id FROM generate_series(1, 1000) g;",
    );
    let first = env.backup(&pg, "2", Some("1")).await;
    assert_eq!(first.parent.as_deref(), Some("1"));
    assert_eq!(env.method("2").await.as_deref(), Some("lsn"));

    pg.pgbench_run(&db, 500);
    pg.psql_db(
        &db,
        "DELETE FROM added WHERE id > 10000; VACUUM added; DROP TABLE dropped;",
    );
    let second = env.backup(&pg, "3", Some("2")).await;
    assert_eq!(second.parent.as_deref(), Some("2"));
    let expected = pg.table_digests(&db);

    let (full_stored, incr_stored) = (env.stored("1").await, env.stored("3").await);
    assert!(
        incr_stored * 4 < full_stored,
        "the incremental set stores {incr_stored} bytes, the full one {full_stored}"
    );

    let target = env.restore("3", "restored").await;
    assert_ok(
        "pg_verifybackup of the rebuilt chain",
        &polarbackup_testkit::pg::verify_backup(&target),
    );
    assert_eq!(digests_of_restored(&target, None, &db), expected);

    // A parent the repository lost: the restore says which, and writes nothing.
    env.repo.delete("2").await.unwrap();
    let missing = env.dir.path().join("broken");
    let progress = |_: u64, _: u64| {};
    let err = restore(RestoreRequest {
        repo: &env.repo,
        backup_id: "3",
        target: &missing,
        tablespace_mapping: &[],
        progress: &progress,
        keep_partial: false,
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("incremental on backup 2"), "{err}");
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_a_usable_parent_is_full() {
    let pg = PgCluster::init();
    let env = Env::new();
    let summary = env.backup(&pg, "7", Some("6")).await;
    assert_eq!(summary.parent, None, "no set 6 in the repository");
    assert_eq!(env.method("7").await, None);
}

/// Every file under `root` (relative path → bytes), without `backup_manifest`.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let kind = e.file_type().unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if kind.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(path);
            } else if rel != Path::new("backup_manifest") {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// A set's archives unpacked as they are stored (no rebuilding), with its `backup_manifest`:
/// the plain-format backup directory `pg_combinebackup` reads.
async fn unpack_as_stored(repo: &Repo, id: &str, dir: &Path) {
    let manifest = repo.manifest(id).await.unwrap().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for archive in &manifest.archives {
        let mut reader = repo.open_archive(id, &archive.name).await.unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            bytes.extend_from_slice(&chunk);
        }
        let dest = match archive.name.as_str() {
            "base.tar" => dir.to_path_buf(),
            "pg_wal.tar" => dir.join("pg_wal"),
            other => panic!("unexpected archive {other}"),
        };
        std::fs::create_dir_all(&dest).unwrap();
        tar::Archive::new(&bytes[..]).unpack(&dest).unwrap();
    }
    let backup_manifest = repo.read_file(id, "backup_manifest").await.unwrap();
    std::fs::write(dir.join("backup_manifest"), backup_manifest).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_chain_on_postgresql_18_rebuilds_exactly_as_pg_combinebackup() {
    let pg = PgCluster::init_major(18);
    pg.psql("ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();");
    pg.psql("CHECKPOINT;");
    let db = pg.create_database("native");
    pg.pgbench_init(&db, 3);
    let env = Env::new();

    env.backup(&pg, "1", None).await;
    pg.pgbench_run(&db, 300);
    pg.psql_db(
        &db,
        "CREATE TABLE added AS SELECT g AS id FROM generate_series(1, 5000) g;",
    );
    let first = env.backup(&pg, "2", Some("1")).await;
    assert_eq!(first.parent.as_deref(), Some("1"));
    assert_eq!(env.method("2").await.as_deref(), Some("native"));
    let (full_data, incr_data) = (env.data_bytes("1").await, env.data_bytes("2").await);
    assert!(
        incr_data * 4 < full_data,
        "the server sent {incr_data} data bytes for the incremental set, {full_data} for the full one"
    );
    pg.pgbench_run(&db, 300);
    pg.psql_db(&db, "TRUNCATE added; DROP TABLE pgbench_history;");
    env.backup(&pg, "3", Some("2")).await;
    assert_eq!(env.method("3").await.as_deref(), Some("native"));
    let expected = pg.table_digests(&db);

    let ours = env.restore("3", "ours").await;
    let verify = as_postgres(
        &server_bin_dir(18).join("pg_verifybackup"),
        &[ours.to_str().unwrap()],
    );
    assert_ok("pg_verifybackup (18) of our rebuilt chain", &verify);

    let mut inputs = Vec::new();
    for id in ["1", "2", "3"] {
        let dir = env.dir.path().join(format!("stored-{id}"));
        unpack_as_stored(&env.repo, id, &dir).await;
        inputs.push(dir);
    }
    chown_to_postgres(env.dir.path(), true);
    let combined = env.dir.path().join("combined");
    let mut args: Vec<&str> = inputs.iter().map(|d| d.to_str().unwrap()).collect();
    args.extend(["-o", combined.to_str().unwrap()]);
    assert_ok(
        "pg_combinebackup",
        &as_postgres(&server_bin_dir(18).join("pg_combinebackup"), &args),
    );

    let (a, b) = (tree(&ours), tree(&combined));
    let differ: Vec<&PathBuf> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "our rebuild and pg_combinebackup's differ in (path, in ours, in theirs) {:?}",
        differ
            .iter()
            .map(|k| (k, a.contains_key(*k), b.contains_key(*k)))
            .collect::<Vec<_>>()
    );

    assert_eq!(digests_of_restored(&ours, Some(18), &db), expected);
}

/// A tablespace the full set holds and the server dropped before the incremental one is not
/// restored: its archive is skipped, the place it was mapped to stays untouched, and its old
/// location (still the live cluster's here) is not in the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablespace_dropped_between_sets_of_a_chain_is_not_restored() {
    let pg = PgCluster::init();
    let env = Env::new();
    let location = env.dir.path().join("ts-source");
    std::fs::create_dir(&location).unwrap();
    chown_to_postgres(&location, false);
    let db = pg.create_database("dropped");
    pg.psql(&format!(
        "CREATE TABLESPACE gone LOCATION '{}';",
        location.display()
    ));
    pg.psql_db(
        &db,
        "CREATE TABLE moved TABLESPACE gone AS SELECT g AS id FROM generate_series(1, 5000) g; \
         CREATE TABLE kept AS SELECT g AS id FROM generate_series(1, 5000) g;",
    );
    env.backup(&pg, "1", None).await;
    pg.psql_db(&db, "DROP TABLE moved; INSERT INTO kept VALUES (0);");
    pg.psql("DROP TABLESPACE gone;");
    env.backup(&pg, "2", Some("1")).await;
    assert_eq!(env.method("2").await.as_deref(), Some("lsn"));
    let expected = pg.table_digests(&db);

    // Mapped: the mapped place is never created.
    let mapped = env.dir.path().join("ts-mapped");
    let mapping = [(location.display().to_string(), mapped.clone())];
    let restored = env.restore_mapped("2", "restored", &mapping).await;
    assert!(!mapped.exists(), "the dropped tablespace was restored");
    let links: Vec<_> = std::fs::read_dir(restored.join("pg_tblspc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(links.is_empty(), "pg_tblspc still links {links:?}");
    assert_eq!(digests_of_restored(&restored, None, &db), expected);
    // Unmapped: the old location (the live cluster's, not empty) is not in the way.
    env.restore("2", "unmapped").await;
}

/// PostgreSQL refuses an incremental BASE_BACKUP when its WAL summaries have a hole since the
/// parent (`summarize_wal` was off while the WAL moved on and was recycled): the backup sees the
/// hole first and takes the LSN diff instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_in_the_wal_summaries_takes_the_lsn_diff_instead_of_failing() {
    let pg = PgCluster::init_major(18);
    pg.psql("ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();");
    pg.psql("CHECKPOINT;");
    let db = pg.create_database("hole");
    pg.pgbench_init(&db, 1);
    let env = Env::new();
    env.backup(&pg, "1", None).await;

    pg.psql("ALTER SYSTEM SET summarize_wal = off; SELECT pg_reload_conf();");
    wait_for(&pg, "SHOW summarize_wal;", "off");
    for _ in 0..4 {
        pg.pgbench_run(&db, 200);
        pg.psql("SELECT pg_switch_wal(); CHECKPOINT;");
    }
    pg.psql("ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();");
    pg.psql("SELECT pg_switch_wal(); CHECKPOINT;");
    // The summarizer starts again after the recycled WAL: two summaries without a predecessor
    // (the first one, and the first after the hole).
    wait_for(
        &pg,
        "SELECT count(*) >= 2 FROM pg_available_wal_summaries() s WHERE NOT EXISTS \
         (SELECT 1 FROM pg_available_wal_summaries() p WHERE p.end_lsn = s.start_lsn);",
        "t",
    );

    pg.pgbench_run(&db, 100);
    let set = env.backup(&pg, "2", Some("1")).await;
    assert_eq!(set.parent.as_deref(), Some("1"));
    assert_eq!(env.method("2").await.as_deref(), Some("lsn"));
    let expected = pg.table_digests(&db);
    let restored = env.restore("2", "restored").await;
    assert_eq!(digests_of_restored(&restored, Some(18), &db), expected);
}

/// Polls `sql` once a second until it prints `want` (60 s at most).
fn wait_for(pg: &PgCluster, sql: &str, want: &str) {
    for _ in 0..60 {
        if pg.psql(sql).trim() == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("`{sql}` never printed {want}");
}
