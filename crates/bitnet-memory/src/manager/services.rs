//! The manager's services: cleanup runs, pressure, metrics, events, tracking settings,
//! the history and snapshots. The cleanup logic itself lives in `crate::cleanup`.

use super::{MemoryManager, MAX_HISTORY};
use crate::cleanup::engine::CleanupEngine;
use crate::cleanup::{CleanupReport, OomInfo, PressureLevel};
use crate::error::{MemoryError, Result};
use crate::events::{CleanupStrategy, EventFilter, EventKind, MemoryEvent, Subscription};
use crate::metrics::MetricsSnapshot;
use crate::pool::adaptive::ThresholdChange;
use crate::pool::TrimReport;
use crate::snapshot::{DeviceSnapshot, MetricsSummary, Snapshot, SNAPSHOT_VERSION};
use crate::tracking::Tracker;
use std::collections::HashMap;

/// The report, or the validator's mismatch as an error.
pub(crate) fn check_validation(report: CleanupReport) -> Result<CleanupReport> {
    match &report.validation {
        Some(v) if !v.ok => Err(MemoryError::CleanupMismatch {
            strategy: format!("{:?}", report.strategy).to_lowercase(),
            claimed: v.claimed_released + v.claimed_purged,
            observed: v.observed_released + v.observed_purged,
            detail: v.detail.clone(),
        }),
        _ => Ok(report),
    }
}

impl MemoryManager {
    /// Gives back cached and free memory of every device: this thread's cached blocks,
    /// empty slabs and empty chunks. Memory owned by allocations is never touched.
    ///
    /// `bytes_released` counts the mapped bytes of the chunks given back,
    /// `reserved_released` the fall of reserved (committed) bytes (exact when no other
    /// thread allocates meanwhile).
    pub fn trim(&self) -> TrimReport {
        let reserved = || self.metrics().reserved_bytes();
        let before = reserved();
        let mut r = self
            .inner
            .cleanup
            .cleanup(&*self.inner, CleanupStrategy::Requested)
            .0;
        r.reserved_released = before.saturating_sub(reserved());
        r
    }

    /// [`trim`](Self::trim) for a caller that must know it worked: the run's report, or
    /// [`MemoryError::CleanupMismatch`] when the validator found that what the run claims
    /// it gave back is not what the pools' ledgers show (see
    /// [`cleanup::validate`](crate::cleanup::validate)).
    pub fn try_trim(&self) -> Result<CleanupReport> {
        let (_, report) = self
            .inner
            .cleanup
            .cleanup(&*self.inner, CleanupStrategy::Requested);
        check_validation(report)
    }

    /// Releases everything cached at once: this thread's cache (other threads flush
    /// theirs at their next free), empty slabs and chunks, every free page. What critical
    /// pressure runs.
    pub fn emergency_cleanup(&self) -> CleanupReport {
        self.inner
            .cleanup
            .cleanup(&*self.inner, CleanupStrategy::Emergency)
            .1
    }

    /// One decay run now, as the background worker does it: releases memory idle past the
    /// decay time. `None` when there was nothing to release.
    pub fn decay_now(&self) -> Option<CleanupReport> {
        self.inner.cleanup.decay(&*self.inner)
    }

    /// Computes the pressure level of every device now (the worker does it once per
    /// period), emitting changes; a device turning critical gets emergency cleanup.
    pub fn check_pressure(&self) -> Vec<PressureLevel> {
        self.inner.cleanup.check_pressure(&*self.inner)
    }

    /// Registers an out-of-memory observer: it runs when an allocation is about to fail
    /// after trim-and-retry did not help, with the sizes and a metrics snapshot; it may
    /// free memory (raw blocks, caches it owns), and the allocation is retried once after
    /// all observers ran. Observers must not allocate from this manager.
    pub fn on_out_of_memory(
        &self,
        observer: impl Fn(&MemoryManager, &OomInfo) + Send + Sync + 'static,
    ) {
        self.inner.oom_observers.write().push(Box::new(observer));
    }

    /// One evaluation of dynamic strategy selection now, as the background worker makes
    /// once per period: under `Strategy::Hybrid` the threshold between size classes and
    /// best fit may move (see [`pool::adaptive`](crate::pool::adaptive)); each change is
    /// returned and sent as `MemoryEvent::StrategyChanged`. Fixed strategies never change.
    pub fn adapt_strategy_now(&self) -> Vec<ThresholdChange> {
        CleanupEngine::adapt(&self.inner.view())
    }

    /// One evaluation of the pool optimizer now, as the background worker makes once per
    /// period: each pool's large-block strategy is switched when its measured figures say
    /// another does better (with hysteresis; see
    /// [`pool::adaptive::large`](crate::pool::adaptive::large)), and movable blocks are
    /// compacted where free memory is fragmented past `CleanupConfig::consolidate_above`.
    /// Each is returned and sent as `MemoryEvent::PoolOptimizationCompleted`.
    pub fn optimize_pools_now(&self) -> Vec<crate::cleanup::optimizer::PoolOptimization> {
        self.inner.cleanup.optimize(&*self.inner)
    }

    /// Wake-ups of the background worker so far (`None` without a worker).
    pub fn worker_ticks(&self) -> Option<u64> {
        self.inner.worker.lock().as_ref().map(|w| w.ticks())
    }

    /// Counters of every device, the tracking layer's estimates and costs, allocation
    /// latency percentiles.
    pub fn metrics(&self) -> MetricsSnapshot {
        let inner = &*self.inner;
        let mut m = MetricsSnapshot {
            devices: inner.devices.iter().map(|d| d.metrics()).collect(),
            tracking: inner.tracker.stats(),
            latency: inner.tracker.latency(),
            uptime_ns: inner.started.elapsed().as_nanos() as u64,
            events_dropped: inner.bus.dropped(),
            cleanup: inner.cleanup.stats(),
            pressure: inner.cleanup.pressure_levels(),
            resources: inner.resources.stats(),
            leak: inner.leak.scopes.stats(),
            seed: Default::default(),
        };
        m.seed = crate::seed_metrics::SeedMetrics::of(&m);
        m
    }

    /// Registers a resource the manager does not allocate but should account and clean
    /// (a mapped weights file, a staging buffer, another library's cache): it shows in
    /// `metrics()`, leak reports, snapshots and events, and an emergency cleanup runs the
    /// callbacks of the droppable ones, lowest priority first (see
    /// [`lifecycle`](crate::lifecycle)).
    ///
    /// ```
    /// use bitnet_memory::{lifecycle::Resource, MemoryConfig, MemoryManager};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let mm = MemoryManager::new(MemoryConfig::default())?;
    /// let cache = Arc::new(Mutex::new(vec![0u8; 1 << 20]));
    /// let c = cache.clone();
    /// let h = mm.register_resource(
    ///     Resource::new("tokenizer cache", 1 << 20)
    ///         .droppable(true)
    ///         .on_cleanup(move || c.lock().unwrap().clear()),
    /// );
    /// assert_eq!(mm.metrics().resources.bytes, 1 << 20);
    /// mm.emergency_cleanup();
    /// assert!(h.is_released() && cache.lock().unwrap().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn register_resource(
        &self,
        resource: crate::lifecycle::Resource,
    ) -> crate::lifecycle::ResourceHandle<'_> {
        let inner = &*self.inner;
        let id = inner
            .resources
            .register(&inner.bus, resource, std::panic::Location::caller());
        crate::lifecycle::ResourceHandle::new(&inner.resources, &inner.bus, id)
    }

    /// Every registered resource.
    pub fn resources(&self) -> Vec<crate::lifecycle::ResourceInfo> {
        self.inner.resources.list()
    }

    /// Subscribes to the events in `filter`. The queue holds `capacity` events; when it is
    /// full, new events for this subscriber are dropped (and counted), never waited for.
    /// Dropping the subscription unsubscribes.
    pub fn subscribe(&self, filter: EventFilter, capacity: usize) -> Subscription {
        self.inner.bus.subscribe(filter, capacity)
    }

    /// The tracking layer: its settings can be changed at run time
    /// (`mm.tracking().set_sample_rate(0.01)`).
    pub fn tracking(&self) -> &Tracker {
        &self.inner.tracker
    }

    /// Changes the sampling rate of small allocations at run time, and says so on the
    /// event bus.
    pub fn set_sample_rate(&self, rate: f64) {
        let old = self.inner.tracker.sample_rate();
        self.inner.tracker.set_sample_rate(rate);
        let new = self.inner.tracker.sample_rate();
        self.inner.bus.emit(EventKind::SamplingRateChanged, || {
            MemoryEvent::SamplingRateChanged {
                old,
                new,
                reason: "set by the user".to_string(),
            }
        });
    }

    /// Records the last `max_entries` allocations, frees, trims and pressure changes
    /// (with timestamps, live and reserved bytes) from now on, for
    /// [`snapshot`](Self::snapshot); `0` stops and forgets them. Off by default: it costs nothing
    /// then. On, every allocation and free takes the reporting path (a lock of the ring
    /// and a read of the pools' counters): use it to look, not in production loops.
    ///
    /// More than [`MAX_HISTORY`] entries is an [`MemoryError::InvalidConfig`].
    pub fn record_history(&self, max_entries: usize) -> Result<()> {
        if max_entries > MAX_HISTORY {
            return Err(MemoryError::InvalidConfig {
                field: "max_entries",
                reason: "record_history: at most 2^26 entries (about 6 GiB of history)",
            });
        }
        let inner = &*self.inner;
        let kinds =
            EventFilter::only(EventKind::AllocationCreated).with(EventKind::AllocationDropped);
        inner.history.set_capacity(max_entries);
        inner.bus.pin_interest(kinds, max_entries > 0);
        Ok(())
    }

    /// The state of every pool as data: per device and pool, each chunk (slab) with its
    /// blocks (offset, size, live or free, size class, and the allocation id and site of
    /// live blocks that were tracked or allocated while the history was on), the
    /// metrics, and the recorded history. Serialize it with `serde_json`; `bitnet-mem
    /// report` draws it; `docs/report.md` describes it.
    ///
    /// Each size class and the large pool are read under their own lock in turn: the
    /// picture is exact when no other thread allocates meanwhile, and consistent per part
    /// otherwise.
    ///
    /// ```
    /// use bitnet_memory::{MemoryConfig, MemoryManager};
    /// use std::alloc::Layout;
    ///
    /// let mm = MemoryManager::new(MemoryConfig::default())?;
    /// mm.record_history(10_000)?;
    /// let a = mm.try_allocate(Layout::from_size_align(3 << 20, 64)?)?;
    /// let snap = mm.snapshot();
    /// let json = serde_json::to_string(&snap)?;
    /// assert_eq!(snap.history.len(), 1);
    /// assert!(json.contains("\"live\":true"));
    /// # drop(a);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        let inner = &*self.inner;
        let t_ns = inner.view().now_ns();
        let metrics = self.metrics();
        let mut owners: HashMap<(u8, usize), (u64, Option<String>)> = inner
            .tracker
            .live()
            .into_iter()
            .map(|(slot, m)| {
                let key = (m.device, inner.tracker.addr(slot));
                (key, (u64::from(m.id), inner.tracker.site_name(m.site)))
            })
            .collect();
        // Allocations made while the history was on: the ids its entries use.
        for (key, (id, site)) in inner.history.owners() {
            owners.insert(key, (id, Some(site)));
        }
        let devices: Vec<DeviceSnapshot> = inner
            .devices
            .iter()
            .zip(&metrics.devices)
            .map(|(d, dm)| {
                let owner = |addr: usize| {
                    owners
                        .get(&(d.id.0, addr))
                        .map_or((None, None), |(id, site)| (Some(*id), site.clone()))
                };
                DeviceSnapshot {
                    device: u32::from(d.id.0),
                    backend: dm.backend.clone(),
                    metrics: MetricsSummary::from(dm),
                    pools: d.snapshot_pools(&owner),
                }
            })
            .collect();
        let (history, history_dropped) = inner.history.entries();
        Snapshot {
            version: SNAPSHOT_VERSION,
            t_ns,
            metrics: MetricsSummary::sum(devices.iter().map(|d| &d.metrics)),
            devices,
            history,
            history_dropped,
            metrics_detail: Some(metrics),
            resources: inner.resources.list(),
        }
    }

    /// Panics if an internal invariant of any pool does not hold. Call it when no other
    /// thread is using the manager (tests do, after every step).
    pub fn check_invariants(&self) {
        for d in &self.inner.devices {
            d.check_invariants();
        }
    }
}
