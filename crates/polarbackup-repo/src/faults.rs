//! `FaultLayer`: an opendal layer that makes chosen storage calls fail, stall or corrupt
//! data, to test what the repository and the backups on it do when the backend misbehaves.
//! Test-only: the repository's own tests include this file, and other crates' tests get it
//! as `polarbackup_repo::faults` with the `fault-injection` feature.
//!
//! Calls are counted per kind from 1. A failing object `Write` first passes half of its
//! bytes on, so the storage may keep a short object; a failing `Close` never closes the
//! object underneath. Every other kind fails before reaching the storage. A delayed `Write`
//! or `Read` waits before it goes on; a corrupted one flips a bit in the middle of the bytes
//! it passes (a `Read`: of the first bytes it returns), as a bad disk or link would.
//!
//! `Faults::transient` makes the injected errors temporary, as a dropped connection or a 503
//! is, for a retry layer above this one to recover from; a failing `Write` then passes
//! nothing on (a retried part is sent whole again).
#![allow(dead_code)] // shared by the contract suite and tests/s3.rs, which use different parts

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opendal::raw::*;
use opendal::{
    Buffer, BytesRange, Capability, Error, ErrorKind, Metadata, OperationContext, Result,
};

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

/// What a rule does to the calls it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Fail,
    Delay(Duration),
    Corrupt,
}

#[derive(Debug)]
struct Rule {
    call: Call,
    first: usize,
    last: usize,
    effect: Effect,
}

/// What a call that did not fail must do to its data.
#[derive(Debug, Clone, Copy, Default)]
struct Hit {
    delay: Option<Duration>,
    corrupt: bool,
}

impl Hit {
    /// Waits as planned, then damages `bs` if planned.
    async fn apply(self, bs: Buffer) -> Buffer {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        if !self.corrupt || bs.is_empty() {
            return bs;
        }
        let mut bytes = bs.to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        Buffer::from(bytes)
    }
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
        self.add(call, n, n, Effect::Fail);
    }

    /// Fails the `n`th call of this kind and every later one.
    pub fn fail_from(&self, call: Call, n: usize) {
        self.add(call, n, usize::MAX, Effect::Fail);
    }

    /// Delays the `n`th `Write` or `Read` and every later one by `delay`.
    pub fn delay_from(&self, call: Call, n: usize, delay: Duration) {
        self.add(call, n, usize::MAX, Effect::Delay(delay));
    }

    /// Flips a bit in the data of the `n`th `Write` or `Read` (and no other).
    pub fn corrupt_nth(&self, call: Call, n: usize) {
        self.add(call, n, n, Effect::Corrupt);
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

    fn add(&self, call: Call, first: usize, last: usize, effect: Effect) {
        self.state().rules.push(Rule {
            call,
            first,
            last,
            effect,
        });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one call; the error to return if it is to fail, else what to do to its data.
    fn hit(&self, call: Call) -> Result<Hit> {
        let mut state = self.state();
        let n = {
            let count = state.counts.entry(call).or_default();
            *count += 1;
            *count
        };
        let mut hit = Hit::default();
        let mut fail = false;
        for r in state
            .rules
            .iter()
            .filter(|r| r.call == call && (r.first..=r.last).contains(&n))
        {
            match r.effect {
                Effect::Fail => fail = true,
                Effect::Delay(d) => hit.delay = Some(d),
                Effect::Corrupt => hit.corrupt = true,
            }
        }
        if !fail {
            return Ok(hit);
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
    type Reader = FaultReader;
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

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<FaultReader> {
        let hit = self.faults.hit(Call::Read)?;
        Ok(FaultReader {
            inner: self.inner.read(ctx, path, args)?,
            hit,
        })
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
        let hit = match self.faults.hit(Call::Write) {
            Ok(hit) => hit,
            Err(e) => {
                if !e.is_temporary() {
                    // Part of the data reaches the storage, as when a connection drops mid-upload.
                    let half = bs.slice(..bs.len() / 2);
                    self.inner.write(half).await?;
                }
                return Err(e);
            }
        };
        let bs = hit.apply(bs).await;
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

/// An object being read: the planned delay before its bytes, the damage to its first ones.
pub struct FaultReader {
    inner: oio::Reader,
    hit: Hit,
}

impl oio::Read for FaultReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let (rp, stream) = oio::Read::open(&self.inner, range).await?;
        let stream = FaultStream {
            inner: stream,
            hit: Some(self.hit),
        };
        Ok((rp, Box::new(stream)))
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        let (rp, bs) = oio::Read::read(&self.inner, range).await?;
        Ok((rp, self.hit.apply(bs).await))
    }
}

struct FaultStream {
    inner: Box<dyn oio::ReadStreamDyn>,
    /// Taken by the first non-empty read.
    hit: Option<Hit>,
}

impl oio::ReadStream for FaultStream {
    async fn read(&mut self) -> Result<Buffer> {
        let bs = oio::ReadStream::read(&mut self.inner).await?;
        match self.hit {
            Some(hit) if !bs.is_empty() => {
                self.hit = None;
                Ok(hit.apply(bs).await)
            }
            _ => Ok(bs),
        }
    }
}
