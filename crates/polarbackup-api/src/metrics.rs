//! `GET /metrics` on the metrics listener: the exposition, rendered off the async threads.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use polarbackup_metrics::Metrics;
use std::sync::Arc;

pub(crate) async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, polarbackup_metrics::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response(),
    }
}
