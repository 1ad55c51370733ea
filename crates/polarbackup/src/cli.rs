//! Command-line grammar. Secrets are never accepted as arguments: only files or environment.

use crate::backends::Locations;
use crate::locations::{MetadataUrl, RepositoryUrl};
use crate::settings::{spec, ServeArgs, Settings};
use clap::{Args, Parser, Subcommand, ValueEnum};
use polarbackup_model::TlsMode;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "polarbackup",
    version,
    about = "Database backups behind the PolarDB OpenAPI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server.
    #[command(after_long_help = crate::settings::SECRETS_HELP)]
    Serve(ServeCommand),
    /// Manage accounts, access keys and clusters (works while the server runs).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Restore a backup set, or a cluster as it was at an instant, into an empty directory, as
    /// a PostgreSQL data directory.
    Restore(RestoreArgs),
    /// Re-read stored backup sets and check every object (manifest, chunks, side files, the
    /// set's WAL) against its recorded size and checksum. A set found corrupt is marked
    /// unavailable (IsAvail "0", never restored from). Exits 0 when every set is good, 1
    /// otherwise, naming each corrupt set's object and reason.
    Verify(VerifyArgs),
}

/// `polarbackup serve`: its settings, and the one switch that is not a setting.
#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub settings: ServeArgs,
    /// For testing code against this server, never in production: `admin clock advance`
    /// may move the server's clock forward (schedules, retention, expiry) and `admin fault
    /// inject` may fail or slow its backups, through a socket in the data directory (0600)
    /// that only a server started with this flag opens. A flag only, never the environment or
    /// the config file, so it is always in plain sight on the command line.
    #[arg(long)]
    pub test_controls: bool,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("which").required(true).args(["backup_id", "cluster", "all"])
))]
pub struct VerifyArgs {
    /// One backup set (DescribeBackups' BackupId).
    #[arg(long)]
    pub backup_id: Option<String>,
    /// Every set of one cluster, its retained (detached) sets included.
    #[arg(long, value_name = "pc-…")]
    pub cluster: Option<String>,
    /// Every set of every cluster.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub data: LocationArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup set id (DescribeBackups' BackupId): the state the backup is consistent at.
    #[arg(
        long,
        required_unless_present = "cluster",
        conflicts_with_all = ["cluster", "recovery_time"]
    )]
    pub backup_id: Option<String>,
    /// The cluster to restore to a point in time (with --recovery-time).
    #[arg(long, value_name = "pc-…", requires = "recovery_time")]
    pub cluster: Option<String>,
    /// The instant to restore to, as RFC 3339 (2026-12-01T10:00:00Z), or `latest` for
    /// everything archived; it must lie in the recovery window.
    #[arg(long, value_name = "RFC3339|latest", requires = "cluster")]
    pub recovery_time: Option<String>,
    /// Where to write the data directory; must be absent or empty.
    #[arg(long)]
    pub target_dir: PathBuf,
    /// Put the tablespace from OLDDIR into NEWDIR instead (repeatable).
    #[arg(long, value_name = "OLDDIR=NEWDIR")]
    pub tablespace_mapping: Vec<String>,
    /// If the restore fails, keep what it wrote for inspection instead of removing it. It is
    /// never startable: global/pg_control is written only once every object was checked.
    #[arg(long)]
    pub keep_partial: bool,
    #[command(flatten)]
    pub data: LocationArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

/// How often automated backups are full (`--full-backup-every`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FullBackupEveryArg {
    /// The first automated backup of each ISO week (UTC); the others are incremental.
    Week,
    /// Every automated backup.
    Always,
}

impl FullBackupEveryArg {
    pub fn model(self) -> polarbackup_model::policy::FullBackupEvery {
        match self {
            Self::Week => polarbackup_model::policy::FullBackupEvery::Week,
            Self::Always => polarbackup_model::policy::FullBackupEvery::Always,
        }
    }
}

/// A cluster's own schedule of full backups (`admin cluster full-backup-every`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterFullBackupArg {
    /// The first automated backup of each ISO week (UTC); the others are incremental.
    Week,
    /// Every automated backup.
    Always,
    /// Whatever the serving server's --full-backup-every says.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RamModeArg {
    /// Denied calls get 403 Forbidden.RAM.
    Strict,
    /// Decisions are logged; every call is allowed.
    Soft,
    /// No evaluation; every call is allowed.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the installation is, as `serve` resolves it (flags, environment, config file,
/// defaults): `admin` and `restore` may run on another machine than the server.
#[derive(Debug, Args)]
pub struct LocationArgs {
    #[arg(long, global = true, help = format!(
        "TOML configuration file, as serve's; the environment and flags override it [env: {}]",
        crate::settings::CONFIG_ENV,
    ))]
    pub config: Option<PathBuf>,
    #[arg(long, global = true, help = spec::data_dir.help_with_env())]
    pub data_dir: Option<PathBuf>,
    #[arg(long, global = true, help = spec::metadata_url.help_with_env())]
    pub metadata_url: Option<MetadataUrl>,
    #[arg(long, global = true, help = spec::repository_url.help_with_env())]
    pub repository_url: Option<RepositoryUrl>,
    #[arg(long, global = true, help = spec::repository_key_file.help_with_env())]
    pub repository_key_file: Option<crate::settings::OptionalFile>,
}

impl LocationArgs {
    /// The settings these flags, the environment and the config file give, as `serve` would
    /// resolve them.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Settings::load(&ServeArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            metadata_url: self.metadata_url.clone(),
            repository_url: self.repository_url.clone(),
            repository_key_file: self.repository_key_file.clone(),
            ..ServeArgs::default()
        })
    }

    /// The installation's metadata store and repository.
    pub fn locations(&self) -> anyhow::Result<Locations> {
        Locations::from_settings(&self.settings()?)
    }
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Accounts (tenants).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Database clusters to back up.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// RAM users.
    #[command(subcommand)]
    User(UserCommand),
    /// RAM policies: custom ones, and attaching system or custom ones to users.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// RAM tools: simulate a decision, decode a denial's diagnostic message.
    #[command(subcommand)]
    Ram(RamCommand),
    /// Queue a manual backup of a Running cluster, full or incremental, for the workers of
    /// `polarbackup serve`; prints {"BackupJobId"} (with --wait, the job's outcome too).
    #[command(long_about = BACKUP_ABOUT)]
    Backup(BackupArgs),
    /// Copy an embedded installation's metadata (SQLite) into an empty PostgreSQL store, every
    /// id, key, policy, job and set as it was; prints the rows copied per table.
    #[command(long_about = MIGRATE_ABOUT)]
    MigrateMetadata(MigrateArgs),
    /// Re-seal every secret in the metadata store with a new master key, in one transaction;
    /// then give every server the new key. Prints {"KeyId", "AccessKeys", "ClusterPasswords"}.
    #[command(long_about = ROTATE_ABOUT)]
    RotateMasterKey {
        /// File holding the new key (32 raw bytes, or 64 hex digits or base64), mode 0600.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// A running `serve --test-controls` server's clock: move it forward, or show how far
    /// ahead it is. Refused by any other server.
    #[command(subcommand)]
    Clock(crate::test_controls::ClockCommand),
    /// Make a running `serve --test-controls` server's backups fail in a phase, or upload
    /// slowly. Refused by any other server.
    #[command(subcommand)]
    Fault(crate::test_controls::FaultCommand),
}

const BACKUP_ABOUT: &str = "\
Queue a manual backup of a Running cluster, as CreateBackup does, but of the kind asked for: \
`--type incremental` builds on the cluster's newest set whose whole chain is available (the \
worker chooses it when the job starts; with no usable set, or when the engine cannot build on \
it, the job takes a full backup and its set has no parent). It counts against the manual \
backup limit like CreateBackup (at most 3 manual sets, finished or in progress, per cluster).

The backup is run by the workers of `polarbackup serve` on this installation: with no server \
running, or one started with --workers 0, the job stays queued.

Prints one JSON object: {\"BackupJobId\"}. With --wait, polls the store until the job ends and \
prints {\"BackupJobId\", \"DBClusterId\", \"Kind\", \"Status\", \"FailureReason\", \"BackupSize\", \
\"StoredSize\", \"ParentBackupId\"} (ParentBackupId is null for a full set); exits 1 if the job \
failed or did not end within --timeout.";

const ROTATE_ABOUT: &str = "\
Re-seal every access-key secret and database password in the metadata store with a new \
master key, in one transaction, and record the new key's check value. The current key comes \
from where serve takes it (POLARBACKUP_MASTER_KEY, or master_key_file: by default master.key \
in the data directory); the new one only from a file, never a flag.

From then on the store opens only with the new key: put it where the servers take their key \
(replace master_key_file, or set POLARBACKUP_MASTER_KEY) and restart them. A server still \
holding the old key fails its signed requests until then, and refuses to start with it.

Make a key with: (umask 077; head -c 32 /dev/urandom > new.key)";

const MIGRATE_ABOUT: &str = "\
Copy an embedded installation's metadata (SQLite) into an empty PostgreSQL store, every id, \
key, policy, job and set as it was, so that servers can share it (serve --metadata-url \
postgres://…). A target that holds any data is refused.

Stop every server on the source first: what they write during the copy would be lost. The \
backups themselves stay where they are (the repository is not copied).

The target's password, like any metadata store's, never comes from a flag: give it in \
PGPASSWORD, or leave out --to and give the whole URL in POLARBACKUP_METADATA_URL or as \
metadata_url in the config file (mode 0600).

Prints one JSON object: {\"From\", \"To\", \"Tables\": {TABLE: ROWS…}}.";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite store to copy [default: the data directory's, sqlite://metadata.sqlite].
    #[arg(long, value_name = "sqlite://PATH")]
    pub from: Option<MetadataUrl>,
    /// The empty PostgreSQL store to fill, without a password [default: the metadata_url
    /// setting: POLARBACKUP_METADATA_URL or the config file].
    #[arg(long, value_name = "postgres://USER@HOST:PORT/DB")]
    pub to: Option<MetadataUrl>,
    #[arg(long, help = format!(
        "TOML configuration file, as serve's; the environment and flags override it [env: {}]",
        crate::settings::CONFIG_ENV,
    ))]
    pub config: Option<PathBuf>,
    #[arg(long, help = spec::data_dir.help_with_env())]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The cluster's DBClusterId.
    #[arg(long, value_name = "pc-…")]
    pub cluster: String,
    /// What to take.
    #[arg(long = "type", value_enum, default_value_t = BackupTypeArg::Full)]
    pub kind: BackupTypeArg,
    /// Wait until the job ends and print its outcome; exit 1 if it failed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: seconds to wait before giving up waiting (the job goes on in the server).
    #[arg(long, default_value_t = 3600, requires = "wait")]
    pub timeout: u64,
    #[command(flatten)]
    pub data: LocationArgs,
}

/// `admin backup --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupTypeArg {
    /// A full copy of the cluster.
    Full,
    /// Only what changed since the cluster's newest usable set (its parent).
    Incremental,
}

impl BackupTypeArg {
    pub fn kind(self) -> polarbackup_model::BackupKind {
        match self {
            Self::Full => polarbackup_model::BackupKind::Full,
            Self::Incremental => polarbackup_model::BackupKind::Incremental,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a RAM user; prints {"UserId": ..., "UserName": ...}.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        data: LocationArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a custom policy from a JSON document (validated).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        document_file: PathBuf,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// Attach a system policy (by name) or one of the account's custom policies to a user.
    Attach {
        #[arg(long)]
        user: String,
        #[arg(long)]
        policy: String,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// Detach a policy from a user.
    Detach {
        #[arg(long)]
        user: String,
        #[arg(long)]
        policy: String,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// List the account's custom policies and the system policies.
    List {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        data: LocationArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RamCommand {
    /// Evaluate a call as a user would make it; prints the decision and the deciding statements.
    Simulate {
        #[arg(long)]
        user: String,
        /// e.g. polardb:CreateBackup
        #[arg(long)]
        action: String,
        /// e.g. acs:polardb:cn-hangzhou:ACCOUNT:dbcluster/pc-...
        #[arg(long)]
        resource: String,
        /// Request context, e.g. acs:SourceIp=10.0.0.1 (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        context: Vec<String>,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// Explain a denial's EncodedDiagnosticMessage (checked against this server's key).
    DecodeDiagnostic {
        #[arg(long)]
        message: String,
        #[command(flatten)]
        data: LocationArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints {"AccountId": ...}.
    Create {
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: LocationArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key for an account (unrestricted) or a RAM user; the secret is printed
    /// only now.
    Create {
        #[arg(long, required_unless_present = "user", conflicts_with = "user")]
        account: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// Register an RSA public key (PEM file, SubjectPublicKeyInfo or PKCS#1) instead of
        /// making a secret: requests must then be signed ACS3-RSA-SHA256 with its private key.
        #[arg(long, value_name = "PEM_FILE")]
        rsa_public_key_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// Disable a key: requests signed with it are refused.
    Disable {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        data: LocationArgs,
    },
    /// Enable a disabled key again.
    Enable {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        data: LocationArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Postgresql,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Register a database cluster; prints {"DBClusterId": ...}.
    Create(ClusterCreateArgs),
    /// Delete (release) a cluster, keeping backup sets as its retention says; prints
    /// {"DBClusterId", "Retention", "Status", "KeptBackupIds", "DeletedBackupIds"}.
    #[command(long_about = DELETE_ABOUT)]
    Delete(ClusterDeleteArgs),
    /// Set how often a Running cluster's automated backups are full: `week` (the first of
    /// each ISO week, UTC; the others incremental), `always`, or `default` (the server's
    /// --full-backup-every); prints {"DBClusterId", "FullBackupEvery"}.
    FullBackupEvery(ClusterFullBackupArgs),
}

#[derive(Debug, Args)]
pub struct ClusterFullBackupArgs {
    /// The cluster's DBClusterId.
    #[arg(long)]
    pub cluster: String,
    #[arg(value_enum)]
    pub every: ClusterFullBackupArg,
    #[command(flatten)]
    pub data: LocationArgs,
}

const DELETE_ABOUT: &str = "\
Delete (release) a cluster. Refused while one of its backup jobs is queued or running.

ALL keeps every finished backup set, detached: it never expires and DescribeDetachedBackups
lists it. NONE deletes every set (this command removes their data). LATEST first takes a final
backup (a TempBackupTask, shown by DescribeBackupTasks while the cluster is Deleting) and then
keeps only that one; if the final backup fails, the cluster is Running again and nothing is
deleted.

The final backup is run by the workers of `polarbackup serve` on this data directory: with no
server running, or one started with --workers 0, this command just waits (up to --timeout).

Prints one JSON object: {\"DBClusterId\", \"Retention\", \"Status\", \"KeptBackupIds\",
\"DeletedBackupIds\"} (and \"TempBackupJobId\" for LATEST).";

#[derive(Debug, Args)]
pub struct ClusterDeleteArgs {
    /// The cluster's DBClusterId.
    #[arg(long)]
    pub cluster: String,
    /// What happens to the cluster's backup sets [default: the cluster's
    /// BackupRetentionPolicyOnClusterDeletion].
    #[arg(long, value_enum, ignore_case = true)]
    pub retention: Option<RetentionArg>,
    /// LATEST: return once the final backup is queued; the server finishes the deletion.
    #[arg(long)]
    pub no_wait: bool,
    /// LATEST: seconds to wait for the final backup before giving up waiting (the deletion
    /// goes on in the server).
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    #[command(flatten)]
    pub data: LocationArgs,
}

/// `BackupRetentionPolicyOnClusterDeletion`, as DeleteDBCluster takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetentionArg {
    /// Keep every finished set, detached (never expiring).
    #[value(name = "ALL")]
    All,
    /// Take a final backup and keep only it.
    #[value(name = "LATEST")]
    Latest,
    /// Delete every set.
    #[value(name = "NONE")]
    None,
}

#[derive(Debug, Args)]
pub struct ClusterCreateArgs {
    #[arg(long)]
    pub account: String,
    #[arg(long)]
    pub region: String,
    #[arg(long, value_enum)]
    pub engine: Engine,
    #[arg(long)]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    #[arg(long)]
    pub user: String,
    /// File holding the database password (or set POLARBACKUP_CLUSTER_PASSWORD).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    #[arg(long)]
    pub database: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// TLS to the database, as libpq's sslmode: disable, prefer (encrypt if offered, no
    /// certificate check), require (encrypt, no check), verify-full (check chain and host name).
    #[arg(long, value_enum, default_value_t = TlsArg::Prefer)]
    pub tls: TlsArg,
    /// CA certificates (PEM) for --tls verify-full [default: the system's].
    #[arg(long)]
    pub tls_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub data: LocationArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsArg {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl From<TlsArg> for TlsMode {
    fn from(arg: TlsArg) -> Self {
        match arg {
            TlsArg::Disable => TlsMode::Disable,
            TlsArg::Prefer => TlsMode::Prefer,
            TlsArg::Require => TlsMode::Require,
            TlsArg::VerifyFull => TlsMode::VerifyFull,
        }
    }
}
