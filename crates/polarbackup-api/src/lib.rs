//! The only crate that knows HTTP: the listener, routes, request reading, authentication,
//! dispatch, rendering.

mod authn;
mod authz;
mod front_door;
mod handlers;
pub mod http;
mod released;

use axum::routing::get;
use axum::Router;
use jiff::SignedDuration;
use polarbackup_model::Clock;
use polarbackup_store::Store;
use std::sync::Arc;

pub use authz::RamMode;
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
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ApiConfig>,
    /// Wakes the workers when a job is queued or a set is marked for deletion. The API never
    /// runs a backup itself: it records the work and returns.
    pub work_available: Arc<tokio::sync::Notify>,
}

/// The whole HTTP surface: `/healthz` and the RPC endpoint on every other path.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(front_door::healthz))
        .fallback(front_door::rpc)
        .with_state(state)
}
