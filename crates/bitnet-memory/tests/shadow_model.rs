//! Shadow-model tests: random operation sequences applied to the pool and to a plain model
//! of live byte ranges, compared after every step.

use bitnet_memory::{Allocation, MemoryConfig, MemoryManager, Strategy as PoolStrategy};
use proptest::prelude::*;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::alloc::Layout;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align: usize },
    Write { idx: usize, byte: u8 },
    Free { idx: usize },
    Trim,
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        4 => 1usize..=64,
        4 => 65usize..=4096,
        2 => 4097usize..=(1 << 20) + 4096,
        1 => (1usize << 20)..=(3 << 20),
    ];
    let align = prop_oneof![8 => (0u32..=7).prop_map(|s| 1usize << s), 1 => (8u32..=16).prop_map(|s| 1usize << s)];
    prop_oneof![
        6 => (size, align).prop_map(|(size, align)| Op::Alloc { size, align }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(idx, byte)| Op::Write { idx, byte }),
        5 => any::<usize>().prop_map(|idx| Op::Free { idx }),
        1 => Just(Op::Trim),
    ]
}

struct Live<'m> {
    a: Allocation<'m>,
    byte: u8,
}

/// The model: live ranges by start address.
fn check_disjoint(ranges: &BTreeMap<usize, usize>, start: usize, len: usize) {
    if let Some((&s, &l)) = ranges.range(..=start).next_back() {
        assert!(
            s + l <= start,
            "new block {start:#x}+{len} overlaps {s:#x}+{l}"
        );
    }
    if let Some((&s, _)) = ranges.range(start..).next() {
        assert!(
            start + len <= s,
            "new block {start:#x}+{len} overlaps {s:#x}"
        );
    }
}

fn run(config: MemoryConfig, ops: &[Op]) {
    let mm = MemoryManager::new(config).unwrap();
    let mut live: Vec<Live<'_>> = Vec::new();
    let mut ranges = BTreeMap::new();
    let mut live_bytes = 0usize;
    let mut peak = 0usize;
    for op in ops {
        match *op {
            Op::Alloc { size, align } => {
                let mut a = mm
                    .try_allocate(Layout::from_size_align(size, align).unwrap())
                    .unwrap();
                let addr = a.as_ptr() as usize;
                assert_eq!(addr % align, 0, "misaligned: {size} B align {align}");
                assert_eq!(a.len(), size);
                check_disjoint(&ranges, addr, size);
                ranges.insert(addr, size);
                let byte = (addr >> 4) as u8 | 1;
                a.as_mut_slice().fill(byte);
                live.push(Live { a, byte });
                live_bytes += size;
                peak = peak.max(live_bytes);
            }
            Op::Write { idx, byte } => {
                let n = live.len().max(1);
                if let Some(l) = live.get_mut(idx % n) {
                    assert!(
                        l.a.as_slice().iter().all(|&b| b == l.byte),
                        "contents changed"
                    );
                    l.a.as_mut_slice().fill(byte);
                    l.byte = byte;
                }
            }
            Op::Free { idx } => {
                if !live.is_empty() {
                    let l = live.swap_remove(idx % live.len());
                    assert!(
                        l.a.as_slice().iter().all(|&b| b == l.byte),
                        "contents changed"
                    );
                    ranges.remove(&(l.a.as_ptr() as usize));
                    live_bytes -= l.a.len();
                }
            }
            Op::Trim => {
                mm.trim();
            }
        }
        mm.check_invariants();
        let m = mm.metrics();
        assert_eq!(m.live_bytes(), live_bytes);
        assert_eq!(m.peak_live_bytes(), peak);
        assert_eq!(m.live_allocations(), live.len());
        assert!(m.reserved_bytes() >= live_bytes);
    }
    for l in &live {
        assert!(
            l.a.as_slice().iter().all(|&b| b == l.byte),
            "contents changed"
        );
    }
    drop(live);
    mm.trim();
    mm.check_invariants();
    let m = mm.metrics();
    assert_eq!(m.live_bytes(), 0);
    assert_eq!(
        m.reserved_bytes(),
        0,
        "a full trim of an empty pool releases every chunk"
    );
}

fn configs() -> Vec<MemoryConfig> {
    let small = MemoryConfig::default()
        .min_chunk(64 << 10)
        .max_chunk(1 << 20);
    vec![
        MemoryConfig::default(),
        small.clone(),
        small.clone().strategy(PoolStrategy::BestFit),
        small.clone().strategy(PoolStrategy::BuddySystem),
        small.clone().strategy(PoolStrategy::SlabAllocator),
        small.clone().small_threshold(4096),
        small.thread_cache(false),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 48 }, ..ProptestConfig::default() })]

    #[test]
    fn pool_matches_shadow_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 12 } else { 160 })) {
        for config in configs() {
            run(config, &ops);
        }
    }
}

/// Blocks allocated on one thread are checked and freed on another, while both allocate.
#[test]
fn cross_thread_frees_keep_blocks_intact() {
    let steps = if cfg!(miri) { 40 } else { 20_000 };
    for config in configs() {
        let mm = MemoryManager::new(config).unwrap();
        let (tx, rx) = crossbeam_channel::bounded::<(Allocation<'_>, u8)>(64);
        std::thread::scope(|s| {
            let mm = &mm;
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(7);
                let mut mine = Vec::new();
                for i in 0..steps {
                    let size = 1usize << rng.gen_range(0..18);
                    let size = rng.gen_range(1..=size);
                    let mut a = mm.allocate(Layout::from_size_align(size, 16).unwrap());
                    let byte = i as u8 | 1;
                    a.as_mut_slice().fill(byte);
                    if rng.gen_bool(0.7) {
                        tx.send((a, byte)).unwrap();
                    } else {
                        mine.push((a, byte));
                        if mine.len() > 32 {
                            let (a, b) = mine.swap_remove(rng.gen_range(0..mine.len()));
                            assert!(a.as_slice().iter().all(|&x| x == b));
                        }
                    }
                }
            });
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(8);
                let mut kept = Vec::new();
                for (a, byte) in rx {
                    assert!(
                        a.as_slice().iter().all(|&x| x == byte),
                        "block changed in flight"
                    );
                    // The consumer allocates too, reusing what it freed.
                    let mut b = mm.allocate(Layout::from_size_align(a.len(), 8).unwrap());
                    b.as_mut_slice().fill(!byte);
                    kept.push((b, !byte));
                    drop(a);
                    if kept.len() > 16 {
                        let (b, v) = kept.swap_remove(rng.gen_range(0..kept.len()));
                        assert!(b.as_slice().iter().all(|&x| x == v));
                    }
                }
            });
        });
        mm.check_invariants();
        let m = mm.metrics();
        assert_eq!(m.live_bytes(), 0);
        assert_eq!(m.live_allocations(), 0);
        let d = &m.devices[0];
        assert_eq!(d.allocations, d.frees);
    }
}
