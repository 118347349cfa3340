//! The `bitnet-mem` command-line tool, as a library so that its parts can be tested and
//! reused: benchmark workloads as deterministic operation streams ([`workload`]), the
//! allocators compared ([`contenders`]), the runners ([`run`]), the method (warm-up,
//! alternating repeats, medians: [`engine`]), resident memory from child processes
//! ([`resident`]), the page size as a condition ([`pages`]) and the report ([`report`]).
//! Each subcommand lives in [`cmd`].

pub mod cmd;
pub mod contenders;
pub mod engine;
pub mod leakcheck;
pub mod pages;
pub mod progress;
pub mod report;
pub mod resident;
pub mod run;
pub mod sections;
pub mod workload;
