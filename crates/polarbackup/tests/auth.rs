//! Authentication through the real binary: unknown, disabled and wrong keys, timestamps, nonces (also across a restart), unsigned and tampered requests.

mod common;

use common::*;
use polarbackup_testkit::{request, sdk, sdk_batch, Server, Tenant};
use serde_json::{json, Value};

fn ask(client: &str, tenant: &Tenant, params: Value) -> Value {
    request(client, shared(), tenant, params)
}

fn with(mut req: Value, options: Value) -> Value {
    for (k, v) in options.as_object().unwrap() {
        req[k] = v.clone();
    }
    req
}

fn cluster(t: &Tenant) -> Value {
    json!({"DBClusterId": t.cluster_id})
}

#[test]
fn an_unknown_access_key_is_404() {
    let t = tenant();
    let stranger = Tenant {
        key_id: "LTAI5tNoSuchKey00000000".into(),
        ..t.clone()
    };
    let mut clients: Vec<&str> = SDK_CLIENTS.to_vec();
    clients.push("raw");
    let mut reqs: Vec<Value> = clients
        .iter()
        .map(|c| ask(c, &stranger, cluster(&t)))
        .collect();
    reqs.push(with(
        ask("raw", &stranger, cluster(&t)),
        json!({"sig": "v3"}),
    ));
    for res in sdk_batch(reqs) {
        assert_error(&res, 404, "InvalidAccessKeyId.NotFound");
        assert_error_envelope(&res);
    }
}

#[test]
fn a_wrong_secret_does_not_match_and_v1_says_what_the_server_signed() {
    let t = tenant();
    let wrong = Tenant {
        secret: format!("{}x", t.secret),
        ..t.clone()
    };
    let results = sdk_batch(vec![
        ask("v3", &wrong, cluster(&t)),
        ask("v3-sm3", &wrong, cluster(&t)),
        ask("v1-new", &wrong, cluster(&t)),
        ask("old-typed-post", &wrong, cluster(&t)),
        ask("old-common-get", &wrong, cluster(&t)),
        ask("old-common-post-form", &wrong, cluster(&t)),
        ask("raw", &wrong, cluster(&t)),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"corrupt_signature": true}),
        ),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"corrupt_signature": true, "method": "GET", "placement": "query"}),
        ),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"sig": "v3", "corrupt_signature": true}),
        ),
    ]);
    for res in &results[..3] {
        assert_error(res, 400, "SignatureDoesNotMatch");
    }
    // The old SDK compares the server's string to sign with its own and, when they are equal,
    // reports InvalidAccessKeySecret: so the server's V1 canonicalisation matches the SDK's.
    // (CommonRequest keeps its string to sign on an inner request, so the SDK cannot compare
    // and reports the server's code; the driver compares instead.)
    assert_error(&results[3], 400, "InvalidAccessKeySecret");
    for res in &results[4..] {
        assert_error(res, 400, "SignatureDoesNotMatch");
        assert_error_envelope(res);
    }
    for res in &results[4..9] {
        let sts = res["string_to_sign"].as_str().unwrap();
        let msg = res["message"].as_str().unwrap();
        assert!(
            msg.ends_with(&format!("server string to sign is:{sts}")),
            "message {msg:?} does not end with our string to sign {sts:?}"
        );
    }
}

#[test]
fn a_disabled_key_is_inactive_until_enabled_again() {
    let t = tenant();
    let disabled = shared().admin(&["key", "disable", "--key", &t.key_id]);
    assert!(disabled.is_object());
    let mut reqs: Vec<Value> = ["v3", "v1-new", "old-typed-post", "old-common-get", "raw"]
        .iter()
        .map(|c| ask(c, &t, cluster(&t)))
        .collect();
    reqs.push(with(ask("raw", &t, cluster(&t)), json!({"sig": "v3"})));
    for res in sdk_batch(reqs) {
        assert_error(&res, 400, "InvalidAccessKeyId.Inactive");
        assert_error_envelope(&res);
    }
    let enabled = shared().admin(&["key", "enable", "--key", &t.key_id]);
    assert!(enabled.is_object());
    for res in sdk_batch(vec![
        ask("v3", &t, cluster(&t)),
        ask("raw", &t, cluster(&t)),
    ]) {
        ok_jobs(&res);
    }
}

#[test]
fn timestamps_more_than_fifteen_minutes_away_are_expired() {
    let t = tenant();
    let away = 15 * 60 + 30;
    let near = 14 * 60;
    let mut reqs = Vec::new();
    for sig in ["v1", "v3", "v3-sm3"] {
        for offset in [-away, away] {
            reqs.push(with(
                ask("raw", &t, cluster(&t)),
                json!({"sig": sig, "offset_seconds": offset}),
            ));
        }
    }
    let refused = reqs.len();
    for sig in ["v1", "v3"] {
        for offset in [-near, near] {
            reqs.push(with(
                ask("raw", &t, cluster(&t)),
                json!({"sig": sig, "offset_seconds": offset}),
            ));
        }
    }
    let results = sdk_batch(reqs);
    for res in &results[..refused] {
        assert_error(res, 400, "InvalidTimeStamp.Expired");
        assert_error_envelope(res);
    }
    for res in &results[refused..] {
        ok_jobs(res);
    }
}

#[test]
fn unparsable_timestamps_are_badly_formatted() {
    let t = tenant();
    let mut reqs = Vec::new();
    for ts in [
        "2026-11-28 16:57:18",
        "yesterday",
        "1700000000",
        "2026-13-45T99:99:99Z",
    ] {
        reqs.push(with(ask("raw", &t, cluster(&t)), json!({"timestamp": ts})));
    }
    for ts in ["garbage", "Sat, 28 Nov 2026 16:57:18 GMT"] {
        reqs.push(with(
            ask("raw", &t, cluster(&t)),
            json!({"sig": "v3", "timestamp": ts}),
        ));
    }
    for res in sdk_batch(reqs) {
        assert_error(&res, 400, "InvalidTimeStamp.Format");
        assert_error_envelope(&res);
    }
}

#[test]
fn a_replayed_nonce_is_refused() {
    let t = tenant();
    let v1_nonce = format!("{}-v1", t.key_id);
    let v3_nonce = format!("{}-v3", t.key_id);
    let v1 = with(ask("raw", &t, cluster(&t)), json!({"nonce": v1_nonce}));
    let v3 = with(
        ask("raw", &t, cluster(&t)),
        json!({"sig": "v3", "nonce": v3_nonce}),
    );
    // A V1 nonce replayed with V3 is a replay too.
    let cross = with(
        ask("raw", &t, cluster(&t)),
        json!({"sig": "v3", "nonce": v1_nonce}),
    );
    let results = sdk_batch(vec![v1.clone(), v1, v3.clone(), v3, cross]);
    ok_jobs(&results[0]);
    ok_jobs(&results[2]);
    for res in [&results[1], &results[3], &results[4]] {
        assert_error(res, 400, "SignatureNonceUsed");
        assert_error_envelope(res);
    }
}

#[test]
fn a_used_nonce_stays_used_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut first = Server::start(bin(), Some(&data), &[]);
    let t = first.tenant();
    let nonce = format!("restart-{}", t.key_id);
    let res = sdk(with(
        request("raw", &first, &t, cluster(&t)),
        json!({"nonce": nonce}),
    ));
    ok_jobs(&res);
    let status = first.stop();
    assert!(status.success(), "{status:?}\n{}", first.log());

    let second = Server::start(bin(), Some(&data), &[]);
    // Read in before it listened, not by the first request.
    let read_in = |log: String, n: u32| {
        log.lines()
            .any(|l| l.contains("nonces read in") && l.contains(&format!("nonces={n} ")))
    };
    assert!(read_in(first.log(), 0), "{}", first.log());
    assert!(read_in(second.log(), 1), "{}", second.log());
    let results = sdk_batch(vec![
        with(
            request("raw", &second, &t, cluster(&t)),
            json!({"nonce": nonce}),
        ),
        with(
            request("raw", &second, &t, cluster(&t)),
            json!({"sig": "v3", "nonce": nonce}),
        ),
        request("v3", &second, &t, cluster(&t)),
    ]);
    assert_error(&results[0], 400, "SignatureNonceUsed");
    assert_error(&results[1], 400, "SignatureNonceUsed");
    ok_jobs(&results[2]);
}

#[test]
fn unsigned_v1_requests_name_what_is_missing() {
    let t = tenant();
    let cases = [
        ("AccessKeyId", "MissingAccessKeyId"),
        ("Signature", "MissingSignature"),
        ("Timestamp", "MissingTimestamp"),
        ("SignatureNonce", "MissingSignatureNonce"),
    ];
    let mut reqs: Vec<Value> = cases
        .iter()
        .map(|(omit, _)| with(ask("raw", &t, cluster(&t)), json!({"omit": [omit]})))
        .collect();
    reqs.push(with(ask("raw", &t, cluster(&t)), json!({"sig": "none"})));
    let results = sdk_batch(reqs);
    for (res, (_, code)) in results.iter().zip(cases) {
        assert_error(res, 400, code);
        assert_error_envelope(res);
    }
    assert_error(&results[4], 400, "MissingSignature");
}

#[test]
fn a_request_changed_after_signing_is_refused() {
    let t = tenant();
    let other = t.add_cluster(&shared().bin, &shared().data_dir);
    let results = sdk_batch(vec![
        with(
            ask("raw", &t, cluster(&t)),
            json!({"tamper": {"name": "DBClusterId", "value": other}}),
        ),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"placement": "form", "tamper": {"name": "DBClusterId", "value": other}}),
        ),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"tamper": {"name": "SignatureNonce", "value": "changed"}}),
        ),
    ]);
    for res in &results {
        assert_error(res, 400, "SignatureDoesNotMatch");
        assert_error_envelope(res);
    }
}

#[test]
fn a_v3_body_must_match_its_content_hash() {
    let t = tenant();
    let results = sdk_batch(vec![
        with(
            ask("raw", &t, cluster(&t)),
            json!({"sig": "v3", "placement": "form", "wrong_content_sha": true}),
        ),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"sig": "v3", "wrong_content_sha": true}),
        ),
        with(
            ask("raw", &t, cluster(&t)),
            json!({"sig": "v3-sm3", "placement": "form", "wrong_content_sha": true}),
        ),
    ]);
    for res in &results {
        assert_eq!(res["status"], 400, "{res:#}");
        assert!(
            ["SignatureDoesNotMatch", "IncompleteSignature"]
                .contains(&res["code"].as_str().unwrap_or("")),
            "{res:#}"
        );
        assert_error_envelope(res);
    }
}

#[test]
fn the_official_sdks_sign_acceptably_with_every_algorithm() {
    let t = tenant();
    let mut clients: Vec<&str> = SDK_CLIENTS.to_vec();
    clients.push("raw");
    let mut reqs: Vec<Value> = clients.iter().map(|c| ask(c, &t, cluster(&t))).collect();
    reqs.push(with(ask("raw", &t, cluster(&t)), json!({"sig": "v3"})));
    reqs.push(with(ask("raw", &t, cluster(&t)), json!({"sig": "v3-sm3"})));
    for res in sdk_batch(reqs) {
        ok_jobs(&res);
    }
}

/// An RSA key pair made with openssl: (private key PEM, public key PEM file).
fn rsa_key_pair(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl (scripts/install-deps.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p(&private),
    ]);
    run(&["pkey", "-in", &p(&private), "-pubout", "-out", &p(&public)]);
    (std::fs::read_to_string(&private).unwrap(), public)
}

#[test]
fn an_rsa_key_signs_acs3_rsa_sha256_through_the_official_sdk_and_nothing_else() {
    let server = shared();
    let t = tenant();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_key_pair(dir.path(), "a");
    let (other_private, _) = rsa_key_pair(dir.path(), "b");
    let created = server.admin(&[
        "key",
        "create",
        "--account",
        &t.account_id,
        "--rsa-public-key-file",
        public.to_str().unwrap(),
    ]);
    assert_eq!(
        created["SignatureAlgorithm"], "ACS3-RSA-SHA256",
        "{created}"
    );
    assert!(created.get("AccessKeySecret").is_none(), "{created}");
    let rsa = Tenant {
        key_id: created["AccessKeyId"].as_str().unwrap().to_string(),
        secret: private,
        ..t.clone()
    };
    let wrong_private = Tenant {
        secret: other_private,
        ..rsa.clone()
    };
    // The key id as an HMAC secret: whatever the server stores for an RSA key, it is no secret.
    let pem_as_secret = Tenant {
        secret: std::fs::read_to_string(&public).unwrap(),
        ..rsa.clone()
    };
    let r = sdk_batch(vec![
        ask("v3-rsa", &rsa, cluster(&t)),
        ask("v3-rsa", &wrong_private, cluster(&t)),
        ask("v3", &pem_as_secret, cluster(&t)),
        ask("v1-new", &pem_as_secret, cluster(&t)),
        // An HMAC key cannot be used as if it were RSA.
        ask("v3-rsa", &t, cluster(&t)),
    ]);
    assert_eq!(r[0]["ok"], true, "{:#}", r[0]);
    assert_eq!(r[0]["status"], 200, "{:#}", r[0]);
    for (i, res) in r.iter().enumerate().skip(1).take(3) {
        assert_error(res, 400, "SignatureDoesNotMatch");
        assert_eq!(res["ok"], false, "case {i}: {res:#}");
    }
    // The SDK itself refuses to sign with an HMAC secret as a private key.
    assert_eq!(r[4]["ok"], false, "{:#}", r[4]);

    // A file that is not an RSA public key is refused at registration.
    let bad = dir.path().join("bad.pub");
    std::fs::write(
        &bad,
        "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = polarbackup_testkit::admin_output(
        bin(),
        &server.data_dir,
        &[
            "key",
            "create",
            "--account",
            &t.account_id,
            "--rsa-public-key-file",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an RSA public key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
