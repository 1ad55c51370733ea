//! The cluster APIs end to end, through the real binary and both official SDKs:
//! DescribeDBClusters (paging, filters, only the caller's clusters, released ones gone),
//! DescribeDBClusterAttribute (not found alike for unknown, another account's and deleted),
//! DeleteDBCluster (retention ALL / NONE / LATEST and the policy's default, refusals, bad
//! values) carried out by the server's workers, and RAM on all three.

mod common;

use common::{assert_error, assert_error_envelope, bin, shared, wire_body};
use jiff::SignedDuration;
use polarbackup_model::{BackupSetStatus, Clock, DbClusterId, JobMode, SystemClock};
use polarbackup_store::prelude::*;
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::{free_port, request, sdk, sdk_batch, AdminTarget, Server, Tenant};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const REGION: &str = "cn-hangzhou";
const START: &str = "2000-01-01T00:00Z";
const END: &str = "2099-01-01T00:00Z";
/// The new SDK (V3 signatures, typed models) and the old one (V1, its request classes).
const CLIENTS: [&str; 2] = ["v3", "old-typed-post"];

fn call_as(client: &str, server: &Server, t: &Tenant, action: &str, params: Value) -> Value {
    let mut req = request(client, server, t, params);
    req["action"] = json!(action);
    req
}

fn list_request(client: &str, server: &Server, t: &Tenant, extra: Value) -> Value {
    let mut params = json!({ "RegionId": REGION });
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    call_as(client, server, t, "DescribeDBClusters", params)
}

/// The DBClusterIds of a successful DescribeDBClusters, checking the page's shape: integer
/// paging counts that agree with the items, and each item's fields and JSON types.
fn listed(res: &Value) -> Vec<String> {
    assert_eq!(res["ok"], true, "{res:#}");
    assert_eq!(res["status"], 200, "{res:#}");
    let body = wire_body(res);
    assert!(body.get("Code").is_none(), "{res:#}");
    let items = body["Items"]["DBCluster"]
        .as_array()
        .unwrap_or_else(|| panic!("no Items.DBCluster: {res:#}"));
    assert_eq!(
        body["PageRecordCount"].as_u64(),
        Some(items.len() as u64),
        "{res:#}"
    );
    assert!(body["PageNumber"].is_u64(), "{res:#}");
    assert!(body["TotalRecordCount"].is_u64(), "{res:#}");
    for item in items {
        for field in [
            "DBClusterId",
            "DBClusterDescription",
            "DBClusterStatus",
            "CreateTime",
            "RegionId",
        ] {
            assert!(item[field].is_string(), "{field} in {item}");
        }
        assert_eq!(item["DBType"], "PostgreSQL", "{item}");
        assert_eq!(item["RegionId"], REGION, "{item}");
        assert_eq!(item["DeletionLock"], 0, "{item}");
        assert_eq!(item["DBNodes"], json!({"DBNode": []}), "{item}");
        assert_eq!(item["Tags"], json!({"Tag": []}), "{item}");
    }
    items
        .iter()
        .map(|c| c["DBClusterId"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn total(res: &Value) -> u64 {
    wire_body(res)["TotalRecordCount"]
        .as_u64()
        .unwrap_or_else(|| panic!("{res:#}"))
}

/// A cluster of the tenant's account, with a description; PostgreSQL on a port nobody
/// listens on (nothing here backs up or archives).
fn add_cluster(target: &AdminTarget, t: &Tenant, description: Option<&str>) -> String {
    let described = description.map(|d| ["--description", d]);
    t.add_cluster_with(
        target,
        free_port(),
        "postgres",
        described.as_ref().map_or(&[], |d| &d[..]),
    )
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = ids.into_iter().collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// DescribeDBClusters

#[test]
fn describe_db_clusters_pages_filters_and_lists_only_the_callers_clusters() {
    let server = shared();
    let target = server.target();
    let t = server.tenant();
    let stranger = server.tenant();
    let mut mine = vec![t.cluster_id.clone()];
    mine.push(add_cluster(&target, &t, Some("Orders primary")));
    mine.push(add_cluster(&target, &t, Some("orders replica")));
    for _ in 0..29 {
        mine.push(add_cluster(&target, &t, None));
    }
    assert_eq!(mine.len(), 32);
    let all = sorted(mine.clone());

    for client in CLIENTS {
        let list = |extra: Value| list_request(client, server, &t, extra);
        let r = sdk_batch(vec![
            list(json!({})),
            list(json!({"PageNumber": "2"})),
            list(json!({"PageSize": "50"})),
            list(json!({"PageSize": "30", "PageNumber": "3"})),
            list(
                json!({"DBClusterIds": format!("{},{}, {},pc-nosuchcluster1,garbage", mine[1], mine[5], stranger.cluster_id)}),
            ),
            list(json!({"DBClusterDescription": "ORDERS"})),
            list(json!({"DBClusterStatus": "Running"})),
            list(json!({"DBClusterStatus": "Deleting"})),
            list(json!({"DBClusterStatus": "Stopped"})),
            call_as(
                client,
                server,
                &t,
                "DescribeDBClusters",
                json!({"RegionId": "cn-beijing"}),
            ),
            list(json!({"DBType": "MySQL"})),
            list_request(client, server, &stranger, json!({})),
            list(json!({"PayType": "Prepaid"})),
            list(json!({"RecentCreationInterval": "1", "PageSize": "100"})),
        ]);
        // The default page: 30 of 32, then the rest; no cluster twice.
        let first = listed(&r[0]);
        assert_eq!(first.len(), 30, "{client}: {:#}", r[0]);
        assert_eq!(total(&r[0]), 32, "{client}");
        assert_eq!(wire_body(&r[0])["PageNumber"], 1, "{client}");
        let second = listed(&r[1]);
        assert_eq!(second.len(), 2, "{client}");
        assert_eq!(wire_body(&r[1])["PageNumber"], 2, "{client}");
        let both: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
        assert_eq!(both.len(), 32, "{client}: a cluster on both pages");
        assert_eq!(sorted(both), all, "{client}");
        assert_eq!(sorted(listed(&r[2])), all, "{client}: PageSize 50");
        assert!(listed(&r[3]).is_empty(), "{client}: past the end");
        assert_eq!(total(&r[3]), 32, "{client}");
        // DBClusterIds: only the caller's ones among those named.
        assert_eq!(
            sorted(listed(&r[4])),
            sorted([mine[1].clone(), mine[5].clone()]),
            "{client}"
        );
        assert_eq!(total(&r[4]), 2, "{client}");
        // DBClusterDescription: a case-insensitive fuzzy match.
        assert_eq!(
            sorted(listed(&r[5])),
            sorted([mine[1].clone(), mine[2].clone()]),
            "{client}"
        );
        let item = &wire_body(&r[5])["Items"]["DBCluster"][0];
        assert!(
            item["DBClusterDescription"]
                .as_str()
                .is_some_and(|d| d.to_lowercase().starts_with("orders")),
            "{item}"
        );
        assert_eq!(listed(&r[6]).len(), 30, "{client}");
        assert_eq!(total(&r[6]), 32, "{client}: every one is Running");
        assert!(listed(&r[7]).is_empty(), "{client}: none is Deleting");
        assert!(
            listed(&r[8]).is_empty(),
            "{client}: a documented status nothing has"
        );
        assert!(listed(&r[9]).is_empty(), "{client}: another region");
        assert!(listed(&r[10]).is_empty(), "{client}: another engine");
        assert_eq!(listed(&r[11]), [stranger.cluster_id.as_str()], "{client}");
        assert!(
            listed(&r[12]).is_empty(),
            "{client}: every cluster is Postpaid"
        );
        assert_eq!(sorted(listed(&r[13])), all, "{client}: created today");
    }

    // The typed model of the new SDK reads the integers and the list.
    let res = sdk(list_request(
        "v3",
        server,
        &t,
        json!({"DBClusterIds": mine[1]}),
    ));
    assert_eq!(res["body"]["TotalRecordCount"], 1, "{res:#}");
    assert_eq!(
        res["body"]["Items"]["DBCluster"][0]["DBClusterId"], mine[1],
        "{res:#}"
    );
    assert_eq!(
        res["body"]["Items"]["DBCluster"][0]["DBClusterDescription"], "Orders primary",
        "{res:#}"
    );
    // The old SDK's XML: one element per cluster.
    let xml = sdk(list_request(
        "old-xml",
        server,
        &t,
        json!({"DBClusterIds": mine[1]}),
    ));
    assert_eq!(xml["ok"], true, "{xml:#}");
    assert_eq!(xml["xml"]["root"], "DescribeDBClustersResponse", "{xml:#}");
    let raw = xml["raw_body"].as_str().unwrap_or_default();
    assert!(
        raw.contains(&format!("<DBClusterId>{}</DBClusterId>", mine[1])),
        "{raw}"
    );
    assert!(
        raw.contains("<TotalRecordCount>1</TotalRecordCount>"),
        "{raw}"
    );
}

#[test]
fn describe_db_clusters_refuses_bad_parameters_with_their_codes() {
    let server = shared();
    let t = server.tenant();
    for client in CLIENTS {
        let list = |extra: Value| list_request(client, server, &t, extra);
        let r = sdk_batch(vec![
            list(json!({"PageSize": "7"})),
            list(json!({"PageSize": "abc"})),
            list(json!({"PageNumber": "0"})),
            list(json!({"PageNumber": "-3"})),
            list(json!({"DBClusterStatus": "running"})),
            list(json!({"RecentCreationInterval": "16"})),
            list(json!({"RecentExpirationInterval": "x"})),
            call_as(
                client,
                server,
                &t,
                "DescribeDBClusters",
                json!({"RegionId": "CN_HANGZHOU"}),
            ),
        ]);
        for res in &r {
            assert_error_envelope(res);
        }
        assert_error(&r[0], 400, "InvalidPageSize.Malformed");
        assert_error(&r[1], 400, "InvalidPageSize.Malformed");
        assert_error(&r[2], 400, "InvalidPageNumber.Malformed");
        assert_error(&r[3], 400, "InvalidPageNumber.Malformed");
        assert_error(&r[4], 400, "InvalidDBClusterStatus.Malformed");
        assert_error(&r[5], 400, "InvalidRecentCreationInterval.Malformed");
        assert_error(&r[6], 400, "InvalidRecentExpirationInterval.Malformed");
        assert_error(&r[7], 400, "InvalidRegionId.Malformed");
    }
    // The new SDK sends no RegionId unless told (the old one always adds its own).
    let res = sdk(call_as("v3", server, &t, "DescribeDBClusters", json!({})));
    assert_error(&res, 400, "MissingRegionId");
}

// ---------------------------------------------------------------------------------------------
// DescribeDBClusterAttribute

#[test]
fn describe_db_cluster_attribute_answers_for_own_clusters_only() {
    let server = shared();
    let target = server.target();
    let t = server.tenant();
    let stranger = server.tenant();
    let described = add_cluster(&target, &t, Some("Billing"));
    for client in CLIENTS {
        let attr = |id: &str| {
            call_as(
                client,
                server,
                &t,
                "DescribeDBClusterAttribute",
                json!({"DBClusterId": id}),
            )
        };
        let r = sdk_batch(vec![
            attr(&described),
            attr("pc-zzzzzzzzzzzzzzz"),
            attr(&stranger.cluster_id),
            attr("not-a-cluster-id"),
            call_as(client, server, &t, "DescribeDBClusterAttribute", json!({})),
        ]);
        assert_eq!(r[0]["ok"], true, "{client}: {:#}", r[0]);
        let body = wire_body(&r[0]);
        assert_eq!(body["DBClusterId"], described, "{body}");
        assert_eq!(body["DBClusterDescription"], "Billing", "{body}");
        assert_eq!(body["DBClusterStatus"], "Running", "{body}");
        assert_eq!(body["DBType"], "PostgreSQL", "{body}");
        assert_eq!(body["RegionId"], REGION, "{body}");
        assert_eq!(body["DeletionLock"], 0, "{body}");
        assert_eq!(body["DataLevel1BackupChainSize"], 0, "{body}");
        assert_eq!(body["DBNodes"], json!([]), "unwrapped: {body}");
        assert_eq!(body["Tags"], json!([]), "unwrapped: {body}");
        assert!(
            body["CreationTime"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z')),
            "{body}"
        );
        assert!(body.get("CreateTime").is_none(), "{body}");
        // Unknown, another account's and malformed: one answer.
        let unknown = &r[1];
        assert_error(unknown, 404, "InvalidDBClusterId.NotFound");
        for res in &r[2..4] {
            assert_error(res, 404, "InvalidDBClusterId.NotFound");
            assert_eq!(res["message"], unknown["message"], "{res:#}");
        }
        assert_error(&r[4], 400, "MissingDBClusterId");
    }
    // The typed model reads the chain size (from the sets the cluster keeps).
    let seeded = seed_sets(&server.data_dir, &described);
    assert_eq!(seeded.len(), 3);
    let res = sdk(call_as(
        "v3",
        server,
        &t,
        "DescribeDBClusterAttribute",
        json!({"DBClusterId": described}),
    ));
    assert_eq!(res["body"]["DBClusterStatus"], "Running", "{res:#}");
    assert_eq!(
        res["body"]["DataLevel1BackupChainSize"], 2000,
        "two successful sets: {res:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// DeleteDBCluster: refusals (API-only server: nothing runs)

#[test]
fn delete_db_cluster_refusals() {
    let server = shared();
    let target = server.target();
    let t = server.tenant();
    let stranger = server.tenant();
    let busy = add_cluster(&target, &t, None);
    let latest = add_cluster(&target, &t, None);
    // A queued job (nothing runs on this server) holds `busy` up.
    let res = sdk(call_as(
        "v3",
        server,
        &t,
        "CreateBackup",
        json!({"DBClusterId": busy}),
    ));
    assert_eq!(res["ok"], true, "{res:#}");
    for client in CLIENTS {
        let delete = |params: Value| call_as(client, server, &t, "DeleteDBCluster", params);
        let r = sdk_batch(vec![
            delete(
                json!({"DBClusterId": t.cluster_id, "BackupRetentionPolicyOnClusterDeletion": "all"}),
            ),
            delete(
                json!({"DBClusterId": t.cluster_id, "BackupRetentionPolicyOnClusterDeletion": "KEEP"}),
            ),
            delete(json!({"DBClusterId": "pc-zzzzzzzzzzzzzzz"})),
            delete(json!({"DBClusterId": stranger.cluster_id})),
            delete(json!({"BackupRetentionPolicyOnClusterDeletion": "ALL"})),
            delete(json!({"DBClusterId": busy, "BackupRetentionPolicyOnClusterDeletion": "NONE"})),
        ]);
        for res in &r {
            assert_error_envelope(res);
        }
        assert_error(
            &r[0],
            400,
            "InvalidBackupRetentionPolicyOnClusterDeletion.Malformed",
        );
        assert_error(
            &r[1],
            400,
            "InvalidBackupRetentionPolicyOnClusterDeletion.Malformed",
        );
        assert_error(&r[2], 404, "InvalidDBClusterId.NotFound");
        assert_error(&r[3], 404, "InvalidDBClusterId.NotFound");
        assert_eq!(r[3]["message"], r[2]["message"], "{:#}", r[3]);
        assert_error(&r[4], 400, "MissingDBClusterId");
        assert_error(&r[5], 403, "OperationDenied.OperateStatus");
    }
    // Nothing changed: the stranger's and the refused clusters still run.
    let r = sdk_batch(vec![
        list_request("v3", server, &stranger, json!({})),
        list_request("v3", server, &t, json!({"DBClusterStatus": "Running"})),
    ]);
    assert_eq!(listed(&r[0]), [stranger.cluster_id.as_str()]);
    assert_eq!(total(&r[1]), 3);

    // LATEST queues the final backup, which nobody runs here: the cluster stays Deleting,
    // shown as such, still answers reads, and refuses a second deletion and any change.
    let res = sdk(call_as(
        "old-typed-post",
        server,
        &t,
        "DeleteDBCluster",
        json!({"DBClusterId": latest, "BackupRetentionPolicyOnClusterDeletion": "LATEST"}),
    ));
    assert_eq!(res["ok"], true, "{res:#}");
    assert!(wire_body(&res)["RequestId"].is_string(), "{res:#}");
    assert!(wire_body(&res).get("Code").is_none(), "{res:#}");
    let r = sdk_batch(vec![
        list_request("v3", server, &t, json!({"DBClusterStatus": "Deleting"})),
        call_as(
            "v3",
            server,
            &t,
            "DescribeDBClusterAttribute",
            json!({"DBClusterId": latest}),
        ),
        call_as(
            "v3",
            server,
            &t,
            "DeleteDBCluster",
            json!({"DBClusterId": latest}),
        ),
        call_as(
            "old-typed-post",
            server,
            &t,
            "DeleteDBCluster",
            json!({"DBClusterId": latest, "BackupRetentionPolicyOnClusterDeletion": "NONE"}),
        ),
        call_as(
            "v3",
            server,
            &t,
            "CreateBackup",
            json!({"DBClusterId": latest}),
        ),
        call_as(
            "v3",
            server,
            &t,
            "DescribeBackupTasks",
            json!({"DBClusterId": latest}),
        ),
    ]);
    assert_eq!(listed(&r[0]), [latest.as_str()]);
    assert_eq!(
        wire_body(&r[0])["Items"]["DBCluster"][0]["DBClusterStatus"],
        "Deleting"
    );
    assert_eq!(r[1]["ok"], true, "{:#}", r[1]);
    assert_eq!(
        wire_body(&r[1])["DBClusterStatus"],
        "Deleting",
        "{:#}",
        r[1]
    );
    assert_error(&r[2], 403, "OperationDenied.ClusterStatus");
    assert_error(&r[3], 403, "OperationDenied.ClusterStatus");
    assert_error(&r[4], 403, "OperationDenied.DBClusterStatus");
    let jobs = wire_body(&r[5])["Items"]["BackupJob"].clone();
    assert_eq!(jobs[0]["TaskAction"], "TempBackupTask", "{jobs}");
    assert_eq!(jobs[0]["BackupProgressStatus"], "NoStart", "{jobs}");
}

// ---------------------------------------------------------------------------------------------
// DeleteDBCluster carried out by the server's workers (ALL, NONE, the policy's choice)

fn repo_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("repo").join("backups").join(id)
}

/// A successful manual set, a successful automated one and a failed one, each successful one
/// with stand-in data in the repository.
fn seed_sets(data_dir: &Path, cluster: &str) -> Vec<String> {
    let start = SystemClock.now() - SignedDuration::from_hours(1);
    let seeds = [
        (JobMode::Manual, BackupSetStatus::Success, start),
        (JobMode::Automated, BackupSetStatus::Success, start),
        (JobMode::Automated, BackupSetStatus::Failed, start),
    ];
    let ids = common::seed_sets(data_dir, cluster, &seeds);
    for id in &ids[..2] {
        let dir = repo_dir(data_dir, id);
        std::fs::create_dir_all(&dir).expect("repo dir");
        std::fs::write(dir.join("manifest.json"), "{}").expect("stand-in manifest");
    }
    ids
}

/// Waits until DescribeDBClusters no longer lists `cluster`; every answer before that shows it
/// `Deleting`. Returns how many answers showed it.
fn wait_until_gone(server: &Server, t: &Tenant, client: &str, cluster: &str) -> usize {
    let mut seen = 0;
    common::wait_for(
        "the deletion to complete",
        60,
        || server.log(),
        || {
            let res = sdk(list_request(
                client,
                server,
                t,
                json!({"DBClusterIds": cluster}),
            ));
            let items = wire_body(&res)["Items"]["DBCluster"].clone();
            match items.as_array().map(Vec::len) {
                Some(0) => Some(()),
                Some(1) => {
                    assert_eq!(items[0]["DBClusterStatus"], "Deleting", "{res:#}");
                    seen += 1;
                    None
                }
                _ => panic!("{res:#}"),
            }
        },
    );
    seen
}

fn detached_ids(server: &Server, t: &Tenant, cluster: &str) -> Value {
    sdk(call_as(
        "v3",
        server,
        t,
        "DescribeDetachedBackups",
        json!({"DBClusterId": cluster, "StartTime": START, "EndTime": END}),
    ))
}

/// Records one archived WAL segment of `cluster` in the store, under an archiver lease taken
/// for the purpose (nothing archives on the server), with stand-in data in the repository.
/// Returns the file's path.
fn seed_wal(data_dir: &Path, cluster: &str) -> PathBuf {
    let store = polarbackup_store::SqliteStore::open(data_dir).expect("open the store");
    let id = DbClusterId::parse(cluster).expect("cluster id");
    let now = SystemClock.now();
    assert!(store
        .claim_archiver(&id, "seed", now + SignedDuration::from_hours(1), now)
        .expect("claim"));
    let name = "000000010000000000000001".to_owned();
    let key = format!("wal/{cluster}/{name}.zst");
    let object = polarbackup_model::NewWalObject {
        cluster_id: id.clone(),
        timeline: 1,
        kind: polarbackup_model::WalObjectKind::Segment,
        name,
        start: polarbackup_model::Lsn(0x0100_0000),
        end: polarbackup_model::Lsn(0x0200_0000),
        size: 0x0100_0000,
        stored_size: 3,
        key: key.clone(),
        digest: "0".repeat(64),
        start_time: now - SignedDuration::from_mins(2),
        end_time: now - SignedDuration::from_mins(1),
    };
    let recorded = store.record_wal("seed", &object, now).expect("record");
    assert!(recorded.is_some_and(|r| r.recorded.is_some()));
    store.release_archiver(&id, "seed").expect("release");
    let path = data_dir.join("repo").join(&key);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("wal dir");
    std::fs::write(&path, "zst").expect("stand-in WAL");
    path
}

#[test]
fn delete_db_cluster_is_carried_out_by_the_workers_with_each_retention() {
    let server = Server::start(bin(), None, &[]);
    let target = server.target();
    let t = server.tenant();
    let none = add_cluster(&target, &t, Some("none"));
    let all = add_cluster(&target, &t, Some("all"));
    let by_policy = add_cluster(&target, &t, Some("policy"));
    let none_sets = seed_sets(&server.data_dir, &none);
    let all_sets = seed_sets(&server.data_dir, &all);
    let policy_sets = seed_sets(&server.data_dir, &by_policy);
    // Archived WAL of `none` (log backup is off on this server: its workers' releaser
    // removes it, as the archivers would).
    let wal = seed_wal(&server.data_dir, &none);
    let res = sdk(call_as(
        "v3",
        &server,
        &t,
        "ModifyBackupPolicy",
        json!({"DBClusterId": by_policy, "BackupRetentionPolicyOnClusterDeletion": "ALL"}),
    ));
    assert_eq!(res["ok"], true, "{res:#}");

    // NONE through the old SDK, ALL through the new one, and the policy's ALL by default:
    // each call returns at once, the workers do the rest.
    let r = sdk_batch(vec![
        call_as(
            "old-typed-post",
            &server,
            &t,
            "DeleteDBCluster",
            json!({"DBClusterId": none, "BackupRetentionPolicyOnClusterDeletion": "NONE"}),
        ),
        call_as(
            "v3",
            &server,
            &t,
            "DeleteDBCluster",
            json!({"DBClusterId": all, "BackupRetentionPolicyOnClusterDeletion": "ALL"}),
        ),
        call_as(
            "v3",
            &server,
            &t,
            "DeleteDBCluster",
            json!({"DBClusterId": by_policy}),
        ),
    ]);
    for res in &r {
        assert_eq!(res["ok"], true, "{res:#}");
    }
    for (client, cluster) in [("old-typed-post", &none), ("v3", &all), ("v3", &by_policy)] {
        wait_until_gone(&server, &t, client, cluster);
    }
    // NONE: its WAL went too (rows and data); every set's data is gone, and the cluster is
    // unknown everywhere.
    assert!(!wal.exists(), "archived WAL left at {}", wal.display());
    let store = polarbackup_store::SqliteStore::open(&server.data_dir).expect("store");
    let id = DbClusterId::parse(&none).expect("id");
    assert!(store.wal_objects(&id).expect("wal").is_empty());
    for id in &none_sets {
        assert!(
            !repo_dir(&server.data_dir, id).exists(),
            "data of {id} left"
        );
    }
    // ALL (asked for, or the policy's): the finished sets stay, listed as detached.
    for (cluster, sets) in [(&all, &all_sets), (&by_policy, &policy_sets)] {
        for id in &sets[..2] {
            assert!(
                repo_dir(&server.data_dir, id).is_dir(),
                "data of {id} removed"
            );
        }
        let res = detached_ids(&server, &t, cluster);
        assert_eq!(res["ok"], true, "{res:#}");
        let ids: Vec<String> = wire_body(&res)["Items"]["Backup"]
            .as_array()
            .unwrap_or_else(|| panic!("{res:#}"))
            .iter()
            .map(|b| b["BackupId"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(sorted(ids), sorted(sets[..2].iter().cloned()), "{res:#}");
    }
    assert_error(
        &detached_ids(&server, &t, &none),
        404,
        "InvalidDBClusterId.NotFound",
    );
    for cluster in [&none, &all] {
        let r = sdk_batch(vec![
            call_as(
                "v3",
                &server,
                &t,
                "DescribeDBClusterAttribute",
                json!({"DBClusterId": cluster}),
            ),
            call_as(
                "old-typed-post",
                &server,
                &t,
                "DeleteDBCluster",
                json!({"DBClusterId": cluster}),
            ),
            call_as(
                "v3",
                &server,
                &t,
                "DescribeBackups",
                json!({"DBClusterId": cluster, "StartTime": START, "EndTime": END}),
            ),
        ]);
        for res in &r {
            assert_error(res, 404, "InvalidDBClusterId.NotFound");
        }
    }
    // The tenant's first cluster is untouched.
    let res = sdk(list_request("v3", &server, &t, json!({})));
    assert_eq!(listed(&res), [t.cluster_id.as_str()]);
}

// ---------------------------------------------------------------------------------------------
// LATEST with a real PostgreSQL and log backup: Deleting while the final backup runs, then
// gone, with only the final set kept and the WAL and slot released.

#[test]
fn latest_through_the_api_keeps_the_final_backup_and_releases_the_log_backup() {
    let pg = PgCluster::init();
    pg.psql(
        "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g;",
    );
    let a = common::archiving_after_a_backup(&pg);
    let (server, t) = (&a.server, &a.tenant);
    let earlier: Vec<String> = a
        .store
        .cluster_sets(&a.cluster)
        .expect("sets")
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    assert_eq!(earlier.len(), 1, "{earlier:?}");
    let wal_dir = server.data_dir.join("repo").join("wal").join(&t.cluster_id);
    common::wait_for(
        "archived WAL",
        60,
        || server.log(),
        || (!a.store.wal_objects(&a.cluster).expect("wal").is_empty()).then_some(()),
    );

    let r = sdk_batch(vec![
        call_as(
            "v3",
            server,
            t,
            "DeleteDBCluster",
            json!({"DBClusterId": t.cluster_id, "BackupRetentionPolicyOnClusterDeletion": "LATEST"}),
        ),
        // The tenant has another cluster (made with its account): name this one.
        list_request("v3", server, t, json!({"DBClusterIds": t.cluster_id})),
    ]);
    assert_eq!(r[0]["ok"], true, "{:#}", r[0]);
    assert_eq!(listed(&r[1]), [t.cluster_id.as_str()], "{:#}", r[1]);
    let item = &wire_body(&r[1])["Items"]["DBCluster"][0];
    assert_eq!(
        item["DBClusterStatus"], "Deleting",
        "while the final backup runs: {:#}",
        r[1]
    );
    wait_until_gone(server, t, "old-typed-post", &t.cluster_id);

    // Only the final TempBackupTask set is kept, and its data; the earlier one is gone.
    let res = detached_ids(server, t, &t.cluster_id);
    assert_eq!(res["ok"], true, "{res:#}");
    let kept = wire_body(&res)["Items"]["Backup"].clone();
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{res:#}");
    let final_id = kept[0]["BackupId"].as_str().unwrap_or_default().to_owned();
    assert!(!earlier.contains(&final_id), "{res:#}");
    assert_eq!(kept[0]["BackupMode"], "Automated", "{res:#}");
    assert!(repo_dir(&server.data_dir, &final_id).is_dir());
    for id in &earlier {
        assert!(
            !repo_dir(&server.data_dir, id).exists(),
            "data of {id} left"
        );
    }
    // The log backup went with the cluster: no WAL recorded or stored, no slot left.
    assert!(a.store.wal_objects(&a.cluster).expect("wal").is_empty());
    let slot =
        polarbackup_model::log_backup::slot_name(&DbClusterId::parse(&t.cluster_id).unwrap());
    common::wait_for(
        "the slot dropped and the WAL removed",
        60,
        || server.log(),
        || {
            let slots = pg.psql(&format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}';"
            ));
            let stored = std::fs::read_dir(&wal_dir).map(|d| d.count()).unwrap_or(0);
            (slots == "0" && stored == 0).then_some(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// RAM

#[test]
fn ram_users_need_each_cluster_action() {
    let server = shared();
    let target = server.target();
    let t = server.tenant();
    let second = add_cluster(&target, &t, None);
    let reader = server.ram_user(
        &t.account_id,
        "cluster-reader",
        &["AliyunPolardbReadOnlyAccess"],
    );
    let doc = json!({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "polardb:DescribeBackups", "Resource": "*"},
        {"Effect": "Allow", "Action": "polardb:DescribeDBClusterAttribute",
         "Resource": format!("acs:polardb:*:*:dbcluster/{}", t.cluster_id)},
    ]});
    server.ram_policy(&t.account_id, "backups-only", &doc);
    let narrow = server.ram_user(&t.account_id, "backups-only", &["backups-only"]);
    let deleter_doc = json!({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "polardb:DeleteDBCluster",
         "Resource": format!("acs:polardb:*:*:dbcluster/{second}")},
    ]});
    server.ram_policy(&t.account_id, "delete-second", &deleter_doc);
    let deleter = server.ram_user(&t.account_id, "deleter", &["delete-second"]);

    for client in CLIENTS {
        let (r_t, n_t, d_t) = (
            reader.tenant(&t.cluster_id),
            narrow.tenant(&t.cluster_id),
            deleter.tenant(&t.cluster_id),
        );
        let r = sdk_batch(vec![
            list_request(client, server, &r_t, json!({})),
            call_as(
                client,
                server,
                &r_t,
                "DescribeDBClusterAttribute",
                json!({"DBClusterId": t.cluster_id}),
            ),
            call_as(
                client,
                server,
                &r_t,
                "DeleteDBCluster",
                json!({"DBClusterId": t.cluster_id}),
            ),
            list_request(client, server, &n_t, json!({})),
            // A cluster named in a listing's parameters does not narrow its resource.
            list_request(client, server, &n_t, json!({"DBClusterId": t.cluster_id})),
            call_as(
                client,
                server,
                &n_t,
                "DescribeDBClusterAttribute",
                json!({"DBClusterId": t.cluster_id}),
            ),
            call_as(
                client,
                server,
                &n_t,
                "DescribeDBClusterAttribute",
                json!({"DBClusterId": second}),
            ),
            call_as(
                client,
                server,
                &d_t,
                "DeleteDBCluster",
                json!({"DBClusterId": t.cluster_id}),
            ),
            // Unknown to the store, but the resource decides first: still denied.
            call_as(
                client,
                server,
                &d_t,
                "DeleteDBCluster",
                json!({"DBClusterId": "pc-zzzzzzzzzzzzzzz"}),
            ),
        ]);
        assert_eq!(
            sorted(listed(&r[0])),
            sorted([t.cluster_id.clone(), second.clone()]),
            "{client}"
        );
        assert_eq!(r[1]["ok"], true, "{client}: {:#}", r[1]);
        for (i, action) in [
            (2, "DeleteDBCluster"),
            (3, "DescribeDBClusters"),
            (4, "DescribeDBClusters"),
            (6, "DescribeDBClusterAttribute"),
            (7, "DeleteDBCluster"),
            (8, "DeleteDBCluster"),
        ] {
            assert_error(&r[i], 403, "Forbidden.RAM");
            assert_eq!(
                wire_body(&r[i])["AccessDeniedDetail"]["AuthAction"],
                format!("polardb:{action}"),
                "{client} #{i}: {:#}",
                r[i]
            );
        }
        assert_eq!(r[5]["ok"], true, "{client}: {:#}", r[5]);
    }
    // The deleter may delete the one cluster its policy names (and nothing ran: it is gone).
    let res = sdk(call_as(
        "v3",
        server,
        &deleter.tenant(&second),
        "DeleteDBCluster",
        json!({"DBClusterId": second, "BackupRetentionPolicyOnClusterDeletion": "NONE"}),
    ));
    assert_eq!(res["ok"], true, "{res:#}");
    let res = sdk(list_request("v3", server, &t, json!({})));
    assert_eq!(listed(&res), [t.cluster_id.as_str()], "{res:#}");
}
