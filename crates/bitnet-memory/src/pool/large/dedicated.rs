//! Dedicated chunks, for devices that cannot decommit (a GPU: a buffer's memory goes back
//! to the device whole or not at all). There the device memory the pool holds is the bytes
//! of its chunks, so a big block sharing a chunk leaves a hole that stays held until the
//! whole chunk is empty. A request of at least
//! [`dedicated_threshold`](LargePool::dedicated_threshold) bytes therefore gets a chunk of
//! its own, of just its size (whole 4 KiB), outside the strategy; when the block is freed
//! (on a fenced device: when its pending free is reclaimed) the chunk goes straight back
//! to the device. With [`release_on_empty`](LargePool::release_on_empty), shared chunks
//! that a free empties go back at once too. Neither ever happens on a device that can
//! decommit (the CPU): there both settings are off.
#![deny(unsafe_code)]

use super::{Grant, GrowError, LargePool};
use crate::device::DeviceBackend;
use crate::pool::strategy::Block;
use crate::pool::strategy::BlockStrategy as _;

/// Dedicated chunks are whole multiples of this many bytes.
const DEDICATED_GRANULE: usize = 4096;

impl LargePool {
    /// A block of `size` bytes at `align` in a chunk of its own, of `size` rounded up to
    /// whole 4 KiB: within the budget and the device's largest chunk, else an error (no
    /// shared chunk is tried: the caller's trim and retry can only help through the
    /// budget).
    pub(super) fn allocate_dedicated(
        &mut self,
        size: usize,
        align: usize,
        g: &Grant<'_>,
    ) -> Result<Block, GrowError> {
        let (limit, name) = self.chunk_limit;
        let csize = size.max(1).next_multiple_of(DEDICATED_GRANULE);
        let calign = align.max(DEDICATED_GRANULE);
        if csize > limit {
            return Err(GrowError::TooLarge { limit, name });
        }
        if self.reserved.saturating_add(csize) > g.budget {
            return Err(GrowError::Budget { needed: csize });
        }
        let chunk = g
            .backend
            .allocate_chunk(csize, calign)
            .map_err(GrowError::Device)?;
        let mut held = self.place(chunk, calign, g.backend)?;
        held.dedicated = true;
        let id = self.insert_chunk(held);
        let b = Block {
            token: u64::from(id),
            chunk: id,
            addr: held.base,
            size: held.size,
        };
        // The owner may touch `size` bytes; nothing else lives in the chunk.
        self.mark_resident(&b, size);
        Ok(b)
    }

    /// The id of the dedicated chunk whose block starts at `addr`, if it is one.
    pub(super) fn dedicated_at(&self, addr: usize) -> Option<u32> {
        let i = self.by_base.partition_point(|&(b, _)| b < addr);
        let &(base, id) = self.by_base.get(i)?;
        let held = self.chunks[id as usize].as_ref()?;
        (base == addr && held.dedicated).then_some(id)
    }

    /// Gives back a user block just taken out of the user table: its dedicated chunk to
    /// the device, or the block to the strategy (then, with `release_on_empty`, every
    /// shared chunk now wholly free to the device).
    pub(super) fn release_block(&mut self, addr: usize, token: u64, backend: &dyn DeviceBackend) {
        if let Some(id) = self.dedicated_at(addr) {
            debug_assert_eq!(token, u64::from(id));
            // The chunk held this block only, and the block is no longer owned (nor
            // pending: a fenced free comes here only once reclaimed).
            let chunk = self.forget_chunk(id);
            backend.release_chunk(chunk);
            return;
        }
        self.tick();
        self.strategy.free(token);
        self.after_free(backend);
    }

    /// After a block went back to the strategy: on a device that cannot decommit, shared
    /// chunks it emptied go back to the device (a free chunk there is held device memory).
    /// Only wholly free chunks: no live, pending or slab block is in them.
    pub(super) fn after_free(&mut self, backend: &dyn DeviceBackend) {
        if self.release_on_empty {
            self.release_empty(backend);
        }
    }
}
