//! `bitnet-mem`: benchmarks, trace replay (and, later, demo, report and leak checks) for
//! the bitnet-memory pool.

use bitnet_mem::cmd;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "bitnet-mem",
    version,
    about = "bitnet-memory: benchmarks and traces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs bitnet-memory and its peers (glibc, mimalloc, jemalloc, a no-bookkeeping
    /// floor) on the same workloads and prints ratios.
    Bench(cmd::bench::Args),
    /// Replays an allocation trace through every allocator.
    Replay(cmd::replay::Args),
    /// (internal) Measures one allocator's resident memory in a fresh process.
    #[command(name = "__resident", hide = true)]
    Resident(cmd::resident::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(a) => cmd::bench::run(a),
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
