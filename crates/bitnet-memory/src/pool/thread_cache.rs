//! Per-thread caches of small blocks, one LIFO stack per size class.
//!
//! Only the owning thread pushes and pops (the pool reaches a cache through
//! `ThreadLocal::get`, which hands each thread its own). Every field is an atomic so that
//! other threads may *read* the counters for metrics; the owner updates them with plain
//! relaxed loads and stores, which cost the same as ordinary memory accesses: there is no
//! atomic read-modify-write and no lock on this path.
#![deny(unsafe_code)]

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed,
};

/// Bytes of live-size change a thread accumulates before publishing it to the pool's
/// shared counter (one atomic add per this many bytes of net change).
pub const PUBLISH_BYTES: i64 = 1 << 20;

/// Layout of the stacks, shared by every cache of a pool: where each class's stack starts
/// in the buffer and how many blocks it holds.
#[derive(Debug)]
pub struct CacheLayout {
    /// Per class: (first slot in the buffer, capacity), side by side so a lookup touches
    /// one cache line.
    slots: Box<[(u32, u32)]>,
    total: usize,
}

impl CacheLayout {
    /// Stacks for `caps.len()` classes with the given capacities.
    pub fn new(caps: impl Iterator<Item = usize>) -> Self {
        let mut total = 0usize;
        let slots = caps
            .map(|c| {
                let slot = (total as u32, c as u32);
                total += c;
                slot
            })
            .collect();
        Self { slots, total }
    }

    /// Capacity of class `class`'s stack.
    #[inline]
    pub fn cap(&self, class: usize) -> usize {
        self.slots[class].1 as usize
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.slots.len()
    }
}

/// One thread's cache.
#[derive(Debug)]
pub struct ThreadCache {
    buf: Box<[AtomicUsize]>,
    len: Box<[AtomicU32]>,
    /// Net requested bytes allocated minus freed by this thread since the last publish.
    pub live_delta: AtomicI64,
    /// Highest value `live_delta` reached since the last publish.
    pub delta_max: AtomicI64,
    /// Allocations made by this thread (small and large).
    pub allocs: AtomicU64,
    /// Set by another thread that wants this cache emptied; the owner does it on its next
    /// operation.
    pub flush_requested: AtomicBool,
}

impl ThreadCache {
    /// An empty cache for `layout`.
    pub fn new(layout: &CacheLayout) -> Self {
        Self {
            buf: (0..layout.total).map(|_| AtomicUsize::new(0)).collect(),
            len: (0..layout.classes()).map(|_| AtomicU32::new(0)).collect(),
            live_delta: AtomicI64::new(0),
            delta_max: AtomicI64::new(0),
            allocs: AtomicU64::new(0),
            flush_requested: AtomicBool::new(false),
        }
    }

    /// Blocks cached for `class` (readable from any thread).
    #[inline]
    pub fn len(&self, class: usize) -> usize {
        self.len[class].load(Relaxed) as usize
    }

    /// Owner only: the most recently cached block of `class`.
    #[inline]
    pub fn pop(&self, layout: &CacheLayout, class: usize) -> Option<usize> {
        let len = &self.len[class];
        let n = len.load(Relaxed);
        if n == 0 {
            return None;
        }
        len.store(n - 1, Relaxed);
        Some(self.buf[(layout.slots[class].0 + n - 1) as usize].load(Relaxed))
    }

    /// Owner only: caches a block; `false` if the stack is full.
    #[inline]
    pub fn push(&self, layout: &CacheLayout, class: usize, addr: usize) -> bool {
        let len = &self.len[class];
        let n = len.load(Relaxed);
        let (start, cap) = layout.slots[class];
        if n == cap {
            return false;
        }
        self.buf[(start + n) as usize].store(addr, Relaxed);
        len.store(n + 1, Relaxed);
        true
    }

    /// Owner only: removes the `count` oldest blocks of `class` (the bottom of the stack,
    /// the coldest) and hands them to `sink`.
    pub fn drain_oldest(
        &self,
        layout: &CacheLayout,
        class: usize,
        count: usize,
        mut sink: impl FnMut(usize),
    ) {
        let n = self.len(class);
        let count = count.min(n);
        let base = layout.slots[class].0 as usize;
        for i in 0..count {
            sink(self.buf[base + i].load(Relaxed));
        }
        for i in count..n {
            let v = self.buf[base + i].load(Relaxed);
            self.buf[base + i - count].store(v, Relaxed);
        }
        self.len[class].store((n - count) as u32, Relaxed);
    }

    /// Whether `addr` is among the cached blocks of `class` (any thread may ask; the misuse
    /// guard of the allocator adapters does, without allocating).
    pub fn holds(&self, layout: &CacheLayout, class: usize, addr: usize) -> bool {
        let base = layout.slots[class].0 as usize;
        (0..self.len(class)).any(|i| self.buf[base + i].load(Relaxed) == addr)
    }

    /// Copies the first `n` entries of `class` (for the invariant checker).
    pub fn peek(&self, layout: &CacheLayout, class: usize, n: usize, out: &mut Vec<usize>) {
        let base = layout.slots[class].0 as usize;
        out.extend((0..n).map(|i| self.buf[base + i].load(Relaxed)));
    }

    /// Owner only: records a change of live bytes; returns the delta and its maximum
    /// when they are due to be published (and resets them).
    #[inline]
    pub fn account(&self, bytes: i64) -> Option<(i64, i64)> {
        let d = self.live_delta.load(Relaxed) + bytes;
        let m = self.delta_max.load(Relaxed);
        // |d| >= PUBLISH_BYTES in one unsigned comparison.
        if (d + PUBLISH_BYTES - 1) as u64 >= (2 * PUBLISH_BYTES - 1) as u64 {
            self.live_delta.store(0, Relaxed);
            self.delta_max.store(0, Relaxed);
            return Some((d, m.max(d)));
        }
        self.live_delta.store(d, Relaxed);
        if d > m {
            self.delta_max.store(d, Relaxed);
        }
        None
    }

    /// Owner only: takes the unpublished delta and its maximum (and resets them).
    pub fn take_delta(&self) -> (i64, i64) {
        let d = self.live_delta.load(Relaxed);
        let m = self.delta_max.load(Relaxed);
        self.live_delta.store(0, Relaxed);
        self.delta_max.store(0, Relaxed);
        (d, m.max(d))
    }

    /// Owner only: counts one operation.
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifo_per_class_and_drain_oldest_keeps_the_hot_ones() {
        let layout = CacheLayout::new([4usize, 2].into_iter());
        let c = ThreadCache::new(&layout);
        for a in 1..=4 {
            assert!(c.push(&layout, 0, a * 16));
        }
        assert!(!c.push(&layout, 0, 80), "full");
        assert!(c.push(&layout, 1, 1000));
        let mut out = vec![];
        c.drain_oldest(&layout, 0, 2, |a| out.push(a));
        assert_eq!(out, vec![16, 32]);
        assert_eq!(c.pop(&layout, 0), Some(64));
        assert_eq!(c.pop(&layout, 0), Some(48));
        assert_eq!(c.pop(&layout, 0), None);
        assert_eq!(c.pop(&layout, 1), Some(1000));
    }

    #[test]
    fn account_publishes_past_the_threshold_with_the_interval_maximum() {
        let layout = CacheLayout::new([1usize].into_iter());
        let c = ThreadCache::new(&layout);
        assert_eq!(c.account(PUBLISH_BYTES / 2), None);
        assert_eq!(c.account(-PUBLISH_BYTES / 4), None);
        let (d, m) = c.account(PUBLISH_BYTES).unwrap();
        assert_eq!(d, PUBLISH_BYTES / 4 + PUBLISH_BYTES);
        assert_eq!(m, d);
        assert_eq!(c.take_delta(), (0, 0));
    }
}
