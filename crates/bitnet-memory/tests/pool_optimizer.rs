//! The pool optimizer: the large-block strategy switches when its measured figures say
//! another does better, each switch is announced with its figures, and it never flaps.

use bitnet_memory::cleanup::CleanupConfig;
use bitnet_memory::{
    EventFilter, EventKind, LeakConfig, MemoryConfig, MemoryEvent, MemoryManager, Strategy,
};
use std::alloc::Layout;

fn manager(strategy: Strategy) -> MemoryManager {
    let mut c = MemoryConfig::default()
        .cleanup(CleanupConfig::manual())
        .leak(LeakConfig::off())
        .min_chunk(8 << 20);
    c.strategy = strategy;
    MemoryManager::new(c).unwrap()
}

/// Requests just above a power of two: buddy rounds each one up to the next power,
/// nearly doubling it; best fit rounds to 16 B. Returns the block bytes the pool held
/// for the 40 live blocks at the peak.
fn round(mm: &MemoryManager) -> usize {
    let mut peak = 0;
    for _ in 0..3 {
        let v: Vec<_> = (0..40)
            .map(|i| {
                let size = (1 << 20) + 4096 * (1 + i % 8);
                mm.allocate(Layout::from_size_align(size, 64).unwrap())
            })
            .collect();
        peak = mm.metrics().devices[0].large.live_block_bytes;
        drop(v);
    }
    peak
}

fn strategy(mm: &MemoryManager) -> String {
    mm.metrics().devices[0].large.strategy.clone()
}

#[test]
fn a_workload_that_buddy_rounds_badly_switches_the_pool_to_best_fit() {
    let mm = manager(Strategy::BuddySystem);
    let sub = mm.subscribe(EventFilter::only(EventKind::PoolOptimizationCompleted), 16);
    assert_eq!(strategy(&mm), "buddy");
    let buddy_peak = round(&mm);
    let mut switches = Vec::new();
    for _ in 0..5 {
        switches.extend(mm.optimize_pools_now());
    }
    assert_eq!(switches.len(), 1, "{switches:?}");
    assert_eq!(switches[0].action, "strategy switch");
    assert_eq!(switches[0].before.strategy, "buddy");
    assert_eq!(switches[0].after.strategy, "best-fit (TLSF)");
    assert!(
        switches[0].reason.contains("% of block bytes requested"),
        "{}",
        switches[0].reason
    );
    assert_eq!(strategy(&mm), "best-fit (TLSF)");
    // Buddy's chunks are free: a trim gives them back; the same work now fits in less.
    mm.trim();
    let tlsf_peak = round(&mm);
    assert!(
        (tlsf_peak as f64) < 0.7 * buddy_peak as f64,
        "best fit holds {tlsf_peak} B for what buddy held in {buddy_peak} B"
    );
    // Measured, best fit stays: no switch back, however many evaluations.
    for _ in 0..10 {
        assert!(mm.optimize_pools_now().is_empty());
        round(&mm);
    }
    assert_eq!(strategy(&mm), "best-fit (TLSF)");
    let events = sub.drain();
    assert!(
        matches!(&events[..], [MemoryEvent::PoolOptimizationCompleted { action, before, after, .. }]
            if action == "strategy switch" && before.strategy == "buddy" && after.strategy == "best-fit (TLSF)"),
        "{events:?}"
    );
    mm.check_invariants();
}

#[test]
fn a_workload_buddy_serves_well_keeps_buddy_and_the_switch_can_be_turned_off() {
    // Powers of two: buddy rounds nothing; nothing to gain.
    let mm = manager(Strategy::BuddySystem);
    for _ in 0..3 {
        let v: Vec<_> = (0..100)
            .map(|_| mm.allocate(Layout::from_size_align(1 << 20, 64).unwrap()))
            .collect();
        drop(v);
    }
    for _ in 0..6 {
        assert!(mm.optimize_pools_now().is_empty());
    }
    assert_eq!(strategy(&mm), "buddy");
    // Off by configuration: never, whatever the figures.
    let mut c = MemoryConfig::default()
        .cleanup(CleanupConfig::manual())
        .leak(LeakConfig::off())
        .adaptive_large_strategy(false);
    c.strategy = Strategy::BuddySystem;
    let mm = MemoryManager::new(c).unwrap();
    round(&mm);
    for _ in 0..6 {
        assert!(mm.optimize_pools_now().is_empty());
    }
    assert_eq!(strategy(&mm), "buddy");
}

#[test]
fn the_consolidator_compacts_movable_blocks_past_its_fragmentation_threshold() {
    const CHUNK: usize = 1 << 20;
    const BLOCK: usize = 64 << 10;
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .strategy(Strategy::BestFit)
            .min_chunk(CHUNK)
            .max_chunk(CHUNK)
            .cleanup(CleanupConfig::manual())
            .leak(LeakConfig::off()),
    )
    .unwrap();
    let sub = mm.subscribe(EventFilter::only(EventKind::PoolOptimizationCompleted), 16);
    let mut blocks: Vec<_> = (0..8 * CHUNK / BLOCK)
        .map(|i| {
            let mut a = mm
                .allocate_movable(Layout::from_size_align(BLOCK, 64).unwrap())
                .unwrap();
            a.pin_mut().fill(i as u8);
            (i, a)
        })
        .collect();
    // Nothing fragmented yet: nothing to do.
    assert!(mm.optimize_pools_now().is_empty());
    blocks.retain(|(i, _)| i % 2 == 1);
    let before = mm.metrics().devices[0].mapped_bytes;
    let done = mm.optimize_pools_now();
    assert_eq!(done.len(), 1, "{done:?}");
    let c = &done[0];
    assert_eq!(c.action, "compaction");
    assert!(
        c.before.fragmentation > 0.5 && c.after.fragmentation < c.before.fragmentation,
        "{c:?}"
    );
    assert!(c.after.mapped_bytes < before, "{c:?}");
    assert_eq!(
        mm.metrics().devices[0].mapped_bytes,
        4 * CHUNK,
        "half the chunks went back"
    );
    for (i, a) in &blocks {
        assert!(
            a.pin().iter().all(|&b| b == *i as u8),
            "block {i} moved intact"
        );
    }
    let events = sub.drain();
    assert!(
        events.iter().any(|e| matches!(e, MemoryEvent::PoolOptimizationCompleted { action, .. } if action == "compaction")),
        "{events:?}"
    );
    // Compacted: below the threshold, nothing more to do.
    assert!(mm.optimize_pools_now().is_empty());
}
