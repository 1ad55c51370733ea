//! Shared by the WAL reader and point-in-time restore tests: real PostgreSQL clusters of a
//! given major version, their settings, clock, WAL positions, and copies of their completed WAL
//! segments.

#![allow(dead_code)]

use polarbackup_model::Lsn;
use polarbackup_testkit::pg::{as_postgres, server_bin_dir, PgCluster};
use std::path::Path;

pub const SEG_SIZE: u64 = 16 << 20;

/// Applies `settings` (`name = value` lines, through ALTER SYSTEM) and restarts the server on
/// the same port and socket (pg_ctl reuses the postmaster's options).
pub fn restart_with(cluster: &PgCluster, settings: &[(&str, &str)]) {
    for (name, value) in settings {
        cluster.psql(&format!("ALTER SYSTEM SET {name} = '{value}';"));
    }
    let pg_ctl = server_bin_dir(cluster.major()).join("pg_ctl");
    let data = cluster.data_dir().to_str().unwrap().to_owned();
    let log = cluster.log_path().to_str().unwrap().to_owned();
    let out = as_postgres(
        &pg_ctl,
        &["-D", &data, "-l", &log, "-w", "-m", "fast", "restart"],
    );
    assert!(
        out.status.success(),
        "pg_ctl restart: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cluster.log()
    );
}

/// A `timestamptz` SQL expression's value, exact to the microsecond.
pub fn timestamp(cluster: &PgCluster, expr: &str) -> jiff::Timestamp {
    let text = cluster.psql(&format!(
        "SELECT to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"');"
    ));
    text.parse()
        .unwrap_or_else(|e| panic!("{expr} gave {text:?}: {e}"))
}

/// The server's clock now.
pub fn db_now(cluster: &PgCluster) -> jiff::Timestamp {
    timestamp(cluster, "clock_timestamp()")
}

pub fn lsn(cluster: &PgCluster, expr: &str) -> Lsn {
    cluster.psql(&format!("SELECT {expr};")).parse().unwrap()
}

/// Ends the current segment; returns the position just after the switch record's segment.
pub fn switch_wal(cluster: &PgCluster) -> Lsn {
    // The switch record's end: the next segment starts after it.
    let at = lsn(cluster, "pg_switch_wal()");
    Lsn(at.0.div_ceil(SEG_SIZE) * SEG_SIZE)
}

/// A completed segment of the cluster's WAL.
pub struct Segment {
    pub name: String,
    pub start: Lsn,
    pub bytes: Vec<u8>,
}

/// Copies the segments on `timeline` holding `[from, to)` from the cluster's pg_wal; each must
/// be complete (written to its end) by the time this is called.
pub fn segments(cluster: &PgCluster, timeline: u32, from: Lsn, to: Lsn) -> Vec<Segment> {
    let dir = cluster.data_dir().join("pg_wal");
    let first = from.segment_number(SEG_SIZE);
    let last = Lsn(to.0 - 1).segment_number(SEG_SIZE);
    (first..=last)
        .map(|segno| {
            let start = Lsn(segno * SEG_SIZE);
            let name = start.wal_file_name(timeline, SEG_SIZE);
            let bytes = std::fs::read(dir.join(&name))
                .unwrap_or_else(|e| panic!("read {name} from {}: {e}", dir.display()));
            assert_eq!(bytes.len() as u64, SEG_SIZE, "{name}");
            Segment { name, start, bytes }
        })
        .collect()
}

/// Writes segments into a directory, as pg_waldump reads them.
pub fn write_segments(dir: &Path, segments: &[Segment]) {
    std::fs::create_dir_all(dir).unwrap();
    for s in segments {
        std::fs::write(dir.join(&s.name), &s.bytes).unwrap();
    }
}
