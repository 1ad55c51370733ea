//! PostgreSQL's recovery settings for a restored data directory: `recovery.signal`, and a block
//! appended to `postgresql.auto.conf` (read last, so it wins over the backed-up configuration)
//! that also clears any standby or other target setting the source carried.

use super::{ConfiguredTarget, WAL_DIR};
use crate::EngineError;
use jiff::Timestamp;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The recovery target time as PostgreSQL reads it: UTC as a numeric offset (the server
/// parses the setting before it knows zone abbreviations, so it refuses `Z`), to the
/// microsecond, rounded down.
pub(super) fn pg_time_text(t: Timestamp) -> String {
    let dt = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    format!(
        "{} {:02}:{:02}:{:02}.{:06}+00",
        dt.date(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1000
    )
}

/// The settings appended to `postgresql.auto.conf`.
pub(super) fn settings(timeline: u32, target: &ConfiguredTarget) -> String {
    let (what, time) = match target {
        ConfiguredTarget::Time(t) => (format!("to {}", pg_time_text(*t)), pg_time_text(*t)),
        ConfiguredTarget::EndOfWal { .. } => ("to its end".to_owned(), String::new()),
    };
    // Only the last setting of a name counts, and PostgreSQL refuses two targets: the other
    // kinds are cleared before the time is set.
    format!(
        "\n# Added by polarbackup restore: replay the WAL in {WAL_DIR}/ {what} on timeline \
         {timeline}, then open read-write and remove {WAL_DIR}/.\n\
         restore_command = 'cp {WAL_DIR}/%f \"%p\"'\n\
         recovery_target_timeline = '{timeline}'\n\
         recovery_target = ''\n\
         recovery_target_lsn = ''\n\
         recovery_target_name = ''\n\
         recovery_target_xid = ''\n\
         recovery_target_time = '{time}'\n\
         recovery_target_inclusive = on\n\
         recovery_target_action = 'promote'\n\
         recovery_min_apply_delay = 0\n\
         recovery_end_command = 'rm -rf {WAL_DIR}'\n\
         archive_cleanup_command = ''\n\
         primary_conninfo = ''\n\
         primary_slot_name = ''\n"
    )
}

/// Writes the settings and `recovery.signal` into `data_dir`, removing a `standby.signal`
/// (which would keep the server a standby forever), and syncs them.
pub(super) fn configure(
    data_dir: &Path,
    timeline: u32,
    target: &ConfiguredTarget,
) -> Result<(), EngineError> {
    let fail = |what: &str, e: std::io::Error| {
        EngineError::Restore(format!("{what} in {}: {e}", data_dir.display()))
    };
    for signal in ["standby.signal", "recovery.signal"] {
        match std::fs::remove_file(data_dir.join(signal)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&format!("removing {signal}"), e)),
        }
    }
    let conf = data_dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&conf)
        .map_err(|e| fail("opening postgresql.auto.conf", e))?;
    f.write_all(settings(timeline, target).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("writing postgresql.auto.conf", e))?;
    let signal = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join("recovery.signal"))
        .map_err(|e| fail("creating recovery.signal", e))?;
    signal
        .sync_all()
        .map_err(|e| fail("syncing recovery.signal", e))?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("syncing the directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_to_the_microsecond_in_utc() {
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        assert_eq!(pg_time_text(t), "2026-12-01 10:00:00.000000+00");
        let t: Timestamp = "2026-12-01T11:00:00.1234567+01:00".parse().unwrap();
        assert_eq!(pg_time_text(t), "2026-12-01 10:00:00.123456+00");
    }

    #[test]
    fn configures_a_time_target_and_clears_what_the_source_had() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postgresql.auto.conf"),
            "primary_conninfo = 'host=old'\nrecovery_target_xid = '77'",
        )
        .unwrap();
        std::fs::write(dir.path().join("standby.signal"), "").unwrap();
        let t: Timestamp = "2026-12-01T10:00:00.5Z".parse().unwrap();
        configure(dir.path(), 3, &ConfiguredTarget::Time(t)).unwrap();
        assert!(!dir.path().join("standby.signal").exists());
        assert!(dir.path().join("recovery.signal").exists());
        let text = std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).unwrap();
        // The last occurrence of each name is what PostgreSQL uses.
        let last = |name: &str| {
            text.lines()
                .filter_map(|l| l.split_once(" = "))
                .filter(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.to_owned())
                .next_back()
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        assert_eq!(last("restore_command"), "'cp polarbackup_wal/%f \"%p\"'");
        assert_eq!(last("recovery_target_timeline"), "'3'");
        assert_eq!(
            last("recovery_target_time"),
            "'2026-12-01 10:00:00.500000+00'"
        );
        assert_eq!(last("recovery_target_action"), "'promote'");
        assert_eq!(last("recovery_target_inclusive"), "on");
        assert_eq!(last("recovery_target_xid"), "''");
        assert_eq!(last("primary_conninfo"), "''");
        // PostgreSQL runs it in the data directory once recovery ended: the WAL is not kept.
        assert_eq!(last("recovery_end_command"), "'rm -rf polarbackup_wal'");
        // The time is set after every other kind of target is cleared.
        let pos = |s: &str| text.rfind(s).unwrap();
        for other in [
            "recovery_target =",
            "recovery_target_lsn",
            "recovery_target_name",
            "recovery_target_xid",
        ] {
            assert!(pos(other) < pos("recovery_target_time"), "{other}");
        }
        assert!(text.starts_with("primary_conninfo = 'host=old'\nrecovery_target_xid = '77'\n"));
    }

    #[test]
    fn replaying_to_the_end_sets_no_time() {
        let dir = tempfile::tempdir().unwrap();
        configure(
            dir.path(),
            1,
            &ConfiguredTarget::EndOfWal { requested: None },
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).unwrap();
        assert!(text.contains("recovery_target_time = ''\n"), "{text}");
        assert!(text.contains("recovery_target_timeline = '1'\n"), "{text}");
        assert!(dir.path().join("recovery.signal").exists());
    }
}
