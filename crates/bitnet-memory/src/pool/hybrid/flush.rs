//! Moving blocks out of a thread's cache: a drain of one class when its stack is full, a
//! flush of every class (trim, threshold changes), and the hand-back to the central lists
//! or, for one-block slabs, to the large pool.

use super::*;

impl DevicePool {
    /// Gives blocks of `class` back: to the central list, or for one-block slabs straight
    /// to the large pool (then purging what the resident limit asks).
    pub(super) fn return_blocks(&self, class: usize, blocks: &[usize]) {
        if blocks.is_empty() {
            return;
        }
        let mut central = self.central[class].lock();
        central.puts += 1;
        if size_class::is_single(class) {
            central.handed_out -= blocks.len();
            drop(central);
            let mut large = self.large.lock();
            for &a in blocks {
                large.free_single(a, &*self.backend);
            }
        } else {
            for &a in blocks {
                central.put(a);
            }
        }
    }

    /// Moves up to `count` of the oldest cached blocks of `class` back (at most 64 at a
    /// time, through a buffer on the stack: this path must not allocate).
    pub(super) fn drain_cache(&self, c: &ThreadCache, class: usize, count: usize) -> usize {
        let mut left = count.min(c.len(class));
        let total = left;
        while left > 0 {
            let mut buf = [0usize; 64];
            let k = left.min(64);
            let mut i = 0;
            c.drain_oldest(&self.layout, class, k, |a| {
                buf[i] = a;
                i += 1;
            });
            self.return_blocks(class, &buf[..i]);
            left -= k;
        }
        total
    }

    /// Moves every block of this thread's cache to the central lists, and puts the
    /// cache's limits back to their base.
    pub(super) fn flush_all(&self, c: &ThreadCache) -> usize {
        let n = (0..self.central.len())
            .map(|class| self.drain_cache(c, class, usize::MAX))
            .sum();
        c.reset_limits(&self.layout);
        n
    }

    /// Sets what to call on a thread that creates its cache in this pool (once; later
    /// calls are ignored).
    pub(crate) fn set_new_cache_hook(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_new_cache.set(hook);
    }

    /// Empties this thread's cache into the central lists: what a thread does as it
    /// exits, so that its cache does not keep blocks until another thread happens to be
    /// given its id. Returns the blocks moved. The cache's unpublished live-byte change
    /// stays where readers of the metrics find it (moving it would let a reader running
    /// meanwhile see it in neither place).
    pub(crate) fn flush_this_thread(&self) -> usize {
        let Some(c) = self.caches.get() else {
            return 0;
        };
        // Readers of the whole pool (metrics, the invariant check) see it before or after.
        let _exits = self.exit_flush.lock();
        self.flush_all(c)
    }
}
