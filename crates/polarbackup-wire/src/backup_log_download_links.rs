//! DescribeBackupLogDownloadLinks (API.md §5.5): fresh links for chosen WAL objects, each item
//! with its own `ErrorCode`/`Message` (empty when the link was made).
//!
//! No error codes are documented for this action. An `ExpireHours` outside 1–596523 and a
//! malformed `BackupLogIds` list get the API's usual `Invalid<Param>.Malformed` (400); an id
//! the cluster does not have is that item's `InvalidBackupLogId.NotFound`, like
//! DeleteBackup's `InvalidBackupSetID.NotFound`, without failing the others.

use crate::download_link::Link;
use crate::{ApiError, Params};
use polarbackup_model::BackupLogId;
use serde_json::{Map, Value};

pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 404 };

/// The SDK's documented range of `ExpireHours` (the largest keeps the expiry in 31 bits).
pub const MAX_EXPIRE_HOURS: u32 = 596_523;
/// More ids than one call should ask links for.
const MAX_IDS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    /// Each id as sent (echoed back), and the id if it is one; duplicates dropped.
    pub ids: Vec<(String, Option<BackupLogId>)>,
    /// `None`: the server's default link lifetime.
    pub expire_hours: Option<u32>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let raw = p.required("BackupLogIds")?;
        let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
        if parts.len() > MAX_IDS || parts.iter().any(|s| s.is_empty()) {
            return Err(ApiError::Malformed("BackupLogIds"));
        }
        let mut ids: Vec<(String, Option<BackupLogId>)> = Vec::with_capacity(parts.len());
        for part in parts {
            if !ids.iter().any(|(s, _)| s == part) {
                ids.push((part.to_owned(), BackupLogId::parse(part)));
            }
        }
        let expire_hours = p
            .get("ExpireHours")
            .map(|s| {
                Some(s)
                    .filter(|s| {
                        !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|h| (1..=MAX_EXPIRE_HOURS).contains(h))
                    .ok_or(ApiError::Malformed("ExpireHours"))
            })
            .transpose()?;
        Ok(Self {
            cluster_id,
            ids,
            expire_hours,
        })
    }
}

/// `BackupLogDownloadLinkItem`, a bare array, one item per requested id in request order:
/// the link, or the reason there is none.
pub fn response(items: &[(String, Option<Link>)]) -> Map<String, Value> {
    let items: Vec<Value> = items
        .iter()
        .map(|(id, link)| {
            let (url, expires, code, message) = match link {
                Some(l) => (
                    l.url.clone(),
                    l.expired_time(),
                    String::new(),
                    String::new(),
                ),
                None => {
                    let (_, code, message) = ApiError::BackupLogNotFound.describe();
                    (String::new(), String::new(), code, message)
                }
            };
            let fields = [
                ("BackupLogId", id.clone()),
                ("DownloadLink", url.clone()),
                ("IntranetDownloadLink", url),
                ("LinkExpiredTime", expires),
                ("ErrorCode", code),
                ("Message", message),
            ];
            Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v)))
                    .collect(),
            )
        })
        .collect();
    let mut body = Map::new();
    body.insert("BackupLogDownloadLinkItem".into(), Value::Array(items));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download_link::Host;
    use jiff::Timestamp;
    use serde_json::json;

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn validation() {
        assert_eq!(
            parse("BackupLogIds=1"),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(
            parse("DBClusterId=pc-a"),
            Err(ApiError::MissingParameter("BackupLogIds"))
        );
        let r = parse("DBClusterId=pc-a&BackupLogIds=3,%204,3,x").expect("ok");
        assert_eq!(
            r.ids,
            vec![
                ("3".to_owned(), Some(BackupLogId(3))),
                ("4".to_owned(), Some(BackupLogId(4))),
                ("x".to_owned(), None),
            ]
        );
        assert_eq!(r.expire_hours, None);
        for (hours, want) in [("1", 1), ("596523", MAX_EXPIRE_HOURS)] {
            let r = parse(&format!(
                "DBClusterId=pc-a&BackupLogIds=1&ExpireHours={hours}"
            ))
            .expect("ok");
            assert_eq!(r.expire_hours, Some(want));
        }
        for bad in ["0", "596524", "-1", "", "1.5", "+1", "99999999999"] {
            assert_eq!(
                parse(&format!(
                    "DBClusterId=pc-a&BackupLogIds=1&ExpireHours={bad}"
                )),
                Err(ApiError::Malformed("ExpireHours")),
                "{bad:?}"
            );
        }
        for bad in ["1,,2", "1,", ",", &vec!["1"; 101].join(",")] {
            assert_eq!(
                parse(&format!("DBClusterId=pc-a&BackupLogIds={bad}")),
                Err(ApiError::Malformed("BackupLogIds")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn items_carry_a_link_or_an_error() {
        let host = Host::parse("h:1").expect("host");
        let expires = Timestamp::from_second(1_605_429_020).expect("t");
        let link = Link::new(&host, BackupLogId(5), expires, "00");
        let body = response(&[("5".into(), Some(link.clone())), ("x".into(), None)]);
        assert_eq!(
            Value::Object(body),
            json!({"BackupLogDownloadLinkItem": [
                {"BackupLogId":"5","DownloadLink":link.url,"IntranetDownloadLink":link.url,
                 "LinkExpiredTime":"2020-11-15T08:30:20Z","ErrorCode":"","Message":""},
                {"BackupLogId":"x","DownloadLink":"","IntranetDownloadLink":"",
                 "LinkExpiredTime":"","ErrorCode":"InvalidBackupLogId.NotFound",
                 "Message":"The specified backup log does not exist."}
            ]})
        );
    }
}
