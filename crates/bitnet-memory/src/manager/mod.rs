//! [`MemoryManager`]: the one handle users hold.

mod builder;
mod exit;
mod hardened;
mod leak;
mod leak_check;
mod raw;
mod services;

pub(crate) use builder::check_layout;
pub use builder::ManagerBuilder;
pub use leak_check::LeakCheck;
pub use raw::RawBlock;
#[cfg(test)]
pub(crate) use services::check_validation;

use crate::allocation::Allocation;
use crate::cleanup::engine::{CleanupEngine, CleanupHost};
use crate::cleanup::worker::Worker;
use crate::cleanup::{OomInfo, OomObserver};
use crate::config::MemoryConfig;
use crate::device::{DeviceBackend, DeviceId};
use crate::error::{MemoryError, Result};
use crate::events::{CleanupStrategy, EventBus, EventKind, MemoryEvent};
use crate::history::{BlockEvent, History};
use crate::pool::hybrid::{DevicePool, SMALL};
use crate::pool::large::GrowError;
use crate::snapshot::HistoryKind;
use crate::tracking::{Decision, Tracker};
use crate::view::ManagerView;
use parking_lot::{Mutex, RwLock};
use std::alloc::Layout;
use std::panic::Location;
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
    /// Blocks handed out through the raw API, by address.
    raw: Mutex<raw::RawTable>,
    /// Movable blocks, for compaction.
    pub(crate) movable: crate::movable::Registry,
    /// The cleanup engine: its counters, pressure levels and the logic of every run.
    pub(crate) cleanup: CleanupEngine,
    oom_observers: RwLock<Vec<OomObserver<MemoryManager>>>,
    worker: Mutex<Option<Worker>>,
    /// Leak detection: scopes, links, persisted blocks, detectors.
    pub(crate) leak: crate::leak::LeakState,
    /// The allocation history (`record_history`), off by default.
    pub(crate) history: History,
    /// Registered resources the manager does not allocate (`register_resource`).
    pub(crate) resources: crate::lifecycle::Registry,
    /// Hardened mode: guarded blocks, the audit log.
    pub(crate) security: crate::security::Security,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.get_mut().take() {
            w.stop();
        }
        self.leak_cx().report_at_shutdown();
    }
}

impl Inner {
    /// Frees a block: forgets its tracking record, tells subscribers, returns it to its
    /// pool.
    #[inline]
    pub(crate) fn free(&self, device: u8, addr: usize, token: u64, size: usize, slot: u32) {
        if self.security.active() && self.free_guarded(device, addr, token, slot) {
            return;
        }
        self.free_unguarded(device, addr, token, size, slot);
    }

    /// [`free`](Self::free) of a block that is not guarded (`addr` is the pool block's).
    #[inline]
    fn free_unguarded(&self, device: u8, addr: usize, token: u64, size: usize, slot: u32) {
        if slot != 0 || self.bus.wants(EventKind::AllocationDropped) {
            self.free_noted(device, addr, token, size, slot);
        } else {
            self.devices[device as usize].free(addr, token, size);
        }
        // A large block freed under high pressure: an immediate cleanup of its device
        // (small blocks go to caches; one relaxed load otherwise).
        if token & SMALL == 0 && self.cleanup.under_pressure(device) {
            self.cleanup.on_pressured_free(self, device);
        }
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

    /// What the history records of an allocation or free just done.
    fn block_event(
        &self,
        device: DeviceId,
        addr: usize,
        token: u64,
        size: usize,
        id: u32,
    ) -> BlockEvent {
        let v = self.view();
        let (live, reserved) = v.live_and_reserved();
        BlockEvent {
            t_ns: v.now_ns(),
            device,
            addr,
            size,
            pool: if token & SMALL != 0 { "small" } else { "large" },
            tracked_id: (id != 0).then_some(id),
            live,
            reserved,
        }
    }

    /// What the services (tracking, cleanup, leak detection) see of this manager.
    #[inline]
    pub(crate) fn view(&self) -> ManagerView<'_> {
        ManagerView {
            devices: &self.devices,
            tracker: &self.tracker,
            bus: &self.bus,
            history: &self.history,
            started: self.started,
        }
    }
}

impl CleanupHost for Inner {
    fn view(&self) -> ManagerView<'_> {
        Inner::view(self)
    }

    fn engine(&self) -> &CleanupEngine {
        &self.cleanup
    }

    fn compact_movable(&self) {
        if !self.movable.is_empty() {
            self.compact();
        }
    }

    fn release_droppable(&self) -> usize {
        self.resources.release_droppable(&self.bus).1
    }
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
        if size != 0
            && decision == Decision::Skip
            && !inner.bus.wants(EventKind::AllocationCreated)
            && !inner.security.enabled
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
        if inner.security.enabled && pool.host_visible {
            return self.allocate_guarded(pool, (size, align), decision, site, false);
        }
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
        let err = match alloc() {
            Ok(r) => return Ok(r),
            // Above a device limit, or the device is gone: no trim can help.
            Err(e) if e.is_final() => pool.grow_error(e, size),
            Err(_) => match self.trim_and_retry(pool, size, align, &alloc) {
                Ok(r) => return Ok(r),
                Err(e) => e,
            },
        };
        inner
            .view()
            .history_mark(HistoryKind::Pressure, pool.id, size, || {
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

    /// The retries of [`serve`](Self::serve) after a failure: a trim-and-retry run, then
    /// the out-of-memory observers and one more try. The error when all failed.
    fn trim_and_retry(
        &self,
        pool: &DevicePool,
        size: usize,
        align: usize,
        alloc: &impl Fn() -> std::result::Result<(usize, u64), GrowError>,
    ) -> Result<(usize, u64)> {
        let inner = &*self.inner;
        inner.cleanup.cleanup(inner, CleanupStrategy::TrimAndRetry);
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
        inner.cleanup.retry_failed();
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
            inner.leak_cx().note_tracked_alloc(slot, device, token);
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
            return Ok(a);
        }
        // The host cannot write these bytes: the device zeroes them, or the request is
        // refused rather than handing out a "zeroed" block that holds an old owner's data.
        let Some(range) = a.device_range() else {
            return Ok(a); // zero-sized: nothing to zero
        };
        let backend = &self.pool(device)?.backend;
        let Some(z) = backend.zero_fill() else {
            return Err(MemoryError::InvalidDeviceAccess {
                reason: format!(
                    "a zeroed allocation on {device} ({}): the host cannot write its memory \
                     and the device offers no zero fill",
                    backend.name()
                ),
            });
        };
        z.zero_range(range)
            .map_err(|e| MemoryError::InvalidDeviceAccess {
                reason: format!("zeroing {} B on {device}: {}", range.len, e.reason),
            })?;
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
