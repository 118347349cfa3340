//! The three cleanup executors and the selector that picks one for each run.
//!
//! - [`ExecutorKind::Immediate`]: a drop under pressure. Trims only the devices it was
//!   asked for, in order, and stops between devices once its deadline has passed.
//! - [`ExecutorKind::Batched`]: the background worker and requested trims. Takes the
//!   queue of pending work (devices whose drops under pressure found an immediate run
//!   already going) first, then every device: a full trim, or a decay pass when the run
//!   is a decay.
//! - [`ExecutorKind::Emergency`]: the budget or an out-of-memory, or critical pressure.
//!   Compacts movable blocks, releases the droppable registered resources, then trims
//!   every device; no deadline.
//!
//! The selector ([`select`]) reads the trigger, the highest pressure level, the length
//! of the pending queue and the deadline; every run then goes through the validator
//! (`validate`).
#![deny(unsafe_code)]

use super::engine::CleanupHost;
use super::PressureLevel;
use crate::events::CleanupStrategy;
use crate::pool::TrimReport;
use std::time::{Duration, Instant};

/// Pending drops under pressure from which a run is batched instead of immediate.
pub const BATCH_MIN: usize = 8;

/// The deadline of an immediate run (the seed's cleanup-time target).
pub const IMMEDIATE_DEADLINE: Duration = Duration::from_millis(1);

/// Which executor ran a cleanup.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ExecutorKind {
    /// The devices asked for, within a deadline.
    Immediate,
    /// The pending queue, then every device.
    Batched,
    /// Compaction, droppable resources, every device.
    Emergency,
}

impl ExecutorKind {
    /// Every kind, in order.
    pub const ALL: [ExecutorKind; 3] = [Self::Immediate, Self::Batched, Self::Emergency];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::Batched => "batched",
            Self::Emergency => "emergency",
        }
    }
}

/// What the selector reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectorInput {
    /// Why the cleanup runs.
    pub trigger: CleanupStrategy,
    /// The highest pressure level of any device.
    pub pressure: PressureLevel,
    /// Drops under pressure waiting in the queue.
    pub pending: usize,
    /// How long the caller can wait, if it waits (a drop under pressure does).
    pub deadline: Option<Duration>,
}

/// Picks the executor of a run.
///
/// - An emergency, a failed allocation (trim-and-retry: the budget or the device said
///   no) or critical pressure: emergency.
/// - A decay run, a requested trim (nobody waits on a deadline), or a queue of at least
///   [`BATCH_MIN`] pending drops: batched, one sweep for all of them.
/// - Otherwise (a drop under pressure with a deadline): immediate.
pub fn select(i: &SelectorInput) -> ExecutorKind {
    use CleanupStrategy as S;
    if matches!(i.trigger, S::Emergency | S::TrimAndRetry) || i.pressure == PressureLevel::Critical
    {
        return ExecutorKind::Emergency;
    }
    if i.pending >= BATCH_MIN || i.deadline.is_none() || matches!(i.trigger, S::Decay) {
        return ExecutorKind::Batched;
    }
    ExecutorKind::Immediate
}

/// What one run should do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Why it runs.
    pub trigger: CleanupStrategy,
    /// Device indices to clean, in order (an executor may add the others).
    pub devices: Vec<usize>,
    /// A decay pass: release only what has been idle this long (milliseconds).
    pub idle_ms: Option<u64>,
    /// When to stop (immediate runs).
    pub deadline: Option<Instant>,
}

/// One way of running a cleanup. The engine holds one of each kind.
pub(crate) trait CleanupExecutor: Send + Sync {
    /// Which kind this is.
    fn kind(&self) -> ExecutorKind;
    /// Runs the plan; returns what the pools said they gave back.
    fn execute(&self, host: &dyn CleanupHost, plan: &Plan) -> TrimReport;
}

/// Trims the planned devices until the deadline.
pub(crate) struct Immediate;

impl CleanupExecutor for Immediate {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Immediate
    }
    fn execute(&self, host: &dyn CleanupHost, plan: &Plan) -> TrimReport {
        let v = host.view();
        let mut r = TrimReport::default();
        for &d in &plan.devices {
            if plan.deadline.is_some_and(|t| Instant::now() >= t) {
                break;
            }
            if let Some(pool) = v.devices.get(d) {
                r += pool.trim();
            }
        }
        r
    }
}

/// The planned devices first, then every other one; a trim or a decay pass each.
pub(crate) struct Batched;

impl CleanupExecutor for Batched {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Batched
    }
    fn execute(&self, host: &dyn CleanupHost, plan: &Plan) -> TrimReport {
        let v = host.view();
        let mut order = plan.devices.clone();
        order.extend((0..v.devices.len()).filter(|d| !plan.devices.contains(d)));
        let mut r = TrimReport::default();
        for d in order {
            let Some(pool) = v.devices.get(d) else {
                continue;
            };
            r += match plan.idle_ms {
                Some(ms) => pool.decay(ms),
                None => pool.trim(),
            };
        }
        r
    }
}

/// Compaction, droppable resources, then a trim of every device.
pub(crate) struct Emergency;

impl CleanupExecutor for Emergency {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Emergency
    }
    fn execute(&self, host: &dyn CleanupHost, _plan: &Plan) -> TrimReport {
        // A run of its own (event, statistics, the chunks it emptied); the trim below
        // then releases what else is free.
        host.compact_movable();
        host.release_droppable();
        let mut r = TrimReport::default();
        for pool in host.view().devices {
            r += pool.trim();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CleanupStrategy as S;

    fn input(trigger: CleanupStrategy, pressure: PressureLevel) -> SelectorInput {
        SelectorInput {
            trigger,
            pressure,
            pending: 0,
            deadline: Some(IMMEDIATE_DEADLINE),
        }
    }

    #[test]
    fn the_selector_reads_trigger_pressure_queue_and_deadline() {
        use ExecutorKind::*;
        assert_eq!(select(&input(S::Pressure, PressureLevel::High)), Immediate);
        assert_eq!(
            select(&input(S::Pressure, PressureLevel::Critical)),
            Emergency
        );
        assert_eq!(
            select(&input(S::TrimAndRetry, PressureLevel::Low)),
            Emergency
        );
        assert_eq!(select(&input(S::Emergency, PressureLevel::Low)), Emergency);
        assert_eq!(select(&input(S::Decay, PressureLevel::Low)), Batched);
        let queued = SelectorInput {
            pending: BATCH_MIN,
            ..input(S::Pressure, PressureLevel::High)
        };
        assert_eq!(select(&queued), Batched);
        let one_short = SelectorInput {
            pending: BATCH_MIN - 1,
            ..queued
        };
        assert_eq!(select(&one_short), Immediate);
        let no_deadline = SelectorInput {
            deadline: None,
            ..input(S::Requested, PressureLevel::Medium)
        };
        assert_eq!(select(&no_deadline), Batched);
    }
}
