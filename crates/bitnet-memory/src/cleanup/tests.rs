//! The cleanup engine on its own: a host made of one pool and the parts a view names, no
//! manager. What each run reports is held against what the pool holds before and after.

use super::engine::{CleanupEngine, CleanupHost};
use super::{CleanupConfig, PressureLevel};
use crate::device::{CpuBackend, DeviceId};
use crate::events::{CleanupStrategy, EventBus, EventFilter, EventKind, MemoryEvent};
use crate::history::History;
use crate::pool::hybrid::DevicePool;
use crate::pool::PoolConfig;
use crate::tracking::{Tracker, TrackingConfig};
use crate::view::ManagerView;
use crate::MemoryConfig;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

struct Host {
    devices: Vec<DevicePool>,
    tracker: Tracker,
    bus: EventBus,
    history: History,
    started: Instant,
    engine: CleanupEngine,
    compactions: AtomicUsize,
}

impl Host {
    fn new(budget: Option<usize>) -> Self {
        let pool: PoolConfig = MemoryConfig::default()
            .min_chunk(4 << 20)
            .pool_config(budget);
        Self {
            devices: vec![DevicePool::new(
                DeviceId::CPU,
                Box::new(CpuBackend::new()),
                &pool,
            )],
            tracker: Tracker::new(&TrackingConfig::default()),
            bus: EventBus::default(),
            history: History::default(),
            started: Instant::now(),
            engine: CleanupEngine::new(CleanupConfig::manual(), 1),
            compactions: AtomicUsize::new(0),
        }
    }
}

impl CleanupHost for Host {
    fn view(&self) -> ManagerView<'_> {
        ManagerView {
            devices: &self.devices,
            tracker: &self.tracker,
            bus: &self.bus,
            history: &self.history,
            started: self.started,
        }
    }
    fn engine(&self) -> &CleanupEngine {
        &self.engine
    }
    fn compact_movable(&self) {
        self.compactions.fetch_add(1, Relaxed);
    }
}

/// Large blocks allocated and freed on the pool: their chunks are free, not yet released.
fn churn(pool: &DevicePool, blocks: usize, size: usize) {
    let got: Vec<_> = (0..blocks)
        .map(|_| pool.allocate(size, 64).expect("the CPU gives"))
        .collect();
    for (addr, token) in got {
        pool.free(addr, token, size);
    }
}

#[test]
fn a_requested_trim_reports_what_the_pool_gave_back() {
    let h = Host::new(None);
    let pool = &h.devices[0];
    churn(pool, 6, 3 << 20);
    let mapped = pool.metrics().mapped_bytes;
    assert!(mapped >= 18 << 20, "the churn mapped chunks ({mapped} B)");
    let (trim, report) = h.engine.cleanup(&h, CleanupStrategy::Requested);
    let after = pool.metrics().mapped_bytes;
    assert_eq!(
        trim.bytes_released,
        mapped - after,
        "released = the fall in mapped bytes"
    );
    assert!(trim.chunks_released > 0);
    assert_eq!(
        report.bytes_released,
        trim.bytes_released + trim.bytes_purged
    );
    assert!(
        report.success,
        "nothing dirty is left after a requested trim"
    );
    let s = h.engine.stats();
    assert_eq!((s.runs, s.successes), (1, 1));
    assert_eq!(s.bytes_released, report.bytes_released as u64);
    assert_eq!(h.compactions.load(Relaxed), 0, "only emergencies compact");
}

#[test]
fn an_emergency_compacts_first_and_a_failed_retry_is_counted_as_a_failure() {
    let h = Host::new(None);
    churn(&h.devices[0], 2, 3 << 20);
    h.engine.cleanup(&h, CleanupStrategy::Emergency);
    assert_eq!(h.compactions.load(Relaxed), 1);
    h.engine.cleanup(&h, CleanupStrategy::TrimAndRetry);
    h.engine.retry_failed();
    let s = h.engine.stats();
    assert_eq!((s.runs, s.successes), (2, 1));
    assert!(s.cleanup_success_rate() < 1.0);
}

#[test]
fn critical_pressure_is_announced_once_and_answered_with_an_emergency() {
    let h = Host::new(Some(8 << 20));
    let sub = h
        .bus
        .subscribe(EventFilter::only(EventKind::MemoryPressureChanged), 16);
    let pool = &h.devices[0];
    // Most of the budget live: usage over the critical threshold (0.95 of 8 MiB).
    let live = pool.allocate(7_900_000, 64).expect("within the budget");
    assert_eq!(h.engine.check_pressure(&h), vec![PressureLevel::Critical]);
    assert_eq!(
        h.compactions.load(Relaxed),
        1,
        "critical runs an emergency cleanup"
    );
    assert_eq!(h.engine.pressure_levels(), vec![PressureLevel::Critical]);
    // A second check at the same level is no change: no event, no second emergency.
    h.engine.check_pressure(&h);
    assert_eq!(h.compactions.load(Relaxed), 1);
    assert_eq!(h.engine.stats().pressure_events, 1);
    let events: Vec<MemoryEvent> = sub.drain();
    assert_eq!(events.len(), 1, "{events:?}");
    pool.free(live.0, live.1, 7_900_000);
    h.engine.cleanup(&h, CleanupStrategy::Requested);
    assert_eq!(h.engine.check_pressure(&h), vec![PressureLevel::Low]);
    assert_eq!(h.engine.stats().pressure_events, 2);
}

#[test]
fn decay_reports_nothing_when_nothing_was_idle_long_enough() {
    let h = Host::new(None);
    churn(&h.devices[0], 2, 3 << 20);
    // The manual config's decay time is 5 s: nothing freed just now is that old.
    assert!(h.engine.decay(&h.view()).is_none());
    assert_eq!(h.engine.stats().runs, 0);
}
