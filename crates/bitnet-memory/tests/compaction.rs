//! Movable allocations and compaction: contents survive moves, pinned blocks stay, chunks
//! are released with exact figures, pinning races with compaction safely, errors match
//! `try_allocate`'s.

use bitnet_memory::cleanup::CleanupConfig;
use bitnet_memory::device::{Chunk, DeviceError};
use bitnet_memory::events::CleanupStrategy;
use bitnet_memory::{
    CpuBackend, DeviceBackend, DeviceId, EventFilter, EventKind, MemoryConfig, MemoryError,
    MemoryEvent, MemoryManager, MovableAllocation, Strategy, TrackingConfig,
};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::alloc::Layout;
use std::sync::atomic::{AtomicUsize, Ordering};

const CHUNK: usize = 1 << 20;
const BLOCK: usize = 64 << 10;
/// Blocks of `BLOCK` bytes per chunk.
const PER_CHUNK: usize = CHUNK / BLOCK;

/// Chunks of exactly `CHUNK` bytes, no background worker.
fn config(strategy: Strategy) -> MemoryConfig {
    MemoryConfig::default()
        .strategy(strategy)
        .min_chunk(CHUNK)
        .max_chunk(CHUNK)
        .cleanup(CleanupConfig::manual())
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 64).unwrap()
}

/// Byte `j` of block `i`'s pattern at `version`.
fn pattern(i: usize, version: usize, j: usize) -> u8 {
    (i.wrapping_mul(131) ^ version.wrapping_mul(17) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8
}

fn fill(a: &mut MovableAllocation<'_>, i: usize, version: usize) {
    for (j, b) in a.pin_mut().iter_mut().enumerate() {
        *b = pattern(i, version, j);
    }
}

fn verify(a: &MovableAllocation<'_>, i: usize, version: usize) {
    let g = a.pin();
    assert_eq!(g.len(), a.len());
    if let Some(j) = (0..g.len()).find(|&j| g[j] != pattern(i, version, j)) {
        panic!("block {i} (version {version}) corrupted at byte {j}");
    }
}

/// `chunks` full chunks of movable blocks, each filled with its pattern; then every other
/// block freed. Returns the survivors with their indices.
fn holes(mm: &MemoryManager, chunks: usize) -> Vec<(usize, MovableAllocation<'_>)> {
    let mut blocks: Vec<(usize, MovableAllocation<'_>)> = (0..chunks * PER_CHUNK)
        .map(|i| {
            let mut a = mm.allocate_movable(layout(BLOCK)).unwrap();
            fill(&mut a, i, 0);
            (i, a)
        })
        .collect();
    mm.check_invariants();
    let m = mm.metrics();
    assert_eq!(
        m.devices[0].mapped_bytes,
        chunks * CHUNK,
        "one chunk per {PER_CHUNK} blocks"
    );
    assert_eq!(m.devices[0].large.chunks, chunks);
    blocks.retain(|(i, _)| i % 2 == 1);
    mm.check_invariants();
    blocks
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MovableAllocation<'static>>();
}

#[test]
fn contents_survive_moves() {
    for strategy in [Strategy::Hybrid, Strategy::BestFit, Strategy::BuddySystem] {
        let mm = MemoryManager::new(config(strategy)).unwrap();
        let blocks = holes(&mm, 4);
        let before: Vec<usize> = blocks.iter().map(|(_, a)| a.current_addr()).collect();
        let r = mm.compact();
        mm.check_invariants();
        assert!(r.blocks_moved > 0, "{strategy:?}: nothing moved: {r}");
        let moved = blocks
            .iter()
            .zip(&before)
            .filter(|((_, a), &b)| a.current_addr() != b)
            .count();
        assert_eq!(moved, r.blocks_moved, "{strategy:?}");
        for (i, a) in &blocks {
            verify(a, *i, 0);
        }
        // Moved blocks work like any other: write, compact again, read, free.
        let mut blocks = blocks;
        for (i, a) in blocks.iter_mut() {
            fill(a, *i, 1);
        }
        let again = mm.compact();
        assert_eq!(
            again.blocks_moved, 0,
            "{strategy:?}: a compact pool moved again"
        );
        for (i, a) in &blocks {
            verify(a, *i, 1);
        }
        drop(blocks);
        mm.check_invariants();
        assert_eq!(mm.metrics().live_bytes(), 0);
        mm.trim();
        assert_eq!(mm.metrics().devices[0].mapped_bytes, 0, "{strategy:?}");
    }
}

#[test]
fn compaction_releases_chunks_with_exact_figures() {
    for strategy in [Strategy::Hybrid, Strategy::BuddySystem] {
        let mm = MemoryManager::new(config(strategy)).unwrap();
        let blocks = holes(&mm, 4);
        let m0 = mm.metrics();
        let live = 2 * PER_CHUNK * BLOCK;
        assert_eq!(m0.live_bytes(), live);
        assert_eq!(
            m0.devices[0].reserved_bytes,
            4 * CHUNK,
            "every hole is dirty"
        );
        let events = mm.subscribe(EventFilter::only(EventKind::CleanupCompleted), 16);
        let r = mm.compact();
        mm.check_invariants();
        // Half the blocks of 4 half-full chunks fit in 2 chunks: the two least used (all
        // tie) are evacuated into the holes of the two others, 8 blocks each.
        assert_eq!(r.blocks_moved, 2 * PER_CHUNK / 2, "{strategy:?}: {r}");
        assert_eq!(r.bytes_moved, r.blocks_moved * BLOCK);
        assert_eq!(r.chunks_released, 2);
        assert_eq!(r.bytes_released, 2 * CHUNK);
        assert_eq!(r.pinned_skipped, 0);
        let m1 = mm.metrics();
        assert_eq!(m1.devices[0].mapped_bytes, 2 * CHUNK);
        assert_eq!(m1.devices[0].reserved_bytes, 2 * CHUNK);
        assert_eq!(m1.devices[0].large.chunks, 2);
        assert_eq!(
            m1.devices[0].large.free_bytes, 0,
            "the two chunks left are full"
        );
        assert_eq!(m1.live_bytes(), live);
        assert_eq!(m1.live_allocations(), blocks.len());
        // Counted as a cleanup run, and told.
        assert_eq!(m1.cleanup.runs, m0.cleanup.runs + 1);
        assert_eq!(
            m1.cleanup.bytes_released,
            m0.cleanup.bytes_released + 2 * CHUNK as u64
        );
        let last = m1.cleanup.last.unwrap();
        assert_eq!(last.strategy, CleanupStrategy::Compaction);
        assert_eq!(last.blocks_released, 2);
        let ev: Vec<MemoryEvent> = events.drain();
        assert!(
            ev.iter()
                .any(|e| matches!(e, MemoryEvent::CleanupCompleted {
                strategy: CleanupStrategy::Compaction,
                resources_cleaned: 2,
                memory_reclaimed,
                ..
            } if *memory_reclaimed == 2 * CHUNK)),
            "{ev:?}"
        );
        for (i, a) in &blocks {
            verify(a, *i, 0);
        }
    }
}

#[test]
fn pinned_blocks_never_move_and_keep_their_chunk() {
    let mm = MemoryManager::new(config(Strategy::Hybrid)).unwrap();
    let blocks = holes(&mm, 4);
    // Blocks 0..PER_CHUNK filled chunk 0 front to back: its survivors are the first ones.
    let chunk0: Vec<usize> = (0..PER_CHUNK / 2).collect();
    let addrs: Vec<usize> = blocks.iter().map(|(_, a)| a.current_addr()).collect();
    let pinned = &blocks[chunk0[2]].1;
    let guard = pinned.pin();
    assert!(pinned.is_pinned());
    let r = mm.compact();
    mm.check_invariants();
    assert_eq!(r.pinned_skipped, 1, "{r}");
    assert_eq!(guard.as_ptr() as usize, addrs[chunk0[2]]);
    assert_eq!(pinned.current_addr(), addrs[chunk0[2]]);
    // Its chunk was not evacuated: every block in it is where it was.
    for &k in &chunk0 {
        assert_eq!(
            blocks[k].1.current_addr(),
            addrs[k],
            "block of the pinned chunk moved"
        );
    }
    // The other three chunks: the two least used are evacuated into the third and into
    // chunk 0's holes; one chunk is released at least.
    assert!(r.chunks_released >= 1, "{r}");
    assert_eq!(
        mm.metrics().devices[0].mapped_bytes,
        4 * CHUNK - r.bytes_released
    );
    mm.trim();
    drop(guard);
    for (i, a) in &blocks {
        verify(a, *i, 0);
    }
    // Unpinned, the chunk can go too.
    let r2 = mm.compact();
    mm.check_invariants();
    assert_eq!(r2.pinned_skipped, 0);
    assert_eq!(
        mm.metrics().devices[0].mapped_bytes,
        2 * CHUNK,
        "{r} then {r2}"
    );
    for (i, a) in &blocks {
        verify(a, *i, 0);
    }
}

#[test]
fn chunks_holding_other_blocks_are_not_evacuated() {
    let mm = MemoryManager::new(config(Strategy::BestFit)).unwrap();
    let mut blocks = holes(&mm, 3);
    // Plain (unmovable) blocks take the holes freed last: those of chunk 2.
    let fixed: Vec<_> = (0..PER_CHUNK / 2)
        .map(|_| mm.allocate(layout(BLOCK)))
        .collect();
    // Chunks 0 and 1 empty, chunk 2 full of movable and unmovable blocks: plenty of room
    // elsewhere, but evacuating chunk 2 could not release it.
    blocks.drain(..PER_CHUNK);
    let addrs: Vec<usize> = blocks.iter().map(|(_, a)| a.current_addr()).collect();
    let every: Vec<usize> = addrs
        .iter()
        .copied()
        .chain(fixed.iter().map(|a| a.as_ptr() as usize))
        .collect();
    let (lo, hi) = (every.iter().min().unwrap(), every.iter().max().unwrap());
    assert!(hi + BLOCK - lo <= CHUNK, "the layout is not one full chunk");
    mm.check_invariants();
    let r = mm.compact();
    mm.check_invariants();
    assert_eq!(r.blocks_moved, 0, "{r}");
    assert_eq!(r.chunks_released, 0);
    for ((i, a), &addr) in blocks.iter().zip(&addrs) {
        assert_eq!(a.current_addr(), addr);
        verify(a, *i, 0);
    }
    drop(fixed);
}

#[test]
fn compaction_under_concurrent_pinning() {
    const THREADS: usize = 3;
    const STEPS: usize = 1500;
    let mm = MemoryManager::new(
        MemoryConfig::default()
            .min_chunk(256 << 10)
            .max_chunk(256 << 10)
            .cleanup(CleanupConfig::manual()),
    )
    .unwrap();
    // Shared read-only blocks, with holes between them.
    let mut shared = Vec::new();
    for i in 0..48 {
        let mut a = mm.allocate_movable(layout(8 << 10)).unwrap();
        fill(&mut a, 10_000 + i, 0);
        shared.push((10_000 + i, a));
    }
    shared.retain(|(i, _)| i % 3 == 0);
    let shared = &shared;
    let running = AtomicUsize::new(THREADS);
    let moves_seen_by_readers = AtomicUsize::new(0);
    let mut compacted = 0;
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for t in 0..THREADS {
            let (mm, seen, running) = (&mm, &moves_seen_by_readers, &running);
            workers.push(s.spawn(move || {
                // Stops the compactor when the last worker ends, panicking or not.
                struct Running<'a>(&'a AtomicUsize);
                impl Drop for Running<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                let _running = Running(running);
                let mut rng = SmallRng::seed_from_u64(t as u64);
                let mut own: Vec<(usize, usize, MovableAllocation<'_>)> = Vec::new();
                let mut next_id = t * 1_000_000;
                let mut last_addr = vec![0usize; shared.len()];
                for _ in 0..STEPS {
                    match rng.gen_range(0..10) {
                        0..=2 if own.len() < 24 => {
                            let size = rng.gen_range(1..=24) << 10;
                            let mut a = mm.allocate_movable(layout(size)).unwrap();
                            fill(&mut a, next_id, 0);
                            own.push((next_id, 0, a));
                            next_id += 1;
                        }
                        3 if !own.is_empty() => {
                            let k = rng.gen_range(0..own.len());
                            let (i, v, a) = own.swap_remove(k);
                            verify(&a, i, v);
                        }
                        4..=6 if !own.is_empty() => {
                            let k = rng.gen_range(0..own.len());
                            let (i, v, a) = &mut own[k];
                            let mut g = a.pin_mut();
                            let bad = (0..g.len()).find(|&j| g[j] != pattern(*i, *v, j));
                            assert_eq!(bad, None, "own block {i} v{v} corrupted");
                            *v += 1;
                            for (j, b) in g.iter_mut().enumerate() {
                                *b = pattern(*i, *v, j);
                            }
                        }
                        _ => {
                            let k = rng.gen_range(0..shared.len());
                            let (i, a) = &shared[k];
                            let g = a.pin();
                            let addr = g.as_ptr() as usize;
                            assert!(!a.is_moving(), "a guard saw its block moving");
                            if last_addr[k] != 0 && last_addr[k] != addr {
                                seen.fetch_add(1, Ordering::Relaxed);
                            }
                            last_addr[k] = addr;
                            let bad = (0..g.len()).find(|&j| g[j] != pattern(*i, 0, j));
                            assert_eq!(bad, None, "shared block {i} corrupted");
                            std::thread::yield_now();
                            assert_eq!(a.current_addr(), addr, "a pinned block moved");
                            assert!(!a.is_moving(), "a guard saw its block moving");
                        }
                    }
                }
                for (i, v, a) in &own {
                    verify(a, *i, *v);
                }
                own.len()
            }));
        }
        let compactor = s.spawn(|| {
            let mut moved = 0;
            while running.load(Ordering::Relaxed) > 0 {
                moved += mm.compact().blocks_moved;
                std::thread::yield_now();
            }
            moved
        });
        for w in workers {
            w.join().unwrap();
        }
        compacted = compactor.join().unwrap();
    });
    mm.check_invariants();
    for (i, a) in shared {
        verify(a, *i, 0);
    }
    assert!(compacted > 0, "the compactor never moved a block");
    eprintln!(
        "moved {compacted} blocks; readers saw {} moves of shared blocks",
        moves_seen_by_readers.load(Ordering::Relaxed)
    );
    assert_eq!(mm.metrics().live_allocations(), shared.len());
}

#[test]
fn bad_input_gives_the_same_errors_as_try_allocate() {
    let mm = MemoryManager::new(config(Strategy::Hybrid).budget(2 * CHUNK)).unwrap();
    let cases = [
        // Alignment over 1 GiB.
        Layout::from_size_align(64, 1 << 31).unwrap(),
        // Over the budget.
        Layout::from_size_align(3 * CHUNK, 64).unwrap(),
    ];
    for l in cases {
        let plain = mm.try_allocate(l).unwrap_err();
        let movable = mm.allocate_movable(l).unwrap_err();
        assert_eq!(movable, plain, "{l:?}");
    }
    assert!(matches!(
        mm.allocate_movable(cases[0]).unwrap_err(),
        MemoryError::InvalidLayout { .. }
    ));
    let e = mm.allocate_movable(cases[1]).unwrap_err();
    assert!(matches!(e, MemoryError::BudgetExceeded { requested, .. } if requested == 3 * CHUNK));
    assert!(e.is_retryable());
    assert_eq!(
        mm.allocate_movable_on(DeviceId(7), layout(64)).unwrap_err(),
        MemoryError::UnknownDevice(DeviceId(7))
    );
    // Zero-sized: no memory, an empty view, nothing to move.
    let mut z = mm
        .allocate_movable(Layout::from_size_align(0, 256).unwrap())
        .unwrap();
    assert!(z.is_empty());
    assert!(z.pin().is_empty());
    assert_eq!(z.pin().as_ptr() as usize % 256, 0);
    assert!(z.pin_mut().is_empty());
    assert_eq!(mm.metrics().live_allocations(), 0);
    assert_eq!(mm.compact().blocks_moved, 0);
    drop(z);
    mm.check_invariants();
    assert_eq!(mm.metrics().devices[0].mapped_bytes, 0);
}

#[test]
fn movable_blocks_are_counted_and_tracked_like_any_allocation() {
    let mm = MemoryManager::new(config(Strategy::Hybrid).tracking(TrackingConfig::full())).unwrap();
    // Small sizes too: movable blocks come from the large pool whatever their size.
    let a = mm.allocate_movable(layout(100)).unwrap();
    let b = mm.allocate_movable(layout(300 << 10)).unwrap();
    assert!(a.is_tracked() && b.is_tracked());
    assert!(a.id().is_some());
    let m = mm.metrics();
    assert_eq!(m.live_bytes(), 100 + (300 << 10));
    assert_eq!(m.live_allocations(), 2);
    assert_eq!(m.devices[0].large.live_blocks, 2, "not in a size class");
    assert_eq!(m.devices[0].small.live_blocks, 0);
    let report = mm.leak_report();
    assert_eq!(report.allocations, 2);
    let tracked: usize = report.sites.iter().map(|s| s.count).sum();
    assert_eq!(tracked, 2);
    assert!(report
        .sites
        .iter()
        .any(|s| s.site.contains("compaction.rs")));
    drop(a);
    drop(b);
    assert!(mm.leak_report().is_empty());
    assert_eq!(mm.tracking().stats().tracked_live, 0);
    assert_eq!(mm.metrics().live_bytes(), 0);
    mm.check_invariants();
}

#[test]
fn emergency_cleanup_compacts() {
    let mm = MemoryManager::new(config(Strategy::Hybrid)).unwrap();
    let blocks = holes(&mm, 4);
    let events = mm.subscribe(EventFilter::only(EventKind::CleanupCompleted), 16);
    let r = mm.emergency_cleanup();
    mm.check_invariants();
    assert_eq!(r.strategy, CleanupStrategy::Emergency);
    let strategies: Vec<CleanupStrategy> = events
        .drain()
        .into_iter()
        .map(|e| match e {
            MemoryEvent::CleanupCompleted { strategy, .. } => strategy,
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(
        strategies,
        [CleanupStrategy::Compaction, CleanupStrategy::Emergency]
    );
    assert_eq!(mm.metrics().devices[0].mapped_bytes, 2 * CHUNK);
    for (i, a) in &blocks {
        verify(a, *i, 0);
    }
}

/// The CPU, but reported as memory the host cannot see.
struct Opaque(CpuBackend);

impl DeviceBackend for Opaque {
    fn name(&self) -> &str {
        "opaque"
    }
    fn host_visible(&self) -> bool {
        false
    }
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        self.0.allocate_chunk(size, align)
    }
    fn release_chunk(&self, chunk: Chunk) {
        self.0.release_chunk(chunk)
    }
    fn capacity(&self) -> Option<usize> {
        None
    }
    fn available(&self) -> Option<usize> {
        None
    }
}

#[test]
fn devices_the_host_cannot_see_are_not_compacted() {
    let mm = MemoryManager::builder(config(Strategy::Hybrid))
        .device(CpuBackend::new(), None)
        .device(Opaque(CpuBackend::new()), None)
        .build()
        .unwrap();
    let dev = DeviceId(1);
    let mut blocks: Vec<_> = (0..2 * PER_CHUNK)
        .map(|_| mm.allocate_movable_on(dev, layout(BLOCK)).unwrap())
        .collect();
    assert!(blocks[0].try_pin().is_none());
    assert!(blocks[0].try_pin_mut().is_none());
    let mut k = 0;
    blocks.retain(|_| {
        k += 1;
        k % 2 == 0
    });
    let addrs: Vec<usize> = blocks.iter().map(|a| a.current_addr()).collect();
    let r = mm.compact();
    assert_eq!((r.blocks_moved, r.chunks_released), (0, 0), "{r}");
    assert_eq!(
        addrs,
        blocks.iter().map(|a| a.current_addr()).collect::<Vec<_>>()
    );
    mm.check_invariants();
}
