//! `allocator_api2::alloc::Allocator for &MemoryManager`: `Vec<T, &MemoryManager>`,
//! hashbrown maps and every other `allocator_api2` collection on a manager you hold.

use super::pool_access::{cpu_pool, free_to_pool};
use crate::config::MAX_ALIGN;
use crate::manager::MemoryManager;
use allocator_api2::alloc::{AllocError, Allocator};
use std::alloc::Layout;
use std::ptr::{self, NonNull};

// SAFETY: blocks come from device 0's pool, which hands each block to one owner and keeps
// it valid and unmoved until it is freed. `deallocate` gets the layout of the allocation
// (the `Allocator` contract), so `class_for(size, align)` names the class the block was
// served from and large blocks are found by address; every copy of the reference names
// the same manager, so a block may be freed through any of them.
unsafe impl Allocator for &MemoryManager {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let pool = cpu_pool(self);
        if !pool.host_visible || layout.align() > MAX_ALIGN {
            return Err(AllocError);
        }
        if layout.size() == 0 {
            let dangling = NonNull::new(ptr::without_provenance_mut::<u8>(layout.align()))
                .ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        }
        let (addr, _token) = pool
            .allocate(layout.size(), layout.align())
            .map_err(|_| AllocError)?;
        let p = NonNull::new(ptr::with_exposed_provenance_mut::<u8>(addr)).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return;
        }
        free_to_pool(
            cpu_pool(self),
            ptr.as_ptr().addr(),
            layout.size(),
            layout.align(),
        );
    }
}
