//! Prometheus metrics: what the API records per request, what a scrape samples from the
//! store and the workers, and the text exposition (prometheus-client's encoder, the only one
//! in the project).
//!
//! Request counters and the latency histogram live in [`Metrics`] and are updated as calls
//! are answered. Everything else (per-cluster backups, jobs, WAL, recovery window, workers) is
//! read fresh at each scrape through a [`Sampler`], so a scrape never shows a value the store
//! no longer holds and nothing has to be kept in step with it.

mod sample;

pub use sample::{ClusterSample, LastBackup, Sampler, Snapshot, WorkerSample};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `Content-Type` of what [`Metrics::render`] returns (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: &'static str,
    code: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// The label of a call whose action is not one the API knows: client-chosen strings never
/// become label values, so a caller cannot grow the number of series.
pub const UNKNOWN_ACTION: &str = "unknown";

/// The `code` label of an answered call.
pub const SUCCESS: &str = "Success";

/// The server's metrics. One per process; shared by the API (which records requests) and the
/// metrics listener (which renders).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ActionLabel, Histogram>,
    /// One scrape samples the store at a time; a second waits rather than doubling the reads.
    rendering: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the request metrics and, sampled at each scrape, what `sampler` reads.
    pub fn new(sampler: Arc<dyn Sampler>) -> Self {
        let mut registry = Registry::with_prefix("polarbackup");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "API calls answered, by action and PolarDB error code (Success when none)",
            requests.clone(),
        );
        // 0.5 ms to ~4 s: a DescribeBackupTasks answers in about a millisecond, a slow store
        // in seconds.
        let latency = Family::<ActionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "api_request_duration_seconds",
            "Time from a call's arrival to its answer, by action",
            latency.clone(),
        );
        registry.register_collector(Box::new(sample::Collected(sampler)));
        Self {
            registry,
            requests,
            latency,
            rendering: Mutex::new(()),
        }
    }

    /// Records one answered call. `action` is the action's name when the API knows it (any
    /// other string is recorded as [`UNKNOWN_ACTION`] by the caller), `code` the PolarDB error
    /// code or [`SUCCESS`].
    pub fn observe_request(
        &self,
        action: Option<&'static str>,
        code: Cow<'static, str>,
        elapsed: Duration,
    ) {
        let action = action.unwrap_or(UNKNOWN_ACTION);
        // Labels borrow the static names (or take an error code's String as it is): no
        // allocation per answered call.
        self.requests
            .get_or_create(&RequestLabels { action, code })
            .inc();
        self.latency
            .get_or_create(&ActionLabel { action })
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition, sampling the store and the workers now. Blocks on the store's reads:
    /// call it off the async threads.
    pub fn render(&self) -> String {
        let _one = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing into a String fails only if an encoder does, which ours never do.
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests;
