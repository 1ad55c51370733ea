//! A few OS threads, each owning one `postgres::Client`, serving a shared queue. The traits are
//! synchronous and are called from inside tokio runtimes, where the client's own `block_on`
//! would panic; on these threads it never runs inside a runtime. A caller sends a task and
//! blocks on its reply. A client found closed (server restart, broken socket) is replaced
//! before the next task.

use crate::{Result, StoreError};
use postgres::Client;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Opens a new connection (the options, TLS included, live in the closure).
pub type Connect = Arc<dyn Fn() -> Result<Client> + Send + Sync>;

/// A worker's connection, opened on first use and reopened once closed.
pub struct Conn {
    connect: Connect,
    client: Option<Client>,
}

impl Conn {
    pub fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.client = Some((self.connect)()?);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Io(std::io::Error::other("no connection")))
    }
}

type Task = Box<dyn FnOnce(&mut Conn) + Send>;

pub struct Pool {
    queue: Mutex<Option<Sender<Task>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `size` (at least one) workers; each connects lazily with `connect`.
    pub fn start(size: usize, connect: Connect) -> Result<Pool> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..size.max(1))
            .map(|i| {
                let (rx, connect) = (Arc::clone(&rx), Arc::clone(&connect));
                std::thread::Builder::new()
                    .name(format!("pg-store-{i}"))
                    .spawn(move || serve(&rx, connect))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool {
            queue: Mutex::new(Some(tx)),
            workers,
        })
    }

    /// Runs `f` on a worker's connection and waits for its answer.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        let task: Task = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        let sent = match &*self.queue.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(q) => q.send(task).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StoreError::Io(std::io::Error::other(
                "the metadata store's connection pool has stopped",
            )));
        }
        answer.recv().map_err(|_| {
            StoreError::Io(std::io::Error::other(
                "a metadata store worker failed (panicked) while running the call",
            ))
        })?
    }
}

fn serve(rx: &Mutex<Receiver<Task>>, connect: Connect) {
    let mut conn = Conn {
        connect,
        client: None,
    };
    loop {
        let task = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(t) => t,
            Err(_) => return,
        };
        // A panicking task drops its reply (the caller sees an error); the connection may be
        // mid-transaction, so it is dropped too and the worker carries on.
        if catch_unwind(AssertUnwindSafe(|| task(&mut conn))).is_err() {
            conn.client = None;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
