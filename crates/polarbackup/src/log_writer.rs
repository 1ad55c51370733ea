//! serve's log lines, gathered in memory and written to stderr in batches by a thread of
//! their own.
//!
//! A `write` to stderr per call's log line was ~3 % of an API call's CPU, and a queue that
//! wakes a writer thread per line costs as much again in wake-ups. Here a line is appended to
//! a shared buffer; the writer wakes every [`PERIOD`] (or at once when the buffer passes
//! [`SOON`]) and writes everything gathered in one `write`. A line reaches stderr at most
//! [`PERIOD`] after it was logged; dropping the [`Flush`] guard writes what is left. A caller
//! that finds [`LIMIT`] bytes still unwritten (stderr blocked) waits for the writer rather
//! than grow the buffer or drop the line.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

const PERIOD: Duration = Duration::from_millis(10);
const SOON: usize = 64 << 10;
const LIMIT: usize = 4 << 20;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled to the writer when the buffer passed [`SOON`] or on close, and to callers
    /// when a batch was taken.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A poisoned buffer still holds whole lines: keep writing them.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the subscriber writes: each `make_writer` is one line's writer.
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

/// Held while the process logs: dropping it writes the lines still gathered and stops the
/// writer thread.
pub struct Flush {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

/// A batched writer to `out`, and the guard that flushes it.
pub fn batched(out: impl Write + Send + 'static) -> io::Result<(Batched, Flush)> {
    let shared = Arc::new(Shared::default());
    let writer = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })?;
    Ok((
        Batched {
            shared: shared.clone(),
        },
        Flush {
            shared,
            writer: Some(writer),
        },
    ))
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut p = shared.lock();
            if !p.closed && p.bytes.len() < SOON {
                p = shared
                    .changed
                    .wait_timeout(p, PERIOD)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut batch, &mut p.bytes);
            p.closed
        };
        shared.changed.notify_all();
        if !batch.is_empty() {
            // Nowhere to report a failed write of the log itself: the lines are dropped.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Write for Batched {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut p = self.shared.lock();
        while p.bytes.len() >= LIMIT && !p.closed {
            p = self
                .shared
                .changed
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
        p.bytes.extend_from_slice(buf);
        if p.bytes.len() >= SOON {
            self.shared.changed.notify_all();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_within_the_period_and_at_drop() {
        let out = Output::default();
        let (w, flush) = batched(out.clone()).unwrap();
        let lines: Vec<String> = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for l in lines.iter().skip(t).step_by(4) {
                        w.write_all(l.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        w.clone().write_all(b"last\n").unwrap();
        // Written without a drop, within a few periods.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !out.0.lock().unwrap().0.ends_with(b"last\n") {
            assert!(
                std::time::Instant::now() < deadline,
                "the last line never came"
            );
            std::thread::sleep(PERIOD);
        }
        drop(flush);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let mut got: Vec<&str> = text.lines().collect();
        assert_eq!(got.pop(), Some("last"));
        got.sort_unstable();
        let mut want: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
        want.sort_unstable();
        assert_eq!(got, want, "every line exactly once, none torn");
        assert!(
            writes < 1000,
            "{writes} writes for 20,001 lines: not batched"
        );
    }

    #[test]
    fn dropping_the_guard_writes_what_is_left() {
        let out = Output::default();
        let (mut w, flush) = batched(out.clone()).unwrap();
        w.write_all(b"one\n").unwrap();
        drop(flush);
        assert_eq!(out.0.lock().unwrap().0, b"one\n");
    }
}
