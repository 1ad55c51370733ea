//! A cheap "has anything been committed?" check: the header of the metadata file's wal-index.
//!
//! In WAL mode every commit, by any connection of any process, rewrites the wal-index header
//! kept at the start of the `-shm` file (SQLite's documented file format, "The WAL-Index
//! Format": two copies of a 48-byte header whose change counter, last frame, frame checksums
//! and salts move with each commit or WAL restart). One `pread` of those 96 bytes costs far
//! less than the read transaction `PRAGMA data_version` begins (file locks, a stat, the
//! pager). Bytes equal to a header read before a version was taken prove that nothing was
//! committed since; any difference, or two copies that disagree (a writer is between them),
//! sends the caller to `PRAGMA data_version`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Both copies of the header.
const HEADER_BYTES: usize = 96;
/// The `isInit` byte of the first copy: zero until a connection has built the index.
const IS_INIT: usize = 12;

pub(super) type Header = [u8; HEADER_BYTES];

/// The `-shm` file of one database, open for reading.
pub(super) struct WalIndex {
    file: File,
}

impl WalIndex {
    /// The wal-index of the database at `db`, if it is in WAL mode with a shared-memory file
    /// (it is while `conn`, a connection that has read it, stays open: SQLite removes or
    /// rebuilds the file only when no connection holds it).
    pub(super) fn open(db: &Path, conn: &rusqlite::Connection) -> Option<Self> {
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        let file = File::open(name).ok()?;
        Some(Self { file })
    }

    /// The header now, if both copies agree and the index is built.
    pub(super) fn header(&self) -> Option<Header> {
        let mut h = [0u8; HEADER_BYTES];
        self.file.read_exact_at(&mut h, 0).ok()?;
        let (first, second) = h.split_at(HEADER_BYTES / 2);
        (first == second && h[IS_INIT] != 0).then_some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn wal_db(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        (path, conn)
    }

    #[test]
    fn every_commit_of_another_connection_changes_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = wal_db(dir.path());
        let index = WalIndex::open(&path, &conn).expect("a WAL database has a wal-index");
        let other = Connection::open(&path).unwrap();
        let mut seen = vec![index.header().expect("built")];
        for i in 0..20 {
            // A read changes nothing.
            let _: i64 = other
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(index.header().unwrap(), *seen.last().unwrap());
            other.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            let now = index.header().unwrap();
            assert!(!seen.contains(&now), "commit {i} left a header seen before");
            seen.push(now);
        }
        // A checkpoint that restarts the WAL, then a commit into the restarted WAL.
        other
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
            .unwrap();
        other.execute("INSERT INTO t VALUES (99)", []).unwrap();
        assert!(!seen.contains(&index.header().unwrap()));
    }

    #[test]
    fn copies_that_disagree_or_an_unbuilt_index_give_no_header() {
        let dir = tempfile::tempdir().unwrap();
        let shm = dir.path().join("x-shm");
        let mut h = [7u8; HEADER_BYTES];
        std::fs::write(&shm, h).unwrap();
        let index = WalIndex {
            file: File::open(&shm).unwrap(),
        };
        assert!(index.header().is_some());
        h[HEADER_BYTES - 1] = 8;
        std::fs::write(&shm, h).unwrap();
        assert!(index.header().is_none(), "a writer between the copies");
        let mut unbuilt = [7u8; HEADER_BYTES];
        unbuilt[IS_INIT] = 0;
        unbuilt[HEADER_BYTES / 2 + IS_INIT] = 0;
        std::fs::write(&shm, unbuilt).unwrap();
        assert!(index.header().is_none());
        std::fs::write(&shm, [7u8; 10]).unwrap();
        assert!(index.header().is_none(), "a short file");
    }

    #[test]
    fn a_database_not_in_wal_mode_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        assert!(WalIndex::open(&path, &conn).is_none());
    }
}
