//! The proptest twin of the cargo-fuzz target (`fuzz/`): random operation sequences
//! across two threads, sizes, alignments, budgets, trims, compactions, scopes and raw
//! handles against a shadow model, the pool's invariant scan after every operation (see
//! `ops_model/interp.rs`). `PROPTEST_CASES` sets the number of cases (default 24).

mod interp;

use interp::{run, Op, Setup};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let small = 0u8..=20;
    prop_oneof![
        8 => (0u8..=23, any::<u16>(), 0u8..=16)
            .prop_map(|(size_log, frac, align_log)| Op::Alloc { size_log, frac, align_log }),
        6 => any::<u16>().prop_map(|idx| Op::Free { idx }),
        2 => (any::<u16>(), any::<u8>()).prop_map(|(idx, byte)| Op::Write { idx, byte }),
        2 => any::<u16>().prop_map(|idx| Op::FreeRemote { idx }),
        2 => (small.clone(), any::<u16>()).prop_map(|(size_log, frac)| Op::AllocRemote { size_log, frac }),
        2 => (small.clone(), any::<u16>()).prop_map(|(size_log, frac)| Op::AllocMovable { size_log, frac }),
        1 => any::<u16>().prop_map(|idx| Op::FreeMovable { idx }),
        1 => Just(Op::Compact),
        1 => Just(Op::Trim),
        1 => Just(Op::ScopeOpen),
        1 => Just(Op::ScopeClose),
        1 => small.prop_map(|size_log| Op::AllocRaw { size_log }),
        1 => any::<u16>().prop_map(|idx| Op::FreeRaw { idx }),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        0u8..4,
        prop_oneof![2 => Just(0u8), 1 => 1u8..=64],
        any::<bool>(),
    )
        .prop_map(|(strategy, budget_mib, thread_cache)| Setup {
            strategy,
            budget_mib,
            thread_cache,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_across_threads_match_the_shadow_model(
        s in setup(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(s, &ops);
    }
}
