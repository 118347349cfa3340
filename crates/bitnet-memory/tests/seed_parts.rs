//! The seed's parts through the public API: strict scopes, growth findings reported once,
//! the lifecycle registry, shared handles and their cycles, the seed's metrics.

use bitnet_memory::{
    EventFilter, EventKind, LeakConfig, MemoryConfig, MemoryError, MemoryEvent, MemoryManager,
    ShutdownMode, TrackingConfig,
};
use std::alloc::Layout;

fn lay(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn manager(tracking: TrackingConfig) -> MemoryManager {
    let leak = LeakConfig {
        on_shutdown: ShutdownMode::Silent,
        ..LeakConfig::default()
    };
    MemoryManager::new(MemoryConfig::default().tracking(tracking).leak(leak)).unwrap()
}

#[test]
fn a_strict_scope_that_leaks_returns_an_error_naming_the_sites() {
    let mm = manager(TrackingConfig::full());
    let mut kept = Vec::new();
    let step = mm.strict_scope("decode step");
    for _ in 0..2 {
        kept.push(mm.allocate(lay(3 << 20)));
    }
    let cache = mm.allocate(lay(1 << 20));
    cache.persist();
    drop(mm.allocate(lay(5000)));
    let err = step.close().expect_err("two blocks outlived the step");
    match &err {
        MemoryError::ScopeLeaked {
            scope,
            count,
            bytes,
            sites,
        } => {
            assert_eq!(scope, "decode step");
            assert_eq!((*count, *bytes), (2, 6 << 20), "{err}");
            assert_eq!(sites.len(), 1, "{sites:?}");
            assert!(
                sites[0].contains("seed_parts.rs") && sites[0].ends_with("x2"),
                "{sites:?}"
            );
        }
        e => panic!("wrong error {e}"),
    }
    // A clean step closes fine, with the detector switched off too.
    mm.set_leak_detector("scope", false);
    let step = mm.strict_scope("clean");
    drop(mm.allocate(lay(3 << 20)));
    step.close().expect("nothing left behind");
    // Untracked leftovers are found from the exact counts, without a site.
    let mm = manager(TrackingConfig::off());
    let step = mm.strict_scope("untracked");
    let small = mm.allocate(lay(100));
    let err = step.close().expect_err("one small block left");
    assert!(err.to_string().contains("untracked"), "{err}");
    drop((small, kept, cache));
}

#[test]
fn a_growth_episode_is_one_finding_updated_not_repeated() {
    let mm = manager(TrackingConfig::off());
    let sub = mm.subscribe(EventFilter::only(EventKind::LeakConfirmed), 64);
    let mut cache = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..64 {
        let _s = mm.scope("step");
        cache.push(mm.allocate(lay(1000)));
        drop(_s);
        let growth: Vec<_> = mm
            .check_leaks()
            .into_iter()
            .filter(|f| f.detector == "growth")
            .collect();
        counts.push((growth.len(), growth.first().map_or(0, |f| f.bytes)));
    }
    // Found at the first full window, then the same one finding, growing.
    assert_eq!(counts[14].0, 0);
    assert_eq!(counts[15].0, 1);
    assert!(counts[15..].iter().all(|&(n, _)| n == 1), "{counts:?}");
    assert!(counts[63].1 > counts[15].1, "updated: {counts:?}");
    let announced = sub
        .drain()
        .into_iter()
        .filter(|e| matches!(e, MemoryEvent::LeakConfirmed { leak_info, .. } if leak_info.contains("grew")))
        .count();
    assert_eq!(announced, 1, "announced once");
    drop(cache);
}
