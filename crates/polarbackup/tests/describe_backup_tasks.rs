//! DescribeBackupTasks end to end: the real binary, driven by the official Python SDKs (new and old) and the raw signer.

mod common;

use common::*;
use polarbackup_model::{JobMode, JobStatus, TaskAction};
use polarbackup_testkit::{request, sdk, sdk_batch, Server, Tenant};
use serde_json::{json, Value};

fn ask(client: &str, tenant: &Tenant, params: Value) -> Value {
    request(client, shared(), tenant, params)
}

fn ask_all(clients: &[&str], tenant: &Tenant, params: Value) -> Vec<Value> {
    sdk_batch(
        clients
            .iter()
            .map(|c| ask(c, tenant, params.clone()))
            .collect(),
    )
}

#[test]
fn a_cluster_without_jobs_lists_an_empty_array_for_every_client() {
    let t = tenant();
    let results = ask_all(&SDK_CLIENTS, &t, json!({"DBClusterId": t.cluster_id}));
    for res in &results {
        let jobs = ok_jobs(res);
        assert!(jobs.is_empty(), "{res:#}");
        // The wrapper is sent explicitly, not left for the SDK to fill in.
        assert_eq!(wire_body(res)["Items"], json!({"BackupJob": []}), "{res:#}");
    }
    // The raw answer: JSON content type, a fresh upper-case RequestId in header and body.
    let raw = sdk(ask("raw", &t, json!({"DBClusterId": t.cluster_id})));
    ok_jobs(&raw);
    let body: Value = serde_json::from_str(raw["raw_body"].as_str().unwrap()).unwrap();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Items", "RequestId"], "{raw:#}");
    let rids: std::collections::HashSet<&str> = results
        .iter()
        .map(|r| wire_body(r)["RequestId"].as_str().unwrap())
        .collect();
    assert_eq!(rids.len(), results.len(), "RequestIds are not fresh");
}

#[test]
fn one_job_has_exactly_the_documented_fields() {
    let t = tenant();
    let start = now() - minutes(5);
    let jobs = seed_shared(&t.cluster_id, &[Seed::new(JobStatus::NoStart, start)]);
    let want = expected(&jobs[0]);
    assert_eq!(want["Process"], "0");
    assert_eq!(want["StartTime"], api_time(start));
    let results = ask_all(
        &["v3", "v1-new", "old-typed-post", "old-common-get"],
        &t,
        json!({"DBClusterId": t.cluster_id}),
    );
    for res in &results {
        assert_eq!(ok_jobs(res), vec![want.clone()], "{res:#}");
    }
    // The new SDK's typed model reads every field.
    assert_eq!(results[0]["body"]["Items"]["BackupJob"][0], want);
}

#[test]
fn many_jobs_come_newest_first_with_their_progress() {
    let t = tenant();
    let base = now() - hours(2);
    use JobStatus::*;
    let seeds = [
        Seed::new(Finished, base),
        Seed::new(Failed, base + minutes(10)),
        Seed::new(Checking, base + minutes(20)).mode(JobMode::Automated),
        Seed::new(Uploading, base + minutes(30)).action(TaskAction::TempBackupTask),
        Seed::new(Waiting, base + minutes(40)).mode(JobMode::Automated),
        Seed::new(Preparing, base + minutes(50)),
        Seed::new(NoStart, base + minutes(60)),
    ];
    let jobs = seed_shared(&t.cluster_id, &seeds);
    let mut want: Vec<Value> = jobs.iter().map(expected).collect();
    want.reverse();
    let statuses: Vec<&str> = want
        .iter()
        .map(|j| j["BackupProgressStatus"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "NoStart",
            "Preparing",
            "Waiting",
            "Uploading",
            "Checking",
            "Failed",
            "Finished"
        ]
    );
    let processes: Vec<&str> = want
        .iter()
        .map(|j| j["Process"].as_str().unwrap())
        .collect();
    assert_eq!(processes, ["0", "3", "5", "42", "95", "42", "100"]);

    let results = ask_all(
        &[
            "v3",
            "v3-sm3",
            "v1-new",
            "old-common-get",
            "old-common-post-form",
        ],
        &t,
        json!({"DBClusterId": t.cluster_id}),
    );
    for res in &results {
        let got = ok_jobs(res);
        assert_eq!(got, want, "{res:#}");
        let times: Vec<&str> = got
            .iter()
            .map(|j| j["StartTime"].as_str().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    }
    let ids: Vec<u64> = jobs.iter().map(|j| j.id.0).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not increasing: {ids:?}"
    );
}

#[test]
fn backup_mode_filters_by_job_mode() {
    let t = tenant();
    let base = now() - hours(1);
    let jobs = seed_shared(
        &t.cluster_id,
        &[
            Seed::new(JobStatus::Finished, base).mode(JobMode::Automated),
            Seed::new(JobStatus::Uploading, base + minutes(1)).mode(JobMode::Manual),
            Seed::new(JobStatus::NoStart, base + minutes(2)).mode(JobMode::Automated),
        ],
    );
    let automated = vec![expected(&jobs[2]), expected(&jobs[0])];
    let manual = vec![expected(&jobs[1])];
    let mut reqs = Vec::new();
    for client in ["v3", "old-typed-post", "old-common-post-form"] {
        for mode in ["Automated", "Manual"] {
            reqs.push(ask(
                client,
                &t,
                json!({"DBClusterId": t.cluster_id, "BackupMode": mode}),
            ));
        }
    }
    for (i, res) in sdk_batch(reqs).iter().enumerate() {
        let want = if i % 2 == 0 { &automated } else { &manual };
        assert_eq!(&ok_jobs(res), want, "{res:#}");
    }
}

#[test]
fn backup_job_id_filters_to_that_job_and_unknown_ids_give_an_empty_list() {
    let t = tenant();
    let other_cluster = t.add_cluster(&shared().bin, &shared().data_dir);
    let base = now() - hours(1);
    let jobs = seed_shared(
        &t.cluster_id,
        &[
            Seed::new(JobStatus::Finished, base).mode(JobMode::Automated),
            Seed::new(JobStatus::Uploading, base + minutes(1)),
        ],
    );
    let elsewhere = seed_shared(&other_cluster, &[Seed::new(JobStatus::NoStart, base)]);
    let id0 = jobs[0].id.0.to_string();
    let id1 = jobs[1].id.0.to_string();
    let cases: Vec<(Value, Vec<Value>)> = vec![
        (json!({"BackupJobId": id0}), vec![expected(&jobs[0])]),
        (json!({"BackupJobId": id1}), vec![expected(&jobs[1])]),
        (
            json!({"BackupJobId": id0, "BackupMode": "Automated"}),
            vec![expected(&jobs[0])],
        ),
        (json!({"BackupJobId": id0, "BackupMode": "Manual"}), vec![]),
        (json!({"BackupJobId": "987654321987"}), vec![]),
        // A job of another cluster is not found through this one.
        (
            json!({"BackupJobId": elsewhere[0].id.0.to_string()}),
            vec![],
        ),
    ];
    let mut reqs = Vec::new();
    for (extra, _) in &cases {
        let mut params = extra.clone();
        params["DBClusterId"] = json!(t.cluster_id);
        reqs.push(ask("v3", &t, params.clone()));
        reqs.push(ask("old-common-get", &t, params));
    }
    let results = sdk_batch(reqs);
    for (i, res) in results.iter().enumerate() {
        assert_eq!(
            ok_jobs(res),
            cases[i / 2].1,
            "case {:?}: {res:#}",
            cases[i / 2].0
        );
    }
}

#[test]
fn a_missing_db_cluster_id_is_refused_by_every_client() {
    let t = tenant();
    let mut clients: Vec<&str> = SDK_CLIENTS.to_vec();
    clients.push("raw");
    for res in ask_all(&clients, &t, json!({"BackupMode": "Manual"})) {
        assert_error(&res, 400, "MissingDBClusterId");
        assert_eq!(res["message"], "DBClusterId is mandatory for this action.");
        assert_error_envelope(&res);
    }
}

#[test]
fn an_unknown_cluster_is_not_found() {
    let t = tenant();
    let mut clients: Vec<&str> = SDK_CLIENTS.to_vec();
    clients.push("raw");
    for res in ask_all(&clients, &t, json!({"DBClusterId": "pc-0000000000zzzzz"})) {
        assert_error(&res, 400, "InvalidDBClusterId.NotFound");
        assert_eq!(
            res["message"],
            "The DBClusterId provided does not exist in our records."
        );
        assert_error_envelope(&res);
    }
}

#[test]
fn another_accounts_cluster_is_indistinguishable_from_a_missing_one() {
    let me = tenant();
    let them = tenant();
    seed_shared(
        &them.cluster_id,
        &[Seed::new(JobStatus::Uploading, now() - minutes(3))],
    );
    let reqs = vec![
        ask("raw", &me, json!({"DBClusterId": them.cluster_id})),
        ask("raw", &me, json!({"DBClusterId": "pc-0000000000yyyyy"})),
        ask("v3", &me, json!({"DBClusterId": them.cluster_id})),
        ask(
            "old-typed-post",
            &me,
            json!({"DBClusterId": them.cluster_id}),
        ),
        // The owner still sees its job.
        ask("v3", &them, json!({"DBClusterId": them.cluster_id})),
    ];
    let results = sdk_batch(reqs);
    let normalise = |res: &Value| {
        let mut body = wire_body(res).clone();
        let rid = body["RequestId"].as_str().unwrap().to_string();
        let obj = body.as_object_mut().unwrap();
        obj.remove("RequestId");
        let recommend = obj["Recommend"].as_str().unwrap().replace(&rid, "RID");
        obj.insert("Recommend".into(), json!(recommend));
        (res["status"].clone(), body)
    };
    for res in &results[..4] {
        assert_error(res, 400, "InvalidDBClusterId.NotFound");
        assert_error_envelope(res);
    }
    assert_eq!(normalise(&results[0]), normalise(&results[1]));
    assert_eq!(ok_jobs(&results[4]).len(), 1);
}

#[test]
fn a_backup_mode_other_than_automated_or_manual_is_malformed() {
    let t = tenant();
    let mut reqs = Vec::new();
    for mode in ["manual", "AUTOMATED", "Auto", "Manual ", "Manual,Automated"] {
        for client in ["v3", "v1-new", "old-common-get"] {
            reqs.push(ask(
                client,
                &t,
                json!({"DBClusterId": t.cluster_id, "BackupMode": mode}),
            ));
        }
    }
    for res in sdk_batch(reqs) {
        assert_error(&res, 400, "InvalidBackupMode.Malformed");
        assert_eq!(
            res["message"],
            "The specified parameter BackupMode is not valid."
        );
    }
}

#[test]
fn owner_and_region_parameters_are_accepted_and_ignored() {
    let t = tenant();
    let jobs = seed_shared(
        &t.cluster_id,
        &[Seed::new(JobStatus::NoStart, now() - minutes(1))],
    );
    let params = json!({
        "DBClusterId": t.cluster_id,
        "OwnerId": "1234567890",
        "OwnerAccount": "someone a*b~c/d+e=f&g!'()ü",
        "ResourceOwnerId": "42",
        "ResourceOwnerAccount": "other",
    });
    let mut reqs: Vec<Value> = SDK_CLIENTS
        .iter()
        .map(|c| ask(c, &t, params.clone()))
        .collect();
    let mut with_region = params.clone();
    with_region["RegionId"] = json!("cn-beijing");
    reqs.push(ask("raw", &t, with_region));
    for res in sdk_batch(reqs) {
        assert_eq!(ok_jobs(&res), vec![expected(&jobs[0])], "{res:#}");
    }
}

#[test]
fn finished_and_failed_jobs_leave_the_list_after_the_default_seven_days() {
    let t = tenant();
    let n = now();
    use JobStatus::*;
    let jobs = seed_shared(
        &t.cluster_id,
        &[
            Seed::new(Finished, n - days(9)).ended(n - days(8)),
            Seed::new(Failed, n - days(9)).ended(n - days(8)),
            Seed::new(Finished, n - days(7)).ended(n - days(6)),
            Seed::new(Failed, n - days(7) + hours(1)).ended(n - days(6)),
            // Unfinished jobs stay, however old.
            Seed::new(NoStart, n - days(30)),
            Seed::new(Uploading, n - days(10)),
        ],
    );
    let want = vec![
        expected(&jobs[3]),
        expected(&jobs[2]),
        expected(&jobs[5]),
        expected(&jobs[4]),
    ];
    let res = sdk(ask("v3", &t, json!({"DBClusterId": t.cluster_id})));
    assert_eq!(ok_jobs(&res), want, "{res:#}");
}

#[test]
fn job_history_days_sets_the_window() {
    let mut server = Server::start(bin(), None, &["--job-history-days", "1", "--workers", "0"]);
    let t = server.tenant();
    let n = now();
    let jobs = seed(
        &server.data_dir,
        &t.cluster_id,
        &[
            Seed::new(JobStatus::Finished, n - days(3)).ended(n - days(2)),
            Seed::new(JobStatus::Failed, n - hours(30)).ended(n - hours(26)),
            Seed::new(JobStatus::Finished, n - hours(13)).ended(n - hours(12)),
        ],
    );
    let res = sdk(request(
        "v3",
        &server,
        &t,
        json!({"DBClusterId": t.cluster_id}),
    ));
    assert_eq!(ok_jobs(&res), vec![expected(&jobs[2])], "{res:#}");
    assert!(server.stop().success());
}

/// `{"Tag": ["text"]}` leaves of the driver's XML tree, flattened to `{"Tag": "text"}`.
fn flatten_xml_job(job: &Value) -> Value {
    let obj = job
        .as_object()
        .unwrap_or_else(|| panic!("XML job is {job}"));
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        let vals = v.as_array().unwrap();
        assert_eq!(vals.len(), 1, "{k} repeated in {job}");
        assert!(vals[0].is_string(), "{k} is not a leaf in {job}");
        out.insert(k.clone(), vals[0].clone());
    }
    Value::Object(out)
}

fn assert_xml_headers(res: &Value) -> String {
    let h = &res["headers"];
    assert_eq!(h["content-type"], "text/xml;charset=utf-8", "{res:#}");
    let rid = h["x-acs-request-id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(polarbackup_testkit::checks::is_request_id(&rid), "{res:#}");
    rid
}

#[test]
fn format_xml_gives_the_polardb_xml_shape() {
    let t = tenant();
    let empty_cluster = t.add_cluster(&shared().bin, &shared().data_dir);
    let base = now() - minutes(30);
    let jobs = seed_shared(
        &t.cluster_id,
        &[
            Seed::new(JobStatus::Finished, base),
            Seed::new(JobStatus::Uploading, base + minutes(5)).mode(JobMode::Automated),
        ],
    );
    let want = vec![expected(&jobs[1]), expected(&jobs[0])];
    let mut lower = ask("old-common-get", &t, json!({"DBClusterId": t.cluster_id}));
    lower["format"] = json!("xml");
    let mut mixed = ask("raw", &t, json!({"DBClusterId": t.cluster_id}));
    mixed["format"] = json!("Xml");
    let results = sdk_batch(vec![
        ask("old-xml", &t, json!({"DBClusterId": t.cluster_id})),
        lower,
        mixed,
        ask("old-xml", &t, json!({"DBClusterId": empty_cluster})),
    ]);
    for res in &results[..3] {
        assert_eq!(res["ok"], true, "{res:#}");
        assert_eq!(res["status"], 200, "{res:#}");
        let rid = assert_xml_headers(res);
        let xml = &res["xml"];
        assert_eq!(xml["root"], "DescribeBackupTasksResponse", "{res:#}");
        assert_eq!(xml["value"]["RequestId"], json!([rid]), "{res:#}");
        assert!(xml["value"].get("Code").is_none(), "{res:#}");
        let items = &xml["value"]["Items"];
        assert_eq!(items.as_array().map(Vec::len), Some(1), "{res:#}");
        let got: Vec<Value> = items[0]["BackupJob"]
            .as_array()
            .unwrap_or_else(|| panic!("no Items/BackupJob: {res:#}"))
            .iter()
            .map(flatten_xml_job)
            .collect();
        assert_eq!(got, want, "{res:#}");
    }
    let res = &results[3];
    assert_eq!(res["status"], 200, "{res:#}");
    assert_xml_headers(res);
    assert_eq!(res["xml"]["root"], "DescribeBackupTasksResponse", "{res:#}");
    let items = &res["xml"]["value"]["Items"];
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(1),
        "no Items element: {res:#}"
    );
    assert!(items[0].get("BackupJob").is_none(), "{res:#}");
}

#[test]
fn format_xml_errors_have_an_error_root() {
    let t = tenant();
    let mut get_lower = ask(
        "old-common-get",
        &t,
        json!({"DBClusterId": "pc-0000000000xxxxx"}),
    );
    get_lower["format"] = json!("xml");
    let results = sdk_batch(vec![
        ask("old-xml", &t, json!({"DBClusterId": "pc-0000000000xxxxx"})),
        get_lower,
        ask("old-xml", &t, json!({"BackupMode": "Manual"})),
        ask(
            "old-xml",
            &t,
            json!({"DBClusterId": t.cluster_id, "BackupMode": "x"}),
        ),
    ]);
    let codes = [
        "InvalidDBClusterId.NotFound",
        "InvalidDBClusterId.NotFound",
        "MissingDBClusterId",
        "InvalidBackupMode.Malformed",
    ];
    for (res, code) in results.iter().zip(codes) {
        assert_eq!(res["ok"], false, "{res:#}");
        assert_eq!(res["status"], 400, "{res:#}");
        // The old SDK never parses XML: it reports the raw body.
        assert_eq!(res["code"], "SDK.UnknownServerError", "{res:#}");
        let rid = assert_xml_headers(res);
        let xml = &res["xml"];
        assert_eq!(xml["root"], "Error", "{res:#}");
        let v = xml["value"].as_object().unwrap();
        for field in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
            let vals = v[field]
                .as_array()
                .unwrap_or_else(|| panic!("no {field}: {res:#}"));
            assert_eq!(vals.len(), 1, "{res:#}");
            assert!(vals[0].is_string(), "{res:#}");
        }
        assert_eq!(v["Code"][0], code, "{res:#}");
        assert_eq!(v["RequestId"][0], rid.as_str(), "{res:#}");
    }
}

#[test]
fn the_config_file_sets_the_window_and_the_flag_beats_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("polarbackup.toml");
    std::fs::write(&config, "job_history_days = 1\n").unwrap();
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let mut from_file = Server::start(bin(), Some(&data), &["--config", config, "--workers", "0"]);
    let t = from_file.tenant();
    let n = now();
    let jobs = seed(
        &data,
        &t.cluster_id,
        &[Seed::new(JobStatus::Finished, n - days(3)).ended(n - days(2))],
    );
    let res = sdk(request(
        "raw",
        &from_file,
        &t,
        json!({"DBClusterId": t.cluster_id}),
    ));
    assert_eq!(ok_jobs(&res), Vec::<Value>::new(), "{res:#}");
    assert!(from_file.stop().success());

    let flag = Server::start(
        bin(),
        Some(&data),
        &[
            "--config",
            config,
            "--job-history-days",
            "3",
            "--workers",
            "0",
        ],
    );
    let res = sdk(request(
        "raw",
        &flag,
        &t,
        json!({"DBClusterId": t.cluster_id}),
    ));
    assert_eq!(ok_jobs(&res), vec![expected(&jobs[0])], "{res:#}");
}
