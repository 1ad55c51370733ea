//! The storage behind a `RepoUrl`: a local directory, or an S3 bucket through opendal with
//! retries (jittered exponential backoff, bounded) and timeouts on every request.
//!
//! The S3 client reads no environment, profile or instance metadata: what it uses is in the
//! URL and the `S3Credentials`, so what a server talks to is what its settings say.

use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use crate::url::{RepoUrl, S3Credentials};
use crate::{RepoConfig, RepoError};

/// Bound on a request without a body (stat, delete, the start and end of a multipart upload).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on each step of a transfer (one read of a body, one part sent): a large upload
/// takes as long as it needs as long as it keeps moving.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a failed request that may succeed again (network errors, timeouts, 5xx, 429).
pub const MAX_RETRIES: usize = 6;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);

impl RepoUrl {
    /// The bare storage service at this location, without the layers `Repo::open_url` adds
    /// (`remote_layers`); for tests that put a layer of their own underneath them.
    pub fn storage(&self, creds: Option<&S3Credentials>) -> Result<Operator, RepoError> {
        match self {
            RepoUrl::File(path) => {
                let root = path.to_str().ok_or_else(|| {
                    RepoError::InvalidConfig(format!("repository path {path:?} is not UTF-8"))
                })?;
                Operator::new(opendal::services::Fs::default().root(root))
                    .map_err(|e| RepoError::storage(root, e))
            }
            RepoUrl::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => s3(bucket, prefix, endpoint.as_deref(), region, creds),
        }
    }
}

fn s3(
    bucket: &str,
    prefix: &str,
    endpoint: Option<&str>,
    region: &str,
    creds: Option<&S3Credentials>,
) -> Result<Operator, RepoError> {
    let mut builder = opendal::services::S3::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"))
        .region(region)
        .disable_config_load()
        .disable_ec2_metadata();
    builder = match endpoint {
        // Custom endpoints (SeaweedFS, MinIO) are addressed by path; opendal's default.
        Some(endpoint) => builder.endpoint(endpoint),
        // AWS itself wants the bucket in the host name.
        None => builder.enable_virtual_host_style(),
    };
    builder = match creds {
        Some(c) => builder
            .access_key_id(&c.access_key_id)
            .secret_access_key(&c.secret_access_key),
        // Unsigned requests, for a server that allows them.
        None => builder.skip_signature(),
    };
    let op =
        Operator::new(builder).map_err(|e| RepoError::storage(&format!("s3://{bucket}"), e))?;
    install_crypto_provider();
    let transport = HttpTransporter::new(ReqwestTransport::default());
    let ctx = op.context().with_http_transport(transport);
    Ok(op.with_context(ctx))
}

/// reqwest's TLS is rustls without a built-in provider: ring, unless the process chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is in place either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The layers every remote repository runs under: a timeout on each request, then retries of
/// the failures that may pass (each attempt timed on its own).
pub fn remote_layers(op: Operator) -> Operator {
    op.layer(
        TimeoutLayer::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_io_timeout(IO_TIMEOUT),
    )
    .layer(
        RetryLayer::new()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(RETRY_MIN_DELAY)
            .with_max_delay(RETRY_MAX_DELAY)
            .with_max_times(MAX_RETRIES),
    )
}

/// The layer a local repository runs under: each call bounded by `local_timeout`, so a hung
/// file system fails the call. No retries: a local failure does not pass by itself.
pub fn local_layers(op: Operator, cfg: &RepoConfig) -> Operator {
    op.layer(
        TimeoutLayer::new()
            .with_timeout(cfg.local_timeout)
            .with_io_timeout(cfg.local_timeout),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_operators_are_built_without_touching_the_network() {
        let url: RepoUrl = "s3://bucket/some/prefix?endpoint=http://127.0.0.1:1&region=r1"
            .parse()
            .unwrap();
        let creds = S3Credentials::new("AKIAEXAMPLE", "hunter2secret");
        let op = remote_layers(url.storage(Some(&creds)).unwrap());
        let info = op.info();
        assert_eq!(info.name(), "bucket");
        assert_eq!(info.root(), "/some/prefix/");
        let shown = format!("{info:?} {op:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        let aws: RepoUrl = "s3://bucket".parse().unwrap();
        aws.storage(None).unwrap();
    }
}
