//! A reduced set over every path that touches raw memory (allocation views, the CPU
//! backend, cross-thread frees, trimming), small enough for `cargo +nightly miri test`.
//! It runs in normal test runs too.

use bitnet_memory::{DeviceId, MemoryConfig, MemoryManager, Strategy};
use std::alloc::Layout;

fn small_config() -> MemoryConfig {
    // Small chunks keep Miri fast (it zero-fills and tracks every byte). No cleanup worker:
    // its timed condvar wait parks the thread, and Miri (nightly from 2026-09-11) rejects
    // parking_lot_core 0.9.12's futex call (rust-lang/rust#161734); nothing here needs it.
    let mut c = MemoryConfig::default()
        .min_chunk(64 << 10)
        .max_chunk(256 << 10)
        .small_threshold(16 << 10);
    c.cleanup.background = false;
    c
}

#[test]
fn views_write_and_read_every_byte_of_small_and_large_blocks() {
    // Under Miri one strategy of each kind of code path (classes and TLSF) keeps the run
    // within its budget; the buddy system's views are the same views.
    let strategies: &[Strategy] = if cfg!(miri) {
        &[Strategy::Hybrid]
    } else {
        &[Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem]
    };
    for &strategy in strategies {
        let mm = MemoryManager::new(small_config().strategy(strategy)).unwrap();
        let mut blocks = Vec::new();
        for (i, size) in [1usize, 7, 16, 100, 1000, 5000, 20_000, 70_000]
            .into_iter()
            .enumerate()
        {
            let mut a = mm.allocate(Layout::from_size_align(size, 8).unwrap());
            a.as_mut_slice().fill(i as u8);
            blocks.push((a, i as u8));
        }
        for (a, v) in &blocks {
            assert!(a.as_slice().iter().all(|b| b == v));
        }
        blocks.truncate(3);
        let z = mm.allocate_zeroed(Layout::from_size_align(5000, 64).unwrap());
        assert!(z.as_slice().iter().all(|&b| b == 0));
        drop(z);
        drop(blocks);
        mm.trim();
        mm.check_invariants();
        assert_eq!(mm.metrics().live_bytes(), 0);
    }
}

#[test]
fn blocks_move_between_threads() {
    let mm = MemoryManager::new(small_config()).unwrap();
    let blocks: Vec<_> = (0..20)
        .map(|i| {
            let mut a = mm.allocate(Layout::from_size_align(64 + i * 300, 16).unwrap());
            a.as_mut_slice().fill(i as u8);
            a
        })
        .collect();
    std::thread::scope(|s| {
        s.spawn(move || {
            for (i, a) in blocks.into_iter().enumerate() {
                assert!(a.as_slice().iter().all(|&b| b == i as u8));
            }
        });
        s.spawn(|| {
            let a = mm.allocate(Layout::from_size_align(3000, 8).unwrap());
            drop(a);
        });
    });
    // Reuse the blocks the other thread freed into its own cache or the central lists.
    let again: Vec<_> = (0..20)
        .map(|i| mm.allocate(Layout::from_size_align(64 + i * 300, 16).unwrap()))
        .collect();
    drop(again);
    assert_eq!(mm.metrics().live_allocations(), 0);
}

#[test]
fn zero_sized_and_raw_blocks() {
    let mm = MemoryManager::new(small_config()).unwrap();
    let mut z = mm.allocate(Layout::from_size_align(0, 32).unwrap());
    assert!(z.as_mut_slice().is_empty());
    let raw = mm
        .allocate_raw(DeviceId::CPU, Layout::from_size_align(48, 8).unwrap())
        .unwrap();
    // SAFETY: the raw block is 48 bytes of host memory owned by this test until freed.
    unsafe { raw.ptr.as_ptr().write_bytes(0xAB, raw.size) };
    mm.free_raw(raw).unwrap();
    assert!(mm.free_raw(raw).is_err());
}

#[test]
fn movable_blocks_are_copied_by_compaction_while_another_thread_pins() {
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .min_chunk(16 << 10)
            .max_chunk(16 << 10)
            .cleanup(bitnet_memory::CleanupConfig::manual()),
    )
    .unwrap();
    let l = Layout::from_size_align(1024, 16).unwrap();
    let mut blocks: Vec<_> = (0..48u8)
        .map(|i| {
            let mut a = mm.allocate_movable(l).unwrap();
            a.pin_mut().fill(i);
            (i, a)
        })
        .collect();
    assert_eq!(mm.metrics().devices[0].mapped_bytes, 3 * (16 << 10));
    blocks.retain(|(i, _)| i % 2 == 1);
    let before: Vec<usize> = blocks.iter().map(|(_, a)| a.current_addr()).collect();
    let shared = &blocks;
    let mut moved = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..2 {
                for (i, a) in shared {
                    let g = a.pin();
                    assert!(g.iter().all(|b| b == i));
                }
            }
        });
        moved += mm.compact().blocks_moved;
    });
    // Whatever the reader's pins kept in place goes now.
    moved += mm.compact().blocks_moved;
    mm.check_invariants();
    let now: Vec<usize> = blocks.iter().map(|(_, a)| a.current_addr()).collect();
    let elsewhere = before.iter().zip(&now).filter(|(b, n)| b != n).count();
    assert!(
        elsewhere > 0 && elsewhere <= moved,
        "{elsewhere} blocks elsewhere, {moved} moves"
    );
    assert_eq!(mm.metrics().devices[0].mapped_bytes, 2 * (16 << 10));
    for (i, a) in blocks.iter_mut() {
        assert!(a.pin().iter().all(|b| b == i));
        a.pin_mut().fill(!*i);
    }
    drop(blocks);
    assert_eq!(mm.metrics().live_bytes(), 0);
}

#[test]
fn hardened_canaries_poison_sensitive_wipes_and_raw_reads() {
    let mm = MemoryManager::new(small_config().hardened(true)).unwrap();
    let mut a = mm.allocate(Layout::from_size_align(40, 8).unwrap());
    a.as_mut_slice().fill(3);
    mm.validate().unwrap();
    // SAFETY: one past the end lies in the back canary, inside the pool block.
    unsafe { a.as_mut_ptr().add(40).write(0) };
    assert!(mm.validate().is_err());
    drop(a);
    let s = mm
        .try_allocate_sensitive(Layout::from_size_align(32, 8).unwrap())
        .unwrap();
    drop(s);
    let r = mm
        .allocate_raw(DeviceId::CPU, Layout::from_size_align(24, 8).unwrap())
        .unwrap();
    assert_eq!(mm.raw_bytes(&r).unwrap().len(), 24);
    mm.free_raw(r).unwrap();
    assert!(mm.raw_bytes(&r).is_err(), "stale handle reads nothing");
    assert!(mm.validate().is_err(), "the corruption found at the free");
    mm.validate().unwrap();
}
