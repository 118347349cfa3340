//! [`MemoryManager`]: the one handle users hold.

use crate::allocation::Allocation;
use crate::config::{MemoryConfig, MAX_ALIGN};
use crate::device::{CpuBackend, DeviceBackend, DeviceId};
use crate::error::{MemoryError, Result};
use crate::metrics::MetricsSnapshot;
use crate::pool::hybrid::DevicePool;
use crate::pool::TrimReport;
use parking_lot::Mutex;
use std::alloc::Layout;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Arc;

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

struct Inner {
    config: MemoryConfig,
    devices: Vec<DevicePool>,
    /// Blocks handed out through the raw API: address -> (token, size, device).
    raw: Mutex<HashMap<usize, (u64, usize, DeviceId)>>,
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
        let devices = self
            .devices
            .into_iter()
            .enumerate()
            .map(|(i, (b, budget))| DevicePool::new(DeviceId(i as u8), b, &self.config, budget))
            .collect();
        Ok(MemoryManager {
            inner: Arc::new(Inner {
                config: self.config,
                devices,
                raw: Mutex::new(HashMap::new()),
            }),
        })
    }
}

fn check_layout(size: usize, align: usize) -> Result<()> {
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
    pub fn try_allocate(&self, layout: Layout) -> Result<Allocation<'_>> {
        self.try_allocate_on(DeviceId::CPU, layout)
    }

    /// Allocates zero-filled memory on the CPU.
    pub fn try_allocate_zeroed(&self, layout: Layout) -> Result<Allocation<'_>> {
        self.try_allocate_zeroed_on(DeviceId::CPU, layout)
    }

    /// Allocates on `device`.
    #[inline]
    pub fn try_allocate_on(&self, device: DeviceId, layout: Layout) -> Result<Allocation<'_>> {
        let pool = self.pool(device)?;
        let (size, align) = (layout.size(), layout.align());
        if size != 0 {
            if let Some((addr, token)) = pool.allocate_cached(size, align) {
                return Ok(Allocation::new(addr, size, token, pool));
            }
        }
        self.allocate_uncached(pool, size, align)
    }

    #[cold]
    fn allocate_uncached<'m>(
        &'m self,
        pool: &'m DevicePool,
        size: usize,
        align: usize,
    ) -> Result<Allocation<'m>> {
        if size == 0 {
            return Ok(Allocation::zero_sized(align, pool));
        }
        check_layout(size, align)?;
        let (addr, token) = pool.allocate_slow(size, align)?;
        Ok(Allocation::new(addr, size, token, pool))
    }

    /// Allocates zero-filled memory on `device` (host-visible devices only).
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
    pub fn allocate_raw(&self, device: DeviceId, layout: Layout) -> Result<RawBlock> {
        if layout.size() == 0 {
            return Err(MemoryError::InvalidLayout {
                size: 0,
                align: layout.align(),
                reason: "raw blocks must have a size",
            });
        }
        let a = self.try_allocate_on(device, layout)?;
        let (addr, size, token) = a.into_parts();
        self.inner.raw.lock().insert(addr, (token, size, device));
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
        let &(token, size, device) = raw
            .get(&addr)
            .ok_or_else(|| invalid("not a live raw block of this manager (double free?)"))?;
        if size != block.size || device != block.device {
            return Err(invalid("size or device differs from the allocation"));
        }
        raw.remove(&addr);
        drop(raw);
        self.pool(device)?.free(addr, token, size);
        Ok(())
    }

    /// Gives back cached and free memory of every device: this thread's cached blocks,
    /// empty slabs and empty chunks. Memory owned by allocations is never touched.
    pub fn trim(&self) -> TrimReport {
        let mut r = TrimReport::default();
        for d in &self.inner.devices {
            r += d.trim();
        }
        r
    }

    /// Counters of every device.
    pub fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            devices: self.inner.devices.iter().map(|d| d.metrics()).collect(),
        }
    }

    /// Panics if an internal invariant of any pool does not hold. Call it when no other
    /// thread is using the manager (tests do, after every step).
    pub fn check_invariants(&self) {
        for d in &self.inner.devices {
            d.check_invariants();
        }
    }

    #[allow(dead_code)] // for the allocator adapters
    pub(crate) fn device_pool(&self, device: DeviceId) -> Result<&DevicePool> {
        self.pool(device)
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
