//! What a device pool says of itself: its counters ([`PoolStats`]), its layout as snapshot
//! rows, the figures the history reads, and the invariant checks.

use super::*;

impl DevicePool {
    /// Counters of this pool.
    pub fn metrics(&self) -> PoolStats {
        // Not while an exiting thread moves its cache (it would count blocks twice or not
        // at all); see `flush_this_thread`.
        let _exits = self.exit_flush.lock();
        let mut allocs = self.uncached_allocs.load(Relaxed);
        let mut live = self.published_live.load(Relaxed);
        let mut live_max = live;
        let mut cached = vec![0usize; self.central.len()];
        for c in self.caches.iter() {
            allocs += c.allocs.load(Relaxed);
            live += c.live_delta.load(Relaxed);
            live_max += c.delta_max.load(Relaxed).max(0);
            for (class, n) in cached.iter_mut().enumerate() {
                *n += c.len(class);
            }
        }
        // Blocks freed on a fenced device and not yet back: neither live nor free.
        let pending = self.pending_summary();
        let mut small = SmallPoolStats::default();
        // Grown before any class lock is taken: no allocation may happen under one (the
        // pool may be the global allocator).
        let mut layouts = Vec::with_capacity(self.central.len());
        small.classes.reserve(self.central.len());
        for (class, central) in self.central.iter().enumerate() {
            let central = central.lock();
            if central.slab_count() == 0 && central.handed_out == 0 {
                continue;
            }
            layouts.push(fragmentation::ClassLayout::capture(&central, cached[class]));
            let block_size = size_class::class_size(class);
            let live_blocks = central
                .handed_out
                .saturating_sub(cached[class] + pending.per_class[class]);
            let (slabs, slab_bytes) = if size_class::is_single(class) {
                // Each block handed out is its own one-block slab.
                (central.handed_out, central.handed_out * block_size)
            } else {
                (central.slab_count(), central.slab_bytes())
            };
            let cm = ClassStats {
                block_size,
                live_blocks,
                cached_blocks: cached[class],
                free_blocks: central.free_blocks(),
                slabs,
                slab_bytes,
                central_takes: central.takes,
                central_puts: central.puts,
            };
            small.live_blocks += live_blocks;
            small.live_block_bytes += live_blocks * block_size;
            small.cached_bytes += cm.cached_blocks * block_size;
            small.free_bytes += cm.free_blocks * block_size;
            small.slab_bytes += cm.slab_bytes;
            small.classes.push(cm);
        }
        // Read the large pool under its lock, then build the (allocating) report without
        // it: the pool may be the global allocator.
        let mut free_sizes = crate::pool::strategy::SysVec::new_in(std::alloc::System);
        let large = self.large.lock();
        large.free_block_sizes(&mut free_sizes);
        let (user_blocks, user_bytes) = (
            large.user_blocks() - pending.large_blocks,
            large.user_bytes - pending.large_bytes,
        );
        let (committed, peak_committed) = (large.committed(), large.peak_committed);
        let (mapped, purged, moved) = (large.reserved, large.purged_total, large.moved_total);
        let released = large.released_total;
        let strategy = large.strategy_name();
        let (large_free, largest_free, chunks) = (
            large.free_bytes(),
            large.largest_free(),
            large.chunk_count(),
        );
        drop(large);
        let live_allocations = small.live_blocks + user_blocks;
        // Every free ends one allocation, so frees need no counter of their own.
        let frees = allocs.saturating_sub(live_allocations as u64);
        let live_bytes = live.max(0) as usize;
        let peak = self.peak_live.load(Relaxed).max(live_max).max(0) as usize;
        PoolStats {
            device: self.id,
            backend: self.backend.name().to_string(),
            live_bytes,
            peak_live_bytes: peak.max(live_bytes),
            reserved_bytes: committed,
            peak_reserved_bytes: peak_committed,
            mapped_bytes: mapped,
            purged_bytes: purged,
            moved_bytes: moved,
            pending_free_bytes: pending.bytes,
            released_chunks: released.0,
            released_bytes: released.1,
            live_allocations,
            allocations: allocs,
            frees,
            budget: (self.budget != usize::MAX).then_some(self.budget),
            small_threshold: self.class_threshold(),
            small,
            large: LargePoolStats {
                strategy: strategy.to_string(),
                live_blocks: user_blocks,
                live_block_bytes: user_bytes,
                free_bytes: large_free,
                largest_free,
                chunks,
            },
            fragmentation: fragmentation::analyze(
                live_bytes,
                mapped,
                user_bytes,
                &mut layouts,
                &free_sizes,
            ),
        }
    }

    /// The pools of this device as snapshot data. `owner` names the allocation of a live
    /// block. Each class and the large pool are copied under their own lock, one after
    /// the other: exact when no other thread uses the pool, else each part is.
    pub(crate) fn snapshot_pools(
        &self,
        owner: crate::pool::snapshot::Owner<'_>,
    ) -> Vec<PoolSnapshot> {
        use crate::pool::strategy::SysVec;
        use std::alloc::System;
        // Thread caches are read as `check_invariants` reads them: plain atomic loads.
        // Pending blocks (fenced devices) are owned by no allocation: shown like cached.
        let mut cached: std::collections::HashSet<usize> =
            self.pending_summary().addrs.into_iter().collect();
        let mut tmp = Vec::new();
        for c in self.caches.iter() {
            for class in 0..self.central.len() {
                tmp.clear();
                c.peek(&self.layout, class, c.len(class), &mut tmp);
                cached.extend(tmp.iter().copied());
            }
        }
        let mut small = crate::pool::snapshot::SmallPoolBuilder::new(&cached, owner);
        for (class, central) in self.central.iter().enumerate() {
            if size_class::is_single(class) {
                continue; // one-block slabs are blocks of the large pool
            }
            let (mut slabs, mut free) = (SysVec::new_in(System), SysVec::new_in(System));
            let c = central.lock();
            slabs.extend_from_slice(c.slabs());
            free.extend_from_slice(c.free_list());
            let uncarved = c.uncarved();
            drop(c);
            small.add_class(size_class::class_size(class), &slabs, &free, uncarved);
        }
        let large = self.large.lock();
        let (layout, strategy) = (large.layout(), large.strategy_name());
        drop(large);
        vec![
            small.finish(),
            crate::pool::snapshot::large_pool(strategy, &layout, &cached, owner),
        ]
    }

    /// Committed bytes now (what `reserved_bytes` of the metrics reads).
    pub(crate) fn committed_now(&self) -> usize {
        self.large.lock().committed()
    }

    /// Live bytes now: the published count plus every thread's unpublished change (exact
    /// when no other thread is allocating).
    pub(crate) fn live_now(&self) -> usize {
        let live = self.published_live.load(Relaxed)
            + self
                .caches
                .iter()
                .map(|c| c.live_delta.load(Relaxed))
                .sum::<i64>();
        live.max(0) as usize
    }

    /// Checks what holds even while other threads use the pool: the large pool's blocks,
    /// chunks and byte accounts (a released chunk that still held a live block or slab
    /// breaks them). Cleanup runs it in test builds.
    #[cfg_attr(not(feature = "invariants"), allow(dead_code))]
    pub fn check_invariants_racy(&self) {
        self.large.lock().check_invariants();
    }

    /// Panics if an invariant of the pool does not hold.
    pub fn check_invariants(&self) {
        // An exiting thread's flush may still run after the thread was joined by a
        // scope (thread-local destructors run last): wait for it, or check before it.
        let _exits = self.exit_flush.lock();
        for (class, central) in self.central.iter().enumerate() {
            let mut cached = Vec::new();
            for c in self.caches.iter() {
                // Reading another thread's stack is a plain atomic read; a thread busy in
                // this pool may race with the check, so tests call it when quiescent.
                let n = c.len(class);
                let mut tmp = Vec::new();
                c.peek(&self.layout, class, n, &mut tmp);
                cached.extend(tmp);
            }
            central.lock().check_invariants(&cached);
        }
        self.large.lock().check_invariants();
    }
}
