//! The automatic cleanup engine: memory comes back without anyone asking, and pressure is
//! met before it becomes a failure.
//!
//! - Immediate: dropping an `Allocation` returns its block at once.
//! - Requested (`mm.trim()`), trim-and-retry (before an allocation fails) and emergency
//!   (critical pressure, `mm.emergency_cleanup()`): this thread's cache flushed, other
//!   threads' caches flushed by them at their next free, empty slabs and chunks released,
//!   every dirty free page handed back.
//! - Three executors ([`executor`]): immediate (a large block freed under high pressure,
//!   within a deadline), batched (the worker, requested trims, the queue of pending
//!   work) and emergency (the budget, an out-of-memory, critical pressure), picked for
//!   each run by a selector from the trigger, the pressure level, the queue and the
//!   deadline. Every run is validated against the pools' ledgers ([`validate`]): a claim
//!   the ledgers do not bear out is a mismatch (event, counter, error for a waiting
//!   caller).
//! - The engine (`engine`) owns the logic of every run; the manager calls it and shows
//!   it the pools through a narrow view, never its internals.
//! - Decay ([`worker`]): a background thread hands back pages of free blocks idle for
//!   longer than the decay time and releases chunks that stayed empty that long.
//! - Pressure ([`pressure`]): levels from the budget and the memory the device has left;
//!   changes are events; `Critical` triggers emergency cleanup.
//! - Out-of-memory observers ([`OomInfo`]): callbacks that run before an allocation fails,
//!   after trim-and-retry did not help; the allocation is retried once after them.
#![deny(unsafe_code)]

pub(crate) mod engine;
pub mod executor;
pub mod optimizer;
pub mod pressure;
pub mod validate;
pub mod worker;

#[cfg(test)]
mod tests;

use crate::device::DeviceId;
use crate::error::MemoryError;
use crate::events::CleanupStrategy;
use crate::metrics::MetricsSnapshot;
use crate::pool::TrimReport;
pub use executor::ExecutorKind;
pub use pressure::{PressureLevel, PressureThresholds};
use std::time::Duration;
pub use validate::Validation;

/// Settings of the cleanup engine.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupConfig {
    /// Run the background worker. Default: `true`.
    pub background: bool,
    /// How often the worker wakes up. Default: 1 s.
    pub period: Duration,
    /// How long a free block or an empty chunk stays resident before the worker hands it
    /// back (in the spirit of jemalloc's decay and mimalloc's purge delay). Default: 5 s.
    pub decay: Duration,
    /// Pressure thresholds.
    pub pressure: PressureThresholds,
    /// External fragmentation (`0..=1`) of a pool's free large-pool memory past which the
    /// background consolidator compacts movable blocks. Default: 0.5.
    pub consolidate_above: f64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            background: true,
            period: Duration::from_secs(1),
            decay: Duration::from_secs(5),
            pressure: PressureThresholds::default(),
            consolidate_above: 0.5,
        }
    }
}

impl CleanupConfig {
    /// No background worker (cleanup only when asked, on pressure checks and before
    /// failing).
    pub fn manual() -> Self {
        Self {
            background: false,
            ..Self::default()
        }
    }
}

/// What one cleanup run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CleanupReport {
    /// Why it ran.
    pub strategy: CleanupStrategy,
    /// Cached blocks moved from this thread's cache back to the pool.
    pub cached_blocks_flushed: usize,
    /// Slabs and chunks released.
    pub blocks_released: usize,
    /// Bytes given back: released chunks plus free blocks whose pages were handed back.
    pub bytes_released: usize,
    /// How long it took.
    pub duration: Duration,
    /// Whether it did what it was for: no dirty free memory left (requested, emergency),
    /// none older than the decay time (decay), or the retried allocation succeeded
    /// (trim-and-retry); and in every case, that the validator found its claim true.
    pub success: bool,
    /// The executor the selector picked.
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
    /// What the validator found (see [`validate`]).
    #[serde(default)]
    pub validation: Option<Validation>,
}

impl CleanupReport {
    pub(crate) fn new(strategy: CleanupStrategy, t: TrimReport, duration: Duration) -> Self {
        Self {
            strategy,
            cached_blocks_flushed: t.cached_blocks_flushed,
            blocks_released: t.slabs_released + t.chunks_released,
            bytes_released: t.bytes_released + t.bytes_purged,
            duration,
            success: true,
            executor: None,
            validation: None,
        }
    }
}

/// Counters over all cleanup runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CleanupStats {
    /// Runs so far.
    pub runs: u64,
    /// Runs that succeeded.
    pub successes: u64,
    /// Total time of all runs, in nanoseconds.
    pub total_ns: u64,
    /// Bytes given back over all runs.
    pub bytes_released: u64,
    /// Pressure level changes seen.
    pub pressure_events: u64,
    /// The last run.
    pub last: Option<CleanupReport>,
    /// Runs whose claim the validator found false (see [`validate`]).
    #[serde(default)]
    pub mismatches: u64,
    /// Runs by executor: immediate, batched, emergency.
    #[serde(default)]
    pub by_executor: [u64; 3],
}

impl CleanupStats {
    pub(crate) fn record(&mut self, r: &CleanupReport) {
        self.runs += 1;
        self.successes += u64::from(r.success);
        self.total_ns += r.duration.as_nanos() as u64;
        self.bytes_released += r.bytes_released as u64;
        if r.validation.as_ref().is_some_and(|v| !v.ok) {
            self.mismatches += 1;
        }
        if let Some(k) = r.executor {
            self.by_executor[k as usize] += 1;
        }
        self.last = Some(r.clone());
    }

    /// Mean duration of a run (the seed's `average_cleanup_time`).
    pub fn average_cleanup_time(&self) -> Duration {
        Duration::from_nanos(self.total_ns.checked_div(self.runs).unwrap_or(0))
    }

    /// Share of runs that succeeded, `0..=1` (the seed's `cleanup_success_rate`); 1 when
    /// none ran.
    pub fn cleanup_success_rate(&self) -> f64 {
        if self.runs == 0 {
            1.0
        } else {
            self.successes as f64 / self.runs as f64
        }
    }
}

/// What an out-of-memory observer is told.
#[derive(Debug, Clone)]
pub struct OomInfo {
    /// The device that could not serve the request.
    pub device: DeviceId,
    /// Requested bytes.
    pub requested: usize,
    /// Requested alignment.
    pub align: usize,
    /// The error the allocation will fail with unless the retry succeeds.
    pub error: MemoryError,
    /// The manager's metrics at that moment.
    pub metrics: MetricsSnapshot,
}

/// An out-of-memory observer: runs before an allocation fails; may free memory through
/// the manager `M` it is given (raw blocks, caches it owns), after which the allocation is
/// retried once. The manager keeps them as `OomObserver<MemoryManager>`
/// ([`MemoryManager::on_out_of_memory`](crate::MemoryManager::on_out_of_memory)).
pub type OomObserver<M> = Box<dyn Fn(&M, &OomInfo) + Send + Sync>;
