//! What a device can never serve, and where a block lies on it: the pool raises every
//! request's alignment to the device's offset alignment, refuses requests above its
//! largest block or chunk (`GrowError::TooLarge`, never retried), and finds a block's
//! chunk and offset in the chunk table for the device API (`DeviceRange`).

use super::*;

/// The large pool of a device with `limits`: growth stays within the device's largest
/// chunk; a device that cannot decommit (`no_decommit`) holds every byte of its chunks,
/// so its chunks start at `min_chunk_no_decommit`, big blocks get chunks of their own and
/// chunks a free empties go back at once.
pub(super) fn large_pool(
    strategy: Box<dyn BlockStrategy>,
    config: &PoolConfig,
    limits: &DeviceLimits,
    no_decommit: bool,
) -> LargePool {
    let max_chunk = config.max_chunk.min(limits.max_chunk);
    let min_chunk = if no_decommit {
        config.min_chunk_no_decommit
    } else {
        config.min_chunk
    };
    let mut large = LargePool::new(strategy, min_chunk.min(max_chunk), max_chunk);
    if no_decommit {
        large.dedicated_threshold = config.dedicated_threshold;
        large.release_on_empty = true;
    }
    large.chunk_limit = (limits.max_chunk, limits.max_chunk_name);
    large.keep_free = config.min_retain;
    large.huge_pages = config.huge_pages;
    large
}

impl DevicePool {
    /// Where the block at `addr` (`len` bytes, handed out by this pool) lies on the
    /// device: its chunk and offset, from the chunk table.
    pub fn device_range(&self, addr: usize, len: usize) -> Option<DeviceRange> {
        let (chunk, offset) = self.large.lock().locate(addr)?;
        Some(DeviceRange {
            chunk: chunk.handle,
            offset,
            len,
        })
    }

    /// The checks every request on the slow path passes first: pending frees whose work
    /// has finished go back (fenced devices), a request above a device limit is refused,
    /// the alignment is raised to the device's offset alignment (returned), and on a
    /// fenced device a request that would grow the pool first waits for a submission
    /// already made that frees enough pending blocks (`fence.rs`).
    #[inline]
    pub(super) fn admit(&self, size: usize, align: usize) -> Result<usize, GrowError> {
        if self.fenced {
            self.reclaim();
        }
        let l = &self.limits;
        if size > l.max_block {
            return Err(GrowError::TooLarge {
                limit: l.max_block,
                name: l.max_block_name,
            });
        }
        if size > l.max_chunk {
            return Err(GrowError::TooLarge {
                limit: l.max_chunk,
                name: l.max_chunk_name,
            });
        }
        let align = align.max(l.min_align);
        if self.fenced {
            self.wait_before_growth(size, align);
        }
        Ok(align)
    }
}
