//! Best fit as a two-level segregated fit (TLSF): O(1) allocate and free over chunks.
//!
//! Blocks are described out of band (a node arena indexed by `u32`), never by headers in
//! the memory itself, so the same code can sub-allocate device memory. Physical neighbours
//! are linked so that a freed block merges with free neighbours in O(1); free blocks sit in
//! LIFO lists per (first level = power of two, second level = 16 sub-ranges), found with
//! two bitmap scans.
//!
//! Here: the node and chunk records and the strategy's state; the bin math is in `bins`,
//! the arena and free lists in `blocks`, placement in `place`, growth in place in `grow`, the trait in `strategy`.
#![deny(unsafe_code)]

mod bins;
mod blocks;
mod fence;
mod grow;
mod place;
mod strategy;

use crate::pool::strategy::SysVec;
use bins::{FL_COUNT, SL_COUNT};
use std::alloc::System;

/// "No node", in the links between nodes.
const NIL: u32 = u32::MAX;
/// Every block size and offset is a multiple of this.
pub const GRANULE: usize = 16;

/// Where a node of the arena stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Used,
    Vacant,
}

/// One block of a chunk, free or used, or a vacant slot of the arena.
#[derive(Debug, Clone, Copy)]
struct Node {
    chunk: u32,
    offset: usize,
    size: usize,
    prev_phys: u32,
    next_phys: u32,
    prev_free: u32,
    next_free: u32,
    state: State,
    /// For a free block: bytes that may be resident (freed by an owner since the last
    /// purge): the range `[dirty_off, dirty_off + dirty)` of the block. Where blocks
    /// merged it is the hull of their ranges, so it may count a clean gap between them
    /// (purging that is harmless). The rest was never touched or was purged.
    dirty: usize,
    /// Start of the dirty range, from the block's start.
    dirty_off: usize,
    /// For a free block: when it was freed (ms on the pool's clock), for decay.
    freed_at: u64,
    /// For a free block: which free made it (a counter), for oldest-first purging (the
    /// ms clock is too coarse to order frees, and would make the order depend on timing).
    freed_seq: u64,
}

/// A chunk TLSF carves: its base, its size and its first block.
#[derive(Debug, Clone, Copy)]
struct ChunkSlot {
    base: usize,
    size: usize,
    first: u32,
}

/// The TLSF strategy.
pub struct Tlsf {
    nodes: SysVec<Node>,
    vacant: u32,
    fl_bitmap: u64,
    sl_bitmap: [u32; FL_COUNT],
    heads: [[u32; SL_COUNT]; FL_COUNT],
    chunks: SysVec<Option<ChunkSlot>>,
    free_bytes: usize,
    /// Free bytes that may be resident: the sum of the free blocks' `dirty`.
    dirty_bytes: usize,
    /// The clock (ms) stamped on blocks as they are freed.
    now: u64,
    /// Whether requests look for resident free memory first.
    prefer_resident: bool,
    /// Frees so far (stamps `freed_seq`).
    frees: u64,
}

impl Default for Tlsf {
    fn default() -> Self {
        Self::new()
    }
}

impl Tlsf {
    /// An empty TLSF with no chunks.
    pub fn new() -> Self {
        Self {
            nodes: SysVec::new_in(System),
            vacant: NIL,
            fl_bitmap: 0,
            sl_bitmap: [0; FL_COUNT],
            heads: [[NIL; SL_COUNT]; FL_COUNT],
            chunks: SysVec::new_in(System),
            free_bytes: 0,
            dirty_bytes: 0,
            prefer_resident: true,
            now: 0,
            frees: 0,
        }
    }

    /// Free bytes that may be resident: the sum of the free blocks' dirty ranges (which
    /// guide placement and purging; the pool's page map has the exact count).
    #[cfg(test)]
    pub fn dirty_free_bytes(&self) -> usize {
        self.dirty_bytes
    }
}

#[cfg(test)]
mod tests;
