//! The invariants the crash harness (`tests/crash.rs`) checks after every restart of `serve`:
//! jobs end terminal and none is lost, every listed set reads back whole, no orphaned
//! repository object, a sound metadata file, and an archive without holes.

use jiff::Timestamp;
use polarbackup_model::{
    BackupJob, BackupJobId, BackupSetStatus, Clock, DbClusterId, SystemClock, WalObjectKind,
};
use polarbackup_repo::Repo;
use polarbackup_store::prelude::*;
use polarbackup_store::{JobFilter, SetFilter, SqliteStore};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every job of `cluster`, history included.
pub fn jobs(store: &SqliteStore, cluster: &DbClusterId) -> Vec<BackupJob> {
    let filter = JobFilter {
        job_id: None,
        mode: None,
        ended_since: Timestamp::UNIX_EPOCH,
    };
    store.list_jobs(cluster, &filter).expect("list jobs")
}

/// Every job of every cluster in `clusters`.
pub fn all_jobs(store: &SqliteStore, clusters: &[DbClusterId]) -> Vec<BackupJob> {
    clusters.iter().flat_map(|c| jobs(store, c)).collect()
}

/// Polls until every job of `clusters` is terminal, for at most `within`; returns them, or
/// `Err` naming those still open.
pub fn wait_terminal(
    store: &SqliteStore,
    clusters: &[DbClusterId],
    within: Duration,
) -> Result<Vec<BackupJob>, String> {
    let deadline = Instant::now() + within;
    loop {
        let all = all_jobs(store, clusters);
        let open: Vec<String> = all
            .iter()
            .filter(|j| !j.status.is_terminal())
            .map(|j| format!("{} {:?} {}%", j.id, j.status, j.process))
            .collect();
        if open.is_empty() {
            return Ok(all);
        }
        if Instant::now() >= deadline {
            return Err(format!("jobs still open after {within:?}: {open:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every job seen before the kill is still there after it, at the same or a later stage,
/// and no id appears twice.
pub fn none_lost(before: &[BackupJob], after: &[BackupJob]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for j in after {
        if !seen.insert(j.id) {
            return Err(format!("job {} is listed twice", j.id));
        }
    }
    for b in before {
        let Some(a) = after.iter().find(|a| a.id == b.id) else {
            return Err(format!(
                "job {} ({:?}) was lost in the crash",
                b.id, b.status
            ));
        };
        if b.status.is_terminal() && a.status != b.status {
            return Err(format!(
                "job {} moved from {:?} to {:?} after it ended",
                b.id, b.status, a.status
            ));
        }
    }
    Ok(())
}

/// The successful sets DescribeBackups lists for `cluster`.
pub fn listed_sets(store: &SqliteStore, cluster: &DbClusterId) -> Vec<BackupJobId> {
    let filter = SetFilter {
        id: None,
        status: Some(BackupSetStatus::Success),
        mode: None,
        start: Timestamp::UNIX_EPOCH,
        end: Timestamp::MAX,
        page_size: 100,
        page_number: 1,
    };
    let page = store.list_backup_sets(cluster, &filter).expect("list sets");
    page.sets.into_iter().map(|s| s.id).collect()
}

/// Re-reads every object of every listed set, checking sizes and hashes (the repository's own
/// verify). Returns how many sets were read.
pub fn verify_listed(
    rt: &tokio::runtime::Runtime,
    repo: &Repo,
    store: &SqliteStore,
    clusters: &[DbClusterId],
) -> Result<usize, String> {
    let mut n = 0;
    for cluster in clusters {
        for id in listed_sets(store, cluster) {
            rt.block_on(repo.verify(&id.to_string(), &mut |_, _| {}))
                .map_err(|e| format!("listed set {id} of {cluster} fails verify: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Backup ids with data in the repository that the store does not keep (no usable set, no
/// open job). Polls for at most `within`, since a recovered job's data is removed after the
/// job is failed in the store.
pub fn no_orphans(
    rt: &tokio::runtime::Runtime,
    repo: &Repo,
    store: &SqliteStore,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let stored = rt
            .block_on(repo.list_backup_ids())
            .map_err(|e| format!("list the repository: {e}"))?;
        let known: BTreeSet<String> = store
            .known_backup_ids()
            .expect("known ids")
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        let orphans: Vec<&String> = stored.iter().filter(|id| !known.contains(*id)).collect();
        if orphans.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "orphaned backup data in the repository after {within:?}: {orphans:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `PRAGMA integrity_check` on metadata.sqlite is `ok`.
pub fn integrity(store: &SqliteStore) -> Result<(), String> {
    let rows = store.integrity_check().expect("integrity_check");
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(format!("PRAGMA integrity_check: {rows:?}"))
    }
}

/// The archive of `cluster` has no hole: no gap recorded, and its WAL objects on each timeline,
/// by start, each begin where the one before ended. Returns how many objects there are.
pub fn wal_continuous(store: &SqliteStore, cluster: &DbClusterId) -> Result<usize, String> {
    let gaps = store.gaps(cluster).expect("gaps");
    if !gaps.is_empty() {
        return Err(format!("the archive of {cluster} has gaps: {gaps:?}"));
    }
    let mut wal: Vec<_> = store
        .wal_objects(cluster)
        .expect("wal objects")
        .into_iter()
        .filter(|o| o.object.kind != WalObjectKind::History)
        .collect();
    wal.sort_by_key(|o| (o.object.timeline, o.object.start));
    for pair in wal.windows(2) {
        let (a, b) = (&pair[0].object, &pair[1].object);
        if a.timeline == b.timeline && b.start != a.end {
            return Err(format!(
                "hole in the archive of {cluster}: {} ({:?}) ends at {}, {} ({:?}) starts at {}",
                a.name, a.kind, a.end, b.name, b.kind, b.start
            ));
        }
    }
    Ok(wal.len())
}

/// The newest recorded WAL object id of `cluster` (0 when none).
pub fn newest_wal(store: &SqliteStore, cluster: &DbClusterId) -> u64 {
    store
        .wal_objects(cluster)
        .expect("wal objects")
        .iter()
        .map(|o| o.id.0)
        .max()
        .unwrap_or(0)
}

/// WAL files under `repo_root/wal/<cluster>/` that no record names (stored by an archiver
/// killed before it recorded them). Only meaningful once an archiver has taken the cluster
/// again after the restart: it removes them first.
pub fn wal_orphans(repo_root: &Path, store: &SqliteStore, cluster: &DbClusterId) -> Vec<String> {
    let recorded: BTreeSet<String> = store
        .wal_objects(cluster)
        .expect("wal objects")
        .into_iter()
        .map(|o| o.object.key)
        .collect();
    let dir = repo_root.join("wal").join(cluster.as_str());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| format!("wal/{}/{}", cluster, e.file_name().to_string_lossy()))
        .filter(|key| !recorded.contains(key))
        .collect()
}

/// Now, for seeding sets.
pub fn now() -> Timestamp {
    SystemClock.now()
}
