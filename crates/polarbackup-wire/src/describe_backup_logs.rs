//! DescribeBackupLogs: request validation, paging and the response shape (API.md §3.7). Its
//! time range and paging are DescribeBackups' (the same formats and error codes).

use crate::describe_backups::{page_of, paging, time_range};
use crate::download_link::Link;
use crate::{format_time, ApiError, Params};
use jiff::Timestamp;
use polarbackup_model::{WalObject, WalObjectKind};
use serde_json::{Map, Value};

pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub page_size: u32,
    pub page_number: u32,
}

impl Request {
    /// `BackupRegion` (where cross-region copies are) is ignored, as DescribeBackups ignores
    /// it: every log backup is in the cluster's own region.
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let (start, end) = time_range(p)?;
        let (page_size, page_number) = paging(p)?;
        Ok(Self {
            cluster_id,
            start,
            end,
            page_size,
            page_number,
        })
    }
}

/// `BackupLogName`: PostgreSQL's file name; a partial segment gets the `.partial` suffix
/// `pg_receivewal` and `archive_command` users know, so it is never mistaken for a whole one.
pub fn backup_log_name(o: &WalObject) -> String {
    match o.object.kind {
        WalObjectKind::Partial => format!("{}.partial", o.object.name),
        WalObjectKind::Segment | WalObjectKind::History => o.object.name.clone(),
    }
}

/// One `BackupLog`: every field a string, sizes in raw bytes (what PostgreSQL reads). The
/// intranet link is the same link: the service has one address.
fn item(o: &WalObject, link: &Link) -> Value {
    let fields = [
        ("BackupLogId", o.id.to_string()),
        ("BackupLogName", backup_log_name(o)),
        ("BackupLogSize", o.object.size.to_string()),
        ("BackupLogStartTime", format_time(o.object.start_time)),
        ("BackupLogEndTime", format_time(o.object.end_time)),
        ("DownloadLink", link.url.clone()),
        ("IntranetDownloadLink", link.url.clone()),
        ("LinkExpiredTime", link.expired_time()),
    ];
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect(),
    )
}

/// One page of `Items.BackupLog`, each object with its link.
pub fn response(objects: &[(WalObject, Link)], total: u64, page_number: u32) -> Map<String, Value> {
    let items = objects.iter().map(|(o, l)| item(o, l)).collect();
    page_of("BackupLog", items, total, page_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download_link::Host;
    use polarbackup_model::{BackupLogId, DbClusterId, Lsn, NewWalObject};
    use serde_json::json;

    const BASE: &str = "DBClusterId=pc-a&StartTime=2020-11-14T00:00Z&EndTime=2020-11-16T00:00Z";

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn validation_matches_describe_backups() {
        let r = parse(BASE).expect("ok");
        assert_eq!((r.page_size, r.page_number), (30, 1));
        assert_eq!(r.start.as_second(), 1_605_312_000);
        let r = parse(&format!(
            "{BASE}&PageSize=50&PageNumber=2&BackupRegion=cn-beijing"
        ))
        .expect("ok");
        assert_eq!((r.page_size, r.page_number), (50, 2));
        let seconds =
            "DBClusterId=pc-a&StartTime=2020-11-14T00:00:05Z&EndTime=2020-11-14T00:00:06Z";
        assert!(parse(seconds).is_ok());
        let cases = [
            (
                "StartTime=2020-11-14T00:00Z&EndTime=2020-11-16T00:00Z",
                ApiError::MissingParameter("DBClusterId"),
            ),
            (
                "DBClusterId=pc-a&EndTime=2020-11-16T00:00Z",
                ApiError::MissingParameter("StartTime"),
            ),
            (
                "DBClusterId=pc-a&StartTime=2020-11-14T00:00Z",
                ApiError::MissingParameter("EndTime"),
            ),
            (
                "DBClusterId=pc-a&StartTime=2020-11-14&EndTime=2020-11-16T00:00Z",
                ApiError::Malformed("StartTime"),
            ),
            (
                "DBClusterId=pc-a&StartTime=2020-11-14T00:00Z&EndTime=tomorrow",
                ApiError::Malformed("EndTime"),
            ),
            (
                "DBClusterId=pc-a&StartTime=2020-11-16T00:00Z&EndTime=2020-11-14T00:00Z",
                ApiError::Malformed("EndTime"),
            ),
            (
                "DBClusterId=pc-a&StartTime=2020-11-14T00:00Z&EndTime=2020-11-14T00:00Z",
                ApiError::Malformed("EndTime"),
            ),
        ];
        for (q, err) in cases {
            assert_eq!(parse(q), Err(err), "{q}");
        }
        for (extra, err) in [
            ("&PageSize=10", ApiError::Malformed("PageSize")),
            ("&PageSize=", ApiError::Malformed("PageSize")),
            ("&PageNumber=0", ApiError::Malformed("PageNumber")),
            ("&PageNumber=-1", ApiError::Malformed("PageNumber")),
            ("&PageNumber=x", ApiError::Malformed("PageNumber")),
        ] {
            assert_eq!(parse(&format!("{BASE}{extra}")), Err(err), "{extra}");
        }
    }

    fn object(id: u64, kind: WalObjectKind, name: &str) -> WalObject {
        WalObject {
            id: BackupLogId(id),
            object: NewWalObject {
                cluster_id: DbClusterId::parse("pc-abcdefghij12345").expect("id"),
                timeline: 1,
                kind,
                name: name.into(),
                start: Lsn(0x0300_0000),
                end: Lsn(0x0400_0000),
                size: 16_777_216,
                stored_size: 1234,
                key: format!("wal/pc-abcdefghij12345/{name}.zst"),
                digest: "00".repeat(32),
                // The server's microseconds are not shown: whole seconds, truncated.
                start_time: Timestamp::from_microsecond(1_605_425_405_500_000).expect("t"),
                end_time: Timestamp::from_microsecond(1_605_425_420_999_999).expect("t"),
            },
        }
    }

    #[test]
    fn items_are_strings_and_partials_are_named_so() {
        let host = Host::parse("127.0.0.1:9").expect("host");
        let expires = Timestamp::from_second(1_605_429_020).expect("t");
        let seg = object(7, WalObjectKind::Segment, "000000010000000000000003");
        let part = object(8, WalObjectKind::Partial, "000000010000000000000004");
        let hist = object(9, WalObjectKind::History, "00000002.history");
        let l = |o: &WalObject| Link::new(&host, o.id, expires, "ff");
        let body = response(
            &[
                (seg.clone(), l(&seg)),
                (part.clone(), l(&part)),
                (hist.clone(), l(&hist)),
            ],
            12,
            2,
        );
        let url = "http://127.0.0.1:9/backup-logs/7?Expires=1605429020&Signature=ff";
        assert_eq!(
            body["Items"]["BackupLog"][0],
            json!({"BackupLogId":"7","BackupLogName":"000000010000000000000003",
                   "BackupLogSize":"16777216","BackupLogStartTime":"2020-11-15T07:30:05Z",
                   "BackupLogEndTime":"2020-11-15T07:30:20Z","DownloadLink":url,
                   "IntranetDownloadLink":url,"LinkExpiredTime":"2020-11-15T08:30:20Z"})
        );
        assert_eq!(
            body["Items"]["BackupLog"][1]["BackupLogName"],
            "000000010000000000000004.partial"
        );
        assert_eq!(
            body["Items"]["BackupLog"][2]["BackupLogName"],
            "00000002.history"
        );
        assert_eq!(
            (
                &body["TotalRecordCount"],
                &body["PageNumber"],
                &body["PageRecordCount"]
            ),
            (&json!("12"), &json!("2"), &json!("3"))
        );
        assert_eq!(
            Value::Object(response(&[], 0, 1)),
            json!({"TotalRecordCount":"0","PageNumber":"1","PageRecordCount":"0","Items":{"BackupLog":[]}})
        );
    }
}
