//! A dry-run planner, in the spirit of ggml's graph allocator: from a trace (or a recorded
//! step) whose block lifetimes are known in advance, it computes
//!
//! - the peak of live bytes, a lower bound for any allocator;
//! - an arena size found by offline placement (offsets in one arena, see [`plan`]);
//! - what our pool reserves on the same trace ([`replay`]: the trace runs through a real
//!   [`MemoryManager`] on one thread);
//!
//! and recommends a budget ([`plan_budget`]), so that users can size one before running.
//!
//! ```
//! use bitnet_memory::planner;
//! use bitnet_memory::MemoryConfig;
//!
//! let trace = "op,id,size,align,thread,t_ns\n\
//!              a,1,4096,64,0,0\na,2,8192,64,0,1\nf,1,0,0,0,2\na,3,4096,64,0,3\n";
//! let blocks = planner::parse_trace(trace)?;
//! let p = planner::plan_budget(&blocks, MemoryConfig::default())?;
//! assert_eq!(p.peak_live_bytes, 12288);
//! assert_eq!(p.arena_bytes, 12288);          // block 3 reuses block 1's place
//! assert!(p.recommended_budget >= p.pool.peak_reserved_bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod place;
mod trace;

use crate::{MemoryConfig, MemoryError, MemoryManager};
use place::{Fit, OverlapIndex};
use std::alloc::Layout;
use std::collections::HashMap;
pub use trace::{parse_trace, TraceError};

/// One block and its lifetime `[start, end)`: it is live from `start` up to, not including,
/// `end`. A block freed at `t` and another allocated at `t` are never live together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// The caller's name for the block (the trace's id).
    pub id: u64,
    /// Requested size in bytes.
    pub size: usize,
    /// Requested alignment in bytes (a power of two).
    pub align: usize,
    /// Time of the allocation (any unit; a trace uses event positions).
    pub start: u64,
    /// Time of the free; `start` or earlier means the block is never live.
    pub end: u64,
}

impl Interval {
    /// Whether the block is ever live (its lifetime is not empty).
    pub fn lives(&self) -> bool {
        self.start < self.end
    }

    /// Whether two blocks are live at the same time.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The highest sum of the sizes of the blocks live at the same time: no allocator can
/// serve the blocks in less memory.
pub fn peak_live_bytes(blocks: &[Interval]) -> usize {
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * blocks.len());
    for b in blocks.iter().filter(|b| b.lives()) {
        events.push((b.start, 1, b.size));
        events.push((b.end, 0, b.size));
    }
    // Frees (0) sort before allocations (1) at equal times.
    events.sort_unstable();
    let (mut live, mut peak) = (0usize, 0usize);
    for (_, kind, size) in events {
        if kind == 1 {
            live += size;
            peak = peak.max(live);
        } else {
            live -= size;
        }
    }
    peak
}

/// Offsets for every block in one arena, found offline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Offset of each block (indexed like the input), a multiple of its alignment.
    pub offsets: Vec<usize>,
    /// Arena size in bytes: the largest `offset + size` (an arena based at an address
    /// aligned to the largest alignment asked for).
    pub arena_bytes: usize,
    /// The lower bound: [`peak_live_bytes`].
    pub peak_live_bytes: usize,
    /// Which heuristic found the plan.
    pub heuristic: String,
}

impl Plan {
    /// `arena / peak live`: 1.0 is optimal; 1.0 when nothing is live.
    pub fn overhead_ratio(&self) -> f64 {
        if self.peak_live_bytes == 0 {
            1.0
        } else {
            self.arena_bytes as f64 / self.peak_live_bytes as f64
        }
    }

    /// Checks the plan against `blocks`: aligned offsets, and no two blocks live at the
    /// same time share a byte. Returns the first conflict.
    pub fn check(&self, blocks: &[Interval]) -> Result<(), String> {
        if self.offsets.len() != blocks.len() {
            return Err("one offset per block".into());
        }
        let index = OverlapIndex::new(blocks);
        for (i, b) in blocks.iter().enumerate() {
            let o = self.offsets[i];
            if !o.is_multiple_of(b.align) {
                return Err(format!(
                    "block {} at {o} is not aligned to {}",
                    b.id, b.align
                ));
            }
            if b.size > 0 && b.lives() && o + b.size > self.arena_bytes {
                return Err(format!("block {} ends past the arena", b.id));
            }
            let mut clash = None;
            index.overlapping(b.start, b.end, &mut |j| {
                let c = &blocks[j];
                let p = self.offsets[j];
                if j != i && b.size > 0 && c.size > 0 && o < p + c.size && p < o + b.size {
                    clash = Some(c.id);
                }
            });
            if let Some(c) = clash {
                return Err(format!("blocks {} and {c} overlap in time and space", b.id));
            }
        }
        Ok(())
    }
}

/// A named placement: offsets and arena size.
type Heuristic<'a> = (&'static str, Box<dyn Fn() -> (Vec<usize>, usize) + 'a>);

/// Up to this many blocks (of non-zero size and lifetime), [`plan`] finds the optimum by
/// exhaustive search.
pub const EXACT_LIMIT: usize = 8;

/// Places the blocks in one arena and returns the smallest of several greedy plans.
///
/// Finding the smallest arena is NP-hard (dynamic storage allocation). Any plan can be
/// rebuilt by placing its blocks, in the order of their offsets, each at the lowest
/// aligned offset free of the blocks placed before it that are live at the same time:
/// no block ends higher. So the optimum is first fit over *some* order; the planner tries
/// these orders and keeps the best:
///
/// - size decreasing (the "greedy by size" of TensorFlow Lite and of the DNN planning
///   literature), with first fit and with best fit among gaps;
/// - alignment decreasing, then size decreasing, first fit: blocks with large alignments
///   first, where they need no padding;
/// - start time, first fit: optimal when all blocks have one size and alignment (it is
///   then interval-graph colouring, which first fit in start order solves exactly);
/// - ggml's online best fit in time order (`ggml_dyn_tallocr`), so the plan is never
///   worse than what ggml's graph allocator would reserve.
///
/// With at most [`EXACT_LIMIT`] blocks it then searches every order (depth first, with
/// cuts), which by the argument above is exact.
///
/// Guarantees: the plan is valid ([`Plan::check`]); its arena is at least the peak of
/// live bytes (no plan can be smaller) and at most the smallest arena of the five
/// heuristics; with at most [`EXACT_LIMIT`] blocks it is optimal. `tests/planner.rs`
/// checks optimality against two independent exhaustive searches, and the heuristics
/// alone ([`plan_greedy`]) against the optimum: within 2 times it on random traces of up
/// to 7 blocks (the worst seen in 20,000 such traces is 1.5 times, from alignment
/// padding).
pub fn plan(blocks: &[Interval]) -> Plan {
    plan_with(blocks, true)
}

/// [`plan`] without the exhaustive search: the best of the five heuristics only.
pub fn plan_greedy(blocks: &[Interval]) -> Plan {
    plan_with(blocks, false)
}

fn plan_with(blocks: &[Interval], exact: bool) -> Plan {
    let peak = peak_live_bytes(blocks);
    let index = OverlapIndex::new(blocks);
    let life = |b: &Interval| b.end.saturating_sub(b.start);
    let mut by_size: Vec<usize> = (0..blocks.len()).collect();
    by_size.sort_by(|&a, &b| {
        let (x, y) = (&blocks[a], &blocks[b]);
        y.size
            .cmp(&x.size)
            .then(life(y).cmp(&life(x)))
            .then(x.start.cmp(&y.start))
    });
    let mut by_align = by_size.clone();
    by_align.sort_by_key(|&i| std::cmp::Reverse(blocks[i].align));
    let mut by_start: Vec<usize> = (0..blocks.len()).collect();
    by_start.sort_by_key(|&i| (blocks[i].start, std::cmp::Reverse(blocks[i].size)));

    let mut candidates: Vec<Heuristic<'_>> = vec![
        (
            "size-decreasing first fit",
            Box::new(|| place::place_in_order(blocks, &index, &by_size, Fit::First)),
        ),
        (
            "size-decreasing best fit",
            Box::new(|| place::place_in_order(blocks, &index, &by_size, Fit::Best)),
        ),
        (
            "start-order first fit",
            Box::new(|| place::place_in_order(blocks, &index, &by_start, Fit::First)),
        ),
        (
            "online best fit (ggml)",
            Box::new(|| place::online_best_fit(blocks)),
        ),
    ];
    // With one alignment for every block (the usual case) the alignment order is the size
    // order, and its first fit the same plan as the first candidate's: only run it when
    // the orders differ.
    if by_align != by_size {
        candidates.insert(
            2,
            (
                "alignment-then-size-decreasing first fit",
                Box::new(|| place::place_in_order(blocks, &index, &by_align, Fit::First)),
            ),
        );
    }
    let mut best: Option<Plan> = None;
    for (name, run) in candidates {
        let (offsets, arena_bytes) = run();
        if best.as_ref().is_none_or(|b| arena_bytes < b.arena_bytes) {
            best = Some(Plan {
                offsets,
                arena_bytes,
                peak_live_bytes: peak,
                heuristic: name.to_string(),
            });
        }
        if best.as_ref().is_some_and(|b| b.arena_bytes == peak) {
            break; // optimal
        }
    }
    let mut best = best.expect("four or five candidates");
    let movable = blocks.iter().filter(|b| b.size > 0 && b.lives()).count();
    if exact && movable <= EXACT_LIMIT && best.arena_bytes > peak {
        let (offsets, arena) = place::exhaustive(blocks, peak, best.arena_bytes);
        if arena < best.arena_bytes {
            best = Plan {
                offsets,
                arena_bytes: arena,
                peak_live_bytes: peak,
                heuristic: "exhaustive search over first-fit orders".to_string(),
            };
        }
    }
    debug_assert!(best.arena_bytes >= peak, "a plan below the lower bound");
    best
}

/// What our pool did on the trace, replayed on one thread in time order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolReplay {
    /// Peak of requested live bytes, as the pool counted it.
    pub peak_live_bytes: usize,
    /// Peak of bytes reserved from the device.
    pub peak_reserved_bytes: usize,
    /// Bytes still reserved when the trace ends (blocks never freed still live).
    pub final_reserved_bytes: usize,
    /// `peak_reserved / peak_live`.
    pub reserved_over_live: f64,
}

/// Runs `blocks` through a real [`MemoryManager`] made from `config`, on this thread, in
/// time order (frees before allocations at equal times), and reads its peaks.
pub fn replay(blocks: &[Interval], mut config: MemoryConfig) -> Result<PoolReplay, MemoryError> {
    // A dry run is deterministic: no worker decaying, checking pressure or moving the
    // strategy's threshold at times of its own.
    config.cleanup.background = false;
    let mm = MemoryManager::new(config)?;
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * blocks.len());
    for (i, b) in blocks.iter().enumerate().filter(|(_, b)| b.lives()) {
        events.push((b.start, 1, i));
        events.push((b.end, 0, i));
    }
    events.sort_unstable();
    let mut live = HashMap::with_capacity(1024);
    for (_, kind, i) in events {
        if kind == 0 {
            live.remove(&i);
            continue;
        }
        let b = &blocks[i];
        let layout =
            Layout::from_size_align(b.size, b.align).map_err(|_| MemoryError::InvalidLayout {
                size: b.size,
                align: b.align,
                reason: "rejected by Layout",
            })?;
        live.insert(i, mm.try_allocate(layout)?);
    }
    let m = mm.metrics();
    let (peak_live, peak_reserved) = (m.peak_live_bytes(), m.peak_reserved_bytes());
    let final_reserved = m.reserved_bytes();
    drop(live);
    Ok(PoolReplay {
        peak_live_bytes: peak_live,
        peak_reserved_bytes: peak_reserved,
        final_reserved_bytes: final_reserved,
        reserved_over_live: if peak_live == 0 {
            1.0
        } else {
            peak_reserved as f64 / peak_live as f64
        },
    })
}

/// The planner's answer for a trace: the floor, the plan, the pool, a budget.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BudgetPlan {
    /// Blocks in the trace.
    pub blocks: usize,
    /// Peak of live bytes: the lower bound.
    pub peak_live_bytes: usize,
    /// Arena size of the offline plan.
    pub arena_bytes: usize,
    /// The heuristic that found it.
    pub heuristic: String,
    /// The pool on the same trace.
    pub pool: PoolReplay,
    /// A budget for the pool: its peak reserved bytes on the replay, raised by sixteenths
    /// until a replay with this budget set succeeds (`budget_verified`; the budget counts
    /// mapped chunks, which also hold untouched room, so it may need more than the
    /// resident peak).
    pub recommended_budget: usize,
    /// Whether the replay with `recommended_budget` as the budget succeeded.
    pub budget_verified: bool,
}

/// Plans `blocks`, replays them through a pool made from `config`, and recommends a
/// budget: the pool's peak reserved bytes, raised by a sixteenth at a time (up to eight
/// times) until a replay under it succeeds. The recommendation holds for this trace on one
/// thread; threads keep cached blocks of their own, so give a threaded run some headroom.
pub fn plan_budget(blocks: &[Interval], config: MemoryConfig) -> Result<BudgetPlan, MemoryError> {
    let p = plan(blocks);
    let pool = replay(blocks, config.clone())?;
    let mut recommended_budget = pool.peak_reserved_bytes.max(1);
    let mut budget_verified = false;
    for _ in 0..=8 {
        if replay(blocks, config.clone().budget(recommended_budget)).is_ok() {
            budget_verified = true;
            break;
        }
        recommended_budget += recommended_budget.div_ceil(16);
    }
    Ok(BudgetPlan {
        blocks: blocks.len(),
        peak_live_bytes: p.peak_live_bytes,
        arena_bytes: p.arena_bytes,
        heuristic: p.heuristic,
        pool,
        recommended_budget,
        budget_verified,
    })
}

impl std::fmt::Display for BudgetPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::metrics::fmt_bytes as b;
        let r = |x: usize| {
            if self.peak_live_bytes == 0 {
                1.0
            } else {
                x as f64 / self.peak_live_bytes as f64
            }
        };
        write!(
            f,
            "{} blocks: peak live {}; planned arena {} ({:.3}x, {}); pool peak reserved {} \
             ({:.3}x); recommended budget {}{}",
            self.blocks,
            b(self.peak_live_bytes),
            b(self.arena_bytes),
            r(self.arena_bytes),
            self.heuristic,
            b(self.pool.peak_reserved_bytes),
            r(self.pool.peak_reserved_bytes),
            b(self.recommended_budget),
            if self.budget_verified {
                " (verified by replay)"
            } else {
                " (NOT verified: the replay under it failed)"
            }
        )
    }
}
