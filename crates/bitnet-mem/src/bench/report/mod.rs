//! Results: one [`Row`] per workload, allocator and thread count; a table for people and a
//! JSON document (`{"results": [...]}`, with room for sections beside `results`). (The
//! benchmark's own results; the HTML memory report is [`crate::cmd::report`].)
//!
//! Its parts, re-exported here: `table.rs` the main table, its notes and units;
//! `target.rs` the 1.10 target ours is held to and how a verdict reads; `ratio.rs` the
//! peak reserved / peak live section of `bench`; `trace.rs` the trace verdict of `replay`.

mod ratio;
mod table;
mod target;
mod trace;

pub use ratio::{ratio_rows, ratio_table, RatioRow, RATIO_WORKLOADS};
pub use table::{bytes, grid, notes, ns, refusals, render, table, REFUSED};
pub use target::{RATIO_PEERS, RATIO_TARGET};
pub use trace::{trace_verdict, TraceVerdict};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One allocator on one workload at one thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// Allocator name.
    pub allocator: String,
    /// Threads (each with its own stream; cross-thread: producer/consumer pairs).
    pub threads: usize,
    /// Alloc+free pairs of one run, all threads together.
    pub pairs: u64,
    /// Median over repeats of wall time / pairs.
    pub median_ns_per_pair: f64,
    /// Fastest repeat.
    pub min_ns_per_pair: f64,
    /// Slowest repeat.
    pub max_ns_per_pair: f64,
    /// Highest live requested bytes (sum over threads of each stream's peak).
    pub peak_live_bytes: u64,
    /// Growth of the resident high-water mark over one run in a fresh process.
    pub peak_reserved_bytes: u64,
    /// Timed repeats.
    pub repeats: usize,
    /// Pairs per second at the median.
    pub pairs_per_sec: f64,
    /// Timed operations (allocations and frees) of one run.
    pub events: u64,
    /// Median wall time / events.
    pub median_ns_per_event: f64,
    /// This allocator's median time over bitnet-memory's (> 1: we are faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_vs_bitnet_memory: Option<f64>,
    /// `peak_reserved_bytes / peak_live_bytes`.
    pub reserved_over_live: f64,
    /// Whether `peak_reserved_bytes` was measured (`--no-resident` turns it off).
    pub resident_measured: bool,
    /// bitnet-memory only: peak reserved bytes by its own metrics (pages under the blocks it
    /// handed out, less those handed back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_peak_reserved_bytes: Option<u64>,
    /// bitnet-memory only: peak live bytes by its own metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_peak_live_bytes: Option<u64>,
    /// Wall time / events of the resident-memory run: one cold run in a fresh process,
    /// where every page is faulted in (the timed repeats run warm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_ns_per_event: Option<f64>,
    /// Page faults of one timed (warm) run, all threads: the median over the repeats.
    /// A fault is a page the allocator hands out that the process did not have resident
    /// (first touched, or touched again after the allocator gave it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults_per_run: Option<u64>,
    /// Page faults of the cold run in a fresh process (the median over the children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_faults: Option<u64>,
    /// Why this allocator could not run the workload to its end (a request it refused, or
    /// one past this machine's memory); its figures are then zero and mean nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The JSON document: `results` plus any sections later tools add beside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The benchmark rows.
    pub results: Vec<Row>,
    /// Other top-level sections, by name.
    #[serde(flatten)]
    pub sections: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Adds (or replaces) a top-level section beside `results`.
    pub fn add_section(&mut self, name: &str, value: impl Serialize) -> serde_json::Result<()> {
        self.sections
            .insert(name.to_string(), serde_json::to_value(value)?);
        Ok(())
    }

    /// Writes the document, pretty-printed.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

#[cfg(test)]
mod tests;
