//! `bench --device wgpu`: GPU buffer streams through our pool, through the device's own
//! calls (`create_buffer` and drop per tensor) and through a plain per-size cache of freed
//! buffers, in one process on one device.
//!
//! The streams are the CPU bench's `tensor-mix` and `bitnet-inference` (the same seeds and
//! sizes). Every contender submits an empty command buffer and polls the device every
//! `submit_every` operations ([`SUBMIT_EVERY`] by default: about one decode layer of
//! `bitnet-inference`, whose layer allocates and frees some 25 tensors), as a decode loop
//! submits its kernels: our pool hands a freed
//! range out again only once the submission after its free has finished (see
//! `bitnet_memory::device::wgpu`), and without submissions it would never get one back. The
//! plain cache reuses a freed buffer at once, which is only right when no recorded or
//! running GPU work still reads it: it is the fast, unsafe baseline.
//!
//! Figures: wall time per alloc+free pair (median over alternating repeats), and the
//! device memory each contender holds at its peak, counted from outside the pool (bytes of
//! the buffers alive: for ours, the chunks its backend created and did not destroy) over
//! the stream's peak of live requested bytes. Goals: ours at least
//! [`SPEEDUP_GOAL`] times faster than create-drop, and at most [`RATIO_GOAL`] times the
//! live peak.

mod baseline;
mod ours;

pub use baseline::{buffer_size, CreateDrop, FreeList, USAGE};
pub use ours::{CountingBackend, Ours};

use crate::bench::workload::{Op, Stream};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Operations between two submissions by default (every contender alike).
pub const SUBMIT_EVERY: usize = 64;
/// How many times faster than `create_buffer` + drop ours should be.
pub const SPEEDUP_GOAL: f64 = 20.0;
/// The most device memory ours may hold over the live peak.
pub const RATIO_GOAL: f64 = 1.10;

/// Bytes of device buffers a contender holds now and at most since the last reset.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceBytes {
    now: u64,
    peak: u64,
}

impl DeviceBytes {
    /// Buffers of `n` bytes were created.
    pub fn add(&mut self, n: u64) {
        self.now += n;
        self.peak = self.peak.max(self.now);
    }
    /// Buffers of `n` bytes were destroyed.
    pub fn sub(&mut self, n: u64) {
        self.now = self.now.saturating_sub(n);
    }
    /// Held now.
    pub fn now(&self) -> u64 {
        self.now
    }
    /// Held at most since the last reset.
    pub fn peak(&self) -> u64 {
        self.peak
    }
    /// Starts a new peak from what is held now.
    pub fn reset_peak(&mut self) {
        self.peak = self.now;
    }
}

/// One way of getting GPU buffers, driven by a stream's slots.
pub trait GpuContender {
    /// Name in the table.
    fn name(&self) -> &'static str;
    /// A buffer of `size` bytes into `slot`.
    fn alloc(&mut self, slot: u32, size: usize) -> Result<(), String>;
    /// Frees the buffer in `slot`.
    fn free(&mut self, slot: u32);
    /// Submits an empty command buffer and polls the device without waiting.
    fn submit(&mut self);
    /// The device bytes it holds (buffers alive, cached ones included).
    fn device_bytes(&mut self) -> &mut DeviceBytes;
    /// Frees every live buffer (after a run that stopped half-way).
    fn release_all(&mut self);
    /// Starts a new peak of device bytes from what is held now.
    fn reset_peak(&mut self) {
        self.device_bytes().reset_peak();
    }
}

/// One contender on one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuRow {
    /// Workload name.
    pub workload: String,
    /// Contender name.
    pub allocator: String,
    /// Alloc+free pairs of one run.
    pub pairs: u64,
    /// Median over repeats of wall time / pairs.
    pub median_ns_per_pair: f64,
    /// Fastest repeat.
    pub min_ns_per_pair: f64,
    /// Slowest repeat.
    pub max_ns_per_pair: f64,
    /// The stream's peak of live requested bytes.
    pub peak_live_bytes: u64,
    /// The most device memory held during a timed run (buffers alive, cached included).
    pub peak_device_bytes: u64,
    /// `peak_device_bytes / peak_live_bytes`.
    pub device_over_live: f64,
}

/// Runs `stream` once through `c`, submitting every `submit_every` operations and at the
/// end; the wall time in ns (submissions included: they are where the device frees what
/// was dropped, and where our pool's fences pass).
pub fn run_once(
    c: &mut dyn GpuContender,
    stream: &Stream,
    submit_every: usize,
) -> Result<f64, String> {
    let submit_every = submit_every.max(1);
    let t = Instant::now();
    for (
        i,
        &Op {
            size, slot, free, ..
        },
    ) in stream.ops.iter().enumerate()
    {
        if free {
            c.free(slot);
        } else if let Err(e) = c.alloc(slot, size) {
            c.release_all();
            return Err(format!("{}: {e}", c.name()));
        }
        if (i + 1) % submit_every == 0 {
            c.submit();
        }
    }
    c.submit();
    Ok(t.elapsed().as_nanos() as f64)
}

/// Warm-up runs, then `repeats` rounds that run each contender once in turn; one row per
/// contender.
pub fn measure(
    workload: &str,
    stream: &Stream,
    contenders: &mut [&mut dyn GpuContender],
    warmup: usize,
    repeats: usize,
    submit_every: usize,
) -> Result<Vec<GpuRow>, String> {
    for c in contenders.iter_mut() {
        for _ in 0..warmup {
            run_once(&mut **c, stream, submit_every)?;
        }
        c.reset_peak();
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for _ in 0..repeats.max(1) {
        for (i, c) in contenders.iter_mut().enumerate() {
            times[i].push(run_once(&mut **c, stream, submit_every)?);
        }
    }
    let pairs = stream.allocs.max(1);
    Ok(contenders
        .iter_mut()
        .zip(times)
        .map(|(c, mut t)| {
            t.sort_by(f64::total_cmp);
            let per = |x: f64| x / pairs as f64;
            let peak = c.device_bytes().peak();
            GpuRow {
                workload: workload.to_string(),
                allocator: c.name().to_string(),
                pairs,
                median_ns_per_pair: per(median(&t)),
                min_ns_per_pair: per(t[0]),
                max_ns_per_pair: per(t[t.len() - 1]),
                peak_live_bytes: stream.peak_live,
                peak_device_bytes: peak,
                device_over_live: peak as f64 / stream.peak_live.max(1) as f64,
            }
        })
        .collect())
}

/// The middle of sorted values (the mean of the two middles for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// How ours did against the goals on one workload, from its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuVerdict {
    /// Workload name.
    pub workload: String,
    /// create-drop's median time over ours (the goal: at least [`SPEEDUP_GOAL`]).
    pub speedup_over_create_drop: Option<f64>,
    /// Ours' device bytes over the live peak (the goal: at most [`RATIO_GOAL`]).
    pub device_over_live: Option<f64>,
    /// Both goals met.
    pub met: bool,
    /// [`fence_floor`] of the stream over its live peak: the least device/live any pool
    /// keeping the fence rule can reach at this submission cadence without submitting
    /// itself (set by the caller, who has the stream).
    #[serde(default)]
    pub fence_floor_over_live: Option<f64>,
}

/// The least device memory a pool that keeps the fence rule can hold on `stream` when
/// work is submitted every `submit_every` operations (as [`run_once`] does) and the pool
/// never submits itself: the peak, over allocations, of live bytes plus the bytes freed
/// since the last submission (those wait for the next one to finish, however fast the
/// GPU is; blocks freed before it are counted as back at once). Requested sizes, no
/// rounding or chunking: a floor, not a prediction.
pub fn fence_floor(stream: &Stream, submit_every: usize) -> u64 {
    let submit_every = submit_every.max(1);
    let mut sizes = vec![0u64; stream.slots];
    let (mut live, mut pending, mut floor) = (0u64, 0u64, 0u64);
    for (i, op) in stream.ops.iter().enumerate() {
        let slot = &mut sizes[op.slot as usize];
        if op.free {
            live -= *slot;
            pending += std::mem::take(slot);
        } else {
            *slot = op.size as u64;
            live += *slot;
            floor = floor.max(live + pending);
        }
        if (i + 1) % submit_every == 0 {
            pending = 0;
        }
    }
    floor
}

/// Judges ours on `workload` from `rows`.
pub fn verdict(workload: &str, rows: &[GpuRow]) -> GpuVerdict {
    let find = |name: &str| {
        rows.iter()
            .find(|r| r.workload == workload && r.allocator == name)
    };
    let ours = find(Ours::NAME);
    let cd = find("create-drop");
    let speedup = match (ours, cd) {
        (Some(o), Some(c)) if o.median_ns_per_pair > 0.0 => {
            Some(c.median_ns_per_pair / o.median_ns_per_pair)
        }
        _ => None,
    };
    let ratio = ours.map(|o| o.device_over_live);
    GpuVerdict {
        workload: workload.to_string(),
        speedup_over_create_drop: speedup,
        device_over_live: ratio,
        met: speedup.is_some_and(|s| s >= SPEEDUP_GOAL) && ratio.is_some_and(|r| r <= RATIO_GOAL),
        fence_floor_over_live: None,
    }
}

/// The verdict as one line: each goal met or missed, by how much.
pub fn verdict_line(v: &GpuVerdict) -> String {
    let speed = match v.speedup_over_create_drop {
        Some(s) if s >= SPEEDUP_GOAL => format!("met ({s:.1}x faster than create-drop)"),
        Some(s) => format!(
            "missed ({s:.1}x faster than create-drop, {:.0}% short of {SPEEDUP_GOAL}x)",
            100.0 * (1.0 - s / SPEEDUP_GOAL)
        ),
        None => "not measured (needs ours and create-drop)".into(),
    };
    let ratio = match v.device_over_live {
        Some(r) if r <= RATIO_GOAL => format!("met ({r:.3})"),
        Some(r) => format!("missed ({r:.3}, {:.3} over {RATIO_GOAL})", r - RATIO_GOAL),
        None => "not measured".into(),
    };
    let floor = v
        .fence_floor_over_live
        .map(|f| format!(" (the fence alone needs >= {f:.3} at this submission cadence)"))
        .unwrap_or_default();
    format!(
        "{:<17} speed >= {SPEEDUP_GOAL}x create-drop: {speed}; device/live <= {RATIO_GOAL}: {ratio}{floor}",
        v.workload
    )
}

/// The table of rows, for people.
pub fn table(rows: &[GpuRow]) -> String {
    use crate::bench::report::{bytes, ns};
    let mut out = format!(
        "{:<17} {:<14} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>11} {:>8}\n",
        "workload",
        "allocator",
        "pairs",
        "median ns",
        "min ns",
        "max ns",
        "vs ours",
        "peak live",
        "peak device",
        "dev/live"
    );
    for r in rows {
        let ours = rows
            .iter()
            .find(|o| o.workload == r.workload && o.allocator == Ours::NAME);
        let vs = ours
            .filter(|o| o.median_ns_per_pair > 0.0)
            .map(|o| format!("{:.2}x", r.median_ns_per_pair / o.median_ns_per_pair))
            .unwrap_or_else(|| "-".into());
        out += &format!(
            "{:<17} {:<14} {:>8} {:>10} {:>10} {:>10} {:>8} {:>10} {:>11} {:>8.3}\n",
            r.workload,
            r.allocator,
            r.pairs,
            ns(r.median_ns_per_pair),
            ns(r.min_ns_per_pair),
            ns(r.max_ns_per_pair),
            vs,
            bytes(r.peak_live_bytes),
            bytes(r.peak_device_bytes),
            r.device_over_live
        );
    }
    out
}

#[cfg(test)]
mod tests;
