//! A server on shared storage: metadata in PostgreSQL and backups in S3 (SeaweedFS);
//! a backup requested through the SDK, listed, and restored by `polarbackup restore` run
//! elsewhere with only `--metadata-url`, `--repository-url` and the environment.

mod common;

use common::{bin, call_v3, create_backup_v3, restore_elsewhere, wait_for, wire_body};
use polarbackup_testkit::pg::{self, PgCluster};
use polarbackup_testkit::s3::SeaweedFs;
use polarbackup_testkit::{Server, SHARED_MASTER_KEY};
use serde_json::json;

#[test]
fn a_server_on_shared_storage_backs_up_and_restore_elsewhere_brings_the_data_back() {
    let meta = PgCluster::init();
    meta.psql("CREATE DATABASE polarbackup;");
    let metadata_url = format!(
        "postgres://postgres@127.0.0.1:{}/polarbackup?sslmode=disable",
        meta.port
    );
    let weed = SeaweedFs::start();
    let repository_url = weed.url("scale-out");
    let (key_id, secret) = weed.credentials();

    let src = PgCluster::init();
    src.psql("CREATE DATABASE app;");
    src.psql_db(
        "app",
        "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g;\n\
         ALTER TABLE items ADD PRIMARY KEY (id);\nCHECKPOINT;",
    );

    let server = Server::builder(bin())
        .metadata_url(&metadata_url)
        .repository_url(&repository_url)
        .s3_credentials(&key_id, &secret)
        .env("POLARBACKUP_MASTER_KEY", SHARED_MASTER_KEY)
        .start();
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_on(&server.target(), src.port, "postgres");
    assert!(
        !server.data_dir.join("metadata.sqlite").exists(),
        "the server made an SQLite store beside the PostgreSQL one"
    );

    let job = create_backup_v3(&server, &t);
    let status = wait_for(
        "the backup to end",
        180,
        || server.log(),
        || {
            let res = call_v3(
                &server,
                &t,
                "DescribeBackupTasks",
                json!({"DBClusterId": t.cluster_id, "BackupJobId": job}),
            );
            let status = wire_body(&res)["Items"]["BackupJob"][0]["BackupProgressStatus"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            ["Finished", "Failed"]
                .contains(&status.as_str())
                .then_some(status)
        },
    );
    assert_eq!(status, "Finished", "{}", server.log());
    let res = call_v3(
        &server,
        &t,
        "DescribeBackups",
        json!({"DBClusterId": t.cluster_id, "StartTime": "2000-01-01T00:00Z",
               "EndTime": "2099-01-01T00:00Z"}),
    );
    let listed: Vec<&str> = wire_body(&res)["Items"]["Backup"]
        .as_array()
        .unwrap_or_else(|| panic!("{res:#}"))
        .iter()
        .filter_map(|b| b["BackupId"].as_str())
        .collect();
    assert_eq!(listed, [job.as_str()], "{res:#}");

    // Restore as on another machine: an empty data directory, the locations as flags.
    let elsewhere = tempfile::tempdir().expect("tmp");
    let (scratch, target) = pg::restore_target();
    restore_elsewhere(
        elsewhere.path(),
        &job,
        &target,
        &metadata_url,
        &repository_url,
        (&key_id, &secret),
    );
    assert!(
        !elsewhere.path().join("data/metadata.sqlite").exists(),
        "restore opened an SQLite store instead"
    );
    pg::chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on(&target);
    for db in ["postgres", "app"] {
        assert_eq!(
            restored.table_digests(db),
            src.table_digests(db),
            "database {db} differs after the restore"
        );
    }
}
