//! The demo on the GPU: [`run_gpu_demo`] decodes with [`GpuModel`] on a manager with a CPU
//! and a wgpu device, and reports speed, the GPU pool's memory and the leak verdict, shaped
//! like [`DemoReport`](crate::demo::DemoReport) so a CLI prints both alike.

use super::GpuModel;
use crate::demo::{pct, progress_bar, stats, DemoOptions, RunStats};
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::model::{seeded_prompt, LeakCheck, MemoryNeeds, ModelConfig};
use crate::rss;
use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};
use bitnet_memory::metrics::{fmt_bytes, DeviceMetrics};
use bitnet_memory::{CpuBackend, DeviceId, MemoryConfig, MemoryManager};
use std::fmt;
use std::time::Instant;

/// The manager's device the GPU is (the CPU is device 0).
pub const GPU_DEVICE: DeviceId = DeviceId(1);

/// What [`run_gpu_demo`] measured; `Display` prints the report.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDemoReport {
    /// The options of the run ([`DemoOptions::runs`] and [`DemoOptions::history`] are
    /// not used; [`DemoOptions::budget`] is the GPU device's budget, `threads` only draws
    /// the weights).
    pub options: DemoOptions,
    /// The model's configuration.
    pub config: ModelConfig,
    /// Live bytes the model needs, computed from the configuration before running.
    pub needs: MemoryNeeds,
    /// The adapter: name, backend and device type.
    pub adapter: String,
    /// Speed (and the process's resident memory: the weights are drawn on the CPU first).
    pub stats: RunStats,
    /// The GPU device's pool after decoding, the model still loaded: live, reserved,
    /// mapped, peak and pending-free bytes.
    pub gpu: DeviceMetrics,
    /// Live bytes the model keeps on the GPU between steps: weights and KV cache.
    pub resident_bytes: usize,
    /// What decode steps left live on the GPU device.
    pub leaks: LeakCheck,
    /// Live bytes on the GPU device after decoding minus weights and KV cache (0 unless
    /// something leaked).
    pub extra_live_bytes: isize,
    /// Allocations still live (any device) after the model was dropped.
    pub live_after_drop: usize,
}

impl GpuDemoReport {
    /// Whether nothing leaked: no step left anything, exactly weights and KV cache were
    /// live after decoding, and nothing after the model was dropped.
    pub fn leak_free(&self) -> bool {
        self.leaks.leaking_steps == 0 && self.extra_live_bytes == 0 && self.live_after_drop == 0
    }
}

/// Runs the demo on the GPU that wgpu's environment variables pick
/// ([`WgpuOptions::from_env`]: `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`):
/// [`run_gpu_demo_with`] those options.
pub fn run_gpu_demo(opts: &DemoOptions) -> Result<GpuDemoReport> {
    run_gpu_demo_with(opts, &WgpuOptions::from_env())
}

/// Runs the demo on the GPU: opens a wgpu device as `gpu_options` say, builds a manager
/// with the CPU as device 0 and the GPU as device 1 (budget [`DemoOptions::budget`]),
/// builds [`GpuModel`] and decodes the seeded prompt and `tokens` tokens, as
/// [`run_demo`](crate::demo::run_demo) does on the CPU.
///
/// Returns [`Error::GpuUnavailable`] (never panics) when there is no adapter or device:
/// its text is the backend's `DeviceUnavailable`, naming the backends tried, the name
/// filter and the adapters found.
pub fn run_gpu_demo_with(opts: &DemoOptions, gpu_options: &WgpuOptions) -> Result<GpuDemoReport> {
    let (config, positions) = opts.checked_config()?;
    let needs = config.memory_needs(positions);
    let gpu = WgpuBackend::new(gpu_options).map_err(|e| Error::GpuUnavailable(e.to_string()))?;
    let info = gpu.adapter_info();
    let adapter = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
    let mm = MemoryManager::builder(MemoryConfig::default())
        .device(CpuBackend::new(), None)
        .device(gpu.clone(), opts.budget)
        .build()?;
    let prompt = seeded_prompt(opts.seed, opts.prompt_len, config.vocab);
    let rss_start = rss::current();
    let t = Instant::now();
    let exec = Exec::new(opts.threads)?;
    let mut model = GpuModel::new(&config, &mm, &gpu, GPU_DEVICE, opts.seed, positions, exec)?;
    let build = t.elapsed();
    let bar = progress_bar(opts, "gpu", prompt.len() + opts.tokens - 1);
    let g = model.generate(&prompt, opts.tokens, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let peak_rss = rss::peak();
    let resident_bytes = model.resident_bytes();
    let dev = mm.metrics().device(GPU_DEVICE).cloned().unwrap_or_default();
    let extra_live_bytes = dev.live_bytes as isize - resident_bytes as isize;
    drop(model);
    gpu.wait_idle()?;
    let live_after_drop = mm.metrics().live_allocations();
    Ok(GpuDemoReport {
        options: opts.clone(),
        config,
        needs,
        adapter,
        leaks: g.leaks.unwrap_or_default(),
        stats: stats(g, build, rss_start, peak_rss, true),
        gpu: dev,
        resident_bytes,
        extra_live_bytes,
        live_after_drop,
    })
}

impl fmt::Display for GpuDemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(f, "BitNet b1.58 decode on the GPU, model {}", self.config)?;
        writeln!(f, "  adapter {}", self.adapter)?;
        writeln!(
            f,
            "  {} prompt + {} generated tokens, seed {}, GPU budget {}",
            o.prompt_len,
            o.tokens,
            o.seed,
            o.budget.map_or("none".into(), fmt_bytes)
        )?;
        writeln!(
            f,
            "  model needs {} live: weights {}, KV cache {}, temporaries {}",
            fmt_bytes(self.needs.total()),
            fmt_bytes(self.needs.weights),
            fmt_bytes(self.needs.kv_cache),
            fmt_bytes(self.needs.activations)
        )?;
        let d = &self.gpu;
        writeln!(f)?;
        writeln!(f, "GPU device pool (after decoding, model loaded)")?;
        writeln!(
            f,
            "  live               {:>12}  (weights + KV cache: {})",
            fmt_bytes(d.live_bytes),
            fmt_bytes(self.resident_bytes)
        )?;
        writeln!(
            f,
            "  peak live          {:>12}",
            fmt_bytes(d.peak_live_bytes)
        )?;
        writeln!(
            f,
            "  reserved           {:>12}  (peak {}; live / reserved {})",
            fmt_bytes(d.reserved_bytes),
            fmt_bytes(d.peak_reserved_bytes),
            pct(d.live_bytes as f64 / d.reserved_bytes.max(1) as f64)
        )?;
        writeln!(f, "  mapped (buffers)   {:>12}", fmt_bytes(d.mapped_bytes))?;
        writeln!(
            f,
            "  pending free       {:>12}  (freed, waiting for their submission to finish)",
            fmt_bytes(d.pending_free_bytes)
        )?;
        let l = &self.leaks;
        writeln!(
            f,
            "  leaks              {:>12}  ({} of {} decode steps left {} allocation(s), {}; \
             {} B live beyond weights + KV cache; {} allocation(s) live after the model was dropped)",
            if self.leak_free() { "none" } else { "FOUND" },
            l.leaking_steps,
            l.steps,
            l.allocations,
            fmt_bytes(l.bytes),
            self.extra_live_bytes,
            self.live_after_drop
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:>10} {:>10}  peak RSS",
            "buffers", "tokens/s", "build"
        )?;
        let s = &self.stats;
        writeln!(
            f,
            "  {:<18} {:>10.1} {:>9.2}s  {}",
            "GPU (wgpu)",
            s.tokens_per_s,
            s.build_time.as_secs_f64(),
            s.peak_rss.map_or("unknown".into(), fmt_bytes)
        )?;
        let shown: Vec<String> = s.tokens.iter().take(16).map(u32::to_string).collect();
        let more = if s.tokens.len() > 16 { " ..." } else { "" };
        write!(f, "tokens: {}{more}", shown.join(" "))
    }
}
