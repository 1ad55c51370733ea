//! What the server leaves on disk: access-key secrets and database passwords sealed with the
//! master key (a dump of the metadata holds none; rotation; a wrong key refused at start), and
//! a data directory, repository and restore that nobody else may read, whatever the umask.

mod common;

use common::{bin, call_v3, create_backup_v3, wait_for, wire_body, API_ONLY};
use polarbackup_testkit::pg::PgCluster;
use polarbackup_testkit::{AdminTarget, Server, Tenant};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DB_PASSWORD: &str = "cluster-pw-9fQz-secret";

/// An older version's, or a careless operator's, umask: new files 0644, directories 0755.
fn open_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
}

/// A signed SDK call that needs the tenant's key and reads its cluster.
fn signed_call_works(server: &Server, t: &Tenant) {
    let res = call_v3(
        server,
        t,
        "DescribeBackupPolicy",
        json!({"DBClusterId": t.cluster_id}),
    );
    assert_eq!(res["ok"], true, "{res:#}\n{}", server.log());
}

/// `admin cluster create` for the tenant's account, the password in the environment.
fn cluster_with_password(target: &AdminTarget, t: &Tenant, port: u16) -> String {
    let out = Command::new(&target.bin)
        .args(["admin", "cluster", "create", "--account", &t.account_id])
        .args(["--region", "cn-hangzhou", "--engine", "postgresql"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--user", "postgres", "--data-dir"])
        .arg(&target.data_dir)
        .env("POLARBACKUP_CLUSTER_PASSWORD", DB_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("admin cluster create");
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["DBClusterId"].as_str().expect("id").to_owned()
}

/// `sqlite3 .dump` of the metadata, and every byte of the store's files.
fn metadata_dump(data: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(data.join("metadata.sqlite"))
        .arg(".dump")
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "{out:?}");
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
    for entry in std::fs::read_dir(data).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("metadata.sqlite") {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).expect("read"),
            ));
        }
    }
    all
}

fn assert_no_secret(dump: &str, secrets: &[&str]) {
    assert!(dump.contains("enc:v1:"), "no sealed value in the dump");
    for s in secrets {
        assert!(!dump.contains(s), "the metadata holds a secret in clear");
    }
}

/// `serve` must refuse to start: its exit status and stderr.
fn refused_start(data: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "0",
            "--data-dir",
        ])
        .arg(data)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with the wrong master key");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[test]
fn secrets_are_sealed_at_rest_rotated_and_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut server = Server::builder(bin())
        .data_dir(&data)
        .args(API_ONLY)
        .start();
    let target = server.target();
    let mut t = Tenant::create_on(&target);
    t.cluster_id = cluster_with_password(&target, &t, 5432);
    let user = target.run(&[
        "user",
        "create",
        "--account",
        &t.account_id,
        "--name",
        "ops",
    ]);
    let user_key = target.run(&[
        "key",
        "create",
        "--user",
        user["UserId"].as_str().expect("user id"),
    ]);
    let user_secret = user_key["AccessKeySecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let key_file = data.join("master.key");
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let secrets = [t.secret.as_str(), user_secret.as_str(), DB_PASSWORD];
    assert_no_secret(&metadata_dump(&data), &secrets);
    signed_call_works(&server, &t);
    let mut logs = server.log();
    server.stop();

    // Rotate, then switch the key as an operator would.
    let new_key = dir.path().join("new.key");
    write_private(&new_key, &[0x5a; 32]);
    let out = target.run(&[
        "rotate-master-key",
        "--new-key-file",
        new_key.to_str().expect("utf-8"),
    ]);
    assert_eq!(out["AccessKeys"], 2, "{out}");
    assert_eq!(out["ClusterPasswords"], 1, "{out}");
    let dump = metadata_dump(&data);
    assert_no_secret(&dump, &secrets);
    let new_id = out["KeyId"].as_str().expect("key id");
    assert!(dump.contains(&format!("enc:v1:{new_id}:")), "{new_id}");

    // The old key (still in master.key) is refused at start, loudly, and never echoed.
    let old_key = std::fs::read(&key_file).expect("old key");
    let err = refused_start(&data, &[]);
    assert!(
        err.contains("master key does not match the metadata store"),
        "{err}"
    );
    // So is a key from the environment that is not the store's.
    let wrong_hex: String = old_key.iter().map(|b| format!("{b:02x}")).collect();
    let err = refused_start(&data, &[("POLARBACKUP_MASTER_KEY", &wrong_hex)]);
    assert!(err.contains("master key does not match"), "{err}");
    assert!(!err.contains(&wrong_hex), "{err}");

    write_private(&key_file, &[0x5a; 32]);
    let server = Server::builder(bin())
        .data_dir(&data)
        .args(API_ONLY)
        .start();
    signed_call_works(&server, &t);
    let mut u = t.clone();
    u.key_id = user_key["AccessKeyId"].as_str().expect("id").to_owned();
    u.secret = user_secret.clone();
    // The RAM user has no policy: the signature is checked (so its secret opened), then RAM
    // denies the call.
    let res = call_v3(
        &server,
        &u,
        "DescribeBackupPolicy",
        json!({"DBClusterId": t.cluster_id}),
    );
    assert_eq!(res["status"], 403, "{res:#}");
    logs.push_str(&server.log());
    for s in secrets {
        assert!(!logs.contains(s), "a secret in the server's log");
    }
}

/// Every directory under `root` is 0700 and every file 0600.
fn assert_private_tree(root: &Path) -> usize {
    let mut seen = 0;
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(p) = pending.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("meta");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            for e in std::fs::read_dir(&p).expect("list") {
                pending.push(e.expect("entry").path());
            }
        } else if meta.is_file() {
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            seen += 1;
        }
    }
    seen
}

/// A tree as an older version left it: directories 0755, files 0644.
fn open_tree(root: &Path) {
    let chunk = root.join("old-backup/chunks");
    std::fs::create_dir_all(&chunk).expect("dirs");
    std::fs::write(chunk.join("0001"), b"pg_authid hashes").expect("file");
    for (p, m) in [
        (root.to_path_buf(), 0o755),
        (root.join("old-backup"), 0o755),
        (chunk.clone(), 0o755),
        (chunk.join("0001"), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
    }
}

#[test]
fn the_data_directory_repository_and_restores_are_private_whatever_the_umask() {
    open_umask();
    let pg = PgCluster::init();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let repo = dir.path().join("repo");
    open_tree(&data);
    open_tree(&repo);
    let repo_url = format!("file://{}", repo.display());
    let server = Server::builder(bin())
        .data_dir(&data)
        .env("POLARBACKUP_REPOSITORY_URL", &repo_url)
        .start();
    assert_private_tree(&data);
    assert_private_tree(&repo);

    let mut t = Tenant::create_on(&server.target());
    t.cluster_id = cluster_with_password(&server.target(), &t, pg.port);
    let job = create_backup_v3(&server, &t);
    wait_for(
        "the backup",
        180,
        || server.log(),
        || {
            let res = call_v3(
                &server,
                &t,
                "DescribeBackups",
                json!({"DBClusterId": t.cluster_id,
                   "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
            );
            let sets = wire_body(&res)["Items"]["Backup"].as_array().cloned()?;
            sets.iter()
                .any(|s| s["BackupStatus"] == "Success")
                .then_some(())
        },
    );
    // New chunks, manifests and the store's files, made under umask 022, are private too.
    assert!(assert_private_tree(&repo) > 3, "the backup's objects");
    assert_private_tree(&data);

    // PostgreSQL wants its data directory 0700; nothing restored is anyone else's to read.
    let target = dir.path().join("restored");
    let out = server.restore(&job, &target, &[]);
    assert!(out.status.success(), "{out:?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&target), 0o700);
    let mut pending = vec![target.clone()];
    while let Some(p) = pending.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("meta");
        if meta.file_type().is_symlink() {
            continue;
        }
        assert_eq!(meta.permissions().mode() & 0o077, 0, "{}", p.display());
        if meta.is_dir() {
            pending.extend(
                std::fs::read_dir(&p)
                    .expect("list")
                    .map(|e| e.expect("e").path()),
            );
        }
    }
}
