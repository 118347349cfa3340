//! Measures what `RecordingAlloc` costs: the same allocation-heavy loop with the recorder
//! installed as the global allocator, first not recording, then recording to a file.
//!
//! `cargo run --release -p bitnet-mem --example record_overhead`

use bitnet_memory::global::RecordingAlloc;
use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: RecordingAlloc<System> = RecordingAlloc::new(System);

/// `pairs` allocations of 16..4096 bytes, 64 live, oldest freed first, on each of
/// `threads` threads; wall time.
fn work(pairs: usize, threads: usize) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut window: std::collections::VecDeque<Box<[u8]>> =
                    std::collections::VecDeque::with_capacity(64);
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                for _ in 0..pairs {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if window.len() == 64 {
                        drop(window.pop_front());
                    }
                    window.push_back(vec![1u8; 16 + (x % 4080) as usize].into_boxed_slice());
                }
                black_box(&window);
            });
        }
    });
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    bitnet_memory::stats::lower_median(&mut v).expect("five runs")
}

fn main() -> std::io::Result<()> {
    const PAIRS: usize = 1_000_000;
    let path = std::env::temp_dir().join(format!("record-overhead-{}.csv", std::process::id()));
    for threads in [1, 2] {
        work(PAIRS / 10, threads);
        let off = median((0..5).map(|_| work(PAIRS, threads)).collect());
        GLOBAL.start(&path)?;
        let on = median((0..5).map(|_| work(PAIRS, threads)).collect());
        let summary = GLOBAL.finish()?;
        let size = std::fs::metadata(&path)?.len();
        let total = (PAIRS * threads) as f64;
        let (off_ns, on_ns) = (off.as_nanos() as f64 / total, on.as_nanos() as f64 / total);
        println!(
            "{threads} thread(s): {off_ns:.1} ns per alloc+free pair not recording, {on_ns:.1} ns \
             recording: +{:.1} ns per event ({:.1}x); {} events, {:.1} MiB of trace",
            (on_ns - off_ns) / 2.0,
            on_ns / off_ns,
            summary.events,
            size as f64 / (1 << 20) as f64
        );
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
