//! One test per lesson of LESSONS.md that concerns the pool.

use bitnet_memory::pool::size_class::{class_size, classes_for_threshold};
use bitnet_memory::{FailingBackend, MemoryConfig, MemoryManager, Strategy};
use std::alloc::Layout;

/// Lesson 1: no gap between the small and the large pool. Every size from 1 B past the
/// largest class, and each class boundary +/- 1, under several thresholds.
#[test]
fn every_size_across_the_small_large_boundary_is_served() {
    for threshold in [4096, 100_000, 1 << 20] {
        let mm = MemoryManager::new(MemoryConfig::default().small_threshold(threshold)).unwrap();
        let mut sizes: Vec<usize> = (1..=4096).collect();
        for c in 0..classes_for_threshold(threshold) + 2 {
            let s = class_size(c);
            sizes.extend([s - 1, s, s + 1]);
        }
        sizes.extend([threshold - 1, threshold, threshold + 1, 2 * threshold]);
        for size in sizes {
            for align in [1, 16, 4096] {
                let mut a = mm
                    .try_allocate(Layout::from_size_align(size, align).unwrap())
                    .unwrap_or_else(|e| panic!("size {size} align {align}: {e}"));
                assert_eq!(a.as_ptr() as usize % align, 0);
                a.as_mut_slice()[size - 1] = 1;
            }
        }
        mm.check_invariants();
    }
}

/// Lesson 2: after freeing everything, the buddy pool serves its largest block again.
#[test]
fn buddy_pool_serves_its_largest_block_after_churn() {
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .strategy(Strategy::BuddySystem)
            .budget(8 << 20),
    )
    .unwrap();
    for _ in 0..3 {
        let blocks: Vec<_> = (0..100)
            .map(|i| mm.allocate(Layout::from_size_align(1000 + i * 731, 8).unwrap()))
            .collect();
        drop(blocks);
        mm.check_invariants();
        let whole = mm
            .try_allocate(Layout::from_size_align(4 << 20, 8).unwrap())
            .expect("merged back");
        drop(whole);
    }
}

/// Lessons 8 and 12: trimming releases only unowned memory; owned blocks of every kind
/// (small, large, raw, in another thread's cache) survive with their contents.
#[test]
fn trim_never_releases_owned_memory() {
    let backend = FailingBackend::new();
    let mm = MemoryManager::with_backend(MemoryConfig::default(), backend.clone()).unwrap();
    let mut small = mm.allocate(Layout::from_size_align(100, 8).unwrap());
    let mut large = mm.allocate(Layout::from_size_align(5 << 20, 64).unwrap());
    let raw = mm
        .allocate_raw(
            bitnet_memory::DeviceId::CPU,
            Layout::from_size_align(3000, 8).unwrap(),
        )
        .unwrap();
    small.as_mut_slice().fill(0x11);
    large.as_mut_slice().fill(0x22);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Blocks in another thread's cache.
            let v: Vec<_> = (0..50)
                .map(|_| mm.allocate(Layout::from_size_align(100, 8).unwrap()))
                .collect();
            drop(v);
        });
    });
    let garbage: Vec<_> = (0..64)
        .map(|_| mm.allocate(Layout::from_size_align(70_000, 8).unwrap()))
        .collect();
    drop(garbage);
    let r = mm.trim();
    assert!(r.cached_blocks_flushed > 0);
    assert!(small.as_slice().iter().all(|&b| b == 0x11));
    assert!(large.as_slice().iter().all(|&b| b == 0x22));
    mm.check_invariants();
    let m = mm.metrics();
    assert_eq!(m.live_allocations(), 3);
    assert_eq!(m.devices[0].mapped_bytes, backend.outstanding_bytes());
    assert!(m.reserved_bytes() <= m.devices[0].mapped_bytes);
    mm.free_raw(raw).unwrap();
    drop((small, large));
    // The other thread's cache went back to the pool as it exited.
    mm.trim();
    assert_eq!(mm.metrics().live_allocations(), 0);
}

/// Lesson 9: managers are independent; tests in parallel do not disturb each other.
#[test]
fn managers_are_independent() {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
                let v: Vec<_> = (0..100)
                    .map(|i| mm.allocate(Layout::from_size_align(64 * (i + t + 1), 8).unwrap()))
                    .collect();
                let m = mm.metrics();
                assert_eq!(m.live_allocations(), 100);
                let expected: usize = (0..100).map(|i| 64 * (i + t + 1)).sum();
                assert_eq!(m.live_bytes(), expected);
                drop(v);
                mm.trim();
                assert_eq!(mm.metrics().live_bytes(), 0);
            });
        }
    });
}

/// Lesson 3: one source of truth: the counters move with every operation, per pool.
#[test]
fn metrics_follow_every_operation_per_pool() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let a = mm.allocate(Layout::from_size_align(1000, 8).unwrap());
    let b = mm.allocate(Layout::from_size_align(3 << 20, 8).unwrap());
    let d = &mm.metrics().devices[0];
    assert_eq!(d.small.live_blocks, 1);
    assert_eq!(d.small.live_block_bytes, 1024);
    assert_eq!(d.large.live_blocks, 1);
    assert_eq!(d.live_bytes, 1000 + (3 << 20));
    assert_eq!(d.padding_bytes(), 24 + d.large.live_block_bytes - (3 << 20));
    assert_eq!(d.allocations, 2);
    let cached_before = d.small.cached_bytes;
    drop(a);
    let d = &mm.metrics().devices[0];
    assert_eq!(d.small.live_blocks, 0);
    assert_eq!(d.small.cached_bytes, cached_before + 1024);
    assert_eq!(d.frees, 1);
    drop(b);
    let d = mm.metrics().devices[0].clone();
    assert_eq!(d.live_bytes, 0);
    assert_eq!(d.peak_live_bytes, 1000 + (3 << 20));
    assert!(d.peak_reserved_bytes >= d.reserved_bytes);
    assert!(d.to_string().contains("live"));
}

/// Thread ids are reused: a new thread may inherit the cache of an exited one, full or
/// not, before its first lookup finds it. Refills must fit what is left.
#[test]
fn threads_inheriting_caches_of_exited_threads() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    for _round in 0..4 {
        std::thread::scope(|s| {
            for t in 0..3 {
                let mm = &mm;
                s.spawn(move || {
                    let v: Vec<_> = (0..300)
                        .map(|i| mm.allocate(Layout::from_size_align(16 + (i + t) % 8, 8).unwrap()))
                        .collect();
                    drop(v);
                });
            }
        });
    }
    mm.check_invariants();
    assert_eq!(mm.metrics().live_allocations(), 0);
}
