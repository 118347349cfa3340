//! The `bitnet-mem` command-line tool, as a library so that its parts can be tested and
//! reused:
//!
//! - [`cmd`]: one module per subcommand (`demo`, `bench`, `replay`, `report`,
//!   `leakcheck`, and the hidden resident-memory child); `leakcheck` is a folder, its
//!   seeded suite beside the command.
//! - [`bench`](mod@bench): the benchmark behind `bench` and `replay`: workloads as
//!   deterministic operation streams, the allocators compared, the runners, the method
//!   (warm-up, alternating repeats, medians), resident memory from child processes, the
//!   page size as a condition, and the results as a table and JSON.

pub mod bench;
pub mod cmd;

/// The benchmark modules that integration tests and outside tools name from the crate
/// root (`bitnet_mem::workload::from_trace`, ...), kept there when they moved into
/// [`bench`](mod@bench).
pub use bench::{contenders, run, workload};

/// The crate README's examples run as doctests (the file is inside the crate).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
