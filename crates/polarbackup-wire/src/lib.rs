//! The PolarDB OpenAPI (2017-08-01) as data: which actions exist, how their parameters are
//! read and validated, how responses and errors are shaped and rendered.

pub mod actions;
pub mod describe_backup_tasks;
pub mod error;
pub mod params;
pub mod render;

pub use actions::Action;
pub use error::ApiError;
pub use params::Params;
pub use render::{Format, Rendered};

/// The only API version this service speaks.
pub const API_VERSION: &str = "2017-08-01";

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
    }
}
