//! Dynamic strategy selection: the Hybrid threshold goes down to the cached classes when
//! requests come for classes no thread cache keeps (the default config), down when thread
//! caches hold idle big blocks, up when the large pool serves many requests the classes
//! could serve; every
//! switch is an event with its reason; fixed strategies and adapter-used pools stay put.
#![deny(unsafe_code)]

use bitnet_memory::events::{EventFilter, EventKind, MemoryEvent};
use bitnet_memory::pool::adaptive::COOLDOWN;
use bitnet_memory::{MemoryConfig, MemoryManager, Strategy};
use std::alloc::Layout;
use std::sync::Barrier;

/// Thread caches big enough to keep blocks of the big classes (the default keeps none
/// bigger than 64 KiB, so these idle blocks cannot arise with it).
fn config(strategy: Strategy) -> MemoryConfig {
    let mut c = MemoryConfig::default().strategy(strategy);
    c.cleanup.background = false;
    c.thread_cache_bytes = 1 << 20;
    c
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 64).unwrap()
}

/// Sizes of the four classes between 512 KiB and 1 MiB (a thread caches one of each).
const BIG: [usize; 4] = [600 << 10, 700 << 10, 800 << 10, 1000 << 10];

/// Four threads each leave one idle block of every big class in their caches, and stay
/// alive while `f` runs (an exiting thread's cache goes back to the pool, idle blocks and
/// all).
fn with_idle_big_blocks<R>(mm: &MemoryManager, f: impl FnOnce() -> R) -> R {
    let (ready, done) = (Barrier::new(5), Barrier::new(5));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let v: Vec<_> = BIG.iter().map(|&n| mm.allocate(layout(n))).collect();
                drop(v);
                ready.wait();
                done.wait();
            });
        }
        ready.wait();
        let r = f();
        done.wait();
        r
    })
}

fn threshold(mm: &MemoryManager) -> usize {
    mm.metrics().devices[0].small_threshold
}

#[test]
fn idle_cached_big_blocks_lower_the_threshold_and_traffic_raises_it_again() {
    let mm = MemoryManager::new(config(Strategy::Hybrid)).unwrap();
    let events = mm.subscribe(EventFilter::only(EventKind::StrategyChanged), 16);
    assert_eq!(threshold(&mm), 1 << 20);
    let across = mm.allocate(layout(700 << 10)); // a class block, freed after the switch
    let changes = with_idle_big_blocks(&mm, || mm.adapt_strategy_now());
    assert_eq!(changes.len(), 1, "{changes:?}");
    let c = &changes[0];
    assert_eq!((c.old_threshold, c.new_threshold), (1 << 20, 512 << 10));
    assert!(c.reason.contains("idle"), "{}", c.reason);
    assert_eq!(threshold(&mm), 512 << 10);
    match events.receiver().try_recv().expect("an event") {
        MemoryEvent::StrategyChanged {
            old_threshold,
            new_threshold,
            reason,
            ..
        } => {
            assert_eq!((old_threshold, new_threshold), (1 << 20, 512 << 10));
            assert_eq!(reason, c.reason);
        }
        other => panic!("unexpected {other:?}"),
    }

    // Sizes above the new threshold go to best fit now.
    let before = mm.metrics().devices[0].large.live_blocks;
    let a = mm.allocate(layout(700 << 10));
    assert_eq!(mm.metrics().devices[0].large.live_blocks, before + 1);
    drop(a);
    drop(across); // allocated from a class before the switch: freed there
    mm.check_invariants();

    // Cooling down: no switch for COOLDOWN - 1 evaluations, whatever the traffic.
    for _ in 0..COOLDOWN - 1 {
        for _ in 0..2000 {
            drop(mm.allocate(layout(700 << 10)));
        }
        assert!(mm.adapt_strategy_now().is_empty());
    }
    for _ in 0..3000 {
        drop(mm.allocate(layout(700 << 10)));
    }
    let changes = mm.adapt_strategy_now();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].new_threshold, 1 << 20);
    assert!(
        changes[0].reason.contains("requests/s"),
        "{}",
        changes[0].reason
    );
    assert!(events.receiver().try_recv().is_ok());
    let before = mm.metrics().devices[0].large.live_blocks;
    let a = mm.allocate(layout(700 << 10));
    assert_eq!(
        mm.metrics().devices[0].large.live_blocks,
        before,
        "classes again"
    );
    drop(a);
    mm.check_invariants();
}

#[test]
fn fixed_strategies_stay_fixed() {
    for s in [
        Strategy::BestFit,
        Strategy::BuddySystem,
        Strategy::SlabAllocator,
    ] {
        let mm = MemoryManager::new(config(s)).unwrap();
        let t = threshold(&mm);
        with_idle_big_blocks(&mm, || {
            for _ in 0..2 * COOLDOWN {
                for _ in 0..2000 {
                    drop(mm.allocate(layout(700 << 10)));
                }
                assert!(mm.adapt_strategy_now().is_empty(), "{s:?} moved");
            }
        });
        assert_eq!(threshold(&mm), t);
    }
}

#[test]
fn a_pool_used_by_an_allocator_adapter_keeps_its_threshold() {
    let mm = MemoryManager::new(config(Strategy::Hybrid)).unwrap();
    let mut v = allocator_api2::vec::Vec::new_in(&mm);
    v.extend_from_slice(&[1u8; 700 << 10]);
    assert!(with_idle_big_blocks(&mm, || mm.adapt_strategy_now()).is_empty());
    assert_eq!(threshold(&mm), 1 << 20);
    drop(v);
}

#[test]
fn with_the_default_caches_uncacheable_classes_go_to_best_fit() {
    let mut c = MemoryConfig::default();
    c.cleanup.background = false;
    let mm = MemoryManager::new(c).unwrap();
    let events = mm.subscribe(EventFilter::only(EventKind::StrategyChanged), 16);
    assert_eq!(threshold(&mm), 1 << 20);
    // Nothing asked of the big classes yet: nothing to decide.
    drop(mm.allocate(layout(4096)));
    assert!(mm.adapt_strategy_now().is_empty());
    // 200 KiB: a one-block class no 64 KiB cache keeps, served through two locks.
    let across = mm.allocate(layout(200 << 10));
    let before = mm.metrics().devices[0].large.live_blocks;
    let changes = mm.adapt_strategy_now();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (changes[0].old_threshold, changes[0].new_threshold),
        (1 << 20, 64 << 10)
    );
    assert!(
        changes[0].reason.contains("no thread cache keeps"),
        "{}",
        changes[0].reason
    );
    assert!(matches!(
        events.receiver().try_recv(),
        Ok(MemoryEvent::StrategyChanged { new_threshold, .. }) if new_threshold == 64 << 10
    ));
    // Best fit serves that size now; the block allocated before goes back to its class.
    let a = mm.allocate(layout(200 << 10));
    assert_eq!(mm.metrics().devices[0].large.live_blocks, before + 1);
    drop(a);
    drop(across);
    mm.check_invariants();
    // However busy best fit gets with those sizes, the threshold stays: caches could not
    // keep them.
    for _ in 0..2 * COOLDOWN {
        for _ in 0..2000 {
            drop(mm.allocate(layout(200 << 10)));
        }
        assert!(mm.adapt_strategy_now().is_empty());
    }
    assert_eq!(threshold(&mm), 64 << 10);
    // Cached sizes still come from classes.
    let small = mm.allocate(layout(48 << 10));
    assert_eq!(mm.metrics().devices[0].large.live_blocks, before);
    drop(small);
}

#[test]
fn a_fixed_strategy_with_the_default_caches_stays_fixed() {
    let mut c = MemoryConfig::default().strategy(Strategy::SlabAllocator);
    c.cleanup.background = false;
    let mm = MemoryManager::new(c).unwrap();
    let t = threshold(&mm);
    drop(mm.allocate(layout(200 << 10)));
    assert!(mm.adapt_strategy_now().is_empty());
    assert_eq!(threshold(&mm), t);
}
