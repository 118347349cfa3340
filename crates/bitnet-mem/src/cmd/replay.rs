//! `bitnet-mem replay FILE`: a trace through every allocator.

use super::{at_least_one, thread_count, CmdResult};
use crate::bench::contenders::Kind;
use crate::bench::engine::{bench_workload, steps, Method, Preset, Spec};
use crate::bench::progress::Progress;
use crate::bench::report::{
    bytes, grid, notes, ns, refusals, render, trace_verdict, Report, REFUSED,
};
use crate::bench::workload::WorkloadName;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Options of `bitnet-mem replay`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The trace (`op,id,size,align,thread,t_ns`; see docs/trace-format.md).
    pub file: PathBuf,
    /// Allocator to run; repeat to pick several. Default: all.
    #[arg(long = "allocator", value_enum)]
    pub allocators: Vec<Kind>,
    /// Threads, each replaying the whole trace (1 to 1024). Default: 1.
    #[arg(long, default_value_t = 1, value_parser = thread_count)]
    pub threads: usize,
    /// Timed runs per allocator; 1 or more.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub repeats: usize,
    /// Untimed runs per allocator before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar (it shows on runs over two seconds, on a terminal, without --json).
    #[arg(long)]
    pub quiet: bool,
    /// Skip the resident-memory child processes.
    #[arg(long)]
    pub no_resident: bool,
    /// Fresh child processes per allocator for peak resident and cold time (medians); 1 or
    /// more (`--no-resident` runs none).
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub cold_runs: usize,
    /// bitnet-memory's configuration.
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    pub config: Preset,
    /// Run every allocator on 4 KiB pages: transparent huge pages disabled for this
    /// process and its cold children (Linux `PR_SET_THP_DISABLE`), to compare allocators
    /// on equal pages.
    #[arg(long)]
    pub no_huge_pages: bool,
}

/// Replays the trace.
pub fn run(args: Args) -> CmdResult {
    if args.no_huge_pages {
        crate::bench::pages::disable_huge_pages()?;
    }
    let trace = crate::bench::workload::load_trace(&args.file)?;
    let s = trace.summary();
    let mut kinds = if args.allocators.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.allocators.clone()
    };
    kinds.sort();
    kinds.dedup();
    let method = Method {
        warmup: args.warmup,
        repeats: args.repeats,
        cold_runs: if args.no_resident { 0 } else { args.cold_runs },
    };
    let spec = Spec {
        workload: WorkloadName::Replay,
        threads: args.threads,
        seed: 0,
        scale: 1,
        quick: false,
        trace: Some(args.file.clone()),
        preset: args.config,
    };
    let n = kinds
        .iter()
        .filter(|&&k| k != Kind::Limit || spec.threads == 1)
        .count();
    let progress = Progress::with(
        steps(n, &method),
        crate::bench::progress::bar_enabled(args.quiet, args.json.is_some()),
    );
    let rows = bench_workload(&spec, &kinds, &method, &progress)?;
    progress.finish();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} events ({} allocations, {} frees), {} threads, {} cross-thread frees",
        args.file.display(),
        s.events,
        s.allocs,
        s.frees,
        s.threads,
        s.cross_thread_frees
    );
    let _ = writeln!(
        out,
        "peak live {} ({} blocks, at event {}); {} blocks ({}) live at the end; largest {}",
        bytes(s.peak.live_bytes),
        s.peak.live_blocks,
        s.peak.event_index + 1,
        s.live_blocks_at_end,
        bytes(s.live_bytes_at_end),
        bytes(s.largest)
    );
    let _ = writeln!(
        out,
        "replayed in file order on {} thread(s), one byte written per 4 KiB page of each new block, \
         {} repeats after {} warm-up; cold ns/ev, cold faults and peak res: medians of {} runs, each in a fresh process; {}",
        spec.threads,
        method.repeats,
        method.warmup,
        method.cold_runs,
        crate::bench::pages::describe()
    );
    let mut t = grid(
        &[
            "allocator",
            "ns/event",
            "ns/pair",
            "min/pair",
            "vs ours",
            "faults",
            "cold ns/ev",
            "cold faults",
            "peak res",
            "peak live",
            "res/live",
        ],
        1,
    );
    for r in &rows {
        if r.refused.is_some() {
            let mut cells = vec![r.allocator.clone(), REFUSED.to_string()];
            cells.extend(std::iter::repeat_n("-".to_string(), 7));
            cells.extend([bytes(r.peak_live_bytes), "-".into()]);
            t.add_row(cells);
            continue;
        }
        let (res, ratio) = if r.resident_measured {
            (
                bytes(r.peak_reserved_bytes),
                format!("{:.2}", r.reserved_over_live),
            )
        } else {
            ("-".into(), "-".into())
        };
        t.add_row([
            r.allocator.clone(),
            ns(r.median_ns_per_event),
            ns(r.median_ns_per_pair),
            ns(r.min_ns_per_pair),
            r.time_vs_bitnet_memory
                .map_or("-".into(), |v| format!("{v:.2}x")),
            r.faults_per_run.map_or("-".into(), |f| f.to_string()),
            r.cold_ns_per_event.map_or("-".into(), ns),
            r.cold_faults.map_or("-".into(), |f| f.to_string()),
            res,
            bytes(r.peak_live_bytes),
            ratio,
        ]);
    }
    out += &render(&t);
    out += &refusals(&rows);
    let verdict = trace_verdict(&rows);
    if let Some(v) = &verdict {
        let _ = writeln!(
            out,
            "target (resident growth / live peak <= {:.2}, and faster per event than every peer, warm and cold): {}",
            v.target, v.verdict
        );
    }
    print!("{out}{}", notes(&rows));
    let all_refused = !rows.is_empty() && rows.iter().all(|r| r.refused.is_some());
    if let Some(path) = &args.json {
        let mut report = Report {
            results: rows,
            ..Report::default()
        };
        report.add_section(
            "trace",
            serde_json::json!({
                "file": args.file.display().to_string(),
                "events": s.events,
                "allocs": s.allocs,
                "frees": s.frees,
                "threads": s.threads,
                "peak_live_bytes": s.peak.live_bytes,
                "live_bytes_at_end": s.live_bytes_at_end,
            }),
        )?;
        report.add_section("pages", crate::bench::pages::section())?;
        if let Some(v) = &verdict {
            report.add_section("target", v)?;
        }
        report.write_json(path)?;
        println!("JSON written to {}", path.display());
    }
    if all_refused {
        return Err(format!(
            "{}: no allocator could replay the trace (each one's reason is above)",
            args.file.display()
        )
        .into());
    }
    Ok(())
}
