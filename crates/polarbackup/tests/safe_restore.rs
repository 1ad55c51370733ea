//! A restore from a damaged repository fails and leaves no directory PostgreSQL starts on: a
//! flipped byte in the stored `backup_manifest` or in a base chunk, a truncated or a deleted
//! chunk, a corrupt WAL object under a point-in-time restore. Each time the real binary exits
//! non-zero, names the object and says "corrupt", and the target is gone (or, with
//! `--keep-partial`, kept without `global/pg_control`, and `pg_ctl start` fails on it).

mod common;

use common::{archiving_after_a_backup, bin, create_backup_v3, wait_for, wait_for_sets, Archiving};
use polarbackup_model::log_backup::{plan_restore, RecoveryTarget};
use polarbackup_model::{DbClusterId, Lsn};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::pg::{self, chown_to_postgres, PgCluster};
use polarbackup_testkit::Server;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// One backed-up PostgreSQL (with a tablespace, so a restore writes two places) for the full
/// restores; the cases damage its objects in turn, under `lock`, and put them back after.
struct Fixture {
    pg: PgCluster,
    server: Server,
    backup_id: String,
    tablespace: PathBuf,
    lock: Mutex<()>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pg = PgCluster::init();
        let tablespace = pg.scratch_dir("ts1");
        pg.psql(&format!(
            "CREATE TABLESPACE ts1 LOCATION '{}';",
            tablespace.display()
        ));
        pg.psql(
            "CREATE TABLE rows_ts TABLESPACE ts1 AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g;\n\
             CREATE TABLE big AS SELECT g, md5(g::text) h FROM generate_series(1, 300000) g;\n\
             CHECKPOINT;",
        );
        let server = Server::start(bin(), None, &[]);
        let mut t = server.tenant();
        t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, pg.port, "postgres");
        let cluster = DbClusterId::parse(&t.cluster_id).unwrap();
        create_backup_v3(&server, &t);
        let store = SqliteStore::open(&server.data_dir).unwrap();
        let backup_id = wait_for_sets("the full backup", 180, &server, &store, &cluster)[0].id.to_string();
        Fixture {
            pg,
            server,
            backup_id,
            tablespace,
            lock: Mutex::new(()),
        }
    })
}

impl Fixture {
    /// The damage of one case at a time.
    fn exclusive(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An object's repository path (as errors name it) and its file.
    fn object(&self, relative: &str) -> (String, PathBuf) {
        let object = format!("backups/{}/{relative}", self.backup_id);
        let file = self.server.data_dir.join("repo").join(&object);
        assert!(file.is_file(), "{} is not stored", file.display());
        (object, file)
    }

    /// The chunks of base.tar, in order (`base.tar/00000000.zst`, …).
    fn base_chunks(&self) -> Vec<String> {
        let dir = self
            .server
            .data_dir
            .join(format!("repo/backups/{}/base.tar", self.backup_id));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| format!("base.tar/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        names.sort();
        assert!(names.len() >= 3, "too few chunks to pick from: {names:?}");
        names
    }

    /// `polarbackup restore` of the set into `target`, the tablespace into `tablespace`.
    fn restore(&self, target: &Path, tablespace: &Path, extra: &[&str]) -> Output {
        let mapping = format!("{}={}", self.tablespace.display(), tablespace.display());
        let mut args = vec!["--tablespace-mapping", mapping.as_str()];
        args.extend_from_slice(extra);
        self.server.restore(&self.backup_id, target, &args)
    }
}

/// Puts an object's original bytes back when the case ends, passed or not.
struct Damage {
    file: PathBuf,
    original: Vec<u8>,
}

impl Damage {
    fn flip(file: &Path) -> Damage {
        let original = std::fs::read(file).unwrap();
        let mut bytes = original.clone();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        std::fs::write(file, bytes).unwrap();
        Damage {
            file: file.to_path_buf(),
            original,
        }
    }

    fn truncate(file: &Path) -> Damage {
        let original = std::fs::read(file).unwrap();
        std::fs::write(file, &original[..original.len() / 2]).unwrap();
        Damage {
            file: file.to_path_buf(),
            original,
        }
    }

    fn delete(file: &Path) -> Damage {
        let original = std::fs::read(file).unwrap();
        std::fs::remove_file(file).unwrap();
        Damage {
            file: file.to_path_buf(),
            original,
        }
    }
}

impl Drop for Damage {
    fn drop(&mut self) {
        std::fs::write(&self.file, &self.original).unwrap();
    }
}

/// The restore failed, and its error names `object` and calls it corrupt.
fn assert_refused_as_corrupt(out: &Output, object: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the restore succeeded: {err}");
    assert!(err.contains("corrupt"), "no word of corruption: {err}");
    assert!(err.contains(object), "{object} is not named: {err}");
    err
}

/// A scratch directory owned by `postgres` and two paths in it that do not exist yet.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let scratch = tempfile::Builder::new().prefix("pbsafe").tempdir().unwrap();
    chown_to_postgres(scratch.path(), false);
    let target = scratch.path().join("data");
    let ts = scratch.path().join("ts");
    (scratch, target, ts)
}

/// Damages `relative`, restores, and checks that the restore failed naming it as corrupt and
/// removed everything it wrote, the tablespace too.
fn refused_and_removed(relative: &str, damage: fn(&Path) -> Damage) {
    let fx = fixture();
    let _one = fx.exclusive();
    let (object, file) = fx.object(relative);
    let _damage = damage(&file);
    let (_scratch, target, ts) = scratch();
    let out = fx.restore(&target, &ts, &[]);
    let err = assert_refused_as_corrupt(&out, &object);
    assert!(!target.exists(), "{} is left: {err}", target.display());
    assert!(!ts.exists(), "{} is left: {err}", ts.display());
}

#[test]
fn a_flipped_backup_manifest_object_fails_the_restore_and_leaves_nothing() {
    refused_and_removed("files/backup_manifest", Damage::flip);
}

#[test]
fn a_flipped_base_chunk_fails_the_restore_and_leaves_nothing() {
    let chunks = fixture().base_chunks();
    refused_and_removed(&chunks[1], Damage::flip);
}

#[test]
fn a_truncated_base_chunk_fails_the_restore_and_leaves_nothing() {
    let chunks = fixture().base_chunks();
    refused_and_removed(&chunks[chunks.len() / 2], Damage::truncate);
}

#[test]
fn a_deleted_base_chunk_fails_the_restore_and_leaves_nothing() {
    let chunks = fixture().base_chunks();
    refused_and_removed(&chunks[chunks.len() - 1], Damage::delete);
}

#[test]
fn a_failed_restore_empties_an_empty_target_and_never_touches_a_full_one() {
    let fx = fixture();
    let chunks = fx.base_chunks();
    let _one = fx.exclusive();
    let (object, file) = fx.object(&chunks[chunks.len() - 1]);
    let _damage = Damage::flip(&file);
    let (_scratch, target, ts) = scratch();

    // A target with someone's file in it is refused before anything is written or removed.
    pg::private_dir(&target);
    std::fs::write(target.join("theirs"), "keep").unwrap();
    let out = fx.restore(&target, &ts, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(target.join("theirs")).unwrap(),
        "keep"
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    assert!(!ts.exists());

    // An empty target that existed stays, emptied; the tablespace directory it made is gone.
    std::fs::remove_file(target.join("theirs")).unwrap();
    let out = fx.restore(&target, &ts, &[]);
    let err = assert_refused_as_corrupt(&out, &object);
    let left: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the target: {left:?}\n{err}");
    assert!(!ts.exists(), "{err}");
}

#[test]
fn keep_partial_keeps_a_directory_postgresql_will_not_start_on() {
    let fx = fixture();
    let chunks = fx.base_chunks();
    let _one = fx.exclusive();
    let (object, file) = fx.object(&chunks[chunks.len() - 1]);
    let _damage = Damage::flip(&file);
    let (scratch, target, ts) = scratch();
    let out = fx.restore(&target, &ts, &["--keep-partial"]);
    let err = assert_refused_as_corrupt(&out, &object);
    assert!(
        err.contains("kept") && err.contains(&target.display().to_string()),
        "{err}"
    );
    // Most of the set was written, but not what makes it startable.
    assert!(target.join("PG_VERSION").is_file(), "{err}");
    assert!(target.join("base").is_dir(), "{err}");
    assert!(!target.join("global/pg_control").exists(), "{err}");

    chown_to_postgres(scratch.path(), true);
    let log = scratch.path().join("start.log");
    // Its own port and socket directory, so it could never reach the source's.
    let options = format!(
        "-p 1 -c listen_addresses='' -c unix_socket_directories='{}'",
        scratch.path().display()
    );
    let start = pg::as_postgres(
        &fx.pg.bin("pg_ctl"),
        &[
            "-D",
            target.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "-t",
            "30",
            "start",
        ],
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    if start.status.success() {
        pg::as_postgres(
            &fx.pg.bin("pg_ctl"),
            &["-D", target.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
    assert!(
        !start.status.success(),
        "PostgreSQL started on a partial restore:\n{log_text}"
    );
    assert!(log_text.contains("pg_control"), "{log_text}");
}

/// A restore to the latest point after `damage` hit the first WAL object after the backup:
/// its output, the object's key and the target directory.
fn pitr_with_a_damaged_wal_object(
    damage: fn(&Path) -> Damage,
) -> (Output, String, PathBuf, tempfile::TempDir) {
    let pg = PgCluster::init();
    pg.psql("CREATE TABLE t (n int);");
    let Archiving {
        mut server,
        tenant: t,
        cluster,
        store,
    } = archiving_after_a_backup(&pg);
    pg.psql("INSERT INTO t SELECT generate_series(1, 1000);");
    let flushed: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn();")
        .parse()
        .unwrap();
    wait_for(
        "the archive to hold the rows",
        60,
        || server.log(),
        || {
            let wal = store.wal_objects(&cluster).unwrap();
            wal.iter().any(|w| w.object.end >= flushed).then_some(())
        },
    );
    // Nothing replaces an object under the restore from now on.
    server.kill();

    let inputs = store.recovery_inputs(&cluster).unwrap();
    let plan = plan_restore(
        &inputs.sets,
        &inputs.wal,
        &inputs.gaps,
        RecoveryTarget::Latest,
    )
    .expect("a plan");
    let key = plan
        .wal
        .first()
        .expect("WAL after the backup")
        .object
        .key
        .clone();
    let _damage = damage(&server.data_dir.join("repo").join(&key));

    let (scratch, target, _) = scratch();
    let out = std::process::Command::new(bin())
        .args(["restore", "--cluster", &t.cluster_id])
        .args(["--recovery-time", "latest", "--target-dir"])
        .arg(&target)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .unwrap();
    (out, key, target, scratch)
}

#[test]
fn a_point_in_time_restore_with_a_corrupt_wal_object_fails_and_leaves_nothing() {
    let (out, key, target, _scratch) = pitr_with_a_damaged_wal_object(Damage::flip);
    let err = assert_refused_as_corrupt(&out, &key);
    assert!(err.contains("removed"), "{err}");
    assert!(!target.exists(), "{} is left: {err}", target.display());
}

/// A WAL object the store records but the repository lost is named as missing at once, not
/// taken for one a running archiver replaced (which plans again, up to three times).
#[test]
fn a_point_in_time_restore_with_a_missing_wal_object_names_it_and_leaves_nothing() {
    let (out, key, target, _scratch) = pitr_with_a_damaged_wal_object(Damage::delete);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the restore succeeded: {err}");
    assert!(
        err.contains(&format!("{key} is missing from the repository")),
        "{err}"
    );
    assert!(!err.contains("planning again"), "{err}");
    assert!(err.contains("removed"), "{err}");
    assert!(!target.exists(), "{} is left: {err}", target.display());
}
