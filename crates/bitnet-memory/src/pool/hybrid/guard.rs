//! The pool's side of the misuse guard of the allocator adapters (`adapters/guard.rs`):
//! whether a block a caller frees is free already. Slow (it looks at every thread's cache
//! and the class's central list), so the adapters ask only when the block carries the
//! key word that a free writes, as glibc's tcache does.
#![deny(unsafe_code)]

use super::DevicePool;
use crate::pool::size_class;

impl DevicePool {
    /// Whether `addr` is a free block of size class `class` now: in a thread's cache, in
    /// the class's central free list, or (a class of one-block slabs) no live one-block
    /// slab starts there. Allocates nothing (the global allocator calls it).
    ///
    /// Other threads' caches are read while they may change; a block another thread
    /// frees or takes meanwhile may be missed, never invented: a block handed to its owner
    /// is in no cache and no list.
    pub(crate) fn holds_free_block(&self, addr: usize, class: usize) -> bool {
        if class >= self.central.len() {
            return false;
        }
        if self
            .caches
            .iter()
            .any(|c| c.holds(&self.layout, class, addr))
        {
            return true;
        }
        let central = self.central[class].lock();
        if central.free_list().contains(&addr) {
            return true;
        }
        if size_class::is_single(class) {
            return !self.large.lock().holds_single(addr);
        }
        false
    }
}
