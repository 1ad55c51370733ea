//! Verifies every captured SDK request in tests/fixtures/vectors/requests, then tampers with each one.

use std::{fs, path::PathBuf};

use jiff::{SignedDuration, Timestamp};
use polarbackup_auth::{
    borrow_headers, verify, AuthError, KeyLookup, KeyMaterial, KeyRecord, Request, Scheme,
};
use polarbackup_testkit::http::{find, RawRequest};
use rsa::{pkcs1::EncodeRsaPublicKey, pkcs8::DecodePublicKey, RsaPublicKey};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/vectors/requests"
);
const MIN_VECTORS: usize = 90;

/// A request parsed from raw HTTP/1.1 bytes into the owned pieces `Request` borrows.
struct Parsed {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Parsed {
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

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_v3(&self) -> bool {
        self.header("authorization")
            .is_some_and(|a| a.starts_with("ACS3-"))
    }

    fn is_rsa(&self) -> bool {
        self.header("authorization")
            .is_some_and(|a| a.starts_with("ACS3-RSA-SHA256 "))
    }
}

/// A well-formed HTTP/1.1 request (anything else fails the test), its parameters decoded.
fn parse(raw: &[u8]) -> Parsed {
    let (r, problems) = RawRequest::parse(raw);
    assert!(problems.is_empty(), "{problems:?}");
    let decode = |bytes: &[u8]| -> Vec<(String, String)> {
        form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    Parsed {
        query: decode(r.raw_query.as_bytes()),
        form: if r.is_form() {
            decode(&r.body)
        } else {
            Vec::new()
        },
        method: r.method,
        path: r.path,
        headers: r.headers,
        body: r.body,
    }
}

/// Changes one byte to a different one of the same class, so a `%XX`
/// escape stays a valid escape and lengths never change.
fn mutate(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b'0' + (b - b'0' + 1) % 10,
        b'A'..=b'F' => b'A' + (b - b'A' + 1) % 6,
        b'a'..=b'f' => b'a' + (b - b'a' + 1) % 6,
        _ if b.is_ascii_alphabetic() => b'a',
        _ => b'x',
    }
}

fn tampered(raw: &[u8], at: usize) -> Vec<u8> {
    let mut copy = raw.to_vec();
    copy[at] = mutate(copy[at]);
    assert_ne!(copy[at], raw[at]);
    copy
}

/// Offset of the first value byte after the first `marker` in `raw`.
fn value_offset(raw: &[u8], marker: &str) -> Option<usize> {
    find(raw, marker.as_bytes()).map(|i| i + marker.len())
}

/// Offset of the last byte of the first body parameter that is not a V1
/// signature parameter, so that the change reaches the signed content.
fn body_offset(raw: &[u8]) -> usize {
    let start = find(raw, b"\r\n\r\n").unwrap() + 4;
    const AUTH: [&str; 6] = [
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    ];
    let mut pos = start;
    // Chunk framing is skipped by only looking inside `k=v` pairs.
    for pair in raw[start..].split(|&b| b == b'&' || b == b'\n') {
        let end = pos + pair.len();
        let pair_str = String::from_utf8_lossy(pair);
        let pair_str = pair_str.trim_end_matches('\r');
        if let Some((k, v)) = pair_str.split_once('=') {
            if !AUTH.contains(&k) && !v.is_empty() {
                return pos + k.len() + v.len();
            }
        }
        pos = end + 1;
    }
    panic!("no tamperable body parameter");
}

struct Keys {
    material: KeyMaterial,
    active: bool,
}

impl KeyLookup for Keys {
    fn lookup(&self, id: &str) -> Option<KeyRecord> {
        (id == "testid").then(|| KeyRecord {
            material: self.material.clone(),
            active: self.active,
        })
    }
}

fn secret(s: &str) -> Keys {
    Keys {
        material: KeyMaterial::Secret(s.into()),
        active: true,
    }
}

fn rsa_pem() -> String {
    fs::read_to_string(format!("{VECTORS}/rsa_test_public_key.pem")).expect("RSA public key")
}

fn keys_for(p: &Parsed) -> Keys {
    if p.is_rsa() {
        Keys {
            material: KeyMaterial::RsaPublicKeyPem(rsa_pem()),
            active: true,
        }
    } else {
        secret("testsecret")
    }
}

fn check(
    p: &Parsed,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<polarbackup_auth::Verified, AuthError> {
    verify(&p.request(&borrow_headers(&p.headers)), now, keys)
}

fn vector_files() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(VECTORS);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("vector folder {} is missing: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "raw"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_VECTORS,
        "only {} vectors in {}, expected at least {MIN_VECTORS}",
        files.len(),
        dir.display()
    );
    files
}

fn is_mismatch(r: &Result<polarbackup_auth::Verified, AuthError>) -> bool {
    matches!(r, Err(AuthError::SignatureMismatch { .. }))
}

#[test]
fn every_vector_verifies_and_every_tamper_is_refused() {
    let files = vector_files();
    let (mut verified, mut tampers, mut wrong_secret) = (0, 0, 0);
    let mut schemes = std::collections::BTreeMap::<String, usize>::new();
    for (name, raw) in &files {
        let p = parse(raw);
        let keys = keys_for(&p);
        let ts_header = if p.is_v3() {
            p.header("x-acs-date").map(str::to_owned)
        } else {
            p.query
                .iter()
                .chain(&p.form)
                .find(|(k, _)| k == "Timestamp")
                .map(|(_, v)| v.clone())
        };
        let now: Timestamp = ts_header.expect("timestamp").parse().unwrap();

        let v = check(&p, now, &keys).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(v.access_key_id, "testid", "{name}");
        assert_eq!(v.timestamp, now, "{name}");
        assert_eq!(v.scheme == Scheme::V1HmacSha1, !p.is_v3(), "{name}");
        let sts = name.contains("_sts");
        assert_eq!(
            v.security_token.as_deref(),
            sts.then_some("testststoken"),
            "{name}"
        );
        *schemes.entry(format!("{:?}", v.scheme)).or_default() += 1;
        verified += 1;

        // Nonce: header in V3, parameter (query or form body) in V1.
        let marker = if p.is_v3() {
            "x-acs-signature-nonce: "
        } else {
            "SignatureNonce="
        };
        let at = value_offset(raw, marker).unwrap_or_else(|| panic!("{name}: no nonce"));
        let r = check(&parse(&tampered(raw, at)), now, &keys);
        assert!(is_mismatch(&r), "{name}: nonce tamper gave {r:?}");
        tampers += 1;

        // A business parameter (ECS demo requests have no DBClusterId).
        let at = value_offset(raw, "DBClusterId=")
            .or_else(|| value_offset(raw, "RegionId="))
            .unwrap_or_else(|| panic!("{name}: no business parameter"));
        let in_body = at > find(raw, b"\r\n\r\n").unwrap();
        let r = check(&parse(&tampered(raw, at)), now, &keys);
        if p.is_v3() && in_body {
            assert_eq!(
                r.unwrap_err(),
                AuthError::ContentHashMismatch,
                "{name}: param tamper"
            );
        } else {
            assert!(is_mismatch(&r), "{name}: param tamper gave {r:?}");
        }
        tampers += 1;

        if !p.body.is_empty() {
            let r = check(&parse(&tampered(raw, body_offset(raw))), now, &keys);
            if p.is_v3() {
                assert_eq!(
                    r.unwrap_err(),
                    AuthError::ContentHashMismatch,
                    "{name}: body tamper"
                );
            } else {
                assert!(is_mismatch(&r), "{name}: body tamper gave {r:?}");
            }
            tampers += 1;
        }

        if p.is_rsa() {
            // PKCS#1 PEM of the same key verifies too; a secret cannot.
            let key = RsaPublicKey::from_public_key_pem(&rsa_pem()).unwrap();
            let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
            let keys = Keys {
                material: KeyMaterial::RsaPublicKeyPem(pkcs1),
                active: true,
            };
            check(&p, now, &keys).unwrap_or_else(|e| panic!("{name} with PKCS#1: {e:?}"));
            assert!(
                is_mismatch(&check(&p, now, &secret("testsecret"))),
                "{name}"
            );
        } else {
            let r = check(&p, now, &secret("testsecret2"));
            assert!(is_mismatch(&r), "{name}: wrong secret gave {r:?}");
            wrong_secret += 1;
        }

        // Skew: 15:00 away is fine, 15:01 is not, both directions.
        let m15 = SignedDuration::from_mins(15);
        let s1 = SignedDuration::from_secs(1);
        for ok in [now + m15, now - m15] {
            check(&p, ok, &keys).unwrap_or_else(|e| panic!("{name} at 15:00: {e:?}"));
        }
        for late in [now + m15 + s1, now - m15 - s1] {
            assert_eq!(
                check(&p, late, &keys).unwrap_err(),
                AuthError::TimestampExpired,
                "{name}"
            );
        }

        struct NoKeys;
        impl KeyLookup for NoKeys {
            fn lookup(&self, _: &str) -> Option<KeyRecord> {
                None
            }
        }
        assert_eq!(
            check(&p, now, &NoKeys).unwrap_err(),
            AuthError::KeyNotFound,
            "{name}"
        );
        let inactive = Keys {
            active: false,
            ..keys_for(&p)
        };
        assert_eq!(
            check(&p, now, &inactive).unwrap_err(),
            AuthError::KeyInactive,
            "{name}"
        );
    }
    println!(
        "vectors: {verified} verified {schemes:?}; {tampers} tampered copies refused; \
         {wrong_secret} refused with a wrong secret"
    );
    assert_eq!(verified, files.len());
}

#[test]
fn parser_handles_chunked_bodies() {
    let p = parse(b"POST / HTTP/1.1\r\ncontent-type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na=1\r\n4\r\n&b=+\r\n0\r\n\r\n");
    assert_eq!(p.body, b"a=1&b=+");
    assert_eq!(
        p.form,
        vec![("a".into(), "1".into()), ("b".into(), " ".into())]
    );
}
