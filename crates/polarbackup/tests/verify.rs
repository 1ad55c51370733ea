//! Re-verification of stored sets on a real PostgreSQL with the real binary: `polarbackup
//! verify` by set, by cluster and for all, a corrupted chunk found and its set made
//! unavailable (DescribeBackups through the SDK, restore refused), a point-in-time restore
//! falling back to the older good set with the data it should hold, and the scrub in `serve`
//! finding a corrupt set on its own.

mod common;

use common::{bin, create_backup_v3, db_now, wait_for, wait_for_slot};
use polarbackup_model::log_backup::slot_name;
use polarbackup_model::{BackupSetStatus, DbClusterId, Lsn};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::{chown_to_postgres, restore_target, PgCluster};
use polarbackup_testkit::{request, sdk, Server, Tenant};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// `polarbackup ARGS --data-dir DIR`, as an operator runs it next to the server.
fn run(server: &Server, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .expect("run polarbackup")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `polarbackup verify ARGS`: its exit code and output.
fn verify(server: &Server, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let out = run(server, &all);
    (out.status.code(), text(&out))
}

/// DescribeBackups through the V3 SDK: each set's id and IsAvail.
fn availability(server: &Server, t: &Tenant) -> Vec<(String, String)> {
    let mut req = request(
        "v3",
        server,
        t,
        json!({"DBClusterId": t.cluster_id, "StartTime": "2000-01-01T00:00Z",
               "EndTime": "2099-01-01T00:00Z"}),
    );
    req["action"] = json!("DescribeBackups");
    let res = sdk(req);
    assert_eq!(res["ok"], true, "DescribeBackups: {res:#}");
    let mut sets: Vec<(String, String)> = common::wire_body(&res)["Items"]["Backup"]
        .as_array()
        .expect("sets")
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().expect("a string").to_owned();
            (field("BackupId"), field("IsAvail"))
        })
        .collect();
    sets.sort();
    sets
}

/// A database with a table, a server backing it up, its tenant and the store.
struct Rig {
    pg: PgCluster,
    server: Server,
    t: Tenant,
    cluster: DbClusterId,
    store: SqliteStore,
}

fn rig(args: &[&str]) -> Rig {
    let pg = PgCluster::init();
    pg.psql(
        "ALTER SYSTEM SET autovacuum = off;\nSELECT pg_reload_conf();\n\
         CREATE TABLE t (batch text, n int);",
    );
    let server = Server::start(bin(), None, args);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, pg.port, "postgres");
    let cluster = DbClusterId::parse(&t.cluster_id).unwrap();
    let store = SqliteStore::open(&server.data_dir).unwrap();
    Rig {
        pg,
        server,
        t,
        cluster,
        store,
    }
}

impl Rig {
    /// Takes a full backup through the SDK and waits for its set; returns its id.
    fn backup(&self) -> String {
        let before = self.store.cluster_sets(&self.cluster).unwrap().len();
        create_backup_v3(&self.server, &self.t);
        wait_for(
            "the full backup",
            120,
            || self.server.log(),
            || {
                let sets = self.store.cluster_sets(&self.cluster).unwrap();
                assert!(
                    sets.iter().all(|s| s.status == BackupSetStatus::Success),
                    "{sets:?}\n{}",
                    self.server.log()
                );
                (sets.len() > before).then(|| sets.last().unwrap().id.to_string())
            },
        )
    }
}

/// Flips a byte in the middle of the set's largest chunk; returns the object's repository path.
fn corrupt_a_chunk(data_dir: &Path, id: &str) -> String {
    let dir = data_dir.join("repo").join("backups").join(id);
    let mut chunks = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "zst") {
                chunks.push(path);
            }
        }
    }
    let chunk: PathBuf = chunks
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a chunk");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&chunk, bytes).unwrap();
    let rel = chunk.strip_prefix(data_dir.join("repo")).unwrap();
    rel.to_str().unwrap().to_owned()
}

#[test]
fn verify_finds_a_corrupt_set_which_then_is_never_restored_from() {
    let rig = rig(&["--log-backup", "on", "--wal-partial-secs", "1"]);
    let Rig {
        pg,
        server,
        t,
        cluster,
        store,
    } = &rig;
    let slot = slot_name(cluster);
    wait_for_slot(server, pg, &slot, 60);
    let older = rig.backup();
    let pause = || std::thread::sleep(Duration::from_millis(1100));
    pg.psql("INSERT INTO t VALUES ('A', 1);");
    let newer = rig.backup();
    pause();
    pg.psql("INSERT INTO t VALUES ('B', 1);");
    pause();
    // Covered by both sets' chains: the newer set is the one a restore would start from.
    let between = db_now(pg);
    pause();
    pg.psql("SET synchronous_commit = on;\nINSERT INTO t VALUES ('C', 1);");
    let flushed: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn();")
        .parse()
        .unwrap();
    wait_for(
        "the archive to hold batch C",
        60,
        || server.log(),
        || {
            let wal = store.wal_objects(cluster).unwrap();
            wal.iter().any(|w| w.object.end >= flushed).then_some(())
        },
    );

    // Everything good: exit 0, each set named.
    let (code, out) = verify(server, &["--all"]);
    assert_eq!(code, Some(0), "{out}");
    for id in [&older, &newer] {
        assert!(
            out.contains(&format!("backup set {id} ({}): ok", t.cluster_id)),
            "{out}"
        );
    }

    let object = corrupt_a_chunk(&server.data_dir, &newer);
    let (code, out) = verify(server, &["--backup-id", &older]);
    assert_eq!(code, Some(0), "the older set is intact: {out}");
    let (code, out) = verify(server, &["--backup-id", &newer]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("backup set {newer}"))
            && out.contains(&format!("corrupt object {object}"))
            && out.contains("marked unavailable"),
        "names the set, the object and what was done: {out}"
    );
    for which in [&["--cluster", t.cluster_id.as_str()][..], &["--all"][..]] {
        let (code, out) = verify(server, which);
        assert_eq!(code, Some(1), "{which:?}: {out}");
        assert!(
            out.contains(&format!("backup set {older} ({}): ok", t.cluster_id))
                && out.contains(&format!("backup set {newer}"))
                && out.contains(&object)
                && out.contains("1 of 2 backup sets failed verification"),
            "{which:?}: {out}"
        );
    }
    let (code, out) = verify(server, &["--cluster", "pc-nosuchcluster12"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not exist"), "{out}");

    // DescribeBackups shows it unavailable; the store keeps the reason.
    assert_eq!(
        availability(server, t),
        vec![(older.clone(), "1".into()), (newer.clone(), "0".into())]
    );
    let set = store
        .backup_set(polarbackup_model::BackupJobId(newer.parse().unwrap()))
        .unwrap()
        .unwrap();
    assert!(
        set.corrupt.as_deref().is_some_and(|r| r.contains(&object)),
        "{set:?}"
    );

    // A restore of it is refused, with the reason; nothing is written.
    let (_scratch, target) = restore_target();
    let out = run(
        server,
        &[
            "restore",
            "--backup-id",
            &newer,
            "--target-dir",
            target.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&format!("backup set {newer} was found corrupt")) && said.contains(&object),
        "{said}"
    );
    assert!(!target.exists() || std::fs::read_dir(&target).unwrap().next().is_none());

    // A point-in-time restore falls back to the older set and replays the WAL from there.
    let (scratch, target) = restore_target();
    let out = run(
        server,
        &[
            "restore",
            "--cluster",
            &t.cluster_id,
            "--recovery-time",
            &between,
            "--target-dir",
            target.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["BackupId"], older.as_str(), "{printed}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("backup set {newer} is corrupt")),
        "{}",
        text(&out)
    );
    chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on(&target);
    wait_for(
        "promotion",
        60,
        || restored.log(),
        || (restored.psql("SELECT pg_is_in_recovery();") == "f").then_some(()),
    );
    let rows = restored.psql("SELECT string_agg(batch || n, ',' ORDER BY batch) FROM t;");
    assert_eq!(rows, "A1,B1", "the state at {between}");
}

#[test]
fn the_scrub_in_serve_finds_a_corrupt_set_on_its_own() {
    // A period of about 1.7 s: each set is read again every couple of seconds.
    let rig = rig(&["--scrub-days", "0.00002", "--scrub-mibps", "64"]);
    let set = rig.backup();
    let server = &rig.server;
    wait_for(
        "the scrub to verify the set",
        60,
        || server.log(),
        || {
            let log = server.log();
            let verified = log
                .lines()
                .any(|l| l.contains("scrub: backup set verified") && l.contains(&set));
            verified.then_some(())
        },
    );
    assert_eq!(
        availability(server, &rig.t),
        vec![(set.clone(), "1".into())]
    );
    let object = corrupt_a_chunk(&server.data_dir, &set);
    wait_for(
        "the scrub to mark the set unavailable",
        60,
        || server.log(),
        || (availability(server, &rig.t) == vec![(set.clone(), "0".to_owned())]).then_some(()),
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("marked unavailable") && l.contains(&object)),
        "the reason is logged: {log}"
    );
    let (code, out) = verify(server, &["--all"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&object), "{out}");
}
