//! Leak detection through the public API: accounting, reports, shutdown, LeakCheck, and
//! each detector, including the cases that must not fire.

use bitnet_memory::{
    assert_no_leaks, EventFilter, EventKind, LeakCheck, LeakConfig, MemoryConfig, MemoryError,
    MemoryEvent, MemoryManager, ShutdownMode, TrackingConfig,
};
use std::alloc::Layout;
use std::time::Duration;

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
fn leak_report_groups_live_allocations_by_site_largest_first() {
    let mm = manager(TrackingConfig::full());
    let small: Vec<_> = (0..3).map(|_| mm.allocate(lay(1000))).collect();
    let big = mm.allocate(lay(2 << 20));
    let r = mm.leak_report();
    assert_eq!(r.allocations, 4);
    assert_eq!(r.sites.len(), 2, "{r}");
    assert_eq!(r.sites[0].bytes, 2 << 20);
    assert_eq!((r.sites[1].count, r.sites[1].bytes), (3, 3000));
    assert!(r.sites[1].site.contains("leak.rs"), "{}", r.sites[1].site);
    assert!(r.untracked.is_empty(), "{r}");
    drop((small, big));
    assert_eq!(mm.leak_report().allocations, 0);
}

#[test]
fn untracked_live_blocks_are_exact_per_class_counts_without_a_site() {
    let mm = manager(TrackingConfig::off());
    let a: Vec<_> = (0..5).map(|_| mm.allocate(lay(100))).collect();
    let b: Vec<_> = (0..2).map(|_| mm.allocate(lay(5000))).collect();
    let r = mm.leak_report();
    assert_eq!(r.allocations, 7);
    assert!(r.sites.is_empty());
    let counts: Vec<_> = r.untracked.iter().map(|c| c.count).collect();
    assert_eq!(counts, vec![2, 5], "largest class first: {r}");
    drop((a, b));
}

#[test]
fn leak_check_finds_a_forgotten_untracked_handle_exactly() {
    let mm = manager(TrackingConfig::off());
    let keep = mm.allocate(lay(64)); // live before the start: not a leak
    let check = LeakCheck::start(&mm);
    for _ in 0..3 {
        std::mem::forget(mm.allocate(lay(64)));
    }
    drop(mm.allocate(lay(64)));
    let r = check.leaks();
    assert_eq!(r.allocations, 3, "{r}");
    assert_eq!(
        check.result(),
        Err(MemoryError::MemoryLeakDetected {
            leak_count: 3,
            memory_size: 192
        })
    );
    drop(keep);
}

#[test]
fn leak_check_passes_on_clean_work_and_panics_on_a_leak() {
    let mm = manager(TrackingConfig::default());
    let n = assert_no_leaks!(&mm, {
        let v: Vec<_> = (1..200).map(|i| mm.allocate(lay(i * 37))).collect();
        v.len()
    });
    assert_eq!(n, 199);
    let check = LeakCheck::start(&mm);
    std::mem::forget(mm.allocate(lay(3 << 20)));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check.assert_no_leaks()))
        .expect_err("a forgotten large block must fail the check");
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("1 allocation(s)"), "{msg}");
}

/// Four tests' worth of managers at once, each with three worker threads. `size` is the
/// smallest block a worker asks for.
fn run_checks(concurrent_workers: bool, size: usize) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let mm = manager(TrackingConfig::off());
                let check = LeakCheck::start(&mm);
                let work = |k: usize| {
                    let v: Vec<_> = (0..20).map(|i| mm.allocate(lay(size + i))).collect();
                    if t % 2 == 1 && k == 0 {
                        std::mem::forget(mm.allocate(lay(size)));
                    }
                    drop(v);
                };
                std::thread::scope(|w| {
                    for k in 0..3 {
                        let h = w.spawn(move || work(k));
                        if !concurrent_workers {
                            h.join().unwrap();
                        }
                    }
                });
                let r = check.leaks();
                assert_eq!(r.allocations, t % 2, "manager {t}: {r}");
            });
        }
    });
}

#[test]
fn leak_checks_run_concurrently_and_cover_every_thread_of_their_manager() {
    // Large blocks: the pool bug below is in the small-block thread caches.
    run_checks(true, 1 << 20);
}

#[test]
fn leak_checks_with_workers_allocating_small_blocks() {
    run_checks(false, 16);
}

#[test]
fn shutdown_with_live_allocations_panics_when_configured() {
    let cfg = MemoryConfig::default().leak(LeakConfig {
        on_shutdown: ShutdownMode::Panic,
        ..LeakConfig::default()
    });
    let mm = MemoryManager::new(cfg.clone()).unwrap();
    drop(mm.allocate(lay(100)));
    drop(mm); // nothing live: no panic
    let res = std::panic::catch_unwind(|| {
        let mm = MemoryManager::new(cfg).unwrap();
        std::mem::forget(mm.allocate(lay(2 << 20)));
        drop(mm);
    });
    let msg = res.expect_err("shutdown must panic");
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("1 allocation(s)"), "{msg}");
    // Silent says nothing.
    let mm = manager(TrackingConfig::default());
    std::mem::forget(mm.allocate(lay(2 << 20)));
    drop(mm);
}

#[test]
fn a_scope_reports_what_it_left_behind_with_its_site_and_events() {
    let mm = manager(TrackingConfig::full());
    let sub = mm.subscribe(
        EventFilter::only(EventKind::PotentialLeakDetected).with(EventKind::LeakConfirmed),
        64,
    );
    let weights = mm.allocate(lay(4 << 20));
    weights.persist();
    let mut kept = Vec::new();
    for _ in 0..3 {
        let _s = mm.scope("step");
        let tmp = mm.allocate(lay(512));
        kept.push(mm.allocate(lay(777))); // outlives the step, not persistent
        let w = mm.allocate(lay(256));
        w.persist(); // persistent: fine
        kept.push(w);
        drop(tmp);
    }
    let f = mm.check_leaks();
    let scope: Vec<_> = f.iter().filter(|f| f.detector == "scope").collect();
    assert_eq!(scope.len(), 1, "one site, one finding: {f:?}");
    assert_eq!((scope[0].count, scope[0].bytes), (3, 3 * 777));
    assert!(scope[0].confirmed);
    assert!(scope[0].site.as_deref().unwrap().contains("leak.rs"));
    let ev = sub.drain();
    let potential = ev
        .iter()
        .filter(|e| matches!(e, MemoryEvent::PotentialLeakDetected { .. }))
        .count();
    let confirmed = ev
        .iter()
        .filter(|e| matches!(e, MemoryEvent::LeakConfirmed { .. }))
        .count();
    assert_eq!((potential, confirmed), (3, 3), "{ev:?}");
    assert!(matches!(
        mm.check_no_leaks(),
        Err(MemoryError::MemoryLeakDetected { leak_count: 3, .. })
    ));
    drop(kept);
    assert!(mm.check_leaks().is_empty(), "freed late: no longer a leak");
    drop(weights);
}

#[test]
fn a_scope_counts_untracked_leftovers_exactly() {
    let mm = manager(TrackingConfig::off());
    let weights: Vec<_> = (0..4).map(|_| mm.allocate(lay(4096))).collect();
    for w in &weights {
        w.persist();
    }
    {
        let _s = mm.scope("step");
        let kv = mm.allocate(lay(1024));
        kv.persist();
        for _ in 0..5 {
            std::mem::forget(mm.allocate(lay(200)));
        }
        drop(mm.allocate(lay(200)));
        std::mem::forget(kv);
    }
    let f = mm.check_leaks();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].count, 5);
    assert!(f[0].site.is_none() && f[0].confirmed);
}

#[test]
fn nested_scopes_report_a_leftover_once() {
    let mm = manager(TrackingConfig::off());
    let _outer = mm.scope("generate");
    {
        let _inner = mm.scope("step");
        std::mem::forget(mm.allocate(lay(300)));
    }
    drop(_outer);
    let total: usize = mm.check_leaks().iter().map(|f| f.count).sum();
    assert_eq!(total, 1);
}

#[test]
fn the_grace_period_lets_a_late_free_through() {
    let leak = LeakConfig {
        on_shutdown: ShutdownMode::Silent,
        scope_grace: Duration::from_secs(3600),
        ..LeakConfig::default()
    };
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .tracking(TrackingConfig::full())
            .leak(leak),
    )
    .unwrap();
    let out = {
        let _s = mm.scope("step");
        mm.allocate(lay(100))
    };
    let f = mm.check_leaks();
    assert_eq!(f.len(), 1);
    assert!(!f[0].confirmed, "within the grace period: only suspected");
    assert!(mm.check_no_leaks().is_ok());
    drop(out);
    assert!(mm.check_leaks().is_empty());
}

#[test]
fn growth_fires_on_a_growing_cache() {
    let mm = manager(TrackingConfig::off());
    let mut cache = Vec::new();
    let mut fired_at = None;
    for step in 0..64 {
        let _s = mm.scope("step");
        let tmp = mm.allocate(lay(4096));
        cache.push(mm.allocate(lay(1000))); // grows every step, never persisted
        drop(tmp);
        drop(_s);
        if fired_at.is_none() && mm.check_leaks().iter().any(|f| f.detector == "growth") {
            fired_at = Some(step);
        }
    }
    assert_eq!(fired_at, Some(15), "found at the first full window");
}

#[test]
fn growth_does_not_fire_on_a_kv_cache_that_grows_then_stays_flat() {
    let mm = manager(TrackingConfig::off());
    mm.set_leak_detector("scope", false);
    let mut kv = Vec::new();
    for step in 0..400 {
        let _s = mm.scope("decode");
        if step < 8 {
            kv.push(mm.allocate(lay(64 << 10))); // not even persistent
        }
        drop(mm.allocate(lay(1 << 20)));
    }
    assert!(mm.check_leaks().is_empty());
}

#[test]
fn growth_does_not_fire_on_a_persistent_cache_that_keeps_growing() {
    // Small blocks (untracked, or thinned out of full tracking once a site repeats one
    // size) and large ones (always tracked: the persistent flag is on their record).
    for (tracking, size) in [
        (TrackingConfig::off(), 8 << 10),
        (TrackingConfig::full(), 8 << 10),
        (TrackingConfig::default(), 1 << 20),
    ] {
        let mm = manager(tracking);
        let mut kv = Vec::new();
        for _ in 0..40 {
            let _s = mm.scope("decode");
            let block = mm.allocate(lay(size));
            block.persist();
            kv.push(block);
        }
        assert!(mm.check_leaks().is_empty());
    }
}

#[test]
fn growth_does_not_fire_on_noise() {
    // A step keeps one output of varying size alive until the next step: live bytes
    // after a step are noise without a trend.
    let mm = manager(TrackingConfig::off());
    let mut x: u64 = 0x2545_F491;
    let mut out = None;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out = Some(mm.allocate(lay(64 + (x % 60000) as usize)));
        mm.leak_step();
    }
    drop(out);
    assert!(mm.check_leaks().is_empty());
}

#[test]
fn a_cycle_through_link_that_no_root_reaches_is_a_leak() {
    for tracking in [TrackingConfig::off(), TrackingConfig::full()] {
        let mm = manager(tracking);
        // A view keeps its parent alive: a DAG, dropped normally.
        let parent = mm.allocate(lay(4096));
        let view = mm.allocate(lay(64));
        assert!(mm.link(&view, &parent));
        assert_eq!(mm.linked_allocations(), 2);
        assert!(mm.check_leaks().is_empty());
        drop((view, parent));
        assert_eq!(mm.linked_allocations(), 0);
        // A cycle held by a root is not a leak; once the root is gone, it is.
        let root = mm.allocate(lay(128));
        let a = mm.allocate(lay(1000));
        let b = mm.allocate(lay(2000));
        mm.link(&root, &a);
        mm.link(&a, &b);
        mm.link(&b, &a);
        assert!(mm.check_leaks().is_empty());
        drop(root);
        std::mem::forget(a);
        std::mem::forget(b);
        let f = mm.check_leaks();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].detector, f[0].count, f[0].bytes),
            ("relationship", 2, 3000)
        );
        // A self-owning block too, and a persistent one is a root.
        let s = mm.allocate(lay(50));
        mm.link(&s, &s);
        assert_eq!(mm.check_leaks().len(), 2);
        s.persist();
        assert_eq!(mm.check_leaks().len(), 1);
        drop(s);
    }
}

#[test]
fn site_signatures_make_a_loop_of_leaks_one_finding() {
    let mm = manager(TrackingConfig::full());
    {
        let _s = mm.scope("step");
        for _ in 0..10 {
            std::mem::forget(mm.allocate(lay(333)));
        }
    }
    let f = mm.check_leaks();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].count, f[0].ids.len()), (10, 10));
    assert!(mm.set_leak_detector("site", false));
    assert_eq!(mm.check_leaks().len(), 10);
}

#[test]
fn detectors_switch_off() {
    let mm = manager(TrackingConfig::full());
    for name in ["scope", "growth", "relationship", "site"] {
        assert!(mm.set_leak_detector(name, false));
    }
    assert!(!mm.set_leak_detector("nonsense", false));
    {
        let _s = mm.scope("step");
        let a = mm.allocate(lay(10));
        mm.link(&a, &a);
        std::mem::forget(a);
    }
    assert!(mm.check_leaks().is_empty());
    assert_eq!(mm.linked_allocations(), 0);
    assert_eq!(mm.leak_report().allocations, 1, "accounting still sees it");
}
