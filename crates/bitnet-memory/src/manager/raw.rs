//! Raw blocks: allocations without an owner, freed by hand, double and foreign frees refused.

use super::MemoryManager;
use crate::device::DeviceId;
use crate::error::{MemoryError, Result};
use std::alloc::Layout;
use std::ptr::NonNull;
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

impl MemoryManager {
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
}
