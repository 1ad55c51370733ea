//! `polarbackup-bench-api`: drives one API action over keep-alive connections, signing every
//! request itself (nonces are single-use), and prints requests/s, p50 and p99 as one JSON line.
//! The secret comes from the environment (`POLARBACKUP_BENCH_KEY_SECRET`), never from argv.
//! `--protocol sigv4` drives an AWS query API (RDS) the same way, for emulators to compare with.

mod sign;
mod sigv4;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use polarbackup_model::{Clock, SystemClock};
use rand::Rng;
use sign::Credentials;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// A parameter that changes per request, `NAME=FILE`: the values are FILE's lines, taken
    /// in turn across all connections (e.g. many clusters rather than one hot row).
    #[arg(long = "vary", value_parser = param)]
    vary: Option<(String, String)>,
    /// `acs3`: polarbackup's API (ACS3-HMAC-SHA256 headers, a fresh nonce each). `sigv4`: an
    /// AWS query API, the action and parameters in a form body signed with SigV4.
    #[arg(long, value_enum, default_value_t = Protocol::Acs3)]
    protocol: Protocol,
    /// SigV4's scope: `REGION/SERVICE`.
    #[arg(long, default_value = "us-east-1/rds")]
    sigv4_scope: String,
    /// SigV4's API version parameter.
    #[arg(long, default_value = "2014-10-31")]
    sigv4_version: String,
    /// Write one successful response body here (what a bare server can then answer with).
    #[arg(long, value_name = "FILE")]
    save_body: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    Acs3,
    Sigv4,
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
    body_bytes: u64,
    reconnects: u64,
    sample_body: Option<Bytes>,
    errors: u64,
    first_error: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let secret = std::env::var("POLARBACKUP_BENCH_KEY_SECRET")
        .context("POLARBACKUP_BENCH_KEY_SECRET must hold the key's secret")?;
    let creds = Arc::new(Credentials {
        id: args.key_id.clone(),
        secret,
    });
    // One thread: the server under test gets the other core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let vary = match &args.vary {
        None => None,
        Some((name, file)) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
            let values: Vec<String> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if values.is_empty() {
                bail!("{file} has no values for {name}");
            }
            Some(Vary {
                name: name.clone(),
                values,
                next: AtomicUsize::new(0),
            })
        }
    };
    let (region, service) = args
        .sigv4_scope
        .split_once('/')
        .context("--sigv4-scope is REGION/SERVICE")?;
    let plan = Arc::new(Plan {
        target: args.target.clone(),
        action: args.action.clone(),
        params: args.params.clone(),
        vary,
        protocol: args.protocol,
        region: region.to_string(),
        service: service.to_string(),
        version: args.sigv4_version.clone(),
        creds,
    });
    let tallies = rt.block_on(run(&args, plan))?;
    report(&args, tallies)
}

/// A parameter whose value rotates through a list, shared by every connection.
struct Vary {
    name: String,
    values: Vec<String>,
    next: AtomicUsize,
}

/// What every connection sends.
struct Plan {
    target: String,
    action: String,
    params: Vec<(String, String)>,
    vary: Option<Vary>,
    protocol: Protocol,
    region: String,
    service: String,
    version: String,
    creds: Arc<Credentials>,
}

impl Plan {
    /// The next request's parameters, sorted and encoded (a query string or a form body).
    fn encoded_params(&self, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.extend_from_slice(extra);
        if let Some(v) = &self.vary {
            let i = v.next.fetch_add(1, Ordering::Relaxed) % v.values.len();
            params.push((v.name.as_str(), v.values[i].as_str()));
        }
        sign::canonical_query(&params)
    }

    /// One signed request, fresh date and (ACS3) nonce.
    fn request(&self) -> Result<hyper::Request<Full<Bytes>>> {
        let now = SystemClock.now();
        match self.protocol {
            Protocol::Acs3 => {
                let query = self.encoded_params(&[]);
                let date = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let nonce = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
                let uri = if query.is_empty() {
                    "/".to_string()
                } else {
                    format!("/?{query}")
                };
                let mut req = hyper::Request::post(uri);
                for (name, value) in sign::signed_headers(
                    &self.creds,
                    &self.target,
                    &self.action,
                    &query,
                    &date,
                    &nonce,
                ) {
                    req = req.header(name, value);
                }
                Ok(req.body(Full::new(Bytes::new()))?)
            }
            Protocol::Sigv4 => {
                let body = self.encoded_params(&[
                    ("Action", self.action.as_str()),
                    ("Version", self.version.as_str()),
                ]);
                let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
                let scope = sigv4::Scope {
                    region: &self.region,
                    service: &self.service,
                };
                let mut req = hyper::Request::post("/");
                for (name, value) in
                    sigv4::signed_headers(&self.creds, &scope, &self.target, &body, &amz_date)
                {
                    req = req.header(name, value);
                }
                Ok(req.body(Full::new(Bytes::from(body)))?)
            }
        }
    }
}

async fn run(args: &Args, plan: Arc<Plan>) -> Result<Vec<Tally>> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let plan = plan.clone();
        tasks.spawn(async move { connection(&plan, measure_from, until).await });
    }
    let mut out = Vec::new();
    while let Some(t) = tasks.join_next().await {
        out.push(t??);
    }
    Ok(out)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(target: &str) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .with_context(|| format!("connect to {target}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn connection(plan: &Plan, measure_from: Instant, until: Instant) -> Result<Tally> {
    let mut sender = connect(&plan.target).await?;
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= until {
            return Ok(tally);
        }
        // A server that closes after a response (no keep-alive) costs the client a new
        // connection, inside the measured time.
        if sender.ready().await.is_err() {
            sender = connect(&plan.target).await?;
            if sent >= measure_from {
                tally.reconnects += 1;
            }
        }
        let res = sender.send_request(plan.request()?).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        if sent < measure_from {
            continue;
        }
        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
        tally.body_bytes += body.len() as u64;
        if status.is_success() && tally.sample_body.is_none() {
            tally.sample_body = Some(body.clone());
        }
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
    let body_bytes: u64 = tallies.iter().map(|t| t.body_bytes).sum();
    if let Some(path) = &args.save_body {
        let body = tallies
            .iter()
            .find_map(|t| t.sample_body.clone())
            .context("no successful response to save")?;
        std::fs::write(path, &body).with_context(|| format!("write {}", path.display()))?;
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    let line = serde_json::json!({
        "action": args.action,
        "protocol": match args.protocol { Protocol::Acs3 => "acs3", Protocol::Sigv4 => "sigv4" },
        "connections": args.connections,
        "seconds": args.seconds,
        "requests": all.len(),
        "errors": errors,
        "first_error": tallies.iter().find_map(|t| t.first_error.clone()),
        "rps": (all.len() as f64 / args.seconds as f64).round(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_body_bytes": body_bytes / all.len() as u64,
        "reconnects": tallies.iter().map(|t| t.reconnects).sum::<u64>(),
    });
    println!("{line}");
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}
