//! The trait every large-block strategy implements.
#![deny(unsafe_code)]

use std::alloc::System;

/// A vector on the system allocator: the pool's own bookkeeping must not allocate from
/// the pool (it may be the global allocator).
pub type SysVec<T> = allocator_api2::vec::Vec<T, System>;

/// `fresh(chunk, offset, len)`: bytes of pages a touch of that range of a chunk would
/// fault in (see [`BlockStrategy::allocate_placed`]).
pub type Fresh<'a> = &'a dyn Fn(u32, usize, usize) -> usize;

/// A block handed out by a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Strategy-private handle, given back to [`BlockStrategy::free`].
    pub token: u64,
    /// Chunk the block lies in.
    pub chunk: u32,
    /// Address of the block (chunk base + offset).
    pub addr: usize,
    /// Bytes the block occupies (the request rounded up by the strategy).
    pub size: usize,
}

/// Sub-allocation of chunks: the pool's large-block strategies (best fit as TLSF, buddy).
///
/// Strategies work on chunk ids, offsets and addresses only; they never touch memory, so
/// they are safe code and serve device memory the host cannot see just as well.
pub trait BlockStrategy: Send {
    /// Name for reports.
    fn name(&self) -> &'static str;
    /// Takes a fresh, wholly free chunk into the strategy.
    fn add_chunk(&mut self, chunk: u32, base: usize, size: usize);
    /// Finds a block of at least `size` bytes aligned to `align` in the chunks it has.
    fn allocate(&mut self, size: usize, align: usize) -> Option<Block>;
    /// [`allocate`](Self::allocate), placed where the fewest fresh pages are faulted in,
    /// if the strategy tracks residency: `fresh(chunk, offset, len)` gives the bytes of
    /// pages a touch of a range would fault in. The default ignores it.
    fn allocate_placed(
        &mut self,
        size: usize,
        align: usize,
        _fresh: Option<Fresh<'_>>,
    ) -> Option<Block> {
        self.allocate(size, align)
    }
    /// Grows the used block `token` to at least `size` bytes without moving it, if the
    /// memory after it is free: the block as it is now, or `None` (nothing changed). The
    /// default never grows.
    fn grow_in_place(&mut self, _token: u64, _size: usize) -> Option<Block> {
        None
    }
    /// Frees a block; returns the bytes it occupied. Neighbours coalesce.
    fn free(&mut self, token: u64) -> usize;
    /// Size and alignment of a new chunk that will certainly serve `(size, align)`,
    /// given the pool's preferred growth size.
    fn chunk_request(&self, size: usize, align: usize, growth: usize) -> (usize, usize);
    /// Removes every chunk that is wholly free, and was freed before `idle_before` (in the
    /// strategy's clock, see [`set_now`](Self::set_now); `u64::MAX` for all), and appends
    /// its id to `out`.
    fn remove_empty_chunks(&mut self, out: &mut SysVec<u32>, idle_before: u64);
    /// Sets the clock (milliseconds) that stamps blocks as they are freed. Strategies that
    /// do not age blocks ignore it.
    fn set_now(&mut self, _now_ms: u64) {}
    /// Whether to place requests in resident free memory before best fit (strategies
    /// that track residency); the pool turns it off when it has no room to grow.
    fn set_prefer_resident(&mut self, _on: bool) {}
    /// Hands back the pages of dirty free blocks freed before `before` (ms) through
    /// `decommit(chunk, offset, len, usize::MAX)`, which returns the bytes that went back;
    /// returns their sum. The default purges nothing.
    fn purge_freed_before(
        &mut self,
        _before: u64,
        _decommit: &mut dyn FnMut(u32, usize, usize, usize) -> usize,
    ) -> usize {
        0
    }
    /// Free bytes inside the strategy's chunks.
    fn free_bytes(&self) -> usize;
    /// Hands back the pages of dirty free blocks, oldest frees first, through
    /// `decommit(chunk, offset, len, want)` (which hands back about `want` bytes of the
    /// block or all it has, and returns the bytes that went back and whether resident
    /// pages are left in the block) until `excess` bytes went back or no dirty free block
    /// is left; returns the bytes that went back. The default purges nothing.
    fn purge(
        &mut self,
        _excess: usize,
        _decommit: &mut dyn FnMut(u32, usize, usize, usize) -> (usize, bool),
    ) -> usize {
        0
    }
    /// Size of the largest free block.
    fn largest_free(&self) -> usize;
    /// Sizes of all free blocks (for fragmentation analysis; not on a hot path).
    fn free_block_sizes(&self, out: &mut SysVec<usize>);
    /// Address and size of every free block (for snapshots; not on a hot path).
    fn free_block_spans(&self, out: &mut SysVec<(usize, usize)>);
    /// Panics if an internal invariant does not hold. Used by tests after every mutation.
    fn check_invariants(&self);
    /// What compaction needs of the strategy; `None` (the default): its chunks are never
    /// compacted.
    fn chunk_fence(&mut self) -> Option<&mut dyn crate::pool::large::compact::ChunkFence> {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests;
