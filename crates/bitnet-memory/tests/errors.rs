//! Error paths: bad input, budgets, device refusals, trim-and-retry, raw frees.

use bitnet_memory::{DeviceId, FailingBackend, MemoryConfig, MemoryError, MemoryManager, Strategy};
use std::alloc::Layout;

/// Chunks of 4 MiB, so that the tests below know the layout exactly.
fn small_chunks() -> MemoryConfig {
    MemoryConfig::default()
        .min_chunk(4 << 20)
        .max_chunk(256 << 20)
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn zero_size_is_a_dangling_aligned_allocation_that_owns_nothing() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    for align in [1, 8, 64, 4096, 1 << 20] {
        let a = mm.try_allocate(layout(0, align)).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.as_ptr() as usize % align, 0);
        assert_eq!(a.as_slice().len(), 0);
    }
    let m = mm.metrics();
    assert_eq!(m.live_allocations(), 0);
    assert_eq!(m.reserved_bytes(), 0);
}

#[test]
fn bad_layouts_are_refused_and_never_retried() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    for (size, align, why) in [
        (64, 3, "not a power of two"),
        (64, 0, "not a power of two"),
        (64, 1 << 31, "over 1 GiB"),
        (isize::MAX as usize, 64, "isize::MAX"),
        (usize::MAX, 1, "isize::MAX"),
    ] {
        let e = mm.try_allocate_bytes(size, align).unwrap_err();
        assert!(
            matches!(e, MemoryError::InvalidLayout { .. }),
            "{size} {align}: {e}"
        );
        assert!(e.to_string().contains(why), "{e}");
        assert!(!e.is_retryable());
    }
    // An alignment over the limit is refused through `Layout` too.
    let e = mm.try_allocate(layout(8, 1 << 31)).unwrap_err();
    assert!(matches!(e, MemoryError::InvalidLayout { .. }));
    assert_eq!(
        mm.metrics().reserved_bytes(),
        0,
        "nothing reserved by refused requests"
    );
}

#[test]
fn absurd_sizes_fail_cleanly_with_out_of_memory() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let e = mm.try_allocate(layout(1 << 60, 64)).unwrap_err();
    assert!(
        matches!(e, MemoryError::OutOfMemory { requested, .. } if requested == 1 << 60),
        "{e}"
    );
    assert!(e.is_retryable());
    // The manager still works.
    let a = mm.allocate(layout(100, 8));
    assert_eq!(a.len(), 100);
}

#[test]
fn budget_trims_caches_first_then_fails_with_sizes() {
    let budget = 24 << 20;
    let mm = MemoryManager::new(MemoryConfig::default().budget(budget)).unwrap();
    // Fill and free 16 MiB of large blocks: cached, reserved.
    let blocks: Vec<_> = (0..8).map(|_| mm.allocate(layout(2 << 20, 64))).collect();
    drop(blocks);
    assert!(mm.metrics().reserved_bytes() >= 16 << 20);
    // A 20 MiB block does not fit next to the cache, but fits once the cache is trimmed.
    let big = mm
        .try_allocate(layout(20 << 20, 64))
        .expect("trim made room");
    assert!(mm.metrics().reserved_bytes() <= budget);
    // Now nothing can be trimmed: past the budget is an error with the figures.
    let e = mm.try_allocate(layout(8 << 20, 64)).unwrap_err();
    match &e {
        MemoryError::BudgetExceeded {
            requested,
            budget: b,
            live,
            ..
        } => {
            assert_eq!(*requested, 8 << 20);
            assert_eq!(*b, budget);
            assert_eq!(*live, 20 << 20);
        }
        other => panic!("expected BudgetExceeded, got {other}"),
    }
    assert!(e.is_retryable());
    drop(big);
    mm.try_allocate(layout(8 << 20, 64))
        .expect("fits once the big block is gone");
}

#[test]
fn device_refusal_trims_and_retries_then_reports_out_of_memory() {
    let backend = FailingBackend::new();
    let mm = MemoryManager::with_backend(small_chunks(), backend.clone()).unwrap();
    let a = mm.allocate(layout(3 << 20, 64));
    let cached = mm.allocate(layout(2 << 20, 64));
    drop(cached);
    // The device now has room for nothing more than what the pool holds.
    backend.set_capacity(backend.outstanding_bytes());
    let released_before = backend.released_chunks();
    // Needs a new chunk: refused, the pool trims (nothing empty to release while `a` lives
    // in the same chunk), retries, and reports.
    let e = mm.try_allocate(layout(64 << 20, 64)).unwrap_err();
    assert!(matches!(e, MemoryError::OutOfMemory { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("largest free block"), "{msg}");
    assert!(
        backend.refusals() >= 2,
        "first try and the retry after trim"
    );
    // That trim released the chunk of the cached block; `a`'s chunk remains. Freeing `a`
    // empties it; a request that fits only once it is gone trims it and retries.
    assert_eq!(backend.outstanding_bytes(), 4 << 20);
    drop(a);
    backend.set_capacity(8 << 20);
    let b = mm.try_allocate(layout(6 << 20, 64));
    assert!(
        backend.released_chunks() > released_before,
        "trim released the empty chunk"
    );
    let b = b.expect("the retry after trim fits in the freed capacity");
    assert_eq!(b.len(), 6 << 20);
}

#[test]
fn failures_of_slab_refills_surface_as_errors_too() {
    let backend = FailingBackend::new();
    let mm = MemoryManager::with_backend(small_chunks(), backend.clone()).unwrap();
    backend.set_fail_all(true);
    let e = mm.try_allocate(layout(64, 8)).unwrap_err();
    assert!(
        matches!(e, MemoryError::OutOfMemory { requested: 64, .. }),
        "{e}"
    );
    backend.set_fail_all(false);
    backend.fail_after(1);
    let a = mm.allocate(layout(64, 8));
    // Same class: served from the slab already there, no new chunk needed.
    let b = mm.allocate(layout(64, 8));
    assert_ne!(a.as_ptr(), b.as_ptr());
    let e = mm.try_allocate(layout(8 << 20, 8)).unwrap_err();
    assert!(matches!(e, MemoryError::OutOfMemory { .. }));
}

#[test]
#[should_panic(expected = "allocation failed: budget exceeded")]
fn the_panicking_call_says_why() {
    let mm = MemoryManager::new(MemoryConfig::default().budget(1 << 20)).unwrap();
    let _a = mm.allocate(layout(8 << 20, 8));
}

#[test]
fn raw_blocks_detect_double_and_foreign_frees() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let other = MemoryManager::new(MemoryConfig::default()).unwrap();
    for size in [48, 3 << 20] {
        let b = mm.allocate_raw(DeviceId::CPU, layout(size, 16)).unwrap();
        assert_eq!(mm.metrics().live_allocations(), 1);
        let e = other.free_raw(b).unwrap_err();
        assert!(
            matches!(e, MemoryError::InvalidFree { .. }),
            "foreign free refused"
        );
        let mut wrong = b;
        wrong.size += 1;
        assert!(mm.free_raw(wrong).is_err(), "wrong size refused");
        mm.free_raw(b).unwrap();
        let e = mm.free_raw(b).unwrap_err();
        assert!(e.to_string().contains("double free"), "{e}");
        assert_eq!(mm.metrics().live_allocations(), 0);
    }
}

#[test]
fn unknown_devices_and_bad_configs_are_errors() {
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let e = mm.try_allocate_on(DeviceId(3), layout(8, 8)).unwrap_err();
    assert_eq!(e, MemoryError::UnknownDevice(DeviceId(3)));
    for bad in [
        MemoryConfig::default().small_threshold(8),
        MemoryConfig::default().min_chunk(1000),
        MemoryConfig::default()
            .min_chunk(8 << 20)
            .max_chunk(4 << 20),
        MemoryConfig::default().budget(0),
    ] {
        let e = MemoryManager::new(bad).unwrap_err();
        assert!(matches!(e, MemoryError::InvalidConfig { .. }), "{e}");
    }
}

#[test]
fn every_strategy_reports_budget_errors() {
    for s in [
        Strategy::Hybrid,
        Strategy::BestFit,
        Strategy::BuddySystem,
        Strategy::SlabAllocator,
    ] {
        let mm = MemoryManager::new(MemoryConfig::default().strategy(s).budget(8 << 20)).unwrap();
        let _a = mm.allocate(layout(3 << 20, 8));
        let e = mm.try_allocate(layout(7 << 20, 8)).unwrap_err();
        assert!(
            matches!(e, MemoryError::BudgetExceeded { .. }),
            "{s:?}: {e}"
        );
    }
}

#[test]
fn free_memory_past_the_resident_limit_is_handed_back_and_trim_hands_back_the_rest() {
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .retain_fraction(0.0)
            .min_retain(1 << 20),
    )
    .unwrap();
    let big: Vec<_> = (0..4).map(|_| mm.allocate(layout(8 << 20, 64))).collect();
    let peak = mm.metrics().reserved_bytes();
    assert!(peak >= 32 << 20);
    drop(big);
    let d = mm.metrics().devices[0].clone();
    // Peak live is 32 MiB: committed memory stays within it plus 1 MiB.
    assert!(d.reserved_bytes <= (32 << 20) + (1 << 20), "{d}");
    // Reusing freed blocks works whether or not their pages were handed back.
    let again = mm.allocate(layout(8 << 20, 64));
    drop(again);
    let r = mm.trim();
    let d = mm.metrics().devices[0].clone();
    assert!(r.bytes_released + r.bytes_purged > 0);
    assert!(
        d.reserved_bytes <= d.small.slab_bytes,
        "only small-pool slabs stay: {d}"
    );
}
