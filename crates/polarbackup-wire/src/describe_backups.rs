//! DescribeBackups: request validation, paging and the response shape (API.md §3.3).

use crate::{format_time, parse_time_input, ApiError, Params};
use jiff::Timestamp;
use polarbackup_model::{BackupSet, BackupSetStatus, JobMode};
use serde_json::{Map, Value};

pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };
pub const PAGE_SIZES: [u32; 3] = [30, 50, 100];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub backup: BackupSelector,
    pub status: Option<BackupSetStatus>,
    pub mode: Option<JobMode>,
    pub page_size: u32,
    pub page_number: u32,
}

pub use crate::params::IdSelector as BackupSelector;

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let (start, end) = time_range(p)?;
        let status = p
            .get("BackupStatus")
            .map(|s| s.parse().map_err(|()| ApiError::Malformed("BackupStatus")))
            .transpose()?;
        let mode = p
            .get("BackupMode")
            .map(|m| m.parse().map_err(|()| ApiError::BackupModeMalformed))
            .transpose()?;
        let (page_size, page_number) = paging(p)?;
        let backup = p.id_filter("BackupId");
        Ok(Self {
            cluster_id,
            start,
            end,
            backup,
            status,
            mode,
            page_size,
            page_number,
        })
    }
}

/// The required `StartTime`..`EndTime` of a listing (DescribeBackups, DescribeDetachedBackups,
/// DescribeBackupLogs): each `YYYY-MM-DDThh:mmZ` (or with seconds), the end later than the start.
pub(crate) fn time_range(p: &Params) -> Result<(Timestamp, Timestamp), ApiError> {
    let start =
        parse_time_input(p.required("StartTime")?).ok_or(ApiError::Malformed("StartTime"))?;
    let end = parse_time_input(p.required("EndTime")?).ok_or(ApiError::Malformed("EndTime"))?;
    if end <= start {
        return Err(ApiError::Malformed("EndTime"));
    }
    Ok((start, end))
}

/// `PageSize` (30, 50 or 100; default 30) and `PageNumber` (from 1; default 1).
pub(crate) fn paging(p: &Params) -> Result<(u32, u32), ApiError> {
    let page_size = match p.get("PageSize") {
        None => 30,
        Some(s) => s
            .parse()
            .ok()
            .filter(|n| PAGE_SIZES.contains(n))
            .ok_or(ApiError::Malformed("PageSize"))?,
    };
    let page_number = match p.get("PageNumber") {
        None => 1,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1 && s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ApiError::Malformed("PageNumber"))?,
    };
    Ok((page_size, page_number))
}

/// The fields DescribeBackups and DescribeDetachedBackups share (every scalar a string).
pub(crate) fn common_fields(s: &BackupSet) -> Map<String, Value> {
    let fields = [
        ("BackupId", s.id.to_string()),
        ("DBClusterId", s.cluster_id.as_str().to_owned()),
        ("BackupStatus", s.status.as_str().to_owned()),
        ("BackupMode", s.mode.as_str().to_owned()),
        ("BackupMethod", "Snapshot".to_owned()),
        ("BackupType", "FullBackup".to_owned()),
        ("BackupsLevel", "Level-1".to_owned()),
        ("BackupStartTime", format_time(s.start_time)),
        ("BackupEndTime", format_time(s.end_time)),
        ("BackupSetSize", s.size.to_string()),
        (
            "ConsistentTime",
            s.consistent_time
                .map(|t| t.as_second().to_string())
                .unwrap_or_default(),
        ),
        (
            "IsAvail",
            if s.is_available() { "1" } else { "0" }.to_owned(),
        ),
    ];
    fields
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect()
}

fn backup(s: &BackupSet) -> Value {
    let mut o = common_fields(s);
    if let Some(c) = &s.comment {
        o.insert("Comment".into(), Value::String(c.clone()));
    }
    Value::Object(o)
}

/// One page of `Items.Backup`; counts are strings, as documented.
pub(crate) fn page(items: Vec<Value>, total: u64, page_number: u32) -> Map<String, Value> {
    page_of("Backup", items, total, page_number)
}

/// One page of `Items.<element>`, with the paging counts as strings.
pub(crate) fn page_of(
    element: &str,
    items: Vec<Value>,
    total: u64,
    page_number: u32,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("TotalRecordCount".into(), Value::String(total.to_string()));
    body.insert("PageNumber".into(), Value::String(page_number.to_string()));
    body.insert(
        "PageRecordCount".into(),
        Value::String(items.len().to_string()),
    );
    let mut wrapper = Map::new();
    wrapper.insert(element.into(), Value::Array(items));
    body.insert("Items".into(), Value::Object(wrapper));
    body
}

pub fn response(sets: &[BackupSet], total: u64, page_number: u32) -> Map<String, Value> {
    page(sets.iter().map(backup).collect(), total, page_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polarbackup_model::{BackupJobId, DbClusterId};
    use serde_json::json;

    const BASE: &str = "DBClusterId=pc-a&StartTime=2020-11-14T00:00Z&EndTime=2020-11-16T00:00Z";

    fn parse(extra: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(&format!("{BASE}{extra}"), None))
    }

    #[test]
    fn validation() {
        let r = parse("").expect("ok");
        assert_eq!(
            (r.page_size, r.page_number, r.backup),
            (30, 1, BackupSelector::All)
        );
        assert_eq!(
            Request::parse(&Params::decode(
                "DBClusterId=pc-a&EndTime=2020-11-16T00:00Z",
                None
            )),
            Err(ApiError::MissingParameter("StartTime"))
        );
        let cases = [
            ("&PageSize=20", ApiError::Malformed("PageSize")),
            ("&PageSize=abc", ApiError::Malformed("PageSize")),
            ("&PageNumber=0", ApiError::Malformed("PageNumber")),
            ("&PageNumber=+1", ApiError::Malformed("PageNumber")),
            ("&BackupStatus=success", ApiError::Malformed("BackupStatus")),
            ("&BackupMode=auto", ApiError::BackupModeMalformed),
        ];
        for (extra, err) in cases {
            assert_eq!(parse(extra), Err(err), "{extra}");
        }
        let inverted = "DBClusterId=pc-a&StartTime=2020-11-16T00:00Z&EndTime=2020-11-14T00:00Z";
        assert_eq!(
            Request::parse(&Params::decode(inverted, None)),
            Err(ApiError::Malformed("EndTime"))
        );
        let bad_start = "DBClusterId=pc-a&StartTime=yesterday&EndTime=2020-11-14T00:00Z";
        assert_eq!(
            Request::parse(&Params::decode(bad_start, None)),
            Err(ApiError::Malformed("StartTime"))
        );
        let r = parse("&PageSize=100&PageNumber=3&BackupId=x&BackupStatus=Failed").expect("ok");
        assert_eq!((r.page_size, r.page_number), (100, 3));
        assert_eq!(r.backup, BackupSelector::Nothing);
        assert_eq!(r.status, Some(BackupSetStatus::Failed));
    }

    #[test]
    fn response_types_are_strings() {
        let set = BackupSet {
            id: BackupJobId(61),
            cluster_id: DbClusterId::parse("pc-abcdefghij12345").expect("id"),
            mode: JobMode::Manual,
            status: BackupSetStatus::Success,
            start_time: Timestamp::from_second(1_605_425_405).expect("t"),
            end_time: Timestamp::from_second(1_605_425_420).expect("t"),
            consistent_time: Some(Timestamp::from_second(1_605_425_407).expect("t")),
            size: 4_639_948_800,
            stored_size: 1,
            comment: Some("nightly".into()),
            wal: None,
            corrupt: None,
            parent: None,
        };
        let body = Value::Object(response(&[set], 7, 2));
        assert_eq!(
            body,
            json!({"TotalRecordCount":"7","PageNumber":"2","PageRecordCount":"1","Items":{"Backup":[{
                "BackupId":"61","DBClusterId":"pc-abcdefghij12345","BackupStatus":"Success","BackupMode":"Manual",
                "BackupMethod":"Snapshot","BackupType":"FullBackup","BackupsLevel":"Level-1",
                "BackupStartTime":"2020-11-15T07:30:05Z","BackupEndTime":"2020-11-15T07:30:20Z",
                "BackupSetSize":"4639948800","ConsistentTime":"1605425407","IsAvail":"1","Comment":"nightly"}]}})
        );
    }

    #[test]
    fn an_incremental_set_lists_as_a_full_snapshot() {
        // API.md documents only FullBackup and Snapshot: an incremental set restores to a
        // whole cluster like any other, so it is listed the same way.
        let set = |id: u64, parent: Option<u64>| BackupSet {
            id: BackupJobId(id),
            cluster_id: DbClusterId::parse("pc-abcdefghij12345").expect("id"),
            mode: JobMode::Automated,
            status: BackupSetStatus::Success,
            start_time: Timestamp::from_second(1_605_425_405).expect("t"),
            end_time: Timestamp::from_second(1_605_425_420).expect("t"),
            consistent_time: Some(Timestamp::from_second(1_605_425_407).expect("t")),
            size: 10,
            stored_size: 1,
            comment: None,
            wal: None,
            corrupt: None,
            parent: parent.map(BackupJobId),
        };
        let body = Value::Object(response(&[set(62, Some(61)), set(61, None)], 2, 1));
        let items = body["Items"]["Backup"].as_array().expect("items");
        assert_eq!(items.len(), 2);
        for item in items {
            assert_eq!(item["BackupType"], "FullBackup", "{item}");
            assert_eq!(item["BackupMethod"], "Snapshot", "{item}");
            assert_eq!(item["BackupsLevel"], "Level-1", "{item}");
        }
        // Nothing else differs either: the parent is not shown.
        let mut full = items[1].clone();
        full["BackupId"] = "62".into();
        assert_eq!(items[0], full);
    }
}
