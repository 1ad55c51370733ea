//! Opens the metadata store and the backup repository that the settings name: the one place
//! the binary picks a backend, so `serve`, `admin` and `restore` always agree.

use crate::config;
use crate::locations::{Metadata, PgLocation};
use crate::settings::Settings;
use anyhow::{anyhow, bail, Context, Result};
use polarbackup_repo::{Repo, RepoConfig, RepoKey, RepoUrl, S3Credentials};
use polarbackup_store::{
    MasterKey, MigrationReport, PgOptions, PgStore, SealReport, SqliteStore, Store, StoreError,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The metadata store and repository of one installation, resolved against its data
/// directory, with their secrets.
#[derive(Debug, Clone)]
pub struct Locations {
    pub data_dir: PathBuf,
    pub metadata: Metadata,
    /// For `Metadata::Postgres`.
    pub pool_size: usize,
    pub repository: RepoUrl,
    /// For an `s3://` repository (always given then); `Debug` hides the secret.
    pub s3_credentials: Option<S3Credentials>,
    /// Set: the repository is encrypted with this key (`repository_key_file`).
    pub repository_key: Option<RepoKey>,
    /// Where the master key that seals the store's secrets comes from.
    pub master_key: KeySource,
}

/// The master key's source: the environment (already read), or a file read when the store is
/// opened (a relative one, in the data directory, is made then). `Debug` shows no key.
#[derive(Clone)]
pub enum KeySource {
    Env(Arc<MasterKey>),
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(key) => write!(f, "Env({})", key.id()),
            Self::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl Locations {
    /// The checked settings' locations; relative paths are in the data directory, and a
    /// PostgreSQL password not in the URL comes from `PGPASSWORD` or the config file.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let data_dir = settings.data_dir.clone();
        let metadata = match settings
            .metadata_url
            .parse()
            .map_err(|e| anyhow!("metadata_url {:?}: {e}", settings.metadata_url))?
        {
            Metadata::Sqlite(path) => Metadata::Sqlite(data_dir.join(path)),
            Metadata::Postgres(mut pg) => {
                if pg.password.is_none() {
                    pg.password = settings
                        .secrets
                        .metadata_password
                        .as_ref()
                        .map(|s| s.expose().to_owned());
                }
                Metadata::Postgres(pg)
            }
        };
        let repository = match settings
            .repository_url
            .parse()
            .map_err(|e| anyhow!("repository_url {:?}: {e}", settings.repository_url))?
        {
            RepoUrl::File(path) => RepoUrl::File(data_dir.join(path)),
            s3 @ RepoUrl::S3 { .. } => s3,
        };
        let s3_credentials = match &repository {
            RepoUrl::File(_) => None,
            RepoUrl::S3 { .. } => Some(s3_credentials(settings)?),
        };
        let master_key = match &settings.secrets.master_key {
            Some(text) => KeySource::Env(Arc::new(
                MasterKey::from_text(text.expose()).context("POLARBACKUP_MASTER_KEY")?,
            )),
            None => KeySource::File(settings.master_key_file.clone()),
        };
        let repository_key = match &settings.repository_key_file.0 {
            Some(file) => Some(crate::config::repository_key(&data_dir.join(file))?),
            None => None,
        };
        Ok(Self {
            repository_key,
            data_dir,
            metadata,
            pool_size: settings.metadata_pool_size,
            repository,
            s3_credentials,
            master_key,
        })
    }

    /// The master key, read (or, in the data directory, made) now.
    pub fn master_key(&self) -> Result<Arc<MasterKey>> {
        match &self.master_key {
            KeySource::Env(key) => Ok(Arc::clone(key)),
            KeySource::File(file) => {
                if file.is_relative() {
                    make_data_dir(&self.data_dir)?;
                }
                Ok(Arc::new(config::master_key(&self.data_dir, file, None)?))
            }
        }
    }

    /// The metadata store, migrated to the current schema, sealing its secrets with the
    /// master key (refused when the store was sealed with another).
    pub fn open_store(&self) -> Result<Arc<dyn Store>> {
        let key = self.master_key()?;
        Ok(match &self.metadata {
            Metadata::Sqlite(path) => Arc::new(open_sqlite(path, key)?),
            Metadata::Postgres(pg) => Arc::new(open_postgres(pg, self.pool_size, key)?),
        })
    }

    /// Re-seals every secret of the store with `new` (one transaction); the store must open
    /// with the current key first.
    pub fn rotate_master_key(&self, new: Arc<MasterKey>) -> Result<SealReport> {
        let key = self.master_key()?;
        Ok(match &self.metadata {
            Metadata::Sqlite(path) => open_sqlite(path, key)?.rotate_master_key(new)?,
            Metadata::Postgres(pg) => {
                open_postgres(pg, self.pool_size, key)?.rotate_master_key(new)?
            }
        })
    }

    /// The backup repository; a local one is made private (0700/0600) first, whatever an
    /// earlier version or the umask left.
    pub fn open_repo(&self) -> Result<Repo> {
        if let RepoUrl::File(path) = &self.repository {
            crate::private::tighten(path)?;
        }
        let repo = Repo::open_url(
            &self.repository,
            self.s3_credentials.as_ref(),
            RepoConfig::default(),
        )
        .with_context(|| format!("opening the backup repository {}", self.repository))?;
        Ok(match &self.repository_key {
            Some(key) => repo.with_key(key.clone()),
            None => repo,
        })
    }

    /// Where the metadata is, for logs and messages (no password).
    pub fn metadata_shown(&self) -> String {
        match &self.metadata {
            Metadata::Sqlite(path) => format!("sqlite://{}", path.display()),
            Metadata::Postgres(pg) => format!(
                "postgres://{}@{}:{}/{}",
                pg.user,
                host_shown(&pg.host),
                pg.port,
                pg.dbname
            ),
        }
    }

    /// Where the backups are, for logs and messages.
    pub fn repository_shown(&self) -> String {
        self.repository.to_string()
    }
}

/// The key pair of an `s3://` repository, from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` or the config file. Both are required: the repository crate would
/// send unsigned requests without them, which no backup bucket should accept.
fn s3_credentials(settings: &Settings) -> Result<S3Credentials> {
    let secrets = &settings.secrets;
    match (&secrets.aws_access_key_id, &secrets.aws_secret_access_key) {
        (Some(id), Some(secret)) => Ok(S3Credentials::new(id.expose(), secret.expose())),
        (id, secret) => bail!(
            "an s3:// repository needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (in the \
             environment or the config file); missing: {}",
            [
                ("AWS_ACCESS_KEY_ID", id.is_none()),
                ("AWS_SECRET_ACCESS_KEY", secret.is_none())
            ]
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
        ),
    }
}

fn host_shown(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// An SQLite store in the file `path`, sealing with `key`.
pub fn open_sqlite(path: &Path, key: Arc<MasterKey>) -> Result<SqliteStore> {
    SqliteStore::open_file(path)
        .and_then(|s| s.with_master_key(key))
        .with_context(|| format!("opening the metadata store {}", path.display()))
}

/// A PostgreSQL store (connected, migrated), as the binary's settings describe it.
pub fn open_postgres(pg: &PgLocation, pool_size: usize, key: Arc<MasterKey>) -> Result<PgStore> {
    PgStore::open(&pg_options(pg, pool_size))
        .and_then(|s| s.with_master_key(key))
        .with_context(|| {
            format!(
                "opening the metadata store postgres://{}@{}:{}/{}",
                pg.user,
                host_shown(&pg.host),
                pg.port,
                pg.dbname
            )
        })
}

fn pg_options(pg: &PgLocation, pool_size: usize) -> PgOptions {
    let mut options = PgOptions::new(&pg.host, pg.port, &pg.user, &pg.dbname);
    options.password = pg.password.clone();
    options.tls_mode = pg.tls_mode;
    options.tls_ca_file = pg.tls_ca_file.clone();
    options.pool_size = pool_size;
    options.connect_timeout = pg.connect_timeout;
    options
}

/// Copies `source` into the empty PostgreSQL store `pg` (ids kept); a store that holds
/// anything is refused and nothing is copied.
pub fn migrate_to_postgres(
    source: &SqliteStore,
    pg: &PgLocation,
    pool_size: usize,
    key: Arc<MasterKey>,
) -> Result<MigrationReport> {
    let target = open_postgres(pg, pool_size, key)?;
    match polarbackup_store::migrate_metadata(source, &target) {
        Err(StoreError::NotEmpty { what }) => bail!(
            "the target postgres://{}@{}:{}/{} already holds metadata ({what}): \
             migrate-metadata fills only an empty store, and copied nothing",
            pg.user,
            host_shown(&pg.host),
            pg.port,
            pg.dbname
        ),
        other => Ok(other?),
    }
}

/// The data directory, made private (0700) when missing, and everything in it made private
/// when not (an earlier version left it 0755): it holds keys, metadata and, by default, the
/// repository.
pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    make_data_dir(dir)?;
    crate::private::tighten(dir)
}

/// The data directory, made private (0700) when missing.
fn make_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    Ok(())
}
