//! The scrub in `serve`: re-reads every stored backup set at least once per period, one set at
//! a time at a bounded rate, on a thread of its own; a set found corrupt is marked
//! unavailable. Servers sharing a store take turns through the store's scrub claim, so one
//! server at a time re-reads a given set.

use crate::backends::Locations;
use crate::verify::{check, Throttle, Verdict};
use jiff::SignedDuration;
use polarbackup_jobs::CancellationToken;
use polarbackup_model::Clock;
use polarbackup_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How often and how fast the scrub re-reads sets.
#[derive(Debug, Clone)]
pub struct ScrubConfig {
    /// Each set is re-verified once this long after its last verification (or its backup).
    pub period: Duration,
    /// The average read rate while verifying.
    pub bytes_per_sec: f64,
}

/// A claim outlives any verification at the rate (a terabyte at 50 MiB/s takes under six
/// hours); one left by a server that died lapses after it, and then another server scrubs.
const CLAIM: SignedDuration = SignedDuration::from_hours(12);

/// The longest wait between looks for a due set.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Starts the scrub thread; it returns once `shutdown` is cancelled (a set being read is left
/// unrecorded, and its claim lapses).
pub fn start(
    locations: Locations,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cfg: ScrubConfig,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("scrub".into())
        .spawn(move || run(&locations, store.as_ref(), clock.as_ref(), &cfg, &shutdown))
}

fn run(
    locations: &Locations,
    store: &dyn Store,
    clock: &dyn Clock,
    cfg: &ScrubConfig,
    shutdown: &CancellationToken,
) {
    // Its own runtime and repository handle: the throttle sleeps this thread, never the
    // server's runtime.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return warn!(error = %e, "the scrub cannot start its runtime; no scrub"),
    };
    let repo = match locations.open_repo() {
        Ok(r) => r,
        Err(e) => return warn!(error = %e, "the scrub cannot open the repository; no scrub"),
    };
    let worker = format!("scrub-{:016x}", rand::random::<u64>());
    let idle = (cfg.period / 4).clamp(Duration::from_millis(100), MAX_IDLE);
    let period = SignedDuration::try_from(cfg.period).unwrap_or(SignedDuration::MAX);
    info!(
        period_secs = cfg.period.as_secs_f64(),
        mib_per_sec = cfg.bytes_per_sec / (1024.0 * 1024.0),
        "scrub started"
    );
    while !shutdown.is_cancelled() {
        let now = clock.now();
        let due = now.checked_sub(period).unwrap_or(jiff::Timestamp::MIN);
        let until = now.checked_add(CLAIM).unwrap_or(jiff::Timestamp::MAX);
        let set = match store.claim_scrub(&worker, due, until, now) {
            Ok(Some(set)) => set,
            Ok(None) => {
                wait(&runtime, shutdown, idle);
                continue;
            }
            Err(e) => {
                warn!(error = %e, "scrub: cannot claim a set");
                wait(&runtime, shutdown, idle);
                continue;
            }
        };
        let (id, cluster) = (set.id, set.cluster_id.as_str());
        let throttle = Throttle::new(cfg.bytes_per_sec);
        let mut progress = |done: u64, _total: u64| {
            let mut left = throttle.delay(done);
            // In slices, so a shutdown is not held up by a long wait.
            while !left.is_zero() && !shutdown.is_cancelled() {
                let slice = left.min(Duration::from_millis(200));
                std::thread::sleep(slice);
                left -= slice;
            }
        };
        let verdict = runtime.block_on(async {
            tokio::select! {
                v = check(&repo, id, &mut progress) => Some(v),
                () = shutdown.cancelled() => None,
            }
        });
        let Some(verdict) = verdict else { break };
        let now = clock.now();
        match verdict {
            Verdict::Good(r) => {
                info!(set = %id, cluster, stored_bytes = r.stored_bytes, "scrub: backup set verified");
            }
            Verdict::Corrupt(reason) => match store.mark_set_corrupt(id, &reason, now) {
                Ok(true) => warn!(
                    set = %id,
                    cluster,
                    %reason,
                    "scrub: backup set is corrupt; marked unavailable (IsAvail 0)"
                ),
                Ok(false) => info!(set = %id, "scrub: backup set was deleted while being read"),
                Err(e) => {
                    // Unrecorded: its claim lapses and it is read (and marked) again then.
                    warn!(set = %id, %reason, error = %e, "scrub: backup set is corrupt, but \
                          marking it unavailable failed");
                    continue;
                }
            },
            Verdict::Unverified(reason) => {
                // Unrecorded: its claim lapses and it is read again then.
                warn!(set = %id, cluster, %reason, "scrub: backup set could not be read");
                continue;
            }
        }
        match store.end_scrub(id, &worker, now) {
            Ok(true) => {}
            Ok(false) => info!(set = %id, "scrub: another server took the set over meanwhile"),
            Err(e) => warn!(set = %id, error = %e, "scrub: cannot record the verification"),
        }
    }
}

/// Sleeps `idle`, or less if the server shuts down.
fn wait(runtime: &tokio::runtime::Runtime, shutdown: &CancellationToken, idle: Duration) {
    runtime.block_on(async {
        let _ = tokio::time::timeout(idle, shutdown.cancelled()).await;
    });
}
