//! DescribeLocalAvailableRecoveryTime (API.md §5.3): the span a point-in-time restore can
//! reach, as the model's `recovery_window` computes it.

use crate::{format_time, ApiError};
use polarbackup_model::log_backup::RecoveryWindow;
use polarbackup_model::DbClusterId;
use serde_json::{Map, Value};

/// No error data is documented; DescribeBackups' 404 is the closest.
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// Both ends `YYYY-MM-DDThh:mm:ssZ`. With nothing restorable both are empty strings: the SDK
/// models take either, and empty strings keep the shape fixed (as `ConsistentTime` does).
pub fn response(cluster: &DbClusterId, window: Option<RecoveryWindow>) -> Map<String, Value> {
    let (begin, end) = window.map_or((String::new(), String::new()), |w| {
        (format_time(w.begin), format_time(w.end))
    });
    let mut body = Map::new();
    body.insert("DBClusterId".into(), Value::String(cluster.to_string()));
    body.insert("RecoveryBeginTime".into(), Value::String(begin));
    body.insert("RecoveryEndTime".into(), Value::String(end));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use serde_json::json;

    #[test]
    fn a_window_or_empty_strings() {
        let id = DbClusterId::parse("pc-abcdefghij12345").expect("id");
        let w = RecoveryWindow {
            begin: Timestamp::from_second(1_605_425_407).expect("t"),
            end: Timestamp::from_second(1_605_511_807).expect("t"),
        };
        assert_eq!(
            Value::Object(response(&id, Some(w))),
            json!({"DBClusterId":"pc-abcdefghij12345","RecoveryBeginTime":"2020-11-15T07:30:07Z",
                   "RecoveryEndTime":"2020-11-16T07:30:07Z"})
        );
        assert_eq!(
            Value::Object(response(&id, None)),
            json!({"DBClusterId":"pc-abcdefghij12345","RecoveryBeginTime":"","RecoveryEndTime":""})
        );
    }

    /// The window ends at the newest WAL's server time, with microseconds: the shown end is
    /// that second, truncated, so a restore to exactly what is shown is inside the window.
    #[test]
    fn the_end_is_truncated_to_a_time_inside_the_window() {
        let id = DbClusterId::parse("pc-abcdefghij12345").expect("id");
        let w = RecoveryWindow {
            begin: Timestamp::from_second(1_605_425_407).expect("t"),
            end: Timestamp::from_microsecond(1_605_511_807_999_999).expect("t"),
        };
        let body = response(&id, Some(w));
        assert_eq!(body["RecoveryEndTime"], "2020-11-16T07:30:07Z");
        let shown = body["RecoveryEndTime"].as_str().expect("string");
        let shown = crate::parse_time_input(shown).expect("parses back");
        assert!(w.begin <= shown && shown <= w.end, "{shown} outside {w:?}");
    }
}
