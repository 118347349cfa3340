//! `bitnet-mem`: the demo, benchmarks, trace replay, reports and leak checks of the
//! bitnet-memory pool.

use bitnet_mem::cmd;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "bitnet-mem",
    version,
    about = "bitnet-memory: demo, benchmarks, traces, reports, leak checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a BitNet b1.58 decoder on the memory manager and on plain `Vec`s, and prints
    /// the memory report.
    Demo(cmd::demo::Args),
    /// Runs bitnet-memory and its peers (glibc, mimalloc, jemalloc, a no-bookkeeping
    /// floor) on the same workloads and prints ratios.
    Bench(cmd::bench::Args),
    /// Replays an allocation trace through every allocator.
    Replay(cmd::replay::Args),
    /// Writes an offline HTML report (or Perfetto JSON) of a snapshot or a trace.
    Report(cmd::report::Args),
    /// Runs the seeded leak-detection suite and prints recall and false positives.
    Leakcheck(cmd::leakcheck::Args),
    /// (internal) Measures one allocator's resident memory in a fresh process.
    #[command(name = "__resident", hide = true)]
    Resident(cmd::resident::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Leakcheck(a) => cmd::leakcheck::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Resident(a) => cmd::resident::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bitnet-mem: {e}");
            ExitCode::FAILURE
        }
    }
}
