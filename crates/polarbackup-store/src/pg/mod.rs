//! The PostgreSQL implementation of [`Store`], shared by every server of a fleet. Every method
//! is one transaction on a pooled connection; writes run SERIALIZABLE and are retried whole on
//! a serialization failure or deadlock, so SQLite's read-then-write logic holds across
//! servers.

mod caller;
mod clusters;
mod jobs;
mod migrations;
mod nonces;
mod policies;
mod pool;
mod ram;
pub(crate) mod secrets;
mod sets;
mod tenants;
mod tls;
mod wal;

use crate::rows::Fields;
use crate::rules::NoncePurge;
use crate::sealing::Sealer;
use crate::{Result, Store, StoreError};
use polarbackup_model::TlsMode;
use pool::{Conn, Pool};
use postgres::{Client, IsolationLevel, Transaction};
use rand::Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to connect. The password never appears in `Debug`.
#[derive(Clone)]
pub struct PgOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub tls_mode: TlsMode,
    pub tls_ca_file: Option<PathBuf>,
    /// Connections (and the threads that own them).
    pub pool_size: usize,
    pub connect_timeout: Duration,
}

impl PgOptions {
    /// No password, TLS `prefer`, 8 connections, a 10 s connect timeout.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        dbname: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            password: None,
            dbname: dbname.into(),
            tls_mode: TlsMode::Prefer,
            tls_ca_file: None,
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A pool of connections to one PostgreSQL database holding polarbackup's metadata.
pub struct PgStore {
    pool: Pool,
    target: String,
    nonce_purge: NoncePurge,
    sealer: Sealer,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// How often a transaction that lost a serialization race is run again before giving up.
const MAX_ATTEMPTS: u32 = 50;

impl PgStore {
    /// Connects (checking the options on one connection at once), migrates the schema and
    /// starts the pool.
    pub fn open(options: &PgOptions) -> Result<PgStore> {
        let mut config = postgres::Config::new();
        config
            .host(&options.host)
            .port(options.port)
            .user(&options.user)
            .dbname(&options.dbname)
            .application_name("polarbackup")
            .connect_timeout(options.connect_timeout)
            .ssl_mode(tls::ssl_mode(options.tls_mode));
        if let Some(p) = &options.password {
            config.password(p);
        }
        let make_tls = tls::MakeRustls(tls::client_config(
            options.tls_mode,
            options.tls_ca_file.as_deref(),
        )?);
        let connect: pool::Connect = Arc::new(move || Ok(config.connect(make_tls.clone())?));
        let pool = Pool::start(options.pool_size, Arc::clone(&connect))?;
        let store = PgStore {
            pool,
            target: format!(
                "{}@{}:{}/{}",
                options.user, options.host, options.port, options.dbname
            ),
            nonce_purge: NoncePurge::default(),
            sealer: Sealer::default(),
        };
        store.pool.run(|conn| migrations::apply(conn.client()?))?;
        Ok(store)
    }

    /// Runs `f` in one SERIALIZABLE transaction, again (after a short random pause) as long as
    /// it loses to a concurrent one.
    pub(crate) fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.pool.run(move |conn| {
            retrying(|| {
                let mut tx = conn
                    .client()?
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()?;
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            })
        })
    }

    /// Runs `f` on a connection outside any explicit transaction: for one statement.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.pool.run(move |conn| f(conn.client()?))
    }

    /// Runs `f` in one read-only snapshot (REPEATABLE READ), for reads of several statements.
    fn snapshot<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.pool.run(move |conn: &mut Conn| {
            let mut tx = conn
                .client()?
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// Runs `attempt` until it succeeds, fails for good, or loses [`MAX_ATTEMPTS`] races.
fn retrying<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut n = 0;
    loop {
        match attempt() {
            Err(e) if e.is_transient() && n + 1 < MAX_ATTEMPTS => {
                n += 1;
                // 1 ms doubling to 32 ms, jittered so the racers spread out.
                let cap = 1u64 << n.min(5);
                let ms = rand::thread_rng().gen_range(0..=cap * 1000);
                std::thread::sleep(Duration::from_micros(ms));
            }
            other => return other,
        }
    }
}

impl Fields for postgres::Row {
    type Error = StoreError;
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn corrupt(what: &str, value: &str) -> StoreError {
        StoreError::Corrupt(format!("bad {what}: {value:?}"))
    }
}

impl Store for PgStore {
    fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.simple_query("SELECT 1").map(|_| ())?))
    }

    fn caller_records(
        &self,
        key: &polarbackup_model::AccessKeyId,
        cluster: Option<&polarbackup_model::DbClusterId>,
    ) -> Result<Option<crate::CallerRecords>> {
        self.snapshot_caller_records(key, cluster)
    }
}

/// A statement's parameters.
type Params<'a> = &'a [&'a (dyn postgres::types::ToSql + Sync)];

/// The row a query returns, if any, decoded.
fn opt<T>(
    c: &mut impl postgres::GenericClient,
    sql: &str,
    params: Params<'_>,
    decode: fn(&postgres::Row) -> Result<T>,
) -> Result<Option<T>> {
    c.query_opt(sql, params)?.as_ref().map(decode).transpose()
}

/// Every row a query returns, decoded.
fn all<T>(
    c: &mut impl postgres::GenericClient,
    sql: &str,
    params: Params<'_>,
    decode: fn(&postgres::Row) -> Result<T>,
) -> Result<Vec<T>> {
    c.query(sql, params)?.iter().map(decode).collect()
}

/// Whether a query returns a row.
fn exists(c: &mut impl postgres::GenericClient, sql: &str, params: Params<'_>) -> Result<bool> {
    Ok(c.query_opt(sql, params)?.is_some())
}
