//! The fuzz targets' entry points, one function per target, each taking the fuzzer's bytes.
//! Shared by `fuzz/` (cargo-fuzz, which includes this file) and `tests/fuzz_corpus.rs` (which
//! replays every committed corpus file through them in the normal test suite). Each must return
//! for any input; a panic is a finding.

use jiff::Timestamp;
use polarbackup_auth::ram::{Context, Policy};
use polarbackup_auth::{
    borrow_headers, percent_encode, verify, KeyLookup, KeyMaterial, KeyRecord, Request,
};
use polarbackup_testkit::http::RawRequest;
use polarbackup_wire::Params;

/// A target's entry point: the fuzzer's bytes in, nothing out (a panic is the finding).
pub type Entry = fn(&[u8]);

/// Every target, by the name of its corpus directory (`fuzz/corpus/<name>`) and binary.
pub const TARGETS: &[(&str, Entry)] = &[
    ("params", params),
    ("percent", percent),
    ("verify_v1", verify_v1),
    ("verify_v3", verify_v3),
    ("ram_policy", ram_policy),
    ("base_backup", base_backup),
    ("wal_stream", wal_stream),
    ("pg_startup", pg_startup),
    ("timeline_history", timeline_history),
    ("manifest", manifest),
];

/// The request parameters of a query string and a form body (split at the first NUL), then
/// every action's parameter validation over them.
pub fn params(data: &[u8]) {
    let (query, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let p = Params::decode(&String::from_utf8_lossy(query), body);
    let _ = p.id_filter("BackupId");
    let _ = p.required("DBClusterId");
    let _ = polarbackup_wire::Action::parse(p.get("Action").unwrap_or(""));
    let _ = polarbackup_wire::create_backup::Request::parse(&p);
    let _ = polarbackup_wire::delete_backup::Request::parse(&p);
    let _ = polarbackup_wire::describe_backups::Request::parse(&p);
    let _ = polarbackup_wire::describe_backup_tasks::Request::parse(&p);
    let _ = polarbackup_wire::describe_backup_logs::Request::parse(&p);
    let _ = polarbackup_wire::log_backup_policy::ModifyRequest::parse(&p);
    let _ = polarbackup_wire::backup_log_download_links::Request::parse(&p);
    let _ = polarbackup_wire::backup_policy::parse_change(&p);
}

/// Alibaba percent-encoding: only unreserved bytes and `%XX` come out, and decoding gives the
/// input back.
pub fn percent(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let encoded = percent_encode(&text);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)),
        "{encoded:?}"
    );
    let decoded = Params::decode(&format!("k={encoded}"), None);
    assert_eq!(decoded.get("k"), Some(&*text), "{encoded:?}");
}

/// The test vectors' credentials: `testid` with `testsecret`, or the vectors' RSA public key.
struct FixedKey {
    rsa: bool,
}

/// `tests/fixtures/vectors/requests/rsa_test_public_key.pem`, the RSA vectors' public key.
const RSA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzH4dXfnIKxKRMpmbQAlK
87nHxR1k7gTm4y/IW3EcQ766+BeP6z+hVizK7569pUBTy/yX5c4kkguDcFExQ/UF
8NjHhqG2rgZdgLLod7+Ns8pVzgHzdpWFEcxArj1hdIHyJaM3XSKjhvIpdTV3zUqG
LxEMHu4mGVwMAowMPRHas0CESgUnaQKTRm8OX9fgY7h+Sbr++3u07lb7Vi+mlZgW
yXQKvS1f8DGzumuf0mNUHcEn/Eq4a8NbTXioTgntxaOm362tqExF5lkwfuFydrp3
aku8vf/aqIyTn1dwhCWNudVE/6Yhppi5LqTlSjUTMcPARfUZZ/okxRxy/lG9uYm7
NQIDAQAB
-----END PUBLIC KEY-----
";

impl KeyLookup for FixedKey {
    fn lookup(&self, access_key_id: &str) -> Option<KeyRecord> {
        let material = if self.rsa {
            KeyMaterial::RsaPublicKeyPem(RSA_PUBLIC_KEY.into())
        } else {
            KeyMaterial::Secret("testsecret".into())
        };
        (access_key_id == "testid").then_some(KeyRecord {
            material,
            active: true,
        })
    }
}

/// A raw HTTP/1.1 request (as in `tests/fixtures/vectors/requests/*.raw`), read leniently.
struct Raw {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn parse(data: &[u8]) -> Raw {
        let (r, _) = RawRequest::parse(data);
        let params = Params::decode(&r.raw_query, r.is_form().then_some(&r.body[..]));
        Raw {
            method: r.method,
            path: r.path,
            query: params.query,
            form: params.form,
            headers: r.headers,
            body: r.body,
        }
    }

    fn request<'a>(&'a self, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            form: &self.form,
            headers,
            body: &self.body,
        }
    }

    /// The request's own time (V1 `Timestamp`, V3 `x-acs-date`), so a captured request gets past
    /// the clock check to the signature; a fixed time when it has none that parses.
    fn now(&self) -> Timestamp {
        let stated = self
            .query
            .iter()
            .chain(&self.form)
            .find(|(k, _)| k == "Timestamp")
            .map(|(_, v)| v.as_str())
            .or_else(|| {
                self.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-acs-date"))
                    .map(|(_, v)| v.as_str())
            });
        stated
            .and_then(|t| t.parse().ok())
            .unwrap_or(Timestamp::from_second(1_796_000_000).expect("a valid time"))
    }

    fn verify(&self) {
        let rsa = self
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.contains("RSA"));
        let headers = borrow_headers(&self.headers);
        let _ = verify(&self.request(&headers), self.now(), &FixedKey { rsa });
    }
}

/// V1 (HMAC-SHA1 over the query/form) on an arbitrary request; V3 headers are dropped so the
/// V1 path is always the one taken.
pub fn verify_v1(data: &[u8]) {
    let mut raw = Raw::parse(data);
    raw.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    raw.verify();
}

/// V3 (ACS3-*) on an arbitrary request: whatever `Authorization` it carries.
pub fn verify_v3(data: &[u8]) {
    Raw::parse(data).verify();
}

/// A RAM policy document; a valid one is also matched and its conditions evaluated.
pub fn ram_policy(data: &[u8]) {
    let Ok(policy) = Policy::parse(&String::from_utf8_lossy(data)) else {
        return;
    };
    let ctx = Context::new()
        .with_current_time(Timestamp::from_second(1_796_000_000).expect("a valid time"))
        .with_secure_transport(false)
        .with_access_id("testid")
        .with_source_ip([127, 0, 0, 1].into());
    for s in policy.statements() {
        let _ = s.covers(
            "polardb:DescribeBackups",
            "acs:polardb:*:1234:dbcluster/pc-abc123",
        );
        let _ = s.check_conditions(&ctx).count();
    }
}

/// A BASE_BACKUP answer from the server (see `polarbackup_engine::replay` for the input's shape).
pub fn base_backup(data: &[u8]) {
    let _ = polarbackup_engine::replay::base_backup(data);
}

/// A START_REPLICATION answer from the server.
pub fn wal_stream(data: &[u8]) {
    let _ = polarbackup_engine::replay::wal_stream(data);
}

/// The server's side of startup and authentication.
pub fn pg_startup(data: &[u8]) {
    let _ = polarbackup_engine::replay::startup(data);
}

/// A timeline history file (TIMELINE_HISTORY's content).
pub fn timeline_history(data: &[u8]) {
    let _ = polarbackup_engine::replay::timeline_history(data);
}

/// A backup set's `manifest.json`; one that parses writes back to one that parses the same.
pub fn manifest(data: &[u8]) {
    let Ok(m) = polarbackup_repo::Manifest::from_json(data, "manifest.json") else {
        return;
    };
    let again = polarbackup_repo::Manifest::from_json(&m.to_json(), "manifest.json")
        .expect("a manifest written back parses");
    assert_eq!(m, again);
}
