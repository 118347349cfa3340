//! Churn: tensor sets reallocated at growing, then shrinking sizes, with long-lived
//! tensors between them.

use super::{log_uniform, Stream, StreamBuilder};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Smallest request of the churn workload: 64 KiB.
pub const CHURN_MIN: usize = 64 << 10;
/// Largest request of the churn workload: 64 MiB.
pub const CHURN_MAX: usize = 64 << 20;

/// `x` bytes jittered by up to ±10%, rounded up to 256 B, within `CHURN_MIN..=CHURN_MAX`.
fn churn_size(rng: &mut SmallRng, x: f64) -> usize {
    let s = (x * rng.gen_range(0.9..1.1)) as usize;
    s.next_multiple_of(256).clamp(CHURN_MIN, CHURN_MAX)
}

/// Sets of tensors reallocated at growing, then shrinking sizes, `cycles` times: the
/// pattern behind the fragmentation reports of caching tensor allocators (a KV cache or a
/// batch that grows with the sequence length, then a shorter sequence).
///
/// Each cycle draws a set of 2..=4 tensors, each a fixed share (1/2..1) of the cycle's
/// size, a start size (64..512 KiB), a top size (24..64 MiB), a growth factor and a
/// different shrink factor (1.25..1.6 each). Grow phase: step by step the size is
/// multiplied by the growth factor up to the top, and at each step every tensor of the
/// set is reallocated at its new size: the new block and a workspace (1/8..1/4 of it) are
/// allocated, then the old block and the workspace freed, so a new block never takes its
/// old block's place. Shrink phase: the same, down to the start size by the shrink
/// factor, so that sizes do not repeat the grow phase's. At the end of the cycle the set
/// is freed. Sizes are jittered by ±10% and rounded up to 256 B, within 64 KiB..64 MiB.
///
/// Interleaved: at each step, with probability 1/3, a long-lived tensor (64 KiB..1 MiB)
/// is allocated between two reallocations of the set; it lives 8..64 steps (across
/// phases and cycles), at most 6 at once. These sit between the churning blocks and keep
/// the holes the churn leaves from coalescing. Everything is freed at the end.
pub fn churn(seed: u64, cycles: u32) -> Stream {
    const A: usize = 64;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut b = StreamBuilder::new();
    // Long-lived tensors: (slot, step after which it is freed).
    let mut long: Vec<(u32, u64)> = Vec::new();
    let mut step = 0u64;
    for _ in 0..cycles {
        let n = rng.gen_range(2..=4usize);
        let shares: Vec<f64> = (0..n).map(|_| rng.gen_range(0.5..=1.0)).collect();
        let lo = log_uniform(&mut rng, 64 << 10, 512 << 10) as f64;
        let hi = log_uniform(&mut rng, 24 << 20, CHURN_MAX) as f64;
        let grow = rng.gen_range(1.25..1.6);
        let shrink = rng.gen_range(1.25..1.6);
        let mut schedule = Vec::new();
        let mut x = lo;
        while x < hi {
            schedule.push(x);
            x *= grow;
        }
        let mut x = hi;
        while x > lo {
            schedule.push(x);
            x /= shrink;
        }
        schedule.push(lo);
        let mut set: Vec<Option<u32>> = vec![None; n];
        for &x in &schedule {
            step += 1;
            long.retain(|&(slot, end)| {
                let keep = end > step;
                if !keep {
                    b.free(slot);
                }
                keep
            });
            let long_at = (long.len() < 6 && rng.gen_range(0..3) == 0).then(|| rng.gen_range(0..n));
            for (i, t) in set.iter_mut().enumerate() {
                let size = churn_size(&mut rng, x * shares[i]);
                let new = b.alloc(size, A);
                let ws = size as f64 * rng.gen_range(0.125..0.25);
                let ws = b.alloc(churn_size(&mut rng, ws), A);
                if let Some(old) = t.replace(new) {
                    b.free(old);
                }
                b.free(ws);
                if long_at == Some(i) {
                    let size = log_uniform(&mut rng, CHURN_MIN, 1 << 20);
                    let life = rng.gen_range(8..=64);
                    long.push((b.alloc(size, A), step + life));
                }
            }
        }
        for t in set.into_iter().flatten() {
            b.free(t);
        }
    }
    for (slot, _) in long {
        b.free(slot);
    }
    b.finish()
}
