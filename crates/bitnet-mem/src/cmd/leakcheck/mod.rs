//! `bitnet-mem leakcheck`: the seeded leak-detection suite. The command's options and
//! printing are here, the suite itself in [`suite`]: it is this command's engine and
//! nothing else uses it (it measures the leak detectors, not allocators, so it shares
//! nothing with [`crate::bench`]), hence a folder beside the other commands rather than a
//! module at the crate root.

pub mod suite;

use super::{at_least_one, at_least_one_u64, CmdResult};
use std::path::PathBuf;
use suite::{run as run_suite, LeakcheckArgs};

/// Options of `bitnet-mem leakcheck`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seeds per leak kind and per tracking mode (each also gives one clean run); 1 or
    /// more.
    #[arg(long, default_value_t = 30, value_parser = at_least_one_u64)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Steps per run; 1 or more.
    #[arg(long, value_parser = at_least_one)]
    pub steps: Option<usize>,
    /// Writes `{"leakcheck": [...]}` to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the suite and prints the table.
pub fn run(a: Args) -> CmdResult {
    if a.first_seed.checked_add(a.seeds).is_none() {
        return Err(format!(
            "--first-seed {} with --seeds {} runs past the last seed ({}): lower one of them",
            a.first_seed,
            a.seeds,
            u64::MAX
        )
        .into());
    }
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
