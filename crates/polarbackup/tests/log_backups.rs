//! The log-backup API end to end through the official SDKs (new V3, old V1): the log-backup
//! policy, DescribeBackupLogs with paging and signed download links that return the archived
//! bytes (expired, tampered and foreign links refused alike), DescribeBackupLogDownloadLinks,
//! DescribeLocalAvailableRecoveryTime, every documented error, cluster states and RAM. WAL
//! objects are put into the server's repository and store directly, as the archiver would.

mod common;

use common::*;
use jiff::Timestamp;
use polarbackup_model::policy::RetentionOnClusterDeletion;
use polarbackup_model::{
    BackupLogId, BackupSetStatus, Clock, DbClusterId, JobMode, Lsn, NewWalObject, SystemClock,
    WalGap, WalObject, WalObjectKind,
};
use polarbackup_repo::{Repo, RepoConfig};
use polarbackup_store::prelude::*;
use polarbackup_store::SqliteStore;
use polarbackup_testkit::{checks, request, sdk_batch, RamUser, Server, Tenant};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;

const ARCHIVER: &str = "log-api-test-archiver";
const ALL_TIME: (&str, &str) = ("2000-01-01T00:00Z", "2099-01-01T00:00Z");
/// A well-formed cluster id nobody has.
const GHOST: &str = "pc-zzzzzzzzzzzzzzz";
const SEGMENT: u64 = 16 << 20;

// ---------------------------------------------------------------------------------------------
// helpers

fn call(client: &str, who: &Tenant, action: &str, params: Value) -> Value {
    call_on(shared(), client, who, action, params)
}

fn call_on(server: &Server, client: &str, who: &Tenant, action: &str, params: Value) -> Value {
    let mut req = request(client, server, who, params);
    req["action"] = json!(action);
    req
}

fn all_time(cluster: &str) -> Value {
    json!({"DBClusterId": cluster, "StartTime": ALL_TIME.0, "EndTime": ALL_TIME.1})
}

fn assert_ok(res: &Value) -> &Value {
    assert_eq!(res["ok"], true, "expected success, got {res:#}");
    assert_eq!(res["status"], 200, "{res:#}");
    let body = wire_body(res);
    assert!(body.get("Code").is_none(), "{res:#}");
    let rid = body["RequestId"].as_str().unwrap_or_default();
    assert!(checks::is_request_id(rid), "bad RequestId: {res:#}");
    body
}

fn epoch(utc: &str) -> i64 {
    utc.parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("{utc:?}: {e}"))
        .as_second()
}

/// Deterministic bytes that do not compress away.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One WAL object to seed, on timeline 1.
struct Wal {
    kind: WalObjectKind,
    /// Segment number: the object starts at `segno * 16 MiB`.
    segno: u64,
    start_time: Timestamp,
    end_time: Timestamp,
    raw: Vec<u8>,
}

impl Wal {
    fn segment(segno: u64, start_time: Timestamp, raw: Vec<u8>) -> Wal {
        Wal {
            kind: WalObjectKind::Segment,
            segno,
            start_time,
            end_time: start_time + secs(50),
            raw,
        }
    }

    fn name(&self) -> String {
        format!("00000001{:08X}{:08X}", self.segno >> 8, self.segno & 0xff)
    }
}

fn secs(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(n)
}

/// Stores each object in the server's repository and records it under the archiver lease, as
/// the archiver does; returns the records in order.
fn seed_wal(data_dir: &Path, cluster: &str, objects: &[Wal]) -> Vec<WalObject> {
    let store = SqliteStore::open(data_dir).expect("open the store");
    let cluster = DbClusterId::parse(cluster).expect("cluster id");
    let now = SystemClock.now();
    assert!(
        store
            .claim_archiver(&cluster, ARCHIVER, now + hours(1), now)
            .expect("claim"),
        "the archiver lease is taken"
    );
    let repo = Repo::open_fs(&data_dir.join("repo"), RepoConfig::default()).expect("repo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let recorded = objects
        .iter()
        .map(|w| {
            let name = w.name();
            let start = Lsn(w.segno * SEGMENT);
            let (end, key_name) = match w.kind {
                WalObjectKind::Partial => {
                    let end = Lsn(start.0 + w.raw.len() as u64);
                    (end, format!("{name}.{:X}.partial", end.0))
                }
                _ => (Lsn(start.0 + SEGMENT), name.clone()),
            };
            let stored = rt
                .block_on(repo.put_wal(cluster.as_str(), &key_name, w.raw.clone()))
                .expect("put_wal");
            let object = NewWalObject {
                cluster_id: cluster.clone(),
                timeline: 1,
                kind: w.kind,
                name,
                start,
                end,
                size: stored.raw_size,
                stored_size: stored.stored_size,
                key: stored.key,
                digest: stored.digest,
                start_time: w.start_time,
                end_time: w.end_time,
            };
            store
                .record_wal(ARCHIVER, &object, now)
                .expect("record_wal")
                .expect("the lease is held")
                .recorded
                .expect("recorded")
        })
        .collect();
    store.release_archiver(&cluster, ARCHIVER).expect("release");
    recorded
}

fn store_of(server: &Server) -> SqliteStore {
    SqliteStore::open(&server.data_dir).expect("open the store")
}

/// The items of a successful DescribeBackupLogs, each checked for the documented shape.
fn backup_logs(res: &Value) -> (Value, Vec<Value>) {
    let body = assert_ok(res);
    for k in ["TotalRecordCount", "PageNumber", "PageRecordCount"] {
        assert!(body[k].is_string(), "{k}: {res:#}");
    }
    let items = body["Items"]["BackupLog"]
        .as_array()
        .unwrap_or_else(|| panic!("no Items.BackupLog: {res:#}"))
        .clone();
    for item in &items {
        let obj = item.as_object().expect("object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "BackupLogEndTime",
                "BackupLogId",
                "BackupLogName",
                "BackupLogSize",
                "BackupLogStartTime",
                "DownloadLink",
                "IntranetDownloadLink",
                "LinkExpiredTime"
            ],
            "{item}"
        );
        assert!(obj.values().all(Value::is_string), "{item}");
        for k in ["BackupLogStartTime", "BackupLogEndTime", "LinkExpiredTime"] {
            assert!(
                checks::is_utc_seconds(item[k].as_str().unwrap()),
                "{k}: {item}"
            );
        }
        assert!(checks::is_digits(item["BackupLogId"].as_str().unwrap()));
        assert_eq!(item["DownloadLink"], item["IntranetDownloadLink"], "{item}");
    }
    assert_eq!(body["PageRecordCount"], items.len().to_string(), "{res:#}");
    (body.clone(), items)
}

fn field(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

/// A response to a plain HTTP GET.
struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A refusal in the API's JSON error envelope.
    fn assert_refused(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["Code"], code, "{body}");
        let rid = body["RequestId"].as_str().unwrap_or_default();
        assert!(checks::is_request_id(rid), "{body}");
        assert_eq!(self.header("x-acs-request-id"), Some(rid));
    }
}

/// GETs `url` (`http://host:port/path?query`) over a fresh connection.
fn fetch(url: &str) -> Fetched {
    let rest = url.strip_prefix("http://").expect("an http link");
    let slash = rest.find('/').expect("a path");
    let (authority, path) = rest.split_at(slash);
    let mut conn = std::net::TcpStream::connect(authority).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let fetched = Fetched {
        status,
        headers,
        body,
    };
    if let Some(len) = fetched.header("content-length") {
        assert_eq!(
            len.parse::<usize>().ok(),
            Some(fetched.body.len()),
            "short body"
        );
    }
    fetched
}

/// `url` with one query parameter replaced.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').expect("query");
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// The signature a server with `secret` puts on a link (the format DescribeBackupLogs' links
/// show: the id and the expiry under a purpose tag).
fn link_signature(secret: &[u8], id: BackupLogId, expires: i64) -> String {
    polarbackup_auth::sign_link(
        secret,
        &format!("polarbackup-backup-log-link-v1\n{id}\n{expires}"),
    )
}

// ---------------------------------------------------------------------------------------------
// DescribeLogBackupPolicy / ModifyLogBackupPolicy

#[test]
fn the_log_backup_policy_round_trips_and_refuses_what_is_not_built() {
    let t = tenant();
    let c = t.cluster_id.clone();
    let id = json!({ "DBClusterId": c });
    let res = sdk_batch(vec![
        call("v3", &t, "DescribeLogBackupPolicy", id.clone()),
        call("old-typed-post", &t, "DescribeLogBackupPolicy", id.clone()),
        call("old-common-get", &t, "DescribeLogBackupPolicy", id.clone()),
    ]);
    for r in &res {
        let body = assert_ok(r);
        // The documented mixed typing: integers, then strings.
        assert_eq!(body["EnableBackupLog"], json!(1), "{r:#}");
        assert_eq!(body["LogBackupRetentionPeriod"], json!(7), "{r:#}");
        assert_eq!(body["LogBackupAnotherRegionRegion"], json!(""), "{r:#}");
        assert_eq!(
            body["LogBackupAnotherRegionRetentionPeriod"],
            json!("0"),
            "{r:#}"
        );
    }
    // The typed model reads them.
    assert_eq!(res[0]["body"]["LogBackupRetentionPeriod"], json!(7));
    assert_eq!(res[0]["body"]["EnableBackupLog"], json!(1));

    let modify = |client: &str, days: &str| {
        call(
            client,
            &t,
            "ModifyLogBackupPolicy",
            json!({"DBClusterId": c, "LogBackupRetentionPeriod": days}),
        )
    };
    let res = sdk_batch(vec![
        modify("v3", "30"),
        call("v3", &t, "DescribeLogBackupPolicy", id.clone()),
        modify("old-typed-post", "-1"),
        call("old-typed-post", &t, "DescribeLogBackupPolicy", id.clone()),
        modify("v1-new", "3"),
        modify("v3-sm3", "7300"),
        call("v3", &t, "DescribeLogBackupPolicy", id.clone()),
        // What Describe shows for the cross-region fields passes back unchanged.
        call(
            "v3",
            &t,
            "ModifyLogBackupPolicy",
            json!({"DBClusterId": c, "LogBackupAnotherRegionRegion": "",
                   "LogBackupAnotherRegionRetentionPeriod": "0"}),
        ),
        call("old-common-post", &t, "DescribeLogBackupPolicy", id.clone()),
    ]);
    for i in [0, 2, 4, 5, 7] {
        let body = assert_ok(&res[i]);
        let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["RequestId"], "{:#}", res[i]);
    }
    assert_eq!(wire_body(&res[1])["LogBackupRetentionPeriod"], json!(30));
    assert_eq!(wire_body(&res[3])["LogBackupRetentionPeriod"], json!(-1));
    assert_eq!(wire_body(&res[6])["LogBackupRetentionPeriod"], json!(7300));
    assert_eq!(wire_body(&res[8])["LogBackupRetentionPeriod"], json!(7300));

    // Every documented error, through both SDK generations.
    let bad = |params: Value| call("v3", &t, "ModifyLogBackupPolicy", params);
    let other = tenant();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"LogBackupRetentionPeriod": "7"}),
            400,
            "MissingDBClusterId",
        ),
        (
            json!({"DBClusterId": c, "LogBackupRetentionPeriod": "2"}),
            400,
            "InvalidLogBackupRetentionPeriod.Malformed",
        ),
        (
            json!({"DBClusterId": c, "LogBackupRetentionPeriod": "7301"}),
            400,
            "InvalidLogBackupRetentionPeriod.Malformed",
        ),
        (
            json!({"DBClusterId": c, "LogBackupRetentionPeriod": "0"}),
            400,
            "InvalidLogBackupRetentionPeriod.Malformed",
        ),
        (
            json!({"DBClusterId": c, "LogBackupRetentionPeriod": "week"}),
            400,
            "InvalidLogBackupRetentionPeriod.Malformed",
        ),
        (
            json!({"DBClusterId": c, "LogBackupAnotherRegionRetentionPeriod": "29"}),
            400,
            "InvalidLogBackupAnotherRegionRetentionPeriod.Malformed",
        ),
        (
            json!({"DBClusterId": c, "LogBackupAnotherRegionRetentionPeriod": "30"}),
            403,
            "IncorrectBackupPolicy",
        ),
        (
            json!({"DBClusterId": c, "LogBackupAnotherRegionRetentionPeriod": "-1"}),
            403,
            "IncorrectBackupPolicy",
        ),
        (
            json!({"DBClusterId": c, "LogBackupAnotherRegionRegion": "cn-beijing"}),
            403,
            "IncorrectBackupPolicy",
        ),
        (
            json!({"DBClusterId": c, "AdvancedLogPolicies": [{"ActionType": "CREATE", "SrcType": "level1",
                   "DestType": "level2", "EnableLogBackup": 1, "LogRetentionType": "delay", "LogRetentionValue": "30"}]}),
            403,
            "IncorrectBackupPolicy",
        ),
        (
            json!({"DBClusterId": GHOST, "LogBackupRetentionPeriod": "7"}),
            404,
            "InvalidDBClusterId.NotFound",
        ),
        (
            json!({"DBClusterId": "not-a-cluster", "LogBackupRetentionPeriod": "7"}),
            404,
            "InvalidDBClusterId.NotFound",
        ),
        (
            json!({"DBClusterId": other.cluster_id, "LogBackupRetentionPeriod": "7"}),
            404,
            "InvalidDBClusterId.NotFound",
        ),
    ];
    let mut reqs: Vec<Value> = cases.iter().map(|(p, _, _)| bad(p.clone())).collect();
    reqs.extend(
        cases
            .iter()
            .map(|(p, _, _)| call("old-common-post", &t, "ModifyLogBackupPolicy", p.clone())),
    );
    reqs.push(call("v3", &t, "DescribeLogBackupPolicy", json!({})));
    reqs.push(call(
        "v3",
        &t,
        "DescribeLogBackupPolicy",
        json!({"DBClusterId": GHOST}),
    ));
    reqs.push(call(
        "old-typed-post",
        &t,
        "DescribeLogBackupPolicy",
        json!({"DBClusterId": other.cluster_id}),
    ));
    reqs.push(call("v3", &t, "DescribeLogBackupPolicy", id.clone()));
    let res = sdk_batch(reqs);
    let n = cases.len();
    for (i, (_, status, code)) in cases.iter().enumerate() {
        for r in [&res[i], &res[n + i]] {
            assert_error(r, *status, code);
            assert_error_envelope(r);
        }
    }
    assert_error(&res[2 * n], 400, "MissingDBClusterId");
    assert_error(&res[2 * n + 1], 404, "InvalidDBClusterId.NotFound");
    assert_error(&res[2 * n + 2], 404, "InvalidDBClusterId.NotFound");
    // Nothing refused changed anything.
    assert_eq!(
        wire_body(&res[2 * n + 3])["LogBackupRetentionPeriod"],
        json!(7300)
    );
    // And the other tenant's policy is untouched.
    let theirs = sdk_batch(vec![call(
        "v3",
        &other,
        "DescribeLogBackupPolicy",
        json!({"DBClusterId": other.cluster_id}),
    )]);
    assert_eq!(wire_body(&theirs[0])["LogBackupRetentionPeriod"], json!(7));
}

// ---------------------------------------------------------------------------------------------
// DescribeBackupLogs and its links

#[test]
fn describe_backup_logs_pages_and_its_links_return_the_archived_bytes() {
    let server = shared();
    let t = tenant();
    let c = t.cluster_id.clone();
    let base = now() - hours(3);
    // 34 whole segments a minute apart (the first a real 16 MiB), then the partial in progress.
    let mut seeds: Vec<Wal> = (0..34u64)
        .map(|i| {
            let len = if i == 0 {
                SEGMENT as usize
            } else {
                1000 + 37 * i as usize
            };
            Wal::segment(1 + i, base + minutes(i as i64), bytes(i + 1, len))
        })
        .collect();
    seeds.push(Wal {
        kind: WalObjectKind::Partial,
        segno: 35,
        start_time: base + minutes(34),
        end_time: base + minutes(34) + secs(9),
        raw: bytes(99, 8192),
    });
    let recorded = seed_wal(&server.data_dir, &c, &seeds);
    assert_eq!(recorded.len(), 35);

    let page = |client: &str, extra: Value| {
        let mut p = all_time(&c);
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        call(client, &t, "DescribeBackupLogs", p)
    };
    let res = sdk_batch(vec![
        page("v3", json!({})),
        page("v3", json!({"PageNumber": "2"})),
        page("old-typed-post", json!({"PageSize": "50"})),
        page(
            "old-common-get",
            json!({"PageSize": "30", "PageNumber": "3"}),
        ),
        page("v1-new", json!({"PageSize": "100"})),
        // Objects whose span meets the range: minutes 10 to 12.
        page(
            "v3",
            json!({"StartTime": api_time(base + minutes(10) + secs(55)),
                   "EndTime": api_time(base + minutes(12) + secs(10))}),
        ),
        // A range before anything was archived.
        page(
            "v3",
            json!({"StartTime": "2001-01-01T00:00Z", "EndTime": "2001-01-02T00:00Z"}),
        ),
    ]);
    let (body, first) = backup_logs(&res[0]);
    assert_eq!(
        (field(&body, "TotalRecordCount"), field(&body, "PageNumber")),
        ("35".into(), "1".into())
    );
    assert_eq!(first.len(), 30);
    let (body, second) = backup_logs(&res[1]);
    assert_eq!(field(&body, "PageNumber"), "2");
    assert_eq!(second.len(), 5);
    let (_, fifty) = backup_logs(&res[2]);
    assert_eq!(fifty.len(), 35);
    let (body, past_end) = backup_logs(&res[3]);
    assert!(past_end.is_empty(), "{:#}", res[3]);
    assert_eq!(field(&body, "TotalRecordCount"), "35");
    assert_eq!(backup_logs(&res[4]).1.len(), 35);
    let ranged = backup_logs(&res[5]).1;
    let names: Vec<String> = ranged.iter().map(|i| field(i, "BackupLogName")).collect();
    assert_eq!(names, [seeds[11].name(), seeds[12].name()], "{:#}", res[5]);
    let (body, none) = backup_logs(&res[6]);
    assert!(none.is_empty());
    assert_eq!(wire_body(&res[6])["Items"], json!({"BackupLog": []}));
    assert_eq!(field(&body, "TotalRecordCount"), "0");

    // Oldest first; every field from the record.
    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    // Links made a second apart differ in their expiry; the rest is the same.
    let unlinked = |items: &[Value]| -> Vec<Value> {
        items
            .iter()
            .map(|i| {
                let mut i = i.clone();
                for k in ["DownloadLink", "IntranetDownloadLink", "LinkExpiredTime"] {
                    i.as_object_mut().unwrap().remove(k);
                }
                i
            })
            .collect()
    };
    assert!(
        unlinked(&all) == unlinked(&fifty),
        "pages 1 and 2 of 30 are not the page of 50"
    );
    for (item, (rec, seed)) in all.iter().zip(recorded.iter().zip(&seeds)) {
        assert_eq!(field(item, "BackupLogId"), rec.id.to_string());
        let name = match seed.kind {
            WalObjectKind::Partial => format!("{}.partial", seed.name()),
            _ => seed.name(),
        };
        assert_eq!(field(item, "BackupLogName"), name);
        assert_eq!(field(item, "BackupLogSize"), seed.raw.len().to_string());
        assert_eq!(field(item, "BackupLogStartTime"), api_time(seed.start_time));
        assert_eq!(field(item, "BackupLogEndTime"), api_time(seed.end_time));
        let link = field(item, "DownloadLink");
        assert!(
            link.starts_with(&format!(
                "http://{}/backup-logs/{}?Expires=",
                server.endpoint(),
                rec.id
            )),
            "{link}"
        );
        let expires = epoch(&field(item, "LinkExpiredTime"));
        assert!((expires - (now().as_second() + 3600)).abs() < 120, "{item}");
        assert!(
            link.contains(&format!("Expires={expires}&Signature=")),
            "{link}"
        );
    }
    // The new SDK's typed model reads the items.
    assert_eq!(res[0]["body"]["Items"]["BackupLog"][0], first[0]);

    // The links return the raw bytes: the 16 MiB segment, a small one, the partial.
    for i in [0usize, 20, 34] {
        let got = fetch(&field(&all[i], "DownloadLink"));
        assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
        assert_eq!(got.header("content-type"), Some("application/octet-stream"));
        assert!(got.body == seeds[i].raw, "object {i}: bytes differ");
        let disposition = got.header("content-disposition").unwrap_or_default();
        assert!(
            disposition.contains(&field(&all[i], "BackupLogName")),
            "{disposition}"
        );
        // The intranet link is the same link.
        assert_eq!(
            fetch(&field(&all[i], "IntranetDownloadLink")).body.len(),
            seeds[i].raw.len()
        );
    }

    // Tampered links are refused alike, whether or not the id exists: the signature is
    // checked before anything is looked up.
    let link = field(&all[3], "DownloadLink");
    let sig = link.rsplit_once("Signature=").unwrap().1.to_owned();
    let flipped = {
        let mut b = sig.clone().into_bytes();
        b[7] = if b[7] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let expires: i64 = link
        .split("Expires=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let other_id = link.replace(
        &format!("/backup-logs/{}?", recorded[3].id),
        &format!("/backup-logs/{}?", recorded[4].id),
    );
    let unknown_id = link.replace(
        &format!("/backup-logs/{}?", recorded[3].id),
        "/backup-logs/999999999?",
    );
    let base_url = link.split_once("/backup-logs/").unwrap().0.to_owned();
    let tampered = [
        with_param(&link, "Signature", &flipped),
        with_param(&link, "Expires", &(expires + 3600).to_string()),
        other_id,
        unknown_id,
        with_param(&link, "Signature", &sig.to_uppercase()),
        link.split_once('?').unwrap().0.to_owned(),
        format!("{base_url}/backup-logs/abc?Expires={expires}&Signature={sig}"),
    ];
    let answers: Vec<(u16, Value)> = tampered
        .iter()
        .map(|u| {
            let f = fetch(u);
            f.assert_refused(403, "SignatureDoesNotMatch");
            let mut body = f.json();
            body["RequestId"] = json!("");
            body["Recommend"] = json!("");
            (f.status, body)
        })
        .collect();
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "refusals differ: {answers:#?}"
    );
    // The genuine link still works.
    assert_eq!(fetch(&link).body, seeds[3].raw);

    // Every documented error.
    let errs = |client: &str| {
        vec![
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"DBClusterId": c, "EndTime": ALL_TIME.1}),
            ),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"DBClusterId": c, "StartTime": ALL_TIME.0}),
            ),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"StartTime": ALL_TIME.0, "EndTime": ALL_TIME.1}),
            ),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"DBClusterId": c, "StartTime": "2020-01-01", "EndTime": ALL_TIME.1}),
            ),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"DBClusterId": c, "StartTime": ALL_TIME.0, "EndTime": "2099-13-01T00:00Z"}),
            ),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"DBClusterId": c, "StartTime": ALL_TIME.1, "EndTime": ALL_TIME.0}),
            ),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                json!({"DBClusterId": c, "StartTime": ALL_TIME.0, "EndTime": ALL_TIME.0}),
            ),
            page(client, json!({"PageSize": "20"})),
            page(client, json!({"PageNumber": "0"})),
            page(client, json!({"PageNumber": "x"})),
            call(client, &t, "DescribeBackupLogs", all_time(GHOST)),
            call(client, &t, "DescribeBackupLogs", all_time("pc-bad")),
            call(
                client,
                &t,
                "DescribeBackupLogs",
                all_time(&tenant().cluster_id),
            ),
        ]
    };
    let want: [(u16, &str); 13] = [
        (400, "MissingStartTime"),
        (400, "MissingEndTime"),
        (400, "MissingDBClusterId"),
        (400, "InvalidStartTime.Malformed"),
        (400, "InvalidEndTime.Malformed"),
        (400, "InvalidEndTime.Malformed"),
        (400, "InvalidEndTime.Malformed"),
        (400, "InvalidPageSize.Malformed"),
        (400, "InvalidPageNumber.Malformed"),
        (400, "InvalidPageNumber.Malformed"),
        (404, "InvalidDBClusterId.NotFound"),
        (404, "InvalidDBClusterId.NotFound"),
        (404, "InvalidDBClusterId.NotFound"),
    ];
    let mut reqs = errs("v3");
    reqs.extend(errs("old-common-post"));
    let res = sdk_batch(reqs);
    for (i, r) in res.iter().enumerate() {
        let (status, code) = want[i % want.len()];
        assert_error(r, status, code);
        assert_error_envelope(r);
    }
}

#[test]
fn links_name_the_host_the_client_called_and_refuse_one_it_cannot_have() {
    let server = shared();
    let t = tenant();
    let c = t.cluster_id.clone();
    let rec = seed_wal(
        &server.data_dir,
        &c,
        &[Wal::segment(1, now() - hours(1), bytes(5, 300))],
    );
    let raw = |host: &str| {
        let mut r = call("raw", &t, "DescribeBackupLogs", all_time(&c));
        r["host_header"] = json!(host);
        r
    };
    let links = |host: &str| {
        let mut r = call(
            "raw",
            &t,
            "DescribeBackupLogDownloadLinks",
            json!({"DBClusterId": c, "BackupLogIds": rec[0].id.to_string()}),
        );
        r["host_header"] = json!(host);
        r
    };
    let res = sdk_batch(vec![
        raw("backup.example.com:8443"),
        raw("[::1]:9000"),
        raw("evil.example/x?"),
        raw("user@evil.example"),
        links("backup.example.com"),
        links("a b"),
    ]);
    let link = field(&backup_logs(&res[0]).1[0], "DownloadLink");
    assert!(
        link.starts_with("http://backup.example.com:8443/backup-logs/"),
        "{link}"
    );
    let link = field(&backup_logs(&res[1]).1[0], "DownloadLink");
    assert!(link.starts_with("http://[::1]:9000/backup-logs/"), "{link}");
    for r in [&res[2], &res[3], &res[5]] {
        assert_error(r, 400, "InvalidParameter");
    }
    let item = &assert_ok(&res[4])["BackupLogDownloadLinkItem"][0];
    assert!(field(item, "DownloadLink").starts_with("http://backup.example.com/backup-logs/"));
    // Whatever the name, the path and signature work on this server.
    let here = field(&backup_logs(&res[0]).1[0], "DownloadLink")
        .replace("backup.example.com:8443", &server.endpoint());
    assert_eq!(fetch(&here).body, bytes(5, 300));
}

// ---------------------------------------------------------------------------------------------
// DescribeBackupLogDownloadLinks

#[test]
fn download_links_for_chosen_ids_and_per_item_errors() {
    let server = shared();
    let t = tenant();
    let c = t.cluster_id.clone();
    let stranger = tenant();
    let start = now() - hours(2);
    let mine = seed_wal(
        &server.data_dir,
        &c,
        &[
            Wal::segment(1, start, bytes(11, 5000)),
            Wal::segment(2, start + minutes(1), bytes(12, 6000)),
        ],
    );
    let theirs = seed_wal(
        &server.data_dir,
        &stranger.cluster_id,
        &[Wal::segment(1, start, bytes(13, 7000))],
    );
    let ids = format!(
        "{},{},999999999,x,{},{}",
        mine[0].id, mine[1].id, theirs[0].id, mine[0].id
    );
    let ask = |client: &str, extra: Value| {
        let mut p = json!({"DBClusterId": c, "BackupLogIds": ids});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        call(client, &t, "DescribeBackupLogDownloadLinks", p)
    };
    let err = |client: &str, p: Value| call(client, &t, "DescribeBackupLogDownloadLinks", p);
    let mut reqs = vec![
        ask("v3", json!({"ExpireHours": "2"})),
        ask("old-common-post", json!({})),
        ask("v1-new", json!({"ExpireHours": "596523"})),
    ];
    let errors: Vec<(Value, u16, &str)> = vec![
        (
            json!({"DBClusterId": c, "BackupLogIds": "1", "ExpireHours": "0"}),
            400,
            "InvalidExpireHours.Malformed",
        ),
        (
            json!({"DBClusterId": c, "BackupLogIds": "1", "ExpireHours": "596524"}),
            400,
            "InvalidExpireHours.Malformed",
        ),
        (
            json!({"DBClusterId": c, "BackupLogIds": "1", "ExpireHours": "1h"}),
            400,
            "InvalidExpireHours.Malformed",
        ),
        (
            json!({"DBClusterId": c, "BackupLogIds": "1,,2"}),
            400,
            "InvalidBackupLogIds.Malformed",
        ),
        (json!({"DBClusterId": c}), 400, "MissingBackupLogIds"),
        (json!({"BackupLogIds": "1"}), 400, "MissingDBClusterId"),
        (
            json!({"DBClusterId": GHOST, "BackupLogIds": "1"}),
            404,
            "InvalidDBClusterId.NotFound",
        ),
        (
            json!({"DBClusterId": stranger.cluster_id, "BackupLogIds": theirs[0].id.to_string()}),
            404,
            "InvalidDBClusterId.NotFound",
        ),
    ];
    for client in ["v3", "old-common-get"] {
        reqs.extend(errors.iter().map(|(p, _, _)| err(client, p.clone())));
    }
    let res = sdk_batch(reqs);
    for (i, hours_wanted) in [(0usize, 2i64), (1, 1), (2, 596_523)] {
        let body = assert_ok(&res[i]);
        let items = body["BackupLogDownloadLinkItem"]
            .as_array()
            .unwrap_or_else(|| panic!("a bare array: {:#}", res[i]));
        let got: Vec<(String, String)> = items
            .iter()
            .map(|it| (field(it, "BackupLogId"), field(it, "ErrorCode")))
            .collect();
        let nf = "InvalidBackupLogId.NotFound".to_owned();
        assert_eq!(
            got,
            [
                (mine[0].id.to_string(), String::new()),
                (mine[1].id.to_string(), String::new()),
                ("999999999".into(), nf.clone()),
                ("x".into(), nf.clone()),
                // Another cluster's object is as unknown as a missing one.
                (theirs[0].id.to_string(), nf),
            ],
            "{:#}",
            res[i]
        );
        for it in items {
            assert!(
                it.as_object().unwrap().values().all(Value::is_string),
                "{it}"
            );
            let failed = !field(it, "ErrorCode").is_empty();
            assert_eq!(field(it, "DownloadLink").is_empty(), failed, "{it}");
            assert_eq!(field(it, "Message").is_empty(), !failed, "{it}");
            assert_eq!(it["DownloadLink"], it["IntranetDownloadLink"], "{it}");
            if !failed {
                let expires = epoch(&field(it, "LinkExpiredTime"));
                let want = now().as_second() + hours_wanted * 3600;
                assert!((expires - want).abs() < 120, "{it}");
            }
        }
        // The links download what was archived.
        assert_eq!(
            fetch(&field(&items[0], "DownloadLink")).body,
            bytes(11, 5000)
        );
        assert_eq!(
            fetch(&field(&items[1], "DownloadLink")).body,
            bytes(12, 6000)
        );
    }
    // The typed model reads the items.
    assert_eq!(
        res[0]["body"]["BackupLogDownloadLinkItem"][2]["ErrorCode"],
        "InvalidBackupLogId.NotFound"
    );
    let n = errors.len();
    for (i, r) in res[3..].iter().enumerate() {
        let (_, status, code) = &errors[i % n];
        assert_error(r, *status, code);
        assert_error_envelope(r);
    }
}

#[test]
fn an_expired_link_is_refused_and_the_secret_comes_from_the_named_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let secret_path = dir.path().join("link.key");
    let secret = bytes(77, 48);
    std::fs::write(&secret_path, &secret).expect("write the secret");
    let secret_arg = secret_path.display().to_string();
    let server = Server::start(
        bin(),
        None,
        &["--workers", "0", "--link-secret-file", &secret_arg],
    );
    assert!(
        !server.data_dir.join("link-secret.key").exists(),
        "a named secret file replaces the generated one"
    );
    let t = server.tenant();
    let rec = seed_wal(
        &server.data_dir,
        &t.cluster_id,
        &[Wal::segment(1, now() - hours(1), bytes(21, 4096))],
    );
    let id = rec[0].id;
    let res = sdk_batch(vec![call_on(
        &server,
        "v3",
        &t,
        "DescribeBackupLogs",
        all_time(&t.cluster_id),
    )]);
    let link = field(&backup_logs(&res[0]).1[0], "DownloadLink");
    assert_eq!(fetch(&link).body, bytes(21, 4096));
    // The server signs with the file's secret: a link made with it elsewhere works.
    let url = |secret: &[u8], expires: i64| {
        format!(
            "http://{}/backup-logs/{id}?Expires={expires}&Signature={}",
            server.endpoint(),
            link_signature(secret, id, expires)
        )
    };
    let soon = now().as_second() + 60;
    assert_eq!(fetch(&url(&secret, soon)).body, bytes(21, 4096));
    // A link from a server with another secret is not ours.
    fetch(&url(&bytes(78, 48), soon)).assert_refused(403, "SignatureDoesNotMatch");
    // Expired: genuine, but past its time.
    fetch(&url(&secret, now().as_second() - 5)).assert_refused(403, "AccessDenied");
    // Genuine and unexpired, for an object since removed: not found (nothing leaks, the
    // holder was given that id).
    let store = store_of(&server);
    let cluster = DbClusterId::parse(&t.cluster_id).unwrap();
    assert_eq!(store.remove_wal(&cluster, &[id]).expect("remove").len(), 1);
    fetch(&url(&secret, soon)).assert_refused(404, "InvalidBackupLogId.NotFound");
}

// ---------------------------------------------------------------------------------------------
// DescribeLocalAvailableRecoveryTime

#[test]
fn the_recovery_window_runs_from_the_backup_to_the_newest_contiguous_wal() {
    let server = shared();
    let t = tenant();
    let c = t.cluster_id.clone();
    let id = json!({ "DBClusterId": c });
    let ask = |client: &str| call(client, &t, "DescribeLocalAvailableRecoveryTime", id.clone());

    let empty = sdk_batch(vec![ask("v3"), ask("old-typed-post")]);
    for r in &empty {
        let body = assert_ok(r);
        assert_eq!(body["DBClusterId"], json!(c), "{r:#}");
        assert_eq!(body["RecoveryBeginTime"], json!(""), "{r:#}");
        assert_eq!(body["RecoveryEndTime"], json!(""), "{r:#}");
    }

    // A full backup (consistent 10 s after its start, its WAL ending in segment 1), then
    // segments 1 and 2; a gap; then segment 5, which no backup reaches.
    let start = now() - hours(3);
    seed_sets(
        &server.data_dir,
        &c,
        &[(JobMode::Manual, BackupSetStatus::Success, start)],
    );
    let seg1 = start + minutes(20);
    let seg2 = start + minutes(40);
    seed_wal(
        &server.data_dir,
        &c,
        &[
            Wal::segment(1, seg1, bytes(31, 100)),
            Wal::segment(2, seg2, bytes(32, 100)),
        ],
    );
    let store = store_of(server);
    let cluster = DbClusterId::parse(&c).unwrap();
    // Recorded as the archiver does, under its lease.
    assert!(store
        .claim_archiver(&cluster, ARCHIVER, now() + hours(1), now())
        .expect("claim"));
    let gap = WalGap {
        cluster_id: cluster.clone(),
        timeline: 1,
        from: Lsn(3 * SEGMENT),
        to: Lsn(5 * SEGMENT),
        detected_at: now(),
        reason: "test: slot invalidated".into(),
    };
    assert!(store.record_gap(ARCHIVER, &gap, now()).expect("gap"));
    store.release_archiver(&cluster, ARCHIVER).expect("release");
    seed_wal(
        &server.data_dir,
        &c,
        &[Wal::segment(5, start + minutes(90), bytes(35, 100))],
    );

    let res = sdk_batch(vec![
        ask("v3"),
        ask("old-typed-post"),
        ask("old-common-get"),
        ask("v3-sm3"),
    ]);
    for r in &res {
        let body = assert_ok(r);
        assert_eq!(
            body["RecoveryBeginTime"],
            // The second after the consistent time, which is kept to the second.
            json!(api_time(start + secs(11))),
            "{r:#}"
        );
        assert_eq!(
            body["RecoveryEndTime"],
            json!(api_time(seg2 + secs(50))),
            "{r:#}"
        );
    }
    assert_eq!(
        res[0]["body"]["RecoveryEndTime"],
        wire_body(&res[0])["RecoveryEndTime"]
    );

    let res = sdk_batch(vec![
        call("v3", &t, "DescribeLocalAvailableRecoveryTime", json!({})),
        call(
            "v3",
            &t,
            "DescribeLocalAvailableRecoveryTime",
            json!({"DBClusterId": GHOST}),
        ),
        call(
            "old-typed-post",
            &t,
            "DescribeLocalAvailableRecoveryTime",
            json!({"DBClusterId": tenant().cluster_id}),
        ),
    ]);
    assert_error(&res[0], 400, "MissingDBClusterId");
    assert_error(&res[1], 404, "InvalidDBClusterId.NotFound");
    assert_error(&res[2], 404, "InvalidDBClusterId.NotFound");
}

// ---------------------------------------------------------------------------------------------
// cluster states

/// Every log action on `cluster`, through the new SDK.
fn every_log_action(t: &Tenant, cluster: &str) -> Vec<Value> {
    let id = json!({ "DBClusterId": cluster });
    vec![
        call("v3", t, "DescribeLogBackupPolicy", id.clone()),
        call(
            "v3",
            t,
            "ModifyLogBackupPolicy",
            json!({"DBClusterId": cluster, "LogBackupRetentionPeriod": "9"}),
        ),
        call(
            "v3",
            t,
            "ModifyLogBackupPolicy",
            json!({"DBClusterId": cluster, "LogBackupAnotherRegionRetentionPeriod": "0"}),
        ),
        call("v3", t, "DescribeBackupLogs", all_time(cluster)),
        call(
            "v3",
            t,
            "DescribeBackupLogDownloadLinks",
            json!({"DBClusterId": cluster, "BackupLogIds": "1"}),
        ),
        call("v3", t, "DescribeLocalAvailableRecoveryTime", id),
    ]
}

#[test]
fn a_cluster_being_deleted_answers_reads_and_a_deleted_one_is_unknown() {
    let server = shared();
    let t = tenant();
    let deleting = t.cluster_id.clone();
    let deleted = t.add_cluster(bin(), &server.data_dir);
    let rec = seed_wal(
        &server.data_dir,
        &deleting,
        &[Wal::segment(1, now() - hours(1), bytes(41, 100))],
    );
    let store = store_of(server);
    let now_ts = SystemClock.now();
    for (c, retention) in [
        (&deleting, RetentionOnClusterDeletion::Latest),
        (&deleted, RetentionOnClusterDeletion::None),
    ] {
        let id = DbClusterId::parse(c).unwrap();
        store
            .begin_cluster_deletion(&id, Some(retention), now_ts)
            .expect("store")
            .expect("deletion starts");
    }
    let mut reqs = every_log_action(&t, &deleting);
    reqs.extend(every_log_action(&t, &deleted));
    reqs.extend(every_log_action(&t, GHOST));
    let res = sdk_batch(reqs);
    let (being_deleted, rest) = res.split_at(6);
    let (gone, unknown) = rest.split_at(6);
    // Deleting: reads answer, changes are refused with the cluster's status.
    assert_eq!(
        assert_ok(&being_deleted[0])["LogBackupRetentionPeriod"],
        json!(7)
    );
    assert_error(&being_deleted[1], 403, "OperationDenied.DBClusterStatus");
    assert_error(&being_deleted[2], 403, "OperationDenied.DBClusterStatus");
    let (_, items) = backup_logs(&being_deleted[3]);
    assert_eq!(field(&items[0], "BackupLogId"), rec[0].id.to_string());
    assert_eq!(
        assert_ok(&being_deleted[4])["BackupLogDownloadLinkItem"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_ok(&being_deleted[5]);
    // Deleted: exactly as a cluster nobody has.
    for (g, u) in gone.iter().zip(unknown) {
        let answer = |r: &Value| (r["status"].clone(), r["code"].clone(), r["message"].clone());
        assert_eq!(answer(g), answer(u), "{g:#}\nvs {u:#}");
        assert_error(g, 404, "InvalidDBClusterId.NotFound");
    }
}

// ---------------------------------------------------------------------------------------------
// RAM

fn assert_ram_denied(res: &Value, user: &RamUser, action: &str) {
    assert_error(res, 403, "Forbidden.RAM");
    let detail = &wire_body(res)["AccessDeniedDetail"];
    assert_eq!(detail["AuthAction"], format!("polardb:{action}"), "{res:#}");
    assert_eq!(
        detail["AuthPrincipalDisplayName"],
        json!(user.user_id),
        "{res:#}"
    );
}

#[test]
fn ram_authorizes_each_log_action_on_its_cluster() {
    let server = shared();
    let t = tenant();
    let a = t.cluster_id.clone();
    let b = t.add_cluster(bin(), &server.data_dir);
    seed_wal(
        &server.data_dir,
        &a,
        &[Wal::segment(1, now() - hours(1), bytes(51, 10))],
    );

    // The read-only system policy: every Describe, no Modify.
    let reader = server.ram_user(
        &t.account_id,
        "log-reader",
        &["AliyunPolardbReadOnlyAccess"],
    );
    let r = reader.tenant(&a);
    let mut reqs = every_log_action(&r, &a);
    reqs.push(call(
        "old-typed-post",
        &r,
        "ModifyLogBackupPolicy",
        json!({"DBClusterId": a, "LogBackupRetentionPeriod": "9"}),
    ));
    reqs.push(call(
        "old-common-get",
        &r,
        "DescribeBackupLogs",
        all_time(&a),
    ));

    // A custom policy: DescribeBackupLogs and its links on cluster A only; an explicit Deny
    // of the links beats full access.
    let arn = |c: &str| format!("acs:polardb:*:*:dbcluster/{c}");
    server.ram_policy(
        &t.account_id,
        "logs-on-a",
        &json!({"Version": "1", "Statement": [{"Effect": "Allow",
            "Action": ["polardb:DescribeBackupLogs", "polardb:DescribeLocalAvailableRecoveryTime"],
            "Resource": arn(&a)}]}),
    );
    let scoped = server.ram_user(&t.account_id, "logs-scoped", &["logs-on-a"]);
    let s = scoped.tenant(&a);
    reqs.push(call("v3", &s, "DescribeBackupLogs", all_time(&a)));
    reqs.push(call("v3", &s, "DescribeBackupLogs", all_time(&b)));
    reqs.push(call("v3", &s, "DescribeBackupLogs", all_time(GHOST)));
    reqs.push(call(
        "v3",
        &s,
        "DescribeLocalAvailableRecoveryTime",
        json!({"DBClusterId": a}),
    ));
    reqs.push(call(
        "v3",
        &s,
        "DescribeLogBackupPolicy",
        json!({"DBClusterId": a}),
    ));
    server.ram_policy(
        &t.account_id,
        "no-links",
        &json!({"Version": "1", "Statement": [{"Effect": "Deny",
            "Action": "polardb:DescribeBackupLogDownloadLinks", "Resource": "*"}]}),
    );
    let denied = server.ram_user(
        &t.account_id,
        "no-links",
        &["AliyunPolardbFullAccess", "no-links"],
    );
    let d = denied.tenant(&a);
    reqs.push(call(
        "v3",
        &d,
        "DescribeBackupLogDownloadLinks",
        json!({"DBClusterId": a, "BackupLogIds": "1"}),
    ));
    reqs.push(call(
        "v3",
        &d,
        "ModifyLogBackupPolicy",
        json!({"DBClusterId": a, "LogBackupRetentionPeriod": "9"}),
    ));
    let res = sdk_batch(reqs);

    assert_ok(&res[0]);
    assert_ram_denied(&res[1], &reader, "ModifyLogBackupPolicy");
    assert_ram_denied(&res[2], &reader, "ModifyLogBackupPolicy");
    assert_eq!(backup_logs(&res[3]).1.len(), 1);
    assert_ok(&res[4]);
    assert_ok(&res[5]);
    assert_ram_denied(&res[6], &reader, "ModifyLogBackupPolicy");
    assert_eq!(backup_logs(&res[7]).1.len(), 1);

    assert_eq!(backup_logs(&res[8]).1.len(), 1);
    assert_ram_denied(&res[9], &scoped, "DescribeBackupLogs");
    assert_ram_denied(&res[10], &scoped, "DescribeBackupLogs");
    assert_ok(&res[11]);
    assert_ram_denied(&res[12], &scoped, "DescribeLogBackupPolicy");

    assert_ram_denied(&res[13], &denied, "DescribeBackupLogDownloadLinks");
    assert_eq!(
        wire_body(&res[13])["AccessDeniedDetail"]["NoPermissionType"],
        "ExplicitDeny"
    );
    assert_ok(&res[14]);
}
