//! `polarbackup serve`: open the store, bind, answer until SIGINT/SIGTERM, then drain.

use crate::archiver::PgArchiver;
use crate::backends::{self, Locations};
use crate::cli::LogFormat;
use crate::cli::ServeCommand;
use crate::config;
use crate::executor::PgExecutor;
use crate::log_reader::RepoLogReader;
use crate::log_sink::BatchedWriter;
use crate::settings::Settings;
use crate::test_controls::TestControls;
use anyhow::{Context, Result};
use polarbackup_api::{AppState, DiagnosticKey, LinkSecret, RamMode, ACCESS_LOG_TARGET};
use polarbackup_jobs::{CancellationToken, PoolClocks};
use polarbackup_model::{AccessKeyId, Clock, SystemClock};
use polarbackup_store::prelude::*;
use std::io::Write;
use std::sync::Arc;
use tracing::{error, info, warn};

pub fn run(args: ServeCommand) -> Result<()> {
    let settings = Settings::load(&args.settings)?;
    let log = init_logging(settings.log_format);
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| {
            let controls = args.test_controls.then(TestControls::new);
            runtime.block_on(serve(settings, controls))
        });
    log.close();
    served
}

/// Logs go to stderr through a [`BatchedWriter`]: the API's access lines (INFO events of
/// [`ACCESS_LOG_TARGET`]) in one `write` every few milliseconds, every other line at once. A
/// panic flushes it before it is reported.
fn init_logging(format: LogFormat) -> BatchedWriter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POLARBACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let access_line = |meta: &tracing::Metadata<'_>| {
        *meta.level() == tracing::Level::INFO && meta.target() == ACCESS_LOG_TARGET
    };
    let writer = BatchedWriter::new(std::io::stderr(), crate::log_sink::GATHER, access_line);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_timer(crate::log_time::LogTime)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let on_panic = writer.clone();
    let reported = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.flush();
        reported(info);
    }));
    writer
}

/// Reads the used nonces in before listening, so the first signed requests do not wait for
/// it (15 minutes of them at a high rate are hundreds of MB). A log that cannot be read is
/// logged, not fatal: the server still starts, and every signed request fails until it is
/// repaired, as it would after the first one.
async fn load_nonces(store: &Arc<dyn Store>) {
    let started = std::time::Instant::now();
    let reading = store.clone();
    match tokio::task::spawn_blocking(move || reading.load_nonces()).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(n))) => info!(
            nonces = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "nonces read in"
        ),
        Ok(Err(e)) => error!(error = %e, "the nonce log cannot be read: signed requests will fail"),
        Err(e) => error!(error = %e, "reading the nonce log panicked"),
    }
}

/// Which clock runs what. Without test controls both are the wall clock. With them, `service`
/// is the clock `admin clock advance` moves forward: schedules, retention, job and set times,
/// job history, download links' expiry, the scrub's period. `wall` stays the wall clock for
/// what must follow real time: the API's signature timestamp window, nonces and RAM's
/// `acs:CurrentTime` (SDKs sign with the real time), leases (heartbeats sleep in real time),
/// the engine and the WAL archivers (their times are the database's own clock, which the
/// recovery window is built on).
struct Clocks {
    service: Arc<dyn Clock>,
    wall: Arc<dyn Clock>,
}

async fn serve(cfg: Settings, controls: Option<TestControls>) -> Result<()> {
    let locations = Locations::from_settings(&cfg)?;
    backends::ensure_data_dir(&cfg.data_dir)?;
    // The store's own client may block (SQLite, or a pool that connects): off the runtime.
    let opened = locations.clone();
    let store = tokio::task::spawn_blocking(move || opened.open_store())
        .await
        .context("opening the metadata store")??;
    load_nonces(&store).await;
    let wall: Arc<dyn Clock> = Arc::new(SystemClock);
    let clocks = Clocks {
        service: match &controls {
            Some(c) => c.clock.clone(),
            None => wall.clone(),
        },
        wall,
    };
    ensure_root_key(store.as_ref(), clocks.wall.as_ref())?;
    let diagnostic_key = DiagnosticKey(config::diagnostic_key(&cfg.data_dir)?);
    let link_secret = LinkSecret(config::link_secret(&cfg.data_dir, &cfg.link_secret_file)?);
    let cfg = cfg.into_parts(diagnostic_key, link_secret);
    let repo = locations.open_repo()?;
    let scratch = config::scratch_dir(&cfg.data_dir);
    // Leftovers of a previous run are never needed: WAL is re-streamed by a new backup.
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).context("creating the scratch directory")?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let shutdown = CancellationToken::new();
    let pool = Arc::new(polarbackup_jobs::PoolStats::default());
    let positions = crate::archiver::Positions::default();
    let workers = (cfg.workers.concurrency > 0).then(|| {
        polarbackup_jobs::start_observed(
            store.clone(),
            PoolClocks {
                service: clocks.service.clone(),
                lease: clocks.wall.clone(),
            },
            Arc::new(PgExecutor {
                repo: repo.clone(),
                scratch,
                clock: clocks.wall.clone(),
                stall: cfg.stall,
                faults: controls.as_ref().map(|c| c.faults.clone()),
            }),
            cfg.workers.clone(),
            wake.clone(),
            shutdown.clone(),
            pool.clone(),
        )
    });
    let archivers = cfg.archive.clone().map(|archive| {
        polarbackup_jobs::archiver::start_archivers(
            store.clone(),
            clocks.wall.clone(),
            Arc::new(PgArchiver {
                repo: repo.clone(),
                clock: clocks.wall.clone(),
                partial_interval: archive.partial_interval,
                stall: cfg.stall,
                positions: positions.clone(),
            }),
            archive.config,
            wake.clone(),
            shutdown.clone(),
        )
    });
    if archivers.is_none() && workers.is_some() {
        // Deleted clusters' log backups are released here too (archivers do it on each pass).
        let releaser = PgArchiver::for_release(repo.clone(), clocks.wall.clone(), cfg.stall);
        let poll = polarbackup_jobs::WorkerConfig::IDLE_POLL;
        polarbackup_jobs::archiver::start_releaser(
            store.clone(),
            Arc::new(releaser),
            poll,
            shutdown.clone(),
        );
    }
    let scrub = match cfg.scrub.clone() {
        Some(scrub) => Some(
            crate::scrub::start(
                locations.clone(),
                store.clone(),
                clocks.service.clone(),
                scrub,
                shutdown.clone(),
            )
            .context("starting the scrub")?,
        ),
        None => None,
    };
    if workers.is_none() {
        warn!("--workers 0: serving the API only; queued backups will not run here");
    }
    let metrics = cfg.metrics_listen.map(|_| {
        Arc::new(polarbackup_metrics::Metrics::new(Arc::new(
            crate::metrics::ServerSampler {
                store: store.clone(),
                workers: pool,
                slots: cfg.workers.concurrency,
                archives: positions,
            },
        )))
    });
    let mut metrics_addr = None;
    let metrics_task = match (cfg.metrics_listen, &metrics) {
        (Some(at), Some(metrics)) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("binding the metrics listener {at}"))?;
            let addr = listener.local_addr()?;
            info!(%addr, "metrics at /metrics");
            metrics_addr = Some(addr.to_string());
            let stop = shutdown.clone();
            Some(tokio::spawn(polarbackup_api::http::serve_metrics(
                listener,
                metrics.clone(),
                cfg.http,
                cfg.api.host_id.as_str().into(),
                async move { stop.cancelled().await },
            )))
        }
        _ => None,
    };
    let control_socket = match &controls {
        Some(c) => Some(crate::test_controls::listen(
            &cfg.data_dir,
            c,
            store.clone(),
        )?),
        None => None,
    };
    let state = AppState {
        metrics,
        store,
        clock: clocks.service,
        request_clock: clocks.wall,
        config: Arc::new(cfg.api.clone()),
        work_available: wake,
        logs: Arc::new(RepoLogReader { repo }),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    info!(
        %addr,
        data_dir = %cfg.data_dir.display(),
        metadata = %locations.metadata_shown(),
        repository = %locations.repository_shown(),
        "listening"
    );
    // One machine-readable line on stdout, so scripts can use port 0.
    let mut out = std::io::stdout().lock();
    let mut line = serde_json::json!({ "Listening": addr.to_string() });
    if let Some(m) = metrics_addr {
        line["Metrics"] = m.into();
    }
    writeln!(out, "{line}")?;
    out.flush()?;
    drop(out);
    if cfg.api.ram.mode == RamMode::Off {
        warn!("RAM is off: RAM users' calls are not checked against their policies");
    }
    polarbackup_api::http::serve(listener, state, cfg.http, shutdown_signal())
        .await
        .context("serving")?;
    drop(control_socket);
    // Running backups are cancelled and end as Failed, their partial data removed.
    shutdown.cancel();
    if let Some(task) = metrics_task {
        if !matches!(task.await, Ok(Ok(()))) {
            warn!("the metrics listener ended abnormally");
        }
    }
    // Archivers store the segment in progress before they stop.
    for (what, task) in [("worker pool", workers), ("WAL archivers", archivers)] {
        if let Some(task) = task {
            if let Err(e) = task.await {
                warn!(error = %e, "the {what} ended abnormally");
            }
        }
    }
    if let Some(scrub) = scrub {
        if tokio::task::spawn_blocking(move || scrub.join())
            .await
            .is_err()
        {
            warn!("the scrub ended abnormally");
        }
    }
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    info!("shutting down: finishing in-flight requests");
}

/// For local test endpoints: a root account whose key comes from the environment.
fn ensure_root_key(store: &dyn Store, clock: &dyn Clock) -> Result<()> {
    let (Ok(id), Ok(secret)) = (
        std::env::var("POLARBACKUP_ROOT_ACCESS_KEY_ID"),
        std::env::var("POLARBACKUP_ROOT_ACCESS_KEY_SECRET"),
    ) else {
        return Ok(());
    };
    let id =
        AccessKeyId::parse(&id).context("POLARBACKUP_ROOT_ACCESS_KEY_ID is not a valid key id")?;
    if secret.is_empty() {
        anyhow::bail!("POLARBACKUP_ROOT_ACCESS_KEY_SECRET is empty");
    }
    let now = clock.now();
    let Some(account) = store.bootstrap_account_key("root", &id, &secret, now)? else {
        if store.key(&id)?.is_some_and(|k| k.secret != secret) {
            warn!(key = %id, "root key exists with another secret; keeping the stored one");
        }
        return Ok(());
    };
    info!(key = %id, account = %account.id, "created the root account from the environment");
    Ok(())
}
