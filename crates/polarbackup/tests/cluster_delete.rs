//! `admin cluster delete` end to end: the real binary, the official SDKs and (for LATEST) a
//! real PostgreSQL — the final TempBackupTask is the one backup left, DescribeDetachedBackups
//! lists it and it restores; NONE and ALL; refusals while a job is queued; a cluster being
//! deleted; an aborted deletion; and a released cluster that answers like an unknown one.

mod common;

use common::{assert_error, bin, shared, wire_body};
use jiff::SignedDuration;
use polarbackup_model::{BackupSetStatus, Clock, JobMode, SystemClock};
use polarbackup_testkit::pg::{self, PgCluster};
use polarbackup_testkit::{admin_output, free_port, request, sdk, sdk_batch, Server, Tenant};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;

const START: &str = "2000-01-01T00:00Z";
const END: &str = "2099-01-01T00:00Z";

/// A driver request through `client`.
fn call_as(client: &str, server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    let mut req = request(client, server, t, params);
    req["action"] = json!(action);
    req
}

/// A driver request through the new SDK (V3 signatures, typed request and method).
fn call(server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    call_as("v3", server, t, action, params)
}

/// DescribeBackupTasks and DescribeBackups (all time) of the tenant's cluster, then `more`,
/// in one driver process.
fn reads_then(server: &Server, t: &Tenant, more: Vec<Value>) -> Vec<Value> {
    let id = json!({"DBClusterId": t.cluster_id});
    let mut reqs = vec![
        call(server, t, "DescribeBackupTasks", id),
        call(server, t, "DescribeBackups", all_time(&t.cluster_id)),
    ];
    reqs.extend(more);
    sdk_batch(reqs)
}

/// The items of a list answer (`Items.<element>`).
fn items(res: &Value, element: &str) -> Vec<Value> {
    wire_body(res)["Items"][element]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn all_time(cluster: &str) -> Value {
    json!({"DBClusterId": cluster, "StartTime": START, "EndTime": END})
}

/// A DescribeDetachedBackups request over all time, plus `extra` parameters.
fn detached_request(server: &Server, t: &Tenant, client: &str, extra: Value) -> Value {
    let mut params = all_time(&t.cluster_id);
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    call_as(client, server, t, "DescribeDetachedBackups", params)
}

/// The BackupIds of a successful DescribeDetachedBackups, checking every item's shape.
fn detached_ids(res: &Value) -> Vec<String> {
    assert_eq!(res["ok"], true, "{res:#}");
    let body = wire_body(res);
    let items = body["Items"]["Backup"]
        .as_array()
        .unwrap_or_else(|| panic!("no Items.Backup: {res:#}"));
    assert_eq!(
        body["TotalRecordCount"].as_str(),
        Some(items.len().to_string().as_str()),
        "{res:#}"
    );
    assert!(body.get("TotalLevel2BackupSize").is_none(), "{res:#}");
    for item in items {
        assert_eq!(item["StoreStatus"], "Enabled", "{item}");
        for absent in ["Comment", "ExpectExpireTime", "ExpectExpireType"] {
            assert!(item.get(absent).is_none(), "{absent} in {item}");
        }
        assert!(
            item.as_object()
                .is_some_and(|o| o.values().all(Value::is_string)),
            "{item}"
        );
    }
    items
        .iter()
        .map(|b| b["BackupId"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn delete_cluster(server: &Server, cluster: &str, extra: &[&str]) -> Output {
    let mut args = vec!["cluster", "delete", "--cluster", cluster];
    args.extend_from_slice(extra);
    admin_output(&server.bin, &server.data_dir, &args)
}

/// Runs `admin cluster delete`, asserts exit 0 and returns its one-line JSON summary.
fn deleted(server: &Server, cluster: &str, extra: &[&str]) -> Value {
    let out = delete_cluster(server, cluster, extra);
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "cluster delete failed: {stdout}{stderr}\n{}",
        server.log()
    );
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs `admin cluster delete`, asserts it fails and returns its stderr.
fn refused(server: &Server, cluster: &str, extra: &[&str]) -> String {
    let out = delete_cluster(server, cluster, extra);
    let (stdout, stderr) = texts(&out);
    assert!(
        !out.status.success(),
        "expected a refusal: {stdout}{stderr}"
    );
    stderr
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

fn repo_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("repo").join("backups").join(id)
}

/// Records sets in the store as workers leave them, with a stand-in for each successful
/// set's data in the repository (the deletion path does not read it).
fn seed_sets(data_dir: &Path, cluster: &str, seeds: &[(JobMode, BackupSetStatus)]) -> Vec<String> {
    let start = SystemClock.now() - SignedDuration::from_hours(1);
    let seeds: Vec<_> = seeds.iter().map(|&(m, s)| (m, s, start)).collect();
    let ids = common::seed_sets(data_dir, cluster, &seeds);
    for (id, (_, status, _)) in ids.iter().zip(&seeds) {
        if *status == BackupSetStatus::Success {
            let dir = repo_dir(data_dir, id);
            std::fs::create_dir_all(&dir).expect("repo dir");
            std::fs::write(dir.join("manifest.json"), "{}").expect("stand-in manifest");
        }
    }
    ids
}

const SEEDS: &[(JobMode, BackupSetStatus)] = &[
    (JobMode::Manual, BackupSetStatus::Success),
    (JobMode::Automated, BackupSetStatus::Success),
    (JobMode::Automated, BackupSetStatus::Failed),
];

/// A request for every action on `cluster`, through the new SDK.
fn every_action(server: &Server, t: &Tenant, cluster: &str) -> Vec<Value> {
    let id = json!({"DBClusterId": cluster});
    let actions = [
        ("DescribeBackupTasks", id.clone()),
        ("CreateBackup", id.clone()),
        ("DescribeBackups", all_time(cluster)),
        (
            "DeleteBackup",
            json!({"DBClusterId": cluster, "BackupId": "10000001"}),
        ),
        ("DescribeBackupPolicy", id.clone()),
        (
            "ModifyBackupPolicy",
            json!({"DBClusterId": cluster, "PreferredBackupTime": "02:00Z-03:00Z"}),
        ),
        ("DescribeDetachedBackups", all_time(cluster)),
    ];
    actions
        .iter()
        .map(|(a, p)| call(server, t, a, p.clone()))
        .collect()
}

/// Every action answers for `cluster` exactly (status, Code, Message) as for a cluster id
/// nobody has.
fn assert_answers_like_an_unknown_cluster(server: &Server, t: &Tenant, cluster: &str) {
    let mut reqs = every_action(server, t, "pc-zzzzzzzzzzzzzzz");
    let n = reqs.len();
    reqs.extend(every_action(server, t, cluster));
    let answers = sdk_batch(reqs);
    let (unknown, got) = answers.split_at(n);
    for (u, g) in unknown.iter().zip(got) {
        assert_eq!(g["ok"], false, "{g:#}");
        let answer = |r: &Value| (r["status"].clone(), r["code"].clone(), r["message"].clone());
        assert_eq!(answer(g), answer(u), "{g:#}\nvs an unknown cluster: {u:#}");
        assert!(
            u["code"].as_str().is_some_and(|c| c.ends_with(".NotFound")),
            "{u:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// LATEST with a real PostgreSQL

#[test]
fn latest_leaves_exactly_the_final_backup_and_it_restores() {
    let src = PgCluster::init();
    src.psql(
        "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g;",
    );
    let server = Server::start(bin(), None, &[]);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, src.port, "postgres");
    let res = sdk(call(
        &server,
        &t,
        "ModifyBackupPolicy",
        json!({"DBClusterId": t.cluster_id, "BackupRetentionPolicyOnClusterDeletion": "LATEST"}),
    ));
    assert_eq!(res["ok"], true, "{res:#}");

    // One finished manual backup, then more data: only the final backup has it.
    let mut req = call(
        &server,
        &t,
        "DescribeBackupTasks",
        json!({"DBClusterId": t.cluster_id}),
    );
    req["poll"] = json!({"create": {"DBClusterId": t.cluster_id}, "timeout": 120, "interval": 0.2});
    let res = sdk(req);
    assert_eq!(res["timed_out"], false, "{res:#}\n{}", server.log());
    let manual = res["job"].as_str().expect("job id").to_string();
    assert_eq!(
        res["observations"]
            .as_array()
            .and_then(|o| o.last())
            .map(|o| o["status"].clone()),
        Some(json!("Finished")),
        "{res:#}\n{}",
        server.log()
    );
    assert!(repo_dir(&server.data_dir, &manual).is_dir());
    src.psql("INSERT INTO items SELECT g, 'after' FROM generate_series(20001, 25000) g;");

    let summary = deleted(&server, &t.cluster_id, &[]);
    let temp = summary["TempBackupJobId"]
        .as_str()
        .unwrap_or_else(|| panic!("{summary}"))
        .to_string();
    assert_eq!(summary["Retention"], "LATEST", "{summary}");
    assert_eq!(summary["Status"], "Deleted", "{summary}");
    assert_eq!(
        strings(&summary["KeptBackupIds"]),
        [temp.as_str()],
        "{summary}"
    );
    assert_eq!(
        strings(&summary["DeletedBackupIds"]),
        [manual.as_str()],
        "{summary}"
    );
    assert!(
        !repo_dir(&server.data_dir, &manual).exists(),
        "the older set's data is still there"
    );
    assert!(repo_dir(&server.data_dir, &temp).is_dir());

    // The live APIs no longer know the cluster; exactly one detached backup, the final one,
    // is listed through both SDKs (JSON and XML).
    let r = reads_then(
        &server,
        &t,
        vec![
            detached_request(&server, &t, "v3", json!({})),
            detached_request(&server, &t, "old-xml", json!({})),
        ],
    );
    assert_error(&r[0], 400, "InvalidDBClusterId.NotFound");
    assert_error(&r[1], 404, "InvalidDBClusterId.NotFound");
    let (res, xml) = (&r[2], &r[3]);
    assert_eq!(detached_ids(res), [temp.as_str()]);
    let item = &wire_body(res)["Items"]["Backup"][0];
    assert_eq!(
        (&item["BackupMode"], &item["BackupStatus"], &item["IsAvail"]),
        (&json!("Automated"), &json!("Success"), &json!("1")),
        "{item}"
    );
    assert_eq!(
        res["body"]["Items"]["Backup"][0]["StoreStatus"], "Enabled",
        "typed model: {res:#}"
    );
    assert_eq!(xml["ok"], true, "{xml:#}");
    assert_eq!(
        xml["xml"]["root"], "DescribeDetachedBackupsResponse",
        "{xml:#}"
    );
    let raw = xml["raw_body"].as_str().unwrap_or_default();
    assert!(
        raw.contains(&format!("<BackupId>{temp}</BackupId>")),
        "{raw}"
    );
    assert!(raw.contains("<StoreStatus>Enabled</StoreStatus>"), "{raw}");

    // The final backup restores to the data as it was at deletion.
    let (scratch, target) = pg::restore_target();
    let out = server.restore(&temp, &target, &[]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "restore failed: {stdout}{stderr}");
    pg::chown_to_postgres(scratch.path(), true);
    let restored = PgCluster::start_on(&target);
    let want = src.table_digests("postgres");
    assert_eq!(want["public.items"].0, 25_000);
    assert_eq!(restored.table_digests("postgres"), want);
}

// ---------------------------------------------------------------------------------------------
// NONE, ALL, refusals (API-only server: nothing runs, the admin command removes data itself)

#[test]
fn none_deletes_every_set_and_the_cluster_answers_like_an_unknown_one() {
    let server = shared();
    let t = server.tenant();
    let ids = seed_sets(&server.data_dir, &t.cluster_id, SEEDS);
    let summary = deleted(server, &t.cluster_id, &[]);
    assert_eq!(
        summary["Retention"], "NONE",
        "the policy's default: {summary}"
    );
    assert_eq!(summary["Status"], "Deleted");
    assert!(strings(&summary["KeptBackupIds"]).is_empty(), "{summary}");
    assert_eq!(strings(&summary["DeletedBackupIds"]), ids);
    for id in &ids {
        assert!(
            !repo_dir(&server.data_dir, id).exists(),
            "data of {id} left"
        );
    }
    assert_answers_like_an_unknown_cluster(server, &t, &t.cluster_id);
    let again = refused(server, &t.cluster_id, &[]);
    assert!(again.contains("Deleted already"), "{again}");
}

#[test]
fn all_keeps_every_finished_set_until_each_is_deleted() {
    let server = shared();
    let t = server.tenant();
    let ids = seed_sets(&server.data_dir, &t.cluster_id, SEEDS);
    let (manual, automated, failed) = (&ids[0], &ids[1], &ids[2]);
    let summary = deleted(server, &t.cluster_id, &["--retention", "ALL"]);
    assert_eq!(summary["Retention"], "ALL", "{summary}");
    assert_eq!(
        strings(&summary["KeptBackupIds"]),
        [manual.as_str(), automated.as_str()]
    );
    assert_eq!(strings(&summary["DeletedBackupIds"]), [failed.as_str()]);
    assert!(repo_dir(&server.data_dir, manual).is_dir());

    let r = sdk_batch(vec![
        detached_request(server, &t, "v3", json!({})),
        detached_request(server, &t, "v3", json!({"BackupMode": "Manual"})),
        detached_request(server, &t, "v3", json!({"PageSize": "7"})),
        call(server, &t, "DescribeBackups", all_time(&t.cluster_id)),
    ]);
    let mut listed = detached_ids(&r[0]);
    listed.sort();
    assert_eq!(listed, [manual.as_str(), automated.as_str()]);
    assert_eq!(detached_ids(&r[1]), [manual.as_str()]);
    assert_error(&r[2], 400, "InvalidPageSize.Malformed");
    assert_error(&r[3], 404, "InvalidDBClusterId.NotFound");

    // Retained sets are deletable whatever their mode; the last one ends the cluster. The
    // driver runs a batch in order.
    let delete = |id: &str| {
        call(
            server,
            &t,
            "DeleteBackup",
            json!({"DBClusterId": t.cluster_id, "BackupId": id}),
        )
    };
    let r = sdk_batch(vec![
        delete(automated),
        detached_request(server, &t, "v3", json!({})),
        delete(failed),
        delete(manual),
        detached_request(server, &t, "v3", json!({})),
    ]);
    assert_eq!(r[0]["ok"], true, "{:#}", r[0]);
    assert_eq!(detached_ids(&r[1]), [manual.as_str()]);
    assert_error(&r[2], 400, "InvalidBackupSetID.NotFound");
    assert_eq!(r[3]["ok"], true, "{:#}", r[3]);
    assert_error(&r[4], 404, "InvalidDBClusterId.NotFound");
    assert_answers_like_an_unknown_cluster(server, &t, &t.cluster_id);
}

#[test]
fn a_queued_job_refuses_the_deletion_and_a_live_cluster_has_no_detached_backups() {
    let server = shared();
    let t = server.tenant();
    let res = sdk(call(
        server,
        &t,
        "CreateBackup",
        json!({"DBClusterId": t.cluster_id}),
    ));
    assert_eq!(res["ok"], true, "{res:#}");
    let job = wire_body(&res)["BackupJobId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for retention in ["ALL", "LATEST", "NONE"] {
        let why = refused(server, &t.cluster_id, &["--retention", retention]);
        assert!(
            why.contains(&format!("backup job {job}")) && why.contains("NoStart"),
            "{why}"
        );
    }
    let detached = call(
        server,
        &t,
        "DescribeDetachedBackups",
        all_time(&t.cluster_id),
    );
    let r = reads_then(server, &t, vec![detached]);
    let jobs = items(&r[0], "BackupJob");
    assert_eq!(jobs.len(), 1, "no final backup was queued: {:#}", r[0]);
    assert!(items(&r[1], "Backup").is_empty(), "{:#}", r[1]);
    assert_error(&r[2], 404, "InvalidDBClusterId.NotFound");
    let unknown = refused(server, "pc-zzzzzzzzzzzzzzz", &[]);
    assert!(unknown.contains("does not exist"), "{unknown}");
}

#[test]
fn while_deleting_reads_work_and_changes_are_refused() {
    let server = shared();
    let t = server.tenant();
    let ids = seed_sets(&server.data_dir, &t.cluster_id, &SEEDS[..1]);
    let summary = deleted(
        server,
        &t.cluster_id,
        &["--retention", "LATEST", "--no-wait"],
    );
    assert_eq!(summary["Status"], "Deleting", "{summary}");
    let temp = summary["TempBackupJobId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = json!({"DBClusterId": t.cluster_id});
    let r = reads_then(
        server,
        &t,
        vec![
            call(server, &t, "DescribeBackupPolicy", id.clone()),
            call(server, &t, "CreateBackup", id.clone()),
            call(
                server,
                &t,
                "ModifyBackupPolicy",
                json!({"DBClusterId": t.cluster_id, "PreferredBackupTime": "05:00Z-06:00Z"}),
            ),
            call(
                server,
                &t,
                "DeleteBackup",
                json!({"DBClusterId": t.cluster_id, "BackupId": ids[0]}),
            ),
            call(
                server,
                &t,
                "DescribeDetachedBackups",
                all_time(&t.cluster_id),
            ),
        ],
    );
    let jobs = items(&r[0], "BackupJob");
    let final_job = jobs
        .iter()
        .find(|j| j["BackupJobId"] == temp.as_str())
        .unwrap_or_else(|| panic!("no final backup listed: {:#}", r[0]));
    assert_eq!(
        (
            &final_job["TaskAction"],
            &final_job["JobMode"],
            &final_job["BackupProgressStatus"]
        ),
        (
            &json!("TempBackupTask"),
            &json!("Automated"),
            &json!("NoStart")
        )
    );
    assert_eq!(items(&r[1], "Backup").len(), 1, "{:#}", r[1]);
    assert_eq!(r[2]["ok"], true, "{:#}", r[2]);
    for refusal in &r[3..6] {
        assert_error(refusal, 403, "OperationDenied.DBClusterStatus");
    }
    assert_error(&r[6], 404, "InvalidDBClusterId.NotFound");
    let again = refused(server, &t.cluster_id, &[]);
    assert!(again.contains("Deleting already"), "{again}");

    // Waiting gives up at --timeout when no worker runs the final backup.
    let other = t.add_cluster(bin(), &server.data_dir);
    let why = refused(server, &other, &["--retention", "LATEST", "--timeout", "1"]);
    assert!(
        why.contains("gave up waiting") && why.contains("NoStart"),
        "{why}"
    );
}

#[test]
fn a_failed_final_backup_aborts_the_deletion_and_deletes_nothing() {
    // Workers run, but nothing listens where the cluster's database should be.
    let server = Server::start(bin(), None, &[]);
    let mut t = server.tenant();
    t.cluster_id = t.add_cluster_at(bin(), &server.data_dir, free_port(), "postgres");
    let ids = seed_sets(&server.data_dir, &t.cluster_id, &SEEDS[..1]);
    let why = refused(
        &server,
        &t.cluster_id,
        &["--retention", "LATEST", "--timeout", "120"],
    );
    assert!(
        why.contains("aborted") && why.contains("Running again"),
        "{why}\n{}",
        server.log()
    );
    let modify = call(
        &server,
        &t,
        "ModifyBackupPolicy",
        json!({"DBClusterId": t.cluster_id, "PreferredBackupTime": "05:00Z-06:00Z"}),
    );
    let r = reads_then(&server, &t, vec![modify]);
    assert!(
        items(&r[0], "BackupJob")
            .iter()
            .any(|j| j["TaskAction"] == "TempBackupTask" && j["BackupProgressStatus"] == "Failed"),
        "{:#}",
        r[0]
    );
    assert!(
        items(&r[1], "Backup")
            .iter()
            .any(|s| s["BackupId"] == ids[0].as_str() && s["BackupStatus"] == "Success"),
        "{:#}",
        r[1]
    );
    assert_eq!(r[2]["ok"], true, "the cluster runs again: {:#}", r[2]);
    assert!(repo_dir(&server.data_dir, &ids[0]).is_dir());
}
