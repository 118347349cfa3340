//! `bitnet-mem leakcheck`: the seeded leak-detection suite.

use super::CmdResult;
use crate::leakcheck::{run as run_suite, LeakcheckArgs};
use std::path::PathBuf;

/// Options of `bitnet-mem leakcheck`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seeds per leak kind and per tracking mode (each also gives one clean run).
    #[arg(long, default_value_t = 30)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Steps per run.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Writes `{"leakcheck": [...]}` to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the suite and prints the table.
pub fn run(a: Args) -> CmdResult {
    let mut args = LeakcheckArgs {
        seeds: a.seeds,
        first_seed: a.first_seed,
        json: a.json,
        ..LeakcheckArgs::default()
    };
    if let Some(s) = a.steps {
        args.steps = s;
    }
    let report = run_suite(&args)?;
    print!("{report}");
    Ok(())
}
