//! Sections of `bitnet-mem bench` beside `results`: the cost of tracking (`tracking`) and
//! of cleanup (`cleanup`), each measured on our pool in one run.

use crate::bench::contenders::Pool;
use crate::bench::run::{run_stream, Stop};
use crate::bench::workload::{self, Stream};
use bitnet_memory::stats::median;
use bitnet_memory::{CleanupConfig, MemoryConfig, MemoryManager, TrackingConfig};
use serde::Serialize;
use std::alloc::Layout;
use std::time::Instant;

/// One row of the `tracking` section.
#[derive(Debug, Clone, Serialize)]
pub struct TrackingRow {
    /// Workload name.
    pub workload: &'static str,
    /// `off`, `default` (10% sampling) or `full` (100%).
    pub mode: &'static str,
    /// Median wall time per alloc+free pair.
    pub median_ns_per_pair: f64,
    /// Fastest repeat.
    pub min_ns_per_pair: f64,
    /// This mode's median over `off`'s.
    pub ratio_to_off: f64,
}

/// The same workloads with tracking off, default and full, repeats alternating between
/// the three managers (A B C A B C ...).
pub fn tracking(quick: bool, seed: u64, repeats: usize) -> Result<Vec<TrackingRow>, Stop> {
    let streams: [(&'static str, Stream); 2] = [
        (
            "small-mix",
            workload::window(
                seed,
                if quick { 20_000 } else { 500_000 },
                64,
                64,
                64 << 10,
                16,
            ),
        ),
        (
            "tensor-mix",
            workload::window(seed, if quick { 60 } else { 1_000 }, 16, 256, 64 << 20, 64),
        ),
    ];
    let modes: [(&'static str, TrackingConfig); 3] = [
        ("off", TrackingConfig::off()),
        ("default", TrackingConfig::default()),
        ("full", TrackingConfig::full()),
    ];
    let mut rows = Vec::new();
    for (name, stream) in &streams {
        let managers: Vec<MemoryManager> = modes
            .iter()
            .map(|(_, t)| {
                MemoryManager::new(
                    MemoryConfig::default()
                        .tracking(t.clone())
                        .cleanup(CleanupConfig::manual()),
                )
                .expect("default config")
            })
            .collect();
        let pairs = stream.allocs as f64;
        let mut times = vec![Vec::new(); modes.len()];
        for r in 0..repeats + 1 {
            for (i, mm) in managers.iter().enumerate() {
                let mut c = Pool(mm);
                let t = run_stream(&mut c, stream)?;
                if r > 0 {
                    times[i].push((t.end - t.start).as_nanos() as f64 / pairs);
                }
            }
        }
        let off = median(&mut times[0].clone()).unwrap_or(0.0);
        for (i, (mode, _)) in modes.iter().enumerate() {
            let m = median(&mut times[i]).unwrap_or(0.0);
            rows.push(TrackingRow {
                workload: name,
                mode,
                median_ns_per_pair: m,
                min_ns_per_pair: times[i][0],
                ratio_to_off: m / off,
            });
        }
    }
    Ok(rows)
}

/// The `cleanup` section: medians of a trim of 10,000 cached blocks and of an emergency
/// cleanup of a 1 GiB cache (in `--quick`, 64 MiB).
#[derive(Debug, Clone, Serialize)]
pub struct CleanupSection {
    /// Median time to trim 10,000 cached small blocks, in ns.
    pub trim_10k_blocks_ns: u64,
    /// Median time of an emergency cleanup of the cache, in ns.
    pub emergency_1gib_ns: u64,
    /// Bytes the emergency cleanup handed back (the cache's size).
    pub emergency_bytes: u64,
}

/// Measures the cleanup section.
pub fn cleanup(quick: bool, repeats: usize) -> CleanupSection {
    let mm = MemoryManager::new(MemoryConfig::default().cleanup(CleanupConfig::manual()))
        .expect("default config");
    let mut trims = Vec::new();
    for _ in 0..repeats.max(1) {
        // 10,000 blocks of mixed small classes, all freed into caches and central lists.
        let blocks: Vec<_> = (0..10_000)
            .map(|i| mm.allocate(Layout::from_size_align(32 + (i * 37) % 2000, 16).unwrap()))
            .collect();
        drop(blocks);
        let t = Instant::now();
        mm.trim();
        trims.push(t.elapsed().as_nanos() as f64);
    }
    let total: usize = if quick { 64 << 20 } else { 1 << 30 };
    let mut emergencies = Vec::new();
    let mut bytes = 0;
    for _ in 0..repeats.max(1) {
        // A cache of `total` bytes: blocks written (resident), then freed.
        let blocks: Vec<_> = (0..total / (8 << 20))
            .map(|_| {
                let mut a = mm.allocate(Layout::from_size_align(8 << 20, 64).unwrap());
                a.as_mut_slice()
                    .iter_mut()
                    .step_by(4096)
                    .for_each(|b| *b = 1);
                a
            })
            .collect();
        drop(blocks);
        let t = Instant::now();
        let r = mm.emergency_cleanup();
        emergencies.push(t.elapsed().as_nanos() as f64);
        bytes = r.bytes_released as u64;
    }
    CleanupSection {
        trim_10k_blocks_ns: median(&mut trims).unwrap_or(0.0) as u64,
        emergency_1gib_ns: median(&mut emergencies).unwrap_or(0.0) as u64,
        emergency_bytes: bytes,
    }
}

/// The sections as text.
pub fn print(tracking: &[TrackingRow], cleanup: &CleanupSection) -> String {
    let mut s = String::from("\ntracking cost (our pool, 1 thread; ratio = mode / off):\n");
    let mut t = crate::bench::report::grid(&["workload", "mode", "ns/pair", "ratio"], 2);
    for r in tracking {
        t.add_row([
            r.workload.to_string(),
            r.mode.to_string(),
            format!("{:.1}", r.median_ns_per_pair),
            format!("x{:.3}", r.ratio_to_off),
        ]);
    }
    s += &crate::bench::report::render(&t);
    s += &format!(
        "cleanup: trim of 10,000 cached blocks {:.3} ms; emergency cleanup of {} MiB cache {:.3} ms\n",
        cleanup.trim_10k_blocks_ns as f64 / 1e6,
        cleanup.emergency_bytes >> 20,
        cleanup.emergency_1gib_ns as f64 / 1e6
    );
    s
}
