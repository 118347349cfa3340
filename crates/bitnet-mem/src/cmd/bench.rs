//! `bitnet-mem bench`: every workload through every allocator, one table.

use super::device::Device;
use super::{at_least_one, thread_count, CmdResult};
use crate::bench::contenders::Kind;
use crate::bench::engine::{bench_workload, steps, Method, Preset, Spec};
use crate::bench::progress::Progress;
use crate::bench::report::{notes, ratio_rows, ratio_table, table, Report};
use crate::bench::workload::WorkloadName;
use std::path::PathBuf;

/// Options of `bitnet-mem bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The device: `cpu` (every allocator on host memory) or `wgpu` (GPU buffers: our
    /// pool against create-drop and a plain cache; tensor-mix and bitnet-inference).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// `--device wgpu`: operations between two submissions of every contender.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub submit_every: usize,
    /// bitnet-memory's configuration.
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    pub config: Preset,
    /// Smoke run for CI: short streams, 1 warm-up, 2 repeats; a few seconds in all.
    #[arg(long)]
    pub quick: bool,
    /// Workload to run; repeat to pick several. Default: all (replay only with --trace).
    #[arg(long = "workload", value_enum)]
    pub workloads: Vec<WorkloadName>,
    /// Allocator to run; repeat to pick several. Default: all.
    #[arg(long = "allocator", value_enum)]
    pub allocators: Vec<Kind>,
    /// Thread count; repeat to pick several. Default: 1 and 2.
    #[arg(long = "threads", value_parser = thread_count)]
    pub threads: Vec<usize>,
    /// Timed runs per allocator (default 5, quick 2); 1 or more.
    #[arg(long, value_parser = at_least_one)]
    pub repeats: Option<usize>,
    /// Untimed runs per allocator before the timed ones (default 1).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Divide the BitNet model's widths by this (bitnet-inference); 1 or more.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub scale: usize,
    /// Seed of the operation streams.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Trace file for the replay workload (see docs/trace-format.md).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar (it shows on runs over two seconds, on a terminal, without --json).
    #[arg(long)]
    pub quiet: bool,
    /// Skip the resident-memory child processes (peak reserved then reads "-").
    #[arg(long)]
    pub no_resident: bool,
    /// Fresh child processes per allocator for peak reserved and cold time (medians); 1 or
    /// more (`--no-resident` runs none).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub cold_runs: usize,
    /// Run every allocator on 4 KiB pages: transparent huge pages disabled for this
    /// process and its cold children (Linux `PR_SET_THP_DISABLE`), to compare allocators
    /// on equal pages.
    #[arg(long)]
    pub no_huge_pages: bool,
}

impl Args {
    /// The measuring method these options ask for.
    pub fn method(&self) -> Method {
        Method {
            warmup: self.warmup.unwrap_or(1),
            repeats: self.repeats.unwrap_or(if self.quick { 2 } else { 5 }),
            cold_runs: if self.no_resident { 0 } else { self.cold_runs },
        }
    }

    /// The allocators asked for, ours first.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut k = if self.allocators.is_empty() {
            Kind::ALL.to_vec()
        } else {
            self.allocators.clone()
        };
        k.sort();
        k.dedup();
        k
    }
}

/// Runs the benchmark.
pub fn run(args: Args) -> CmdResult {
    if args.device == Device::Wgpu {
        #[cfg(feature = "wgpu")]
        return super::bench_gpu::run(&args);
        #[cfg(not(feature = "wgpu"))]
        return Err(super::device::no_wgpu_feature());
    }
    if args.no_huge_pages {
        crate::bench::pages::disable_huge_pages()?;
    }
    let mut workloads = if args.workloads.is_empty() {
        WorkloadName::ALL
            .into_iter()
            .filter(|w| *w != WorkloadName::Replay || args.trace.is_some())
            .collect()
    } else {
        args.workloads.clone()
    };
    workloads.sort();
    workloads.dedup();
    let mut threads = if args.threads.is_empty() {
        vec![1, 2]
    } else {
        args.threads.clone()
    };
    threads.sort_unstable();
    threads.dedup();
    let kinds = args.kinds();
    let method = args.method();
    let specs: Vec<Spec> = workloads
        .iter()
        .flat_map(|&w| threads.iter().map(move |&t| (w, t)))
        .map(|(workload, threads)| Spec {
            workload,
            threads,
            seed: args.seed,
            scale: args.scale,
            quick: args.quick,
            trace: args.trace.clone(),
            preset: args.config,
        })
        .collect();
    let total: u64 = specs
        .iter()
        .map(|s| {
            let limit_ok = s.threads == 1 && s.workload != WorkloadName::CrossThread;
            let n = kinds
                .iter()
                .filter(|&&k| k != Kind::Limit || limit_ok)
                .count();
            steps(n, &method)
        })
        .sum();
    let progress = Progress::with(
        total,
        crate::bench::progress::bar_enabled(args.quiet, args.json.is_some()),
    );
    let mut report = Report::default();
    for spec in &specs {
        let rows = bench_workload(spec, &kinds, &method, &progress)?;
        report.results.extend(rows);
    }
    progress.finish();
    println!(
        "bitnet-mem bench{}: {} repeats after {} warm-up, seed {}, scale {}, bitnet-memory config {:?}; {}",
        if args.quick { " --quick" } else { "" },
        method.repeats,
        method.warmup,
        args.seed,
        args.scale,
        args.config,
        crate::bench::pages::describe()
    );
    print!("{}", table(&report.results));
    print!("{}", crate::bench::report::refusals(&report.results));
    print!("{}", notes(&report.results));
    let ratios = ratio_rows(&report.results);
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    print!("{}", ratio_table(&ratios, &names));
    let repeats = method.repeats.max(3);
    let tracking = crate::bench::sections::tracking(args.quick, args.seed, repeats)?;
    let cleanup = crate::bench::sections::cleanup(args.quick, repeats);
    print!("{}", crate::bench::sections::print(&tracking, &cleanup));
    report.add_section("reserved_over_live", &ratios)?;
    report.add_section("tracking", &tracking)?;
    report.add_section("cleanup", &cleanup)?;
    report.add_section("pages", crate::bench::pages::section())?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}
