//! The metrics keep their invariants over random operation sequences (allocations of
//! every size, frees, writes that fault pages in, trims, emergency cleanups, decay), on
//! every strategy and preset: largest free <= free; free inside what it is a part of;
//! live <= reserved <= mapped; peaks >= currents; and a trim's report agrees with the
//! fall of the figure it names.

use bitnet_memory::cleanup::CleanupConfig;
use bitnet_memory::{DeviceMetrics, MemoryConfig, MemoryManager, Strategy as PoolStrategy};
use proptest::prelude::*;
use std::alloc::Layout;

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    Touch(usize),
    Free(usize),
    Trim,
    Emergency,
    Decay,
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        4 => 1usize..=4096,
        3 => 4097usize..=(1 << 20),
        2 => (1usize << 20)..=(24 << 20),
    ];
    prop_oneof![
        6 => size.prop_map(Op::Alloc),
        2 => any::<usize>().prop_map(Op::Touch),
        5 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::Trim),
        1 => Just(Op::Emergency),
        1 => Just(Op::Decay),
    ]
}

fn check(d: &DeviceMetrics, step: &str) {
    let ctx = || format!("after {step}:\n{d}\n{d:?}");
    assert!(
        d.large.largest_free <= d.large.free_bytes,
        "largest free > free, {}",
        ctx()
    );
    assert!(
        d.large.free_bytes <= d.mapped_bytes,
        "large free > mapped, {}",
        ctx()
    );
    assert!(
        d.large.largest_free <= d.mapped_bytes,
        "largest free > mapped, {}",
        ctx()
    );
    assert!(
        d.free_bytes() <= d.reserved_bytes,
        "free > reserved, {}",
        ctx()
    );
    assert!(
        d.live_bytes <= d.reserved_bytes,
        "live > reserved, {}",
        ctx()
    );
    assert!(
        d.reserved_bytes <= d.mapped_bytes,
        "reserved > mapped, {}",
        ctx()
    );
    assert!(
        d.peak_live_bytes >= d.live_bytes,
        "peak live < live, {}",
        ctx()
    );
    assert!(
        d.peak_reserved_bytes >= d.reserved_bytes,
        "peak reserved < reserved, {}",
        ctx()
    );
    assert!(
        (0.0..=1.0).contains(&d.utilization()),
        "utilization {}, {}",
        d.utilization(),
        ctx()
    );
}

fn run(config: MemoryConfig, ops: &[Op]) {
    let mm = MemoryManager::new(config.cleanup(CleanupConfig::manual())).unwrap();
    let mut live = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let before = mm.metrics().devices[0].clone();
        match op {
            Op::Alloc(size) => {
                if let Ok(a) = mm.try_allocate(Layout::from_size_align(*size, 64).unwrap()) {
                    live.push(a);
                }
            }
            Op::Touch(k) if !live.is_empty() => {
                let n = live.len();
                let a = &mut live[k % n];
                for b in a.as_mut_slice().iter_mut().step_by(4096) {
                    *b = 1;
                }
            }
            Op::Free(k) if !live.is_empty() => {
                let n = live.len();
                drop(live.swap_remove(k % n));
            }
            Op::Trim => {
                let r = mm.trim();
                let after = mm.metrics().devices[0].clone();
                // `bytes_released` counts the mapped bytes of chunks given back, and
                // `bytes_purged` the pages of free blocks handed back inside kept chunks.
                assert_eq!(
                    before.mapped_bytes - after.mapped_bytes,
                    r.bytes_released,
                    "trim {r:?}: mapped {} -> {}",
                    before.mapped_bytes,
                    after.mapped_bytes
                );
                assert_eq!(
                    before.reserved_bytes - after.reserved_bytes,
                    r.reserved_released,
                    "trim {r:?}: reserved {} -> {}",
                    before.reserved_bytes,
                    after.reserved_bytes
                );
            }
            Op::Emergency => {
                let r = mm.emergency_cleanup();
                let after = mm.metrics().devices[0].clone();
                let _ = (r, after);
            }
            Op::Decay => {
                let _ = mm.decay_now();
            }
            _ => {}
        }
        check(&mm.metrics().devices[0], &format!("op {i} {op:?}"));
    }
    drop(live);
    let end = mm.metrics();
    check(&end.devices[0], "dropping everything");
    assert_eq!(end.live_bytes(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_default(ops in prop::collection::vec(op(), 1..60)) {
        run(MemoryConfig::default(), &ops);
    }

    #[test]
    fn invariants_hold_every_strategy(
        ops in prop::collection::vec(op(), 1..40),
        which in 0usize..6,
    ) {
        let config = match which {
            0 => MemoryConfig::fast(),
            1 => MemoryConfig::low_footprint(),
            2 => MemoryConfig::default().strategy(PoolStrategy::BuddySystem),
            3 => MemoryConfig::default().strategy(PoolStrategy::BestFit),
            4 => MemoryConfig::default().strategy(PoolStrategy::SlabAllocator),
            _ => MemoryConfig::default().budget(48 << 20),
        };
        run(config, &ops);
    }
}
