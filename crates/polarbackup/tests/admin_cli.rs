//! The admin CLI: what each command prints, and that bad arguments fail with a message and a non-zero exit.

mod common;

use common::*;
use polarbackup_testkit::{admin, admin_output, checks, request, sdk, Tenant};
use serde_json::json;
use std::collections::HashSet;

fn is_cluster_id(s: &str) -> bool {
    s.len() == 18
        && s.starts_with("pc-")
        && s[3..]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[test]
fn create_commands_print_one_json_object_with_fresh_ids() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut accounts = HashSet::new();
    let mut keys = HashSet::new();
    let mut clusters = HashSet::new();
    for name in ["first", "second"] {
        let account = admin(bin(), &data, &["account", "create", "--name", name]);
        let id = account["AccountId"].as_str().unwrap().to_string();
        assert!(id.len() == 16 && checks::is_digits(&id), "{account}");
        assert!(accounts.insert(id.clone()));

        let key = admin(bin(), &data, &["key", "create", "--account", &id]);
        let ak = key["AccessKeyId"].as_str().unwrap().to_string();
        let sk = key["AccessKeySecret"].as_str().unwrap().to_string();
        assert!(!ak.is_empty() && !sk.is_empty() && ak != sk, "{key}");
        assert!(keys.insert(ak));

        let tenant = Tenant {
            account_id: id,
            key_id: String::new(),
            secret: String::new(),
            cluster_id: String::new(),
        };
        let c = tenant.add_cluster(bin(), &data);
        assert!(is_cluster_id(&c), "{c}");
        assert!(clusters.insert(c));
    }
    // Unnamed accounts are fine too.
    let unnamed = admin(bin(), &data, &["account", "create"]);
    assert!(checks::is_digits(unnamed["AccountId"].as_str().unwrap()));
}

#[test]
fn cluster_create_takes_its_password_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let account = admin(bin(), &data, &["account", "create"]);
    let id = account["AccountId"].as_str().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let out = admin(
        bin(),
        &data,
        &[
            "cluster",
            "create",
            "--account",
            id,
            "--region",
            "cn-hangzhou",
            "--engine",
            "postgresql",
            "--host",
            "127.0.0.1",
            "--port",
            "5432",
            "--user",
            "postgres",
            "--password-file",
            pw.to_str().unwrap(),
            "--database",
            "app",
            "--description",
            "test cluster",
        ],
    );
    assert!(is_cluster_id(out["DBClusterId"].as_str().unwrap()), "{out}");
    assert!(!out.to_string().contains("s3cret"), "{out}");
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let account = admin(bin(), &data, &["account", "create"]);
    let id = account["AccountId"].as_str().unwrap().to_string();
    // `cluster create` with valid flags, minus `skip`, with `overrides` replaced or added.
    let cluster = |overrides: &[(&str, &str)], skip: &[&str]| -> Vec<String> {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("--account", id.as_str()),
            ("--region", "cn-hangzhou"),
            ("--engine", "postgresql"),
            ("--host", "127.0.0.1"),
            ("--port", "5432"),
            ("--user", "postgres"),
        ];
        pairs.retain(|(flag, _)| !skip.contains(flag));
        for &(flag, value) in overrides {
            match pairs.iter_mut().find(|(f, _)| *f == flag) {
                Some(pair) => pair.1 = value,
                None => pairs.push((flag, value)),
            }
        }
        let mut args = vec!["cluster".to_string(), "create".to_string()];
        for (flag, value) in pairs {
            args.push(flag.to_string());
            args.push(value.to_string());
        }
        args
    };
    let missing_pw = dir.path().join("no-such-file");
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no subcommand", vec!["cluster".into()]),
        (
            "unknown subcommand",
            vec!["account".into(), "frobnicate".into()],
        ),
        ("cluster without --account", cluster(&[], &["--account"])),
        ("cluster without --host", cluster(&[], &["--host"])),
        (
            "unsupported engine",
            cluster(&[("--engine", "oracle")], &[]),
        ),
        ("port not a number", cluster(&[("--port", "fivefour")], &[])),
        ("port out of range", cluster(&[("--port", "70000")], &[])),
        (
            "unknown account",
            cluster(&[("--account", "9999999999999999")], &[]),
        ),
        (
            "password on the command line",
            cluster(&[("--password", "hunter2")], &[]),
        ),
        (
            "missing password file",
            cluster(&[("--password-file", missing_pw.to_str().unwrap())], &[]),
        ),
        ("key without --account", vec!["key".into(), "create".into()]),
        (
            "key for an unknown account",
            vec![
                "key".into(),
                "create".into(),
                "--account".into(),
                "9999999999999999".into(),
            ],
        ),
        (
            "disable an unknown key",
            vec![
                "key".into(),
                "disable".into(),
                "--key".into(),
                "LTAI5tNoSuchKey00000000".into(),
            ],
        ),
    ];
    for (what, args) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = admin_output(bin(), &data, &argv);
        assert!(
            !out.status.success(),
            "{what}: {argv:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
            "{what}: {argv:?} failed without a message"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("hunter2"),
            "{what}: the password was echoed"
        );
    }
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let server = shared();
    let t = server.tenant();
    let second = t.add_cluster(&server.bin, &server.data_dir);
    let res = sdk(request("v3", server, &t, json!({"DBClusterId": second})));
    assert!(ok_jobs(&res).is_empty());
}

#[test]
fn concurrent_admin_commands_and_seeding_do_not_hit_a_locked_database() {
    let server = shared();
    let workers: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let t = server.tenant();
                seed_shared(
                    &t.cluster_id,
                    &[Seed::new(
                        polarbackup_model::JobStatus::Finished,
                        now() - minutes(5),
                    )],
                );
                t
            })
        })
        .collect();
    for w in workers {
        w.join()
            .expect("a concurrent admin command or store write failed");
    }
}

#[test]
fn admin_backup_refuses_what_it_cannot_queue_and_gives_up_waiting_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No server runs on this installation: the job stays queued.
    let t = Tenant::create(bin(), &data);
    let out = admin_output(
        bin(),
        &data,
        &[
            "backup",
            "--cluster",
            &t.cluster_id,
            "--wait",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(printed["Status"], "NoStart", "{printed}");
    assert_eq!(printed["Kind"], "Full", "{printed}");
    assert_eq!(printed["BackupSize"], serde_json::Value::Null, "{printed}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gave up waiting after 1 s"), "{stderr}");

    for (args, message) in [
        (
            vec!["backup", "--cluster", "pc-zzzzzzzzzzzzzzz"],
            "does not exist",
        ),
        (vec!["backup", "--cluster", "nonsense"], "--cluster"),
        (
            vec![
                "backup",
                "--cluster",
                &t.cluster_id,
                "--type",
                "differential",
            ],
            "invalid value",
        ),
        (
            vec!["backup", "--cluster", &t.cluster_id, "--timeout", "5"],
            "--wait",
        ),
    ] {
        let out = admin_output(bin(), &data, &args);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // The queued job keeps the first cluster from being deleted: release a second one.
    let second = t.add_cluster(bin(), &data);
    let deleted = admin(
        bin(),
        &data,
        &[
            "cluster",
            "delete",
            "--cluster",
            &second,
            "--retention",
            "NONE",
        ],
    );
    assert_eq!(deleted["Status"], "Deleted", "{deleted}");
    let out = admin_output(bin(), &data, &["backup", "--cluster", &second]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is Deleted"), "{stderr}");
}
