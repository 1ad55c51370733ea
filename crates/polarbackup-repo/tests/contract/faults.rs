//! `FaultLayer`: an opendal layer that makes chosen storage calls fail, to test what the
//! repository does when its backend misbehaves.
//!
//! Calls are counted per kind from 1. A failing object `Write` first passes half of its
//! bytes on, so the storage may keep a short object; a failing `Close` never closes the
//! object underneath. Every other kind fails before reaching the storage.
//!
//! `Faults::transient` makes the injected errors temporary, as a dropped connection or a 503
//! is, for a retry layer above this one to recover from; a failing `Write` then passes
//! nothing on (a retried part is sent whole again).
#![allow(dead_code)] // shared by the contract suite and tests/s3.rs, which use different parts

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opendal::raw::*;
use opendal::{Buffer, Capability, Error, ErrorKind, Metadata, OperationContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// One `write` of bytes into an object (an object written at once is one call).
    Write,
    /// Closing an object being written, which makes it durable.
    Close,
    Read,
    Stat,
    List,
    /// One path handed to a deleter (a recursive delete of a prefix is one call).
    Delete,
    Rename,
}

#[derive(Debug)]
struct Rule {
    call: Call,
    first: usize,
    last: usize,
}

#[derive(Debug, Default)]
struct State {
    counts: HashMap<Call, usize>,
    rules: Vec<Rule>,
    injected: usize,
    transient: bool,
}

/// The shared switchboard of a `FaultLayer`: what to fail, and what was called.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<State>>);

impl Faults {
    /// Fails the `n`th call of this kind (1-based) and no other.
    pub fn fail_nth(&self, call: Call, n: usize) {
        self.add(call, n, n);
    }

    /// Fails the `n`th call of this kind and every later one.
    pub fn fail_from(&self, call: Call, n: usize) {
        self.add(call, n, usize::MAX);
    }

    /// Makes every injected error temporary (retryable) from now on.
    pub fn transient(&self) {
        self.state().transient = true;
    }

    /// Fails nothing any more (the counts go on).
    pub fn heal(&self) {
        self.state().rules.clear();
    }

    /// How many calls of this kind reached the layer.
    pub fn count(&self, call: Call) -> usize {
        self.state().counts.get(&call).copied().unwrap_or(0)
    }

    /// How many calls failed on purpose.
    pub fn injected(&self) -> usize {
        self.state().injected
    }

    pub fn layer(&self) -> FaultLayer {
        FaultLayer(self.clone())
    }

    fn add(&self, call: Call, first: usize, last: usize) {
        self.state().rules.push(Rule { call, first, last });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one call; the error to return if it is to fail.
    fn hit(&self, call: Call) -> Result<()> {
        let mut state = self.state();
        let n = {
            let count = state.counts.entry(call).or_default();
            *count += 1;
            *count
        };
        let fail = state
            .rules
            .iter()
            .any(|r| r.call == call && (r.first..=r.last).contains(&n));
        if !fail {
            return Ok(());
        }
        state.injected += 1;
        let err = Error::new(
            ErrorKind::Unexpected,
            format!("injected failure of {call:?} call {n}"),
        );
        Err(if state.transient {
            err.set_temporary()
        } else {
            err
        })
    }
}

#[derive(Debug)]
pub struct FaultLayer(Faults);

impl Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService {
            inner,
            faults: self.0.clone(),
        })
    }
}

#[derive(Debug)]
pub struct FaultService {
    inner: Servicer,
    faults: Faults,
}

impl Service for FaultService {
    type Reader = oio::Reader;
    type Writer = FaultWriter;
    type Lister = oio::Lister;
    type Deleter = FaultDeleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> Result<RpCreateDir> {
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        self.faults.hit(Call::Stat)?;
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<oio::Reader> {
        self.faults.hit(Call::Read)?;
        self.inner.read(ctx, path, args)
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<FaultWriter> {
        Ok(FaultWriter {
            inner: self.inner.write(ctx, path, args)?,
            faults: self.faults.clone(),
        })
    }

    fn delete(&self, ctx: &OperationContext) -> Result<FaultDeleter> {
        Ok(FaultDeleter {
            inner: self.inner.delete(ctx)?,
            faults: self.faults.clone(),
        })
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<oio::Lister> {
        self.faults.hit(Call::List)?;
        self.inner.list(ctx, path, args)
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<oio::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<oio::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> Result<RpRename> {
        self.faults.hit(Call::Rename)?;
        self.inner.rename(ctx, from, to, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

pub struct FaultWriter {
    inner: oio::Writer,
    faults: Faults,
}

impl oio::Write for FaultWriter {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        if let Err(e) = self.faults.hit(Call::Write) {
            if !e.is_temporary() {
                // Part of the data reaches the storage, as when a connection drops mid-upload.
                let half = bs.slice(..bs.len() / 2);
                self.inner.write(half).await?;
            }
            return Err(e);
        }
        self.inner.write(bs).await
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.faults.hit(Call::Close)?;
        self.inner.close().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

pub struct FaultDeleter {
    inner: oio::Deleter,
    faults: Faults,
}

impl oio::Delete for FaultDeleter {
    async fn delete(&mut self, path: &str, args: OpDelete) -> Result<()> {
        self.faults.hit(Call::Delete)?;
        self.inner.delete(path, args).await
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}
