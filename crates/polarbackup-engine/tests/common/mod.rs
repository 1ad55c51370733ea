//! A throwaway PostgreSQL cluster for integration tests: initdb into a tempdir, a free loopback
//! port, trust/md5/SCRAM users, optional TLS, stopped on Drop. Shared by the tests of one binary
//! while any of them holds it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};

use polarbackup_engine::pg::{ConnectConfig, PgHost, TlsMode};
// The PostgreSQL plumbing shared with the binary's tests.
use polarbackup_testkit::free_port;
use polarbackup_testkit::pg::{as_postgres, chown_to_postgres, initdb, pg_bin_dir};

pub const MD5_USER: (&str, &str) = ("md5user", "md5-secret");
pub const SCRAM_USER: (&str, &str) = ("scramuser", "scram-secret");
pub const NO_REPL_USER: &str = "norepl";
pub const SUPERUSER: &str = "postgres";

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// CA certificate (PEM) the server's certificate chains to.
    pub ca_file: PathBuf,
    /// The extra tablespace's directory.
    pub tablespace_dir: PathBuf,
}

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

impl Cluster {
    /// The running shared cluster, or a new one.
    pub fn shared() -> Arc<Cluster> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.upgrade() {
            return c;
        }
        let c = Arc::new(Cluster::start());
        *slot = Arc::downgrade(&c);
        c
    }

    fn start() -> Cluster {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new().prefix("pbeng").tempdir().unwrap();
        let data = dir.path().join("data");
        let tablespace_dir = dir.path().join("ts1");
        std::fs::create_dir(&tablespace_dir).unwrap();
        chown_to_postgres(dir.path(), false);
        chown_to_postgres(&tablespace_dir, false);

        initdb(&bin, &data);
        let ca_file = make_certs(dir.path());
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 10\n\
             fsync = off\nshared_buffers = 16MB\nlog_min_messages = warning\n",
            dir.path().display()
        );
        conf += &format!(
            "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
            dir.path().display()
        );
        append(&data.join("postgresql.conf"), &conf);
        // First match wins: password users over TCP, everyone else trusted.
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\nlocal replication all trust\n\
                 host replication {md5} 127.0.0.1/32 md5\n\
                 host replication {scram} 127.0.0.1/32 scram-sha-256\n\
                 host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
                md5 = MD5_USER.0,
                scram = SCRAM_USER.0
            ),
        )
        .unwrap();

        // A port from the kernel can be taken again before postgres binds it: retry a few times.
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let out = as_postgres(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    s(&data),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    s(&dir.path().join("server.log")),
                    "-o",
                    &format!("-p {port}"),
                    "start",
                ],
            );
            if out.status.success() {
                let c = Cluster {
                    dir,
                    bin,
                    port,
                    ca_file,
                    tablespace_dir,
                };
                c.setup();
                return c;
            }
            last_err = String::from_utf8_lossy(&out.stderr).into_owned()
                + &std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        }
        panic!("postgres did not start: {last_err}");
    }

    fn setup(&self) {
        self.psql(&format!(
            "SET password_encryption = 'md5';\n\
             CREATE ROLE {} LOGIN REPLICATION PASSWORD '{}';\n\
             SET password_encryption = 'scram-sha-256';\n\
             CREATE ROLE {} LOGIN REPLICATION PASSWORD '{}';\n\
             CREATE ROLE {} LOGIN;\n\
             CREATE TABLESPACE ts1 LOCATION '{}';\n\
             CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 40000) g;\n\
             CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g FROM generate_series(1, 1000) g;",
            MD5_USER.0,
            MD5_USER.1,
            SCRAM_USER.0,
            SCRAM_USER.1,
            NO_REPL_USER,
            self.tablespace_dir.display()
        ));
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs SQL as the superuser over the Unix socket and returns psql's unaligned output.
    /// The script goes through stdin, so each statement commits on its own (as CREATE TABLESPACE needs).
    pub fn psql(&self, sql: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A TCP config without TLS.
    pub fn tcp(&self, user: &str, password: Option<&str>) -> ConnectConfig {
        let mut c = ConnectConfig::new(PgHost::Tcp("127.0.0.1".into()), self.port, user);
        c.password = password.map(str::to_string);
        c.tls = TlsMode::Disable;
        c.application_name = "polarbackup-engine-test".into();
        c
    }

    /// A Unix-socket config for the superuser.
    pub fn unix(&self) -> ConnectConfig {
        let mut c = ConnectConfig::new(
            PgHost::Unix(self.dir.path().to_path_buf()),
            self.port,
            SUPERUSER,
        );
        c.tls = TlsMode::Disable;
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", s(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A CA and a server certificate for 127.0.0.1 and localhost, readable by the server.
fn make_certs(dir: &Path) -> PathBuf {
    let ca = polarbackup_testkit::certs::make_server_certs(dir, "IP:127.0.0.1,DNS:localhost");
    chown_to_postgres(&dir.join("server.key"), false);
    chown_to_postgres(&dir.join("server.crt"), false);
    ca
}
