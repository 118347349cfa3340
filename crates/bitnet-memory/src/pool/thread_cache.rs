//! Per-thread caches of small blocks, one LIFO stack per size class.
//!
//! Each class's stack has a base capacity (its share of the configured cache bytes) and a
//! larger maximum. A class whose stack keeps running empty or full (every such miss takes
//! the class's central lock) raises its own limit towards the maximum, doubling after
//! [`GROW_AFTER`] misses; a flush (trim, decay, a threshold change) puts every limit back
//! to its base. So a thread that churns a class holds enough of its blocks to stay off
//! the lock, and a thread that stops doing so gives the room back at the next decay
//! (jemalloc's tcache does the same with its fill counts and GC).
//!
//! Only the owning thread pushes and pops (the pool reaches a cache through
//! `ThreadLocal::get`, which hands each thread its own). Every field is an atomic so that
//! other threads may *read* the counters for metrics; the owner updates them with plain
//! relaxed loads and stores, which cost the same as ordinary memory accesses: there is no
//! atomic read-modify-write and no lock on this path.
#![deny(unsafe_code)]

use crossbeam_utils::CachePadded;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed,
};

/// A boxed array stored as whole cache-line-aligned lines of `K` elements: nothing else
/// shares its lines, so the arrays of two threads' caches, which the threads write on
/// every operation, never share one (false sharing would make two threads that never
/// touch each other's blocks slow each other down).
#[derive(Debug)]
struct Padded<T, const K: usize>(Box<[CachePadded<[T; K]>]>);

impl<T, const K: usize> Padded<T, K> {
    /// `n` elements, the `i`th `init(i)` (and the padding up to a whole line too).
    fn new(n: usize, init: impl Fn(usize) -> T) -> Self {
        let lines = n.div_ceil(K).max(1);
        Self(
            (0..lines)
                .map(|l| CachePadded::new(std::array::from_fn(|i| init(l * K + i))))
                .collect(),
        )
    }
}

impl<T, const K: usize> std::ops::Index<usize> for Padded<T, K> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.0[i / K][i % K]
    }
}

/// Elements of a padded array per line: 128 bytes (`CachePadded`'s line on x86_64, where
/// the adjacent-line prefetcher pairs 64-byte lines).
const LINE_WORDS: usize = 16;
const LINE_U32S: usize = 32;

/// Bytes of live-size change a thread accumulates before publishing it to the pool's
/// shared counter (one atomic add per this many bytes of net change).
pub const PUBLISH_BYTES: i64 = 1 << 20;

/// Misses (a refill from, or a drain to, the central list) of one class after which its
/// limit doubles.
pub const GROW_AFTER: u32 = 4;

/// Layout of the stacks, shared by every cache of a pool: where each class's stack starts
/// in the buffer, how many blocks it may hold at most, and its base limit.
#[derive(Debug)]
pub struct CacheLayout {
    /// Per class: (first slot in the buffer, maximum capacity), side by side so a lookup
    /// touches one cache line.
    slots: Box<[(u32, u32)]>,
    /// Per class: the limit a cache starts with and returns to at each flush.
    base: Box<[u32]>,
    total: usize,
}

impl CacheLayout {
    /// Stacks for `caps.len()` classes, each `(base limit, maximum)`; a maximum below
    /// the base is raised to it.
    pub fn new(caps: impl Iterator<Item = (usize, usize)>) -> Self {
        let mut total = 0usize;
        let mut base = Vec::new();
        let slots = caps
            .map(|(b, max)| {
                let max = max.max(b);
                let slot = (total as u32, max as u32);
                base.push(b as u32);
                total += max;
                slot
            })
            .collect();
        Self {
            slots,
            base: base.into_boxed_slice(),
            total,
        }
    }

    /// Stacks whose maximum is their base limit (limits never move).
    #[cfg(test)]
    pub fn fixed(caps: impl Iterator<Item = usize>) -> Self {
        Self::new(caps.map(|c| (c, c)))
    }

    /// Maximum capacity of class `class`'s stack (0: the class is never cached).
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
    buf: Padded<AtomicUsize, LINE_WORDS>,
    len: Padded<AtomicU32, LINE_U32S>,
    /// Per class: blocks the stack may hold now (between the base and the maximum).
    limit: Padded<AtomicU32, LINE_U32S>,
    /// Per class: misses since the limit last moved.
    misses: Padded<AtomicU32, LINE_U32S>,
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
            buf: Padded::new(layout.total, |_| AtomicUsize::new(0)),
            len: Padded::new(layout.classes(), |_| AtomicU32::new(0)),
            limit: Padded::new(layout.classes(), |c| {
                AtomicU32::new(layout.base.get(c).copied().unwrap_or(0))
            }),
            misses: Padded::new(layout.classes(), |_| AtomicU32::new(0)),
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

    /// Blocks class `class` may hold now (readable from any thread).
    #[inline]
    pub fn limit(&self, class: usize) -> usize {
        self.limit[class].load(Relaxed) as usize
    }

    /// Owner only: counts a miss of `class` (its stack ran empty or full, and the central
    /// list served); after [`GROW_AFTER`] of them the limit doubles, up to the maximum.
    #[inline]
    pub fn note_miss(&self, layout: &CacheLayout, class: usize) {
        let m = self.misses[class].load(Relaxed) + 1;
        if m < GROW_AFTER {
            self.misses[class].store(m, Relaxed);
            return;
        }
        self.misses[class].store(0, Relaxed);
        let limit = self.limit[class].load(Relaxed);
        let max = layout.slots[class].1;
        if limit < max {
            self.limit[class].store((limit.max(1) * 2).min(max), Relaxed);
        }
    }

    /// Owner only: puts every class's limit back to its base (after the caller emptied
    /// the stacks, so no stack holds more than its limit).
    pub fn reset_limits(&self, layout: &CacheLayout) {
        for (class, &base) in layout.base.iter().enumerate() {
            self.limit[class].store(base, Relaxed);
            self.misses[class].store(0, Relaxed);
        }
    }

    /// Owner only: caches a block; `false` if the stack is at its limit.
    #[inline]
    pub fn push(&self, layout: &CacheLayout, class: usize, addr: usize) -> bool {
        let len = &self.len[class];
        let n = len.load(Relaxed);
        let start = layout.slots[class].0;
        if n >= self.limit[class].load(Relaxed) {
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
        let layout = CacheLayout::fixed([4usize, 2].into_iter());
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
    fn a_class_that_keeps_missing_grows_to_its_maximum_and_a_reset_returns_it() {
        let layout = CacheLayout::new([(2usize, 8usize), (4, 4)].into_iter());
        let c = ThreadCache::new(&layout);
        assert_eq!(c.limit(0), 2);
        for i in 1..=5u32 {
            for _ in 0..GROW_AFTER {
                c.note_miss(&layout, 0);
                c.note_miss(&layout, 1);
            }
            assert_eq!(
                c.limit(0),
                (2usize << i).min(8),
                "after {i} rounds of misses"
            );
            assert_eq!(c.limit(1), 4, "a class at its maximum stays");
        }
        // The grown limit is what push honours.
        for a in 0..8 {
            assert!(c.push(&layout, 0, 16 * (a + 1)));
        }
        assert!(!c.push(&layout, 0, 999), "full at the maximum");
        c.drain_oldest(&layout, 0, 8, |_| {});
        c.reset_limits(&layout);
        assert_eq!(c.limit(0), 2);
        assert!(c.push(&layout, 0, 16) && c.push(&layout, 0, 32));
        assert!(!c.push(&layout, 0, 48), "back to the base limit");
    }

    #[test]
    fn account_publishes_past_the_threshold_with_the_interval_maximum() {
        let layout = CacheLayout::fixed([1usize].into_iter());
        let c = ThreadCache::new(&layout);
        assert_eq!(c.account(PUBLISH_BYTES / 2), None);
        assert_eq!(c.account(-PUBLISH_BYTES / 4), None);
        let (d, m) = c.account(PUBLISH_BYTES).unwrap();
        assert_eq!(d, PUBLISH_BYTES / 4 + PUBLISH_BYTES);
        assert_eq!(m, d);
        assert_eq!(c.take_delta(), (0, 0));
    }
}
