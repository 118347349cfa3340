//! Fragmentation reports on hand-built layouts whose numbers are known exactly, the
//! report in an out-of-memory error, and the byte partition on random workloads.
#![deny(unsafe_code)]

use bitnet_memory::{
    Allocation, DeviceMetrics, FailingBackend, MemoryConfig, MemoryError, MemoryManager, Strategy,
};
use proptest::prelude::*;
use std::alloc::Layout;

const CHUNK: usize = 1 << 20;
/// TLSF rounds every block to 16 B.
const GRANULE: usize = 16;

/// Best fit for every size, every chunk exactly 1 MiB: the layout of the blocks in the
/// chunk is fixed (TLSF splits blocks off the front of the free chunk, in order).
fn exact_chunks(strategy: Strategy) -> MemoryConfig {
    MemoryConfig::default()
        .strategy(strategy)
        .min_chunk(CHUNK)
        .max_chunk(CHUNK)
        .thread_cache(false)
}

fn cpu(mm: &MemoryManager) -> DeviceMetrics {
    mm.metrics().devices[0].clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Requested size of the large blocks: 4 B short of a granule multiple, so that each live
/// block carries exactly 4 B of rounding.
const REQ: usize = 65_436;
const BLOCK: usize = REQ.next_multiple_of(GRANULE);
const N: usize = CHUNK / BLOCK;

/// Fills one chunk with `N` blocks, frees every other one (the even ones): `N / 2` free
/// holes of `BLOCK` bytes between live blocks, plus the chunk's tail after the last block.
fn checkerboard(mm: &MemoryManager) -> Vec<Option<Allocation<'_>>> {
    let mut blocks: Vec<Option<Allocation<'_>>> = (0..N)
        .map(|_| {
            Some(
                mm.try_allocate(Layout::from_size_align(REQ, 16).unwrap())
                    .unwrap(),
            )
        })
        .collect();
    for i in (0..N).step_by(2) {
        blocks[i] = None;
    }
    blocks
}

#[test]
fn large_pool_checkerboard_has_the_expected_numbers() {
    let mm = MemoryManager::new(exact_chunks(Strategy::BestFit)).unwrap();
    let mut blocks = checkerboard(&mm);
    let m = cpu(&mm);
    let f = &m.fragmentation;
    let tail = CHUNK - N * BLOCK;
    let live_blocks = N - N.div_ceil(2);
    let holes = N.div_ceil(2);
    assert!(
        tail > 0 && N.is_multiple_of(2),
        "the last block is live and the tail stays apart"
    );
    assert_eq!(m.large.chunks, 1);
    assert_eq!(f.reserved_bytes, CHUNK);
    assert_eq!(f.live_bytes, live_blocks * REQ);
    assert_eq!(f.rounding_bytes, live_blocks * (BLOCK - REQ));
    assert_eq!(f.internal_waste_bytes, f.rounding_bytes, "no slabs");
    assert_eq!(f.large.free_blocks, holes + 1);
    assert_eq!(f.large.free_bytes, holes * BLOCK + tail);
    assert_eq!(f.large.largest_free, BLOCK);
    assert!(close(
        f.large.external,
        1.0 - BLOCK as f64 / (holes * BLOCK + tail) as f64
    ));
    assert!(close(
        f.utilization,
        (live_blocks * REQ) as f64 / CHUNK as f64
    ));
    let buckets: Vec<_> = f
        .large
        .histogram
        .buckets
        .iter()
        .map(|b| (b.min_bytes, b.blocks, b.bytes))
        .collect();
    assert_eq!(
        buckets,
        [
            (1 << tail.ilog2(), 1, tail),
            (1 << BLOCK.ilog2(), holes, holes * BLOCK)
        ]
    );
    assert_eq!(f.other_bytes, 0);
    assert_eq!(f.small.slab_bytes, 0);
    // The report agrees with the plain counters.
    assert_eq!(f.large.free_bytes, m.large.free_bytes);
    assert_eq!(f.large.largest_free, m.large.largest_free);
    assert!(close(f.large.external, m.external_fragmentation()));

    // Freeing block 1 merges it with the holes at 0 and 2.
    blocks[1] = None;
    let f = cpu(&mm).fragmentation;
    assert_eq!(f.large.free_blocks, holes);
    assert_eq!(f.large.largest_free, 3 * BLOCK);
    assert_eq!(f.large.free_bytes, (holes + 1) * BLOCK + tail);

    // Everything free: one block, no fragmentation.
    drop(blocks);
    let f = cpu(&mm).fragmentation;
    assert_eq!(
        (f.large.free_blocks, f.large.largest_free),
        (1, CHUNK),
        "{f}"
    );
    assert!(close(f.large.external, 0.0));
    assert!(close(f.utilization, 0.0));
}

#[test]
fn alignment_padding_shows_as_a_free_block() {
    let mm = MemoryManager::new(exact_chunks(Strategy::BestFit)).unwrap();
    let _small = mm
        .try_allocate(Layout::from_size_align(100, 16).unwrap())
        .unwrap();
    let _aligned = mm
        .try_allocate(Layout::from_size_align(8192, 4096).unwrap())
        .unwrap();
    let f = cpu(&mm).fragmentation;
    let first = 100usize.next_multiple_of(GRANULE);
    let pad = 4096 - first;
    let tail = CHUNK - 4096 - 8192;
    assert_eq!(f.rounding_bytes, first - 100);
    assert_eq!(f.large.free_blocks, 2);
    assert_eq!(f.large.free_bytes, pad + tail);
    assert_eq!(f.large.largest_free, tail);
    assert_eq!(f.large.histogram.buckets[0].min_bytes, 1 << pad.ilog2());
}

#[test]
fn small_pool_checkerboard_strands_half_a_slab() {
    // 4000 B requests land in the 4096 B class, whose slab is 64 KiB = 16 blocks; without
    // a thread cache every block comes from and goes back to the central list.
    let mm = MemoryManager::new(exact_chunks(Strategy::Hybrid)).unwrap();
    let req = 4000;
    let class = 4096;
    let per_slab = 16;
    let mut blocks: Vec<Option<Allocation<'_>>> = (0..per_slab)
        .map(|_| {
            Some(
                mm.try_allocate(Layout::from_size_align(req, 16).unwrap())
                    .unwrap(),
            )
        })
        .collect();
    for i in (0..per_slab).step_by(2) {
        blocks[i] = None;
    }
    let m = cpu(&mm);
    let f = &m.fragmentation;
    let live = per_slab / 2;
    assert_eq!(f.small.slab_bytes, per_slab * class);
    assert_eq!(f.small.slab_tail_bytes, 0);
    assert_eq!(f.small.live_block_bytes, live * class);
    assert_eq!(f.small.cached_bytes, 0);
    assert_eq!(f.small.free_bytes, live * class);
    assert_eq!(f.small.stranded_bytes, live * class);
    assert_eq!((f.small.empty_slabs, f.small.empty_slab_bytes), (0, 0));
    assert_eq!(f.small.largest_free_run, class);
    assert!(close(f.small.external, 1.0 - 1.0 / live as f64));
    assert_eq!(f.small.histogram.blocks(), live);
    assert_eq!(f.rounding_bytes, live * (class - req));
    assert_eq!(f.large.free_bytes, CHUNK - per_slab * class);
    assert_eq!(f.small.free_bytes, m.small.free_bytes);

    // All free: the slab is one run, empty, and nothing is stranded.
    drop(blocks);
    let f = cpu(&mm).fragmentation;
    assert_eq!(f.small.stranded_bytes, 0);
    assert_eq!(
        (f.small.empty_slabs, f.small.empty_slab_bytes),
        (1, per_slab * class)
    );
    assert_eq!(f.small.largest_free_run, per_slab * class);
    assert!(close(f.small.external, 0.0));
}

#[test]
fn out_of_memory_error_carries_the_report() {
    let backend = FailingBackend::new();
    backend.set_capacity(CHUNK);
    let mm = MemoryManager::with_backend(exact_chunks(Strategy::BestFit), backend).unwrap();
    let _blocks = checkerboard(&mm);
    let f = cpu(&mm).fragmentation;
    // Half the chunk is free, but in holes of one block: two blocks do not fit anywhere.
    let e = mm
        .try_allocate(Layout::from_size_align(2 * BLOCK, 16).unwrap())
        .unwrap_err();
    let MemoryError::OutOfMemory {
        largest_free,
        pool_report,
        ..
    } = &e
    else {
        panic!("expected out of memory, got {e}");
    };
    assert_eq!(*largest_free, BLOCK);
    assert_eq!(*pool_report, f.to_string());
    let msg = e.to_string();
    for part in [
        format!("utilization {:.1}%", 100.0 * f.utilization),
        format!("in {} blocks", N / 2 + 1),
        format!("external fragmentation {:.1}%", 100.0 * f.large.external),
        format!(": {}", N / 2),
    ] {
        assert!(msg.contains(&part), "{part:?} missing from {msg}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// On any single-threaded workload the report's parts add up to the reserved bytes,
    /// and it agrees with the plain counters.
    #[test]
    fn parts_add_up_to_reserved(ops in prop::collection::vec((1usize..300_000, 0u8..4, any::<bool>()), 1..120)) {
        let mm = MemoryManager::new(MemoryConfig::default().min_chunk(CHUNK)).unwrap();
        let mut live: Vec<Allocation<'_>> = Vec::new();
        for (size, align_log, free) in ops {
            if free && !live.is_empty() {
                live.swap_remove(size % live.len());
            } else {
                let layout = Layout::from_size_align(size, 16 << (2 * align_log)).unwrap();
                live.push(mm.try_allocate(layout).unwrap());
            }
            let m = cpu(&mm);
            let f = &m.fragmentation;
            let parts = f.live_bytes + f.rounding_bytes + f.small.slab_tail_bytes
                + f.small.cached_bytes + f.small.free_bytes + f.large.free_bytes + f.other_bytes;
            prop_assert_eq!(parts, f.reserved_bytes, "{}", f);
            prop_assert!(f.other_bytes < 4096 * (m.large.chunks + 1), "{}", f);
            prop_assert_eq!(f.live_bytes, live.iter().map(|a| a.len()).sum::<usize>());
            prop_assert_eq!(f.rounding_bytes, m.padding_bytes());
            prop_assert_eq!(f.small.cached_bytes, m.small.cached_bytes);
            prop_assert_eq!(f.large.free_bytes, m.large.free_bytes);
            prop_assert_eq!(f.large.histogram.bytes(), f.large.free_bytes);
            prop_assert!(f.small.stranded_bytes + f.small.empty_slab_bytes >= f.small.free_bytes);
        }
    }
}

#[test]
fn thread_cache_bytes_bounds_what_a_thread_keeps_per_class() {
    // Fixed caches (growth 1): the bytes are the bound.
    let cached_after = |bytes: usize| cached_after_frees(bytes, 1);
    assert_eq!(cached_after(4096), 4);
    assert_eq!(
        cached_after(1023),
        0,
        "blocks bigger than the budget are not cached"
    );
    assert_eq!(cached_after(256 << 10), 128, "at most 128 blocks");
}

#[test]
fn a_class_that_keeps_missing_grows_its_cache_up_to_growth_times_the_bytes() {
    // 200 frees in a row: the cache overflows again and again, and grows each time.
    assert_eq!(cached_after_frees(4096, 8), 32, "8 x 4 KiB of 1 KiB blocks");
    assert_eq!(cached_after_frees(4096, 2), 8);
    assert_eq!(
        cached_after_frees(64 << 10, 8),
        128,
        "still at most 128 blocks"
    );
    assert_eq!(
        cached_after_frees(1023, 8),
        0,
        "a class the bytes do not cache stays uncached"
    );
}

/// Blocks of the 1 KiB class cached after 200 allocations, then 200 frees, with the given
/// cache bytes and growth.
fn cached_after_frees(bytes: usize, growth: usize) -> usize {
    {
        let mut c = MemoryConfig {
            thread_cache_bytes: bytes,
            thread_cache_growth: growth,
            ..MemoryConfig::default()
        };
        c.cleanup.background = false;
        let mm = MemoryManager::new(c).unwrap();
        let v: Vec<Allocation<'_>> = (0..200)
            .map(|_| mm.allocate(Layout::from_size_align(1024, 8).unwrap()))
            .collect();
        drop(v);
        let m = cpu(&mm);
        m.small
            .classes
            .iter()
            .find(|c| c.block_size == 1024)
            .unwrap()
            .cached_blocks
    }
}
