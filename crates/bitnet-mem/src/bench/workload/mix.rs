//! Log-uniform size mixes: a window of live blocks, oldest freed first (small-mix,
//! tensor-mix, large), and the sizes a cross-thread producer hands its consumer.

use super::{Stream, StreamBuilder};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;

/// A size drawn log-uniformly from `lo..=hi`.
pub fn log_uniform(rng: &mut SmallRng, lo: usize, hi: usize) -> usize {
    let (a, b) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
    (rng.gen_range(a..b).exp() as usize).clamp(lo, hi)
}

/// `pairs` allocations of log-uniform sizes in `lo..=hi`, keeping `window` blocks live and
/// freeing the oldest before each new allocation once the window is full; the window is
/// freed at the end.
pub fn window(seed: u64, pairs: u64, window: usize, lo: usize, hi: usize, align: usize) -> Stream {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut b = StreamBuilder::new();
    let mut q = VecDeque::with_capacity(window);
    for _ in 0..pairs {
        if q.len() == window {
            b.free(q.pop_front().expect("full window"));
        }
        q.push_back(b.alloc(log_uniform(&mut rng, lo, hi), align));
    }
    for s in q {
        b.free(s);
    }
    b.finish()
}

/// Sizes for the cross-thread workload: `pairs` log-uniform sizes in 64 B..64 KiB.
pub fn cross_sizes(seed: u64, pairs: u64) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..pairs)
        .map(|_| log_uniform(&mut rng, 64, 64 << 10))
        .collect()
}
