//! The benchmark method: one workload, every allocator, warm-up then repeats alternating
//! allocators (A B C D A B C D ...), and the resident-memory figure of each allocator from a
//! fresh child process.

use crate::bench::contenders::{
    Glibc, Kind, Limit, Pool, ViaGlobalAlloc, JEMALLOC, MIMALLOC, POOL_ALLOC_DEFAULT,
    POOL_ALLOC_FAST, POOL_ALLOC_HARDENED, POOL_ALLOC_LOW,
};
use crate::bench::progress::Progress;
use crate::bench::report::Row;
use crate::bench::resident::{lower_median, measure_in_child, Resident};
use crate::bench::run::{run_cross, run_stream, run_streams, Stop};
use crate::bench::workload::{self, Stream, WorkloadName};
use bitnet_memory::{MemoryConfig, MemoryManager};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Everything that decides a workload's operation streams; a child process given the same
/// spec builds the same streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The workload.
    pub workload: WorkloadName,
    /// Threads, each with its own stream (cross-thread: producer/consumer pairs).
    pub threads: usize,
    /// Seed of the first thread's stream (thread `i` uses `seed + i`).
    pub seed: u64,
    /// Divisor of the BitNet model widths.
    pub scale: usize,
    /// Short streams for a smoke run.
    pub quick: bool,
    /// Trace file of the `replay` workload.
    pub trace: Option<PathBuf>,
    /// Configuration of bitnet-memory's manager.
    #[serde(default)]
    pub preset: Preset,
}

/// Which `MemoryConfig` bitnet-memory runs with (`--config`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// `MemoryConfig::default()`: resident within 8% of the live peak.
    #[default]
    Default,
    /// `MemoryConfig::fast()`: speed over footprint (50%, bigger thread caches).
    Fast,
    /// `MemoryConfig::low_footprint()`: 5%, small caches and chunks.
    LowFootprint,
    /// `MemoryConfig::default().hardened(true)`: canaries, poison on free, checked frees.
    Hardened,
}

impl Preset {
    /// The configuration.
    pub fn config(self) -> MemoryConfig {
        match self {
            Preset::Default => MemoryConfig::default(),
            Preset::Fast => MemoryConfig::fast(),
            Preset::LowFootprint => MemoryConfig::low_footprint(),
            Preset::Hardened => MemoryConfig::default().hardened(true),
        }
    }

    /// Our pool through `PoolAlloc` with this configuration (one static per preset).
    pub fn pool_alloc(self) -> &'static bitnet_memory::global::PoolAlloc {
        match self {
            Preset::Default => &POOL_ALLOC_DEFAULT,
            Preset::Fast => &POOL_ALLOC_FAST,
            Preset::LowFootprint => &POOL_ALLOC_LOW,
            Preset::Hardened => &POOL_ALLOC_HARDENED,
        }
    }

    /// The preset whose configuration `config` is, if one is.
    pub fn of(config: &MemoryConfig) -> Option<Preset> {
        [
            Preset::Default,
            Preset::Fast,
            Preset::LowFootprint,
            Preset::Hardened,
        ]
        .into_iter()
        .find(|p| &p.config() == config)
    }
}

/// The operations of a spec, ready to run.
pub enum Work {
    /// One stream per thread.
    Streams(Vec<Stream>),
    /// Producer/consumer pairs, each with its list of sizes.
    Cross {
        /// Sizes per pair.
        sizes: Vec<Vec<usize>>,
        /// Alignment of every block.
        align: usize,
    },
}

impl Work {
    /// Builds the streams of `spec`.
    pub fn build(spec: &Spec) -> Result<Self, String> {
        let q = spec.quick;
        let seeds = (0..spec.threads as u64).map(|i| spec.seed.wrapping_add(i));
        let each = |f: &dyn Fn(u64) -> Stream| Work::Streams(seeds.clone().map(f).collect());
        Ok(match spec.workload {
            WorkloadName::SmallMix => {
                let pairs = if q { 20_000 } else { 500_000 };
                each(&|s| workload::window(s, pairs, 64, 64, 64 << 10, 16))
            }
            WorkloadName::TensorMix => {
                let pairs = if q { 60 } else { 1_000 };
                each(&|s| workload::window(s, pairs, 16, 256, 64 << 20, 64))
            }
            WorkloadName::Large => {
                let pairs = if q { 12 } else { 128 };
                each(&|s| workload::window(s, pairs, 8, 1 << 20, 64 << 20, 64))
            }
            WorkloadName::CrossThread => {
                let pairs = if q { 20_000 } else { 500_000 };
                Work::Cross {
                    sizes: seeds.map(|s| workload::cross_sizes(s, pairs)).collect(),
                    align: 16,
                }
            }
            WorkloadName::BitnetInference => {
                let tokens = if q { 12 } else { 256 };
                let model = workload::inference_model(spec.scale);
                each(&|s| workload::bitnet_inference(s, &model, tokens))
            }
            WorkloadName::Churn => {
                let cycles = if q { 1 } else { 8 };
                each(&|s| workload::churn(s, cycles))
            }
            WorkloadName::Replay => {
                let path = spec
                    .trace
                    .as_ref()
                    .ok_or("the replay workload needs a trace file (--trace FILE)")?;
                let trace = workload::load_trace(path)?;
                let s = workload::from_trace(&trace);
                Work::Streams(vec![s; spec.threads])
            }
        })
    }

    /// Allocations of all threads together.
    pub fn pairs(&self) -> u64 {
        match self {
            Work::Streams(s) => s.iter().map(|s| s.allocs).sum(),
            Work::Cross { sizes, .. } => sizes.iter().map(|s| s.len() as u64).sum(),
        }
    }

    /// Timed operations (allocations and frees) of all threads together.
    pub fn events(&self) -> u64 {
        match self {
            Work::Streams(s) => s.iter().map(|s| s.ops.len() as u64).sum(),
            Work::Cross { sizes, .. } => 2 * sizes.iter().map(|s| s.len() as u64).sum::<u64>(),
        }
    }

    /// Peak live bytes known from the streams (the sum of each thread's peak); `None` for
    /// cross-thread, where it is measured during the run.
    pub fn planned_peak_live(&self) -> Option<u64> {
        match self {
            Work::Streams(s) => Some(s.iter().map(|s| s.peak_live).sum()),
            Work::Cross { .. } => None,
        }
    }

    /// Whether the `limit` row can run: one thread, sizes known in advance.
    pub fn limit_applies(&self) -> bool {
        matches!(self, Work::Streams(s) if s.len() == 1)
    }
}

/// One run of one allocator.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Wall time of the timed part.
    pub wall: Duration,
    /// Peak live bytes measured by the run (cross-thread only).
    pub peak_live: Option<u64>,
    /// Page faults the timed part took, all threads (`None`: not counted; cross-thread
    /// runs are not).
    pub faults: Option<u64>,
}

fn exec<C, F>(work: &Work, make: &F) -> Result<Outcome, Stop>
where
    C: crate::bench::contenders::Contender,
    F: Fn() -> C + Sync,
{
    Ok(match work {
        Work::Streams(s) => {
            let (wall, faults) = run_streams(make, s)?;
            Outcome {
                wall,
                peak_live: None,
                faults,
            }
        }
        Work::Cross { sizes, align } => {
            let r = run_cross(make, sizes, *align)?;
            Outcome {
                wall: r.wall,
                peak_live: Some(r.peak_live),
                faults: None,
            }
        }
    })
}

/// Runs `work` once through `kind`. `mm` serves `bitnet-memory`; `limit` must be given for
/// `limit` (single-stream work only). A refused request stops the run: [`Stop`].
pub fn run_once(
    kind: Kind,
    work: &Work,
    mm: &MemoryManager,
    limit: Option<&mut Limit>,
) -> Result<Outcome, Stop> {
    match kind {
        Kind::BitnetMemory => exec(work, &|| Pool(mm)),
        // The same configuration as `mm`'s, through the adapter.
        Kind::PoolAlloc => {
            let preset = Preset::of(mm.config()).unwrap_or_default();
            exec(work, &|| ViaGlobalAlloc(preset.pool_alloc(), "pool-alloc"))
        }
        Kind::Glibc => exec(work, &|| Glibc),
        Kind::Mimalloc => exec(work, &|| ViaGlobalAlloc(&MIMALLOC, "mimalloc")),
        Kind::Jemalloc => exec(work, &|| ViaGlobalAlloc(&JEMALLOC, "jemalloc")),
        Kind::Limit => {
            let (Work::Streams(s), Some(l)) = (work, limit) else {
                panic!("the limit row runs single-stream work with a pre-filled Limit");
            };
            let t = std::thread::scope(|scope| {
                scope
                    .spawn(|| run_stream(l, &s[0]))
                    .join()
                    .expect("limit thread panicked")
            })?;
            Ok(Outcome {
                wall: t.end - t.start,
                peak_live: None,
                faults: t.faults,
            })
        }
    }
}

/// How to measure.
#[derive(Debug, Clone)]
pub struct Method {
    /// Untimed runs of each allocator before the timed ones.
    pub warmup: usize,
    /// Timed runs of each allocator.
    pub repeats: usize,
    /// Fresh child processes per allocator (allocators alternating) measuring resident
    /// memory and a cold run; their medians are reported. 0: none (`--no-resident`).
    pub cold_runs: usize,
}

/// The allocators that run on `work`, in order.
pub fn kinds_for(work: &Work, wanted: &[Kind]) -> Vec<Kind> {
    wanted
        .iter()
        .copied()
        .filter(|&k| k != Kind::Limit || work.limit_applies())
        .collect()
}

/// Runs and measures are counted for the progress bar: warm-up and repeats per allocator,
/// plus its child processes.
pub fn steps(kinds: usize, m: &Method) -> u64 {
    (kinds * (m.warmup + m.repeats + m.cold_runs)) as u64
}

/// `total / n`, 0 for no `n` (a figure of a run that did not happen is 0, never NaN).
fn per(total: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}

/// Benchmarks `spec` with every allocator of `wanted` that applies; one row each. An
/// allocator that refuses a request (a trace may ask for 1 TiB) stops there: its row says
/// why in [`Row::refused`], it runs no more, and the others go on.
pub fn bench_workload(
    spec: &Spec,
    wanted: &[Kind],
    m: &Method,
    progress: &Progress,
) -> Result<Vec<Row>, String> {
    let work = Work::build(spec)?;
    let kinds = kinds_for(&work, wanted);
    let mm = MemoryManager::new(spec.preset.config()).map_err(|e| e.to_string())?;
    let mut refused: Vec<Option<String>> = vec![None; kinds.len()];
    let mut limit = None;
    if let Some(i) = kinds.iter().position(|&k| k == Kind::Limit) {
        let Work::Streams(s) = &work else {
            unreachable!("limit applies to streams")
        };
        match Limit::for_stream(&s[0]) {
            Ok(l) => limit = Some(l),
            Err(r) => refused[i] = Some(format!("before the run: {r}")),
        }
    }
    let label = format!("{} x{}", spec.workload.name(), spec.threads);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut peaks: Vec<u64> = vec![0; kinds.len()];
    let mut faults: Vec<Vec<Option<u64>>> = vec![Vec::new(); kinds.len()];
    for round in 0..m.warmup + m.repeats {
        for (i, &k) in kinds.iter().enumerate() {
            progress.step(&format!("{label} {}", k.name()));
            if refused[i].is_some() {
                continue;
            }
            let o = match run_once(k, &work, &mm, limit.as_mut()) {
                Ok(o) => o,
                Err(stop) => {
                    refused[i] = Some(stop.to_string());
                    continue;
                }
            };
            if let Some(p) = o.peak_live {
                peaks[i] = peaks[i].max(p);
            }
            if round >= m.warmup {
                times[i].push(o.wall.as_nanos() as f64);
                faults[i].push(o.faults);
            }
        }
    }
    drop(limit);
    drop(mm);
    let pairs = work.pairs();
    let events = work.events();
    let planned = work.planned_peak_live();
    drop(work);
    // Fresh processes, allocators alternating as in the timed runs.
    let mut children: Vec<Vec<Resident>> = vec![Vec::new(); kinds.len()];
    for _ in 0..m.cold_runs {
        for (i, &k) in kinds.iter().enumerate() {
            progress.step(&format!("{label} {} resident", k.name()));
            if refused[i].is_none() {
                children[i].push(measure_in_child(spec, k)?);
            }
        }
    }
    let mut rows = Vec::new();
    for (i, &k) in kinds.iter().enumerate() {
        let resident = Resident::median(&children[i]);
        let t = &mut times[i];
        let min = t.iter().copied().reduce(f64::min).unwrap_or(0.0);
        let max = t.iter().copied().fold(0.0, f64::max);
        let med = bitnet_memory::stats::median(t).unwrap_or(0.0);
        let peak_live = planned.unwrap_or(peaks[i]);
        let reserved = resident.as_ref().map_or(0, |r| r.hwm_growth_bytes);
        rows.push(Row {
            workload: spec.workload.name().to_string(),
            allocator: k.name().to_string(),
            threads: spec.threads,
            pairs,
            median_ns_per_pair: per(med, pairs),
            min_ns_per_pair: per(min, pairs),
            max_ns_per_pair: per(max, pairs),
            peak_live_bytes: peak_live,
            peak_reserved_bytes: reserved,
            repeats: t.len(),
            pairs_per_sec: if med > 0.0 {
                pairs as f64 / (med * 1e-9)
            } else {
                0.0
            },
            median_ns_per_event: per(med, events),
            events,
            time_vs_bitnet_memory: None,
            reserved_over_live: if peak_live > 0 {
                reserved as f64 / peak_live as f64
            } else {
                0.0
            },
            resident_measured: resident.is_some(),
            metrics_peak_reserved_bytes: resident
                .as_ref()
                .and_then(|r| r.metrics_peak_reserved_bytes),
            metrics_peak_live_bytes: resident.as_ref().and_then(|r| r.metrics_peak_live_bytes),
            cold_ns_per_event: resident
                .as_ref()
                .map(|r| per(r.cold_wall_ns as f64, events)),
            faults_per_run: faults[i]
                .iter()
                .copied()
                .collect::<Option<Vec<u64>>>()
                .and_then(|mut v| lower_median(&mut v)),
            cold_faults: resident.as_ref().and_then(|r| r.cold_faults),
            refused: refused[i].take(),
        });
    }
    if let Some(ours) = rows
        .iter()
        .find(|r| r.allocator == Kind::BitnetMemory.name() && r.refused.is_none())
        .map(|r| r.median_ns_per_pair)
    {
        for r in rows.iter_mut().filter(|r| r.refused.is_none()) {
            r.time_vs_bitnet_memory = Some(r.median_ns_per_pair / ours);
        }
    }
    Ok(rows)
}
