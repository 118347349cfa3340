//! The dry-run planner: trace parsing, the lower bound, plans against an exhaustive
//! optimum on small traces, and the replay through a real pool.
#![deny(unsafe_code)]

use bitnet_memory::planner::{self, Interval};
use bitnet_memory::MemoryConfig;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// The factor the heuristics alone promise against the optimum on small traces (see
/// `planner::plan`).
const GREEDY_FACTOR: f64 = 2.0;

fn iv(id: u64, size: usize, align: usize, start: u64, end: u64) -> Interval {
    Interval {
        id,
        size,
        align,
        start,
        end,
    }
}

// ---- an independent model -------------------------------------------------------------

/// Our own check that offsets are a valid placement, quadratic and obvious.
fn valid(blocks: &[Interval], offsets: &[usize], arena: usize) -> Result<(), String> {
    for (i, a) in blocks.iter().enumerate() {
        if !offsets[i].is_multiple_of(a.align) {
            return Err(format!("block {i} misaligned"));
        }
        if a.size > 0 && a.start < a.end && offsets[i] + a.size > arena {
            return Err(format!("block {i} past the arena"));
        }
        for (j, b) in blocks.iter().enumerate().skip(i + 1) {
            let time = a.start < b.end && b.start < a.end;
            let space = offsets[i] < offsets[j] + b.size && offsets[j] < offsets[i] + a.size;
            if time && space && a.size > 0 && b.size > 0 {
                return Err(format!("blocks {i} and {j} collide"));
            }
        }
    }
    Ok(())
}

/// Peak live bytes by brute force over every time point.
fn peak_by_time(blocks: &[Interval]) -> usize {
    let times: Vec<u64> = blocks.iter().map(|b| b.start).collect();
    times
        .iter()
        .map(|&t| {
            blocks
                .iter()
                .filter(|b| b.start <= t && t < b.end)
                .map(|b| b.size)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// First fit in `order`: each block at the lowest aligned offset clear of the blocks
/// placed before it that are live with it. Returns the arena.
fn first_fit(blocks: &[Interval], order: &[usize]) -> usize {
    let mut placed: Vec<(usize, usize)> = Vec::new(); // (block, offset)
    let mut arena = 0;
    for &i in order {
        let b = &blocks[i];
        let mut at = 0usize;
        loop {
            at = at.next_multiple_of(b.align);
            let clash = placed
                .iter()
                .filter(|&&(j, o)| {
                    let c = &blocks[j];
                    b.overlaps(c) && at < o + c.size && o < at + b.size
                })
                .map(|&(j, o)| o + blocks[j].size)
                .max();
            match clash {
                Some(end) => at = end,
                None => break,
            }
        }
        placed.push((i, at));
        arena = arena.max(at + b.size);
    }
    arena
}

/// The optimum: the smallest first fit over every order (every plan is first fit over
/// the order of its offsets, with no block higher; see `planner::plan`).
fn optimum_by_orders(blocks: &[Interval]) -> usize {
    fn permute(k: usize, order: &mut Vec<usize>, blocks: &[Interval], best: &mut usize) {
        if k == order.len() {
            *best = (*best).min(first_fit(blocks, order));
            return;
        }
        for i in k..order.len() {
            order.swap(k, i);
            permute(k + 1, order, blocks, best);
            order.swap(k, i);
        }
    }
    let mut best = usize::MAX;
    permute(0, &mut (0..blocks.len()).collect(), blocks, &mut best);
    if blocks.is_empty() {
        0
    } else {
        best
    }
}

/// The optimum by trying every offset on a 16 B grid for every block (tiny inputs only).
fn optimum_by_grid(blocks: &[Interval]) -> usize {
    fn go(i: usize, blocks: &[Interval], off: &mut Vec<usize>, arena: usize, best: &mut usize) {
        if arena >= *best {
            return;
        }
        if i == blocks.len() {
            *best = arena;
            return;
        }
        let b = &blocks[i];
        let mut at = 0;
        while at + b.size < *best {
            let clear = (0..i).all(|j| {
                let c = &blocks[j];
                !b.overlaps(c) || at >= off[j] + c.size || off[j] >= at + b.size
            });
            if clear {
                off.push(at);
                go(i + 1, blocks, off, arena.max(at + b.size), best);
                off.pop();
            }
            at += b.align;
        }
    }
    let upper: usize = blocks.iter().map(|b| b.size + b.align).sum();
    let mut best = upper + 1;
    go(0, blocks, &mut Vec::new(), 0, &mut best);
    best
}

fn small_trace(max: usize) -> impl Strategy<Value = Vec<Interval>> {
    prop::collection::vec((1usize..=8, 0u32..3, 0u64..10, 1u64..6), 1..=max).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (units, align_log, start, len))| {
                iv(i as u64, 16 * units, 16 << align_log, start, start + len)
            })
            .collect()
    })
}

// ---- the planner against the model ---------------------------------------------------

#[test]
fn the_two_exhaustive_optima_agree_on_tiny_traces() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..150 {
        let blocks = small_trace(4).new_tree(&mut runner).unwrap().current();
        assert_eq!(
            optimum_by_orders(&blocks),
            optimum_by_grid(&blocks),
            "{blocks:?}"
        );
    }
}

#[test]
fn a_hand_made_case_reaches_the_lower_bound() {
    // Three blocks live in turn beside a 64 B block that outlives them: they can share
    // one place, so the arena is the peak (64 + 48 B).
    let blocks = [
        iv(0, 64, 16, 0, 10),
        iv(1, 32, 16, 0, 4),
        iv(2, 48, 16, 4, 8),
        iv(3, 32, 16, 8, 10),
    ];
    let p = planner::plan(&blocks);
    assert_eq!(p.peak_live_bytes, 112);
    assert_eq!(p.arena_bytes, 112);
    assert_eq!(optimum_by_orders(&blocks), 112);
    valid(&blocks, &p.offsets, p.arena_bytes).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plans_are_valid_above_the_bound_and_near_the_optimum(blocks in small_trace(7)) {
        let p = planner::plan(&blocks);
        prop_assert_eq!(p.peak_live_bytes, peak_by_time(&blocks));
        valid(&blocks, &p.offsets, p.arena_bytes).map_err(TestCaseError::fail)?;
        prop_assert!(p.check(&blocks).is_ok());
        let opt = optimum_by_orders(&blocks);
        prop_assert!(opt >= p.peak_live_bytes);
        prop_assert!(blocks.len() <= planner::EXACT_LIMIT);
        prop_assert_eq!(p.arena_bytes, opt, "not optimal ({})", p.heuristic);
        let g = planner::plan_greedy(&blocks);
        valid(&blocks, &g.offsets, g.arena_bytes).map_err(TestCaseError::fail)?;
        prop_assert!(g.arena_bytes >= opt);
        prop_assert!(
            g.arena_bytes as f64 <= GREEDY_FACTOR * opt as f64,
            "{} vs optimum {} ({})", g.arena_bytes, opt, g.heuristic
        );
    }

    #[test]
    fn one_size_is_always_optimal(
        spans in prop::collection::vec((0u64..40, 1u64..15), 1..60),
        size in 1usize..64,
    ) {
        let size = size * 16;
        let blocks: Vec<_> = spans
            .iter()
            .enumerate()
            .map(|(i, &(s, l))| iv(i as u64, size, 16, s, s + l))
            .collect();
        let p = planner::plan(&blocks);
        prop_assert_eq!(p.arena_bytes, p.peak_live_bytes);
        valid(&blocks, &p.offsets, p.arena_bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn bigger_traces_give_valid_plans(
        spec in prop::collection::vec((1usize..5000, 0u32..7, 0u64..300, 1u64..80), 1..300)
    ) {
        let blocks: Vec<_> = spec
            .iter()
            .enumerate()
            .map(|(i, &(size, al, s, l))| iv(i as u64, size, 1 << al, s, s + l))
            .collect();
        let p = planner::plan(&blocks);
        valid(&blocks, &p.offsets, p.arena_bytes).map_err(TestCaseError::fail)?;
        prop_assert_eq!(p.peak_live_bytes, peak_by_time(&blocks));
        prop_assert!(p.arena_bytes >= p.peak_live_bytes);
    }
}

#[test]
fn the_check_finds_collisions() {
    let blocks = [iv(1, 64, 16, 0, 2), iv(2, 64, 16, 1, 3)];
    let mut p = planner::plan(&blocks);
    assert!(p.check(&blocks).is_ok());
    p.offsets = vec![0, 32];
    assert!(p.check(&blocks).unwrap_err().contains("overlap"));
    p.offsets = vec![0, 72];
    assert!(p.check(&blocks).unwrap_err().contains("aligned"));
}

// ---- traces ---------------------------------------------------------------------------

#[test]
fn parses_traces_into_intervals() {
    let t = "op,id,size,align,thread,t_ns\n\
             a,7,100,16,0,5\r\n\
             a,8,4096,64,1,9\n\
             \n\
             f,7,0,0,0,12\n\
             a,7,10,8,2,20\n";
    let b = planner::parse_trace(t).unwrap();
    assert_eq!(
        b,
        [
            iv(7, 100, 16, 0, 2),
            iv(8, 4096, 64, 1, 4),
            iv(7, 10, 8, 3, 4)
        ]
    );
    assert_eq!(planner::peak_live_bytes(&b), 4196);
}

#[test]
fn bad_lines_are_refused_with_their_number() {
    for (text, line, what) in [
        ("a,1,16,16,0,0\nb,2,16,16,0,1\n", 2, "unknown op"),
        ("a,1,16,16,0,0\na,1,16,16,0,1\n", 2, "while live"),
        ("op,id,size,align,thread,t_ns\nf,3,0,0,0,0\n", 2, "not live"),
        ("a,1,16,24,0,0\n", 1, "power of two"),
        ("a,1,sixteen,16,0,0\n", 1, "`size`"),
        ("a,1,16,16,0\n", 1, "missing field `t_ns`"),
        ("a,1,16,16,0,0,9\n", 1, "more than 6"),
        (
            "a,1,16,16,0,0\n\nop,id,size,align,thread,t_ns\n",
            3,
            "header",
        ),
    ] {
        let e = planner::parse_trace(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(what), "{text:?}: {e}");
        assert!(e.to_string().starts_with(&format!("trace line {line}:")));
    }
}

#[test]
fn the_pool_replay_counts_the_same_peak_and_its_budget_holds() {
    // Large and small blocks, alternating growth and shrinking, some never freed.
    let mut text = String::from("op,id,size,align,thread,t_ns\n");
    let mut id = 0;
    let mut live = Vec::new();
    for step in 0..60u64 {
        for k in 0..4 {
            id += 1;
            let size = [300, 70_000, 1_500_000, 5_000][k] * (1 + (step as usize * 7 + k) % 5);
            text += &format!("a,{id},{size},64,0,{step}\n");
            live.push(id);
        }
        while live.len() > 9 {
            let victim = live.remove((step as usize * 3) % live.len());
            text += &format!("f,{victim},0,0,0,{step}\n");
        }
    }
    let blocks = planner::parse_trace(&text).unwrap();
    let bp = planner::plan_budget(&blocks, MemoryConfig::default()).unwrap();
    assert_eq!(bp.pool.peak_live_bytes, planner::peak_live_bytes(&blocks));
    assert_eq!(bp.peak_live_bytes, bp.pool.peak_live_bytes);
    assert!(bp.arena_bytes >= bp.peak_live_bytes);
    assert!(bp.pool.peak_reserved_bytes >= bp.pool.peak_live_bytes);
    assert!(bp.budget_verified, "{bp}");
    assert!(bp.recommended_budget >= bp.pool.peak_reserved_bytes);
    assert!(
        bp.recommended_budget <= bp.pool.peak_reserved_bytes * 2,
        "{bp}"
    );
    // A budget well under the peak of live bytes cannot hold.
    let tight = MemoryConfig::default().budget(bp.peak_live_bytes / 2);
    assert!(planner::replay(&blocks, tight).is_err());
}

/// The figures of `docs/planner.md`. Run with
/// `cargo test --release -p bitnet-memory --test planner -- --ignored --nocapture`.
#[test]
#[ignore = "reads ../shared/traces/numpy-serving.csv; run in release for the docs' figures"]
fn numpy_serving_figures() {
    let path = std::env::var("BITNET_TRACE").unwrap_or_else(|_| {
        format!(
            "{}/../../../shared/traces/numpy-serving.csv",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let blocks = planner::parse_trace(&text).unwrap();
    let t = std::time::Instant::now();
    let p = planner::plan(&blocks);
    let plan_time = t.elapsed();
    p.check(&blocks).unwrap();
    let t = std::time::Instant::now();
    let bp = planner::plan_budget(&blocks, MemoryConfig::default()).unwrap();
    println!("{bp}");
    println!(
        "plan {:.2?} ({}), plan + 2 replays {:.2?}",
        plan_time,
        p.heuristic,
        t.elapsed()
    );
    println!("{}", serde_json::to_string_pretty(&bp).unwrap());
    assert_eq!(bp.pool.peak_live_bytes, bp.peak_live_bytes);
    assert!(bp.budget_verified);
}
