//! Upkeep of a device pool: dynamic strategy selection (the class threshold), trimming,
//! decay, the pressure figures and the error a failed growth becomes. The cleanup engine
//! (`crate::cleanup`) decides when these run; the pool only does them.

use super::*;

/// What a trim gave back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrimReport {
    /// Cached blocks moved from this thread's cache to the central lists.
    pub cached_blocks_flushed: usize,
    /// Slabs handed back from size classes to the large pool.
    pub slabs_released: usize,
    /// Chunks given back to the device.
    pub chunks_released: usize,
    /// Bytes of those chunks: mapped bytes (the fall of `mapped_bytes`). Their pages may
    /// have been handed back before, so this is not the fall of `reserved_bytes`.
    pub bytes_released: usize,
    /// Bytes of free blocks whose pages were handed back (the chunks stay mapped).
    pub bytes_purged: usize,
    /// The fall of reserved (committed) bytes over the trim, as the metrics count them
    /// (filled by `MemoryManager::trim`; 0 from a pool's own trim).
    pub reserved_released: usize,
}

impl std::ops::AddAssign for TrimReport {
    fn add_assign(&mut self, o: Self) {
        self.cached_blocks_flushed += o.cached_blocks_flushed;
        self.slabs_released += o.slabs_released;
        self.chunks_released += o.chunks_released;
        self.bytes_released += o.bytes_released;
        self.bytes_purged += o.bytes_purged;
        self.reserved_released += o.reserved_released;
    }
}

/// Chunks and bytes a trim or decay released: `r`, what its own release gave back, and on
/// a device that releases chunks at frees, those its reclaim of pending frees released too
/// (all the large pool released since its count was `before`).
fn released_since(
    large: &LargePool,
    before: (usize, usize),
    r: crate::pool::large::Released,
) -> (usize, usize) {
    if large.release_on_empty {
        let now = large.released_total;
        (now.0 - before.0, now.1 - before.1)
    } else {
        (r.chunks, r.bytes)
    }
}

impl DevicePool {
    /// Dynamic strategy selection (see [`super::adaptive`]): evaluates the waste and
    /// traffic since the last call and moves the threshold if they say so. Returns the
    /// old and new threshold and the reason.
    pub(crate) fn adapt(&self) -> Option<(usize, usize, String)> {
        let mut st = self.adapt_state.lock();
        let requests = self.band_requests.load(Relaxed);
        let uncacheable = self.uncacheable_requests.load(Relaxed);
        let seconds = st.at.elapsed().as_secs_f64();
        st.since_switch = st.since_switch.saturating_add(1);
        let current = self.class_limit.load(SeqCst);
        if current & FIXED != 0 {
            return None;
        }
        let metrics = self.metrics();
        let decision = crate::pool::adaptive::decide(&crate::pool::adaptive::Observation {
            threshold: current,
            max_threshold: self.max_class_limit,
            metrics: &metrics,
            band_requests: requests - st.band_requests,
            seconds,
            since_switch: st.since_switch,
            cached_limit: self.cached_limit(),
            uncacheable_requests: uncacheable - st.uncacheable_requests,
        });
        st.at = std::time::Instant::now();
        st.band_requests = requests;
        st.uncacheable_requests = uncacheable;
        let s = decision?;
        // Fails if an adapter pinned the threshold meanwhile: then it stays.
        self.class_limit
            .compare_exchange(current, s.threshold, SeqCst, SeqCst)
            .ok()?;
        st.since_switch = 0;
        if s.threshold < current {
            // Blocks of the classes now above the threshold would wait in the caches for
            // requests that no longer come: every thread flushes at its next free.
            for c in self.caches.iter() {
                c.flush_requested.store(true, Relaxed);
            }
        }
        Some((current, s.threshold, s.reason))
    }

    /// Gives back what is not owned: this thread's cached blocks, empty slabs, empty
    /// chunks. Other threads' caches are flushed by those threads at their next free.
    pub fn trim(&self) -> TrimReport {
        // Chunks released from here on are this trim's (on a device that cannot
        // decommit, a reclaimed free may release its chunk at once).
        let before = self.large.lock().released_total;
        // Pending frees whose GPU work has finished can be released too.
        self.reclaim();
        let mut report = TrimReport::default();
        for c in self.caches.iter() {
            c.flush_requested.store(true, Relaxed);
        }
        if let Some(c) = self.caches.get() {
            c.flush_requested.store(false, Relaxed);
            report.cached_blocks_flushed = self.flush_all(c);
        }
        let (mut large, slabs) = self.return_empty_slabs();
        report.slabs_released = slabs;
        let r = large.release_empty(&*self.backend);
        report.bytes_purged = large.purge_to(0, &*self.backend);
        (report.chunks_released, report.bytes_released) = released_since(&large, before, r);
        report
    }

    /// Hands every wholly free slab of every class back to the large pool; returns the
    /// large pool, still locked, and how many slabs went back.
    fn return_empty_slabs(&self) -> (parking_lot::MutexGuard<'_, LargePool>, usize) {
        // On the system allocator: pushing happens under a class lock, and the pool may
        // be the global allocator.
        let mut slabs = crate::pool::strategy::SysVec::new_in(std::alloc::System);
        for central in self.central.iter() {
            central.lock().release_empty_slabs(|s| slabs.push(s));
        }
        let mut large = self.large.lock();
        let n = slabs.len();
        for s in slabs {
            large.free_slab(s.block);
        }
        (large, n)
    }

    /// Releases what has been idle: empty slabs, pages of free blocks freed more than
    /// `idle_ms` ago, chunks empty for that long.
    pub fn decay(&self, idle_ms: u64) -> TrimReport {
        let before = self.large.lock().released_total;
        self.reclaim();
        let mut report = TrimReport::default();
        let (mut large, slabs) = self.return_empty_slabs();
        report.slabs_released = slabs;
        let idle_before = large.now_ms().saturating_sub(idle_ms);
        report.bytes_purged = large.purge_idle(idle_before, &*self.backend);
        let r = large.release_idle(&*self.backend, idle_before);
        (report.chunks_released, report.bytes_released) = released_since(&large, before, r);
        report
    }

    /// Inputs of the pressure level: mapped bytes, budget, device capacity and what the
    /// device has left.
    pub fn pressure_inputs(&self) -> (usize, Option<usize>, Option<usize>, Option<usize>) {
        let mapped = self.large.lock().reserved;
        (
            mapped,
            (self.budget != usize::MAX).then_some(self.budget),
            self.backend.capacity(),
            self.backend.available(),
        )
    }

    /// The large pool's cumulative counters, read together under its lock: what a cleanup
    /// is validated against.
    pub fn ledger(&self) -> crate::pool::PoolLedger {
        let l = self.large.lock();
        crate::pool::PoolLedger {
            mapped: l.reserved,
            committed: l.committed(),
            grown: l.grown_total,
            released: l.released_total.1,
            purged: l.purged_total,
        }
    }

    /// The measured cost of large-pool operations under each strategy used.
    pub fn large_timing(&self) -> Vec<crate::pool::StrategyTiming> {
        let t = self.large.lock().timing();
        t.iter()
            .map(
                |&(strategy, timed_ops, timed_ns)| crate::pool::StrategyTiming {
                    strategy: strategy.to_string(),
                    timed_ops,
                    timed_ns,
                },
            )
            .collect()
    }

    /// Free bytes of the large pool whose pages may be resident.
    pub fn dirty_free_bytes(&self) -> usize {
        self.large.lock().resident_free_bytes()
    }

    /// The error to report for a request of `size` bytes that failed with `e`.
    pub(crate) fn grow_error(&self, e: GrowError, size: usize) -> MemoryError {
        let m = self.metrics();
        match e {
            GrowError::Budget { needed } => MemoryError::BudgetExceeded {
                device: self.id,
                requested: size,
                needed,
                budget: self.budget,
                reserved: m.reserved_bytes,
                live: m.live_bytes,
            },
            GrowError::TooLarge { limit, name } => MemoryError::TooLarge {
                device: self.id,
                size,
                limit,
                limit_name: name,
            },
            GrowError::Device(cause) if cause.lost => MemoryError::DeviceUnavailable {
                what: format!(
                    "{} ({}) refused {size} B: {}",
                    self.id,
                    self.backend.name(),
                    cause.reason
                ),
            },
            GrowError::Device(cause) => {
                let free = m.free_bytes();
                MemoryError::OutOfMemory {
                    device: self.id,
                    requested: size,
                    reserved: m.reserved_bytes,
                    live: m.live_bytes,
                    largest_free: m.large.largest_free,
                    free,
                    fragmentation: 100.0 * m.external_fragmentation(),
                    cause: cause.reason,
                    pool_report: m.fragmentation.to_string(),
                }
            }
        }
    }
}
