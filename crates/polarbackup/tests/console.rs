//! The web console in a real browser: Debian's headless Chromium, driven by Selenium
//! (`tests/console/browser.py`), against the real server and a real PostgreSQL cluster. It
//! signs in (a wrong secret refused), lists the clusters, backs up and watches the progress bar
//! reach 100 %, sees the new set, changes the policy (checked here through the SDK), shows the
//! restore command, fits a phone-sized screen, shows a read-only RAM user's denial as the API
//! states it, and deletes a set; the secret is never in a request the page sends. Screenshots
//! of the main pages go to `<target tmp>/console-screenshots/`.

mod common;

use common::*;
use polarbackup_model::{Clock, SystemClock};
use polarbackup_testkit::pg::{self, PgCluster};
use polarbackup_testkit::{Server, Tenant, ThrottledProxy};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const READ_ONLY: &str = "AliyunPolardbReadOnlyAccess";

/// Where the screenshots go (kept after the test, for people and the README).
fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// Runs the browser script with `settings`; its JSON report.
fn browse(settings: &Value) -> Value {
    let script = polarbackup_testkit::workspace_root()
        .join("tests")
        .join("console")
        .join("browser.py");
    let mut child = Command::new(polarbackup_testkit::python())
        .arg(&script)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the browser script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(settings.to_string().as_bytes())
        .expect("write the settings");
    let out = child.wait_with_output().expect("wait for the browser");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser checks failed ({}); screenshots in {}\n{stderr}",
        out.status,
        shots_dir().display()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// GET `path`: status and head.
fn get(server: &Server, path: &str) -> (u16, String) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let (status, head, _) = polarbackup_testkit::http::exchange(
        server.addr,
        req.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .expect("GET");
    (status, head)
}

/// One header's value in a response head ("" when absent).
fn header(head: &str, name: &str) -> String {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// Bytes per second that make a backup of `pg` upload in about `secs` seconds.
fn upload_in(pg: &PgCluster, secs: u64) -> u64 {
    let bytes: u64 = pg
        .psql("SELECT sum(pg_database_size(datname)) FROM pg_database;")
        .parse()
        .expect("a size");
    (bytes / secs).max(1_000_000)
}

/// Runs a `polarbackup restore …` line the console showed, word for word, with this
/// installation's data directory added; asserts success.
fn run_shown(server: &Server, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["polarbackup", "restore"], "{line}");
    let out = Command::new(bin())
        .args(&words[1..])
        .arg("--data-dir")
        .arg(&server.data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run restore");
    assert!(
        out.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the browser's next backup time (in `shown`) agrees with the SDK's `next`, read a
/// little later: the same, or a slot that came due in between (a run across a window's start),
/// so the SDK already names the one after it.
fn same_next_backup(shown: &str, next: &str) -> bool {
    if shown.contains(next) {
        return true;
    }
    let Ok(next) = next.parse::<jiff::Timestamp>() else {
        return false;
    };
    let now = SystemClock.now();
    // `YYYY-MM-DDTHH:MMZ`, as the console shows PreferredNextBackupTime.
    (0..shown.len().saturating_sub(16))
        .filter_map(|i| shown.get(i..i + 17)?.parse::<jiff::Timestamp>().ok())
        .any(|slot| slot <= now && slot > now - jiff::SignedDuration::from_mins(10) && slot < next)
}

fn ok(res: &Value) -> Value {
    assert_eq!(res["ok"], true, "expected success, got {res:#}");
    wire_body(res).clone()
}

#[test]
fn the_console_in_a_real_browser() {
    let pg = PgCluster::init();
    pg.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 50000) g;",
    );
    // Slowed down so that the upload lasts seconds: the bar has a way to go.
    let proxy = ThrottledProxy::start(pg.port, upload_in(&pg, 6));
    let server = Server::start(
        bin(),
        None,
        &["--log-backup", "on", "--wal-partial-secs", "1"],
    );
    let t = Tenant::create_at(bin(), &server.data_dir, "console", proxy.port());
    let c = t.cluster_id.clone();
    let reader = server.ram_user(&t.account_id, "console-reader", &[READ_ONLY]);
    let _ = std::fs::remove_dir_all(shots_dir());
    // Where the restore commands the console shows will write (each absent or empty).
    let (by_set_scratch, by_set_target) = pg::restore_target();
    let (_by_time_scratch, by_time_target) = pg::restore_target();

    // The page itself: its type and the policy that keeps everything on this origin.
    let (status, head) = get(&server, "/console");
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(
        header(&head, "content-security-policy").starts_with("default-src 'self'"),
        "{head}"
    );
    let (_, head) = get(&server, "/console/app.js");
    assert_eq!(
        header(&head, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&head, "cache-control"), "no-cache");
    // The browser's copy is asked after by its ETag, and kept while it is this binary's.
    let etag = header(&head, "etag");
    assert!(etag.starts_with('"'), "{head}");
    let req = format!(
        "GET /console/app.js HTTP/1.1\r\nHost: {}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let (status, _, body) = polarbackup_testkit::http::exchange(
        server.addr,
        req.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .expect("GET");
    assert_eq!((status, body.as_str()), (304, ""));
    assert_eq!(get(&server, "/console/nothing.js").0, 404);

    // A wrong secret, for the browser and the SDK alike: the first character changed, never
    // to itself.
    let first = if t.secret.starts_with('x') { 'y' } else { 'x' };
    let wrong = Tenant {
        secret: format!("{first}{}", &t.secret[1..]),
        ..t.clone()
    };
    let report = browse(&json!({
        "base": format!("http://{}", server.addr),
        "key_id": t.key_id,
        "secret": t.secret,
        "wrong_secret": wrong.secret,
        "ram_key_id": reader.key_id,
        "ram_secret": reader.secret,
        "cluster": c,
        "shots": shots_dir(),
        "target_dir": by_set_target,
        "target_dir_time": by_time_target,
    }));
    eprintln!("browser report: {report:#}");

    // The wrong secret: refused as the API refuses it.
    let sdk_wrong = call_v3(
        &server,
        &wrong,
        "DescribeBackupPolicy",
        json!({"DBClusterId": c}),
    );
    assert_eq!(sdk_wrong["ok"], false, "{sdk_wrong:#}");
    let code = wire_body(&sdk_wrong)["Code"].as_str().expect("Code");
    assert_eq!(report["wrong_secret"]["code"], code, "{report:#}");
    let shown = report["wrong_secret"]["text"].as_str().unwrap_or_default();
    // The message names the server's string to sign, which differs with each request.
    let message = wire_body(&sdk_wrong)["Message"].as_str().expect("Message");
    let stable = message.split(" server string").next().unwrap_or(message);
    assert!(shown.contains(stable), "{shown:?} lacks {stable:?}");

    // The clusters page showed the cluster Running; after the backup, its last backup.
    let row = report["clusters_row_after"].as_array().expect("row");
    assert!(row[0].as_str().unwrap().contains(&c), "{row:?}");
    assert!(row[1].as_str().unwrap().contains("Running"), "{row:?}");
    assert!(
        row[2].as_str().unwrap().contains('Z'),
        "no last backup: {row:?}"
    );
    let next = ok(&call_v3(
        &server,
        &t,
        "DescribeBackupPolicy",
        json!({"DBClusterId": c}),
    ));
    assert!(
        same_next_backup(
            row[3].as_str().unwrap(),
            next["PreferredNextBackupTime"].as_str().unwrap()
        ),
        "{row:?} vs {next:#}"
    );

    // The backup the browser started ran to the end, through the phases it watched.
    let job = report["job"].as_str().expect("job id");
    let progress = report["progress"].as_array().expect("progress");
    assert_eq!(
        progress.last(),
        Some(&json!(["Finished", 100])),
        "{progress:?}"
    );
    let tasks = ok(&call_v3(
        &server,
        &t,
        "DescribeBackupTasks",
        json!({"DBClusterId": c, "BackupJobId": job}),
    ));
    assert_eq!(
        tasks["Items"]["BackupJob"][0]["BackupProgressStatus"], "Finished",
        "{tasks:#}"
    );

    // The policy the browser saved, as the SDK reads it.
    let policy = ok(&call_v3(
        &server,
        &t,
        "DescribeBackupPolicy",
        json!({"DBClusterId": c}),
    ));
    for k in [
        "PreferredBackupPeriod",
        "PreferredBackupTime",
        "DataLevel1BackupRetentionPeriod",
    ] {
        assert_eq!(policy[k], report["policy"][k], "{k}: {policy:#}");
    }
    assert!(
        same_next_backup(
            report["policy"]["shown"].as_str().unwrap(),
            policy["PreferredNextBackupTime"].as_str().unwrap()
        ),
        "{report:#}"
    );

    // The restore commands the console showed, run word for word (on this installation: its
    // data directory added, as the console says): the set's gives back the table.
    let by_set = report["restore_by_set"].as_str().expect("a command");
    assert_eq!(
        by_set,
        format!(
            "polarbackup restore --backup-id {job} --target-dir {}",
            by_set_target.display()
        )
    );
    run_shown(&server, by_set);
    pg::chown_to_postgres(by_set_scratch.path(), true);
    let restored = PgCluster::start_on(&by_set_target);
    assert_eq!(restored.psql("SELECT count(*) FROM t;"), "50000");
    drop(restored);
    // By time: the window's end as shown, inside the window the clusters page showed.
    let shown_window = report["recovery_window"].as_str().expect("a window");
    let (begin, end) = shown_window.split_once(" → ").expect("begin → end");
    assert!(begin <= end && begin.ends_with('Z'), "{shown_window}");
    let by_time = report["restore_by_time"].as_str().expect("a command");
    assert_eq!(
        by_time,
        format!(
            "polarbackup restore --cluster {c} --recovery-time {end} --target-dir {}",
            by_time_target.display()
        )
    );
    assert!(
        row[4].as_str().unwrap().starts_with(begin),
        "{row:?} vs {shown_window}"
    );
    run_shown(&server, by_time);
    assert!(by_time_target.join("PG_VERSION").is_file());

    // The read-only RAM user's denial, as the SDK gets it.
    let denied = call_v3(
        &server,
        &reader.tenant(&c),
        "CreateBackup",
        json!({"DBClusterId": c}),
    );
    assert_error(&denied, 403, "Forbidden.RAM");
    assert_eq!(report["ram_denied"]["code"], "Forbidden.RAM", "{report:#}");
    let shown = report["ram_denied"]["text"].as_str().unwrap_or_default();
    let message = wire_body(&denied)["Message"].as_str().expect("Message");
    assert!(shown.contains(message), "{shown:?} lacks {message:?}");
    assert!(shown.contains("NoPermissionType"), "{shown:?}");

    // The set the browser deleted is gone; the first one stays.
    let deleted = report["deleted"].as_str().expect("the deleted set");
    assert_ne!(deleted, job);
    let sets = ok(&call_v3(
        &server,
        &t,
        "DescribeBackups",
        json!({"DBClusterId": c, "StartTime": "2000-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}),
    ));
    let ids: Vec<&str> = sets["Items"]["Backup"]
        .as_array()
        .expect("sets")
        .iter()
        .filter_map(|s| s["BackupId"].as_str())
        .collect();
    assert_eq!(ids, [job], "{sets:#}");

    // Neither secret reached the server (the browser checked every request it sent; the
    // server's log has neither either).
    let log = server.log();
    assert!(!log.contains(&t.secret) && !log.contains(&reader.secret));
    for name in [
        "login-refused",
        "clusters",
        "cluster",
        "policy",
        "restore",
        "phone-clusters",
        "phone-cluster",
        "ram-denied",
    ] {
        let png = shots_dir().join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
    }
}

#[test]
fn the_next_backup_shown_may_have_come_due_before_the_sdk_read() {
    let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%MZ").to_string();
    let now = SystemClock.now();
    let passed =
        jiff::Timestamp::from_second(now.as_second() - now.as_second() % 60 - 60).expect("a time");
    let after = passed + jiff::SignedDuration::from_hours(24);
    assert!(same_next_backup(
        &format!("next: {}", fmt(after)),
        &fmt(after)
    ));
    assert!(same_next_backup(
        &format!("next: {}", fmt(passed)),
        &fmt(after)
    ));
    // Long past, or later than the SDK's: a wrong time, not a slot that came due.
    let old = passed - jiff::SignedDuration::from_hours(1);
    assert!(!same_next_backup(
        &format!("next: {}", fmt(old)),
        &fmt(after)
    ));
    assert!(!same_next_backup(
        &format!("next: {}", fmt(after + jiff::SignedDuration::from_hours(1))),
        &fmt(after)
    ));
    assert!(!same_next_backup("next: -", &fmt(after)));
}
