//! `polarbackup-bench-api`: drives one API action over keep-alive connections, signing every
//! request itself (nonces are single-use), and prints requests/s, p50 and p99 as one JSON line.
//! The secret comes from the environment (`POLARBACKUP_BENCH_KEY_SECRET`), never from argv.

mod sign;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use polarbackup_model::{Clock, SystemClock};
use rand::Rng;
use sign::Credentials;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Signed-request load generator for polarbackup's API")]
struct Args {
    /// `HOST:PORT` of the server (plain HTTP on loopback).
    #[arg(long)]
    target: String,
    #[arg(long, default_value = "DescribeBackupTasks")]
    action: String,
    /// A request parameter, `NAME=VALUE`; repeatable.
    #[arg(long = "param", value_parser = param)]
    params: Vec<(String, String)>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The AccessKey id; its secret is read from POLARBACKUP_BENCH_KEY_SECRET.
    #[arg(long)]
    key_id: String,
}

fn param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

/// What one connection saw in the measured window.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let secret = std::env::var("POLARBACKUP_BENCH_KEY_SECRET")
        .context("POLARBACKUP_BENCH_KEY_SECRET must hold the key's secret")?;
    let creds = std::sync::Arc::new(Credentials {
        id: args.key_id.clone(),
        secret,
    });
    // One thread: the server under test gets the other core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tallies = rt.block_on(run(&args, creds))?;
    report(&args, tallies)
}

async fn run(args: &Args, creds: std::sync::Arc<Credentials>) -> Result<Vec<Tally>> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.seconds);
    let params: Vec<(&str, &str)> = args
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let query = sign::canonical_query(&params);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (target, action, query, creds) = (
            args.target.clone(),
            args.action.clone(),
            query.clone(),
            creds.clone(),
        );
        tasks.spawn(async move {
            connection(&target, &action, &query, &creds, measure_from, until).await
        });
    }
    let mut out = Vec::new();
    while let Some(t) = tasks.join_next().await {
        out.push(t??);
    }
    Ok(out)
}

async fn connection(
    target: &str,
    action: &str,
    query: &str,
    creds: &Credentials,
    measure_from: Instant,
    until: Instant,
) -> Result<Tally> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .with_context(|| format!("connect to {target}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let uri = if query.is_empty() {
        "/".to_string()
    } else {
        format!("/?{query}")
    };
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= until {
            return Ok(tally);
        }
        let date = SystemClock.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let mut req = hyper::Request::post(&uri);
        for (name, value) in sign::signed_headers(creds, target, action, query, &date, &nonce) {
            req = req.header(name, value);
        }
        let res = sender
            .send_request(req.body(Empty::<Bytes>::new())?)
            .await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        if sent < measure_from {
            continue;
        }
        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
        if !status.is_success() {
            tally.errors += 1;
            tally
                .first_error
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
    }
}

fn report(args: &Args, tallies: Vec<Tally>) -> Result<()> {
    let mut all: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    if all.is_empty() {
        bail!("no request completed in the measured window");
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    let line = serde_json::json!({
        "action": args.action,
        "connections": args.connections,
        "seconds": args.seconds,
        "requests": all.len(),
        "errors": errors,
        "first_error": tallies.iter().find_map(|t| t.first_error.clone()),
        "rps": (all.len() as f64 / args.seconds as f64).round(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    });
    println!("{line}");
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}
