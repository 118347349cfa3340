//! The buddy system: power-of-two blocks that split in halves and merge with their buddy.
//!
//! Offsets are relative to the arena (chunk), and every arena is a power of two in size, so
//! a block's buddy is `offset ^ block_size` whatever the arena's address. (The seed's
//! system XOR-ed absolute addresses over arenas aligned only to 64 KB, so freed blocks never
//! merged; see LESSONS.md, point 2, and the tests.)
#![deny(unsafe_code)]

use crate::pool::strategy::{Block, BlockStrategy, SysVec};
use hashbrown::{DefaultHashBuilder, HashSet};
use std::alloc::System;

type FreeSet = HashSet<(u32, usize), DefaultHashBuilder, System>;

/// Smallest block: order 0.
pub const MIN_BLOCK: usize = 16;
const MAX_ORDER: usize = 58;

#[derive(Debug, Clone, Copy)]
struct Arena {
    base: usize,
    order: usize,
}

/// Free blocks of one order: a set for O(1) buddy lookup and a LIFO stack (with stale
/// entries skipped lazily) for O(1) amortized pop.
struct Order {
    set: FreeSet,
    stack: SysVec<(u32, usize)>,
}

impl Order {
    fn pop(&mut self) -> Option<(u32, usize)> {
        while let Some(e) = self.stack.pop() {
            if self.set.remove(&e) {
                return Some(e);
            }
        }
        None
    }
    fn push(&mut self, e: (u32, usize)) {
        self.set.insert(e);
        self.stack.push(e);
        // Keep stale entries bounded: rebuild when they outnumber live ones.
        if self.stack.len() > 64 && self.stack.len() > 4 * self.set.len() {
            let set = &self.set;
            self.stack.retain(|e| set.contains(e));
            self.stack.dedup();
        }
    }
}

/// The buddy strategy.
pub struct Buddy {
    arenas: SysVec<Option<Arena>>,
    orders: SysVec<Order>,
    free_bytes: usize,
}

impl Default for Buddy {
    fn default() -> Self {
        Self::new()
    }
}

fn order_of(size: usize) -> usize {
    let s = size.max(MIN_BLOCK).next_power_of_two();
    (s.trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize
}

const fn block_size(order: usize) -> usize {
    MIN_BLOCK << order
}

fn pack(arena: u32, offset: usize, order: usize) -> u64 {
    debug_assert!(offset.is_multiple_of(MIN_BLOCK) && order < 64 && offset / MIN_BLOCK < (1 << 34));
    (u64::from(arena) << 40) | (((offset / MIN_BLOCK) as u64) << 6) | order as u64
}

fn unpack(token: u64) -> (u32, usize, usize) {
    (
        (token >> 40) as u32,
        ((token >> 6) & ((1 << 34) - 1)) as usize * MIN_BLOCK,
        (token & 63) as usize,
    )
}

impl Buddy {
    /// An empty buddy allocator.
    pub fn new() -> Self {
        let mut orders = SysVec::new_in(System);
        for _ in 0..=MAX_ORDER {
            orders.push(Order {
                set: FreeSet::with_hasher_in(DefaultHashBuilder::default(), System),
                stack: SysVec::new_in(System),
            });
        }
        Self {
            arenas: SysVec::new_in(System),
            orders,
            free_bytes: 0,
        }
    }

    fn push_free(&mut self, arena: u32, offset: usize, order: usize) {
        self.orders[order].push((arena, offset));
        self.free_bytes += block_size(order);
    }
}

impl BlockStrategy for Buddy {
    fn name(&self) -> &'static str {
        "buddy"
    }

    fn chunk_fence(&mut self) -> Option<&mut dyn crate::pool::large::compact::ChunkFence> {
        Some(self)
    }

    fn add_chunk(&mut self, chunk: u32, base: usize, size: usize) {
        assert!(
            size.is_power_of_two() && size >= MIN_BLOCK,
            "arena not a power of two"
        );
        assert_eq!(base % size, 0, "arena base not aligned to its size");
        let order = order_of(size);
        let slot = chunk as usize;
        if self.arenas.len() <= slot {
            self.arenas.resize(slot + 1, None);
        }
        assert!(
            self.arenas[slot].is_none(),
            "arena id {chunk} reused while live"
        );
        self.arenas[slot] = Some(Arena { base, order });
        self.push_free(chunk, 0, order);
    }

    fn allocate(&mut self, size: usize, align: usize) -> Option<Block> {
        // Blocks are aligned to their size (arena bases are aligned to the arena size).
        let want = order_of(size.max(align));
        if want > MAX_ORDER {
            return None;
        }
        let (mut order, (arena, offset)) =
            (want..=MAX_ORDER).find_map(|o| self.orders[o].pop().map(|e| (o, e)))?;
        self.free_bytes -= block_size(order);
        while order > want {
            order -= 1;
            self.push_free(arena, offset + block_size(order), order);
        }
        let base = self.arenas[arena as usize].expect("live arena").base;
        Some(Block {
            token: pack(arena, offset, order),
            chunk: arena,
            addr: base + offset,
            size: block_size(order),
        })
    }

    fn free(&mut self, token: u64) -> usize {
        let (arena, mut offset, mut order) = unpack(token);
        let freed = block_size(order);
        let top = self.arenas[arena as usize].expect("live arena").order;
        while order < top {
            let buddy = offset ^ block_size(order);
            if !self.orders[order].set.remove(&(arena, buddy)) {
                break;
            }
            self.free_bytes -= block_size(order);
            offset = offset.min(buddy);
            order += 1;
        }
        self.push_free(arena, offset, order);
        freed
    }

    fn chunk_request(&self, size: usize, align: usize, growth: usize) -> (usize, usize) {
        let s = size
            .max(align)
            .max(growth)
            .max(MIN_BLOCK)
            .next_power_of_two();
        (s, s)
    }

    fn remove_empty_chunks(&mut self, out: &mut SysVec<u32>, _idle_before: u64) {
        for a in 0..self.arenas.len() {
            let Some(arena) = self.arenas[a] else {
                continue;
            };
            if self.orders[arena.order].set.remove(&(a as u32, 0)) {
                self.free_bytes -= block_size(arena.order);
                self.arenas[a] = None;
                out.push(a as u32);
            }
        }
    }

    fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    fn largest_free(&self) -> usize {
        (0..=MAX_ORDER)
            .rev()
            .find(|&o| !self.orders[o].set.is_empty())
            .map_or(0, block_size)
    }

    fn free_block_sizes(&self, out: &mut SysVec<usize>) {
        for (o, order) in self.orders.iter().enumerate() {
            out.extend(std::iter::repeat_n(block_size(o), order.set.len()));
        }
    }

    fn free_block_spans(&self, out: &mut SysVec<(usize, usize)>) {
        for (o, order) in self.orders.iter().enumerate() {
            for &(arena, offset) in order.set.iter() {
                let base = self.arenas[arena as usize]
                    .as_ref()
                    .expect("live arena")
                    .base;
                out.push((base + offset, block_size(o)));
            }
        }
    }

    fn check_invariants(&self) {
        let mut total = 0;
        for (o, order) in self.orders.iter().enumerate() {
            for &(a, off) in order.set.iter() {
                let arena = self.arenas[a as usize].expect("free block in a released arena");
                assert!(o <= arena.order, "block larger than its arena");
                assert_eq!(off % block_size(o), 0, "misaligned buddy block");
                assert!(off + block_size(o) <= block_size(arena.order));
                if o < arena.order {
                    let buddy = off ^ block_size(o);
                    assert!(
                        !order.set.contains(&(a, buddy)),
                        "free buddies not merged at order {o}"
                    );
                }
                total += block_size(o);
            }
        }
        assert_eq!(total, self.free_bytes, "free byte count drifted");
    }
}

mod fence;

#[cfg(test)]
mod tests;
