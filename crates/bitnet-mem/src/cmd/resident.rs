//! The hidden child subcommand: measures one allocator's resident growth on one workload
//! and prints it as one JSON line (see [`crate::bench::resident`]).

use super::CmdResult;
use crate::bench::contenders::Kind;
use crate::bench::engine::Spec;
use crate::bench::resident::measure_here;

/// Options of the child.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The workload spec, as JSON.
    #[arg(long)]
    pub spec: String,
    /// The allocator.
    #[arg(long, value_enum)]
    pub allocator: Kind,
}

/// Measures and prints.
pub fn run(args: Args) -> CmdResult {
    let spec: Spec = serde_json::from_str(&args.spec)?;
    let r = measure_here(&spec, args.allocator)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
