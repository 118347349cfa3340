//! Times `PoolAlloc` (the `GlobalAlloc` adapter, used as an instance) on a small-mix
//! stream: a window of live blocks of log-uniform sizes 16 B..4 KiB, the oldest freed
//! first, as `bitnet-mem bench`'s small-mix. Prints the median ns per alloc+free pair of
//! 7 runs. With `--hardened`: the adapter in hardened mode. This is the measurement of the
//! adapter's misuse guard (`bitnet-mem bench` times the RAII API, which the guard is not on).
//!
//! `cargo run --release -p bitnet-memory --example pool_alloc_churn [-- --hardened]`

use bitnet_memory::global::PoolAlloc;
use bitnet_memory::MemoryConfig;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::VecDeque;
use std::time::Instant;

const OPS: usize = 4_000_000;
const WINDOW: usize = 1024;

fn hardened() -> MemoryConfig {
    MemoryConfig::default().hardened(true)
}

fn main() {
    let hard = std::env::args().any(|a| a == "--hardened");
    let p = if hard {
        PoolAlloc::with_config(hardened)
    } else {
        PoolAlloc::new()
    };
    // The stream: sizes from a fixed xorshift, log-uniform over 16 B..4 KiB.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let sizes: Vec<usize> = (0..OPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bits = 4.0 + (x % 1000) as f64 / 1000.0 * 8.0;
            2f64.powf(bits) as usize
        })
        .collect();
    let mut runs = Vec::new();
    for _ in 0..7 {
        let mut live: VecDeque<(*mut u8, Layout)> = VecDeque::with_capacity(WINDOW + 1);
        let t = Instant::now();
        for &s in &sizes {
            let l = Layout::from_size_align(s, 8).unwrap();
            // SAFETY: a non-zero layout; the block is freed below with the same layout.
            let q = unsafe { p.alloc(l) };
            assert!(!q.is_null());
            // SAFETY: the block has at least one byte.
            unsafe { q.write(1) };
            live.push_back((q, l));
            if live.len() > WINDOW {
                let (q, l) = live.pop_front().unwrap();
                // SAFETY: allocated above by `p` with `l`, freed once.
                unsafe { p.dealloc(q, l) };
            }
        }
        for (q, l) in live.drain(..) {
            // SAFETY: as above.
            unsafe { p.dealloc(q, l) };
        }
        runs.push(t.elapsed().as_nanos() as f64 / OPS as f64);
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "PoolAlloc small-mix{}: {:.1} ns per alloc+free pair (median of 7; min {:.1}, max {:.1})",
        if hard { " hardened" } else { "" },
        runs[3],
        runs[0],
        runs[6]
    );
}
