//! A claimed job's lease as its worker sees it: one token stops the job's work, a flag tells a
//! lost lease from a shutdown, another that the job's end is recorded (the lease ended with it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub(crate) struct Lease {
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
}

impl Lease {
    /// `cancel` fires on shutdown; losing the lease fires it too.
    pub(crate) fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            lost: Arc::default(),
            ended: Arc::default(),
        }
    }

    pub(crate) fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Crash recovery or another worker took the job: stop, and write nothing more.
    pub(crate) fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The store recorded the job's end, which ended the lease: the heartbeat stops quietly.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}
