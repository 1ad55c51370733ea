//! The WAL reader on WAL written by real PostgreSQL (13, the Debian one, the newest): every
//! record from a workload's start to a segment switch reads back; commit and abort times match
//! what the server says (`pg_xact_commit_timestamp`, the clock around an abort); records span
//! pages (full-page images, a commit with thousands of subtransactions, a 100 kB message); and
//! for the major whose pg_waldump is installed, the records are exactly pg_waldump's.

mod pgwal;

use pgwal::{db_now, lsn, restart_with, segments, switch_wal, timestamp, write_segments, SEG_SIZE};
use polarbackup_engine::xlog::{MemoryWal, Record, Step, WalEnd, WalReader, XactEndKind};
use polarbackup_model::Lsn;
use polarbackup_testkit::pg::{pg_bin_dir, PgCluster};
use std::collections::BTreeMap;

/// What the workload did, by the server's account.
struct Expected {
    start: Lsn,
    end: Lsn,
    /// Committed xids and their commit times from pg_xact_commit_timestamp.
    commits: BTreeMap<u32, jiff::Timestamp>,
    /// The xid committed with thousands of subtransactions.
    many_subxacts: u32,
    /// The commit time of a prepared transaction (COMMIT PREPARED).
    commit_prepared: jiff::Timestamp,
    /// The aborted xid and the server's clock just before and after its ROLLBACK.
    abort: (u32, jiff::Timestamp, jiff::Timestamp),
    /// The server's clock around ROLLBACK PREPARED.
    abort_prepared: (jiff::Timestamp, jiff::Timestamp),
}

fn xid_of(output: &str) -> u32 {
    let txid: u64 = output.lines().last().unwrap().trim().parse().unwrap();
    txid as u32
}

fn commit_time(cluster: &PgCluster, xid: u32) -> jiff::Timestamp {
    timestamp(cluster, &format!("pg_xact_commit_timestamp('{xid}'::xid)"))
}

fn workload(cluster: &PgCluster) -> Expected {
    restart_with(
        cluster,
        &[
            ("track_commit_timestamp", "on"),
            ("max_prepared_transactions", "5"),
            ("wal_compression", "on"),
        ],
    );
    cluster.psql(
        "CREATE TABLE t (id int, v text);\n\
         ALTER TABLE t ALTER COLUMN v SET STORAGE PLAIN;\n\
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;",
    );
    let start = lsn(cluster, "pg_current_wal_lsn()");
    let mut commits = BTreeMap::new();
    for i in 0..20 {
        let out = cluster.psql(&format!(
            "BEGIN; INSERT INTO t VALUES ({i}, 'row {i}'); SELECT txid_current(); COMMIT;"
        ));
        commits.insert(xid_of(&out), ());
    }
    // A row of 7 kB stored inline: its insert record spans pages.
    let out = cluster.psql(
        "BEGIN; INSERT INTO t VALUES (-1, repeat('w', 7000)); SELECT txid_current(); COMMIT;",
    );
    commits.insert(xid_of(&out), ());
    // After a checkpoint every first change of a page logs a (compressed) full-page image.
    cluster.psql("CHECKPOINT;");
    let out = cluster
        .psql("BEGIN; UPDATE t SET id = id + 1 WHERE id < 500; SELECT txid_current(); COMMIT;");
    commits.insert(xid_of(&out), ());
    // 3000 subtransactions with an xid each: the commit record lists them all (12 kB).
    let out = cluster.psql(
        "BEGIN;\n\
         DO $$ BEGIN FOR i IN 1..3000 LOOP BEGIN INSERT INTO t VALUES (i, 's'); \
         EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;\n\
         SELECT txid_current(); COMMIT;",
    );
    let many_subxacts = xid_of(&out);
    commits.insert(many_subxacts, ());
    // A 100 kB transactional message: one record over a dozen pages.
    let out = cluster.psql(
        "BEGIN; SELECT pg_logical_emit_message(true, 'pb', repeat('m', 100000)) IS NOT NULL;\n\
         SELECT txid_current(); COMMIT;",
    );
    commits.insert(xid_of(&out), ());
    let out = cluster.psql(
        "BEGIN; INSERT INTO t VALUES (-2, 'prepared'); SELECT txid_current(); \
         PREPARE TRANSACTION 'p1'; COMMIT PREPARED 'p1';",
    );
    let prepared = xid_of(&out);
    let before_abort = db_now(cluster);
    let out =
        cluster.psql("BEGIN; INSERT INTO t VALUES (-3, 'no'); SELECT txid_current(); ROLLBACK;");
    let after_abort = db_now(cluster);
    let aborted = xid_of(&out);
    let before_abort_prepared = db_now(cluster);
    cluster.psql(
        "BEGIN; INSERT INTO t VALUES (-4, 'no'); PREPARE TRANSACTION 'p2'; \
         ROLLBACK PREPARED 'p2';",
    );
    let after_abort_prepared = db_now(cluster);
    let end = switch_wal(cluster);
    let commits = commits
        .into_keys()
        .map(|xid| (xid, commit_time(cluster, xid)))
        .collect();
    Expected {
        start,
        end,
        commits,
        many_subxacts,
        commit_prepared: commit_time(cluster, prepared),
        abort: (aborted, before_abort, after_abort),
        abort_prepared: (before_abort_prepared, after_abort_prepared),
    }
}

/// Every record from the start of the segment holding `from` to where the reader stops.
fn read(wal: MemoryWal, from: Lsn) -> (Vec<Record>, WalEnd) {
    let mut reader = WalReader::open(wal, from.segment_start(SEG_SIZE)).unwrap();
    assert_eq!(reader.geometry().seg_size, SEG_SIZE);
    let mut records = Vec::new();
    loop {
        match reader.next_record().unwrap() {
            Step::Record(r) => records.push(r),
            Step::End(end) => return (records, end),
        }
    }
}

fn check(cluster: &PgCluster) -> (Expected, Vec<Record>, Vec<pgwal::Segment>) {
    let expected = workload(cluster);
    let segs = segments(cluster, 1, expected.start, expected.end);
    let mut wal = MemoryWal::new();
    for s in &segs {
        wal.insert(s.start, s.bytes.clone());
    }
    let (records, end) = read(wal, expected.start);
    // After the switch the reader looks in the next segment, which is not there.
    assert_eq!(end, WalEnd::Missing { at: expected.end }, "{end:?}");

    let ends: Vec<(u32, XactEndKind, jiff::Timestamp)> = records
        .iter()
        .filter(|r| r.lsn >= expected.start)
        .filter_map(|r| r.xact_end().map(|e| (r.xid, e.kind, e.time().unwrap())))
        .collect();
    for (xid, time) in &expected.commits {
        let found: Vec<_> = ends.iter().filter(|e| e.0 == *xid).collect();
        assert_eq!(
            found,
            vec![&(*xid, XactEndKind::Commit, *time)],
            "the commit of {xid}"
        );
    }
    assert!(ends
        .iter()
        .any(|e| e.1 == XactEndKind::CommitPrepared && e.2 == expected.commit_prepared));
    let (aborted, before, after) = expected.abort;
    assert!(
        ends.iter()
            .any(|e| e.0 == aborted && e.1 == XactEndKind::Abort && before <= e.2 && e.2 <= after),
        "the abort of {aborted} between {before} and {after}: {ends:?}"
    );
    let (before, after) = expected.abort_prepared;
    assert!(ends
        .iter()
        .any(|e| e.1 == XactEndKind::AbortPrepared && before <= e.2 && e.2 <= after));

    let page = 8192;
    let big_commit = records
        .iter()
        .find(|r| r.xid == expected.many_subxacts && r.xact_end().is_some())
        .unwrap();
    assert!(
        big_commit.total_len() > 12_000,
        "{}",
        big_commit.total_len()
    );
    assert!(
        records
            .iter()
            .any(|r| r.total_len() > 100_000 && r.main_data().len() > 100_000),
        "the message record"
    );
    let spanning = records
        .iter()
        .filter(|r| r.lsn.0 / page != (r.lsn.0 + u64::from(r.total_len())) / page)
        .count();
    assert!(spanning > 10, "{spanning} records span pages");
    assert!(
        records
            .iter()
            .flat_map(|r| &r.blocks)
            .any(|b| b.image_len.is_some_and(|l| l < 8192)),
        "full-page images, compressed or with a hole"
    );
    (expected, records, segs)
}

#[test]
fn reads_postgresql_13_wal() {
    let cluster = PgCluster::init_major(13);
    check(&cluster);
}

#[test]
fn reads_postgresql_18_wal() {
    let cluster = PgCluster::init_major(18);
    check(&cluster);
}

/// pg_waldump's listing: (lsn, prev, total length) of every record.
fn waldump(dir: &std::path::Path, from: Lsn, to: Lsn) -> Vec<(Lsn, Lsn, u32)> {
    let out = std::process::Command::new(pg_bin_dir().join("pg_waldump"))
        .arg(format!("--path={}", dir.display()))
        .arg(format!("--start={from}"))
        .arg(format!("--end={to}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |line: &str, key: &str| -> String {
        let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
        line[at..]
            .trim_start()
            .split([',', ' '])
            .next()
            .unwrap()
            .to_owned()
    };
    text.lines()
        .filter(|l| l.starts_with("rmgr:"))
        .map(|l| {
            let lens = l.split("len (rec/tot):").nth(1).unwrap();
            let tot = lens.split(',').next().unwrap().split('/').nth(1).unwrap();
            (
                field(l, "lsn:").parse().unwrap(),
                field(l, "prev").parse().unwrap(),
                tot.trim().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn reads_every_record_pg_waldump_reads() {
    let cluster = PgCluster::init();
    let (expected, records, segs) = check(&cluster);
    let dir = tempfile::tempdir().unwrap();
    write_segments(dir.path(), &segs);
    let first = records
        .iter()
        .find(|r| r.lsn >= expected.start)
        .unwrap()
        .lsn;
    let ours: Vec<(Lsn, Lsn, u32)> = records
        .iter()
        .filter(|r| r.lsn >= first)
        .map(|r| (r.lsn, r.prev, r.total_len()))
        .collect();
    let theirs = waldump(dir.path(), first, expected.end);
    assert!(theirs.len() > 100, "{} records", theirs.len());
    assert_eq!(ours, theirs);
}
