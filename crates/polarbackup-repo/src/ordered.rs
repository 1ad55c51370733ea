//! A bounded window of spawned tasks whose results are handed out in submission order.
//!
//! Both the writer (compress + store) and the reader (fetch + decompress) need N jobs running
//! at once for throughput, a hard cap for memory, and results in stream order. Results are
//! only removed once complete, so a cancelled `await` never loses one.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::RepoError;

pub(crate) struct Ordered<T> {
    limit: usize,
    tasks: VecDeque<JoinHandle<Result<T, RepoError>>>,
    runtime: Handle,
}

impl<T: Send + 'static> Ordered<T> {
    /// Must be called inside a tokio runtime; tasks are spawned onto that runtime.
    pub(crate) fn new(limit: usize) -> Self {
        Ordered {
            limit: limit.max(1),
            tasks: VecDeque::with_capacity(limit),
            runtime: Handle::current(),
        }
    }

    /// The most tasks at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn is_full(&self) -> bool {
        self.tasks.len() >= self.limit
    }

    /// Starts a task at the back of the window. Callers wait for room first (`is_full`).
    pub(crate) fn spawn<F>(&mut self, job: F)
    where
        F: Future<Output = Result<T, RepoError>> + Send + 'static,
    {
        self.tasks.push_back(self.runtime.spawn(job));
    }

    /// The oldest task's result once it is done; `None` when the window is empty.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, RepoError>>> {
        let Some(front) = self.tasks.front_mut() else {
            return Poll::Ready(None);
        };
        let joined = match Pin::new(front).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(joined) => joined,
        };
        self.tasks.pop_front();
        Poll::Ready(Some(joined.map_err(RepoError::join).and_then(|r| r)))
    }

    pub(crate) async fn next(&mut self) -> Option<Result<T, RepoError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The oldest task's result if it is already done, without waiting.
    pub(crate) fn next_ready(&mut self) -> Option<Result<T, RepoError>> {
        if !self.tasks.front()?.is_finished() {
            return None;
        }
        match self.poll_next(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => None,
        }
    }

    /// Waits until every task has ended, whatever its result. Aborting would not do: a store
    /// call already under way (an S3 PUT whose body was sent, a blocking file write) can still
    /// land after the abort, behind the cleanup that was meant to remove it.
    pub(crate) async fn settle(&mut self) {
        while let Some(task) = self.tasks.pop_front() {
            let _ = task.await;
        }
    }

    /// Aborts every task and waits until each has stopped, so none of them touches storage
    /// after this returns (a task being polled when aborted finishes that poll first).
    pub(crate) async fn cancel(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.settle().await;
    }

    pub(crate) fn abort_all(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl<T> Drop for Ordered<T> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Later jobs finish first, yet results come back in submission order and the jobs overlap.
    #[tokio::test]
    async fn out_of_order_completion_is_returned_in_order() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Mutex::new(Vec::new()));
        let mut window = Ordered::new(4);
        for i in 0..4u64 {
            let (running, peak, finished) = (running.clone(), peak.clone(), finished.clone());
            window.spawn(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40 * (4 - i))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                finished.lock().unwrap().push(i);
                Ok(i)
            });
        }
        assert!(window.is_full());
        let mut got = Vec::new();
        while let Some(r) = window.next().await {
            got.push(r.unwrap());
        }
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(*finished.lock().unwrap(), [3, 2, 1, 0]);
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    /// Every task runs to its end, so nothing it stores can land after the caller's cleanup.
    #[tokio::test]
    async fn settle_lets_every_task_finish() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut window: Ordered<()> = Ordered::new(3);
        for i in 0..3u64 {
            let finished = finished.clone();
            window.spawn(async move {
                tokio::time::sleep(Duration::from_millis(30 * (i + 1))).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        window.settle().await;
        assert_eq!(finished.load(Ordering::SeqCst), 3);
        assert!(window.next().await.is_none());
    }

    /// Once `cancel` returned, no task of the window runs any further.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_stops_every_task_before_it_returns() {
        let started = Arc::new(AtomicUsize::new(0));
        let after = Arc::new(AtomicUsize::new(0));
        let mut window: Ordered<()> = Ordered::new(3);
        for _ in 0..3 {
            let (started, after) = (started.clone(), after.clone());
            window.spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                after.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        while started.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        window.cancel().await;
        assert!(window.next().await.is_none());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            after.load(Ordering::SeqCst),
            0,
            "a task ran on after cancel"
        );
    }

    #[tokio::test]
    async fn errors_and_panics_surface_in_place() {
        let mut window: Ordered<u32> = Ordered::new(3);
        window.spawn(async { Ok(1) });
        window.spawn(async { Err(RepoError::NotFound("x".into())) });
        window.spawn(async { panic!("boom") });
        assert_eq!(window.next().await.unwrap().unwrap(), 1);
        assert!(matches!(
            window.next().await,
            Some(Err(RepoError::NotFound(_)))
        ));
        assert!(matches!(
            window.next().await,
            Some(Err(RepoError::Internal(_)))
        ));
        assert!(window.next().await.is_none());
        assert!(window.next_ready().is_none());
    }
}
