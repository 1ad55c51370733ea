//! `polarbackup admin`: tenant and cluster management straight on the store. Each command
//! prints one JSON object on stdout.

use crate::cli::{
    AccountCommand, AdminCommand, ClusterCommand, ClusterCreateArgs, ClusterFullBackupArg,
    ClusterFullBackupArgs, Engine, KeyCommand, LocationArgs,
};
use crate::config;
use anyhow::{bail, Context, Result};
use polarbackup_model::policy::FullBackupEvery;
use polarbackup_model::{AccessKeyId, AccountId, Clock, DbClusterId, NewCluster, SystemClock};
use polarbackup_store::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;

const PASSWORD_ENV: &str = "POLARBACKUP_CLUSTER_PASSWORD";

pub fn run(cmd: AdminCommand) -> Result<()> {
    let out = match cmd {
        // Prints its own JSON: with --wait it does so before failing on a failed job.
        AdminCommand::Backup(args) => return crate::admin_backup::run(args),
        AdminCommand::Account(AccountCommand::Create { name, data }) => {
            let store = open(&data)?;
            let account = store.create_account(name.as_deref(), SystemClock.now())?;
            json!({ "AccountId": account.id.as_str() })
        }
        AdminCommand::Key(KeyCommand::Create {
            account,
            user,
            rsa_public_key_file,
            data,
        }) => {
            let store = open(&data)?;
            let now = SystemClock.now();
            let rsa = rsa_public_key_file
                .map(|f| read_rsa_public_key(&f))
                .transpose()?;
            let (account, user) = match (account, user) {
                (Some(account), _) => {
                    let account = AccountId::parse(&account).context("--account")?;
                    if store.account(&account)?.is_none() {
                        bail!("account {account} does not exist");
                    }
                    (account, None)
                }
                (None, Some(user)) => {
                    let user = crate::admin_ram::find_user(store.as_ref(), &user)?;
                    (user.account.clone(), Some(user))
                }
                (None, None) => bail!("give --account or --user"),
            };
            match (rsa, &user) {
                (Some(pem), user) => {
                    let key = store.create_rsa_key(&account, user.as_ref(), &pem, now)?;
                    json!({ "AccessKeyId": key.id.as_str(), "SignatureAlgorithm": "ACS3-RSA-SHA256" })
                }
                (None, Some(user)) => {
                    let key = store.create_user_key(user, now)?;
                    json!({ "AccessKeyId": key.id.as_str(), "AccessKeySecret": key.secret })
                }
                (None, None) => {
                    let key = store.create_key(&account, now)?;
                    json!({ "AccessKeyId": key.id.as_str(), "AccessKeySecret": key.secret })
                }
            }
        }
        AdminCommand::Key(KeyCommand::Disable { key, data }) => set_active(&key, &data, false)?,
        AdminCommand::Key(KeyCommand::Enable { key, data }) => set_active(&key, &data, true)?,
        AdminCommand::Cluster(ClusterCommand::Create(args)) => create_cluster(args)?,
        AdminCommand::Cluster(ClusterCommand::Delete(args)) => crate::admin_delete::run(args)?,
        AdminCommand::Cluster(ClusterCommand::FullBackupEvery(args)) => full_backup_every(args)?,
        AdminCommand::User(cmd) => crate::admin_ram::user(cmd)?,
        AdminCommand::Policy(cmd) => crate::admin_ram::policy(cmd)?,
        AdminCommand::Ram(cmd) => crate::admin_ram::ram(cmd)?,
        AdminCommand::MigrateMetadata(args) => crate::admin_migrate::run(args)?,
        AdminCommand::Clock(cmd) => crate::test_controls::clock_command(cmd)?,
        AdminCommand::Fault(cmd) => crate::test_controls::fault_command(cmd)?,
        AdminCommand::RotateMasterKey { new_key_file, data } => {
            let new = Arc::new(config::read_master_key_file(&new_key_file)?);
            let locations = data.locations()?;
            let report = locations.rotate_master_key(Arc::clone(&new))?;
            eprintln!(
                "re-sealed {} access-key secrets and {} database passwords with key {}; give \
                 every server that key now (master_key_file or POLARBACKUP_MASTER_KEY)",
                report.access_keys,
                report.cluster_passwords,
                new.id()
            );
            json!({
                "KeyId": new.id(),
                "AccessKeys": report.access_keys,
                "ClusterPasswords": report.cluster_passwords,
            })
        }
    };
    println!("{out}");
    Ok(())
}

/// Reads and checks an RSA public key file; the key is public, so it may come from a path.
fn read_rsa_public_key(path: &std::path::Path) -> Result<String> {
    const MAX_PEM: u64 = 64 * 1024;
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_PEM {
        bail!("{} is larger than {MAX_PEM} bytes", path.display());
    }
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if !polarbackup_auth::is_rsa_public_key_pem(&pem) {
        bail!(
            "{} is not an RSA public key in PEM (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)",
            path.display()
        );
    }
    Ok(pem.trim().to_string())
}

/// The installation's metadata store, as `serve` would open it.
pub fn open(data: &LocationArgs) -> Result<Arc<dyn Store>> {
    data.locations()?.open_store()
}

fn set_active(key: &str, data: &LocationArgs, active: bool) -> Result<Value> {
    let id = AccessKeyId::parse(key).context("--key")?;
    let store = open(data)?;
    store
        .set_key_active(&id, active)
        .with_context(|| format!("access key {id}"))?;
    Ok(json!({ "AccessKeyId": id.as_str(), "Status": if active { "Active" } else { "Inactive" } }))
}

/// Sets a Running cluster's schedule of full backups (or hands it back to the server's default).
fn full_backup_every(args: ClusterFullBackupArgs) -> Result<Value> {
    let id = DbClusterId::parse(&args.cluster).context("--cluster")?;
    let every = match args.every {
        ClusterFullBackupArg::Week => Some(FullBackupEvery::Week),
        ClusterFullBackupArg::Always => Some(FullBackupEvery::Always),
        ClusterFullBackupArg::Default => None,
    };
    let store = open(&args.data)?;
    if store.cluster(&id)?.is_none() {
        bail!("cluster {id} does not exist");
    }
    if let Err(status) = store.set_full_backup_every(&id, every)? {
        bail!("cluster {id} is {status}: only a Running cluster's schedule can change");
    }
    Ok(json!({
        "DBClusterId": id.as_str(),
        "FullBackupEvery": every.map_or("default", FullBackupEvery::as_str),
    }))
}

fn create_cluster(args: ClusterCreateArgs) -> Result<Value> {
    let account = AccountId::parse(&args.account).context("--account")?;
    if !config::valid_region(&args.region) {
        bail!("--region must be a region id such as cn-hangzhou");
    }
    if args.host.is_empty() || args.user.is_empty() {
        bail!("--host and --user must not be empty");
    }
    if let Some(ca) = &args.tls_ca_file {
        if args.tls != crate::cli::TlsArg::VerifyFull {
            bail!("--tls-ca-file goes with --tls verify-full");
        }
        std::fs::metadata(ca).with_context(|| format!("--tls-ca-file {}", ca.display()))?;
    }
    if args.port == 0 {
        bail!("--port must be between 1 and 65535");
    }
    let password = match (&args.password_file, std::env::var(PASSWORD_ENV)) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --password-file {}", path.display()))?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        (None, Ok(p)) if !p.is_empty() => Some(p),
        _ => None,
    };
    let store = open(&args.data)?;
    if store.account(&account)?.is_none() {
        bail!("account {account} does not exist");
    }
    let engine = match args.engine {
        Engine::Postgresql => "postgresql",
    };
    let cluster = store.create_cluster(
        &NewCluster {
            account,
            region: args.region,
            engine: engine.into(),
            host: args.host,
            port: args.port,
            user: args.user,
            password,
            database: args.database,
            description: args.description,
            tls_mode: args.tls.into(),
            tls_ca_file: args.tls_ca_file.map(|p| p.display().to_string()),
        },
        SystemClock.now(),
    )?;
    Ok(json!({ "DBClusterId": cluster.id.as_str() }))
}
