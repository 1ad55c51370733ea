//! `polarbackup-bench-bare`: a bare hyper HTTP/1.1 server that answers every request with one
//! fixed body and does nothing else, the limit the API is measured against. It runs on tokio's
//! multi-threaded runtime with hyper's HTTP/1 connection code, as `serve` does, and prints
//! `{"Listening": "ADDR"}` as `serve` does.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

#[derive(Parser)]
#[command(about = "A bare HTTP server answering one fixed body, for API benchmarks")]
struct Args {
    /// `HOST:PORT` to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The body every response carries (e.g. a DescribeBackupTasks answer the benchmark saved).
    #[arg(long, value_name = "FILE")]
    body: std::path::PathBuf,
    #[arg(long, default_value = "application/json;charset=utf-8")]
    content_type: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let body = Bytes::from(
        std::fs::read(&args.body).with_context(|| format!("read {}", args.body.display()))?,
    );
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!(
        "{}",
        serde_json::json!({ "Listening": listener.local_addr()?.to_string() })
    );
    let content_type = hyper::header::HeaderValue::from_str(&args.content_type)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (body, content_type) = (body.clone(), content_type.clone());
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let mut resp = hyper::Response::new(Full::new(body.clone()));
                resp.headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, content_type.clone());
                async move { Ok::<_, Infallible>(resp) }
            });
            // A client that hangs up mid-request is not this benchmark's concern.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
