//! [`StatsAlloc`]: exact heap counts for tests, in the manner of dhat-rs's heap testing
//! (`dhat::HeapStats`): blocks and bytes allocated in total, live now and at the peak,
//! with [`StatsAlloc::reset_peak`] to measure the peak of one phase.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts of a [`StatsAlloc`], as `dhat::HeapStats` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Blocks allocated since the start (a `realloc` counts as one more block).
    pub total_blocks: u64,
    /// Bytes allocated since the start (a `realloc` counts its new size).
    pub total_bytes: u64,
    /// Blocks live now.
    pub curr_blocks: usize,
    /// Bytes live now.
    pub curr_bytes: usize,
    /// Blocks live at the byte peak ([`max_bytes`](Self::max_bytes)).
    pub max_blocks: usize,
    /// Highest [`curr_bytes`](Self::curr_bytes) since the start or the last
    /// [`StatsAlloc::reset_peak`].
    pub max_bytes: usize,
}

impl HeapStats {
    /// What happened between `earlier` and `self`: blocks and bytes allocated meanwhile,
    /// and the change of what is live (negative: freed more than allocated), the peak as
    /// it is in `self`.
    pub fn since(&self, earlier: &HeapStats) -> HeapDelta {
        HeapDelta {
            blocks: self.total_blocks.saturating_sub(earlier.total_blocks),
            bytes: self.total_bytes.saturating_sub(earlier.total_bytes),
            live_blocks: self.curr_blocks as i64 - earlier.curr_blocks as i64,
            live_bytes: self.curr_bytes as i64 - earlier.curr_bytes as i64,
        }
    }
}

/// The difference of two [`HeapStats`] ([`HeapStats::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapDelta {
    /// Blocks allocated.
    pub blocks: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Change of live blocks.
    pub live_blocks: i64,
    /// Change of live bytes.
    pub live_bytes: i64,
}

/// A [`GlobalAlloc`] that passes every request to `A` and counts it exactly (requested
/// sizes, as dhat counts them): wrap [`PoolAlloc`](super::PoolAlloc), `System`, or any
/// other allocator.
///
/// The counts are process-wide, like dhat's: every thread's allocations are in them,
/// the test harness's too. Tests that assert exact figures run in a test binary of their
/// own with `harness = false` (libtest's threads allocate while a test runs), or compare
/// [`stats`](Self::stats) before and after a section that nothing else runs beside.
///
/// ```no_run
/// use bitnet_memory::adapters::{PoolAlloc, StatsAlloc};
///
/// #[global_allocator]
/// static GLOBAL: StatsAlloc<PoolAlloc> = StatsAlloc::new(PoolAlloc::new());
///
/// fn main() {
///     let before = GLOBAL.stats();
///     let v = vec![0u8; 1000];
///     let d = GLOBAL.stats().since(&before);
///     assert_eq!((d.blocks, d.bytes), (1, 1000));
///     drop(v);
///     GLOBAL.reset_peak();                              // the next phase's own peak
///     assert_eq!(GLOBAL.stats().max_bytes, GLOBAL.stats().curr_bytes);
/// }
/// ```
///
/// **Cost.** Five relaxed atomic updates per allocation (three per free), and a
/// compare-exchange loop when a new peak is set: shared cache lines between threads, so
/// this is a test tool, not a production allocator.
pub struct StatsAlloc<A> {
    inner: A,
    total_blocks: AtomicUsize,
    total_bytes: AtomicUsize,
    curr_blocks: AtomicUsize,
    curr_bytes: AtomicUsize,
    max_blocks: AtomicUsize,
    max_bytes: AtomicUsize,
}

impl<A> StatsAlloc<A> {
    /// Counts what `inner` serves.
    pub const fn new(inner: A) -> Self {
        Self {
            inner,
            total_blocks: AtomicUsize::new(0),
            total_bytes: AtomicUsize::new(0),
            curr_blocks: AtomicUsize::new(0),
            curr_bytes: AtomicUsize::new(0),
            max_blocks: AtomicUsize::new(0),
            max_bytes: AtomicUsize::new(0),
        }
    }

    /// The wrapped allocator (e.g. [`PoolAlloc::manager`](super::PoolAlloc::manager)).
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The counts now. Exact when no other thread allocates while they are read.
    pub fn stats(&self) -> HeapStats {
        HeapStats {
            total_blocks: self.total_blocks.load(Relaxed) as u64,
            total_bytes: self.total_bytes.load(Relaxed) as u64,
            curr_blocks: self.curr_blocks.load(Relaxed),
            curr_bytes: self.curr_bytes.load(Relaxed),
            max_blocks: self.max_blocks.load(Relaxed),
            max_bytes: self.max_bytes.load(Relaxed),
        }
    }

    /// Starts the peak again from what is live now.
    pub fn reset_peak(&self) {
        self.max_bytes.store(self.curr_bytes.load(Relaxed), Relaxed);
        self.max_blocks
            .store(self.curr_blocks.load(Relaxed), Relaxed);
    }

    fn on_alloc(&self, size: usize) {
        self.total_blocks.fetch_add(1, Relaxed);
        self.total_bytes.fetch_add(size, Relaxed);
        let blocks = self.curr_blocks.fetch_add(1, Relaxed) + 1;
        let bytes = self.curr_bytes.fetch_add(size, Relaxed) + size;
        let mut max = self.max_bytes.load(Relaxed);
        while bytes > max {
            match self
                .max_bytes
                .compare_exchange_weak(max, bytes, Relaxed, Relaxed)
            {
                Ok(_) => {
                    self.max_blocks.store(blocks, Relaxed);
                    break;
                }
                Err(m) => max = m,
            }
        }
    }

    fn on_free(&self, size: usize) {
        self.curr_blocks.fetch_sub(1, Relaxed);
        self.curr_bytes.fetch_sub(size, Relaxed);
    }
}

// SAFETY: every request is passed to `inner` unchanged, with the caller's guarantees;
// the counters are only updated after a successful allocation and before a free, and do
// not touch the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for StatsAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are those `inner.alloc` needs.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            self.on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            self.on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.on_free(layout.size());
        // SAFETY: `ptr` was allocated by `self`, so by `inner`, with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `inner` with `layout`; the caller's guarantees for
        // `new_size` are those `inner.realloc` needs.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // As dhat counts it: the old block goes, a new one of `new_size` comes.
            self.on_free(layout.size());
            self.on_alloc(new_size);
        }
        p
    }
}
