//! DescribeDBClusters: parameters, filters, paging and the list shape (API.md §4.2), and the
//! cluster facts it shares with DescribeDBClusterAttribute. Unlike the backup APIs, the paging
//! counts and `DeletionLock` are JSON integers here.

use crate::describe_backups::paging;
use crate::{format_time, ApiError, Params};
use polarbackup_model::{Cluster, ClusterStatus};
use serde_json::{json, Map, Value};

/// `DBClusterStatus` values the documentation lists (API.md §2): a filter outside them is
/// malformed; one inside that no polarbackup cluster reaches simply matches nothing.
pub const DOCUMENTED_STATUSES: [&str; 28] = [
    "Creating",
    "Running",
    "Deleting",
    "Deleted",
    "Rebooting",
    "Starting",
    "Stopped",
    "INS_MAINTAINING",
    "NS_MAINTAINING",
    "Switching",
    "DBNodeCreating",
    "DBNodeDeleting",
    "ClassChanging",
    "NetAddressCreating",
    "NetAddressDeleting",
    "NetAddressModifying",
    "MinorVersionUpgrading",
    "STORAGE_EXPANDIN",
    "UPGRADE_FORBIDDEN",
    "Transing",
    "TRANSING",
    "SSL_MODIFYING",
    "TDEModifying",
    "CONFIG_SWITCHING",
    "ROLE_SWITCHING",
    "ClassChanged",
    "MajorVersionUpgrading",
    "StandbyTransing",
];

/// More ids than this in `DBClusterIds` is refused as malformed.
const MAX_IDS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub region: String,
    /// `DBClusterIds`, when given: only these (an id that cannot exist matches nothing).
    pub ids: Option<Vec<String>>,
    pub status: Option<String>,
    /// Matched as a case-insensitive substring of the shown description.
    pub description: Option<String>,
    /// `DBType`, compared case-insensitively.
    pub db_type: Option<String>,
    pub page_size: u32,
    pub page_number: u32,
}

/// A region id as the API writes them (`cn-hangzhou`, `ap-southeast-1`).
pub fn valid_region(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An optional filter: absent or empty is no filter.
fn filter(p: &Params, name: &str) -> Option<String> {
    p.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
}

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let region = p.required("RegionId")?.to_owned();
        if !valid_region(&region) {
            return Err(ApiError::Malformed("RegionId"));
        }
        let ids = match filter(p, "DBClusterIds") {
            None => None,
            Some(raw) => {
                let mut ids: Vec<String> = Vec::new();
                for id in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !ids.iter().any(|i| i == id) {
                        ids.push(id.to_owned());
                    }
                }
                if ids.len() > MAX_IDS {
                    return Err(ApiError::Malformed("DBClusterIds"));
                }
                Some(ids)
            }
        };
        let status = filter(p, "DBClusterStatus");
        if status
            .as_deref()
            .is_some_and(|s| !DOCUMENTED_STATUSES.contains(&s))
        {
            return Err(ApiError::Malformed("DBClusterStatus"));
        }
        let (page_size, page_number) = paging(p)?;
        Ok(Self {
            region,
            ids,
            status,
            description: filter(p, "DBClusterDescription"),
            db_type: filter(p, "DBType"),
            page_size,
            page_number,
        })
    }

    /// Whether a cluster shown with `shown` status passes every filter.
    pub fn matches(&self, c: &Cluster, shown: ClusterStatus) -> bool {
        c.spec.region == self.region
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == c.id.as_str()))
            && self.status.as_deref().is_none_or(|s| s == shown.as_str())
            && self
                .description
                .as_deref()
                .is_none_or(|d| description(c).to_lowercase().contains(&d.to_lowercase()))
            && self
                .db_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(db_type(c)))
    }

    /// The requested page of `all` (every match, in order); past the end, nothing.
    pub fn page<T>(&self, all: Vec<T>) -> Vec<T> {
        let size = self.page_size as usize;
        let skip = (self.page_number as usize - 1).saturating_mul(size);
        all.into_iter().skip(skip).take(size).collect()
    }
}

/// The status the cluster APIs show: a cluster whose release the workers have not finished
/// is still `Deleting`.
pub fn shown_status(c: &Cluster, releasing: bool) -> ClusterStatus {
    if releasing {
        ClusterStatus::Deleting
    } else {
        c.status
    }
}

/// `DBClusterDescription`: the one registered, else (as PolarDB does) the id.
pub fn description(c: &Cluster) -> &str {
    c.spec
        .description
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or(c.id.as_str())
}

/// `DBType` for the registered engine.
pub fn db_type(c: &Cluster) -> &str {
    match c.spec.engine.as_str() {
        "postgresql" => "PostgreSQL",
        other => other,
    }
}

/// What both cluster views say the same way; `created` is the view's own name for the
/// creation time (`CreateTime` in the list, `CreationTime` in the attribute view).
pub(crate) fn common_fields(
    c: &Cluster,
    shown: ClusterStatus,
    created: &str,
) -> Map<String, Value> {
    let mut o = Map::new();
    for (k, v) in [
        ("DBClusterId", c.id.as_str()),
        ("DBClusterDescription", description(c)),
        ("DBClusterStatus", shown.as_str()),
        ("DBType", db_type(c)),
        ("Engine", "POLARDB"),
        ("RegionId", c.spec.region.as_str()),
        ("PayType", "Postpaid"),
        ("LockMode", "Unlock"),
        ("Expired", "false"),
    ] {
        o.insert(k.into(), Value::String(v.into()));
    }
    o.insert(created.into(), Value::String(format_time(c.created_at)));
    o.insert("DeletionLock".into(), json!(0));
    o
}

fn item(c: &Cluster, shown: ClusterStatus) -> Value {
    let mut o = common_fields(c, shown, "CreateTime");
    o.insert("DBNodes".into(), json!({ "DBNode": [] }));
    o.insert("Tags".into(), json!({ "Tag": [] }));
    Value::Object(o)
}

/// One page: `page` are the clusters on it with their shown status, `total` every match.
pub fn response(
    page: &[(&Cluster, ClusterStatus)],
    total: usize,
    page_number: u32,
) -> Map<String, Value> {
    let items: Vec<Value> = page.iter().map(|(c, s)| item(c, *s)).collect();
    let mut body = Map::new();
    body.insert("PageNumber".into(), json!(page_number));
    body.insert("PageRecordCount".into(), json!(items.len()));
    body.insert("TotalRecordCount".into(), json!(total));
    body.insert("Items".into(), json!({ "DBCluster": items }));
    body
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jiff::Timestamp;
    use polarbackup_model::{AccountId, DbClusterId, NewCluster, TlsMode};

    pub(crate) fn cluster(id: &str, description: Option<&str>) -> Cluster {
        Cluster {
            id: DbClusterId::parse(id).expect("id"),
            spec: NewCluster {
                account: AccountId::parse("1234567890123456").expect("account"),
                region: "cn-hangzhou".into(),
                engine: "postgresql".into(),
                host: "db".into(),
                port: 5432,
                user: "u".into(),
                password: Some("secret".into()),
                database: None,
                description: description.map(str::to_owned),
                tls_mode: TlsMode::Prefer,
                tls_ca_file: None,
            },
            created_at: Timestamp::from_second(1_596_871_441).expect("t"),
            status: ClusterStatus::Running,
            deleted_at: None,
            deletion_retention: None,
            deletion_job: None,
            full_backup_every: None,
        }
    }

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn parameters_and_their_domains() {
        assert_eq!(parse(""), Err(ApiError::MissingParameter("RegionId")));
        assert_eq!(
            parse("RegionId="),
            Err(ApiError::MissingParameter("RegionId"))
        );
        for bad in ["CN-HANGZHOU", "cn hangzhou", "-cn", "x", "cn_hangzhou"] {
            assert_eq!(
                parse(&format!("RegionId={bad}")),
                Err(ApiError::Malformed("RegionId")),
                "{bad}"
            );
        }
        let r = parse("RegionId=cn-hangzhou").expect("ok");
        assert_eq!((r.page_size, r.page_number), (30, 1), "the defaults");
        assert_eq!((r.ids, r.status, r.description), (None, None, None));
        for (q, e) in [
            ("&PageSize=20", ApiError::Malformed("PageSize")),
            ("&PageSize=0", ApiError::Malformed("PageSize")),
            ("&PageSize=x", ApiError::Malformed("PageSize")),
            ("&PageNumber=0", ApiError::Malformed("PageNumber")),
            ("&PageNumber=-1", ApiError::Malformed("PageNumber")),
            (
                "&DBClusterStatus=running",
                ApiError::Malformed("DBClusterStatus"),
            ),
            (
                "&DBClusterStatus=Gone",
                ApiError::Malformed("DBClusterStatus"),
            ),
        ] {
            assert_eq!(parse(&format!("RegionId=cn-hangzhou{q}")), Err(e), "{q}");
        }
        for size in [30, 50, 100] {
            let r = parse(&format!(
                "RegionId=cn-hangzhou&PageSize={size}&PageNumber=4"
            ))
            .expect("ok");
            assert_eq!((r.page_size, r.page_number), (size, 4));
        }
        let r =
            parse("RegionId=cn-hangzhou&DBClusterIds=pc-a,%20pc-b,pc-a,,&DBClusterStatus=Stopped")
                .expect("ok");
        assert_eq!(r.ids, Some(vec!["pc-a".to_owned(), "pc-b".to_owned()]));
        assert_eq!(r.status.as_deref(), Some("Stopped"));
        let many = (0..101)
            .map(|i| format!("pc-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            parse(&format!("RegionId=cn-hangzhou&DBClusterIds={many}")),
            Err(ApiError::Malformed("DBClusterIds"))
        );
        let (status, code, _) = ApiError::Malformed("RegionId").describe();
        assert_eq!((status, code.as_str()), (400, "InvalidRegionId.Malformed"));
    }

    #[test]
    fn filters() {
        let a = cluster("pc-aaaaaaaaaaaaaaa", Some("Orders DB"));
        let b = cluster("pc-bbbbbbbbbbbbbbb", None);
        let r = |q: &str| parse(&format!("RegionId=cn-hangzhou{q}")).expect(q);
        let running = ClusterStatus::Running;
        assert!(r("").matches(&a, running));
        assert!(!parse("RegionId=cn-beijing")
            .expect("ok")
            .matches(&a, running));
        assert!(r("&DBClusterIds=pc-bbbbbbbbbbbbbbb,pc-aaaaaaaaaaaaaaa").matches(&a, running));
        assert!(!r("&DBClusterIds=pc-bbbbbbbbbbbbbbb,nonsense").matches(&a, running));
        assert!(r("&DBClusterStatus=Running").matches(&a, running));
        assert!(!r("&DBClusterStatus=Running").matches(&a, ClusterStatus::Deleting));
        assert!(r("&DBClusterStatus=Deleting").matches(&a, ClusterStatus::Deleting));
        assert!(r("&DBClusterDescription=orders").matches(&a, running));
        assert!(!r("&DBClusterDescription=orders").matches(&b, running));
        assert!(
            r("&DBClusterDescription=bbbb").matches(&b, running),
            "the id stands in"
        );
        assert!(r("&DBType=postgresql").matches(&a, running));
        assert!(!r("&DBType=MySQL").matches(&a, running));
    }

    #[test]
    fn paging_past_the_end_is_empty() {
        let r = parse("RegionId=cn-hangzhou&PageSize=30&PageNumber=2").expect("ok");
        let all: Vec<u32> = (0..65).collect();
        assert_eq!(r.page(all.clone()), (30..60).collect::<Vec<_>>());
        let r = parse("RegionId=cn-hangzhou&PageNumber=3").expect("ok");
        assert_eq!(r.page(all.clone()), (60..65).collect::<Vec<_>>());
        let r = parse("RegionId=cn-hangzhou&PageNumber=4294967295").expect("ok");
        assert!(r.page(all).is_empty());
    }

    #[test]
    fn shape_with_integer_counts() {
        let a = cluster("pc-aaaaaaaaaaaaaaa", Some("Orders DB"));
        let mut gone = a.clone();
        gone.status = ClusterStatus::Deleted;
        assert_eq!(shown_status(&gone, true), ClusterStatus::Deleting);
        assert_eq!(shown_status(&a, false), ClusterStatus::Running);
        let body = Value::Object(response(&[(&a, ClusterStatus::Running)], 31, 2));
        assert_eq!(
            body,
            json!({"PageNumber":2,"PageRecordCount":1,"TotalRecordCount":31,"Items":{"DBCluster":[{
                "DBClusterId":"pc-aaaaaaaaaaaaaaa","DBClusterDescription":"Orders DB",
                "DBClusterStatus":"Running","DBType":"PostgreSQL","Engine":"POLARDB",
                "RegionId":"cn-hangzhou","PayType":"Postpaid","LockMode":"Unlock",
                "Expired":"false","CreateTime":"2020-08-08T07:24:01Z","DeletionLock":0,
                "DBNodes":{"DBNode":[]},"Tags":{"Tag":[]}}]}})
        );
        assert!(!body.to_string().contains("secret"));
        assert_eq!(
            Value::Object(response(&[], 0, 1)),
            json!({"PageNumber":1,"PageRecordCount":0,"TotalRecordCount":0,"Items":{"DBCluster":[]}})
        );
    }
}
