//! Processes killed (SIGKILL) while they write nonces: every nonce a writer was answered for
//! is refused afterwards (those used unsynced, under the committer's lease, too), and what the
//! dead writers left reads back with no damage.
//!
//! The writer is this test binary run again, the test itself in the writer's part (told so by
//! its environment), so it is a real process holding the log's lock, with writes in flight,
//! when it dies.

#[path = "contract/common.rs"]
mod common;

use common::t;
use polarbackup_model::AccessKeyId;
use polarbackup_store::prelude::*;
use polarbackup_store::{NonceDone, SqliteStore};
use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DIR_ENV: &str = "POLARBACKUP_NONCE_WRITER_DIR";
const ROUND_ENV: &str = "POLARBACKUP_NONCE_WRITER_ROUND";
const EXPIRES: i64 = 900;

fn key() -> AccessKeyId {
    AccessKeyId::parse("k").expect("id")
}

/// The writer, until killed: threads using nonces one at a time, of varied lengths, and one
/// queueing thousands at once (batches of several frames and pages, so a kill may land inside
/// a write); each nonce is printed as `used NAME .` once it was answered fresh.
fn writer(dir: &std::ffi::OsStr, round: &str) {
    let store = SqliteStore::open(std::path::Path::new(dir)).expect("open");
    let print = |name: &str| {
        let mut out = std::io::stdout().lock();
        out.write_all(format!("used {name} .\n").as_bytes())
            .and_then(|()| out.flush())
            .expect("stdout");
    };
    std::thread::scope(|s| {
        for thread in 0..6 {
            let store = &store;
            s.spawn(move || {
                for i in 0.. {
                    let name = format!("{round}-{thread}-{i}-{}", "p".repeat(i % 300));
                    let fresh = store.use_nonce(&key(), &name, t(EXPIRES), t(EXPIRES - 900));
                    assert!(fresh.expect("nonce"), "{name} was used before");
                    print(&name);
                }
            });
        }
        // Calls that change nothing: used without waiting for a sync, under the committer's
        // lease (a queued use when there is none, which asks for one).
        for thread in 0..2 {
            let store = &store;
            s.spawn(move || {
                for i in 0.. {
                    let mut name = format!("{round}-u{thread}-{i}");
                    let (expires, now) = (t(EXPIRES), t(EXPIRES - 900));
                    let fresh = match store.use_nonce_unsynced(&key(), &name, expires, now) {
                        Some(fresh) => fresh,
                        // Not used: queued under another name, so the names tell them apart.
                        None => {
                            name.push_str("-queued");
                            store.use_nonce(&key(), &name, expires, now)
                        }
                    };
                    assert!(fresh.expect("nonce"), "{name} was used before");
                    print(&name);
                }
            });
        }
        let store = &store;
        s.spawn(move || {
            for batch in 0.. {
                let (tx, rx) = mpsc::channel();
                for i in 0..5000 {
                    let name = format!("{round}-q{batch}-{i}");
                    let (tx, answer) = (tx.clone(), name.clone());
                    let done: NonceDone = Box::new(move |a| {
                        let _ = tx.send((answer, a));
                    });
                    let (expires, now) = (t(EXPIRES), t(EXPIRES - 900));
                    if store
                        .queue_nonce(&key(), &name, expires, now, done)
                        .is_err()
                    {
                        panic!("the SQLite store queues");
                    }
                }
                drop(tx);
                for (name, fresh) in rx {
                    assert!(fresh.expect("nonce"), "{name} was used before");
                    print(&name);
                }
            }
        });
    });
}

#[test]
fn killed_writers_lose_no_answered_nonce() {
    if let Some(dir) = std::env::var_os(DIR_ENV) {
        let round = std::env::var(ROUND_ENV).expect("the writer's round");
        return writer(&dir, &round);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let exe = std::env::current_exe().expect("test binary");
    let mut answered: Vec<String> = Vec::new();
    for round in 0..8u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "killed_writers_lose_no_answered_nonce",
                "--nocapture",
            ])
            .env(DIR_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let out = child.stdout.take().expect("stdout");
        let (names, got) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            // A line cut short by the kill lacks its end mark and is not counted.
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(name) = line
                    .strip_prefix("used ")
                    .and_then(|l| l.strip_suffix(" ."))
                {
                    let _ = names.send(name.to_owned());
                }
            }
        });
        // Killed once it has answered a few hundred, a different while after each round.
        for _ in 0..300 {
            match got.recv_timeout(Duration::from_secs(120)) {
                Ok(name) => answered.push(name),
                Err(e) => panic!("round {round}: the writer answered too little: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis((round * 37) % 100));
        child.kill().expect("kill");
        let status = child.wait().expect("wait");
        // Anything else is the writer failing by itself (a nonce it got refused).
        assert_eq!(status.signal(), Some(9), "round {round}: {status:?}");
        reader.join().expect("reader");
        answered.extend(got.try_iter());

        let store = SqliteStore::open(dir.path()).expect("open after the kill");
        assert_eq!(
            store.integrity_check().expect("check"),
            ["ok"],
            "round {round}"
        );
        let (tx, rx) = mpsc::channel();
        for name in &answered {
            let (tx, name2) = (tx.clone(), name.clone());
            let done: NonceDone = Box::new(move |a| {
                let _ = tx.send((name2, a));
            });
            if store
                .queue_nonce(&key(), name, t(EXPIRES), t(EXPIRES - 899), done)
                .is_err()
            {
                panic!("the SQLite store queues");
            }
        }
        drop(tx);
        for (name, fresh) in rx {
            assert!(!fresh.expect("nonce"), "round {round}: {name} was lost");
        }
        let fresh = format!("after-{round}");
        assert!(store
            .use_nonce(&key(), &fresh, t(EXPIRES), t(EXPIRES - 899))
            .expect("nonce"));
    }
    let unsynced = answered
        .iter()
        .filter(|n| n.contains("-u") && !n.ends_with("-queued"))
        .count();
    eprintln!(
        "{unsynced} of {} answered nonces were used unsynced",
        answered.len()
    );
    assert!(unsynced > 0, "no nonce was used unsynced");
}
