//! The only crate that knows HTTP: routes, request reading, authentication, dispatch, rendering.

mod authn;
mod front_door;
mod handlers;

use axum::routing::get;
use axum::Router;
use jiff::SignedDuration;
use polarbackup_model::Clock;
use polarbackup_store::Store;
use std::sync::Arc;

/// Settings of the front door.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `HostId` in error bodies.
    pub host_id: String,
    /// How long Finished and Failed jobs stay listed by DescribeBackupTasks.
    pub job_history: SignedDuration,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// How long a client may take to send its body.
    pub body_timeout: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            host_id: "polardb.aliyuncs.com".into(),
            job_history: SignedDuration::from_hours(7 * 24),
            body_limit: 1024 * 1024,
            body_timeout: std::time::Duration::from_secs(30),
        }
    }
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
