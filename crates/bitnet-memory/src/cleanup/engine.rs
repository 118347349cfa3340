//! The cleanup engine's logic: trimming runs, decay, the pressure response and dynamic
//! strategy selection. The manager owns one [`CleanupEngine`] and calls it; the engine
//! sees the manager only through a [`CleanupHost`] (a [`ManagerView`] and a compaction
//! hook), never its internals.
#![deny(unsafe_code)]

use super::executor::{self, CleanupExecutor, ExecutorKind, Plan, SelectorInput};
use super::{pressure, validate, CleanupConfig, CleanupReport, CleanupStats, PressureLevel};
use crate::events::{CleanupStrategy, EventKind, MemoryEvent};
use crate::pool::adaptive::ThresholdChange;
use crate::pool::TrimReport;
use crate::snapshot::HistoryKind;
use crate::view::ManagerView;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicU8, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::time::{Duration, Instant};

/// Drops under pressure the queue keeps at most (more add nothing: a batched run cleans
/// every device anyway).
const MAX_PENDING: usize = 64;

/// What the cleanup engine may read and call of the manager that owns it.
pub(crate) trait CleanupHost: Send + Sync {
    /// The pools, tracker, bus and history.
    fn view(&self) -> ManagerView<'_>;
    /// The engine itself (the worker reaches it through its host).
    fn engine(&self) -> &CleanupEngine;
    /// Compacts the movable blocks, if there are any (an emergency run does this first,
    /// so that the trim after it releases the chunks compaction emptied).
    fn compact_movable(&self);
    /// Runs the cleanup callbacks of the droppable registered resources (an emergency
    /// run does this before its trim); returns the bytes they accounted for.
    fn release_droppable(&self) -> usize {
        0
    }
}

/// The cleanup engine of one manager: its settings, its counters, the pressure level
/// of each device, its executors and the queue of pending work.
pub(crate) struct CleanupEngine {
    config: CleanupConfig,
    stats: Mutex<CleanupStats>,
    pressure: Vec<AtomicU8>,
    /// Immediate, batched, emergency (in [`ExecutorKind::ALL`] order).
    executors: [Box<dyn CleanupExecutor>; 3],
    /// Devices whose drop under pressure found an immediate run already going.
    pending: Mutex<VecDeque<usize>>,
    /// An immediate run is going.
    busy: AtomicBool,
}

impl CleanupEngine {
    /// An engine for `devices` devices, every one at `Low` pressure.
    pub(crate) fn new(config: CleanupConfig, devices: usize) -> Self {
        Self {
            config,
            stats: Mutex::new(CleanupStats::default()),
            pressure: (0..devices).map(|_| AtomicU8::new(0)).collect(),
            executors: [
                Box::new(executor::Immediate),
                Box::new(executor::Batched),
                Box::new(executor::Emergency),
            ],
            pending: Mutex::new(VecDeque::new()),
            busy: AtomicBool::new(false),
        }
    }

    /// Replaces the executor of its kind (tests hold the validator against a lying one).
    #[cfg(test)]
    pub(crate) fn set_executor(&mut self, e: Box<dyn CleanupExecutor>) {
        let i = e.kind() as usize;
        self.executors[i] = e;
    }

    /// Marks an immediate run as going (or not), so tests can queue drops.
    #[cfg(test)]
    pub(crate) fn set_busy_for_test(&self, on: bool) {
        self.busy.store(on, Release);
    }

    /// The counters over all runs so far.
    pub(crate) fn stats(&self) -> CleanupStats {
        self.stats.lock().clone()
    }

    /// The last computed pressure level of every device.
    pub(crate) fn pressure_levels(&self) -> Vec<PressureLevel> {
        self.pressure
            .iter()
            .map(|p| PressureLevel::from_u8(p.load(Relaxed)))
            .collect()
    }

    /// Whether `device` was at high or critical pressure at the last check: one relaxed
    /// load, for the free path.
    #[inline]
    pub(crate) fn under_pressure(&self, device: u8) -> bool {
        self.pressure
            .get(device as usize)
            .is_some_and(|p| p.load(Relaxed) >= PressureLevel::High as u8)
    }

    /// Drops under pressure waiting for a batched run.
    pub(crate) fn pending_work(&self) -> usize {
        self.pending.lock().len()
    }

    /// A trim-and-retry run whose retried allocation still failed: it did not do what it
    /// was for.
    pub(crate) fn retry_failed(&self) {
        let mut s = self.stats.lock();
        s.successes = s.successes.saturating_sub(1);
    }

    /// A large block of `device` was freed while the device was under high pressure: an
    /// immediate run of that device, or, when one is already going, a place in the queue
    /// of pending work for the next run.
    pub(crate) fn on_pressured_free(&self, host: &dyn CleanupHost, device: u8) {
        if self.busy.swap(true, Acquire) {
            let mut q = self.pending.lock();
            if q.len() < MAX_PENDING {
                q.push_back(device as usize);
            }
            return;
        }
        self.run(
            host,
            CleanupStrategy::Pressure,
            vec![device as usize],
            Some(executor::IMMEDIATE_DEADLINE),
        );
        self.busy.store(false, Release);
    }

    /// One trimming cleanup run (requested, trim-and-retry or emergency) over every
    /// device: events, report, statistics.
    pub(crate) fn cleanup(
        &self,
        host: &dyn CleanupHost,
        strategy: CleanupStrategy,
    ) -> (TrimReport, CleanupReport) {
        debug_assert_ne!(
            strategy,
            CleanupStrategy::Decay,
            "decay runs through `decay`"
        );
        self.run(host, strategy, Vec::new(), None)
    }

    /// A run: the selector picks the executor from the trigger, the pressure, the queue
    /// and the deadline; the validator holds its claim against the pools' ledgers.
    pub(crate) fn run(
        &self,
        host: &dyn CleanupHost,
        strategy: CleanupStrategy,
        mut devices: Vec<usize>,
        deadline: Option<Duration>,
    ) -> (TrimReport, CleanupReport) {
        let v = host.view();
        let pressure = self
            .pressure_levels()
            .into_iter()
            .max()
            .unwrap_or(PressureLevel::Low);
        let kind = executor::select(&SelectorInput {
            trigger: strategy,
            pressure,
            pending: self.pending_work(),
            deadline,
        });
        if kind != ExecutorKind::Immediate {
            // This run covers the queue.
            let mut q = self.pending.lock();
            for d in q.drain(..) {
                if !devices.contains(&d) {
                    devices.push(d);
                }
            }
        }
        if strategy != CleanupStrategy::Decay {
            // A decay pass runs at every tick; it is announced only by its completion,
            // when it released something.
            v.bus.emit(EventKind::CleanupTriggered, || {
                MemoryEvent::CleanupTriggered { strategy }
            });
        }
        let t = Instant::now();
        let plan = Plan {
            trigger: strategy,
            devices,
            idle_ms: (strategy == CleanupStrategy::Decay)
                .then_some(self.config.decay.as_millis() as u64),
            deadline: deadline.map(|d| t + d),
        };
        let before = validate::sample(v.devices);
        let ex = &self.executors[kind as usize];
        let r = ex.execute(host, &plan);
        let after = validate::sample(v.devices);
        let mut report = CleanupReport::new(strategy, r, t.elapsed());
        report.executor = Some(ex.kind());
        let validation = validate::validate(&before, &after, &r);
        report.success = validation.ok;
        if matches!(
            strategy,
            CleanupStrategy::Requested | CleanupStrategy::Emergency
        ) {
            report.success &= v.devices.iter().all(|d| d.dirty_free_bytes() == 0);
        }
        if !validation.ok {
            v.bus.emit(EventKind::CleanupMismatch, || {
                MemoryEvent::CleanupMismatch {
                    strategy,
                    executor: kind.name().to_string(),
                    claimed: validation.claimed_released + validation.claimed_purged,
                    observed: validation.observed_released + validation.observed_purged,
                    detail: validation.detail.clone(),
                }
            });
        }
        report.validation = Some(validation.clone());
        #[cfg(feature = "invariants")]
        for d in v.devices {
            // Validation in test builds: cleanup released nothing that is owned.
            d.check_invariants_racy();
        }
        let released = r.slabs_released + r.chunks_released > 0 || r.bytes_purged > 0;
        if strategy != CleanupStrategy::Decay || released || !validation.ok {
            self.record(&v, &report);
        }
        if strategy != CleanupStrategy::Decay {
            Self::report_fragmentation(&v);
        }
        (r, report)
    }

    /// A decay run: memory idle past the decay time; recorded (and reported) only when it
    /// released something.
    pub(crate) fn decay(&self, host: &dyn CleanupHost) -> Option<CleanupReport> {
        let (r, report) = self.run(host, CleanupStrategy::Decay, Vec::new(), None);
        if r.slabs_released + r.chunks_released == 0 && r.bytes_purged == 0 {
            return None;
        }
        Some(report)
    }

    /// Counts a finished run, marks it in the history and announces it.
    pub(crate) fn record(&self, v: &ManagerView<'_>, report: &CleanupReport) {
        self.stats.lock().record(report);
        v.history_mark(
            HistoryKind::Trim,
            crate::device::DeviceId::CPU,
            report.bytes_released,
            || format!("{:?}", report.strategy).to_lowercase(),
        );
        v.bus.emit(EventKind::CleanupCompleted, || {
            MemoryEvent::CleanupCompleted {
                strategy: report.strategy,
                resources_cleaned: report.blocks_released,
                memory_reclaimed: report.bytes_released,
                duration_ns: report.duration.as_nanos() as u64,
            }
        });
    }

    fn report_fragmentation(v: &ManagerView<'_>) {
        if v.bus.wants(EventKind::FragmentationDetected) {
            for d in v.devices {
                let m = d.metrics();
                let f = m.external_fragmentation();
                if m.large.free_bytes > 0 && f > 0.5 {
                    v.bus.emit(EventKind::FragmentationDetected, || {
                        MemoryEvent::FragmentationDetected {
                            device: d.id,
                            fragmentation_level: f,
                        }
                    });
                }
            }
        }
    }

    /// What the background worker does at each wake-up: decay, a pressure check, dynamic
    /// strategy selection.
    pub(crate) fn background_tick(&self, host: &dyn CleanupHost) {
        self.decay(host);
        self.check_pressure(host);
        self.optimize(host);
        Self::adapt(&host.view());
    }

    /// One evaluation of the pool optimizer (strategy switches, consolidation).
    pub(crate) fn optimize(
        &self,
        host: &dyn CleanupHost,
    ) -> Vec<super::optimizer::PoolOptimization> {
        super::optimizer::optimize(host, self.config.consolidate_above)
    }

    /// Dynamic strategy selection on every device; each switch is an event.
    pub(crate) fn adapt(v: &ManagerView<'_>) -> Vec<ThresholdChange> {
        let mut out = Vec::new();
        for d in v.devices {
            if let Some((old, new, reason)) = d.adapt() {
                v.bus.emit(EventKind::StrategyChanged, || {
                    MemoryEvent::StrategyChanged {
                        device: d.id,
                        old_threshold: old,
                        new_threshold: new,
                        reason: reason.clone(),
                    }
                });
                out.push(ThresholdChange {
                    device: d.id,
                    old_threshold: old,
                    new_threshold: new,
                    reason,
                });
            }
        }
        out
    }

    /// Computes each device's pressure level; emits changes; runs emergency cleanup when
    /// a device becomes critical.
    pub(crate) fn check_pressure(&self, host: &dyn CleanupHost) -> Vec<PressureLevel> {
        let v = host.view();
        let th = self.config.pressure;
        let mut levels = Vec::with_capacity(v.devices.len());
        let mut critical = false;
        for (d, cell) in v.devices.iter().zip(&self.pressure) {
            let (mapped, budget, cap, avail) = d.pressure_inputs();
            let (usage, left) = pressure::usage(mapped, budget, cap, avail);
            let level = th.level(usage);
            let old = PressureLevel::from_u8(cell.swap(level as u8, Relaxed));
            if old != level {
                self.stats.lock().pressure_events += 1;
                v.history_mark(HistoryKind::Pressure, d.id, 0, || level.to_string());
                v.bus.emit(EventKind::MemoryPressureChanged, || {
                    MemoryEvent::MemoryPressureChanged {
                        device: d.id,
                        level: level.to_string(),
                        available_memory: left,
                    }
                });
                if level == PressureLevel::Critical {
                    critical = true;
                    v.bus.emit(EventKind::MemoryPressureCritical, || {
                        MemoryEvent::MemoryPressureCritical {
                            device: d.id,
                            action_required: "emergency cleanup".to_string(),
                        }
                    });
                }
            }
            levels.push(level);
        }
        if critical {
            self.cleanup(host, CleanupStrategy::Emergency);
        }
        levels
    }
}
