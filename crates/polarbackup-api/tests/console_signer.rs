//! The web console's JavaScript signer (`console/sign.js`) run under Node's test runner
//! against PROTOCOL.md's worked example and the official SDKs' captured V3 requests.

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn the_console_signs_as_the_official_sdks_do() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("..").join("..");
    let node = std::env::var("POLARBACKUP_NODE").unwrap_or_else(|_| "node".to_string());
    let out = Command::new(&node)
        .arg("--test")
        .arg(here.join("tests").join("console_sign.test.mjs"))
        .env("POLARBACKUP_ROOT", &root)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {node} (scripts/install-deps.sh installs it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Three cases ran and none failed (a runner that found nothing would also exit 0).
    assert!(stdout.contains("# pass 3"), "{stdout}");
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
