//! The RPC front door: methods, query and form parameters, body framing and limits, Action/Version dispatch, envelopes, health, shutdown.

mod common;

use common::*;
use polarbackup_model::{JobMode, JobStatus};
use polarbackup_testkit::{checks, request, sdk, sdk_batch, Server, Tenant, Tmpfs};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn ask(client: &str, tenant: &Tenant, params: Value) -> Value {
    request(client, shared(), tenant, params)
}

fn with(mut req: Value, options: Value) -> Value {
    for (k, v) in options.as_object().unwrap() {
        req[k] = v.clone();
    }
    req
}

/// A plain HTTP/1.1 request with Connection: close; returns (status, headers, body).
fn http(addr: &str, raw_request: &str) -> (u16, String, String) {
    polarbackup_testkit::http::exchange(addr, raw_request.as_bytes(), Duration::from_secs(20))
        .expect("an HTTP exchange")
}

#[test]
fn get_and_post_with_query_form_and_chunked_bodies_all_read_every_parameter() {
    let t = tenant();
    let base = now() - minutes(20);
    let jobs = seed_shared(
        &t.cluster_id,
        &[
            Seed::new(JobStatus::Finished, base).mode(JobMode::Automated),
            Seed::new(JobStatus::Uploading, base + minutes(1)).mode(JobMode::Manual),
        ],
    );
    let want = vec![expected(&jobs[1])];
    let params = json!({"DBClusterId": t.cluster_id, "BackupMode": "Manual"});
    let raw = || ask("raw", &t, params.clone());
    let variants = vec![
        ("v1 GET query", with(raw(), json!({"method": "GET"}))),
        ("v1 POST query", raw()),
        ("v1 POST form", with(raw(), json!({"placement": "form"}))),
        (
            "v1 POST form chunked",
            with(raw(), json!({"placement": "form", "chunked": true})),
        ),
        (
            "v1 POST everything in the form (pop-core)",
            with(raw(), json!({"placement": "all-form"})),
        ),
        (
            "v1 POST everything in a chunked form",
            with(raw(), json!({"placement": "all-form", "chunked": true})),
        ),
        ("v3 POST query", with(raw(), json!({"sig": "v3"}))),
        (
            "v3 GET query",
            with(raw(), json!({"sig": "v3", "method": "GET"})),
        ),
        (
            "v3 POST form",
            with(raw(), json!({"sig": "v3", "placement": "form"})),
        ),
        (
            "v3 POST form chunked",
            with(
                raw(),
                json!({"sig": "v3", "placement": "form", "chunked": true}),
            ),
        ),
        (
            "v3-sm3 POST form chunked",
            with(
                raw(),
                json!({"sig": "v3-sm3", "placement": "form", "chunked": true}),
            ),
        ),
        (
            "old SDK POST form",
            ask("old-common-post-form", &t, params.clone()),
        ),
        ("old SDK GET", ask("old-common-get", &t, params.clone())),
        (
            "old SDK typed GET",
            with(
                ask("old-typed-post", &t, params.clone()),
                json!({"method": "GET"}),
            ),
        ),
    ];
    let (names, reqs): (Vec<&str>, Vec<Value>) = variants.into_iter().unzip();
    for (name, res) in names.iter().zip(sdk_batch(reqs)) {
        assert_eq!(ok_jobs(&res), want, "{name}: {res:#}");
    }
}

#[test]
fn plus_decodes_to_space_in_query_and_form() {
    let t = tenant();
    let params = json!({"DBClusterId": t.cluster_id, "OwnerAccount": "a b  c"});
    let results = sdk_batch(vec![
        with(ask("raw", &t, params.clone()), json!({"plus_spaces": true})),
        with(
            ask("raw", &t, params.clone()),
            json!({"plus_spaces": true, "placement": "form"}),
        ),
        with(
            ask("raw", &t, params.clone()),
            json!({"plus_spaces": true, "placement": "all-form", "chunked": true}),
        ),
        with(
            ask("raw", &t, params.clone()),
            json!({"plus_spaces": true, "sig": "v3"}),
        ),
    ]);
    for res in results {
        // The signature covers "a b  c": it only verifies if '+' was read as a space.
        ok_jobs(&res);
    }
}

#[test]
fn unusual_characters_survive_canonicalisation_for_every_client() {
    let t = tenant();
    let params = json!({
        "DBClusterId": t.cluster_id,
        "OwnerAccount": "a b*c~d/e+f=g&h!'()ü%20;:@,$[]",
    });
    let mut clients: Vec<&str> = SDK_CLIENTS.to_vec();
    clients.push("raw");
    let mut reqs: Vec<Value> = clients.iter().map(|c| ask(c, &t, params.clone())).collect();
    reqs.push(with(ask("raw", &t, params.clone()), json!({"sig": "v3"})));
    reqs.push(with(
        ask("raw", &t, params.clone()),
        json!({"placement": "form", "chunked": true}),
    ));
    for res in sdk_batch(reqs) {
        ok_jobs(&res);
    }
}

#[test]
fn an_unknown_action_is_404() {
    let t = tenant();
    let p = json!({"DBClusterId": t.cluster_id});
    let results = sdk_batch(vec![
        with(ask("v3", &t, p.clone()), json!({"action": "NoSuchAction"})),
        with(
            ask("v1-new", &t, p.clone()),
            json!({"action": "NoSuchAction"}),
        ),
        with(
            ask("old-common-get", &t, p.clone()),
            json!({"action": "NoSuchAction"}),
        ),
        with(ask("raw", &t, p.clone()), json!({"action": "NoSuchAction"})),
        with(
            ask("raw", &t, p.clone()),
            json!({"action": "describebackuptasks"}),
        ),
        with(
            ask("raw", &t, p.clone()),
            json!({"sig": "v3", "action": "NoSuchAction"}),
        ),
    ]);
    for res in results {
        assert_error(&res, 404, "InvalidAction.NotFound");
        assert_error_envelope(&res);
    }
}

#[test]
fn a_version_other_than_2017_08_01_is_refused() {
    let t = tenant();
    let p = json!({"DBClusterId": t.cluster_id});
    let results = sdk_batch(vec![
        with(ask("v3", &t, p.clone()), json!({"version": "2017-08-02"})),
        with(
            ask("v1-new", &t, p.clone()),
            json!({"version": "2014-05-26"}),
        ),
        with(
            ask("old-common-get", &t, p.clone()),
            json!({"version": "2017-08-01x"}),
        ),
        with(ask("raw", &t, p.clone()), json!({"version": "2017-8-1"})),
        with(
            ask("raw", &t, p.clone()),
            json!({"sig": "v3", "version": "2018-01-01"}),
        ),
    ]);
    for res in results {
        assert_error(&res, 400, "InvalidVersion");
        assert_error_envelope(&res);
    }
}

#[test]
fn a_body_over_one_mebibyte_is_refused_with_a_4xx() {
    let t = tenant();
    let p = json!({"DBClusterId": t.cluster_id});
    let big = 1024 * 1024 + 4096;
    let results = sdk_batch(vec![
        with(
            ask("raw", &t, p.clone()),
            json!({"placement": "form", "oversize": big}),
        ),
        with(
            ask("raw", &t, p.clone()),
            json!({"placement": "form", "oversize": big, "chunked": true}),
        ),
        with(
            ask("raw", &t, p.clone()),
            json!({"sig": "v3", "placement": "form", "oversize": big}),
        ),
        // Just under the limit is fine.
        with(
            ask("raw", &t, p.clone()),
            json!({"placement": "form", "oversize": 1000 * 1000}),
        ),
    ]);
    for res in &results[..3] {
        let status = res["status"].as_u64().unwrap_or(0);
        assert!((400..500).contains(&status), "{res:#}");
        if wire_body(res).is_object() {
            assert_error_envelope(res);
        }
    }
    ok_jobs(&results[3]);
}

#[test]
fn json_is_the_default_and_every_response_carries_its_request_id_header() {
    let t = tenant();
    let p = json!({"DBClusterId": t.cluster_id});
    let results = sdk_batch(vec![
        with(ask("raw", &t, p.clone()), json!({"omit": ["Format"]})),
        with(ask("raw", &t, p.clone()), json!({"format": "json"})),
        with(ask("raw", &t, p.clone()), json!({"sig": "v3"})),
        with(ask("raw", &t, json!({})), json!({"omit": ["Format"]})),
        with(ask("raw", &t, p.clone()), json!({"action": "Nope"})),
    ]);
    for res in &results[..3] {
        ok_jobs(res);
    }
    for res in &results[3..] {
        assert_eq!(
            res["headers"]["content-type"],
            "application/json;charset=utf-8"
        );
        assert_error_envelope(res);
    }
    let mut rids: Vec<&str> = results
        .iter()
        .map(|r| r["headers"]["x-acs-request-id"].as_str().unwrap())
        .collect();
    assert!(rids.iter().all(|r| checks::is_request_id(r)));
    rids.sort_unstable();
    rids.dedup();
    assert_eq!(rids.len(), results.len(), "RequestIds repeat");
}

#[test]
fn healthz_answers_200() {
    let (status, _, _) = http(
        &shared().endpoint(),
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn the_data_directory_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&shared().data_dir).expect("data dir exists");
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
}

#[test]
fn sigterm_stops_the_server_with_exit_zero() {
    let mut server = Server::start(bin(), None, &[]);
    let t = server.tenant();
    let res = sdk(request(
        "v3",
        &server,
        &t,
        json!({"DBClusterId": t.cluster_id}),
    ));
    ok_jobs(&res);
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
}

#[test]
fn serve_refuses_a_config_file_with_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "job_histroy_days = 3\n").unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running with a bad config file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "no message on stderr"
    );
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let mut server = Server::start(bin(), None, &[]);
    let body = "Action=DescribeBackupTasks&Version=2017-08-01&DBClusterId=pc-aaaaaaaaaaaaaaa";
    let mut conn = TcpStream::connect(server.endpoint()).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.flush().unwrap();
    // The interim answer comes once the server parsed the head and started reading the body:
    // from then on the request is in flight, however slowly the machine runs.
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).expect("the interim response");
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    let client = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        conn.write_all(body.as_bytes()).unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).unwrap();
        out
    });
    let status = server.stop();
    let response = client.join().expect("client thread");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("\"Code\":\"MissingAccessKeyId\""),
        "{response}"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    // A server of its own with a short deadline: the deadline also closes idle keep-alive
    // connections, which the shared server's SDK clients reuse.
    let deadline = Duration::from_secs(1);
    let args = [API_ONLY, &["--header-timeout-secs", "1"]].concat();
    let server = Server::start(bin(), None, &args);
    let started = std::time::Instant::now();
    let mut slow = TcpStream::connect(server.endpoint()).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // A header line every quarter second, never the blank line that ends the head: far more
    // than the deadline in all, though each line comes well within it.
    let mut ended = false;
    for i in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        if write!(slow, "X-Slow-{i}: 1\r\n").is_err() {
            ended = true;
            break;
        }
    }
    if !ended {
        let mut out = Vec::new();
        // EOF (or a reset) once the server gives up on the head.
        let _ = slow.read_to_end(&mut out);
    }
    let waited = started.elapsed();
    assert!(
        waited >= deadline && waited < Duration::from_secs(8),
        "the connection stayed open {waited:?}"
    );
    // Other clients were served all along.
    let (status, _, _) = http(
        &server.endpoint(),
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn a_missing_signature_version_is_refused_as_the_gateway_does() {
    let t = tenant();
    let p = json!({"DBClusterId": t.cluster_id});
    let res = sdk(with(
        ask("raw", &t, p),
        json!({"omit": ["SignatureVersion"]}),
    ));
    assert_eq!(res["status"], 400, "{res:#}");
    assert_eq!(res["code"], "MissingSignatureVersion", "{res:#}");
    assert_eq!(
        res["message"], "SignatureVersion is mandatory for this action.",
        "{res:#}"
    );
    assert_error_envelope(&res);
}

#[test]
fn a_signing_parameter_given_twice_is_refused_whichever_comes_first() {
    let t = tenant();
    let p = json!({"DBClusterId": t.cluster_id});
    let cases = [
        // The right signature first, then a wrong one (first-wins used to accept this).
        json!({"extra_params": [["Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="]]}),
        // In the form body after the query's.
        json!({"placement": "form", "extra_params": [["Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="]]}),
        json!({"extra_params": [["SignatureNonce", "another-nonce"]]}),
        json!({"extra_params": [["AccessKeyId", t.key_id]]}),
        json!({"extra_params": [["Timestamp", "2020-01-01T00:00:00Z"]]}),
    ];
    let results = sdk_batch(
        cases
            .iter()
            .map(|c| with(ask("raw", &t, p.clone()), c.clone()))
            .collect(),
    );
    for (case, res) in cases.iter().zip(&results) {
        assert_eq!(res["status"], 400, "{case}: {res:#}");
        assert_eq!(res["code"], "IncompleteSignature", "{case}: {res:#}");
        assert!(
            res["message"]
                .as_str()
                .is_some_and(|m| m.contains("is given more than once")),
            "{case}: {res:#}"
        );
        assert_error_envelope(res);
    }
    // A repeated business parameter is signed like any other, and the first one counts.
    let res = sdk(with(
        ask("raw", &t, p.clone()),
        json!({"extra_params": [["DBClusterId", "pc-someoneelse00000"]]}),
    ));
    ok_jobs(&res);
}

#[test]
fn requests_hyper_refuses_are_answered_in_the_api_error_shape() {
    let addr = shared().endpoint();
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        (
            "101 headers",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n"),
            431,
        ),
        (
            "bad Content-Length",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n".to_string(),
            400,
        ),
        (
            "a control byte in the URI",
            "GET /?Action=\u{1}x HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            400,
        ),
        (
            "a 70,000-byte URI",
            format!("GET /?a={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
            414,
        ),
    ];
    for (what, raw, status) in cases {
        let (got, head, body) = http(&addr, &raw);
        assert_eq!(got, status, "{what}: {head}\n{body}");
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {head}\n{body:?}"));
        for field in ["RequestId", "HostId", "Code", "Message"] {
            assert!(body[field].is_string(), "{what}: no {field}: {body}");
        }
        let rid = body["RequestId"].as_str().unwrap();
        assert!(checks::is_request_id(rid), "{what}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-acs-request-id: {}", rid.to_ascii_lowercase())),
            "{what}: {head}"
        );
    }
    let (status, _, _) = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

/// Writes zeros into `name` on `disk` until the file system is full.
fn fill(disk: &Tmpfs, name: &str) {
    let mut f = std::fs::File::create(disk.path().join(name)).expect("create the filler");
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_answers_503_and_reads_keep_working() {
    let disk = Tmpfs::mount(32);
    let server = Server::builder(bin())
        .data_dir(&disk.path().join("data"))
        .start();
    let t = server.tenant();
    // Nonces of the longest length accepted (128 bytes), so the room the nonce log keeps ahead
    // (its zero tail) is used up in a few hundred calls.
    let sent = std::cell::Cell::new(0u64);
    let call = |action: &str, params: Value| {
        let mut req = request("raw", &server, &t, params);
        req["action"] = json!(action);
        sent.set(sent.get() + 1);
        req["nonce"] = json!(format!("{:x<128}", format!("{}-{}-", t.key_id, sent.get())));
        req
    };
    let c = &t.cluster_id;
    let modify = || {
        call(
            "ModifyBackupPolicy",
            json!({"DBClusterId": c, "PreferredBackupPeriod": "Monday,Tuesday"}),
        )
    };
    let read = || call("DescribeBackupTasks", json!({"DBClusterId": c}));
    let before = sdk_batch(vec![read(), modify()]);
    ok_jobs(&before[0]);
    assert_eq!(before[1]["status"], 200, "{:#}", before[1]);

    fill(&disk, "filler");
    // Writes (and the nonce every signed call appends) go on in room the files already hold
    // (SQLite reuses its WAL, the nonce log writes into its zero tail), so calls may succeed
    // for a while; each is answered 200 or 503, and 503 comes once that room is used up.
    let mut unavailable = 0;
    for _ in 0..100 {
        let full = sdk_batch((0..10).flat_map(|_| [modify(), read()]).collect());
        for res in &full {
            let status = res["status"].as_u64().unwrap_or(0);
            assert!(status == 200 || status == 503, "{res:#}");
            if status == 503 {
                assert_eq!(res["code"], "ServiceUnavailable", "{res:#}");
                assert_error_envelope(res);
                unavailable += 1;
            }
        }
        if unavailable > 0 {
            break;
        }
    }
    assert!(unavailable > 0, "2000 calls on a full disk and no 503");
    assert!(!server.log().contains("InternalError"), "{}", server.log());

    // Room again: everything works.
    std::fs::remove_file(disk.path().join("filler")).expect("remove the filler");
    let after = sdk_batch(vec![modify(), read()]);
    assert_eq!(after[0]["status"], 200, "{:#}", after[0]);
    ok_jobs(&after[1]);
    drop(server);
}
