//! [`MemoryManager`]: the one handle users hold.

use crate::allocation::Allocation;
use crate::cleanup::worker::Worker;
use crate::cleanup::{pressure, CleanupReport, CleanupStats, OomInfo, OomObserver, PressureLevel};
use crate::config::{MemoryConfig, MAX_ALIGN};
use crate::device::{CpuBackend, DeviceBackend, DeviceId};
use crate::error::{MemoryError, Result};
use crate::events::{CleanupStrategy, EventBus, EventFilter, EventKind, MemoryEvent, Subscription};
use crate::history::{BlockEvent, History};
use crate::metrics::MetricsSnapshot;
use crate::pool::adaptive::ThresholdChange;
use crate::pool::hybrid::{DevicePool, SMALL};
use crate::pool::large::GrowError;
use crate::pool::TrimReport;
use crate::snapshot::{DeviceSnapshot, HistoryKind, MetricsSummary, Snapshot, SNAPSHOT_VERSION};
use crate::tracking::{Decision, Tracker};
use parking_lot::{Mutex, RwLock};
use std::alloc::Layout;
use std::collections::HashMap;
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Most entries [`MemoryManager::record_history`] keeps: 2^26.
pub const MAX_HISTORY: usize = 1 << 26;

/// The memory manager: device pools, their configuration and counters.
///
/// Cheap to clone (an `Arc` inside); every manager is independent of every other (no
/// global state), so tests may make as many as they like, in parallel.
///
/// ```
/// use bitnet_memory::{MemoryConfig, MemoryManager};
/// use std::alloc::Layout;
///
/// let mm = MemoryManager::new(MemoryConfig::default())?;
/// let mut a = mm.try_allocate(Layout::from_size_align(4096, 64)?)?;
/// a.as_mut_slice().fill(7);
/// assert_eq!(mm.metrics().live_bytes(), 4096);
/// drop(a); // back to the pool
/// assert_eq!(mm.metrics().live_bytes(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MemoryManager {
    inner: Arc<Inner>,
}

/// The shared state behind every handle and allocation.
pub(crate) struct Inner {
    config: MemoryConfig,
    pub(crate) devices: Vec<DevicePool>,
    pub(crate) tracker: Tracker,
    pub(crate) bus: EventBus,
    started: Instant,
    /// Blocks handed out through the raw API: address -> (token, size, device, slot).
    raw: Mutex<HashMap<usize, (u64, usize, DeviceId, u32)>>,
    /// Movable blocks, for compaction.
    pub(crate) movable: crate::movable::Registry,
    pub(crate) cleanup_stats: Mutex<CleanupStats>,
    pressure: Vec<AtomicU8>,
    oom_observers: RwLock<Vec<OomObserver>>,
    worker: Mutex<Option<Worker>>,
    /// Leak detection: scopes, links, persisted blocks, detectors.
    pub(crate) leak: crate::leak::LeakState,
    /// The allocation history (`record_history`), off by default.
    pub(crate) history: History,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.get_mut().take() {
            w.stop();
        }
        self.report_at_shutdown();
    }
}

impl Inner {
    /// Frees a block: forgets its tracking record, tells subscribers, returns it to its
    /// pool.
    #[inline]
    pub(crate) fn free(&self, device: u8, addr: usize, token: u64, size: usize, slot: u32) {
        if slot != 0 || self.bus.wants(EventKind::AllocationDropped) {
            return self.free_noted(device, addr, token, size, slot);
        }
        self.devices[device as usize].free(addr, token, size);
    }

    /// A free that someone hears of: the tracking record, subscribers, the history.
    #[cold]
    fn free_noted(&self, device: u8, addr: usize, token: u64, size: usize, slot: u32) {
        let id = if slot != 0 {
            self.tracker.forget(slot).id
        } else {
            0
        };
        self.bus.emit(EventKind::AllocationDropped, || {
            MemoryEvent::AllocationDropped {
                id,
                addr,
                size,
                device: DeviceId(device),
            }
        });
        self.devices[device as usize].free(addr, token, size);
        if self.history.is_on() {
            let e = self.block_event(DeviceId(device), addr, token, size, id);
            self.history.free(e);
        }
    }

    /// Nanoseconds since the manager was made: the clock of snapshots and the history.
    pub(crate) fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Live and committed bytes over every device, now.
    fn live_and_reserved(&self) -> (usize, usize) {
        self.devices.iter().fold((0, 0), |(l, r), d| {
            (l + d.live_now(), r + d.committed_now())
        })
    }

    /// What the history records of an allocation or free just done.
    fn block_event(
        &self,
        device: DeviceId,
        addr: usize,
        token: u64,
        size: usize,
        id: u32,
    ) -> BlockEvent {
        let (live, reserved) = self.live_and_reserved();
        BlockEvent {
            t_ns: self.now_ns(),
            device,
            addr,
            size,
            pool: if token & SMALL != 0 { "small" } else { "large" },
            tracked_id: (id != 0).then_some(id),
            live,
            reserved,
        }
    }

    /// Adds a trim or pressure entry to the history, if it is on.
    fn history_mark(
        &self,
        kind: HistoryKind,
        device: DeviceId,
        size: usize,
        detail: impl FnOnce() -> String,
    ) {
        if self.history.is_on() {
            let (live, reserved) = self.live_and_reserved();
            self.history
                .mark(self.now_ns(), kind, device, size, live, reserved, detail());
        }
    }

    /// One trimming cleanup run (requested, trim-and-retry or emergency) over every
    /// device: events, report, statistics.
    pub(crate) fn cleanup(&self, strategy: CleanupStrategy) -> (TrimReport, CleanupReport) {
        debug_assert_ne!(
            strategy,
            CleanupStrategy::Decay,
            "decay runs through `decay`"
        );
        self.bus.emit(EventKind::CleanupTriggered, || {
            MemoryEvent::CleanupTriggered { strategy }
        });
        if strategy == CleanupStrategy::Emergency && !self.movable.is_empty() {
            // A run of its own (event, statistics, the chunks it emptied); the trim below
            // then releases what else is free.
            self.compact();
        }
        let t = Instant::now();
        let mut r = TrimReport::default();
        for d in &self.devices {
            r += d.trim();
        }
        let mut report = CleanupReport::new(strategy, r, t.elapsed());
        if strategy != CleanupStrategy::TrimAndRetry {
            report.success = self.devices.iter().all(|d| d.dirty_free_bytes() == 0);
        }
        #[cfg(feature = "invariants")]
        for d in &self.devices {
            // Validation in test builds: cleanup released nothing that is owned.
            d.check_invariants_racy();
        }
        self.record_cleanup(&report);
        self.report_fragmentation();
        (r, report)
    }

    /// A decay run: memory idle past the decay time; recorded (and reported) only when it
    /// released something.
    pub(crate) fn decay(&self) -> Option<CleanupReport> {
        let t = Instant::now();
        let mut r = TrimReport::default();
        for d in &self.devices {
            r += d.decay(self.config.cleanup.decay.as_millis() as u64);
        }
        if r.slabs_released + r.chunks_released == 0 && r.bytes_purged == 0 {
            return None;
        }
        let report = CleanupReport::new(CleanupStrategy::Decay, r, t.elapsed());
        self.record_cleanup(&report);
        Some(report)
    }

    pub(crate) fn record_cleanup(&self, report: &CleanupReport) {
        self.cleanup_stats.lock().record(report);
        self.history_mark(
            HistoryKind::Trim,
            DeviceId::CPU,
            report.bytes_released,
            || format!("{:?}", report.strategy).to_lowercase(),
        );
        self.bus.emit(EventKind::CleanupCompleted, || {
            MemoryEvent::CleanupCompleted {
                strategy: report.strategy,
                resources_cleaned: report.blocks_released,
                memory_reclaimed: report.bytes_released,
                duration_ns: report.duration.as_nanos() as u64,
            }
        });
    }

    fn report_fragmentation(&self) {
        if self.bus.wants(EventKind::FragmentationDetected) {
            for d in &self.devices {
                let m = d.metrics();
                let f = m.external_fragmentation();
                if m.large.free_bytes > 0 && f > 0.5 {
                    self.bus.emit(EventKind::FragmentationDetected, || {
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
    pub(crate) fn background_tick(&self) {
        self.decay();
        self.check_pressure();
        self.adapt();
    }

    /// Dynamic strategy selection on every device; each switch is an event.
    pub(crate) fn adapt(&self) -> Vec<ThresholdChange> {
        let mut out = Vec::new();
        for d in &self.devices {
            if let Some((old, new, reason)) = d.adapt() {
                self.bus.emit(EventKind::StrategyChanged, || {
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
    pub(crate) fn check_pressure(&self) -> Vec<PressureLevel> {
        let th = self.config.cleanup.pressure;
        let mut levels = Vec::with_capacity(self.devices.len());
        let mut critical = false;
        for (d, cell) in self.devices.iter().zip(&self.pressure) {
            let (mapped, budget, cap, avail) = d.pressure_inputs();
            let (usage, left) = pressure::usage(mapped, budget, cap, avail);
            let level = th.level(usage);
            let old = PressureLevel::from_u8(cell.swap(level as u8, Relaxed));
            if old != level {
                self.cleanup_stats.lock().pressure_events += 1;
                self.history_mark(HistoryKind::Pressure, d.id, 0, || level.to_string());
                self.bus.emit(EventKind::MemoryPressureChanged, || {
                    MemoryEvent::MemoryPressureChanged {
                        device: d.id,
                        level: level.to_string(),
                        available_memory: left,
                    }
                });
                if level == PressureLevel::Critical {
                    critical = true;
                    self.bus.emit(EventKind::MemoryPressureCritical, || {
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
            self.cleanup(CleanupStrategy::Emergency);
        }
        levels
    }
}

/// A block from [`MemoryManager::allocate_raw`]: no owner, freed only by
/// [`MemoryManager::free_raw`], which detects double and foreign frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBlock {
    /// First byte.
    pub ptr: NonNull<u8>,
    /// Size in bytes.
    pub size: usize,
    /// Device of the block.
    pub device: DeviceId,
}

// SAFETY: a `RawBlock` is a plain description (address and size); it grants no access by
// itself: dereferencing `ptr` is the caller's unsafe business.
unsafe impl Send for RawBlock {}
// SAFETY: as above.
unsafe impl Sync for RawBlock {}

/// Builds a manager with more than the CPU device, or with a backend of your own.
pub struct ManagerBuilder {
    config: MemoryConfig,
    devices: Vec<(Box<dyn DeviceBackend>, Option<usize>)>,
}

impl ManagerBuilder {
    /// Adds a device with its own budget (bytes); devices are numbered in order from 0.
    pub fn device(mut self, backend: impl DeviceBackend, budget: Option<usize>) -> Self {
        self.devices.push((Box::new(backend), budget));
        self
    }

    /// Builds the manager. Without any `device` call, device 0 is the CPU with the
    /// config's budget.
    pub fn build(mut self) -> Result<MemoryManager> {
        self.config.validate()?;
        if self.devices.is_empty() {
            self.devices
                .push((Box::new(CpuBackend::new()), self.config.budget));
        }
        if self.devices.len() > 255 {
            return Err(MemoryError::InvalidConfig {
                field: "devices",
                reason: "devices: at most 255",
            });
        }
        let devices: Vec<DevicePool> = self
            .devices
            .into_iter()
            .enumerate()
            .map(|(i, (b, budget))| DevicePool::new(DeviceId(i as u8), b, &self.config, budget))
            .collect();
        let ndev = devices.len();
        let inner = Arc::new(Inner {
            tracker: Tracker::new(&self.config.tracking),
            leak: crate::leak::LeakState::new(&self.config.leak),
            config: self.config,
            devices,
            bus: EventBus::default(),
            started: Instant::now(),
            raw: Mutex::new(HashMap::new()),
            movable: crate::movable::Registry::default(),
            cleanup_stats: Mutex::new(CleanupStats::default()),
            pressure: (0..ndev).map(|_| AtomicU8::new(0)).collect(),
            oom_observers: RwLock::new(Vec::new()),
            worker: Mutex::new(None),
            history: History::default(),
        });
        if inner.config.cleanup.background {
            let w = Worker::spawn(Arc::downgrade(&inner), inner.config.cleanup.period).map_err(
                |_| MemoryError::InvalidConfig {
                    field: "cleanup.background",
                    reason: "cleanup.background: the worker thread could not be started",
                },
            )?;
            *inner.worker.lock() = Some(w);
        }
        Ok(MemoryManager { inner })
    }
}

pub(crate) fn check_layout(size: usize, align: usize) -> Result<()> {
    let bad = |reason| {
        Err(MemoryError::InvalidLayout {
            size,
            align,
            reason,
        })
    };
    if !align.is_power_of_two() {
        return bad("alignment is not a power of two");
    }
    if align > MAX_ALIGN {
        return bad("alignment over 1 GiB");
    }
    if size > isize::MAX as usize - (align - 1) {
        return bad("size over isize::MAX once rounded up to the alignment");
    }
    Ok(())
}

impl MemoryManager {
    /// A manager with the CPU as device 0.
    pub fn new(config: MemoryConfig) -> Result<Self> {
        Self::builder(config).build()
    }

    /// A manager whose device 0 is `backend` (with the config's budget).
    pub fn with_backend(config: MemoryConfig, backend: impl DeviceBackend) -> Result<Self> {
        let budget = config.budget;
        Self::builder(config).device(backend, budget).build()
    }

    /// A builder for several devices.
    pub fn builder(config: MemoryConfig) -> ManagerBuilder {
        ManagerBuilder {
            config,
            devices: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MemoryConfig {
        &self.inner.config
    }

    /// The devices of this manager.
    pub fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.inner.devices.iter().map(|d| d.id)
    }

    fn pool(&self, device: DeviceId) -> Result<&DevicePool> {
        self.inner
            .devices
            .get(device.0 as usize)
            .ok_or(MemoryError::UnknownDevice(device))
    }

    /// Allocates on the CPU (device 0).
    ///
    /// A zero-sized layout gives a zero-sized allocation: a dangling pointer aligned to
    /// the layout, no memory, nothing to free (as `Vec` does).
    ///
    /// # Panics
    /// When the allocation fails; [`try_allocate`](Self::try_allocate) returns the error.
    #[track_caller]
    pub fn allocate(&self, layout: Layout) -> Allocation<'_> {
        self.try_allocate(layout)
            .unwrap_or_else(|e| panic!("allocation failed: {e}"))
    }

    /// Allocates zero-filled memory on the CPU.
    ///
    /// # Panics
    /// When the allocation fails.
    #[track_caller]
    pub fn allocate_zeroed(&self, layout: Layout) -> Allocation<'_> {
        self.try_allocate_zeroed(layout)
            .unwrap_or_else(|e| panic!("allocation failed: {e}"))
    }

    /// Allocates on the CPU.
    #[inline]
    #[track_caller]
    pub fn try_allocate(&self, layout: Layout) -> Result<Allocation<'_>> {
        self.try_allocate_on(DeviceId::CPU, layout)
    }

    /// Allocates zero-filled memory on the CPU.
    #[track_caller]
    pub fn try_allocate_zeroed(&self, layout: Layout) -> Result<Allocation<'_>> {
        self.try_allocate_zeroed_on(DeviceId::CPU, layout)
    }

    /// Allocates on `device`.
    #[inline]
    #[track_caller]
    pub fn try_allocate_on(&self, device: DeviceId, layout: Layout) -> Result<Allocation<'_>> {
        let inner = &*self.inner;
        let pool = self.pool(device)?;
        let (size, align) = (layout.size(), layout.align());
        let decision = inner.tracker.decide(size);
        if size != 0 && decision == Decision::Skip && !inner.bus.wants(EventKind::AllocationCreated)
        {
            if let Some((addr, token)) = pool.allocate_cached(size, align) {
                return Ok(Allocation::new(addr, size, token, 0, device, inner));
            }
        }
        self.allocate_slow(pool, size, align, decision, Location::caller())
    }

    /// Everything but the hot path: zero sizes, refills, large blocks, tracking, events,
    /// trim-and-retry, errors.
    #[cold]
    fn allocate_slow<'m>(
        &'m self,
        pool: &'m DevicePool,
        size: usize,
        align: usize,
        decision: Decision,
        site: &'static Location<'static>,
    ) -> Result<Allocation<'m>> {
        let inner = &*self.inner;
        if size == 0 {
            return Ok(Allocation::zero_sized(align, pool.id, inner));
        }
        check_layout(size, align)?;
        let timed = matches!(decision, Decision::Track { time: true, .. });
        let t0 = timed.then(Instant::now);
        let served = match pool.allocate_cached(size, align) {
            Some(r) => r,
            None => self.serve(pool, size, align, || pool.allocate_once(size, align))?,
        };
        self.finish_allocation(pool, served, size, decision, site, t0)
    }

    /// Serves a request with `alloc`; when it fails, trims and retries once, then asks the
    /// out-of-memory observers and retries once more. A request that still fails is
    /// counted, marked in the history and sent as an event; the error says why.
    pub(crate) fn serve(
        &self,
        pool: &DevicePool,
        size: usize,
        align: usize,
        alloc: impl Fn() -> std::result::Result<(usize, u64), GrowError>,
    ) -> Result<(usize, u64)> {
        let inner = &*self.inner;
        if let Ok(r) = alloc() {
            return Ok(r);
        }
        inner.cleanup(CleanupStrategy::TrimAndRetry);
        let err = match alloc() {
            Ok(r) => return Ok(r),
            Err(e) => pool.grow_error(e, size),
        };
        if self.ask_oom_observers(pool, size, align, &err) {
            if let Ok(r) = alloc() {
                return Ok(r);
            }
        }
        // The trim-and-retry run did not succeed.
        inner.cleanup_stats.lock().successes -= 1;
        inner.history_mark(HistoryKind::Pressure, pool.id, size, || {
            format!("allocation failed: {err}")
        });
        inner.bus.emit(EventKind::AllocationFailed, || {
            MemoryEvent::AllocationFailed {
                size,
                device: pool.id,
                error: err.to_string(),
            }
        });
        Err(err)
    }

    /// Runs the out-of-memory observers; `false` when there are none (nothing to retry).
    fn ask_oom_observers(
        &self,
        pool: &DevicePool,
        size: usize,
        align: usize,
        err: &MemoryError,
    ) -> bool {
        let observers = self.inner.oom_observers.read();
        if observers.is_empty() {
            return false;
        }
        let info = OomInfo {
            device: pool.id,
            requested: size,
            align,
            error: err.clone(),
            metrics: self.metrics(),
        };
        for o in observers.iter() {
            o(self, &info);
        }
        true
    }

    /// Tracking, timing and events of a served request.
    fn finish_allocation<'m>(
        &'m self,
        pool: &'m DevicePool,
        (addr, token): (usize, u64),
        size: usize,
        decision: Decision,
        site: &'static Location<'static>,
        t0: Option<Instant>,
    ) -> Result<Allocation<'m>> {
        let slot = self.record_allocation(pool.id, (addr, token), size, decision, site, t0);
        Ok(Allocation::new(
            addr,
            size,
            token,
            slot,
            pool.id,
            &self.inner,
        ))
    }

    /// The tracking record (timed when `t0` is given), then the announcement to leak
    /// scopes, subscribers and the history, of a block just served; returns its tracking
    /// slot (0: untracked).
    pub(crate) fn record_allocation(
        &self,
        device: DeviceId,
        (addr, token): (usize, u64),
        size: usize,
        decision: Decision,
        site: &'static Location<'static>,
        t0: Option<Instant>,
    ) -> u32 {
        let inner = &*self.inner;
        let slot = match decision {
            Decision::Skip => 0,
            Decision::Track { weight, .. } => {
                let t1 = t0.map(|_| Instant::now());
                let slot = inner.tracker.record(addr, size, device.0, weight, site);
                if let (Some(t0), Some(t1)) = (t0, t1) {
                    let alloc_ns = (t1 - t0).as_nanos() as u64;
                    let track_ns = t1.elapsed().as_nanos() as u64;
                    if inner.tracker.note_timing(alloc_ns, track_ns) {
                        self.check_tracking_overhead();
                    }
                }
                slot
            }
        };
        if slot != 0 {
            inner.note_tracked_alloc(slot, device, token);
        }
        let id = || {
            if slot != 0 {
                inner.tracker.read(slot).map_or(0, |m| m.id)
            } else {
                0
            }
        };
        inner.bus.emit(EventKind::AllocationCreated, || {
            MemoryEvent::AllocationCreated {
                id: id(),
                addr,
                size,
                device,
            }
        });
        if inner.history.is_on() {
            let e = inner.block_event(device, addr, token, size, id());
            inner.history.alloc(e, site);
        }
        slot
    }

    fn check_tracking_overhead(&self) {
        if let Some((old, new, overhead)) = self.inner.tracker.enforce_overhead_limit() {
            self.inner.bus.emit(EventKind::SamplingRateChanged, || {
                MemoryEvent::SamplingRateChanged {
                    old,
                    new,
                    reason: format!("tracking took {overhead:.2}% of allocation time"),
                }
            });
        }
    }

    /// Allocates zero-filled memory on `device` (host-visible devices only).
    #[track_caller]
    pub fn try_allocate_zeroed_on(
        &self,
        device: DeviceId,
        layout: Layout,
    ) -> Result<Allocation<'_>> {
        let mut a = self.try_allocate_on(device, layout)?;
        if let Some(s) = a.try_as_mut_slice() {
            s.fill(0);
        }
        Ok(a)
    }

    /// Allocates from a size and an alignment that may be invalid: the error says why
    /// (not a power of two, over 1 GiB, size over `isize::MAX`).
    #[track_caller]
    pub fn try_allocate_bytes(&self, size: usize, align: usize) -> Result<Allocation<'_>> {
        check_layout(size, align)?;
        let layout =
            Layout::from_size_align(size, align).map_err(|_| MemoryError::InvalidLayout {
                size,
                align,
                reason: "rejected by Layout",
            })?;
        self.try_allocate(layout)
    }

    /// Allocates a block without an owner: it stays allocated until
    /// [`free_raw`](Self::free_raw). For code that manages lifetimes itself (FFI, arenas).
    #[track_caller]
    pub fn allocate_raw(&self, device: DeviceId, layout: Layout) -> Result<RawBlock> {
        if layout.size() == 0 {
            return Err(MemoryError::InvalidLayout {
                size: 0,
                align: layout.align(),
                reason: "raw blocks must have a size",
            });
        }
        let a = self.try_allocate_on(device, layout)?;
        let (addr, size, token, slot) = a.into_parts();
        self.inner
            .raw
            .lock()
            .insert(addr, (token, size, device, slot));
        Ok(RawBlock {
            ptr: NonNull::new(std::ptr::with_exposed_provenance_mut(addr)).expect("non-null"),
            size,
            device,
        })
    }

    /// Frees a raw block. A second free of the same block, or a block this manager did not
    /// hand out (or a wrong size), is refused with [`MemoryError::InvalidFree`] and changes
    /// nothing.
    pub fn free_raw(&self, block: RawBlock) -> Result<()> {
        let addr = block.ptr.as_ptr().addr();
        let mut raw = self.inner.raw.lock();
        let invalid = |reason| MemoryError::InvalidFree {
            addr,
            size: block.size,
            reason,
        };
        let &(token, size, device, slot) = raw
            .get(&addr)
            .ok_or_else(|| invalid("not a live raw block of this manager (double free?)"))?;
        if size != block.size || device != block.device {
            return Err(invalid("size or device differs from the allocation"));
        }
        raw.remove(&addr);
        drop(raw);
        self.inner.free(device.0, addr, token, size, slot);
        Ok(())
    }

    /// Gives back cached and free memory of every device: this thread's cached blocks,
    /// empty slabs and empty chunks. Memory owned by allocations is never touched.
    pub fn trim(&self) -> TrimReport {
        self.inner.cleanup(CleanupStrategy::Requested).0
    }

    /// Releases everything cached at once: this thread's cache (other threads flush
    /// theirs at their next free), empty slabs and chunks, every free page. What critical
    /// pressure runs.
    pub fn emergency_cleanup(&self) -> CleanupReport {
        self.inner.cleanup(CleanupStrategy::Emergency).1
    }

    /// One decay run now, as the background worker does it: releases memory idle past the
    /// decay time. `None` when there was nothing to release.
    pub fn decay_now(&self) -> Option<CleanupReport> {
        self.inner.decay()
    }

    /// Computes the pressure level of every device now (the worker does it once per
    /// period), emitting changes; a device turning critical gets emergency cleanup.
    pub fn check_pressure(&self) -> Vec<PressureLevel> {
        self.inner.check_pressure()
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
        self.inner.adapt()
    }

    /// Wake-ups of the background worker so far (`None` without a worker).
    pub fn worker_ticks(&self) -> Option<u64> {
        self.inner.worker.lock().as_ref().map(|w| w.ticks())
    }

    /// Counters of every device, the tracking layer's estimates and costs, allocation
    /// latency percentiles.
    pub fn metrics(&self) -> MetricsSnapshot {
        let inner = &*self.inner;
        MetricsSnapshot {
            devices: inner.devices.iter().map(|d| d.metrics()).collect(),
            tracking: inner.tracker.stats(),
            latency: inner.tracker.latency(),
            uptime_ns: inner.started.elapsed().as_nanos() as u64,
            events_dropped: inner.bus.dropped(),
            cleanup: inner.cleanup_stats.lock().clone(),
            pressure: inner
                .pressure
                .iter()
                .map(|p| PressureLevel::from_u8(p.load(Relaxed)))
                .collect(),
        }
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
    /// (with timestamps, live and reserved bytes) from now on, for [`snapshot`]
    /// (Self::snapshot); `0` stops and forgets them. Off by default: it costs nothing
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
        let t_ns = inner.now_ns();
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
        }
    }

    /// Panics if an internal invariant of any pool does not hold. Call it when no other
    /// thread is using the manager (tests do, after every step).
    pub fn check_invariants(&self) {
        for d in &self.inner.devices {
            d.check_invariants();
        }
    }

    pub(crate) fn device_pool(&self, device: DeviceId) -> Result<&DevicePool> {
        self.pool(device)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("config", &self.inner.config)
            .field("devices", &self.inner.devices.len())
            .finish()
    }
}
