//! A thin async client for PostgreSQL's replication protocol: BASE_BACKUP and physical WAL streaming.
//!
//! tokio-postgres cannot run replication commands (no `replication` startup parameter, no
//! CopyBoth, extended protocol only), so this module frames messages itself on top of
//! `postgres-protocol` and speaks the simple query protocol that walsenders require.

mod auth;
mod base_backup;
mod config;
mod conn;
mod error;
mod frame;
mod query;
mod stream;
mod tls;
mod wal_stream;
mod wal_writer;

pub use base_backup::{BackupEvent, BaseBackupOptions, BaseBackupStream, TablespaceInfo};
pub use config::{ConnectConfig, PgHost, TlsMode};
pub use conn::{open_transport, ReplicationConn, SlotInfo, SystemInfo};
pub use error::PgError;
pub use polarbackup_model::lsn::{wal_file_name, Lsn, ParseLsnError};
pub use query::ResultSet;
pub use stream::PgStream;
pub use wal_stream::{WalEvent, WalStream};
pub use wal_writer::WalSegmentWriter;

#[cfg(test)]
mod tests;
