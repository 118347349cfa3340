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

#[test]
fn registered_resources_are_accounted_reported_and_dropped_under_pressure() {
    use bitnet_memory::lifecycle::Resource;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let mm = manager(TrackingConfig::default());
    let sub = mm.subscribe(
        EventFilter::only(EventKind::ResourceRegistered).with(EventKind::ResourceReleased),
        16,
    );
    let order = Arc::new(AtomicUsize::new(0));
    let (staging_at, cache_at) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o1, s1) = (order.clone(), staging_at.clone());
    let staging = mm.register_resource(
        Resource::new("staging buffer", 8 << 20)
            .droppable(true)
            .priority(5)
            .on_cleanup(move || s1.store(o1.fetch_add(1, SeqCst) + 1, SeqCst)),
    );
    let (o2, c2) = (order.clone(), cache_at.clone());
    let cache = mm.register_resource(
        Resource::new("kv cache of another library", 2 << 20)
            .droppable(true)
            .priority(1)
            .on_cleanup(move || c2.store(o2.fetch_add(1, SeqCst) + 1, SeqCst)),
    );
    let weights_ran = Arc::new(AtomicUsize::new(0));
    let w = weights_ran.clone();
    let weights = mm.register_resource(Resource::new("mapped weights", 100 << 20).on_cleanup(
        move || {
            w.fetch_add(1, SeqCst);
        },
    ));
    let m = mm.metrics().resources;
    assert_eq!(
        (m.registered, m.bytes, m.droppable_bytes),
        (3, 110 << 20, 10 << 20)
    );
    let report = mm.leak_report();
    assert_eq!(report.resources.len(), 3);
    assert!(report.to_string().contains("mapped weights"), "{report}");
    assert!(report.resources[0].site.contains("seed_parts.rs"));
    assert_eq!(mm.snapshot().resources.len(), 3);
    // An emergency releases the droppable ones, lowest priority first; never the others.
    mm.emergency_cleanup();
    assert_eq!((cache_at.load(SeqCst), staging_at.load(SeqCst)), (1, 2));
    assert!(staging.is_released() && cache.is_released() && !weights.is_released());
    assert_eq!(weights_ran.load(SeqCst), 0);
    let m = mm.metrics().resources;
    assert_eq!((m.registered, m.released_under_pressure), (1, 2));
    assert_eq!(m.released_under_pressure_bytes, 10 << 20);
    // Released by its owner: the callback runs once; dropping a handle does not run it.
    weights.release();
    assert_eq!(weights_ran.load(SeqCst), 1);
    drop((staging, cache));
    assert_eq!(mm.metrics().resources.registered, 0);
    let events = sub.drain();
    let registered = events
        .iter()
        .filter(|e| matches!(e, MemoryEvent::ResourceRegistered { .. }))
        .count();
    let released: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MemoryEvent::ResourceReleased { name, reason, .. } => {
                Some((name.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(registered, 3);
    assert_eq!(released.len(), 3, "{released:?}");
    assert!(released[0].1.contains("pressure"), "{released:?}");
}

#[test]
fn a_strong_cycle_of_shared_handles_is_reported_with_the_edge_that_breaks_it() {
    use bitnet_memory::Shared;
    for tracking in [TrackingConfig::off(), TrackingConfig::full()] {
        let mm = manager(tracking);
        let a = Shared::new(&mm, mm.allocate(lay(3 << 20)));
        let b = Shared::new(&mm, mm.allocate(lay(1 << 20)));
        let c = Shared::new(&mm, mm.allocate(lay(4096)));
        // a -> b -> a is a cycle; c is held weakly by b (no edge), strongly by a.
        a.hold(&b);
        b.hold(&a);
        b.hold_weak(&c);
        a.hold(&c);
        assert_eq!(
            (a.strong_count(), b.strong_count(), c.strong_count()),
            (2, 2, 2)
        );
        assert_eq!(c.weak_count(), 1);
        // Held from outside: roots, no leak.
        assert!(mm.check_leaks().is_empty(), "{:?}", mm.check_leaks());
        let (wa, wb, wc) = (a.downgrade(), b.downgrade(), c.downgrade());
        let (addr_a, addr_b) = (a.addr(), b.addr());
        drop((a, b, c));
        // The cycle keeps both (and c, through a) alive; nothing outside holds them.
        assert_eq!(mm.metrics().live_bytes(), (3 << 20) + (1 << 20) + 4096);
        let f = mm.check_leaks();
        let cycle: Vec<_> = f.iter().filter(|f| f.detector == "relationship").collect();
        assert_eq!(cycle.len(), 1, "{f:?}");
        assert_eq!((cycle[0].count, cycle[0].bytes), (2, (3 << 20) + (1 << 20)));
        assert!(
            cycle[0].info.contains("weak hold breaks it"),
            "{}",
            cycle[0].info
        );
        let breaks = mm.cycle_breaks();
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        let cut = breaks[0];
        assert!(
            (cut.from, cut.to) == (addr_a, addr_b) || (cut.from, cut.to) == (addr_b, addr_a),
            "{cut:?}"
        );
        // Break it where the report says, and the memory comes back.
        let (ha, hb) = (wa.upgrade().expect("alive"), wb.upgrade().expect("alive"));
        let holder = if cut.from == addr_a { &ha } else { &hb };
        assert_eq!(holder.downgrade_hold_of(cut.to), 1);
        drop((ha, hb));
        assert!(wa.upgrade().is_none() && wb.upgrade().is_none() && wc.upgrade().is_none());
        assert_eq!(mm.metrics().live_bytes(), 0);
        assert!(mm.check_leaks().is_empty());
        assert_eq!(mm.linked_allocations(), 0);
    }
}

#[test]
fn run_time_accuracy_comes_from_confirmed_and_retracted_suspicions() {
    use std::time::Duration;
    let leak = LeakConfig {
        on_shutdown: ShutdownMode::Silent,
        scope_grace: Duration::from_millis(30),
        ..LeakConfig::default()
    };
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .tracking(TrackingConfig::full())
            .leak(leak),
    )
    .unwrap();
    let s = mm.metrics().seed;
    assert_eq!(s.get("leak_detection_accuracy").unwrap().value, None);
    // Three suspects: one freed within the grace period (retracted), two kept past it
    // (confirmed), of which one is freed later (a false positive).
    let scope = mm.scope("step");
    let early = mm.allocate(lay(3 << 20));
    let kept = mm.allocate(lay(3 << 20));
    let late = mm.allocate(lay(3 << 20));
    drop(scope);
    drop(early);
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(mm.check_leaks().iter().filter(|f| f.confirmed).count(), 2);
    drop(late);
    mm.check_leaks();
    let m = mm.metrics();
    assert_eq!(
        (
            m.leak.suspected,
            m.leak.confirmed,
            m.leak.retracted,
            m.leak.confirmed_then_freed
        ),
        (3, 2, 1, 1)
    );
    let acc = m.seed.get("leak_detection_accuracy").unwrap();
    assert!(
        (acc.value.unwrap() - 100.0 * 2.0 / 3.0).abs() < 1e-9,
        "{acc:?}"
    );
    assert_eq!(acc.met, Some(false));
    let fpr = m.seed.get("false_positive_rate").unwrap();
    assert_eq!((fpr.value, fpr.met), (Some(50.0), Some(false)));
    // The table is in the JSON and the Prometheus text.
    let json = m.to_json();
    assert!(json.contains("\"leak_detection_accuracy\""), "{json}");
    let back: bitnet_memory::MetricsSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back.seed, m.seed);
    let prom = m.to_prometheus();
    assert!(
        prom.contains("bitnet_memory_seed_false_positive_rate 50"),
        "{prom}"
    );
    assert!(prom.contains("bitnet_memory_seed_target_met{metric=\"leak_detection_accuracy\"} 0"));
    drop(kept);
}

#[test]
fn a_large_free_under_high_pressure_runs_an_immediate_validated_cleanup() {
    use bitnet_memory::cleanup::{CleanupConfig, ExecutorKind};
    let mut c = MemoryConfig::default()
        .cleanup(CleanupConfig::manual())
        .min_chunk(1 << 20)
        .leak(LeakConfig::off());
    c.budget = Some(16 << 20);
    let mm = MemoryManager::new(c).unwrap();
    let live = mm.allocate(lay(12 << 20));
    let extra = mm.allocate(lay(2 << 20));
    // 14 of 16 MiB mapped: high pressure (0.85), not critical (0.95).
    assert_eq!(
        mm.check_pressure(),
        vec![bitnet_memory::PressureLevel::High]
    );
    assert_eq!(mm.metrics().cleanup.runs, 0);
    drop(extra);
    let s = mm.metrics().cleanup;
    assert_eq!(
        s.by_executor,
        [1, 0, 0],
        "the drop ran one immediate cleanup"
    );
    let last = s.last.expect("a run");
    assert_eq!(last.executor, Some(ExecutorKind::Immediate));
    assert!(last.validation.as_ref().expect("validated").ok);
    assert!(
        last.bytes_released >= 2 << 20,
        "the freed chunk went back: {last:?}"
    );
    // A small free under pressure takes the cached path: no run.
    drop(mm.allocate(lay(100)));
    assert_eq!(mm.metrics().cleanup.runs, 1);
    mm.try_trim().expect("an honest trim validates");
    drop(live);
}
