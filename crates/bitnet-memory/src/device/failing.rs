//! A backend that fails on demand, so out-of-memory and trimming paths run in tests.

use super::{Chunk, CpuBackend, Decommit, DeviceBackend, DeviceError, HugePages};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Wraps [`CpuBackend`] and refuses chunks when told to: always, after a number of
/// successes, or past a capacity in bytes. Counts chunks in and out.
///
/// Cloning gives another handle to the same counters, so a test can keep one and hand the
/// other to the manager.
#[derive(Debug, Clone, Default)]
pub struct FailingBackend {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    inner: CpuBackend,
    fail_all: AtomicBool,
    /// Successful allocations left before failing; `usize::MAX` means unlimited.
    successes_left: AtomicUsize,
    /// Capacity in bytes; `usize::MAX` means unlimited.
    capacity: AtomicUsize,
    outstanding: AtomicUsize,
    allocated_chunks: AtomicUsize,
    released_chunks: AtomicUsize,
    refusals: AtomicUsize,
}

impl FailingBackend {
    /// A backend that succeeds until told otherwise.
    pub fn new() -> Self {
        let b = Self::default();
        b.state.successes_left.store(usize::MAX, Ordering::SeqCst);
        b.state.capacity.store(usize::MAX, Ordering::SeqCst);
        b
    }

    /// Refuse every chunk (`true`) or none (`false`).
    pub fn set_fail_all(&self, fail: bool) {
        self.state.fail_all.store(fail, Ordering::SeqCst);
    }

    /// Succeed `n` more times, then refuse.
    pub fn fail_after(&self, n: usize) {
        self.state.successes_left.store(n, Ordering::SeqCst);
    }

    /// Refuse any chunk that would take outstanding chunk bytes past `bytes`.
    pub fn set_capacity(&self, bytes: usize) {
        self.state.capacity.store(bytes, Ordering::SeqCst);
    }

    /// Bytes in chunks handed out and not yet released.
    pub fn outstanding_bytes(&self) -> usize {
        self.state.outstanding.load(Ordering::SeqCst)
    }

    /// Chunks handed out so far.
    pub fn allocated_chunks(&self) -> usize {
        self.state.allocated_chunks.load(Ordering::SeqCst)
    }

    /// Chunks given back so far.
    pub fn released_chunks(&self) -> usize {
        self.state.released_chunks.load(Ordering::SeqCst)
    }

    /// Requests refused so far.
    pub fn refusals(&self) -> usize {
        self.state.refusals.load(Ordering::SeqCst)
    }

    fn refuse(&self, size: usize, align: usize, reason: &str) -> DeviceError {
        self.state.refusals.fetch_add(1, Ordering::SeqCst);
        DeviceError {
            size,
            align,
            reason: reason.to_string(),
            lost: false,
        }
    }
}

impl DeviceBackend for FailingBackend {
    fn name(&self) -> &str {
        "cpu-failing"
    }

    fn host_visible(&self) -> bool {
        true
    }

    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        let s = &self.state;
        if s.fail_all.load(Ordering::SeqCst) {
            return Err(self.refuse(size, align, "injected failure"));
        }
        let cap = s.capacity.load(Ordering::SeqCst);
        if s.outstanding.load(Ordering::SeqCst).saturating_add(size) > cap {
            return Err(self.refuse(size, align, "injected capacity limit"));
        }
        let left = s.successes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(self.refuse(size, align, "injected failure after n successes"));
        }
        if left != usize::MAX {
            s.successes_left.store(left - 1, Ordering::SeqCst);
        }
        let chunk = s.inner.allocate_chunk(size, align)?;
        s.outstanding.fetch_add(chunk.size, Ordering::SeqCst);
        s.allocated_chunks.fetch_add(1, Ordering::SeqCst);
        Ok(chunk)
    }

    fn release_chunk(&self, chunk: Chunk) {
        self.state
            .outstanding
            .fetch_sub(chunk.size, Ordering::SeqCst);
        self.state.released_chunks.fetch_add(1, Ordering::SeqCst);
        self.state.inner.release_chunk(chunk);
    }

    fn decommit(&self) -> Option<&dyn Decommit> {
        self.state.inner.decommit()
    }

    fn huge_pages(&self) -> Option<&dyn HugePages> {
        self.state.inner.huge_pages()
    }

    fn capacity(&self) -> Option<usize> {
        let cap = self.state.capacity.load(Ordering::SeqCst);
        (cap != usize::MAX).then_some(cap)
    }

    fn available(&self) -> Option<usize> {
        let cap = self.state.capacity.load(Ordering::SeqCst);
        (cap != usize::MAX).then(|| cap.saturating_sub(self.outstanding_bytes()))
    }
}
