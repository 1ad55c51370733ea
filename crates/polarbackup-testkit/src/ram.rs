//! RAM fixtures: users with an access key and attached policies, custom policies from JSON, and the `admin ram` commands.

use crate::server::{admin, admin_output, Server, Tenant};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Output;

/// A RAM user of some account, with one access key.
#[derive(Debug, Clone)]
pub struct RamUser {
    pub account_id: String,
    pub user_id: String,
    pub user_name: String,
    pub key_id: String,
    pub secret: String,
}

impl RamUser {
    /// `admin user create`, `admin key create --user`, then `admin policy attach` for each of
    /// `policies` (system policies by name, or the account's custom ones).
    pub fn create(
        bin: &Path,
        data_dir: &Path,
        account: &str,
        name: &str,
        policies: &[&str],
    ) -> RamUser {
        let user = admin(
            bin,
            data_dir,
            &["user", "create", "--account", account, "--name", name],
        );
        let user_id = field(&user, "UserId");
        let key = admin(bin, data_dir, &["key", "create", "--user", &user_id]);
        let out = RamUser {
            account_id: account.to_string(),
            user_id,
            user_name: field(&user, "UserName"),
            key_id: field(&key, "AccessKeyId"),
            secret: field(&key, "AccessKeySecret"),
        };
        for p in policies {
            attach(bin, data_dir, &out.user_id, p);
        }
        out
    }

    /// This user's key in the shape [`crate::request`] takes, aimed at `cluster_id`.
    pub fn tenant(&self, cluster_id: &str) -> Tenant {
        Tenant {
            account_id: self.account_id.clone(),
            key_id: self.key_id.clone(),
            secret: self.secret.clone(),
            cluster_id: cluster_id.to_string(),
        }
    }
}

/// `admin policy attach --user USER --policy NAME`; asserts success.
pub fn attach(bin: &Path, data_dir: &Path, user_id: &str, policy: &str) -> Value {
    admin(
        bin,
        data_dir,
        &["policy", "attach", "--user", user_id, "--policy", policy],
    )
}

/// `admin policy create --account A --name N --document-file F` with `document` written to a
/// temporary file, exactly as given; returns the output whatever the exit status.
pub fn policy_create_output(
    bin: &Path,
    data_dir: &Path,
    account: &str,
    name: &str,
    document: &str,
) -> Output {
    let mut file = tempfile::Builder::new()
        .prefix("polarbackup-policy-")
        .suffix(".json")
        .tempfile()
        .expect("create a policy file");
    file.write_all(document.as_bytes())
        .expect("write the policy file");
    file.flush().expect("flush the policy file");
    let path = file
        .path()
        .to_str()
        .expect("UTF-8 temporary path")
        .to_string();
    admin_output(
        bin,
        data_dir,
        &[
            "policy",
            "create",
            "--account",
            account,
            "--name",
            name,
            "--document-file",
            &path,
        ],
    )
}

impl Server {
    /// A RAM user of `account` on this server's data directory; see [`RamUser::create`].
    pub fn ram_user(&self, account: &str, name: &str, policies: &[&str]) -> RamUser {
        RamUser::create(&self.bin, &self.data_dir, account, name, policies)
    }

    /// Creates the custom policy `name` for `account` from `document` (JSON); asserts success.
    pub fn ram_policy(&self, account: &str, name: &str, document: &Value) -> Value {
        let out = policy_create_output(
            &self.bin,
            &self.data_dir,
            account,
            name,
            &document.to_string(),
        );
        assert!(
            out.status.success(),
            "policy create {name} failed ({}): {}\ndocument: {document}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("policy create prints JSON")
    }

    /// `admin ram decode-diagnostic --message M`, whatever the exit status.
    pub fn decode_diagnostic_output(&self, message: &str) -> Output {
        admin_output(
            &self.bin,
            &self.data_dir,
            &["ram", "decode-diagnostic", "--message", message],
        )
    }

    /// `admin ram decode-diagnostic --message M`; asserts success and returns its report.
    pub fn decode_diagnostic(&self, message: &str) -> Value {
        self.admin(&["ram", "decode-diagnostic", "--message", message])
    }

    /// `admin ram simulate --user U --action A --resource R --context K=V…`; asserts success.
    pub fn simulate(&self, user_id: &str, action: &str, resource: &str, context: &[&str]) -> Value {
        let args = simulate_args(user_id, action, resource, context);
        self.admin(&args)
    }

    /// `admin ram simulate …` as [`Server::simulate`], whatever the exit status.
    pub fn simulate_output(
        &self,
        user_id: &str,
        action: &str,
        resource: &str,
        context: &[&str],
    ) -> Output {
        let args = simulate_args(user_id, action, resource, context);
        admin_output(&self.bin, &self.data_dir, &args)
    }
}

fn simulate_args<'a>(
    user_id: &'a str,
    action: &'a str,
    resource: &'a str,
    context: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "ram",
        "simulate",
        "--user",
        user_id,
        "--action",
        action,
        "--resource",
        resource,
    ];
    for kv in context {
        args.push("--context");
        args.push(kv);
    }
    args
}

fn field(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {name} in {v}"))
        .to_string()
}
