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
    assert!(h.engine.decay(&h).is_none());
    assert_eq!(h.engine.stats().runs, 0);
}

/// A batched executor that does its work and then claims a megabyte more than it gave.
struct Boasting;

impl super::executor::CleanupExecutor for Boasting {
    fn kind(&self) -> super::ExecutorKind {
        super::ExecutorKind::Batched
    }
    fn execute(
        &self,
        host: &dyn CleanupHost,
        plan: &super::executor::Plan,
    ) -> crate::pool::TrimReport {
        let mut r = super::executor::Batched.execute(host, plan);
        r.bytes_released += 1 << 20;
        r
    }
}

#[test]
fn a_cleanup_that_claims_more_than_it_released_is_caught() {
    let mut h = Host::new(None);
    h.engine.set_executor(Box::new(Boasting));
    let sub = h
        .bus
        .subscribe(EventFilter::only(EventKind::CleanupMismatch), 4);
    churn(&h.devices[0], 3, 3 << 20);
    let (_, report) = h.engine.cleanup(&h, CleanupStrategy::Requested);
    assert_eq!(report.executor, Some(super::ExecutorKind::Batched));
    let v = report.validation.clone().expect("every run is validated");
    assert!(!v.ok, "the boast passed: {v:?}");
    assert_eq!(v.claimed_released, v.observed_released + (1 << 20));
    assert!(!report.success);
    let s = h.engine.stats();
    assert_eq!((s.runs, s.successes, s.mismatches), (1, 0, 1));
    assert_eq!(s.cleanup_success_rate(), 0.0);
    let events = sub.drain();
    assert!(
        matches!(&events[..], [MemoryEvent::CleanupMismatch { claimed, observed, .. }]
            if *claimed == *observed + (1 << 20)),
        "{events:?}"
    );
    // The waiting caller's error.
    let err = crate::manager::check_validation(report).expect_err("a mismatch");
    assert!(
        matches!(err, crate::MemoryError::CleanupMismatch { .. }),
        "{err}"
    );
}

#[test]
fn honest_runs_validate_and_feed_the_rates() {
    let h = Host::new(None);
    churn(&h.devices[0], 3, 3 << 20);
    let (_, report) = h.engine.cleanup(&h, CleanupStrategy::Requested);
    let v = report.validation.clone().expect("validated");
    assert!(v.ok, "{}", v.detail);
    assert!(v.observed_released > 0 && v.mapped_after < v.mapped_before);
    let s = h.engine.stats();
    assert_eq!((s.mismatches, s.by_executor), (0, [0, 1, 0]));
    assert_eq!(s.cleanup_success_rate(), 1.0);
    assert_eq!(s.average_cleanup_time(), report.duration);
}

#[test]
fn a_free_under_pressure_runs_the_immediate_executor_and_a_busy_one_queues() {
    let h = Host::new(Some(8 << 20));
    let pool = &h.devices[0];
    let live = pool.allocate(7_000_000, 64).expect("within the budget");
    let spare = pool.allocate(600_000, 64).expect("within the budget");
    // 0.95 of 8 MiB is critical; 0.85 high: live + spare is between.
    assert_eq!(h.engine.check_pressure(&h), vec![PressureLevel::High]);
    assert!(h.engine.under_pressure(0));
    pool.free(spare.0, spare.1, 600_000);
    h.engine.on_pressured_free(&h, 0);
    let s = h.engine.stats();
    assert_eq!(s.by_executor, [1, 0, 0], "one immediate run");
    assert_eq!(
        s.last.as_ref().map(|r| r.strategy),
        Some(CleanupStrategy::Pressure)
    );
    assert_eq!(s.mismatches, 0);
    // While a run is going, further drops wait in the queue; a queue of BATCH_MIN makes
    // the next run a batched one that drains it.
    h.engine.set_busy_for_test(true);
    for _ in 0..super::executor::BATCH_MIN {
        h.engine.on_pressured_free(&h, 0);
    }
    assert_eq!(h.engine.pending_work(), super::executor::BATCH_MIN);
    h.engine.set_busy_for_test(false);
    h.engine.on_pressured_free(&h, 0);
    assert_eq!(
        h.engine.stats().by_executor,
        [1, 1, 0],
        "the queue was batched"
    );
    assert_eq!(h.engine.pending_work(), 0, "a batched run drains the queue");
    assert_eq!(h.engine.stats().mismatches, 0);
    pool.free(live.0, live.1, 7_000_000);
}
