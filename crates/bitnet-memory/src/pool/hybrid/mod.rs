//! The pool of one device: size classes with thread caches for small requests, a
//! large-block strategy for the rest, the budget, trimming and the counters.
//!
//! A device that counts submissions (a GPU: [`Submissions`](crate::device::Submissions))
//! gets no thread caches, and its frees wait in a pending list until the GPU work that
//! may still use them has finished (`fence.rs`); a device with limits
//! ([`DeviceLimits`]) has every request's alignment raised to its offset alignment and
//! requests above its largest block or chunk refused.
#![deny(unsafe_code)]

mod fence;
mod flush;
mod guard;
mod limits;
use limits::large_pool;
mod maintain;
mod optimize;
mod report;
mod resize;

pub use maintain::TrimReport;

use crate::device::{DeviceBackend, DeviceId, DeviceLimits, DeviceRange};
use crate::error::MemoryError;
use crate::pool::central::Central;
use crate::pool::config::{PoolConfig, Strategy};
use crate::pool::fragmentation;
use crate::pool::large::{Grant, GrowError, LargePool};
use crate::pool::size_class::{self, SLAB_ALIGN};
use crate::pool::snapshot::PoolSnapshot;
use crate::pool::stats::{ClassStats, LargePoolStats, PoolStats, SmallPoolStats};
use crate::pool::strategy::BlockStrategy;
use crate::pool::thread_cache::{CacheLayout, ThreadCache};
use crate::pool::{buddy::Buddy, tlsf::Tlsf};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::cell::Cell;
use std::sync::atomic::{
    AtomicI64, AtomicU64, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use thread_local::ThreadLocal;

/// Token bit marking a small (size-class) block; the low bits are the class.
pub const SMALL: u64 = 1 << 63;
/// Token of a zero-sized allocation (no memory).
pub const ZERO: u64 = u64::MAX;

thread_local! {
    /// Set while this thread creates its cache, so that allocations made by that creation
    /// (when the pool is the global allocator) do not recurse into it.
    static CREATING_CACHE: Cell<bool> = const { Cell::new(false) };
}

/// The pool of one device.
pub struct DevicePool {
    pub(crate) id: DeviceId,
    /// Called on the thread that just created its cache here (the manager uses it to
    /// flush the cache when that thread exits: see [`flush_this_thread`]).
    ///
    /// [`flush_this_thread`]: Self::flush_this_thread
    on_new_cache: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Held while an exiting thread flushes its cache, and by readers of the whole pool.
    exit_flush: Mutex<()>,
    pub(crate) backend: Box<dyn DeviceBackend>,
    pub(crate) host_visible: bool,
    /// Largest rounded request served by classes; with [`FIXED`] once it may no longer
    /// move (a fixed strategy, or an allocator adapter used the pool).
    class_limit: AtomicUsize,
    /// The configured threshold: the most `class_limit` may be.
    max_class_limit: usize,
    /// Large-pool requests at or under `max_class_limit` (served there because the
    /// threshold was lowered) since the start; read by [`adapt`](Self::adapt).
    band_requests: AtomicU64,
    /// Requests served by one-block classes that no cache keeps, since the start.
    uncacheable_requests: AtomicU64,
    adapt_state: Mutex<AdaptState>,
    layout: CacheLayout,
    central: Box<[CachePadded<Mutex<Central>>]>,
    large: Mutex<LargePool>,
    /// Each thread's cache, on lines of its own (see `thread_cache`).
    caches: ThreadLocal<CachePadded<ThreadCache>>,
    budget: usize,
    retain_fraction: f64,
    min_retain: usize,
    published_live: CachePadded<AtomicI64>,
    peak_live: AtomicI64,
    /// Operations made without a thread cache (a thread creating its cache).
    uncached_allocs: AtomicU64,
    /// What the device can never serve.
    limits: DeviceLimits,
    /// The backend counts submissions: frees wait in `pending` (see `fence.rs`).
    fenced: bool,
    /// Freed blocks waiting for the device's work to finish, oldest first.
    pending: Mutex<std::collections::VecDeque<fence::PendingBlock>>,
    /// `pending.len()`, read without the lock to skip reclaiming when there is nothing.
    pending_blocks: AtomicUsize,
    /// The last submission a wait before growth timed out on (`fence.rs`).
    fence_gave_up: AtomicU64,
    /// The large-block strategy may be switched by the optimizer.
    switch_large_strategy: bool,
    /// The optimizer's memory of this pool's strategies.
    optimizer: Mutex<optimize::OptimizerState>,
}

/// Bit of `class_limit` that pins it.
const FIXED: usize = 1 << (usize::BITS - 1);

/// What [`DevicePool::adapt`] remembers between evaluations.
struct AdaptState {
    at: std::time::Instant,
    band_requests: u64,
    uncacheable_requests: u64,
    since_switch: u32,
}

impl DevicePool {
    /// A pool over `backend` configured by `config`.
    pub fn new(id: DeviceId, backend: Box<dyn DeviceBackend>, config: &PoolConfig) -> Self {
        let strategy: Box<dyn BlockStrategy> = match config.strategy {
            Strategy::BuddySystem => Box::new(Buddy::new()),
            _ => Box::new(Tlsf::new()),
        };
        let limits = backend.limits();
        let no_decommit = backend.decommit().is_none();
        let fenced = backend.submissions().is_some();
        // Thread caches would hand a freed block out again at once (fenced devices) and
        // serve requests without raising their alignment (devices with an offset
        // alignment): such devices go through the central lists every time.
        let thread_cache = config.thread_cache && !fenced && limits.min_align <= 1;
        let class_limit = config.class_limit;
        let nclasses = size_class::classes_for_threshold(class_limit);
        // The threshold is rounded up to its class.
        let class_limit = if nclasses == 0 {
            0
        } else {
            size_class::class_size(nclasses - 1)
        };
        let caps = (0..nclasses).map(|c| {
            if thread_cache {
                let bytes = config.thread_cache_bytes;
                (
                    size_class::cache_capacity(c, bytes),
                    size_class::cache_max(c, bytes, config.thread_cache_growth),
                )
            } else {
                (0, 0)
            }
        });
        Self {
            id,
            on_new_cache: std::sync::OnceLock::new(),
            exit_flush: Mutex::new(()),
            host_visible: backend.host_visible(),
            backend,
            class_limit: AtomicUsize::new(if config.strategy == Strategy::Hybrid {
                class_limit
            } else {
                class_limit | FIXED
            }),
            max_class_limit: class_limit,
            band_requests: AtomicU64::new(0),
            uncacheable_requests: AtomicU64::new(0),
            adapt_state: Mutex::new(AdaptState {
                at: std::time::Instant::now(),
                band_requests: 0,
                uncacheable_requests: 0,
                since_switch: crate::pool::adaptive::COOLDOWN,
            }),
            layout: CacheLayout::new(caps),
            central: (0..nclasses)
                .map(|c| CachePadded::new(Mutex::new(Central::new(size_class::class_size(c)))))
                .collect(),
            large: Mutex::new(large_pool(strategy, config, &limits, no_decommit)),
            caches: ThreadLocal::new(),
            budget: config.budget.unwrap_or(usize::MAX),
            retain_fraction: config.retain_fraction,
            min_retain: config.min_retain,
            published_live: CachePadded::new(AtomicI64::new(0)),
            peak_live: AtomicI64::new(0),
            uncached_allocs: AtomicU64::new(0),
            limits,
            fenced,
            pending: Mutex::new(std::collections::VecDeque::new()),
            pending_blocks: AtomicUsize::new(0),
            fence_gave_up: AtomicU64::new(0),
            switch_large_strategy: config.switch_large_strategy,
            optimizer: Mutex::new(optimize::OptimizerState::default()),
        }
    }

    /// The size class serving `(size, align)`, if classes serve it.
    #[inline]
    pub fn class_for(&self, size: usize, align: usize) -> Option<usize> {
        // `align` is a power of two, so rounding up is a mask (no division), and neither
        // this nor the class computation can overflow: callers pass sizes that fit
        // `isize` once rounded up to the alignment.
        let rounded = (size + align - 1) & !(align - 1);
        let limit = self.class_limit.load(Relaxed) & !FIXED;
        (rounded <= limit && align <= SLAB_ALIGN).then(|| size_class::class_of(rounded))
    }

    /// The largest class whose blocks a thread cache may keep (0: none).
    fn cached_limit(&self) -> usize {
        (0..self.layout.classes())
            .rev()
            .find(|&c| self.layout.cap(c) > 0)
            .map_or(0, size_class::class_size)
    }

    /// The threshold now: the largest request served by size classes.
    pub fn class_threshold(&self) -> usize {
        self.class_limit.load(Relaxed) & !FIXED
    }

    /// Pins the threshold for good: the allocator adapters free by size and must find the
    /// class a size had when it was allocated.
    #[inline]
    fn fix_threshold(&self) {
        if self.class_limit.load(Relaxed) & FIXED == 0 {
            self.class_limit.fetch_or(FIXED, SeqCst);
        }
    }

    #[inline]
    fn cache(&self) -> Option<&ThreadCache> {
        match self.caches.get() {
            Some(c) => Some(c),
            None => self.cache_slow(),
        }
    }

    #[cold]
    fn cache_slow(&self) -> Option<&ThreadCache> {
        let busy = CREATING_CACHE.try_with(|f| f.replace(true)).unwrap_or(true);
        if busy {
            return None;
        }
        let mut created = false;
        let c = self.caches.get_or(|| {
            created = true;
            CachePadded::new(ThreadCache::new(&self.layout))
        });
        if created {
            if let Some(hook) = self.on_new_cache.get() {
                hook();
            }
        }
        let _ = CREATING_CACHE.try_with(|f| f.set(false));
        Some(c)
    }

    fn publish(&self, delta: i64, delta_max: i64) {
        let before = self.published_live.fetch_add(delta, Relaxed);
        self.peak_live.fetch_max(before + delta_max, Relaxed);
    }

    #[inline]
    fn note_alloc(&self, cache: Option<&ThreadCache>, size: usize) {
        match cache {
            Some(c) => {
                ThreadCache::bump(&c.allocs);
                if let Some((d, m)) = c.account(size as i64) {
                    self.publish(d, m);
                }
            }
            None => {
                self.uncached_allocs.fetch_add(1, Relaxed);
                self.publish(size as i64, size as i64);
            }
        }
    }

    #[inline]
    fn note_free(&self, cache: Option<&ThreadCache>, size: usize) {
        match cache {
            Some(c) => {
                if let Some((d, m)) = c.account(-(size as i64)) {
                    self.publish(d, m);
                }
            }
            None => {
                self.publish(-(size as i64), 0);
            }
        }
    }

    /// Makes the exact peak visible after a rare (large) operation of this thread.
    fn publish_now(&self, cache: Option<&ThreadCache>) {
        if let Some(c) = cache {
            let (d, m) = c.take_delta();
            self.publish(d, m);
        }
    }

    /// The hot path: a block of a size class from this thread's cache, or `None` when the
    /// request needs the slow path ([`allocate`](Self::allocate)).
    #[inline]
    pub fn allocate_cached(&self, size: usize, align: usize) -> Option<(usize, u64)> {
        let class = self.class_for(size, align)?;
        let c = self.caches.get()?;
        let addr = c.pop(&self.layout, class)?;
        self.note_alloc(Some(c), size);
        Some((addr, SMALL | class as u64))
    }

    /// Allocates `size` bytes (> 0) aligned to `align`, trimming and retrying once before
    /// failing: the pool-level path of the allocator adapters, which bypass tracking and
    /// events (the manager's own path does the same steps and reports them).
    pub fn allocate(&self, size: usize, align: usize) -> Result<(usize, u64), MemoryError> {
        self.fix_threshold();
        if let Some(r) = self.allocate_cached(size, align) {
            return Ok(r);
        }
        match self.allocate_once(size, align) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.trim();
                self.allocate_once(size, align)
                    .map_err(|e| self.grow_error(e, size))
            }
        }
    }

    /// Allocates `size` bytes (> 0) aligned to `align` when the hot path could not: an
    /// address and a token for [`free`](Self::free). No trim, no retry: the caller (the
    /// manager) decides that.
    pub(crate) fn allocate_once(
        &self,
        size: usize,
        align: usize,
    ) -> Result<(usize, u64), GrowError> {
        let align = self.admit(size, align)?;
        let cache = self.cache();
        if let Some(class) = self.class_for(size, align) {
            let addr = self.refill(cache, class, size)?;
            self.note_alloc(cache, size);
            return Ok((addr, SMALL | class as u64));
        }
        if size <= self.max_class_limit {
            self.band_requests.fetch_add(1, Relaxed);
        }
        self.allocate_large(cache, size, align)
    }

    /// A block of the large pool whatever the size (movable blocks always come from it).
    pub(crate) fn allocate_large_once(
        &self,
        size: usize,
        align: usize,
    ) -> Result<(usize, u64), GrowError> {
        let align = self.admit(size, align)?;
        self.allocate_large(self.cache(), size, align)
    }

    fn allocate_large(
        &self,
        cache: Option<&ThreadCache>,
        size: usize,
        align: usize,
    ) -> Result<(usize, u64), GrowError> {
        let mut large = self.large.lock();
        let b = large.allocate_user(size, align, &self.grant(size))?;
        self.note_alloc(cache, size);
        self.publish_now(cache);
        Ok((b.addr, b.token))
    }

    /// Compacts the movable `blocks` of this pool (see [`crate::pool::large::compact`]), under
    /// the large-pool lock, copies included.
    pub(crate) fn compact(
        &self,
        blocks: &[&crate::pool::large::compact::MoveCell],
        copy: &mut dyn FnMut(usize, usize, usize),
    ) -> crate::pool::large::compact::CompactStats {
        let mut large = self.large.lock();
        let stats = large.compact(blocks, &*self.backend, copy);
        // Moves may have filled clean holes (they do not ask the limit): hand back what
        // is over it now.
        large.purge_to(self.resident_limit_with(0), &*self.backend);
        stats
    }

    /// Serves one block of `class` from the central list, refilling the thread cache with a
    /// batch while the lock is held.
    fn refill(
        &self,
        cache: Option<&ThreadCache>,
        class: usize,
        size: usize,
    ) -> Result<usize, GrowError> {
        let mut central = self.central[class].lock();
        central.takes += 1;
        if size_class::is_single(class) {
            // One-block slabs: straight from the large pool, one at a time.
            let mut large = self.large.lock();
            // A block no cache can hold serves this request only: only `size` bytes of it
            // are ever touched.
            let class_size = size_class::class_size(class);
            let touch = if self.layout.cap(class) == 0 {
                self.uncacheable_requests.fetch_add(1, Relaxed);
                size
            } else {
                class_size
            };
            let block = large.allocate_single((class_size, touch), &self.grant(size))?;
            central.handed_out += 1;
            return Ok(block.addr);
        }
        if central.free_blocks() == 0 {
            let slab = size_class::slab_size(class);
            let block = self.large.lock().allocate_slab(slab, &self.grant(0))?;
            central.add_slab(block, slab);
        }
        let mut first = None;
        match cache {
            Some(c) if self.layout.cap(class) > 0 => {
                c.note_miss(&self.layout, class);
                let limit = c.limit(class);
                // The cache is usually empty here, but not always: a new thread may
                // inherit the cache of an exited one (thread ids are reused) before its
                // first lookup finds it. Take no more than fits.
                let room = limit.saturating_sub(c.len(class));
                central.take((limit / 2).clamp(1, room + 1), |a| {
                    if first.is_none() {
                        first = Some(a);
                    } else {
                        let pushed = c.push(&self.layout, class, a);
                        debug_assert!(pushed, "refill past the cache's room");
                    }
                });
            }
            _ => {
                central.take(1, |a| first = Some(a));
            }
        }
        if let Some((slab, from, to)) = central.newly_carved(crate::pool::resident::PAGE) {
            let mut large = self.large.lock();
            large.take_pages(&slab, from, to - from, &self.grant(size));
        }
        Ok(first.expect("a class with free blocks gives one"))
    }

    /// Frees a block given by [`allocate`](Self::allocate). `size` is the size asked for.
    #[inline]
    pub fn free(&self, addr: usize, token: u64, size: usize) {
        if token & SMALL != 0 {
            let class = (token & !SMALL) as usize;
            if let Some(c) = self.caches.get() {
                self.note_free(Some(c), size);
                if !c.flush_requested.load(Relaxed) && c.push(&self.layout, class, addr) {
                    return;
                }
                self.free_small_cached_slow(c, addr, class);
                return;
            }
            self.free_small_uncached(addr, class, size);
        } else {
            self.free_large(addr, token, size);
        }
    }

    /// The resident limit: committed memory the pool keeps at most, from the peak of live
    /// bytes so far (so the resident high-water mark stays close to the live peak), once
    /// `extra` more bytes are live (the request being served).
    fn resident_limit_with(&self, extra: usize) -> usize {
        let peak = self.peak_live.load(Relaxed).max(0) as usize;
        let now = self.published_live.load(Relaxed).max(0) as usize;
        let live = now.saturating_add(extra).max(peak);
        let scaled = (live as f64 * (1.0 + self.retain_fraction)) as usize;
        scaled.max(live.saturating_add(self.min_retain))
    }

    /// What a request of `size` bytes may take from the device: the backend, the budget,
    /// and the resident limit with the request counted as live (a request that raises the
    /// live peak raises the limit with it). Called with the large pool locked, just before
    /// the request, so that the limit is current.
    fn grant(&self, size: usize) -> Grant<'_> {
        Grant {
            backend: &*self.backend,
            budget: self.budget,
            resident_limit: self.resident_limit_with(size),
        }
    }

    /// The cache is full, has no room for the class, or another thread asked for a flush.
    #[cold]
    fn free_small_cached_slow(&self, c: &ThreadCache, addr: usize, class: usize) {
        if c.flush_requested.swap(false, Relaxed) {
            self.flush_all(c);
        }
        if c.push(&self.layout, class, addr) {
            return;
        }
        if self.layout.cap(class) > 0 {
            c.note_miss(&self.layout, class);
            // The limit may have grown: then the block fits without a drain.
            if c.push(&self.layout, class, addr) {
                return;
            }
            // Down to half the limit.
            let keep = c.limit(class) / 2;
            self.drain_cache(c, class, c.len(class).saturating_sub(keep).max(1));
            let pushed = c.push(&self.layout, class, addr);
            debug_assert!(pushed, "room after a drain");
        } else if self.fenced {
            self.defer(addr, SMALL | class as u64, size_class::class_size(class));
        } else {
            self.return_blocks(class, &[addr]);
        }
    }

    /// First free on a thread without a cache (a consumer that never allocated).
    #[cold]
    fn free_small_uncached(&self, addr: usize, class: usize, size: usize) {
        match self.cache() {
            Some(c) => {
                self.note_free(Some(c), size);
                if !c.push(&self.layout, class, addr) {
                    self.free_small_cached_slow(c, addr, class);
                }
            }
            None => {
                self.note_free(None, size);
                if self.fenced {
                    self.defer(addr, SMALL | class as u64, size_class::class_size(class));
                } else {
                    self.return_blocks(class, &[addr]);
                }
            }
        }
    }

    fn free_large(&self, addr: usize, token: u64, size: usize) {
        let cache = self.cache();
        let mut large = self.large.lock();
        if self.fenced {
            let (_, block) = large.user_block(addr).expect("live user block");
            self.defer(addr, token, block);
        } else {
            large.free_user_token(addr, token, &*self.backend);
        }
        self.note_free(cache, size);
        self.publish_now(cache);
    }

    /// Frees by address a block whose token the caller does not know (adapters that get
    /// only a pointer and a layout). `class` is what [`class_for`](Self::class_for) gave.
    pub fn free_by_addr(&self, addr: usize, class: Option<usize>, size: usize) -> bool {
        match class {
            Some(c) => {
                self.free(addr, SMALL | c as u64, size);
                true
            }
            None => {
                let cache = self.cache();
                let mut large = self.large.lock();
                if self.fenced {
                    let Some((token, block)) = large.user_block(addr) else {
                        return false;
                    };
                    self.defer(addr, token, block);
                } else if large.free_user(addr, &*self.backend).is_none() {
                    return false;
                }
                self.note_free(cache, size);
                self.publish_now(cache);
                true
            }
        }
    }
}

impl Drop for DevicePool {
    fn drop(&mut self) {
        // Allocations borrow the manager, so none can outlive it: every chunk is unowned
        // now (blocks forgotten with `mem::forget` are leaked, never used).
        self.large.get_mut().release_all(&*self.backend);
    }
}
