//! The cleanup engine's logic: trimming runs, decay, the pressure response and dynamic
//! strategy selection. The manager owns one [`CleanupEngine`] and calls it; the engine
//! sees the manager only through a [`CleanupHost`] (a [`ManagerView`] and a compaction
//! hook), never its internals.
#![deny(unsafe_code)]

use super::{pressure, CleanupConfig, CleanupReport, CleanupStats, PressureLevel};
use crate::events::{CleanupStrategy, EventKind, MemoryEvent};
use crate::pool::adaptive::ThresholdChange;
use crate::pool::TrimReport;
use crate::snapshot::HistoryKind;
use crate::view::ManagerView;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Instant;

/// What the cleanup engine may read and call of the manager that owns it.
pub(crate) trait CleanupHost: Send + Sync {
    /// The pools, tracker, bus and history.
    fn view(&self) -> ManagerView<'_>;
    /// The engine itself (the worker reaches it through its host).
    fn engine(&self) -> &CleanupEngine;
    /// Compacts the movable blocks, if there are any (an emergency run does this first,
    /// so that the trim after it releases the chunks compaction emptied).
    fn compact_movable(&self);
}

/// The cleanup engine of one manager: its settings, its counters and the pressure level
/// of each device.
pub(crate) struct CleanupEngine {
    config: CleanupConfig,
    stats: Mutex<CleanupStats>,
    pressure: Vec<AtomicU8>,
}

impl CleanupEngine {
    /// An engine for `devices` devices, every one at `Low` pressure.
    pub(crate) fn new(config: CleanupConfig, devices: usize) -> Self {
        Self {
            config,
            stats: Mutex::new(CleanupStats::default()),
            pressure: (0..devices).map(|_| AtomicU8::new(0)).collect(),
        }
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

    /// A trim-and-retry run whose retried allocation still failed: it did not do what it
    /// was for.
    pub(crate) fn retry_failed(&self) {
        let mut s = self.stats.lock();
        s.successes = s.successes.saturating_sub(1);
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
        let v = host.view();
        v.bus.emit(EventKind::CleanupTriggered, || {
            MemoryEvent::CleanupTriggered { strategy }
        });
        if strategy == CleanupStrategy::Emergency {
            // A run of its own (event, statistics, the chunks it emptied); the trim below
            // then releases what else is free.
            host.compact_movable();
        }
        let t = Instant::now();
        let mut r = TrimReport::default();
        for d in v.devices {
            r += d.trim();
        }
        let mut report = CleanupReport::new(strategy, r, t.elapsed());
        if strategy != CleanupStrategy::TrimAndRetry {
            report.success = v.devices.iter().all(|d| d.dirty_free_bytes() == 0);
        }
        #[cfg(feature = "invariants")]
        for d in v.devices {
            // Validation in test builds: cleanup released nothing that is owned.
            d.check_invariants_racy();
        }
        self.record(&v, &report);
        Self::report_fragmentation(&v);
        (r, report)
    }

    /// A decay run: memory idle past the decay time; recorded (and reported) only when it
    /// released something.
    pub(crate) fn decay(&self, v: &ManagerView<'_>) -> Option<CleanupReport> {
        let t = Instant::now();
        let mut r = TrimReport::default();
        for d in v.devices {
            r += d.decay(self.config.decay.as_millis() as u64);
        }
        if r.slabs_released + r.chunks_released == 0 && r.bytes_purged == 0 {
            return None;
        }
        let report = CleanupReport::new(CleanupStrategy::Decay, r, t.elapsed());
        self.record(v, &report);
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
        self.decay(&host.view());
        self.check_pressure(host);
        Self::adapt(&host.view());
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
