//! The `bitnet-mem demo` run: decode with the memory manager, then with plain `Vec`s, and
//! report memory and speed side by side.

use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::model::{seeded_prompt, Generation, LeakCheck, MemoryNeeds, Model, ModelConfig};
use crate::rss;
use crate::storage::Provider;
use bitnet_memory::metrics::fmt_bytes;
use bitnet_memory::{MemoryConfig, MemoryError, MemoryManager, MetricsSnapshot, Snapshot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Which model the demo runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSize {
    /// [`ModelConfig::small`]: seconds on two cores.
    Small,
    /// [`ModelConfig::bitnet_2b4t`]: the real shapes (about 1.9 GB of weights).
    Bitnet2b4t,
    /// [`ModelConfig::scaled`] by this factor in (0, 1].
    Scaled(f64),
    /// Any configuration.
    Custom(ModelConfig),
}

impl ModelSize {
    /// The configuration of this size.
    pub fn config(&self) -> Result<ModelConfig> {
        match self {
            ModelSize::Small => Ok(ModelConfig::small()),
            ModelSize::Bitnet2b4t => Ok(ModelConfig::bitnet_2b4t()),
            ModelSize::Scaled(f) => ModelConfig::scaled(*f),
            ModelSize::Custom(c) => Ok(c.clone()),
        }
    }
}

impl FromStr for ModelSize {
    type Err = Error;

    /// `small`, `2b4t`, or a scale of 2B4T such as `0.25`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "small" | "default" => Ok(ModelSize::Small),
            "2b4t" | "2b" | "bitnet-2b4t" => Ok(ModelSize::Bitnet2b4t),
            other => match other.parse::<f64>() {
                Ok(f) if f > 0.0 && f <= 1.0 => Ok(ModelSize::Scaled(f)),
                _ => Err(Error::Config(format!(
                    "model size {s:?}: expected `small`, `2b4t` or a scale of 2B4T in (0, 1]"
                ))),
            },
        }
    }
}

/// Which runs the demo makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runs {
    /// The manager run, then the `Vec` baseline.
    #[default]
    Both,
    /// The manager run only.
    ManagerOnly,
    /// The `Vec` baseline only (for measuring its RSS alone in a child process).
    VecOnly,
}

/// Options of [`run_demo`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Model size. Default: small.
    pub model: ModelSize,
    /// Tokens to generate. Default: 64.
    pub tokens: usize,
    /// Tokens of the seeded prompt, decoded before generating. Default: 4.
    pub prompt_len: usize,
    /// Threads the ops run on. Default: the available parallelism.
    pub threads: usize,
    /// Memory budget of the manager in bytes; `None` for no limit. Default: `None`.
    pub budget: Option<usize>,
    /// Seed of the weights and the prompt. Default: 42.
    pub seed: u64,
    /// Whether to draw progress bars on stderr. Default: `true`.
    pub progress: bool,
    /// Which runs to make. Default: both.
    pub runs: Runs,
    /// Entries of allocation history to record during the manager run (see
    /// `MemoryManager::record_history`) for [`ManagerRun::snapshot`]; `None`: no history
    /// and no snapshot. Recording slows allocation down: speed figures include its cost.
    /// Default: `None`.
    pub history: Option<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            model: ModelSize::Small,
            tokens: 64,
            prompt_len: 4,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            budget: None,
            seed: 42,
            progress: true,
            runs: Runs::Both,
            history: None,
        }
    }
}

/// Speed and resident memory of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    /// Generated tokens.
    pub tokens: Vec<u32>,
    /// Decode steps (prompt tokens plus generated tokens but the last).
    pub steps: usize,
    /// Time to draw and quantize the weights.
    pub build_time: Duration,
    /// Time of the decode steps.
    pub decode_time: Duration,
    /// Tokens decoded per second (every step decodes one token, prompt or generated).
    pub tokens_per_s: f64,
    /// Resident bytes when the run started, if known.
    pub rss_start: Option<usize>,
    /// Peak resident bytes (`VmHWM`) during the run, if known.
    pub peak_rss: Option<usize>,
    /// Whether `peak_rss` is this run's own: the peak was reset before the run (or it was
    /// the first run). If not, it may be an earlier run's peak.
    pub peak_rss_own: bool,
}

/// The memory manager's view of its run.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerRun {
    /// Speed and resident memory.
    pub stats: RunStats,
    /// Peak bytes live in allocations.
    pub peak_live: usize,
    /// Peak bytes reserved from the OS.
    pub peak_reserved: usize,
    /// `live / reserved` after decoding, with the model still loaded.
    pub utilization: f64,
    /// External fragmentation of the large pool after decoding: `1 - largest free / free`.
    pub fragmentation: f64,
    /// What decode steps left live (see [`crate::lifecycle`]).
    pub leaks: LeakCheck,
    /// Allocations still live after the model was dropped (0 unless something leaked).
    pub live_after_drop: usize,
    /// Findings of the manager's leak detectors (scopes, growth, cycles) after decoding.
    pub leak_findings: usize,
    /// All counters after decoding, with the model still loaded.
    pub metrics: MetricsSnapshot,
    /// The manager's snapshot after decoding, with the model still loaded (its blocks are
    /// the weights, the KV cache and what decoding keeps), and the recorded history;
    /// when [`DemoOptions::history`] asked for one.
    pub snapshot: Option<Box<Snapshot>>,
}

impl ManagerRun {
    /// `peak live / peak reserved`.
    pub fn peak_utilization(&self) -> f64 {
        self.peak_live as f64 / self.peak_reserved.max(1) as f64
    }
}

/// What [`run_demo`] measured; `Display` prints the memory report.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// The options of the run.
    pub options: DemoOptions,
    /// The model's configuration.
    pub config: ModelConfig,
    /// Live bytes the model needs, computed from the configuration before running.
    pub needs: MemoryNeeds,
    /// The run on the memory manager.
    pub manager: Option<ManagerRun>,
    /// The run on plain `Vec`s.
    pub vec: Option<RunStats>,
}

impl DemoReport {
    /// Tokens/s of the manager run over the `Vec` run, when both ran.
    pub fn speed_ratio(&self) -> Option<f64> {
        let (m, v) = (self.manager.as_ref()?, self.vec.as_ref()?);
        Some(m.stats.tokens_per_s / v.tokens_per_s.max(1e-12))
    }

    /// Whether both runs generated the same tokens (`None` unless both ran).
    pub fn same_tokens(&self) -> Option<bool> {
        Some(self.manager.as_ref()?.stats.tokens == self.vec.as_ref()?.tokens)
    }
}

fn budget_error(budget: usize, needs: &MemoryNeeds, source: Option<MemoryError>) -> Error {
    Error::BudgetTooSmall {
        budget,
        needed: needs.total(),
        weights: needs.weights,
        kv_cache: needs.kv_cache,
        activations: needs.activations,
        recommended: needs.recommended_budget(),
        source: source.map(Box::new),
    }
}

impl DemoOptions {
    /// The model's configuration, validated, and the positions the run needs (prompt +
    /// tokens): errors for an empty run or one past the model's context. Shared by the
    /// CPU and GPU demos.
    pub(crate) fn checked_config(&self) -> Result<(ModelConfig, usize)> {
        let config = self.model.config()?;
        config.validate()?;
        if self.tokens == 0 || self.prompt_len == 0 {
            return Err(Error::Config(
                "tokens and prompt length must be at least 1".into(),
            ));
        }
        let positions = self.prompt_len + self.tokens;
        if positions > config.max_seq {
            return Err(Error::Config(format!(
                "{positions} positions exceed the model's context of {}",
                config.max_seq
            )));
        }
        Ok((config, positions))
    }
}

/// Runs the demo: the model on a memory manager for `tokens` tokens with a progress bar,
/// then (unless told otherwise) the same run on plain `Vec`s.
///
/// A budget below what the model needs fails before anything is allocated, with
/// [`Error::BudgetTooSmall`] saying how many bytes it needs; a budget hit while running
/// (pool rounding, chunk growth) gives the same error with the pool's own in `source`.
pub fn run_demo(opts: &DemoOptions) -> Result<DemoReport> {
    let (config, positions) = opts.checked_config()?;
    let needs = config.memory_needs(positions);
    if let Some(b) = opts.budget {
        if b < needs.total() {
            return Err(budget_error(b, &needs, None));
        }
    }
    let prompt = seeded_prompt(opts.seed, opts.prompt_len, config.vocab);
    let mut first = true;
    let mut begin = || {
        let own = std::mem::take(&mut first) || rss::reset_peak();
        (own, rss::current())
    };

    let manager = if opts.runs != Runs::VecOnly {
        let (own, rss_start) = begin();
        let mut mc = MemoryConfig::default();
        if let Some(b) = opts.budget {
            mc = mc.budget(b);
        }
        let mm = MemoryManager::new(mc)?;
        if let Some(n) = opts.history {
            mm.record_history(n)?;
        }
        let (model, g, build) = run_model(
            &config,
            opts,
            &prompt,
            positions,
            Provider::Manager(&mm),
            "manager",
        )
        .map_err(|e| match e {
            Error::Memory(m @ MemoryError::BudgetExceeded { .. }) => {
                budget_error(opts.budget.unwrap_or(0), &needs, Some(m))
            }
            e => e,
        })?;
        let peak_rss = rss::peak();
        let metrics = mm.metrics();
        let snapshot = opts.history.map(|_| Box::new(mm.snapshot()));
        let leak_findings = mm.check_leaks().len();
        drop(model);
        let live_after_drop = mm.metrics().live_allocations();
        let dev = metrics.devices.first().cloned().unwrap_or_default();
        Some(ManagerRun {
            stats: stats(g.clone(), build, rss_start, peak_rss, own),
            peak_live: metrics.peak_live_bytes(),
            peak_reserved: metrics.peak_reserved_bytes(),
            utilization: dev.utilization(),
            fragmentation: dev.external_fragmentation(),
            leaks: g.leaks.unwrap_or_default(),
            live_after_drop,
            leak_findings,
            metrics,
            snapshot,
        })
    } else {
        None
    };

    let vec = if opts.runs != Runs::ManagerOnly {
        let (own, rss_start) = begin();
        let (model, g, build) = run_model(&config, opts, &prompt, positions, Provider::Vec, "Vec")?;
        let peak_rss = rss::peak();
        drop(model);
        Some(stats(g, build, rss_start, peak_rss, own))
    } else {
        None
    };

    Ok(DemoReport {
        options: opts.clone(),
        config,
        needs,
        manager,
        vec,
    })
}

fn run_model<'m>(
    config: &ModelConfig,
    opts: &DemoOptions,
    prompt: &[u32],
    positions: usize,
    p: Provider<'m>,
    label: &str,
) -> Result<(Model<'m>, Generation, Duration)> {
    let exec = Exec::new(opts.threads)?;
    let t = Instant::now();
    let mut model = Model::new(config, p, exec, opts.seed, positions)?;
    let build = t.elapsed();
    let bar = progress_bar(opts, label, prompt.len() + opts.tokens - 1);
    let g = model.generate(prompt, opts.tokens, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok((model, g, build))
}

pub(crate) fn stats(
    g: Generation,
    build: Duration,
    rss_start: Option<usize>,
    peak_rss: Option<usize>,
    own: bool,
) -> RunStats {
    RunStats {
        tokens_per_s: g.steps_per_second(),
        steps: g.steps,
        decode_time: g.elapsed,
        tokens: g.tokens,
        build_time: build,
        rss_start,
        peak_rss,
        peak_rss_own: own,
    }
}

pub(crate) fn progress_bar(opts: &DemoOptions, label: &str, steps: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(steps as u64),
        if opts.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style = ProgressStyle::with_template(
        "{prefix:>8} [{bar:40}] {pos}/{len} tokens  {per_sec}  eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

pub(crate) fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn rss_cell(s: &RunStats) -> String {
    match (s.peak_rss, s.rss_start) {
        (Some(peak), Some(start)) => format!(
            "{} ({} above start){}",
            fmt_bytes(peak),
            fmt_bytes(peak.saturating_sub(start)),
            if s.peak_rss_own {
                ""
            } else {
                ", not reset: may be an earlier run's"
            }
        ),
        (Some(peak), None) => fmt_bytes(peak),
        _ => "unknown (no /proc/self/status)".into(),
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(f, "BitNet b1.58 decode, model {}", self.config)?;
        writeln!(
            f,
            "  {} prompt + {} generated tokens, {} thread(s), seed {}, budget {}",
            o.prompt_len,
            o.tokens,
            o.threads,
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
        if let Some(m) = &self.manager {
            writeln!(f)?;
            writeln!(f, "memory manager")?;
            writeln!(f, "  peak live          {:>12}", fmt_bytes(m.peak_live))?;
            writeln!(
                f,
                "  peak reserved      {:>12}  (peak live / peak reserved {})",
                fmt_bytes(m.peak_reserved),
                pct(m.peak_utilization())
            )?;
            writeln!(
                f,
                "  utilization        {:>12}  (live / reserved after decoding)",
                pct(m.utilization)
            )?;
            writeln!(
                f,
                "  fragmentation      {:>12}  (external, large pool: 1 - largest free / free)",
                pct(m.fragmentation)
            )?;
            let t = &m.metrics.tracking;
            writeln!(
                f,
                "  tracking overhead  {:>12}  (measured share of allocation time; {} of records, \
                 sampling {:.1}%)",
                pct(t.tracking_overhead_percentage / 100.0),
                fmt_bytes(t.tracking_memory_overhead),
                100.0 * t.sample_rate
            )?;
            let found = m.leaks.allocations + m.live_after_drop + m.leak_findings;
            writeln!(
                f,
                "  leaks              {:>12}  ({} of {} decode steps left {} allocation(s), {} live; \
                 {} allocation(s) live after the model was dropped; {} detector finding(s))",
                if found == 0 { "none".to_string() } else { format!("{found} found") },
                m.leaks.leaking_steps,
                m.leaks.steps,
                m.leaks.allocations,
                fmt_bytes(m.leaks.bytes),
                m.live_after_drop,
                m.leak_findings
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:>10} {:>10}  peak RSS",
            "buffers", "tokens/s", "build"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: &RunStats| {
            writeln!(
                f,
                "  {:<18} {:>10.1} {:>9.2}s  {}",
                name,
                s.tokens_per_s,
                s.build_time.as_secs_f64(),
                rss_cell(s)
            )
        };
        if let Some(m) = &self.manager {
            row(f, "memory manager", &m.stats)?;
        }
        if let Some(v) = &self.vec {
            row(f, "plain Vec", v)?;
        }
        if let Some(r) = self.speed_ratio() {
            writeln!(f, "  manager / Vec      {r:>10.2}x tokens/s")?;
        }
        let tokens = self
            .manager
            .as_ref()
            .map(|m| &m.stats.tokens)
            .or(self.vec.as_ref().map(|v| &v.tokens));
        if let Some(t) = tokens {
            let shown: Vec<String> = t.iter().take(16).map(u32::to_string).collect();
            let more = if t.len() > 16 { " ..." } else { "" };
            let same = match self.same_tokens() {
                Some(true) => " (identical in both runs)",
                Some(false) => " (THE RUNS GENERATED DIFFERENT TOKENS)",
                None => "",
            };
            write!(f, "tokens{same}: {}{more}", shown.join(" "))?;
        }
        Ok(())
    }
}
