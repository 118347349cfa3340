//! The benchmark: workloads as deterministic operation streams ([`workload`]), the
//! allocators compared ([`contenders`]), the runners that time a stream through one of
//! them ([`run`]), the method (warm-up, alternating repeats, medians: [`engine`]), resident
//! memory from fresh child processes ([`resident`]), the page size as a condition
//! ([`pages`]), the results as a table and JSON ([`report`]), the sections `bench` adds
//! beside them ([`sections`]) and the progress bar ([`progress`]).
//!
//! Its commands are [`crate::cmd::bench`], [`crate::cmd::replay`] (a trace file as the
//! workload) and the hidden child [`crate::cmd::resident`]. The progress bar and the page
//! setting live here rather than at the crate root because only these commands use them.

pub mod contenders;
pub mod engine;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod pages;
pub mod progress;
pub mod report;
pub mod resident;
pub mod run;
pub mod sections;
pub mod workload;
