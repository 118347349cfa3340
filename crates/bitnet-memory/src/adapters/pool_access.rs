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

/// Gives a block freed through [`PoolAlloc`](super::PoolAlloc) back to `pool`, with the
/// misuse guard: a small block already free, or an address that is no block of the pool
/// where the pool can tell (large blocks), aborts the process naming the pointer.
///
/// # Safety
/// `addr` is readable and writable for 16 bytes where `(size, align)` is served by a size
/// class (the caller says it owns such a block).
#[inline]
pub(super) unsafe fn free_to_pool_checked(
    pool: &DevicePool,
    addr: usize,
    size: usize,
    align: usize,
) {
    let class = pool.class_for(size, align);
    if let Some(c) = class {
        // SAFETY: the caller's contract.
        unsafe { super::guard::on_free_small(pool, addr, c, size) };
    }
    if !pool.free_by_addr(addr, class, size) {
        super::guard::misuse(
            "free of a pointer the pool does not hold (never given out, or freed twice)",
            addr,
            size,
        );
    }
}
