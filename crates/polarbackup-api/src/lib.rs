//! The only crate that knows HTTP: the listener, routes, request reading, authentication,
//! dispatch, rendering.

mod authn;
mod authz;
mod clusters;
mod console;
mod download;
mod front_door;
mod handlers;
mod headers;
pub mod http;
mod log_backups;
mod metrics;
mod parse_errors;
mod released;
mod request_id;

use axum::routing::get;
use axum::Router;
use jiff::SignedDuration;
use polarbackup_model::{Clock, WalObject};
use polarbackup_store::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use authz::RamMode;
pub use front_door::ACCESS_LOG_TARGET;
pub use http::HttpSettings;

/// RAM enforcement settings.
#[derive(Clone)]
pub struct RamConfig {
    pub mode: RamMode,
    /// Authenticates `EncodedDiagnosticMessage`s; only `admin ram decode-diagnostic` reads it.
    pub diagnostic_key: DiagnosticKey,
}

/// A secret that never shows in Debug output or logs.
#[derive(Clone)]
pub struct DiagnosticKey(pub Vec<u8>);

impl DiagnosticKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for DiagnosticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiagnosticKey(<redacted>)")
    }
}

impl std::fmt::Debug for RamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RamConfig")
            .field("mode", &self.mode)
            .field("diagnostic_key", &self.diagnostic_key)
            .finish()
    }
}

/// Signs the download links of archived WAL; never shows in Debug output or logs.
#[derive(Clone)]
pub struct LinkSecret(pub Vec<u8>);

impl LinkSecret {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(<redacted>)")
    }
}

/// Download links of archived WAL (`DownloadLink` in DescribeBackupLogs and
/// DescribeBackupLogDownloadLinks).
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub secret: LinkSecret,
    /// How long DescribeBackupLogs' links work, and DescribeBackupLogDownloadLinks' when the
    /// call gives no `ExpireHours`.
    pub lifetime: SignedDuration,
}

impl LinkConfig {
    /// The lifetime `serve` uses.
    pub const LIFETIME: SignedDuration = SignedDuration::from_hours(1);
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads archived WAL for download links. The binary implements it with the repository, so
/// this crate does not depend on it.
pub trait LogReader: Send + Sync {
    /// The raw bytes of a recorded WAL object, checked against its recorded size and digest;
    /// the error is for the log, never for the client.
    fn read<'a>(&'a self, object: &'a WalObject) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// Settings of the front door. The binary fills in its settings; the limits on reading a
/// request body are fixed here.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `HostId` in error bodies.
    pub host_id: String,
    /// The region assumed in RAM resource names for clusters the caller does not have.
    pub region: String,
    /// How long Finished and Failed jobs stay listed by DescribeBackupTasks.
    pub job_history: SignedDuration,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// How long a client may take to send its body.
    pub body_timeout: std::time::Duration,
    pub ram: RamConfig,
    pub links: LinkConfig,
}

impl ApiConfig {
    /// The body limit `serve` uses: PolarDB's calls are small.
    pub const BODY_LIMIT: usize = 1024 * 1024;
    /// The body deadline `serve` uses.
    pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
}

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The service's time: job times, schedules, job history, download links' expiry.
    pub clock: Arc<dyn Clock>,
    /// The caller's time: the signature's timestamp window, nonces and RAM's
    /// `acs:CurrentTime`. SDKs sign with the real time, so this is the wall clock even when
    /// `clock` was moved forward (`serve --test-controls`).
    pub request_clock: Arc<dyn Clock>,
    pub config: Arc<ApiConfig>,
    /// Wakes the workers when a job is queued or a set is marked for deletion. The API never
    /// runs a backup itself: it records the work and returns.
    pub work_available: Arc<tokio::sync::Notify>,
    /// What download links serve.
    pub logs: Arc<dyn LogReader>,
    /// Where answered calls are counted (`--metrics-listen`); `None`: not counted.
    pub metrics: Option<Arc<polarbackup_metrics::Metrics>>,
}

/// The whole HTTP surface: `/healthz`, the download links, the web console (`/console`), and
/// the RPC endpoint on every other path.
pub fn router(state: AppState) -> Router {
    let downloads = format!("{}{{id}}", polarbackup_wire::download_link::PATH_PREFIX);
    Router::new()
        .route("/healthz", get(front_door::healthz))
        .route(&downloads, get(download::backup_log))
        .merge(console::routes())
        .fallback(front_door::rpc)
        .with_state(state)
}
