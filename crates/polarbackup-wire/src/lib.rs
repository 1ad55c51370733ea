//! The PolarDB OpenAPI (2017-08-01) as data: which actions exist, how their parameters are
//! read and validated, how responses and errors are shaped and rendered.

pub mod actions;
pub mod backup_log_download_links;
pub mod backup_policy;
pub mod create_backup;
pub mod delete_backup;
pub mod delete_db_cluster;
pub mod describe_backup_logs;
pub mod describe_backup_tasks;
pub mod describe_backups;
pub mod describe_db_cluster_attribute;
pub mod describe_db_clusters;
pub mod describe_detached_backups;
pub mod download_link;
pub mod error;
pub mod log_backup_policy;
pub mod params;
pub mod recovery_time;
pub mod render;

pub use actions::Action;
pub use error::{AccessDenied, ApiError};
pub use params::Params;
pub use render::{Format, Rendered};

/// The only API version this service speaks.
pub const API_VERSION: &str = "2017-08-01";

/// Query-range inputs: `YYYY-MM-DDThh:mmZ` as documented, and `YYYY-MM-DDThh:mm:ssZ` as some
/// clients send. UTC only.
pub fn parse_time_input(s: &str) -> Option<jiff::Timestamp> {
    let minute = jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%MZ", s);
    let second = || jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%SZ", s);
    let dt = minute.or_else(|_| second()).ok()?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Output timestamps: `YYYY-MM-DDThh:mm:ssZ`, UTC.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_seconds_with_z() {
        let t = jiff::Timestamp::from_second(1_596_871_441).expect("time");
        assert_eq!(super::format_time(t), "2020-08-08T07:24:01Z");
        let last = jiff::Timestamp::from_microsecond(1_596_871_441_999_999).expect("time");
        assert_eq!(
            super::format_time(last),
            "2020-08-08T07:24:01Z",
            "truncated, never rounded up"
        );
    }

    #[test]
    fn time_inputs() {
        let t = |s| super::parse_time_input(s).map(|t| t.as_second());
        assert_eq!(t("2020-08-08T07:24Z"), Some(1_596_871_440));
        assert_eq!(t("2020-08-08T07:24:01Z"), Some(1_596_871_441));
        for bad in [
            "2020-08-08T07:24",
            "2020-08-08 07:24Z",
            "2020-13-08T07:24Z",
            "",
            "2020-08-08T07:24+08:00",
            "2020-08-08T07:24Zjunk",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
