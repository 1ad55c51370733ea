//! Runs `tests/sdk/driver.py` (official Python SDKs and a raw signer) and returns its JSON results.

use crate::server::{Server, Tenant};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

/// `tests/sdk/driver.py` in the workspace.
pub fn driver_path() -> PathBuf {
    workspace_root().join("tests").join("sdk").join("driver.py")
}

/// The Python interpreter: `$POLARBACKUP_PYTHON`, or `python3`.
pub fn python() -> String {
    std::env::var("POLARBACKUP_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Prometheus's `promtool`: `$POLARBACKUP_PROMTOOL`, else where `scripts/install-deps.sh`
/// unpacks it, else `promtool` on the PATH.
pub fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("POLARBACKUP_PROMTOOL") {
        return p.into();
    }
    let cached = Path::new("/var/cache/polarbackup/promtool/usr/bin/promtool");
    if cached.exists() {
        return cached.to_path_buf();
    }
    PathBuf::from("promtool")
}

/// A driver request for `client` against `server` with `tenant`'s key and these business
/// parameters. Add raw options with `req["name"] = value`.
pub fn request(client: &str, server: &Server, tenant: &Tenant, params: Value) -> Value {
    json!({
        "client": client,
        "endpoint": server.endpoint(),
        "key": tenant.key_id,
        "secret": tenant.secret,
        "params": params,
    })
}

/// Runs one driver request; see `tests/sdk/driver.py` for its fields and the result's.
pub fn sdk(request: Value) -> Value {
    run_driver(&request, &[])
}

/// Runs several driver requests in one Python process (saves ~0.5 s of start-up per request).
/// Results come back in order.
pub fn sdk_batch(requests: Vec<Value>) -> Vec<Value> {
    let n = requests.len();
    let out = run_driver(&Value::Array(requests), &[]);
    match out {
        Value::Array(items) if items.len() == n => items,
        other => panic!("driver returned {other} for a batch of {n}"),
    }
}

pub(crate) fn run_driver(input: &Value, args: &[&str]) -> Value {
    let driver = driver_path();
    let mut child = Command::new(python())
        .arg(&driver)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", python(), driver.display()));
    {
        let mut stdin = child.stdin.take().expect("driver stdin");
        stdin
            .write_all(input.to_string().as_bytes())
            .expect("write driver request");
    }
    let output = child.wait_with_output().expect("wait for the driver");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "driver failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("driver printed no JSON ({e}):\nstdout: {stdout}\nstderr: {stderr}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tests/fixtures/vectors/requests`: the captured official-SDK requests (see its README.md).
    fn vectors_dir() -> PathBuf {
        workspace_root()
            .join("tests")
            .join("fixtures")
            .join("vectors")
            .join("requests")
    }

    /// The driver's raw signer reproduces the worked examples of PROTOCOL.md and the signature
    /// of every HMAC-signed captured request in the repository's fixtures.
    #[test]
    fn raw_signer_agrees_with_the_official_sdks() {
        let vectors = vectors_dir();
        assert!(vectors.is_dir(), "{} is missing", vectors.display());
        let mut cmd = Command::new(python());
        cmd.arg(driver_path()).arg("--selftest").arg(&vectors);
        let out = cmd.output().expect("run driver selftest");
        assert!(
            out.status.success(),
            "selftest failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
