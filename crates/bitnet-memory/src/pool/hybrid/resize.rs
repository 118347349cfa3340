//! Resizing a block where it lies: `realloc` through the allocator adapters keeps the
//! pointer instead of copying when the pool can.

use super::*;

impl DevicePool {
    /// Resizes the block at `addr`, allocated as `(old, align)` bytes, to `new` bytes
    /// without moving it, when it can:
    /// - a size-class block stays when `new` maps to the same class;
    /// - a large-pool block grows into the free memory after it (TLSF), or stays when it
    ///   already holds `new` bytes and keeps no more than twice what it then serves.
    ///
    /// `false`: nothing changed, and the caller moves the block (an allocation of the new
    /// size, a copy and a free). Frees after a resize give the new size, as `realloc`'s
    /// contract says.
    pub fn resize_in_place(&self, addr: usize, old: usize, new: usize, align: usize) -> bool {
        if self.fenced || new == old {
            return !self.fenced;
        }
        match (self.class_for(old, align), self.class_for(new, align)) {
            (Some(a), Some(b)) if a == b => {
                self.note_resize(self.cache(), old, new);
                true
            }
            (None, None) => {
                let cache = self.cache();
                let mut large = self.large.lock();
                let Some((_, block)) = large.user_block(addr) else {
                    return false;
                };
                let fits = if new <= block {
                    // Shrinking a lot: moving gives the rest back.
                    new.saturating_mul(2) >= block
                } else {
                    large.grow_user(addr, new, &self.grant(new - old)).is_some()
                };
                drop(large);
                if fits {
                    self.note_resize(cache, old, new);
                    self.publish_now(cache);
                }
                fits
            }
            _ => false,
        }
    }

    /// Counts a block's requested size going from `old` to `new` bytes.
    fn note_resize(&self, cache: Option<&ThreadCache>, old: usize, new: usize) {
        let delta = new as i64 - old as i64;
        match cache {
            Some(c) => {
                if let Some((d, m)) = c.account(delta) {
                    self.publish(d, m);
                }
            }
            None => self.publish(delta, delta.max(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::MemoryConfig;
    use crate::device::{CpuBackend, DeviceId};
    use crate::pool::hybrid::DevicePool;

    fn pool() -> DevicePool {
        let config = MemoryConfig::default()
            .min_chunk(16 << 20)
            .pool_config(None);
        DevicePool::new(DeviceId::CPU, Box::new(CpuBackend::new()), &config)
    }

    const MIB: usize = 1 << 20;

    #[test]
    fn a_large_block_grows_into_the_free_memory_after_it_and_nowhere_else() {
        let p = pool();
        let (a, _) = p.allocate(3 * MIB, 64).unwrap();
        let (b, _) = p.allocate(3 * MIB, 64).unwrap();
        assert_eq!(b, a + 3 * MIB, "a fresh chunk is carved from the front");
        assert!(
            !p.resize_in_place(a, 3 * MIB, 4 * MIB, 64),
            "the block after it is in use"
        );
        assert_eq!(
            p.metrics().live_bytes,
            6 * MIB,
            "a refused resize changes nothing"
        );
        assert!(p.free_by_addr(b, None, 3 * MIB));
        assert!(
            p.resize_in_place(a, 3 * MIB, 5 * MIB, 64),
            "room after it now"
        );
        p.check_invariants();
        assert_eq!(p.metrics().live_bytes, 5 * MIB);
        // What it took is no longer free: the next block starts past it.
        let (c, _) = p.allocate(2 * MIB, 64).unwrap();
        assert!(
            c >= a + 5 * MIB || c + 2 * MIB <= a,
            "{c:#x} overlaps the grown block"
        );
        // Shrinking stays in place while the block keeps at most twice the new size.
        assert!(p.resize_in_place(a, 5 * MIB, 3 * MIB, 64));
        assert!(
            !p.resize_in_place(a, 3 * MIB, 2 * MIB, 64),
            "2 MiB in 5: moved"
        );
        assert!(p.free_by_addr(a, None, 3 * MIB));
        assert!(p.free_by_addr(c, None, 2 * MIB));
        p.check_invariants();
        assert_eq!(p.metrics().live_bytes, 0);
    }

    #[test]
    fn a_class_block_stays_within_its_class_only() {
        let p = pool();
        let (x, _) = p.allocate(1000, 8).unwrap();
        assert!(p.resize_in_place(x, 1000, 1024, 8), "the same 1 KiB class");
        assert_eq!(p.metrics().live_bytes, 1024);
        assert!(!p.resize_in_place(x, 1024, 1100, 8), "another class");
        assert!(!p.resize_in_place(x, 1024, 2 * MIB, 8), "a large block");
        let class = p.class_for(1024, 8);
        assert!(p.free_by_addr(x, class, 1024));
        assert_eq!(p.metrics().live_bytes, 0);
    }
}
