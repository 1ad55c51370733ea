//! The server's log writer. The API's access lines (one per request) are appended to a buffer
//! that a thread of its own writes out every few milliseconds in one system call, so a busy
//! API does not make a `write` per request (a twentieth of a DescribeBackupTasks call's CPU).
//! Every other line is written before its logging call returns, after what waits in the
//! buffer, so lines keep their order and tests and operators read a line as soon as what it
//! reports has happened. The buffer is bounded: past [`MAX_BUFFERED`] a line writes everything
//! itself, so a stalled stderr holds up the server as it did before. What is buffered is
//! written when the sink is flushed (at exit, on a panic) or closed.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long the writer thread lets lines gather before it writes them.
pub const GATHER: Duration = Duration::from_millis(5);
/// The most bytes kept waiting.
const MAX_BUFFERED: usize = 1 << 20;

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A buffer of whole events stays usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The output, taken only with the state locked or by the writer thread right after it
    /// let the state go (always state first, then output).
    fn out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `bytes` out. Called with the state locked, so events leave in the order they
    /// came.
    fn write_out(&self, bytes: &[u8]) {
        write_to(&mut self.out(), bytes);
    }

    /// Writes out what `state` (locked) holds and empties it, keeping its capacity.
    fn drain(&self, state: &mut State) {
        if !state.buf.is_empty() {
            self.write_out(&state.buf);
            state.buf.clear();
        }
    }
}

/// Which events wait in the buffer.
pub type Batched = fn(&tracing::Metadata<'_>) -> bool;

/// A `MakeWriter` for `tracing_subscriber` (cheap to clone: every clone shares the buffer).
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
    batched: Batched,
}

impl BatchedWriter {
    /// A writer to `out` with its writer thread started; the lines of events `batched` picks
    /// reach `out` within `gather`, the others at once.
    pub fn new(out: impl Write + Send + 'static, gather: Duration, batched: Batched) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::new(),
                closed: false,
            }),
            wake: Condvar::new(),
            out: Mutex::new(Box::new(out)),
        });
        let thread = shared.clone();
        let started = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || run(&thread, gather));
        if started.is_err() {
            // Without the thread every event writes itself.
            shared.state().closed = true;
        }
        Self { shared, batched }
    }

    /// Writes out everything buffered now.
    pub fn flush(&self) {
        self.shared.drain(&mut self.shared.state());
    }

    /// Flushes and stops the writer thread; later events are written as they come.
    pub fn close(&self) {
        let mut state = self.shared.state();
        state.closed = true;
        self.shared.drain(&mut state);
        drop(state);
        self.shared.wake.notify_one();
    }

    fn append(&self, event: &[u8], batched: bool) {
        let mut state = self.shared.state();
        if !batched || state.closed || state.buf.len() + event.len() > MAX_BUFFERED {
            self.shared.drain(&mut state);
            self.shared.write_out(event);
            return;
        }
        let was_empty = state.buf.is_empty();
        state.buf.extend_from_slice(event);
        drop(state);
        if was_empty {
            self.shared.wake.notify_one();
        }
    }
}

/// The writer thread: waits for a first line, lets more gather, writes them all.
fn run(shared: &Shared, gather: Duration) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.state();
        while state.buf.is_empty() && !state.closed {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            return;
        }
        drop(state);
        std::thread::sleep(gather);
        // The batch leaves the buffer, and the output is taken before the state is let go: an
        // event writing itself meanwhile waits for the output, so it still comes after these,
        // while the lines batched meanwhile wait for nothing (they did wait for the whole
        // `write` when it was made holding the state).
        let mut state = shared.state();
        std::mem::swap(&mut state.buf, &mut batch);
        let mut out = shared.out();
        drop(state);
        write_to(&mut out, &batch);
        drop(out);
        batch.clear();
    }
}

fn write_to(out: &mut Box<dyn Write + Send>, bytes: &[u8]) {
    // Nowhere to report a failed log write: the line is lost, as with `eprintln!`.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// One event's writer: `tracing_subscriber` formats an event whole and writes it in one call.
pub struct EventWriter<'a> {
    sink: &'a BatchedWriter,
    batched: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sink.append(buf, self.batched);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            sink: self,
            batched: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        EventWriter {
            sink: self,
            batched: (self.batched)(meta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An output the test reads back.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);

    impl Write for Seen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seen {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn lines(n: usize, from: usize) -> String {
        (from..from + n).map(|i| format!("line {i}\n")).collect()
    }

    fn emit(w: &BatchedWriter, n: usize, from: usize) {
        for i in from..from + n {
            event(w, &format!("line {i}\n"), true);
        }
    }

    fn event(w: &BatchedWriter, line: &str, batched: bool) {
        EventWriter { sink: w, batched }
            .write_all(line.as_bytes())
            .unwrap();
    }

    fn all(_: &tracing::Metadata<'_>) -> bool {
        true
    }

    #[test]
    fn lines_arrive_whole_and_in_order_within_the_gathering_time() {
        let seen = Seen::default();
        let w = BatchedWriter::new(seen.clone(), Duration::from_millis(20), all);
        emit(&w, 100, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.text() != lines(100, 0) {
            assert!(Instant::now() < deadline, "got {:?}", seen.text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An output whose writes wait until the test opens the gate, saying when one waits.
    struct Gate {
        seen: Seen,
        waiting: std::sync::mpsc::Sender<()>,
        open: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.waiting.send(());
            let (open, opened) = &*self.open;
            let mut is_open = open.lock().unwrap();
            while !*is_open {
                is_open = opened.wait(is_open).unwrap();
            }
            self.seen.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_batched_while_a_batch_is_written_do_not_wait_for_it() {
        let seen = Seen::default();
        let (waiting, writing) = std::sync::mpsc::channel();
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = Gate {
            seen: seen.clone(),
            waiting,
            open: open.clone(),
        };
        let w = BatchedWriter::new(gate, Duration::from_millis(1), all);
        emit(&w, 1, 0);
        writing
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer thread writes the first line");
        // The first batch is held in its write: more lines are batched all the same.
        let (done, batched) = std::sync::mpsc::channel();
        let more = w.clone();
        std::thread::spawn(move || {
            emit(&more, 100, 1);
            let _ = done.send(());
        });
        batched
            .recv_timeout(Duration::from_secs(10))
            .expect("lines batched during a write do not wait for it");
        // A line written at once waits for the output, so it comes after the batch.
        let at_once = w.clone();
        let direct = std::thread::spawn(move || event(&at_once, "line 101\n", false));
        let (is_open, opened) = &*open;
        *is_open.lock().unwrap() = true;
        opened.notify_all();
        direct.join().unwrap();
        assert_eq!(seen.text(), lines(102, 0));
    }

    #[test]
    fn a_line_not_batched_is_written_at_once_after_those_waiting() {
        let seen = Seen::default();
        let w = BatchedWriter::new(seen.clone(), Duration::from_secs(3600), all);
        emit(&w, 5, 0);
        assert_eq!(seen.text(), "");
        event(&w, "line 5\n", false);
        assert_eq!(seen.text(), lines(6, 0));
        event(&w, "line 6\n", false);
        assert_eq!(seen.text(), lines(7, 0));
    }

    #[test]
    fn flush_writes_everything_at_once() {
        let seen = Seen::default();
        let w = BatchedWriter::new(seen.clone(), Duration::from_secs(3600), all);
        emit(&w, 10, 0);
        w.flush();
        assert_eq!(seen.text(), lines(10, 0));
        w.close();
        emit(&w, 3, 10);
        assert_eq!(
            seen.text(),
            lines(13, 0),
            "after close every line writes itself"
        );
    }

    #[test]
    fn past_the_bound_an_event_writes_what_waits_first() {
        let seen = Seen::default();
        let w = BatchedWriter::new(seen.clone(), Duration::from_secs(3600), all);
        let big = "x".repeat(MAX_BUFFERED / 2);
        let events = [format!("{big}1\n"), format!("{big}2\n"), "3\n".to_owned()];
        for e in &events {
            event(&w, e, true);
        }
        // The second did not fit: it wrote the first and itself; the third waits.
        assert_eq!(seen.text(), format!("{}{}", events[0], events[1]));
        w.flush();
        assert_eq!(seen.text(), events.concat());
    }
}
