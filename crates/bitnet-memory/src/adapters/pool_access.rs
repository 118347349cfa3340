//! The calls into device 0's pool that the allocator adapters share.

use crate::device::DeviceId;
use crate::manager::MemoryManager;
use crate::pool::hybrid::DevicePool;
use std::alloc::Layout;

/// Device 0's pool, the one the adapters serve from (host memory).
pub(super) fn cpu_pool(mm: &MemoryManager) -> &DevicePool {
    mm.device_pool(DeviceId::CPU)
        .expect("every manager has a device 0")
}

/// The pool serves zero-sized layouts as one byte, so that alloc and dealloc agree.
#[inline]
pub(super) fn normalized(layout: Layout) -> (usize, usize) {
    (layout.size().max(1), layout.align())
}

/// Gives a block back to `pool`, by address, with the layout it was allocated with.
#[inline]
pub(super) fn free_to_pool(pool: &DevicePool, addr: usize, size: usize, align: usize) {
    let class = pool.class_for(size, align);
    let freed = pool.free_by_addr(addr, class, size);
    debug_assert!(freed, "free of {addr:#x}: not a block of this pool");
}
