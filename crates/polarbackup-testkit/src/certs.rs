//! Test certificates made with openssl: a CA and a server certificate it signed, for the
//! PostgreSQL servers the TLS tests connect to.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `ca.crt`, `server.crt` and `server.key` (0600) into `dir`; the server certificate's
/// names are `subject_alt` (openssl's syntax, e.g. `IP:127.0.0.1,DNS:localhost`). Returns the
/// CA file. openssl comes with Debian's PostgreSQL packages (`scripts/install-deps.sh`).
pub fn make_server_certs(dir: &Path, subject_alt: &str) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl ({e}); run scripts/install-deps.sh"));
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName={subject_alt}\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("write server.ext");
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.crt"],
        &["-days", "2", "-subj", "/CN=polarbackup test CA"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "server.key", "-out", "server.csr"],
        &["-subj", "/CN=polarbackup test server"],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod server.key");
    dir.join("ca.crt")
}
