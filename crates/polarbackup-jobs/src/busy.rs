//! How busy the worker pool is, for metrics: backups running now, and the time spent running
//! them (finished ones plus the running ones so far).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shared between the pool (which enters and leaves) and whoever reads it.
#[derive(Debug, Default)]
pub struct PoolStats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    done: Duration,
    running: Vec<(u64, Instant)>,
    next: u64,
}

impl PoolStats {
    /// A backup starts running; the guard ends it.
    pub(crate) fn enter(&self) -> Busy<'_> {
        let mut i = self.lock();
        let token = i.next;
        i.next += 1;
        i.running.push((token, Instant::now()));
        Busy { stats: self, token }
    }

    /// Backups running now, and seconds spent running backups since the pool started.
    pub fn read(&self) -> (u64, f64) {
        let i = self.lock();
        let now = Instant::now();
        let running: Duration = i.running.iter().map(|(_, at)| now - *at).sum();
        (i.running.len() as u64, (i.done + running).as_secs_f64())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a single push or remove: a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One running backup; dropping it counts its time as done.
pub(crate) struct Busy<'a> {
    stats: &'a PoolStats,
    token: u64,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut i = self.stats.lock();
        if let Some(pos) = i.running.iter().position(|(t, _)| *t == self.token) {
            let (_, at) = i.running.swap_remove(pos);
            i.done += at.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_backups_count_until_their_guard_drops() {
        let s = PoolStats::default();
        assert_eq!(s.read().0, 0);
        let a = s.enter();
        let b = s.enter();
        std::thread::sleep(Duration::from_millis(20));
        let (busy, secs) = s.read();
        assert_eq!(busy, 2);
        assert!(secs >= 0.04, "{secs}");
        drop(a);
        let (busy, after) = s.read();
        assert_eq!(busy, 1);
        assert!(after >= secs, "time never goes back: {after} < {secs}");
        drop(b);
        let (busy, last) = s.read();
        assert_eq!(busy, 0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.read().1, last, "nothing running: the total stays");
    }
}
