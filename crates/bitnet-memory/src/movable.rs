//! Movable allocations and compaction: blocks the pool may move while nobody looks at
//! them, so that [`MemoryManager::compact`] can fill holes and give emptied chunks back.
//!
//! A [`MovableAllocation`] has no fixed address: its bytes are reached through a pin guard
//! ([`MovableAllocation::pin`], [`MovableAllocation::pin_mut`]) and stay put while any
//! guard is alive. Guards may be taken from several threads at once (the handle is
//! `Sync`), also while another thread compacts: pinning waits only while that one block
//! is being copied.
//!
//! - Movable blocks always come from the large pool (best fit, or buddy under
//!   [`Strategy::BuddySystem`](crate::Strategy::BuddySystem)), whatever their size: size
//!   classes pack many blocks in one slab and cannot move one of them. They are meant for
//!   big tensors, not for the hot path: each one costs a shared registry entry.
//! - Compaction evacuates only chunks that hold nothing but movable blocks, least used
//!   first, into holes of other chunks; it never grows the pool, never moves a pinned
//!   block, and releases every chunk it emptied. Both large-pool strategies support it.
//! - It runs under the device's large-pool lock, copies included: large allocations and
//!   frees of that device wait for it (small ones, served by thread caches, do not).
//! - Devices the host cannot see are not compacted: the device layer offers no copy
//!   primitive for their memory, so their movable blocks simply stay where they are.
//! - Emergency cleanup ([`MemoryManager::emergency_cleanup`], critical pressure) compacts
//!   first when movable blocks exist.
//!
//! Every run is reported as a [`CleanupCompleted`](crate::MemoryEvent::CleanupCompleted)
//! event with [`CleanupStrategy::Compaction`] and counted in the cleanup statistics of
//! [`MemoryManager::metrics`].

use crate::device::DeviceId;
use crate::error::Result;
use crate::events::{CleanupStrategy, EventKind, MemoryEvent};
use crate::manager::{check_layout, Inner};
use crate::pool::large::compact::{CompactStats, MoveCell};
use crate::pool::strategy::SysVec;
use crate::{CleanupReport, MemoryManager};
use hashbrown::{DefaultHashBuilder, HashMap};
use parking_lot::Mutex;
use std::alloc::{Layout, System};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The movable blocks of a manager, for compaction.
///
/// Lock order: this lock, then a large-pool lock (compaction); nothing takes them the
/// other way round. Its table lives on the system allocator, so that nothing done under
/// it allocates from the pool.
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    blocks: Mutex<Table>,
}

/// Registry key -> device and cell of each movable block.
/// Key -> device, the block's cell, its tracking slot (0: untracked).
type Table = HashMap<u64, (DeviceId, Arc<MoveCell>, u32), DefaultHashBuilder, System>;

impl Registry {
    fn insert(&self, device: DeviceId, cell: Arc<MoveCell>, slot: u32) -> u64 {
        let key = self.next.fetch_add(1, Relaxed);
        self.blocks.lock().insert(key, (device, cell, slot));
        key
    }

    fn remove(&self, key: u64) -> Option<(DeviceId, Arc<MoveCell>, u32)> {
        self.blocks.lock().remove(&key)
    }

    /// Whether no movable block is live.
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.lock().is_empty()
    }
}

/// A block the pool may move while no pin guard is alive: from
/// [`MemoryManager::allocate_movable`]. Dropping it frees the block.
///
/// ```
/// use bitnet_memory::{MemoryConfig, MemoryManager};
/// use std::alloc::Layout;
///
/// let mm = MemoryManager::new(MemoryConfig::default())?;
/// let mut kv = mm.allocate_movable(Layout::from_size_align(1 << 20, 64)?)?;
/// kv.pin_mut().fill(7); // the block stays put while the guard lives
/// let report = mm.compact(); // may move `kv`: no guard is alive
/// assert_eq!(report.pinned_skipped, 0);
/// assert!(kv.pin().iter().all(|&b| b == 7)); // wherever it is now
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MovableAllocation<'m> {
    /// `None` for a zero-sized allocation.
    cell: Option<Arc<MoveCell>>,
    key: u64,
    len: usize,
    align: usize,
    /// Tracking slot (0: untracked).
    slot: u32,
    device: DeviceId,
    inner: &'m Inner,
}

impl<'m> MovableAllocation<'m> {
    fn host_visible(&self) -> bool {
        self.inner.devices[self.device.0 as usize].host_visible
    }

    /// Size in bytes, as requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the allocation is zero-sized (it then owns no memory).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device the block lives on.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The tracking id of this allocation, when it is tracked.
    pub fn id(&self) -> Option<u32> {
        (self.slot != 0)
            .then(|| self.inner.tracker.read(self.slot).map(|m| m.id))
            .flatten()
    }

    /// Whether the tracking layer records this allocation.
    pub fn is_tracked(&self) -> bool {
        self.slot != 0
    }

    /// Where the block is now. Without a guard alive it may have moved by the time the
    /// caller looks at the value: an address to compare, never to dereference.
    pub fn current_addr(&self) -> usize {
        match &self.cell {
            Some(c) => c.addr(),
            None => self.align,
        }
    }

    /// Whether some guard pins the block now (a snapshot: other threads may pin or unpin
    /// right after).
    pub fn is_pinned(&self) -> bool {
        self.cell.as_ref().is_some_and(|c| c.is_pinned())
    }

    /// Whether compaction is copying the block now (a snapshot). Never true while a
    /// guard of this block is alive.
    pub fn is_moving(&self) -> bool {
        self.cell.as_ref().is_some_and(|c| c.is_moving())
    }

    /// Pins the block and gives its bytes, if the device is host-visible. Waits while
    /// compaction copies this block.
    pub fn try_pin(&self) -> Option<Pinned<'_>> {
        if !self.host_visible() {
            return None;
        }
        let (ptr, cell) = self.pin_raw();
        Some(Pinned {
            ptr,
            len: self.len,
            cell,
        })
    }

    /// Pins the block and gives its bytes, mutable, if the device is host-visible.
    pub fn try_pin_mut(&mut self) -> Option<PinnedMut<'_>> {
        if !self.host_visible() {
            return None;
        }
        let (ptr, cell) = self.pin_raw();
        Some(PinnedMut {
            pin: Pinned {
                ptr,
                len: self.len,
                cell,
            },
            _bytes: PhantomData,
        })
    }

    /// Pins the block and gives its bytes: it does not move while the guard lives.
    ///
    /// # Panics
    /// If the device is not host-visible.
    #[track_caller]
    pub fn pin(&self) -> Pinned<'_> {
        self.try_pin()
            .expect("movable allocation on a device the host cannot read")
    }

    /// Pins the block and gives its bytes, mutable.
    ///
    /// # Panics
    /// If the device is not host-visible.
    #[track_caller]
    pub fn pin_mut(&mut self) -> PinnedMut<'_> {
        self.try_pin_mut()
            .expect("movable allocation on a device the host cannot write")
    }

    fn pin_raw(&self) -> (NonNull<u8>, Option<&MoveCell>) {
        match &self.cell {
            Some(c) => {
                let addr = c.pin();
                let ptr = std::ptr::with_exposed_provenance_mut::<u8>(addr);
                (
                    NonNull::new(ptr).expect("the pool never hands out address 0"),
                    Some(c),
                )
            }
            None => (
                NonNull::new(std::ptr::without_provenance_mut(self.align)).expect("align > 0"),
                None,
            ),
        }
    }
}

impl Drop for MovableAllocation<'_> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        // Out of the registry first: compaction runs under its lock, so once the entry is
        // gone no run can move the block, and the last move (if any) is visible here.
        let entry = self.inner.movable.remove(self.key);
        debug_assert!(entry.is_some(), "movable block missing from the registry");
        drop(entry);
        self.inner.free(
            self.device.0,
            cell.addr(),
            cell.token(),
            self.len,
            self.slot,
        );
    }
}

impl fmt::Debug for MovableAllocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MovableAllocation")
            .field("addr", &self.current_addr())
            .field("len", &self.len)
            .field("device", &self.device)
            .field("pinned", &self.is_pinned())
            .finish()
    }
}

/// Shared access to a pinned movable block: the block does not move while this lives.
pub struct Pinned<'a> {
    ptr: NonNull<u8>,
    len: usize,
    cell: Option<&'a MoveCell>,
}

impl Pinned<'_> {
    /// Address of the first byte, valid while the guard lives.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Deref for Pinned<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the pin keeps the block at `ptr` (compaction claims only unpinned
        // blocks), and the handle, borrowed by this guard, keeps it allocated. It is host
        // memory of `len` bytes (guards exist only on host-visible devices), always
        // initialized (chunks are zero-filled, moves copy whole blocks). Mutable access
        // needs `&mut` of the handle, which this guard's borrow excludes. A zero-sized
        // allocation gives a dangling, aligned pointer, valid for 0 bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cell {
            c.unpin();
        }
    }
}

impl fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

/// Exclusive access to a pinned movable block: the block does not move while this lives.
/// A [`Pinned`] guard (which unpins on drop) that also holds the handle's `&mut`.
pub struct PinnedMut<'a> {
    pin: Pinned<'a>,
    _bytes: PhantomData<&'a mut [u8]>,
}

impl PinnedMut<'_> {
    /// Address of the first byte, valid while the guard lives.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.pin.ptr.as_ptr()
    }
}

impl Deref for PinnedMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.pin
    }
}

impl DerefMut for PinnedMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `Pinned::deref`, and exclusive: the guard borrows the handle
        // mutably, so no other guard of this block exists, and compaction does not touch
        // a pinned block.
        unsafe { std::slice::from_raw_parts_mut(self.pin.ptr.as_ptr(), self.pin.len) }
    }
}

impl fmt::Debug for PinnedMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedMut")
            .field("ptr", &self.pin.ptr)
            .field("len", &self.pin.len)
            .finish()
    }
}

/// What one [`MemoryManager::compact`] run did, over every device. Every figure is
/// counted from the blocks and chunks it handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Blocks moved.
    pub blocks_moved: usize,
    /// Bytes copied (requested sizes of the moved blocks).
    pub bytes_moved: usize,
    /// Chunks emptied and given back to their device.
    pub chunks_released: usize,
    /// Bytes of those chunks.
    pub bytes_released: usize,
    /// Movable blocks of otherwise evacuable chunks that stayed because they were pinned.
    pub pinned_skipped: usize,
    /// How long the run took.
    pub duration: Duration,
}

impl fmt::Display for CompactionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "compaction: {} blocks moved ({} B), {} chunks released ({} B), {} pinned blocks skipped, {:?}",
            self.blocks_moved,
            self.bytes_moved,
            self.chunks_released,
            self.bytes_released,
            self.pinned_skipped,
            self.duration
        )
    }
}

impl Inner {
    /// One compaction run over every host-visible device: event, statistics, report.
    pub(crate) fn compact(&self) -> CompactionReport {
        let strategy = CleanupStrategy::Compaction;
        self.bus.emit(EventKind::CleanupTriggered, || {
            MemoryEvent::CleanupTriggered { strategy }
        });
        let t = Instant::now();
        let mut s = CompactStats::default();
        let ledgers = crate::cleanup::validate::sample(&self.devices);
        let figures: Vec<_> = self
            .devices
            .iter()
            .map(crate::cleanup::optimizer::figures)
            .collect();
        {
            let registry = self.movable.blocks.lock();
            // On the system allocator: filled under the registry lock and read under a
            // large-pool lock, and the pool may be the global allocator.
            let mut cells: SysVec<&MoveCell> = SysVec::new_in(System);
            // Where each block was, to tell the tracking records and the history of moves.
            let mut was: SysVec<(usize, u32)> = SysVec::new_in(System);
            for d in self.devices.iter().filter(|d| d.host_visible) {
                cells.clear();
                was.clear();
                for (_, c, slot) in registry.values().filter(|(dev, ..)| *dev == d.id) {
                    cells.push(&**c);
                    was.push((c.addr(), *slot));
                }
                if !cells.is_empty() {
                    s += d.compact(&cells, &mut |from, to, len| {
                        let src = std::ptr::with_exposed_provenance::<u8>(from);
                        let dst = std::ptr::with_exposed_provenance_mut::<u8>(to);
                        // SAFETY: the pool calls this for a block it claimed (no pin is
                        // held, so no reference into it exists, and none can be made
                        // until the move is published) and a free block it just took for
                        // it, no one else's. Both are `len` bytes of host memory (the
                        // device is host-visible, whose backend exposes chunk provenance)
                        // inside live chunks, and two blocks of the pool never overlap.
                        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
                    });
                }
                for (c, &(from, slot)) in cells.iter().zip(was.iter()) {
                    let to = c.addr();
                    if to != from {
                        if slot != 0 {
                            self.tracker.set_addr(slot, to);
                        }
                        self.history.moved(d.id, from, to);
                    }
                }
            }
        }
        let report = CompactionReport {
            blocks_moved: s.blocks_moved,
            bytes_moved: s.bytes_moved,
            chunks_released: s.chunks_released,
            bytes_released: s.bytes_released,
            pinned_skipped: s.pinned_skipped,
            duration: t.elapsed(),
        };
        let validation = crate::cleanup::validate::validate(
            &ledgers,
            &crate::cleanup::validate::sample(&self.devices),
            &crate::pool::TrimReport {
                chunks_released: report.chunks_released,
                bytes_released: report.bytes_released,
                ..Default::default()
            },
        );
        crate::cleanup::optimizer::announce_compaction(&self.view(), &figures, &report);
        self.cleanup.record(
            &self.view(),
            &CleanupReport {
                strategy,
                cached_blocks_flushed: 0,
                blocks_released: report.chunks_released,
                bytes_released: report.bytes_released,
                duration: report.duration,
                success: report.pinned_skipped == 0 && validation.ok,
                executor: None,
                validation: Some(validation),
            },
        );
        report
    }
}

impl MemoryManager {
    /// Allocates a movable block on the CPU (device 0): see [`MovableAllocation`].
    ///
    /// Errors as [`try_allocate`](Self::try_allocate): a zero-sized layout gives a
    /// zero-sized allocation, an alignment over 1 GiB is an
    /// [`InvalidLayout`](crate::MemoryError::InvalidLayout), a budget or a device that cannot
    /// give more after trimming is a [`BudgetExceeded`](crate::MemoryError::BudgetExceeded) or
    /// [`OutOfMemory`](crate::MemoryError::OutOfMemory). Out-of-memory observers are asked
    /// as for [`try_allocate`](MemoryManager::try_allocate).
    #[track_caller]
    pub fn allocate_movable(&self, layout: Layout) -> Result<MovableAllocation<'_>> {
        self.allocate_movable_on(DeviceId::CPU, layout)
    }

    /// Allocates a movable block on `device`, from its large pool whatever the size.
    /// Blocks on devices the host cannot see are never moved and cannot be pinned for
    /// their bytes ([`MovableAllocation::try_pin`] gives `None`).
    #[track_caller]
    pub fn allocate_movable_on(
        &self,
        device: DeviceId,
        layout: Layout,
    ) -> Result<MovableAllocation<'_>> {
        let inner = self.inner();
        let pool = self.device_pool(device)?;
        let (size, align) = (layout.size(), layout.align());
        let handle = |cell, key, slot| MovableAllocation {
            cell,
            key,
            len: size,
            align,
            slot,
            device,
            inner,
        };
        if size == 0 {
            return Ok(handle(None, 0, 0));
        }
        check_layout(size, align)?;
        let decision = inner.tracker.decide(size);
        let (addr, token) =
            self.serve(pool, size, align, || pool.allocate_large_once(size, align))?;
        // Tracked like any allocation (decide, record, forget on free), so leak reports
        // and scopes see movable blocks too.
        let site = Location::caller();
        let slot = self.record_allocation(device, (addr, token), size, decision, site, None);
        let cell = Arc::new(MoveCell::new(addr, token, size, align));
        let key = inner.movable.insert(device, Arc::clone(&cell), slot);
        Ok(handle(Some(cell), key, slot))
    }

    /// Moves unpinned movable blocks out of the least-used chunks into holes of other
    /// chunks and gives back the chunks it emptied; see [`crate::movable`]. Pinned blocks
    /// stay where they are (and so does their chunk). Safe to call while other threads
    /// pin, allocate and free.
    pub fn compact(&self) -> CompactionReport {
        self.inner().compact()
    }
}
