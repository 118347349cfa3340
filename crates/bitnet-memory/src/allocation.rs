//! [`Allocation`]: the RAII handle of one block.

use crate::device::{DeviceBlock, DeviceId, DeviceRange};
use crate::leak::BlockRef;
use crate::manager::Inner;
use crate::pool::hybrid::ZERO;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// One block of device memory, owned: freed when dropped, in O(1).
///
/// An allocation borrows its [`MemoryManager`](crate::MemoryManager) (`'m`), so it cannot
/// outlive it. Holding a borrow rather than a reference count keeps the hot path free of
/// shared atomic counters, which two threads allocating at once would fight over.
///
/// Memory from [`allocate`](crate::MemoryManager::allocate) holds whatever its previous
/// owner left: bytes the pool zero-filled when it took the chunk, or written since. Use
/// [`allocate_zeroed`](crate::MemoryManager::allocate_zeroed) when you need zeros.
pub struct Allocation<'m> {
    ptr: NonNull<u8>,
    len: usize,
    token: u64,
    /// Tracking slot (0: untracked).
    slot: u32,
    device: u8,
    /// Leak-detection marks ([`crate::leak::marks`]); 0 for almost every allocation, so
    /// `Drop` pays one predictable branch. Sits in what was padding.
    marks: AtomicU8,
    inner: &'m Inner,
}

// SAFETY: an `Allocation` is the only handle to its block (the pool hands each block to
// one owner), so moving it to another thread moves exclusive access; the pool it refers
// to is `Sync` and frees correctly from any thread.
unsafe impl Send for Allocation<'_> {}
// SAFETY: `&Allocation` gives only shared (read) access to the bytes.
unsafe impl Sync for Allocation<'_> {}

impl<'m> Allocation<'m> {
    #[inline]
    pub(crate) fn new(
        addr: usize,
        len: usize,
        token: u64,
        slot: u32,
        device: DeviceId,
        inner: &'m Inner,
    ) -> Self {
        let ptr = std::ptr::with_exposed_provenance_mut::<u8>(addr);
        Self {
            ptr: NonNull::new(ptr).expect("the pool never hands out address 0"),
            len,
            token,
            slot,
            device: device.0,
            marks: AtomicU8::new(0),
            inner,
        }
    }

    pub(crate) fn zero_sized(align: usize, device: DeviceId, inner: &'m Inner) -> Self {
        Self {
            ptr: NonNull::new(std::ptr::without_provenance_mut(align)).expect("align > 0"),
            len: 0,
            token: ZERO,
            slot: 0,
            device: device.0,
            marks: AtomicU8::new(0),
            inner,
        }
    }

    fn host_visible(&self) -> bool {
        self.inner.devices[self.device as usize].host_visible
    }

    /// The tracking id of this allocation, when it is tracked.
    pub fn id(&self) -> Option<u32> {
        if self.slot == 0 {
            return None;
        }
        self.inner.tracker.read(self.slot).map(|m| m.id)
    }

    /// Whether the tracking layer records this allocation.
    pub fn is_tracked(&self) -> bool {
        self.slot != 0
    }

    /// Marks the allocation as meant to live long (weights, caches): leak detection does
    /// not report it when a scope ends, nor count it as growth. A tracked allocation gets
    /// the flag on its record; an untracked one is counted exactly (per size class) until
    /// it is dropped.
    pub fn persist(&self) -> &Self {
        if self.slot != 0 {
            self.inner.tracker.mark_persistent(self.slot);
        } else if self.token != ZERO {
            self.inner.leak_cx().persist_untracked(self.block_ref());
        }
        self
    }

    /// What leak detection needs of this allocation (it never sees the handle itself).
    pub(crate) fn block_ref(&self) -> BlockRef<'_> {
        BlockRef {
            device: DeviceId(self.device),
            addr: self.ptr.as_ptr().addr(),
            len: self.len,
            token: self.token,
            slot: self.slot,
            marks: &self.marks,
        }
    }

    /// Size in bytes, as requested.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the allocation is zero-sized (it then owns no memory).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device the block lives on.
    pub fn device(&self) -> DeviceId {
        DeviceId(self.device)
    }

    /// Where the block lies on its device: the backend's chunk and the block's offset
    /// and length in it, for device APIs (a GPU buffer binding, a copy; see
    /// `device::wgpu::WgpuBackend::binding`). Found in the pool's chunk table (a lock,
    /// a binary search). `None` for a zero-sized allocation.
    pub fn device_range(&self) -> Option<DeviceRange> {
        if self.token == ZERO {
            return None;
        }
        self.inner.devices[self.device as usize].device_range(self.ptr.as_ptr().addr(), self.len)
    }

    /// Address of the first byte. On a device the host cannot see it is an address in the
    /// pool's own address space: a name for the block, unique while it lives, never to be
    /// dereferenced.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Mutable address of the first byte.
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The bytes, if the device is host-visible.
    #[inline]
    pub fn try_as_slice(&self) -> Option<&[u8]> {
        if !self.host_visible() {
            return None;
        }
        // SAFETY: the block is host memory of at least `len` bytes that this handle owns
        // exclusively (shared here through `&self`); pool memory is always initialized
        // (fresh chunks are zero-filled) and lives until the block is freed on drop.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) })
    }

    /// The bytes, mutable, if the device is host-visible.
    #[inline]
    pub fn try_as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if !self.host_visible() {
            return None;
        }
        // SAFETY: as in `try_as_slice`, with exclusive access through `&mut self`.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// The bytes. Indexing them is bounds-checked.
    ///
    /// # Panics
    /// If the device is not host-visible.
    #[inline]
    #[track_caller]
    pub fn as_slice(&self) -> &[u8] {
        self.try_as_slice()
            .expect("allocation is on a device the host cannot read")
    }

    /// The bytes, mutable. Indexing them is bounds-checked.
    ///
    /// # Panics
    /// If the device is not host-visible.
    #[inline]
    #[track_caller]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.try_as_mut_slice()
            .expect("allocation is on a device the host cannot write")
    }

    /// Gives up ownership without freeing: the block stays allocated until freed through
    /// [`MemoryManager::free_raw`](crate::MemoryManager::free_raw).
    pub(crate) fn into_parts(self) -> (usize, usize, u64, u32) {
        let me = std::mem::ManuallyDrop::new(self);
        (me.ptr.as_ptr().addr(), me.len, me.token, me.slot)
    }
}

impl Drop for Allocation<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.token != ZERO {
            let marks = self.marks.load(Relaxed);
            if marks != 0 {
                self.inner
                    .leak_cx()
                    .note_marked_drop(self.block_ref(), marks);
            }
            self.inner.free(
                self.device,
                self.ptr.as_ptr().addr(),
                self.token,
                self.len,
                self.slot,
            );
        }
    }
}

impl DeviceBlock for Allocation<'_> {
    fn device_range(&self) -> Option<DeviceRange> {
        Allocation::device_range(self)
    }
}

impl fmt::Debug for Allocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allocation")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("device", &self.device)
            .field("tracked", &(self.slot != 0))
            .finish()
    }
}
